"""The GPU machine's checks (scripts/), run by pytest where torch sees an NVIDIA GPU: ``pytest -m gpu``.

Everywhere else they are skipped with the reason (tests/conftest.py); their CPU modes are tested on every
run (test_gpu_script.py, test_bench_attention.py). No network: the GPU machine has none.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import ROOT, SCRIPTS

pytestmark = [pytest.mark.gpu, pytest.mark.system, pytest.mark.slow]


def run(args: list[str], timeout: float, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_smoke_and_bench_script_on_the_gpu(tmp_path: Path) -> None:
    """scripts/gpu_smoke_bench.sh in its GPU mode (one smoke run): every flashdoctor command exits 0."""
    out = tmp_path / "results"
    p = run(
        ["bash", str(SCRIPTS / "gpu_smoke_bench.sh"), str(out)], 560, PYTHON=sys.executable, SMOKE_TWICE="0"
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    smoke: dict[str, Any] = json.loads((out / "smoke.json").read_text())
    assert smoke["status"] == "passed" and smoke["device"] != "cpu", smoke
    for name in ("bench-long", "bench-long-causal", "bench-seed"):
        bench = json.loads((out / f"{name}.json").read_text())
        assert bench["recommendation"], name
    assert (out / "summary.txt").is_file()


def test_bench_attention_on_the_gpu(tmp_path: Path) -> None:
    """scripts/bench_attention.py --quick on CUDA: the runtime's correctness checks pass on real kernels."""
    out = tmp_path / "bench.json"
    p = run([sys.executable, str(SCRIPTS / "bench_attention.py"), "--quick", "--json", str(out)], 560)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["ok"] is True and result["environment"]["device"].startswith("cuda"), result["environment"]


def test_fa3_runtime_proof_on_the_gpu(tmp_path: Path) -> None:
    """scripts/gpu_runtime_fa3.py: where FA3 is installed, every check passes (exit 2: no FA3 here)."""
    out = tmp_path / "runtime_fa3.json"
    p = run([sys.executable, str(SCRIPTS / "gpu_runtime_fa3.py"), "--json", str(out)], 560)
    if p.returncode == 2:
        pytest.skip(f"gpu_runtime_fa3.py cannot run here: {(p.stderr or p.stdout).strip()[-300:]}")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
