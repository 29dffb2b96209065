"""`flashdoctor build` as a real process: the dry plan for a target, bad input, a whole build on this
machine (a fake sdist, real pip), a failed one, and `check` showing a flashdoctor build profile."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.fake_sdist import make_fake_sdist
from tests.support.hung_python import gone, signal_while_child_runs
from tests.support.paths import ROOT, TARGETS


def fd(
    *args: str, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    e = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "flashdoctor", *args],
        capture_output=True,
        text=True,
        env=e,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.mark.system
def test_dry_plan_for_the_gpu_machine_as_json() -> None:
    p = fd(
        "build",
        "--target",
        str(TARGETS / "h100.json"),
        "--arch",
        "90",
        "--head-dims",
        "128",
        "--dtypes",
        "bf16",
        "--json",
    )
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["schema"] == "flashdoctor/build/1" and doc["status"] == "planned" and doc["exit_code"] == 0
    plan = doc["plan"]
    assert (plan["unit_count"], plan["arch_only_unit_count"], plan["default_unit_count"]) == (6, 72, 288)
    assert plan["label"] == "fd.sm90.hd128.bf16" and plan["max_jobs"] == 7
    assert (
        plan["env"]["FLASH_ATTN_CUDA_ARCHS"] == "90" and plan["env"]["FLASH_ATTENTION_FORCE_BUILD"] == "TRUE"
    )
    assert doc["fingerprint"]["torch"] == "2.11" and len(doc["fingerprint"]["id"]) == 16
    assert [f["status"] for f in doc["findings"] if f["status"] == "fail"] == []


@pytest.mark.system
def test_human_dry_plan_and_blocking_preflight() -> None:
    p = fd(
        "build", "--target", str(TARGETS / "h100.json"), "--head-dims", "128", "--dtypes", "bf16", "--dry-run"
    )
    assert p.returncode == 0
    assert "48× fewer" in p.stdout and "FLASH_ATTN_LOCAL_VERSION=fd.sm90.hd128.bf16" in p.stdout
    p = fd("build", "--target", str(TARGETS / "nvcc-mismatch.json"), "--dry-run")
    assert p.returncode == 1
    assert "nvcc-torch-mismatch" in p.stdout and "fix:" in p.stdout
    # a release flashdoctor's table lacks: its unit count is unknown, not "0 ... 0.0× fewer"
    p = fd("build", "--target", str(TARGETS / "h100.json"), "--flash-version", "9.9.9", "--dry-run")
    assert p.returncode == 0, p.stderr
    assert "compile units: unknown for sm_90" in p.stdout and "0.0×" not in p.stdout
    assert "not in flashdoctor's table" in p.stdout


@pytest.mark.system
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--arch", "hopper"), "--arch hopper"),
        (("--head-dims", "512"), "--head-dims 512"),
        (("--flash-version", "2.6.3", "--head-dims", "128"), "does not know this version"),
        (("--arch", "75"), "no FA2 code runs on sm_75"),
        (("--ref", "v1"), "--ref is for --fa3"),
        # was taken: a plan for "flash-attn abc" with 0 compile units, exit 0; with --fa3, ignored
        (("--flash-version", "abc"), "--flash-version 'abc' is not a version (e.g. 2.8.3)"),
        (("--flash-version", "2.x", "--dry-run"), "--flash-version '2.x' is not a version"),
        (("--fa3", "--flash-version", "2.8.3"), "--flash-version is for --fa2 sdists"),
    ],
)
def test_bad_input_is_a_clear_message_without_traceback(args: tuple[str, ...], message: str) -> None:
    p = fd("build", "--target", str(TARGETS / "h100.json"), *args)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert message in p.stderr and "Traceback" not in p.stderr + p.stdout


@pytest.mark.system
@pytest.mark.slow
def test_real_build_on_this_machine_with_progress_and_failure(tmp_path: Path) -> None:
    archive = make_fake_sdist(tmp_path)
    common = [
        "build",
        "--source",
        str(archive),
        "--arch",
        "90",
        "--ignore-preflight",
        "--work-dir",
        str(tmp_path / "w"),
    ]
    env = {"FLASHDOCTOR_CACHE_DIR": str(tmp_path / "cache")}
    p = fd(*common, "--log", str(tmp_path / "ok.log"), env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "[3/3] 100%" in p.stdout and "✓ built" in p.stdout
    p = fd(
        *common[:-2],
        "--work-dir",
        str(tmp_path / "w2"),
        "--log",
        str(tmp_path / "bad.log"),
        env={**env, "FAKE_FAIL": "1"},
    )
    assert p.returncode == 5, p.stdout + p.stderr
    assert "✗ build failed" in p.stdout and 'flash_fwd_kernel.h(42): error: expected a ";"' in p.stdout
    assert str(tmp_path / "bad.log") in p.stdout


@pytest.mark.system
def test_check_reports_the_build_profile_of_an_installed_wheel(tmp_path: Path) -> None:
    spec = json.loads((TARGETS / "h100.json").read_text())
    spec["installed"] = {
        "flash-attn": {"version": "2.8.3.post2+fd.sm90.hd128.bf16", "archs": ["sm_90"], "import_ok": True}
    }
    path = tmp_path / "h100-built.json"
    path.write_text(json.dumps(spec))
    p = fd("check", "--target", str(path))
    text = " ".join(p.stdout.split())  # wrapped at words to the width (80 in a pipe)
    assert "flash-attn 2.8.3.post2+fd.sm90.hd128.bf16 (flashdoctor build profile sm90.hd128.bf16)" in text


@pytest.mark.system
def test_install_from_source_builds_then_plans_the_local_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """install --from-source hands the installer a Plan for the wheel just built (file URL + sha256)."""
    import hashlib

    from flashdoctor.actions.install.service import plan_from_build
    from flashdoctor.cli.build import run_source_build
    from flashdoctor.cli.options import build_options
    from flashdoctor.model.plan import Plan
    from flashdoctor.render.console import make_console
    from tests.support.targets import target_env

    monkeypatch.setenv("FLASHDOCTOR_CACHE_DIR", str(tmp_path / "cache"))
    archive = make_fake_sdist(tmp_path)
    opts = build_options(
        "fa2",
        source=str(archive),
        ref=None,
        arch="90",
        head_dims=None,
        dtypes=None,
        max_jobs=None,
        nvcc_threads=None,
        wheelhouse=str(tmp_path / "wh"),
    )

    def _plan_from_source() -> Plan | None:  # what install --from-source does for a target (h100.json)
        outcome = run_source_build(
            target_env("h100"), opts, None, make_console(), "fa2", plan_only=False, probe_tools=False
        )
        return plan_from_build(outcome, "fa2")

    plan = _plan_from_source()
    assert isinstance(plan, Plan) and plan.action == "wheel" and plan.wheel is not None
    from urllib.parse import unquote, urlsplit

    path = Path(unquote(urlsplit(plan.wheel.url).path))
    assert path.parent.parent == tmp_path / "wh" and plan.wheel.source == "wheelhouse"
    assert plan.wheel.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert plan.wheel.version == "0.0.1+fd.sm90" and "built from source" in plan.reasons[0]
    again = _plan_from_source()
    assert isinstance(again, Plan) and again.wheel == plan.wheel and "already built" in again.reasons[0]


@pytest.mark.system
@pytest.mark.slow
def test_install_from_source_stops_at_preflight_on_a_cpu_torch(tmp_path: Path) -> None:
    archive = make_fake_sdist(tmp_path)
    p = fd(
        "install",
        "--from-source",
        "--source",
        str(archive),
        "--arch",
        "90",
        "--wheelhouse",
        str(tmp_path / "my wheels"),
        "--yes",
        env={"FLASHDOCTOR_CACHE_DIR": str(tmp_path), "COLUMNS": "1000"},  # a long path is not folded
    )
    assert p.returncode == 1, p.stdout + p.stderr
    assert "torch-cpu-only" in p.stdout and "not started" in p.stdout
    # install has no --ignore-preflight: the way past the preflight is build's (its hint named the option
    # as install's, and following it was "No such option"); the install it names is of the same variant
    # from the same wheelhouse (a bare `install --yes` installs FA2's prebuilt wheel from the cache)
    said = " ".join(p.stdout.split())
    assert "(or --ignore-preflight)" not in said
    assert "flashdoctor build --fa2 --ignore-preflight" in said
    assert (
        f"then flashdoctor install --fa2 --python {sys.executable} --wheelhouse '{tmp_path / 'my wheels'}' --yes"
        in said
    )
    p = fd("install", "--fa3", "--from-source", "--dry-run", env={"FLASHDOCTOR_CACHE_DIR": str(tmp_path)})
    said = " ".join(p.stdout.split())
    assert (
        "flashdoctor build --fa3 --ignore-preflight" in said
        and f"install --fa3 --python {sys.executable} --yes" in said
    ), said
    p = fd("install", "--head-dims", "128", "--yes")
    assert p.returncode == 2 and "need --from-source" in p.stderr
    p = fd("install", "--fa4", "--from-source", "--yes")
    assert p.returncode == 2 and "nothing to build" in p.stderr


@pytest.mark.system
@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX process groups")
# Ctrl-C only: SIGTERM takes the same exit path (the CLI's and smoke/bench's signal tests cover it)
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130)])
def test_a_signal_while_the_compiler_runs_stops_it_and_exits_at_once(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    """Ctrl-C or SIGTERM to flashdoctor alone while pip's build runs a compiler that never ends: the
    build runs in a session of its own; pip and the compiler are stopped, the exit at once."""
    archive = make_fake_sdist(tmp_path)
    pidfile = tmp_path / "cc.pid"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FAKE_HANG": str(pidfile)}
    env["FLASHDOCTOR_CACHE_DIR"] = str(tmp_path / "cache")
    cmd = [sys.executable, "-m", "flashdoctor", "build", "--source", str(archive), "--arch", "90"]
    argv = [*cmd, "--ignore-preflight", "--work-dir", str(tmp_path / "w"), "--log", str(tmp_path / "b.log")]
    proc, err, compiler = signal_while_child_runs(argv, env, ROOT, pidfile, sig)
    assert proc.returncode == code and "Traceback" not in err, err
    assert gone(compiler), "the compiler outlived flashdoctor"
