"""`flashdoctor check --distributed` as real processes: torchrun with 4 CPU ranks over gloo on
loopback, and hand-launched env:// ranks for the timeout paths. Every wait is bounded."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import pytest

from flashdoctor.cli import main
from flashdoctor.cli.check import CLUSTER_ONLY
from flashdoctor.knowledge.schemas import schema_validator
from tests.github_action.runner import workflow_commands
from tests.support.hung_python import gone, hung_python, started
from tests.support.paths import ROOT, SCRIPTS, TARGETS

RANK_EXIT = str(SCRIPTS / "rank_exit.py")
LAUNCHER_VARS = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
)


def base_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in LAUNCHER_VARS and not k.startswith(("SLURM_", "TORCHELASTIC_", "FLASHDOCTOR_"))
    }
    env["PYTHONPATH"] = str(ROOT)
    env["OMP_NUM_THREADS"] = "1"
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


FD = [sys.executable, "-m", "flashdoctor", "check", "--distributed"]


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """This machine as a target spec, and two variants of it: another torch; a broken flash-attn."""
    d = tmp_path_factory.mktemp("targets")
    base = d / "base.json"
    subprocess.run(
        [sys.executable, "-m", "flashdoctor", "check", "--save-target", str(base)],
        env=base_env(),
        capture_output=True,
        timeout=60,
        check=True,
    )
    spec = json.loads(base.read_text())
    other_torch = {**spec, "torch": "2.12.0+cpu"}
    broken = {
        **spec,
        "installed": {
            "flash-attn": {
                "version": "2.8.3",
                "import_ok": False,
                "import_error": "ImportError: libcudart.so.12: cannot open shared object file: No such file or directory",
            }
        },
    }
    (d / "other-torch.json").write_text(json.dumps(other_torch))
    (d / "broken.json").write_text(json.dumps(broken))
    return {
        "base_torch": spec["torch"],
        "other_torch": str(d / "other-torch.json"),
        "broken": str(d / "broken.json"),
    }


def rank_codes(rc_dir: Path, world: int) -> dict[int, int]:
    return {
        r: int((rc_dir / f"rank-{r}.rc").read_text())
        for r in range(world)
        if (rc_dir / f"rank-{r}.rc").exists()
    }


def validate(doc: dict[str, Any]) -> None:
    schema_validator("cluster-report.schema.json").validate(doc)


@pytest.mark.timeout(120)
@pytest.mark.system
@pytest.mark.slow
def test_torchrun_four_ranks_with_drift_and_a_failing_rank(tmp_path: Path, targets: dict[str, str]) -> None:
    out = tmp_path / "cluster.json"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "4",
        RANK_EXIT, str(tmp_path / "rc"),
        *FD, "--timeout", "60", "--output", str(out),
        "--target-for-rank", f"1={targets['other_torch']}",
        "--target-for-rank", f"3={targets['broken']}",
    ]  # fmt: skip
    p = subprocess.run(cmd, env=base_env(), capture_output=True, text=True, timeout=100)
    assert p.returncode != 0
    # Every rank exits non-zero, not only the failing one.
    assert rank_codes(tmp_path / "rc", 4) == {0: 1, 1: 1, 2: 1, 3: 1}, p.stderr[-3000:]
    # One report, from rank 0.
    assert p.stdout.count("flashdoctor cluster check: 4 ranks on 1 host") == 1, p.stdout + p.stderr[-3000:]
    assert "cluster: FAILED" in p.stdout
    assert "torch: " + targets["base_torch"] + " on 3 of 4; odd one(s) out: rank 1 2.12.0+cpu" in p.stdout

    doc = json.loads(out.read_text())
    validate(doc)
    # -o FILE holds the document --json prints: in its result envelope, with the interpreter.
    schema_validator("envelope.schema.json").validate(doc)
    assert (doc["command"], doc["status"], doc["interpreter"]["reason"]) == ("check", "failed", "python -m")
    assert (doc["launcher"], doc["world_size"], doc["transport"], doc["exit_code"]) == (
        "torchrun",
        4,
        "gloo",
        1,
    )
    assert [r["status"] for r in doc["ranks"]] == ["ok", "ok", "ok", "failed"]
    assert [r["source"] for r in doc["ranks"]] == [
        "probe",
        f"target:{targets['other_torch']}",
        "probe",
        f"target:{targets['broken']}",
    ]
    assert all(r["check"]["schema"] == "flashdoctor/check/1" for r in doc["ranks"])
    drift = {d["field"]: d for d in doc["drift"]}
    assert set(drift) == {"torch", "flash-attn"}
    assert (drift["torch"]["majority"], drift["torch"]["odd_ranks"]) == (targets["base_torch"], [1])
    assert (drift["flash-attn"]["majority"], drift["flash-attn"]["odd_ranks"]) == ("not installed", [3])
    failed = [f for f in doc["findings"] if f["code"] == "cluster-rank-failed"]
    assert (
        len(failed) == 1
        and failed[0]["subject"] == "rank 3"
        and "flash-attn-import-error" in failed[0]["message"]
    )


@pytest.mark.timeout(120)
@pytest.mark.system
@pytest.mark.slow
def test_torchrun_static_rendezvous_clean_cluster_with_smoke_exits_zero_everywhere(tmp_path: Path) -> None:
    port = free_port()
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "4",
        "--master-addr", "127.0.0.1", "--master-port", str(port),
        RANK_EXIT, str(tmp_path / "rc"), *FD, "--json", "--smoke",
    ]  # fmt: skip
    p = subprocess.run(cmd, env=base_env(), capture_output=True, text=True, timeout=100)
    assert p.returncode == 0, p.stderr[-3000:]
    assert rank_codes(tmp_path / "rc", 4) == {0: 0, 1: 0, 2: 0, 3: 0}
    doc = json.loads(p.stdout)  # only rank 0 writes to stdout
    validate(doc)
    assert doc["exit_code"] == 0 and doc["drift"] == [] and doc["rendezvous"] == f"127.0.0.1:{port}"
    assert [r["status"] for r in doc["ranks"]] == ["ok"] * 4
    assert [f["code"] for f in doc["findings"]] == ["cluster-ranks-ok"]
    # --smoke ran the real smoke test on every rank; without a GPU it is skipped, which passes.
    assert doc["smoke"] is True
    for r in doc["ranks"]:
        assert (r["smoke"]["schema"], r["smoke"]["status"], r["smoke_passed"]) == (
            "flashdoctor/smoke/1",
            "skipped",
            None,
        )


def launch_env_ranks(
    ranks: list[int], world: int, port: int, args: list[str], extra: dict[str, str] | None = None
) -> list[subprocess.Popen[str]]:
    procs = []
    for r in ranks:
        env = base_env()
        env.update(
            RANK=str(r),
            WORLD_SIZE=str(world),
            LOCAL_RANK=str(r),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
        )
        env.update(extra or {})
        procs.append(
            subprocess.Popen([*FD, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    return procs


def finish(procs: list[subprocess.Popen[str]], bound: float) -> list[tuple[int, str, str]]:
    out = []
    deadline = time.monotonic() + bound
    for p in procs:
        try:
            so, se = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise AssertionError("a rank hung past the bound") from None
        out.append((p.returncode, so, se))
    return out


def free_slurm_job_id() -> tuple[int, int]:
    """A job id whose derived rendezvous port (15000 + id % 10000) is free here."""
    for job in range(4242, 4242 + 10000, 37):
        port = 15000 + job % 10000
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return job, port
    raise AssertionError("no free port in 15000-24999")


@pytest.mark.timeout(60)
@pytest.mark.system
@pytest.mark.slow
def test_slurm_tasks_without_torchrun() -> None:
    # What srun gives each task: no MASTER_ADDR/PORT, the rendezvous comes from the step's node list and
    # the job id; the node name from SLURMD_NODENAME.
    job, port = free_slurm_job_id()
    procs = []
    for r in range(2):
        env = base_env()
        env.update(
            SLURM_PROCID=str(r),
            SLURM_NTASKS="2",
            SLURM_LOCALID=str(r),
            SLURM_NODEID="0",
            SLURM_JOB_ID=str(job),
            SLURM_STEP_ID="0",
            SLURM_STEP_NODELIST="localhost",
            SLURM_JOB_NODELIST="localhost,gpu[01-03]",
            SLURMD_NODENAME="nodeA",
        )
        procs.append(
            subprocess.Popen(
                [*FD, "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    results = finish(procs, 45)
    assert [rc for rc, _, _ in results] == [0, 0], results[0][2][-2000:]
    doc = json.loads(results[0][1])
    validate(doc)
    assert (doc["launcher"], doc["rendezvous"], doc["hosts"]) == ("slurm", f"localhost:{port}", ["nodeA"])
    assert [(r["rank"], r["local_rank"], r["node_rank"], r["status"]) for r in doc["ranks"]] == [
        (0, 0, 0, "ok"),
        (1, 1, 0, "ok"),
    ]


@pytest.mark.timeout(60)
@pytest.mark.system
@pytest.mark.slow
def test_every_rank_reports_an_install_that_was_killed(tmp_path: Path) -> None:
    """A complete backup of the ranks' environment whose install is gone (killed before it verified or
    restored): a plain `check` reports ``install-interrupted``; each rank's check did not."""
    from flashdoctor.actions.cache import WheelCache, default_cache_root
    from flashdoctor.actions.install.rollback import Backup

    extra = {"FLASHDOCTOR_CACHE_DIR": str(tmp_path / "cache")}
    root = WheelCache(default_cache_root(extra)).backups() / "20260101-000000-1"
    root.mkdir(parents=True)
    left = Backup("flash-attn", "2.8.2", root, (), (), (), environment=sys.prefix, installing="2.8.3")
    (root / "manifest.json").write_text(json.dumps(left.to_json()))
    procs = launch_env_ranks([0, 1], 2, free_port(), ["--json", "--no-import-test"], extra)
    results = finish(procs, 45)
    assert [rc for rc, _, _ in results] == [0, 0], results[0][2][-2000:]
    doc = json.loads(results[0][1])
    validate(doc)
    for rank in doc["ranks"]:
        codes = [f["code"] for f in rank["check"]["findings"]]
        assert codes.count("install-interrupted") == 1, (rank["rank"], codes)


@pytest.mark.timeout(60)
@pytest.mark.system
@pytest.mark.slow
def test_without_rank_zero_every_rank_gives_up_and_says_why() -> None:
    port = free_port()
    results = finish(launch_env_ranks([1, 2], 3, port, ["--timeout", "2"]), 45)
    for rc, _, err in results:
        assert rc == 1
        assert f"no rendezvous store at 127.0.0.1:{port} within 2 s (rank 0 hosts it)" in err
        assert "Traceback" not in err


@pytest.mark.timeout(90)
@pytest.mark.system
@pytest.mark.slow
def test_missing_and_hung_ranks_are_named_within_the_bounds(tmp_path: Path) -> None:
    # 4 of 5 ranks start (rank 0 hosts the store itself: no torchrun agent); rank 4 never comes, and
    # rank 2's probe hangs: its target spec is a FIFO whose writer (this test) holds it open and never
    # writes, so reading it blocks forever (a FIFO with no writer at all is refused at once: test_rank.py).
    fifo = tmp_path / "never-written.json"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # O_RDWR: a writer without waiting for a reader
    args = ["--timeout", "3", "--rank-timeout", "3", "--json", "--target-for-rank", f"2={fifo}"]
    t0 = time.monotonic()
    try:
        procs = launch_env_ranks([0, 1, 2, 3], 5, free_port(), args, {"LOCAL_WORLD_SIZE": "5"})
        results = finish(procs, 60)
    finally:
        os.close(writer)
    elapsed = time.monotonic() - t0
    assert [rc for rc, _, _ in results] == [1, 1, 1, 1]  # the hung rank exits too
    assert elapsed < 45  # 3 s + 3 s bounds + start-up on a loaded 2-core box; never a hang
    assert "rank 0 reports it unfinished" in results[2][2]
    assert [out for _, out, _ in results[1:]] == ["", "", ""]  # the report is rank 0's alone
    doc = json.loads(results[0][1])
    validate(doc)
    assert (doc["schema"], doc["command"], doc["status"], doc["exit_code"]) == (
        "flashdoctor/cluster/1",
        "check",
        "failed",
        1,
    )
    assert doc["launcher"] == "env"
    assert [r["status"] for r in doc["ranks"]] == ["ok", "ok", "unfinished", "ok", "missing"]
    host = socket.gethostname()
    assert (doc["ranks"][4]["host"], doc["ranks"][4]["host_inferred"]) == (host, True)  # its node's block
    msgs = {f["code"]: f["message"] for f in doc["findings"]}
    assert msgs["cluster-rank-missing"].startswith("rank 4 never joined within 3 s")
    assert msgs["cluster-rank-unfinished"].startswith(
        f"rank 2 (host {host}) joined but sent no result within 3 s"
    )


# -- usage errors: before any rank waits -------------------------------------------------------------------
def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    return int(exc.value.code or 0), capsys.readouterr().err


@pytest.fixture
def no_launcher(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for k in [*LAUNCHER_VARS, "SLURM_PROCID", "SLURM_NTASKS", "FLASHDOCTOR_TARGET"]:
        monkeypatch.delenv(k, raising=False)
    return monkeypatch


def test_distributed_without_a_launcher(
    no_launcher: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_main(["check", "--distributed"], capsys)
    assert code == 2 and "--distributed needs a launcher" in err and "torchrun --nproc-per-node" in err


@pytest.mark.parametrize("option", CLUSTER_ONLY, ids=lambda p: p.opts[-1])
def test_cluster_options_need_distributed(
    no_launcher: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    option: click.Option,
) -> None:
    """Every option of the cluster group, as declared (a new one too), is a usage error without
    --distributed, named as the user wrote it (--join-timeout was once ignored in silence)."""
    no_launcher.chdir(tmp_path)  # -o 5 writes nowhere
    args = [option.opts[-1]] if option.is_flag else [option.opts[-1], "5"]
    code, err = run_main(["check", *args], capsys)
    assert code == 2 and f"{option.opts[-1]}: options of --distributed" in err and "warning" not in err


def test_the_cluster_group_is_what_check_declares() -> None:
    from flashdoctor.cli.check import check

    declared = {p.name: p.opts for p in check.params}
    assert {p.name: p.opts for p in CLUSTER_ONLY}.items() <= declared.items()
    assert {"target_for_rank", "output", "join_timeout", "rank_timeout", "legacy_join_timeout"} <= {
        p.name for p in CLUSTER_ONLY
    }


def test_bad_target_for_rank(no_launcher: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_main(["check", "--distributed", "--target-for-rank", "x.json"], capsys)
    assert code == 2 and "expected RANK=FILE" in err


@pytest.mark.parametrize("option", ["--join-timeout", "--timeout"])
@pytest.mark.parametrize("seconds", ["inf", "1e15"])
def test_a_join_timeout_torch_cannot_hold_is_a_usage_error(
    no_launcher: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], option: str, seconds: str
) -> None:
    # It becomes the store's and the gloo group's timeout: "inf" crashed (exit 3, OverflowError), 1e10
    # made torch time out at once ("rank 0 cannot host the rendezvous store").
    for k, v in {"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}.items():
        no_launcher.setenv(k, v)
    code, err = run_main(["check", "--distributed", option, seconds], capsys)
    assert code == 2 and "0.1<=x<=604800" in err, err


def test_save_target_needs_a_rank_placeholder(
    no_launcher: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for k, v in {"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}.items():
        no_launcher.setenv(k, v)
    code, err = run_main(["check", "--distributed", "--save-target", "node.json"], capsys)
    assert code == 2 and "{rank}" in err


@pytest.mark.system
def test_the_check_path_stays_torch_free() -> None:
    # torch.distributed is imported on the --distributed path only: a plain check (and loading the
    # cluster modules) must not pay for torch.
    code = (
        "import sys\n"
        "import flashdoctor.actions.cluster.launch, flashdoctor.decide.cluster, flashdoctor.actions.cluster.protocol\n"
        "import flashdoctor.actions.cluster.rank, flashdoctor.actions.cluster.run, flashdoctor.render.cluster\n"
        "from flashdoctor.cli import cli\n"
        "rc = cli.main(['check', '--no-import-test'], standalone_mode=False)\n"
        "print(rc, 'torch' in sys.modules)\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], env=base_env(), capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "0 False"


@pytest.mark.timeout(120)
@pytest.mark.system
@pytest.mark.slow
def test_gpu_cluster_script_runs_on_cpu_ranks(tmp_path: Path) -> None:
    # The issue-10 script, with 2 CPU ranks: the clean run passes, the drift run fails on every rank.
    env = {**base_env(), "NPROC": "2", "PYTHON": sys.executable}
    p = subprocess.run(
        ["bash", str(SCRIPTS / "gpu_cluster.sh"), str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    out = tmp_path / "out"
    assert rank_codes(out / "clean" / "rc", 2) == {0: 0, 1: 0}
    assert rank_codes(out / "drift" / "rc", 2) == {0: 1, 1: 1}
    clean = json.loads((out / "clean" / "cluster.json").read_text())
    drift = json.loads((out / "drift" / "cluster.json").read_text())
    validate(clean)
    validate(drift)
    assert clean["exit_code"] == 0 and drift["exit_code"] == 1
    assert {d["field"] for d in drift["drift"]} >= {"torch", "flash-attn"}
    summary = (out / "summary.txt").read_text()
    assert "== clean: torchrun exit 0" in summary and "== drift: torchrun exit 1" in summary
    assert "flashdoctor cluster check: 2 ranks" in (out / "clean" / "report.txt").read_text()


def test_unwritable_output_is_a_usage_error_before_waiting(
    no_launcher: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for k, v in {"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}.items():
        no_launcher.setenv(k, v)
    code, err = run_main(["check", "--distributed", "-o", str(tmp_path / "no" / "such" / "c.json")], capsys)
    assert code == 2 and "is not a writable directory" in err


@pytest.mark.timeout(90)
@pytest.mark.system
@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigterm", "unfinished"])
def test_a_rank_leaves_no_probe_running(tmp_path: Path, how: str) -> None:
    """The probe's interpreter runs in a session of its own, so neither a launcher's stop nor a terminal's
    Ctrl-C reaches it. A rank stopped mid-check (SIGTERM), or one that gave up on its hung probe
    (--rank-timeout), left it running after the rank had exited."""
    hang, pidfile = hung_python(tmp_path)
    rank_timeout = "2" if how == "unfinished" else "60"
    args = ["--python", str(hang), "--join-timeout", "5", "--rank-timeout", rank_timeout]
    (proc,) = launch_env_ranks([0], 1, free_port(), args)
    try:
        child = started(pidfile)
        if how == "sigterm":
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=40)  # the probe's own timeout is longer
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == (143 if how == "sigterm" else 1), err
    assert "Traceback" not in err
    assert gone(child), "the probe's interpreter outlived the rank"


def three_ranks_with_rank_one_running(script: str) -> list[subprocess.Popen[str]]:
    """Ranks 0 and 2 as the CLI, rank 1 as ``script`` (the CLI with some part replaced), all with --json."""
    port = free_port()
    args = ["--join-timeout", "10", "--json"]
    procs = launch_env_ranks([0, 2], 3, port, args)
    env = base_env()
    env.update(RANK="1", WORLD_SIZE="3", LOCAL_RANK="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    procs.insert(
        1,
        subprocess.Popen(
            [sys.executable, "-c", script, "check", "--distributed", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ),
    )
    return procs


# A rank whose work returns a result of some MB (a broken rank; a hostile one sends what it likes): the CLI
# run as a rank, with only its work replaced.
OVERSIZED_RANK = (
    "import sys\n"
    "import flashdoctor.actions.cluster.run as run\n"
    "from flashdoctor.decide.cluster import RankResult\n"
    "run.run_rank = lambda launch, *a: RankResult(rank=launch.rank, host='big', error='x' * 5_000_000)\n"
    "from flashdoctor.cli import main\n"
    "main(sys.argv[1:])\n"
)


@pytest.mark.timeout(90)
@pytest.mark.system
@pytest.mark.slow
def test_an_oversized_result_is_that_ranks_error_not_rank_zeros_memory() -> None:
    # The gloo gather padded every rank's buffer to the largest payload: one rank's 5 MB made rank 0 hold
    # 5 MB for every rank of the world. Now no rank posts more than the limit, and rank 0 reads no more.
    procs = three_ranks_with_rank_one_running(OVERSIZED_RANK)
    t0 = time.monotonic()
    results = finish(procs, 60)
    assert [rc for rc, _, _ in results] == [1, 1, 1], results[0][2][-2000:] + results[1][2][-2000:]
    assert time.monotonic() - t0 < 45  # nobody waited for the bytes that were never sent
    doc = json.loads(results[0][1])
    validate(doc)
    assert doc["transport"] == "gloo"  # the gloo group still formed
    assert [r["status"] for r in doc["ranks"]] == ["ok", "error", "ok"]
    err = doc["ranks"][1]["error"]
    assert "5,000,2" in err and "over the 4 MiB" in err and "x" * 100 not in err
    errors = [f for f in doc["findings"] if f["code"] == "cluster-rank-error"]
    assert [f["subject"] for f in errors] == ["rank 1"]


# A rank that speaks another wire format (another flashdoctor version, a bug, anyone who can join the
# rendezvous): its store copy is not a result, and as soon as the gloo group is formed it announces 4 KB
# (the size exchange of an older gather), then sends rank 0 twice as many bytes.
LYING_RANK = (
    "import sys\n"
    "import flashdoctor.actions.cluster.protocol as protocol\n"
    "import flashdoctor.actions.cluster.torch_glue as glue\n"
    "def post_done(self, worker):\n"
    "    self.store.set(self.keys.done(self.launch.rank), '[2, \"another format\"]')\n"
    "    self.store.add(self.keys.finished, 1)\n"
    "protocol._Session.post_done = post_done\n"
    "formed = glue.GlooCollective.__init__\n"
    "def lie(self, *args):\n"
    "    formed(self, *args)\n"
    "    torch, dist = self.torch, self.dist\n"
    "    sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(dist.get_world_size())]\n"
    "    dist.all_gather(sizes, torch.tensor([4096], dtype=torch.int64))\n"
    "    dist.send(torch.zeros(8192, dtype=torch.uint8), dst=0)\n"
    "glue.GlooCollective.__init__ = lie\n"
    "from flashdoctor.cli import main\n"
    "main(sys.argv[1:])\n"
)


@pytest.mark.timeout(90)
@pytest.mark.system
@pytest.mark.slow
def test_a_rank_that_sends_another_size_than_it_announced_is_that_ranks_error() -> None:
    # gloo aborts the receiving process (std::terminate) on a message longer than the buffer it posted:
    # rank 0 died, and nobody got a report. Rank 0 now posts no receive over gloo: results come from the store.
    procs = three_ranks_with_rank_one_running(LYING_RANK)
    results = finish(procs, 70)
    assert results[0][0] == 1, results[0][2][-2000:]
    assert "terminate called" not in results[0][2]
    assert [rc for rc, _, _ in results] == [1, 1, 1], results[1][2][-2000:]
    doc = json.loads(results[0][1])
    validate(doc)
    assert doc["transport"] == "gloo"  # the group still formed and carried the outcome
    assert [r["status"] for r in doc["ranks"]] == ["ok", "error", "ok"]
    assert "sent a result rank 0 cannot read" in doc["ranks"][1]["error"]
    assert [f["subject"] for f in doc["findings"] if f["code"] == "cluster-rank-error"] == ["rank 1"]


@pytest.mark.timeout(120)
@pytest.mark.system
@pytest.mark.slow
def test_the_cluster_report_in_github_actions_runs_no_workflow_command(tmp_path: Path) -> None:
    """A rank's GPU name is untrusted text (its machine, or its target spec). check frames its human report
    in GitHub Actions; the cluster report was printed unframed, so `##[add-mask]NVIDIA` in a GPU name hid
    "NVIDIA" in the rest of the job's log. Now it is shown, and nothing but the frame is run."""
    spec = json.loads((TARGETS / "h100.json").read_text())
    spec["gpus"][0]["name"] = "NVIDIA H100 ##[add-mask]NVIDIA"
    target = tmp_path / "hostile.json"
    target.write_text(json.dumps(spec), encoding="utf-8")
    extra = {"GITHUB_ACTIONS": "true"}
    procs = launch_env_ranks([0], 1, free_port(), ["--target", str(target), "--no-import-test"], extra)
    ((rc, out, err),) = finish(procs, 120)
    assert rc == 0, err
    assert "##[add-mask]NVIDIA" in out  # shown
    commands = workflow_commands(out) + workflow_commands(err)
    assert [name for name, _, _ in commands] == ["stop-commands"], commands


@pytest.mark.timeout(60)
@pytest.mark.system
@pytest.mark.slow
def test_a_rank_message_shows_control_characters_of_master_addr_as_symbols() -> None:
    """A rank's own messages (no store, a failed -o write, a session error) were printed raw: a MASTER_ADDR
    with an OSC sequence retitled the terminal (and in GitHub Actions a newline could start a workflow
    command). They now go through the CLI's printer, as every other message."""
    env = base_env()
    addr = "bad\x1b]0;x\x07host"
    env.update(RANK="1", WORLD_SIZE="2", LOCAL_RANK="1", MASTER_ADDR=addr, MASTER_PORT=str(free_port()))
    p = subprocess.run([*FD, "--join-timeout", "1"], env=env, capture_output=True, text=True, timeout=50)
    assert p.returncode == 1, p.stderr
    assert "no rendezvous store at bad" in p.stderr
    assert "\x1b" not in p.stderr and "\x07" not in p.stderr, repr(p.stderr)
