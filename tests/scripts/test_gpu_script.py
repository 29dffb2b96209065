"""scripts/gpu_smoke_bench.sh, the one command the GPU machine runs, run here in its CPU mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.smoke_fakes import REPO

pytestmark = pytest.mark.system


@pytest.mark.slow
def test_gpu_script_in_cpu_mode(tmp_path: Path) -> None:
    out = tmp_path / "results"
    env = dict(os.environ, PYTHON=sys.executable)
    p = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu_smoke_bench.sh"), str(out), "--cpu"],
        capture_output=True,
        text=True,
        env=env,
        timeout=400,
        stdin=subprocess.DEVNULL,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for name in (
        "smoke.json",
        "smoke.txt",
        "bench-long.json",
        "bench-long-causal.json",
        "bench-seed.json",
        "summary.txt",
        "env.txt",
    ):
        assert (out / name).is_file(), name
    smoke = json.loads((out / "smoke.json").read_text())
    assert smoke["status"] == "passed" and smoke["device"] == "cpu"
    long = json.loads((out / "bench-long.json").read_text())
    assert long["shape"]["label"] == "B1 N256 H2 D128 bf16" and long["recommendation"]
    assert json.loads((out / "bench-long-causal.json").read_text())["shape"]["causal"] is True
    summary = (out / "summary.txt").read_text()
    assert "bench-long         sdpa-flash      fwd      3.12" in summary
    assert "not measured on an H100 80GB HBM3 with CUDA" in summary
    assert "smoke --json: " in summary and "the 20 s goal" in summary
    timings = dict(line.split() for line in (out / "timings.txt").read_text().splitlines())
    assert set(timings) == {
        "smoke_json_wall_s",
        "smoke_human_wall_s",
        "bench_long_wall_s",
        "bench_long_causal_wall_s",
        "bench_seed_wall_s",
    }
    assert all(float(v) > 0 for v in timings.values())


def test_gpu_script_usage() -> None:
    p = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu_smoke_bench.sh")], capture_output=True, text=True, timeout=30
    )
    assert p.returncode == 2 and "usage:" in p.stderr
