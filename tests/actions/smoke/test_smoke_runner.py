"""The real runner in a real subprocess with real (CPU) torch, on fake FlashAttention installs.

``device="cpu"`` is the hidden testing mode: toy shapes, SDPA math/flash on CPU (cuDNN and efficient
have no CPU kernel: a real "no kernel" skip), and the fakes from smoke_fakes.py in the exact import paths
and calling conventions of FA2, FA3 and FA4. What is checked here is what runs on the GPU machine:
the orchestration, the numerics against the fp32 reference, the profiler, crash isolation, reporting.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from flashdoctor.actions.smoke import Case, CaseStatus, SmokeReport, run_bench, run_smoke
from flashdoctor.knowledge.schemas import schema_validator
from flashdoctor.model.findings import Status
from tests.support.smoke_fakes import runner_env, write_fakes

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> SmokeReport:
    """FA2 as a minimal build (head dim 16 only), FA3 returning (out, lse), FA4 with its dist metadata."""
    root = write_fakes(tmp_path_factory.mktemp("good"), fa2="good", fa3="good", fa4="good", head_dims={16})
    return run_smoke(sys.executable, runner_env(root), device="cpu", timeout=120)


def rows(report: SmokeReport) -> dict[tuple[str, str], Any]:
    return {(r.backend, r.case.name): r for r in report.results}


@pytest.mark.slow
def test_good_install_passes(good: SmokeReport) -> None:
    assert good.status == "passed" and good.exit_code() == 0, [f.message for f in good.findings]
    assert good.runs == 1 and good.device == "cpu" and good.torch and good.torch.startswith("2.")
    assert {b.name: (b.installed, b.version) for b in good.backends if b.kind == "variant"} == {
        "fa2": (True, "2.8.3+fake"),
        "fa3": (True, "3.0.0+fake"),
        "fa4": (True, "4.0.0b1"),  # from the flash-attn-4 distribution metadata
    }
    r = rows(good)
    for backend in ("sdpa-math", "sdpa-flash", "fa2", "fa3", "fa4"):
        for case in ("seed", "seed-causal", "seed-fp16", "gqa"):
            row = r[(backend, case)]
            assert row.status is CaseStatus.PASS, (backend, case, row.reason)
            assert row.out_rel is not None and row.out_rel < row.tolerance.out
            assert row.grad_rel is not None and row.grad_rel < row.tolerance.grad
            assert row.fwd_ms and row.fwd_ms > 0 and row.fwd_bwd_ms and row.fwd_bwd_ms > 0
            assert row.speedup_fwd_bwd is not None
    # varlen: only the variants have an entry point; FA3/FA4 return (out, lse), handled
    assert [b for (b, c) in r if c == "varlen"] == ["fa2", "fa3", "fa4"]
    assert all(r[(b, "varlen")].status is CaseStatus.PASS for b in ("fa2", "fa3", "fa4"))
    # The profiler used must not drag in TorchInductor (torch.profiler.profile does: 1-5 s).
    assert not [n for n in good.notes if "the runner imported" in n], good.notes


def test_minimal_build_head_dim_is_not_compiled_not_failed(good: SmokeReport) -> None:
    r = rows(good)
    for b in ("fa2", "fa3"):  # ahead-of-time builds: a head dim left out of the build
        assert (r[(b, "long")].status, r[(b, "long")].category) == (CaseStatus.SKIP, "not_compiled")
        assert r[(b, "long")].reason == "head dim 32 not compiled in this build"
    assert r[("fa4", "long")].category == "unsupported_input"  # FA4 compiles on the fly
    nc = [f for f in good.findings if f.code == "smoke-not-compiled"]
    assert {f.variant for f in nc} == {"fa2", "fa3"} and all(f.status is Status.WARN for f in nc)


def test_kernel_proof_from_the_profiler(good: SmokeReport) -> None:
    r = rows(good)
    assert r[("fa2", "seed")].kernel == "flash_fwd_kernel_fake"  # the fake's record_function range
    assert r[("sdpa-flash", "seed")].kernel_proof is True
    assert "aten::_scaled_dot_product_attention_math" in r[("sdpa-math", "seed")].kernels
    assert not [f for f in good.findings if f.code == "smoke-no-kernel-proof"]


def test_sdpa_without_cpu_kernel_is_a_skip(good: SmokeReport) -> None:
    r = rows(good)
    assert {r[(b, "seed")].category for b in ("sdpa-cudnn", "sdpa-efficient")} == {"no_kernel"}
    assert {f.status for f in good.findings if f.code == "smoke-sdpa-unavailable"} == {Status.SKIP}


def test_wrong_input_gets_clear_messages(good: SmokeReport) -> None:
    got = {(c.backend, c.check): (c.raised, c.error) for c in good.input_checks}
    for b in ("fa2", "fa3", "fa4"):
        assert got[(b, "fp32")] == (True, "RuntimeError: FlashAttention only support fp16 and bf16 data type")
        assert got[(b, "head_dim_512")] == (
            True,
            "RuntimeError: FlashAttention forward only supports head dimension at most 256",
        )


def test_json_report_validates(good: SmokeReport) -> None:
    doc = json.loads(json.dumps(good.to_json()))
    schema_validator("smoke-report.schema.json").validate(doc)
    assert (
        doc["status"] == "passed" and doc["torch_import_s"] > 0 and doc["elapsed_s"] > doc["torch_import_s"]
    )


@pytest.mark.slow
def test_wrong_results_fail(tmp_path: Path) -> None:
    root = write_fakes(tmp_path / "wrong", fa2="good", scale_power=-1.0)  # softmax scale 1/d, not 1/sqrt(d)
    r = run_smoke(
        sys.executable, runner_env(root), device="cpu", timeout=120, variants=["fa2"], input_checks=False
    )
    assert r.exit_code() == 1 and r.variant_ok("fa2") is False
    fa2 = [x for x in r.results if x.backend == "fa2"]
    assert fa2 and all(x.status is CaseStatus.FAIL and x.category == "numerics" for x in fa2)
    assert all(x.status is CaseStatus.PASS for x in r.results if x.backend == "sdpa-math")
    f = next(f for f in r.findings if f.code == "smoke-numerics")
    assert f.variant == "fa2" and "out error" in f.message


@pytest.mark.slow
def test_an_output_of_the_wrong_dtype_fails(tmp_path: Path) -> None:
    """A kernel that returns fp32 for bf16/fp16 inputs (right values, wrong dtype) passed every case: the
    check compared values in fp32 only. Code using it gets tensors of another dtype than its own."""
    root = write_fakes(tmp_path / "fp32", fa2="fp32-out")
    r = run_smoke(
        sys.executable, runner_env(root), device="cpu", timeout=120, variants=["fa2"], input_checks=False
    )
    assert r.exit_code() == 1 and r.variant_ok("fa2") is False
    seed = rows(r)[("fa2", "seed")]
    assert seed.status is CaseStatus.FAIL and seed.category == "numerics"
    assert seed.reason == "out is fp32, not bf16 like its inputs (bf16 tolerance)"
    assert rows(r)[("fa2", "seed-fp16")].reason == "out is fp32, not fp16 like its inputs (fp16 tolerance)"
    assert rows(r)[("fa2", "varlen")].status is CaseStatus.PASS  # the fake's varlen keeps the dtype
    assert all(x.status is CaseStatus.PASS for x in r.results if x.backend == "sdpa-math")


@pytest.mark.slow
def test_crashes_are_isolated(tmp_path: Path) -> None:
    """FA3 aborts on import, FA2 segfaults in every call: both are findings, the rest still runs. A crashed
    case is left out and the runner restarted for the backend's other cases; after its second crashed
    case the backend is left out (each restart costs a torch import)."""
    root = write_fakes(tmp_path / "crash", fa2="segfault", fa3="abort-on-import")
    r = run_smoke(
        sys.executable, runner_env(root), device="cpu", timeout=120, variants=["fa2", "fa3", "sdpa-flash"]
    )
    assert r.runs == 4 and r.exit_code() == 1  # fa3's import, fa2's seed, fa2's seed-causal, the rest
    for case in ("seed", "seed-causal"):
        row = rows(r)[("fa2", case)]
        assert row.status is CaseStatus.CRASH and row.reason == "the interpreter died (SIGSEGV)"
    rest = [x for x in r.results if x.backend == "fa2" and x.case.name not in ("seed", "seed-causal")]
    assert rest and {x.status for x in rest} == {CaseStatus.NOT_RUN}
    assert {x.reason for x in rest} == {"not run: fa2 crashed earlier (seed-causal)"}
    crash = next(f for f in r.findings if f.code == "smoke-crash")
    assert crash.evidence and "Segmentation fault" in crash.evidence  # faulthandler's stack on stderr
    imp = next(f for f in r.findings if f.code == "smoke-import-error")
    assert imp.variant == "fa3" and "SIGABRT" in imp.message
    assert all(x.status is CaseStatus.PASS for x in r.results if x.backend in ("sdpa-math", "sdpa-flash"))


@pytest.mark.slow
def test_a_hang_is_a_timeout_and_the_rest_still_runs(tmp_path: Path) -> None:
    root = write_fakes(tmp_path / "hang", fa2="hang", fa3="good")
    t0 = time.monotonic()
    r = run_smoke(
        sys.executable,
        runner_env(root),
        device="cpu",
        timeout=120,
        stall_timeout=8,
        variants=["fa2", "fa3"],
        input_checks=False,
    )
    assert time.monotonic() - t0 < 60
    assert rows(r)[("fa2", "seed")].status is CaseStatus.TIMEOUT
    assert any(f.code == "smoke-timeout" and f.variant == "fa2" for f in r.findings)
    assert rows(r)[("fa3", "seed")].status is CaseStatus.PASS  # ran in the restarted runner
    assert r.runs == 2


def test_no_gpu_skips_cleanly() -> None:
    r = run_smoke(sys.executable, runner_env(), timeout=120)  # device="cuda" on this CPU-only torch
    assert r.status == "skipped" and r.exit_code() == 0
    assert r.skipped_reason is not None and "CPU-only build" in r.skipped_reason


def test_interpreter_without_torch_skips(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    r = run_smoke(python, {"PATH": "/usr/bin:/bin"}, timeout=60)
    assert r.skipped_reason == f"torch is not installed in {python}" and r.exit_code() == 0


def test_torch_that_fails_to_import(tmp_path: Path) -> None:
    fake = tmp_path / "broken" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "raise OSError('libcudart.so.13: cannot open shared object file: No such file or directory')\n"
    )
    r = run_smoke(sys.executable, runner_env(tmp_path / "broken"), timeout=60)
    assert r.exit_code() == 1
    assert r.findings[0].code == "smoke-torch-import-error" and "libcudart.so.13" in r.findings[0].message


@pytest.mark.slow
def test_bench_on_cpu(tmp_path: Path) -> None:
    root = write_fakes(tmp_path / "fakes", fa2="good")
    case = Case("bench", 2, 64, 4, 16, causal=True)
    r = run_bench(
        sys.executable,
        runner_env(root),
        case,
        device="cpu",
        repeats=3,
        backends=["sdpa-flash", "fa2", "sdpa-cudnn"],
    )
    rows_ = {x.backend: x for x in r.rows}
    assert set(rows_) == {"sdpa-math", "sdpa-flash", "sdpa-cudnn", "fa2"}
    for b in ("sdpa-math", "sdpa-flash", "fa2"):
        assert rows_[b].status == "ok" and rows_[b].fwd_ms and rows_[b].fwd_bwd_ms and rows_[b].fwd_tflops
    assert rows_["sdpa-cudnn"].status == "skip"
    assert sum(x.fastest_fwd_bwd for x in r.rows) == 1
    assert r.matmul_peak_tflops and r.matmul_peak_tflops > 0
    assert r.recommendation and r.recommendation.startswith("On this CPU at B2 N64 H4 D16 bf16 causal, use ")
    schema_validator("bench-report.schema.json").validate(json.loads(json.dumps(r.to_json())))
