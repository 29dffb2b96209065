"""Probes of the machine: NVIDIA driver and GPUs, CUDA toolkits, host compiler, ninja, resources.

Every function fails soft: what cannot be found out is returned as None plus a note.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import FrameType
from typing import IO, Any

from flashdoctor.model.environment import GPU, Nvcc

SUBPROCESS_TIMEOUT = 20.0


@dataclass
class Probed:
    """Partial results of one probe: the Environment field values and notes."""

    values: dict[str, object] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    unknown: set[str] = field(default_factory=set)


def signal_name(rc: int | None) -> str | None:
    """SIGSEGV for a process's return code -11; None when it was not killed by a signal."""
    if rc is None or rc >= 0:
        return None
    try:
        return signal.Signals(-rc).name
    except ValueError:
        return f"signal {-rc}"


# What interrupts_held holds: Ctrl-C, and what the CLI raises as Terminated (SIGTERM, SIGHUP).
_HELD = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """In the main thread, a Ctrl-C or SIGTERM (a Python handler's) that arrives inside the block is raised
    at its end. Raised inside subprocess.Popen after the fork, it lost the child's pid: the child outlived
    flashdoctor (one in a session of its own out of the terminal's reach; one in our process group still,
    on a SIGTERM to flashdoctor alone). Held at the level of Python's handlers, not blocked (a blocked
    signal stays blocked in the child). Another thread: nothing to hold (signals reach the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    active = True
    previous: dict[int, Callable[[int, FrameType | None], Any]] = {}

    def hold(signum: int, frame: FrameType | None) -> None:
        if active:
            held.append(signum)
        else:  # arrived while the handlers were being put back
            previous[signum](signum, frame)

    for sig in _HELD:
        handler = signal.getsignal(sig)
        if callable(handler):  # SIG_DFL, SIG_IGN and a C handler are left as they are
            previous[sig] = handler
            signal.signal(sig, hold)
    try:
        yield
    finally:
        active = False
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if held:
            previous[held[0]](held[0], None)


def spawn(
    cmd: Sequence[str],
    env: Mapping[str, str] | None,
    *,
    own_group: bool,
    stdout: IO[Any] | int | None,
    stderr: IO[Any] | int | None,
    cwd: str | os.PathLike[str] | None = None,
    text: bool = False,
) -> subprocess.Popen[Any]:
    """Start ``cmd`` with stdin closed, in a session of its own with ``own_group`` (POSIX): the one Popen of
    run_process and interpreter.start, each of which calls it under interrupts_held and ends the child with
    stop_process. ``text``: its pipes read as text, bad bytes replaced."""
    return subprocess.Popen(
        list(cmd),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        text=text,
        errors="replace" if text else None,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        start_new_session=own_group and hasattr(os, "killpg"),
    )


def stop_process(proc: subprocess.Popen[Any], own_group: bool) -> None:
    """Kill a child spawn started (with everything in its session for ``own_group``) unless it is reaped
    already (its pid may be another process's now), reap it and close its pipes."""
    if proc.returncode is None:  # never signal a reaped pid: it may be another process's now
        killed = False
        if own_group and hasattr(os, "killpg"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
        if not killed:  # the command alone, or a group it cannot signal whole
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def run_process(
    cmd: Sequence[str],
    env: Mapping[str, str] | None = None,
    timeout: float = SUBPROCESS_TIMEOUT,
    own_group: bool = False,
) -> subprocess.CompletedProcess[str]:
    """subprocess.run of ``cmd`` (stdin closed, output captured as text), raising as it does (OSError,
    TimeoutExpired), but the one way such a command starts: under interrupts_held, so that a Ctrl-C or
    SIGTERM in the main thread cannot lose it as it starts, and on any exception (a timeout, Ctrl-C,
    SIGTERM) killed and reaped before the exception goes on (an install's restore must not race a pip still
    running; subprocess.run does not wait after a KeyboardInterrupt). ``own_group``: in a session of its
    own (POSIX), and then the whole group is killed, what the command started too (install's pip and the
    build backend it runs, git clone's submodule clones); otherwise it stays in flashdoctor's process group
    and only the command is killed."""
    proc: subprocess.Popen[str] | None = None
    try:
        with interrupts_held():  # a signal here is raised once proc holds the child
            proc = spawn(
                cmd, env, own_group=own_group, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc is not None:  # killed (an exception) unless communicate reaped it
            with interrupts_held():  # a second signal must not stop the kill half-way (a restore would race)
                stop_process(proc, own_group)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run(
    cmd: list[str],
    env: Mapping[str, str] | None = None,
    timeout: float = SUBPROCESS_TIMEOUT,
    own_group: bool = False,
) -> tuple[int, str, str]:
    """Run a command (run_process, ``own_group`` as there); a missing executable or a timeout is a result
    (rc 127 / 124), never an exception."""
    try:
        p = run_process(cmd, env, timeout, own_group)
    except FileNotFoundError:
        return 127, "", f"{cmd[0]}: not found"
    except PermissionError as exc:
        return 126, "", f"{cmd[0]}: {exc}"
    except subprocess.TimeoutExpired:
        return 124, "", f"{cmd[0]}: timed out after {timeout:.0f}s"
    except OSError as exc:
        return 126, "", f"{cmd[0]}: {exc}"
    return p.returncode, p.stdout, p.stderr


# -- NVIDIA ---------------------------------------------------------------------------------------
LEGACY_MIG = "MIG-GPU-"  # a MIG device named as before driver R470: MIG-GPU-<gpu uuid>/<gi>/<ci>


def _driver_from_files() -> str | None:
    for path in ("/sys/module/nvidia/version", "/proc/driver/nvidia/version"):
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
        except OSError:
            continue
        m = re.search(r"(\d+\.\d+(?:\.\d+)?)", text)
        if m:
            return m.group(1)
    return None


def visible_filter(
    gpus: list[GPU],
    cuda_visible: str | None,
    migs: Sequence[GPU] = (),
    legacy_migs: Mapping[str, GPU] | None = None,
) -> list[GPU]:
    """Apply CUDA_VISIBLE_DEVICES (indices, GPU-UUIDs, MIG-UUIDs of ``migs`` (the MIG devices, each with its
    parent's index and capability) or unique UUID prefixes, and the pre-R470 names of MIG devices,
    ``MIG-GPU-<uuid>/<gi>/<ci>``, keys of ``legacy_migs`` (upper case); the list stops at the first invalid
    entry, as the CUDA runtime does). Visible GPUs are renumbered from 0."""
    if cuda_visible is None:
        return gpus
    out: list[GPU] = []
    for tok in (t.strip() for t in cuda_visible.split(",")):
        if not tok:
            break
        match: GPU | None = None
        if re.fullmatch(r"\d+", tok):
            match = next((g for g in gpus if g.index == int(tok)), None)
        elif tok.upper().startswith(LEGACY_MIG):
            match = (legacy_migs or {}).get(tok.upper())
        elif tok.upper().startswith(("GPU-", "MIG-")):
            pool = migs if tok.upper().startswith("MIG-") else gpus
            cands = [g for g in pool if g.uuid and g.uuid.upper().startswith(tok.upper())]
            match = cands[0] if len(cands) == 1 else None
        if match is None or match in out:
            break
        out.append(match)
    return [
        GPU(index=i, name=g.name, capability=g.capability, memory_gb=g.memory_gb, uuid=g.uuid)
        for i, g in enumerate(out)
    ]


def _nvml_str(value: object) -> str:
    """A string NVML gave: bytes from old nvidia-ml-py versions, str from newer ones."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _mig_devices(pynvml: Any, handle: Any, gpu: GPU) -> list[tuple[GPU, str | None]]:
    """The MIG devices of a GPU in MIG mode (none for one without MIG: NVML says "not supported"), each
    the GPU itself (index, capability) with the device's name, memory and MIG-UUID, and its pre-R470 name
    (MIG-GPU-<uuid>/<gi>/<ci>, upper case; None where NVML does not give the instance ids)."""
    try:
        if pynvml.nvmlDeviceGetMigMode(handle)[0] != pynvml.NVML_DEVICE_MIG_ENABLE:
            return []
        slots = pynvml.nvmlDeviceGetMaxMigDeviceCount(handle)
    except pynvml.NVMLError:
        return []
    out = []
    for j in range(slots):
        try:
            h = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, j)
            name = pynvml.nvmlDeviceGetName(h)
            uuid = pynvml.nvmlDeviceGetUUID(h)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h).total / 2**30
        except pynvml.NVMLError:  # an empty slot
            continue
        try:
            ids = (pynvml.nvmlDeviceGetGpuInstanceId(h), pynvml.nvmlDeviceGetComputeInstanceId(h))
            legacy: str | None = f"MIG-{gpu.uuid}/{ids[0]}/{ids[1]}".upper()
        except (pynvml.NVMLError, AttributeError):  # AttributeError: an nvidia-ml-py without them
            legacy = None
        mig = dataclasses.replace(
            gpu,
            name=_nvml_str(name),
            memory_gb=round(mem, 1),
            uuid=_nvml_str(uuid),
        )
        out.append((mig, legacy))
    return out


def probe_nvidia(environ: Mapping[str, str]) -> Probed:
    """Driver version (sysfs/proc first, then NVML), the driver's CUDA, and every GPU via NVML."""
    r = Probed()
    driver = _driver_from_files()
    gpus: list[GPU] = []
    migs: list[tuple[GPU, str | None]] = []
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    names_migs = visible is not None and "MIG-" in visible.upper()  # MIG devices matter only then
    driver_cuda: str | None = None
    try:
        import pynvml
    except ImportError:
        pynvml = None
        r.notes.append("nvidia-ml-py is not importable: GPUs not enumerated")
    if pynvml is not None:
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            # No driver / library not found is the normal state of a CPU machine.
            r.notes.append(f"NVML: {exc}")
        else:
            try:
                if driver is None:
                    try:
                        driver = _nvml_str(pynvml.nvmlSystemGetDriverVersion())
                    except pynvml.NVMLError as exc:
                        r.notes.append(f"NVML driver version: {exc}")
                        r.unknown.add("driver")
                try:
                    cv = pynvml.nvmlSystemGetCudaDriverVersion_v2()
                    driver_cuda = f"{cv // 1000}.{(cv % 1000) // 10}"
                except pynvml.NVMLError as exc:
                    r.notes.append(f"NVML CUDA driver version: {exc}")
                try:
                    count = pynvml.nvmlDeviceGetCount()
                except pynvml.NVMLError as exc:
                    # the driver answers but cannot list its GPUs (one fallen off the bus): unknown, not none
                    r.notes.append(f"NVML GPU count: {exc}")
                    r.unknown.add("gpus")
                    count = 0
                for i in range(count):
                    try:
                        h = pynvml.nvmlDeviceGetHandleByIndex(i)
                        name = _nvml_str(pynvml.nvmlDeviceGetName(h))
                        major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(h)
                        mem = pynvml.nvmlDeviceGetMemoryInfo(h).total / 2**30
                        uuid = _nvml_str(pynvml.nvmlDeviceGetUUID(h))
                        gpus.append(
                            GPU(
                                index=i,
                                name=name,
                                capability=f"{major}.{minor}",
                                memory_gb=round(mem, 1),
                                uuid=uuid,
                            )
                        )
                        if names_migs:
                            migs.extend(_mig_devices(pynvml, h, gpus[-1]))
                    except pynvml.NVMLError as exc:
                        r.notes.append(f"NVML GPU {i}: {exc}")
            finally:
                with contextlib.suppress(pynvml.NVMLError):
                    pynvml.nvmlShutdown()
    if driver is None and not gpus and not r.unknown:
        r.values.update(driver=None, gpus=(), driver_cuda=None)
        return r
    r.values["driver"] = driver
    if driver_cuda is None and driver is not None:
        from flashdoctor.knowledge import driver_max_cuda

        driver_cuda = driver_max_cuda(driver)
    r.values["driver_cuda"] = driver_cuda
    if driver_cuda is None and "driver" in r.unknown:
        r.unknown.add("driver_cuda")
    legacy = {name: mig for mig, name in migs if name is not None}
    r.values["gpus"] = tuple(visible_filter(gpus, visible, [mig for mig, _ in migs], legacy))
    if visible is not None:
        r.notes.append(f"CUDA_VISIBLE_DEVICES={visible}")
        if LEGACY_MIG in visible.upper() and any(name is None for _, name in migs):
            r.unknown.add("gpus")
            r.notes.append(
                f"CUDA_VISIBLE_DEVICES names MIG devices as {LEGACY_MIG}<uuid>/<gi>/<ci>, and NVML did not give"
                " the GPU and compute instance ids of every MIG device: which GPUs are visible is unknown"
            )
    return r


# -- CUDA toolkit and build tools --------------------------------------------------------------------
def nvcc_version(path: str, timeout: float = SUBPROCESS_TIMEOUT) -> str | None:
    rc, out, _ = run([path, "--version"], timeout=timeout)
    if rc != 0:
        return None
    m = re.search(r"release (\d+\.\d+)", out)
    return m.group(1) if m else None


def _exe(name: str) -> str:
    return name + ".exe" if os.name == "nt" else name


def build_cuda_home(environ: Mapping[str, str]) -> tuple[str | None, str]:
    """The CUDA_HOME a torch extension build would use, and why: torch.utils.cpp_extension takes
    CUDA_HOME, then CUDA_PATH, then the directory of `nvcc` on PATH, then /usr/local/cuda."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if environ.get(var):
            return environ[var], var
    which = shutil.which(_exe("nvcc"), path=environ.get("PATH"))
    if which:
        return os.path.dirname(os.path.dirname(os.path.realpath(which))), "nvcc on PATH"
    if os.path.exists("/usr/local/cuda"):
        return "/usr/local/cuda", "default /usr/local/cuda"
    return None, "none"


def probe_toolkit(environ: Mapping[str, str], timeout: float = SUBPROCESS_TIMEOUT) -> Probed:
    """Every nvcc found and the one a build would use. Their ``--version`` runs together, so that several
    that hang cost one ``timeout``, not one each."""
    r = Probed()
    cands: list[str] = []
    which = shutil.which(_exe("nvcc"), path=environ.get("PATH"))
    if which:
        cands.append(which)
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if environ.get(var):
            cands.append(os.path.join(environ[var], "bin", _exe("nvcc")))
    cands += [
        "/usr/local/cuda/bin/nvcc",
        *sorted(glob.glob("/usr/local/cuda-*/bin/nvcc")),
        "/opt/cuda/bin/nvcc",
    ]
    seen: dict[str, str] = {}
    for c in cands:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            real = os.path.realpath(c)
            seen.setdefault(real, c)
    home, why = build_cuda_home(environ)
    build_nvcc = os.path.join(home, "bin", _exe("nvcc")) if home else None
    build_found = bool(build_nvcc and os.path.isfile(build_nvcc))
    asked = list(seen.values())
    if build_nvcc and build_found and os.path.realpath(build_nvcc) not in seen:
        asked.append(build_nvcc)  # one that is not executable: asked too, its failure read as unknown
    if len(asked) > 1:
        with ThreadPoolExecutor(max_workers=len(asked)) as pool:
            version = dict(zip(asked, pool.map(lambda p: nvcc_version(p, timeout), asked)))
    else:  # the usual machine: one nvcc (or none), asked without starting a thread
        version = {p: nvcc_version(p, timeout) for p in asked}
    nvccs = [Nvcc(path=p, version=version[p]) for p in seen.values()]
    r.values["cuda_home"] = home
    r.values["cuda_home_headers"] = (
        None if home is None else os.path.isfile(os.path.join(home, "include", "cuda_runtime.h"))
    )
    r.values["nvccs"] = tuple(nvccs)
    if build_nvcc and build_found:
        real = os.path.realpath(build_nvcc)
        ver = version[seen[real]] if real in seen else version[build_nvcc]
        r.values["nvcc"] = ver
        r.values["nvcc_path"] = build_nvcc
        if ver is None:  # there is one, but `nvcc --version` failed, hung or printed no "release X.Y"
            r.unknown.add("nvcc")
            r.notes.append(f"{build_nvcc} --version: its release could not be read")
    else:
        r.values["nvcc"] = None
        r.values["nvcc_path"] = None
        if home:
            r.notes.append(f"CUDA_HOME ({why}) = {home} has no bin/nvcc")
    return r


def probe_gcc(environ: Mapping[str, str]) -> Probed:
    r = Probed()
    cxx = environ.get("CXX") or "g++"
    rc, out, err = run([cxx, "-dumpfullversion", "-dumpversion"], env=environ)
    if rc == 0 and re.match(r"\d+", out.strip()):
        r.values["gcc"] = out.strip()
    elif rc == 127:
        r.values["gcc"] = None
    else:
        r.unknown.add("gcc")
        r.notes.append(f"{cxx}: {err.strip()[:200]}")
    return r


def probe_ninja(environ: Mapping[str, str], python: str) -> Probed:
    bindir = os.path.dirname(python)
    found = shutil.which(_exe("ninja"), path=environ.get("PATH")) or shutil.which(_exe("ninja"), path=bindir)
    return Probed(values={"ninja": bool(found)})


CGROUP_ROOT = "/sys/fs/cgroup"  # a container's own cgroup (v2: its namespace root; v1: per controller)


def _read_cgroup(root: str, *names: str) -> list[str] | None:
    """The stripped contents of files under a cgroup root, or None where one is missing or unreadable."""
    out = []
    for name in names:
        try:
            with open(os.path.join(root, name)) as fh:
                out.append(fh.read(4096).strip())
        except (OSError, UnicodeDecodeError):
            return None
    return out


def _cgroup_memory_gb(root: str = CGROUP_ROOT) -> float | None:
    """Memory still allowed by a cgroup limit (Docker/Kubernetes), if any."""
    for limit_file, usage_file in (
        ("memory.max", "memory.current"),
        ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"),
    ):
        found = _read_cgroup(root, limit_file, usage_file)
        if found is None or not found[1].isdigit():
            continue
        limit, usage = found[0], int(found[1])
        if limit == "max" or not limit.isdigit() or int(limit) >= 2**60:
            return None
        return max(0.0, (int(limit) - usage) / 2**30)
    return None


def _cgroup_cpus(root: str = CGROUP_ROOT) -> int | None:
    """CPUs a cgroup CPU quota allows (Docker's --cpus, a Kubernetes CPU limit), rounded up; None without one.
    A quota spreads over every core the process may use, so jobs sized from the cores alone run throttled."""
    for files in (("cpu.max",), ("cpu/cpu.cfs_quota_us", "cpu/cpu.cfs_period_us")):
        found = _read_cgroup(root, *files)
        if found is None:
            continue
        words = " ".join(found).split()  # v2: "QUOTA PERIOD" in one file; v1: one number in each of two
        if len(words) != 2 or not all(w.isdigit() for w in words) or int(words[1]) == 0:
            return None  # "max" / -1: no quota; anything else: not a quota we can read
        quota, period = int(words[0]), int(words[1])
        return max(1, -(-quota // period))
    return None


def probe_resources(environ: Mapping[str, str]) -> Probed:
    r = Probed()
    cpus: int | None
    try:
        cpus = len(os.sched_getaffinity(0))  # type: ignore[attr-defined,unused-ignore]
    except (AttributeError, OSError):
        cpus = os.cpu_count()
    quota = _cgroup_cpus()
    if quota is not None and cpus is not None and quota < cpus:
        r.notes.append(f"a cgroup CPU quota allows {quota} of the {cpus} CPUs this process may run on")
        cpus = quota
    r.values["cpus"] = cpus
    mem: float | None = None
    try:
        with open("/proc/meminfo") as fh:
            m = re.search(r"^MemAvailable:\s+(\d+) kB", fh.read(), re.M)
            if m:
                mem = int(m.group(1)) / 2**20
    except OSError:
        pass
    cg = _cgroup_memory_gb()
    if cg is not None:
        mem = cg if mem is None else min(mem, cg)
    if mem is None:
        r.unknown.add("memory_gb")
    r.values["memory_gb"] = None if mem is None else round(mem, 1)
    build_dir = environ.get("TMPDIR") or tempfile.gettempdir()
    try:
        r.values["disk_free_gb"] = round(shutil.disk_usage(build_dir).free / 2**30, 1)
    except OSError as exc:
        r.unknown.add("disk_free_gb")
        r.notes.append(f"disk usage of {build_dir}: {exc}")
    return r
