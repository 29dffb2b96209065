"""The runtime's GPU scripts run on the CPU: scripts/bench_attention.py and scripts/bench_eval_path.py end
to end, scripts/gpu_runtime_fa3.py's checks against a stand-in FA3 build (the GPU runs are the lead's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy", category=UserWarning)
    import torch

from flashdoctor.runtime import availability, dispatch, state
from flashdoctor.runtime import call as runtime_call
from tests.support.paths import ROOT, SCRIPTS, load_script
from tests.support.runtime_fakes import FA3_FWD_KERNEL, FA3_LABEL, fa3_minimal_build_fixture  # noqa: F401 (a fixture)


def run_script(name: str, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run scripts/<name>.py with a --json file; returns the process and the JSON it wrote."""
    out = Path(args[-1]) if args and args[-1].endswith(".json") else None
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / f"{name}.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, json.loads(out.read_text()) if out is not None else {}


@pytest.mark.system
@pytest.mark.slow
def test_bench_attention_quick_cpu_run(tmp_path: Path) -> None:
    out = str(tmp_path / "bench.json")
    proc, result = run_script("bench_attention", "--device", "cpu", "--quick", "--json", out)
    assert result["schema"] == "flashdoctor/bench-attention/1" and result["ok"] is True
    assert result["models"]["replaced"] == ["layers.0.self_attn", "layers.1.self_attn"]
    rows = {r["variant"]: r for r in result["models"]["rows"]}
    assert set(rows) == {
        "naive attention",
        "nn.MultiheadAttention",
        "flashdoctor (auto)",
        "flashdoctor (fused eval)",
    }
    for r in rows.values():
        assert r["forward_ms"] > 0 and r["forward_backward_ms"] > 0
        assert len(r["forward_ms_runs"]) == result["shape"]["iters"]
    auto = rows["flashdoctor (auto)"]
    # On the CPU the replaced modules ran the standard-attention fallback, with nn.MultiheadAttention's numbers.
    # Every call of every layer, eval and training: warm-ups + timed runs, the checked eval forward,
    # the checked training step and the profiled one (no memory runs on a CPU).
    shape = result["shape"]
    assert auto["backends_used"] == {"sdpa": shape["layers"] * (2 * (shape["warmup"] + shape["iters"]) + 3)}
    # With torch's fused encoder-layer path kept, eval without grad is torch's: only training calls dispatch.
    fused = rows["flashdoctor (fused eval)"]
    assert fused["backends_used"] == {"sdpa": shape["layers"] * ((shape["warmup"] + shape["iters"]) + 2)}
    assert auto["rel_err_out"] < 1e-5 and auto["rel_err_input_grad"] < 1e-5
    assert rows["naive attention"]["rel_err_out"] < 1e-5
    assert result["models"]["decision"]["backend"] == "sdpa"
    names = [c["check"] for c in result["checks"]]
    assert any(n.startswith("padded batch (eval)") for n in names)
    assert any(n.startswith("flash_attention[sdpa] fp32 d64 gqa") for n in names)
    assert "checks: " in proc.stdout and "x MHA f" in proc.stdout


def _script(name: str) -> Any:
    return load_script(name)


def test_gpu_runtime_fa3_proof_logic_on_a_stand_in_fa3_build(
    fa3_minimal_build: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """scripts/gpu_runtime_fa3.py is the lead's proof on the H100; here its checks run against the CPU
    stand-in of an FA3 minimal build (tests/support/runtime_fakes.py: real import, real label, FA3's kernel name
    in the profile, a crash for what the build lacks)."""
    script = _script("gpu_runtime_fa3")
    fake = fa3_minimal_build
    state.LOGGED.clear()
    state.FAILED.clear()

    def h100_statuses(device: object = None) -> tuple[dispatch.BackendStatus, ...]:
        found = availability.availability("cuda")
        return dispatch.backend_statuses("cuda", (9, 0), found, availability.versions(found))

    monkeypatch.setattr(script, "available_backends", h100_statuses)
    monkeypatch.setattr(script, "SHAPE", (1, 64, 4))  # batch, seq, heads: CPU-sized
    result = script.run_checks(torch.device("cpu"))
    failed = [c for c in result["checks"] if not c["ok"]]
    assert failed == [] and result["ok"]
    assert result["fa3_build"] == f"{FA3_LABEL}: head dim 128, bf16"
    bf16, fp16, hd64 = result["cases"]
    assert bf16["ran"] == {"fa3": 3} and bf16["fa3_kernels"] == [FA3_FWD_KERNEL]
    assert fp16["ran"] == {"sdpa-flash": 3} and fp16["fa3_kernels"] == []
    (line,) = fp16["log"]
    assert f"skipped fa3: fp16 not compiled in this build ({FA3_LABEL})" in line
    assert hd64["ran"] == {"sdpa-flash": 3}
    assert f"head dim 64 not compiled in this build ({FA3_LABEL})" in hd64["log"][0]
    assert fake.calls == [(torch.bfloat16, 128, True)] * 3  # never called for what the build lacks
    # The proof can fail: a dispatcher that ignored the label would call into the missing fp16 kernel
    # (the real build segfaults there; the stand-in raises).
    monkeypatch.setattr(dispatch, "build_coverage", lambda variant, version: None)
    runtime_call._decide_cached.cache_clear()
    with pytest.raises(BaseException, match=r"segfault: no kernel for torch\.float16"):
        script.run_checks(torch.device("cpu"))
    runtime_call._decide_cached.cache_clear()


def test_gpu_runtime_fa3_says_what_it_needs_without_a_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    assert _script("gpu_runtime_fa3").main([]) == 2
    assert "no CUDA GPU here" in capsys.readouterr().err


@pytest.mark.system
@pytest.mark.slow
def test_bench_eval_path_quick_cpu_run(tmp_path: Path) -> None:
    """Eval after replacement, side by side: torch's fused path runs where it is kept, flashdoctor's
    dispatch where it is not (the default), each seen in the profile and in backend_usage()."""
    proc, result = run_script("bench_eval_path", "--quick", "--json", str(tmp_path / "eval.json"))
    assert result["schema"] == "flashdoctor/bench-eval-path/1" and result["ok"] is True
    rows = {(r["kind"], r["padded"], r["variant"]): r for r in result["rows"]}
    layers = result["layers"]
    torch_fused = rows[("encoder", False, "torch fused (nn as built)")]
    kept = rows[("encoder", False, "replaced, native_fast_path=True")]
    default = rows[("encoder", False, "replaced, native_fast_path=False")]
    for r in (torch_fused, kept):
        assert "_transformer_encoder_layer_fwd" in r["fused_ops"] and r["flashdoctor"] == {}
    assert default["fused_ops"] == [] and default["flashdoctor"] == {"sdpa": layers}
    assert rows[("mha", False, "FlashAttention")]["flashdoctor"] == {"sdpa": 1}
    assert all(r["ms"] > 0 and r["ratio_to_torch"] > 0 for r in result["rows"])
    assert "x torch" in proc.stdout and "checks: " in proc.stdout
