"""scripts/bench_attention.py runs end to end on the CPU (the GPU run is the lead's; see README)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.system
def test_bench_attention_quick_cpu_run(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench_attention.py"),
            "--device",
            "cpu",
            "--quick",
            "--json",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    assert result["schema"] == "flashdoctor/bench-attention/1" and result["ok"] is True
    assert result["models"]["replaced"] == ["layers.0.self_attn", "layers.1.self_attn"]
    rows = {r["variant"]: r for r in result["models"]["rows"]}
    assert set(rows) == {
        "naive attention",
        "nn.MultiheadAttention",
        "flashdoctor (auto)",
        "flashdoctor (auto, unfused)",
    }
    for r in rows.values():
        assert r["forward_ms"] > 0 and r["forward_backward_ms"] > 0
        assert len(r["forward_ms_runs"]) == result["shape"]["iters"]
    auto = rows["flashdoctor (auto)"]
    # On the CPU the replaced modules ran the standard-attention fallback, with nn.MultiheadAttention's numbers.
    # Every call of every layer, eval and training: warm-ups + timed runs, the checked eval forward,
    # the checked training step and the profiled one (no memory runs on a CPU).
    shape = result["shape"]
    unfused = rows["flashdoctor (auto, unfused)"]
    assert unfused["backends_used"] == {
        "sdpa": shape["layers"] * (2 * (shape["warmup"] + shape["iters"]) + 3)
    }
    # By default torch's fused encoder-layer path serves eval without grad: only training calls dispatch.
    assert auto["backends_used"] == {"sdpa": shape["layers"] * ((shape["warmup"] + shape["iters"]) + 2)}
    assert auto["rel_err_out"] < 1e-5 and auto["rel_err_input_grad"] < 1e-5
    assert rows["naive attention"]["rel_err_out"] < 1e-5
    assert result["models"]["decision"]["backend"] == "sdpa"
    names = [c["check"] for c in result["checks"]]
    assert any(n.startswith("padded batch (eval)") for n in names)
    assert any(n.startswith("flash_attention[sdpa] fp32 d64 gqa") for n in names)
    assert "checks: " in proc.stdout and "x MHA f" in proc.stdout
