"""`flashdoctor smoke`, `flashdoctor bench` and `check --smoke` as a user runs them: real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from flashdoctor.knowledge.schemas import schema_validator
from tests.support.hung_python import gone, signal_while_child_runs
from tests.support.smoke_fakes import REPO, runner_env, write_fakes

pytestmark = pytest.mark.system


#: a shape whose baseline takes milliseconds on a CPU (the defaults take seconds of bf16 there)
SMALL_BENCH = ["--batch", "1", "--seqlen", "48", "--heads", "2", "--head-dim", "16", "--repeats", "1"]


def fd(
    *args: str, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flashdoctor", *args],
        capture_output=True,
        text=True,
        env=env or runner_env(),
        cwd=REPO,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_smoke_without_gpu_skips_with_a_clear_line() -> None:
    p = fd("smoke")
    assert p.returncode == 0, p.stderr
    text = " ".join(p.stdout.split())  # prose is wrapped at words to the width (80 in a pipe)
    assert "smoke test skipped: no CUDA GPU visible: torch" in text and "CPU-only build (exit 0)" in text
    assert "Traceback" not in p.stderr


@pytest.mark.slow
def test_smoke_tables_and_json_file(tmp_path: Path) -> None:
    root = write_fakes(tmp_path / "fakes", fa2="good", head_dims={16})
    out = tmp_path / "smoke.json"
    p = fd("smoke", "--device", "cpu", "--variant", "fa2", "-o", str(out), env=runner_env(root))
    assert p.returncode == 0, p.stdout + p.stderr
    text = " ".join(p.stdout.split())  # prose is wrapped at words to the width
    assert "cases: seed = B2 N33 H4 D16 bf16" in text
    assert "FA2 2.8.3+fake" in text and "flash_fwd_kernel_fake" in text
    assert "head dim 32 not compiled in this build" in text and "[smoke-not-compiled]" in text
    assert (
        "refuses fp32 tensors with a clear error: RuntimeError: FlashAttention only support fp16 and bf16 data type"
        in text
    )
    assert "smoke passed in " in text and "torch import" in text
    doc = json.loads(out.read_text())
    schema_validator("smoke-report.schema.json").validate(doc)
    assert doc["status"] == "passed"


@pytest.mark.slow
def test_smoke_json_fails_for_a_missing_requested_variant() -> None:
    p = fd("smoke", "--device", "cpu", "--variant", "fa3", "--json")
    assert p.returncode == 1, p.stderr
    doc = json.loads(p.stdout)
    assert doc["status"] == "failed" and doc["exit_code"] == 1
    assert [f["code"] for f in doc["findings"] if f["status"] == "fail"] == ["smoke-not-installed"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bench", "--heads", "16", "--kv-heads", "3"], "--heads 16 must be a multiple of --kv-heads 3"),
        (["bench", "--batch", "0"], "--batch must be a positive integer, not 0"),
        # Before: torch refused the shape inside the runner, a skip row and exit 0
        (["bench", "--seqlen", str(2**40)], "the inputs alone (q, k and v) would take 196,608 TiB"),
        (["bench", "--dtype", "int8"], "Invalid value for '--dtype'"),
        (["smoke", "--variant", "fa5"], "Invalid value for '--variant'"),
        (["smoke", "--python", "/nonexistent/python"], "--python /nonexistent/python: no such file"),
        (["check", "--smoke", "--target", "tests/targets/h100.json"], "--smoke runs kernels on this machine"),
    ],
)
def test_bad_input_is_a_usage_error(args: list[str], message: str) -> None:
    p = fd(*args)
    assert p.returncode == 2, p.stdout + p.stderr
    assert message in p.stderr and "Traceback" not in p.stderr


@pytest.mark.slow
def test_bench_json_and_output(tmp_path: Path) -> None:
    root = write_fakes(tmp_path / "fakes", fa2="good")
    out = tmp_path / "bench.json"
    p = fd(
        "bench",
        "--device",
        "cpu",
        "--batch",
        "1",
        "--seqlen",
        "48",
        "--heads",
        "2",
        "--head-dim",
        "16",
        "--causal",
        "--repeats",
        "3",
        "--json",
        "-o",
        str(out),
        env=runner_env(root),
    )
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc == json.loads(out.read_text())
    schema_validator("bench-report.schema.json").validate(doc)
    assert doc["shape"]["label"] == "B1 N48 H2 D16 bf16 causal"
    assert {r["backend"]: r["status"] for r in doc["rows"]}["fa2"] == "ok"
    assert sum(r["fastest_fwd"] for r in doc["rows"]) == 1 and doc["recommendation"]


def test_bench_plot_without_matplotlib_is_a_clear_error(tmp_path: Path) -> None:
    """The hint names the pip of the Python that runs flashdoctor: a bare `pip install 'flashdoctor[plot]'`
    went to whatever pip is first on PATH (not flashdoctor's own environment, README's set-up) and asked
    an index for a distribution that is this checkout."""
    hide = tmp_path / "nompl" / "matplotlib"
    hide.mkdir(parents=True)
    (hide / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    p = fd("bench", "--device", "cpu", "--plot", str(tmp_path / "b.png"), env=runner_env(tmp_path / "nompl"))
    assert p.returncode == 2
    assert "--plot needs matplotlib" in p.stderr
    assert f"hint: {sys.executable} -m pip install matplotlib" in " ".join(p.stderr.split())
    assert not (tmp_path / "b.png").exists()


def test_bench_plot_to_a_file_matplotlib_cannot_write_is_a_usage_error(tmp_path: Path) -> None:
    """--plot bench.json crashed (exit 3: matplotlib's ValueError) after the whole bench had run, and
    --plot bench (no extension) wrote bench.png while the output said "plot written to bench"."""
    pytest.importorskip("matplotlib")
    for name, message in (
        ("bench.json", ".json is not an image format matplotlib writes"),
        ("bench", "the file name has no extension"),
    ):
        p = fd("bench", "--device", "cpu", "--plot", str(tmp_path / name))
        assert p.returncode == 2, p.stderr
        assert f"--plot {tmp_path / name}: {message}" in p.stderr and ".png" in p.stderr
        assert "unexpected error" not in p.stderr and not p.stdout  # refused before the bench ran
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_bench_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "bench.png"
    p = fd(
        "bench",
        "--device",
        "cpu",
        "--batch",
        "1",
        "--seqlen",
        "48",
        "--heads",
        "2",
        "--head-dim",
        "16",
        "--repeats",
        "2",
        "--plot",
        str(png),
    )
    assert p.returncode == 0, p.stderr
    assert f"plot written to {png}" in p.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_check_smoke_adds_the_smoke_key() -> None:
    p = fd("check", "--smoke", "--json", "--no-import-test")
    doc = json.loads(p.stdout)
    assert doc["smoke"]["schema"] == "flashdoctor/smoke/1"
    assert doc["smoke"]["status"] == "skipped"  # no GPU here
    schema_validator("smoke-report.schema.json").validate(doc["smoke"])
    assert p.returncode == doc["exit_code"]


def test_flashdoctor_never_imports_torch_itself() -> None:
    code = (
        "import sys, flashdoctor.cli, flashdoctor.actions.smoke, flashdoctor.render.smoke, flashdoctor.render.plot\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=runner_env(), timeout=60
    )
    assert p.returncode == 0, p.stderr


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX process groups")
# Each command with one signal (both reach the same exit path: the CLI's tests of it cover the rest).
@pytest.mark.parametrize(
    ("command", "sig", "code"), [("smoke", signal.SIGINT, 130), ("bench", signal.SIGTERM, 143)]
)
def test_a_signal_while_the_runner_hangs_stops_it_and_exits_at_once(
    tmp_path: Path, command: str, sig: signal.Signals, code: int
) -> None:
    """Ctrl-C or SIGTERM while `smoke` or `bench` waits on its runner (here stuck in a kernel call): the
    runner runs in a session of its own, out of the terminal's reach. It is stopped, the exit at once."""
    root = write_fakes(tmp_path / "fakes", fa2="hang")
    pidfile = tmp_path / "runner.pid"
    env = {**runner_env(root), "FAKE_HANG_PID": str(pidfile), "FLASHDOCTOR_CACHE_DIR": str(tmp_path / "c")}
    args = (
        ["--device", "cpu", "--variant", "fa2"]
        if command == "smoke"
        # the baseline (SDPA math) runs first: at a small shape, not the default's seconds of CPU bf16
        else ["--device", "cpu", "--backend", "fa2", *SMALL_BENCH]
    )
    argv = [sys.executable, "-m", "flashdoctor", command, *args]
    proc, err, runner = signal_while_child_runs(argv, env, REPO, pidfile, sig)
    assert proc.returncode == code and "Traceback" not in err, err
    assert gone(runner), "the runner outlived flashdoctor"
