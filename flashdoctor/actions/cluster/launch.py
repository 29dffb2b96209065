"""Where this process sits in the job, read from the launcher's environment. Pure: fed a mapping.

Supported launchers (README "Cluster preflight"):

- torchrun / torch.distributed.run, and any env:// launcher: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
  ``MASTER_ADDR``, ``MASTER_PORT`` (torchrun also sets ``GROUP_RANK``, ``LOCAL_WORLD_SIZE``,
  ``TORCHELASTIC_RUN_ID``, ``TORCHELASTIC_RESTART_COUNT`` and ``TORCHELASTIC_USE_AGENT_STORE``: when the
  latter is "True" the launcher's agent already hosts the key-value store at MASTER_ADDR:MASTER_PORT and
  every rank connects to it as a client, as ``torch.distributed``'s own env:// rendezvous does).
- Slurm ``srun`` (one task per GPU): ``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``,
  ``SLURM_NODEID``. The rendezvous address is ``MASTER_ADDR`` if set, else the first host of
  ``SLURM_STEP_NODELIST`` (then ``SLURM_JOB_NODELIST``, ``SLURM_NODELIST``) — task 0 runs on the first
  node of its step. The port is ``MASTER_PORT`` if set, else ``15000 + SLURM_JOB_ID % 10000`` (below the
  Linux ephemeral range, the same for every task of the job).

``RANK`` wins over ``SLURM_PROCID``: under ``srun torchrun ...`` the ranks are torchrun's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from flashdoctor.errors import UsageError

Launcher = Literal["torchrun", "env", "slurm"]

SLURM_PORT_BASE = 15000
SLURM_PORT_SPAN = 10000


@dataclass(frozen=True)
class LaunchInfo:
    """This process's place in the job."""

    launcher: Launcher
    rank: int
    world_size: int
    local_rank: int
    node_rank: int | None  # torchrun GROUP_RANK / Slurm SLURM_NODEID
    local_world_size: int | None
    master_addr: str
    master_port: int
    agent_store: bool  # the launcher's agent hosts the store; rank 0 must not start one
    run_id: str  # namespace of this run's keys in the store

    @property
    def rendezvous(self) -> str:
        return f"{self.master_addr}:{self.master_port}"


def _int(environ: Mapping[str, str], name: str) -> int | None:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        return int(raw.strip())
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not an integer") from None


def _port(environ: Mapping[str, str]) -> int | None:
    port = _int(environ, "MASTER_PORT")
    if port is not None and not 0 < port < 65536:
        raise UsageError(f"MASTER_PORT={port} is not a TCP port (1-65535)")
    return port


def first_slurm_host(nodelist: str) -> str | None:
    """The first host of a Slurm hostlist: "gpu[07-09,12],login1" -> "gpu07",
    "rack[1-2]-n[001-004]" -> "rack1-n001". ``scontrol show hostnames`` is the reference expansion;
    the first host needs only the first element of each bracket (zero padding as written)."""
    text = nodelist.strip()
    if not text:
        return None
    depth = 0
    end = len(text)
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "," and depth == 0:
            end = i
            break
    item = text[:end]

    def first(m: re.Match[str]) -> str:
        return re.split(r"[,-]", m.group(1), maxsplit=1)[0]

    host = re.sub(r"\[([^\]]*)\]", first, item)
    return host if re.fullmatch(r"[A-Za-z0-9_.\-]+", host) else None


def launch_from_environ(environ: Mapping[str, str]) -> LaunchInfo:
    """Read the launcher's variables. Raises UsageError naming what is missing or wrong."""
    rank = _int(environ, "RANK")
    world = _int(environ, "WORLD_SIZE")
    if rank is not None or world is not None:
        if rank is None or world is None:
            raise UsageError("RANK and WORLD_SIZE must be set together (env:// rendezvous)")
        addr = environ.get("MASTER_ADDR", "").strip()
        port = _port(environ)
        if not addr or port is None:
            raise UsageError(
                "MASTER_ADDR and MASTER_PORT must be set for the env:// rendezvous",
                hint="torchrun sets them; by hand, export MASTER_ADDR=<rank 0's host> MASTER_PORT=<free port>",
            )
        local = _int(environ, "LOCAL_RANK")
        if local is None:
            local = _int(environ, "SLURM_LOCALID")
        launcher: Launcher = "torchrun" if environ.get("TORCHELASTIC_RUN_ID") else "env"
        run = environ.get("TORCHELASTIC_RUN_ID") or "env"
        restart = environ.get("TORCHELASTIC_RESTART_COUNT") or "0"
        node_var, local_world_var = "GROUP_RANK", "LOCAL_WORLD_SIZE"
        agent_store = environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
        run_id = f"{run}.{restart}"
    elif environ.get("SLURM_PROCID") is not None:
        rank = _int(environ, "SLURM_PROCID")
        world = _int(environ, "SLURM_NTASKS")
        if world is None:
            world = _int(environ, "SLURM_NPROCS")
        if rank is None or world is None:
            raise UsageError("SLURM_PROCID is set but SLURM_NTASKS is not: run the check as an srun step")
        addr = environ.get("MASTER_ADDR", "").strip()
        if not addr:
            for var in ("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST"):
                if environ.get(var):
                    addr = first_slurm_host(environ[var]) or ""
                    if not addr:
                        raise UsageError(
                            f"cannot read the first host of {var}={environ[var]!r}", hint="export MASTER_ADDR"
                        )
                    break
        if not addr:
            raise UsageError("no rendezvous host: set MASTER_ADDR or run under srun (SLURM_STEP_NODELIST)")
        port = _port(environ)
        job = _int(environ, "SLURM_JOB_ID")
        if port is None:
            if job is None:
                raise UsageError("no rendezvous port: set MASTER_PORT (or SLURM_JOB_ID to derive one)")
            port = SLURM_PORT_BASE + job % SLURM_PORT_SPAN
        local = _int(environ, "SLURM_LOCALID")
        launcher = "slurm"
        node_var, local_world_var = "SLURM_NODEID", "SLURM_NTASKS_PER_NODE"
        agent_store = False
        run_id = f"slurm-{job if job is not None else 'job'}.{environ.get('SLURM_STEP_ID', '0')}"
    else:
        raise UsageError(
            "--distributed needs a launcher: none of RANK/WORLD_SIZE (torchrun, env://) or "
            "SLURM_PROCID/SLURM_NTASKS (srun) is set",
            hint="torchrun --nproc-per-node <GPUs> -m flashdoctor check --distributed   (docs/cluster.md)",
        )
    info = LaunchInfo(
        launcher=launcher,
        rank=rank,
        world_size=world,
        local_rank=0 if local is None else local,
        node_rank=_int(environ, node_var),
        local_world_size=_int(environ, local_world_var),
        master_addr=addr,
        master_port=port,
        agent_store=agent_store,
        run_id=run_id,
    )
    if info.world_size < 1:
        raise UsageError(f"world size {info.world_size} must be at least 1")
    if not 0 <= info.rank < info.world_size:
        raise UsageError(f"rank {info.rank} is outside the world of {info.world_size} ranks")
    if info.local_rank < 0:
        raise UsageError(f"local rank {info.local_rank} is negative")
    return info


# -- this rank's GPU ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeviceAssignment:
    """The GPU a rank owns. ``visible`` is the CUDA_VISIBLE_DEVICES value that restricts the probes (and
    the smoke test) to it; None leaves the environment alone (no GPU, or none left for this rank)."""

    visible: str | None
    note: str | None = None

    @property
    def has_gpu(self) -> bool:
        return self.visible is not None


def visible_tokens(cuda_visible: str | None, count: int) -> list[str]:
    """The device tokens a process may use: CUDA_VISIBLE_DEVICES' entries (up to ``count`` valid ones,
    as the CUDA runtime stops at the first invalid entry), else the indices 0..count-1."""
    if cuda_visible is None:
        return [str(i) for i in range(count)]
    toks = [t.strip() for t in cuda_visible.split(",")]
    out: list[str] = []
    for t in toks:
        if not t or len(out) >= count:
            break
        out.append(t)
    return out


def assign_device(local_rank: int, cuda_visible: str | None, visible_count: int) -> DeviceAssignment:
    """local rank -> device, the torchrun convention (``torch.cuda.set_device(LOCAL_RANK)``).

    A process that sees exactly one GPU owns it whatever its local rank: that is how Slurm's
    ``--gpus-per-task=1`` / ``--gpu-bind`` hand out GPUs (CUDA_VISIBLE_DEVICES set per task).
    """
    tokens = visible_tokens(cuda_visible, visible_count)
    if not tokens:
        return DeviceAssignment(None)
    if len(tokens) == 1:
        return DeviceAssignment(tokens[0])
    if local_rank < len(tokens):
        return DeviceAssignment(tokens[local_rank])
    return DeviceAssignment(
        None,
        note=f"local rank {local_rank} has no GPU of its own: {len(tokens)} visible on this host",
    )


# -- --target-for-rank ----------------------------------------------------------------------------------
def parse_target_for_rank(values: tuple[str, ...] | list[str]) -> dict[int, str]:
    """``--target-for-rank R=FILE`` (repeatable) -> {R: FILE}."""
    out: dict[int, str] = {}
    for raw in values:
        rank_text, sep, path = raw.partition("=")
        if not sep or not path or not re.fullmatch(r"\d+", rank_text.strip()):
            raise UsageError(f"--target-for-rank {raw!r}: expected RANK=FILE, e.g. 3=node7.json")
        r = int(rank_text)
        if r in out:
            raise UsageError(f"--target-for-rank: rank {r} is given twice")
        out[r] = path
    return out


def rank_target(
    rank: int, per_rank: Mapping[int, str], target: str | None, environ: Mapping[str, str]
) -> str | None:
    """The target spec this rank checks instead of probing, if any: ``--target-for-rank`` first, then
    this process's ``FLASHDOCTOR_TARGET`` (set per task under srun, e.g. with a wrapper), then
    ``--target`` (all ranks)."""
    if rank in per_rank:
        return per_rank[rank]
    env_target = environ.get("FLASHDOCTOR_TARGET", "").strip()
    if env_target:
        return env_target
    return target
