"""End to end: real wheels from a loopback server into a real venv (with the CPU torch), checked with the
real `pip list` and a real import; rollback proven by wheels whose import fails."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from packaging.version import Version

from flashdoctor.actions.cache import WheelCache
from flashdoctor.actions.fetch import FetchOptions
from flashdoctor.actions.install.executor import InstallContext, execute
from flashdoctor.actions.net.download import DownloadPolicy
from flashdoctor.actions.wheelhouse import Wheelhouse
from flashdoctor.model.environment import GPU, Environment
from flashdoctor.model.install import SmokeOutcome
from flashdoctor.model.plan import Plan, WheelRef
from flashdoctor.probe.state import TargetState
from tests.support.install_helpers import FaultServer, make_wheel, sha256_of
from tests.support.venvs import child_env, site_packages

pytestmark = pytest.mark.system

BAD_IMPORT = (
    "raise ImportError('/venv/lib/python3.11/site-packages/flash_attn_2_cuda.cpython-311-x86_64-linux-gnu.so: "
    "undefined symbol: _ZN3c104cuda9SetDeviceEi')\n"
)


def pip_list(py: Path) -> dict[str, str]:
    out = subprocess.run(
        [str(py), "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True
    ).stdout
    return {d["name"].lower(): str(Version(d["version"])) for d in json.loads(out)}


def norm(v: str) -> str:
    return str(Version(v))


def can_import(py: Path, code: str = "import flash_attn; print(flash_attn.__version__)") -> tuple[bool, str]:
    r = subprocess.run([str(py), "-c", code], capture_output=True, text=True)
    return r.returncode == 0, (r.stdout + r.stderr).strip()


def tree_digest(root: Path, patterns: tuple[str, ...] = ("flash_attn*",)) -> dict[str, str]:
    """sha256 of every file under site-packages matching the patterns (pycache excluded)."""
    out = {}
    for pat in patterns:
        for p in root.glob(pat):
            files = [p] if p.is_file() else [f for f in p.rglob("*") if f.is_file()]
            for f in files:
                if "__pycache__" in f.parts:
                    continue
                out[str(f.relative_to(root))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def plan_for(url: str, wheel: Path, version: str, sha: bool = True) -> Plan:
    return Plan(
        action="wheel",
        variant="fa2",
        wheel=WheelRef(
            filename=wheel.name,
            url=url,
            sha256=sha256_of(wheel) if sha else None,
            source="official",
            version=version,
        ),
    )


def context(py: Path, tmp: Path, env: Environment | None = None, **kw: object) -> InstallContext:
    fetch_kw = {k: kw.pop(k) for k in ("wheelhouse", "index_url") if k in kw}
    cache_root = Path(str(kw.pop("cache_root", tmp / "cache")))
    return InstallContext(
        python=str(py),
        environ={k: v for k, v in __import__("os").environ.items()},
        fetch=FetchOptions(
            cache=WheelCache(cache_root), policy=DownloadPolicy(retries=1, backoff=0.01), **fetch_kw
        ),  # type: ignore[arg-type]
        env=env or Environment(),
        log_dir=tmp / "logs",
        **kw,  # type: ignore[arg-type]
    )


V_GOOD = "2.8.3+cu12torch2.13cxx11abiTRUE"
V_OLD = "2.8.2+cu12torch2.13cxx11abiTRUE"
V_NEXT = "2.8.3.post1+cu12torch2.13cxx11abiTRUE"


@pytest.mark.slow
def test_install_into_a_fresh_venv(fresh_venv: Path, server: FaultServer, tmp_path: Path) -> None:
    w = make_wheel(tmp_path / "w", version=V_GOOD)
    url = server.add("/" + w.name, w.read_bytes())
    torch_before = pip_list(fresh_venv)["torch"]
    res = execute(plan_for(url, w, V_GOOD), context(fresh_venv, tmp_path))
    assert res.status == "installed" and res.exit_code == 0, res
    assert res.previous is None and res.installed == V_GOOD and res.origin == "download"
    assert pip_list(fresh_venv)["flash-attn"] == norm(V_GOOD)
    assert pip_list(fresh_venv)["torch"] == torch_before
    assert can_import(fresh_venv) == (True, V_GOOD)
    names = [s.name for s in res.steps]
    assert names == [
        "fetch",
        "torch guard",
        "backup",
        "install",
        "verify version",
        "import check",
        "smoke test",
    ]
    assert not list((tmp_path / "cache" / "backups").glob("*/manifest.json"))  # discarded after success


@pytest.mark.slow
def test_failed_import_rolls_back_to_nothing(fresh_venv: Path, server: FaultServer, tmp_path: Path) -> None:
    w = make_wheel(tmp_path / "w", version=V_GOOD, files={"flash_attn/__init__.py": BAD_IMPORT})
    url = server.add("/" + w.name, w.read_bytes())
    before = tree_digest(site_packages(fresh_venv))
    res = execute(plan_for(url, w, V_GOOD), context(fresh_venv, tmp_path))
    assert res.status == "rolled-back" and res.exit_code == 5, res
    assert "flash-attn" not in pip_list(fresh_venv)
    assert tree_digest(site_packages(fresh_venv)) == before == {}
    assert not any(site_packages(fresh_venv).glob("flash_attn*"))  # not even an empty directory
    assert res.installed is None and res.previous is None
    assert [d.code for d in res.diagnoses] == ["torch-abi-mismatch"]
    assert "undefined symbol" in (res.error or "")
    assert [s.name for s in res.steps][-2:] == ["import check", "rollback"]


@pytest.mark.slow
def test_failed_import_restores_the_previous_version_exactly(
    fresh_venv: Path, server: FaultServer, tmp_path: Path
) -> None:
    old = make_wheel(tmp_path / "old", version=V_OLD)
    res = execute(
        plan_for(server.add("/" + old.name, old.read_bytes()), old, V_OLD), context(fresh_venv, tmp_path)
    )
    assert res.status == "installed"
    sp = site_packages(fresh_venv)
    before = tree_digest(sp)
    assert before and f"flash_attn-{V_OLD}.dist-info/RECORD" in before

    bad = make_wheel(
        tmp_path / "bad",
        version=V_GOOD,
        files={"flash_attn/__init__.py": BAD_IMPORT, "flash_attn/new_only.py": "x = 1\n"},
    )
    res = execute(
        plan_for(server.add("/" + bad.name, bad.read_bytes()), bad, V_GOOD), context(fresh_venv, tmp_path)
    )
    assert res.status == "rolled-back", res
    assert res.previous == V_OLD and res.installed == V_OLD
    assert pip_list(fresh_venv)["flash-attn"] == norm(V_OLD)
    assert tree_digest(sp) == before  # byte for byte, dist-info included; new_only.py is gone
    assert can_import(fresh_venv) == (True, V_OLD)
    # and pip still knows how to remove it (its RECORD is intact)
    r = subprocess.run(
        [str(fresh_venv), "-m", "pip", "uninstall", "-y", "flash-attn"], capture_output=True, text=True
    )
    assert r.returncode == 0 and tree_digest(sp) == {}


@pytest.mark.slow
def test_a_state_read_ahead_is_not_trusted_once_the_environment_changed(
    fresh_venv: Path, server: FaultServer, tmp_path: Path
) -> None:
    """The CLI reads the target's state before it takes the environment lock (to overlap its probes).
    Read here, then another install lands: the executor must read again, or a failing install would
    'restore' the empty state it saw and remove the version the other install put there."""
    from concurrent.futures import Future

    from flashdoctor.probe.state import read_state

    early: Future[TargetState] = Future()
    early.set_result(read_state(str(fresh_venv), dict(__import__("os").environ), ("flash-attn",)))
    assert early.result().dist("flash-attn") is None and early.result().is_current()
    old = make_wheel(tmp_path / "old", version=V_OLD)
    res = execute(
        plan_for(server.add("/" + old.name, old.read_bytes()), old, V_OLD), context(fresh_venv, tmp_path)
    )
    assert res.status == "installed"
    assert not early.result().is_current()
    bad = make_wheel(tmp_path / "bad", version=V_GOOD, files={"flash_attn/__init__.py": BAD_IMPORT})
    res = execute(
        plan_for(server.add("/" + bad.name, bad.read_bytes()), bad, V_GOOD),
        context(fresh_venv, tmp_path, early_state=early),
    )
    assert res.status == "rolled-back" and res.previous == V_OLD and res.installed == V_OLD, res
    assert pip_list(fresh_venv)["flash-attn"] == norm(V_OLD)


def test_a_wheel_that_needs_another_torch_is_refused_before_anything_changes(
    fresh_venv: Path, server: FaultServer, tmp_path: Path
) -> None:
    w = make_wheel(tmp_path / "w", version=V_GOOD, requires=["torch==2.8.*", "einops"])
    url = server.add("/" + w.name, w.read_bytes())
    before = pip_list(fresh_venv)
    res = execute(plan_for(url, w, V_GOOD), context(fresh_venv, tmp_path))
    assert res.status == "refused" and res.exit_code == 5
    assert "requires torch==2.8.*" in res.message and "never" in res.message
    assert pip_list(fresh_venv) == before
    assert "install" not in [s.name for s in res.steps]


@pytest.mark.slow
def test_missing_dependency_is_added_and_removed_again_on_rollback(
    fresh_venv: Path, server: FaultServer, tmp_path: Path
) -> None:
    wh = tmp_path / "wheelhouse"
    make_wheel(
        wh,
        dist="fdtestdep",
        version="1.0",
        tag="py3-none-any",
        files={"fdtestdep/__init__.py": "X = 1\n"},
        requires=(),
    )
    good = make_wheel(tmp_path / "g", version=V_GOOD, requires=["torch", "fdtestdep>=1.0"])
    ctx = context(fresh_venv, tmp_path, wheelhouse=Wheelhouse(wh))
    res = execute(plan_for(server.add("/g.whl", good.read_bytes()), good, V_GOOD), ctx)
    assert res.status == "installed" and res.added == ("fdtestdep",), res
    assert pip_list(fresh_venv)["fdtestdep"] == "1.0"
    reset = subprocess.run(
        [str(fresh_venv), "-m", "pip", "uninstall", "-y", "flash-attn", "fdtestdep"], capture_output=True
    )
    assert reset.returncode == 0

    # (another version: the wheelhouse now holds the good wheel under V_GOOD's name, and a file of the
    # same name with other bytes would be refused as a sha256 mismatch)
    bad = make_wheel(
        tmp_path / "b",
        version=V_NEXT,
        requires=["torch", "fdtestdep"],
        files={"flash_attn/__init__.py": BAD_IMPORT},
    )
    res = execute(plan_for(server.add("/b.whl", bad.read_bytes()), bad, V_NEXT), ctx)
    assert res.status == "rolled-back", res
    listed = pip_list(fresh_venv)
    assert "fdtestdep" not in listed and "flash-attn" not in listed


def test_offline_install_from_a_wheelhouse(fresh_venv: Path, tmp_path: Path) -> None:
    w = make_wheel(tmp_path / "wh", version=V_GOOD)
    dead = (
        "https://github.com/Dao-AILab/flash-attention/releases/download/v2.8.3/" + w.name
    )  # never contacted
    ctx = context(fresh_venv, tmp_path, wheelhouse=Wheelhouse(tmp_path / "wh"))
    res = execute(plan_for(dead, w, V_GOOD), ctx)
    assert res.status == "installed" and res.origin == "wheelhouse"
    assert pip_list(fresh_venv)["flash-attn"] == norm(V_GOOD)


def test_download_is_written_to_the_wheelhouse(fresh_venv: Path, server: FaultServer, tmp_path: Path) -> None:
    w = make_wheel(tmp_path / "w", version=V_GOOD)
    wh = tmp_path / "shared-wheelhouse"
    res = execute(
        plan_for(server.add("/x.whl", w.read_bytes()), w, V_GOOD),
        context(fresh_venv, tmp_path, wheelhouse=Wheelhouse(wh)),
    )
    assert res.status == "installed"
    assert (wh / w.name).read_bytes() == w.read_bytes()
    assert [p.name for p in wh.iterdir()] == [w.name]  # no temporary left behind


def test_a_different_file_under_the_same_name_in_the_wheelhouse_is_refused(
    fresh_venv: Path, tmp_path: Path
) -> None:
    w = make_wheel(tmp_path / "w", version=V_GOOD)
    make_wheel(tmp_path / "wh", version=V_GOOD, files={"flash_attn/__init__.py": "tampered = True\n"})
    ctx = context(fresh_venv, tmp_path, wheelhouse=Wheelhouse(tmp_path / "wh"))
    res = execute(plan_for("https://github.com/never/contacted/" + w.name, w, V_GOOD), ctx)
    assert (
        res.status == "download-failed" and "sha256 mismatch" in res.message and "wheelhouse" in res.message
    )
    assert "flash-attn" not in pip_list(fresh_venv)


def test_download_failure_changes_nothing(fresh_venv: Path, server: FaultServer, tmp_path: Path) -> None:
    w = make_wheel(tmp_path / "w", version=V_GOOD)
    before = pip_list(fresh_venv)
    res = execute(plan_for(server.url("/gone.whl"), w, V_GOOD), context(fresh_venv, tmp_path))
    assert res.status == "download-failed" and res.exit_code == 4 and "HTTP 404" in res.message
    assert pip_list(fresh_venv) == before


@pytest.mark.slow
def test_failing_smoke_test_on_a_gpu_rolls_back(
    fresh_venv: Path, server: FaultServer, tmp_path: Path
) -> None:
    """The GPU is the one thing mocked: an Environment with an H100 and a smoke hook that reports a
    numerical mismatch. Everything else (venv, pip, import, restore) is real."""
    w = make_wheel(tmp_path / "w", version=V_GOOD)
    calls = []

    def smoke(python: str, environ: object, variant: str) -> SmokeOutcome:
        calls.append((python, variant))
        return SmokeOutcome(False, "fa2 bf16 forward: max abs error 0.5 > 0.02")

    env = Environment(gpus=(GPU(index=0, name="NVIDIA H100 80GB HBM3", capability="9.0"),))
    res = execute(
        plan_for(server.add("/w.whl", w.read_bytes()), w, V_GOOD),
        context(fresh_venv, tmp_path, env=env, smoke=smoke),
    )
    assert calls == [(str(fresh_venv), "fa2")]
    assert res.status == "rolled-back" and "smoke test" in res.message
    assert "flash-attn" not in pip_list(fresh_venv)

    # The smoke test's words for a binary without this GPU's code (an sm_110-only build on an H100, GPU machine
    # 2026-12-06): the rollback's diagnosis names the cause and the fix, as for a failed pip.
    def no_code(python: str, environ: object, variant: str) -> SmokeOutcome:
        return SmokeOutcome(
            False,
            "FA2 flash_attn 2.8.3.post2 hd128 bf16 on GPU 0 NVIDIA H100 80GB HBM3 (sm_90): the binary has no "
            "code for GPU 0 NVIDIA H100 80GB HBM3 (sm_90) [long, long-causal, gqa, varlen]",
        )

    machine = Environment(gpus=env.gpus, cpus=16, memory_gb=125.0)  # the fix's MAX_JOBS needs both
    res = execute(
        plan_for(server.add("/w2.whl", w.read_bytes()), w, V_GOOD),
        context(fresh_venv, tmp_path, env=machine, smoke=no_code),
    )
    assert res.status == "rolled-back" and "flash-attn" not in pip_list(fresh_venv)
    assert [d.code for d in res.diagnoses][:1] == ["gpu-unsupported"], res.diagnoses
    assert "sm_90" in (res.diagnoses[0].fix or "")


@pytest.mark.slow
def test_ctrl_c_during_verification_restores_then_propagates(
    fresh_venv: Path, server: FaultServer, tmp_path: Path
) -> None:
    """Ctrl-C (KeyboardInterrupt) after the install changed the environment: restored, then re-raised (exit 130)."""
    old = make_wheel(tmp_path / "old", version=V_OLD)
    assert (
        execute(
            plan_for(server.add("/o.whl", old.read_bytes()), old, V_OLD), context(fresh_venv, tmp_path)
        ).status
        == "installed"
    )
    before = tree_digest(site_packages(fresh_venv))
    w = make_wheel(tmp_path / "w", version=V_GOOD)

    def smoke(python: str, environ: object, variant: str) -> SmokeOutcome:
        raise KeyboardInterrupt

    env = Environment(gpus=(GPU(index=0, name="NVIDIA H100 80GB HBM3", capability="9.0"),))
    with pytest.raises(KeyboardInterrupt):
        execute(
            plan_for(server.add("/w.whl", w.read_bytes()), w, V_GOOD),
            context(fresh_venv, tmp_path, env=env, smoke=smoke),
        )
    assert pip_list(fresh_venv)["flash-attn"] == norm(V_OLD)
    assert tree_digest(site_packages(fresh_venv)) == before


def _site_has(py: Path, version: str) -> bool:
    return any(site_packages(py).glob(f"flash_attn-{version}.dist-info/RECORD"))


@pytest.mark.slow
def test_an_install_killed_after_its_backup_is_undone_by_the_next_one(
    fresh_venv: Path, server: FaultServer, tmp_path: Path
) -> None:
    """SIGKILL flashdoctor while it verifies a new wheel (pip has already replaced the old one): nothing
    can restore in that process. The next install into the environment restores the old version from
    the backup first, then installs its own wheel on top of it."""
    import os
    import signal
    import sys
    import time

    cache_dir = tmp_path / "fdcache"
    ctx_cache = {"cache_root": cache_dir / "wheels"}
    old = make_wheel(tmp_path / "old", version=V_OLD)
    res = execute(
        plan_for(server.add("/" + old.name, old.read_bytes()), old, V_OLD),
        context(fresh_venv, tmp_path, **ctx_cache),
    )
    assert res.status == "installed"
    slow = make_wheel(
        tmp_path / "slow", version=V_GOOD, files={"flash_attn/__init__.py": "import time\ntime.sleep(120)\n"}
    )
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(plan_for(server.add("/" + slow.name, slow.read_bytes()), slow, V_GOOD).to_json())
    )
    env = child_env(FLASHDOCTOR_CACHE_DIR=str(cache_dir))
    cmd = [sys.executable, "-m", "flashdoctor", "install", "--plan", str(plan), "--python", str(fresh_venv)]
    proc = subprocess.Popen(
        [*cmd, "--yes", "--json", "--no-smoke"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not _site_has(fresh_venv, V_GOOD) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert _site_has(fresh_venv, V_GOOD), "pip never installed the new wheel"
        time.sleep(0.5)  # into the import check, which hangs
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    manifests = list((cache_dir / "wheels" / "backups").glob("*/manifest.json"))
    assert len(manifests) == 1 and json.loads(manifests[0].read_text())["installing"] == V_GOOD
    assert pip_list(fresh_venv)["flash-attn"] == norm(V_GOOD)  # half-changed: unverified, unrestored

    new = make_wheel(tmp_path / "new", version=V_NEXT)
    res = execute(
        plan_for(server.add("/" + new.name, new.read_bytes()), new, V_NEXT),
        context(fresh_venv, tmp_path, **ctx_cache),
    )
    assert res.status == "installed", res
    assert [s.name for s in res.steps][:2] == ["recover", "fetch"]
    assert res.previous == V_OLD  # the interrupted install's change was undone before this one began
    assert any("interrupted after its backup" in w for w in res.warnings), res.warnings
    assert pip_list(fresh_venv)["flash-attn"] == norm(V_NEXT)
    assert not list((cache_dir / "wheels" / "backups").glob("*/manifest.json"))


@pytest.mark.slow
def test_a_stale_backup_of_an_interrupted_install_is_not_restored(
    fresh_venv: Path, server: FaultServer, tmp_path: Path
) -> None:
    """After the interrupted install, someone installed another version by hand: putting the old files
    back would undo their change, so the backup is dropped with a warning."""
    import os

    from flashdoctor.actions.install.rollback import make_backup
    from flashdoctor.actions.wheelfile import inspect_wheel
    from flashdoctor.probe.state import read_state

    cache = tmp_path / "cache"
    old = make_wheel(tmp_path / "old", version=V_OLD)
    assert (
        execute(
            plan_for(server.add("/" + old.name, old.read_bytes()), old, V_OLD), context(fresh_venv, tmp_path)
        ).status
        == "installed"
    )
    good = make_wheel(tmp_path / "good", version=V_GOOD)
    state = read_state(str(fresh_venv), dict(os.environ), ("flash-attn",))
    env_dir = os.path.abspath(os.path.dirname(os.path.dirname(os.path.abspath(fresh_venv))))
    root = cache / "backups" / "20260101-000000-1"
    root.mkdir(parents=True)
    make_backup(state, "flash-attn", inspect_wheel(good), root, environment=env_dir)
    by_hand = make_wheel(tmp_path / "hand", version=V_NEXT)
    r = subprocess.run(
        [str(fresh_venv), "-m", "pip", "install", "-q", "--no-deps", str(by_hand)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    res = execute(
        plan_for(server.add("/" + good.name, good.read_bytes()), good, V_GOOD), context(fresh_venv, tmp_path)
    )
    assert res.status == "installed" and res.previous == V_NEXT, res
    assert any("has changed since" in w for w in res.warnings), res.warnings
    assert not root.exists()
