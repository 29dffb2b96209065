"""The smoke's decisions, fed literal runner events: tolerances, error classification, crashes, findings."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flashdoctor.actions.smoke import _raise_usage
from flashdoctor.actions.smoke.run import in_flight, read_events
from flashdoctor.decide.smoke.events import RunInfo
from flashdoctor.decide.smoke.judge import (
    SMOKE_CODES,
    classify_error,
    judge_smoke,
    proof_kernel,
    tolerance_for,
)
from flashdoctor.knowledge.schemas import schema_validator
from flashdoctor.model.cases import BACKENDS, SMOKE_CASES_CUDA, Case, normalise_backends
from flashdoctor.model.findings import Status
from flashdoctor.model.smoke import CaseStatus, GpuInfo, TensorError

H100 = GpuInfo(0, "NVIDIA H100 80GB HBM3", "9.0", 79.1)
T4 = GpuInfo(0, "Tesla T4", "7.5", 15.0)
SEED = SMOKE_CASES_CUDA[0]
LONG = SMOKE_CASES_CUDA[3]


def seed(**kw: Any) -> Case:
    d = {"name": "seed", "batch": 32, "seqlen": 196, "heads": 16, "head_dim": 64}
    d.update(kw)
    return Case(**d)  # type: ignore[arg-type]


# -- error classification ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("error", "backend", "case", "gpu", "category", "status"),
    [
        (
            "RuntimeError: No available kernel. Aborting execution.",
            "sdpa-cudnn",
            SEED,
            H100,
            "no_kernel",
            CaseStatus.SKIP,
        ),
        (
            "RuntimeError: No viable backend for scaled_dot_product_attention was found.",
            "sdpa-efficient",
            SEED,
            H100,
            "no_kernel",
            CaseStatus.SKIP,
        ),
        (
            "RuntimeError: FlashAttention only supports Ampere GPUs or newer.",
            "fa2",
            SEED,
            T4,
            "unsupported_gpu",
            CaseStatus.SKIP,
        ),
        (
            "AssertionError: Unsupported compute capability. Supported: 9.x, 10.x, 11.x",
            "fa4",
            SEED,
            T4,
            "unsupported_gpu",
            CaseStatus.SKIP,
        ),
        (
            "RuntimeError: CUDA error: no kernel image is available for execution on the device",
            "fa2",
            SEED,
            H100,
            "no_kernel_image",
            CaseStatus.ERROR,
        ),
        # a minimal build (only head dim 128 compiled) asked for head dim 64: skip, not a failure
        (
            "RuntimeError: head dim 64 is not compiled in this build",
            "fa2",
            SEED,
            H100,
            "not_compiled",
            CaseStatus.SKIP,
        ),
        (
            "RuntimeError: Unsupported head dimension 64 (this build: FLASH_ATTN_HEADDIMS=128)",
            "fa3",
            SEED,
            H100,
            "not_compiled",
            CaseStatus.SKIP,
        ),
        # FA4 compiles on the fly: nothing is "left out of the build"
        (
            "RuntimeError: head dim 64 is not supported",
            "fa4",
            SEED,
            H100,
            "unsupported_input",
            CaseStatus.SKIP,
        ),
        (
            "RuntimeError: FlashAttention forward only supports head dimension at most 256",
            "fa2",
            seed(head_dim=512),
            H100,
            "unsupported_input",
            CaseStatus.SKIP,
        ),
        (
            "RuntimeError: FlashAttention only support fp16 and bf16 data type",
            "fa2",
            seed(dtype="fp32"),
            H100,
            "unsupported_input",
            CaseStatus.SKIP,
        ),
        (
            "AssertionError: inputs must be float16 or bfloat16",
            "fa4",
            seed(dtype="fp32"),
            H100,
            "unsupported_input",
            CaseStatus.SKIP,
        ),
        # a bf16-only build asked for fp16
        (
            "RuntimeError: FlashAttention only support fp16 and bf16 data type",
            "fa2",
            seed(dtype="fp16"),
            H100,
            "not_compiled",
            CaseStatus.SKIP,
        ),
        (
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 8.00 GiB",
            "fa2",
            LONG,
            H100,
            "oom",
            CaseStatus.SKIP,
        ),
        ("torch.OutOfMemoryError: CUDA out of memory.", "sdpa-math", LONG, H100, "oom", CaseStatus.SKIP),
        # a build that says it left something out, in words other than "head dim" or "dtype"
        (
            "RuntimeError: causal kernels were not built (minimal)",
            "fa2",
            SEED,
            H100,
            "not_compiled",
            CaseStatus.SKIP,
        ),
        (
            "TypeError: got an unexpected keyword argument 'enable_gqa'",
            "sdpa-flash",
            SEED,
            H100,
            "no_kernel",
            CaseStatus.SKIP,
        ),
        (
            "RuntimeError: CUDA error: an illegal memory access was encountered",
            "fa2",
            SEED,
            H100,
            "error",
            CaseStatus.ERROR,
        ),
        (
            "RuntimeError: cuDNN Frontend error: [cudnn_frontend] Error: No execution plans support the graph.",
            "sdpa-cudnn",
            SEED,
            H100,
            "error",
            CaseStatus.ERROR,
        ),
    ],
)
def test_classify_error(
    error: str, backend: str, case: Case, gpu: GpuInfo, category: str, status: CaseStatus
) -> None:
    c = classify_error(error, backend, case, gpu)
    assert (c.category, c.status) == (category, status), c.reason
    assert c.reason


def test_classify_messages_say_what_to_know() -> None:
    c = classify_error("RuntimeError: head dim 64 is not compiled in this build", "fa2", SEED, H100)
    assert c.reason == "head dim 64 not compiled in this build"
    c = classify_error("RuntimeError: FlashAttention only supports Ampere GPUs or newer.", "fa2", SEED, T4)
    assert c.reason == "cannot run on GPU 0 Tesla T4 (sm_75)"
    c = classify_error(
        "RuntimeError: FlashAttention only support fp16 and bf16 data type", "fa2", seed(dtype="fp32"), H100
    )
    assert "fp16/bf16 only" in c.reason
    c = classify_error(
        "RuntimeError: No available kernel.",
        "sdpa-flash",
        SEED,
        H100,
        warnings=["Flash attention requires q,k,v to have the same last dimension"],
    )
    assert "same last dimension" in c.reason


def test_tolerances_are_ordered_by_precision() -> None:
    bf16, fp16, fp32 = (tolerance_for(d) for d in ("bf16", "fp16", "fp32"))
    assert bf16.out > fp16.out > fp32.out
    assert bf16.grad > fp16.grad > fp32.grad
    assert all(t.grad >= t.out for t in (bf16, fp16, fp32))


def test_tensor_error_rel() -> None:
    assert TensorError(0.01, 2.0).rel == pytest.approx(0.005)
    assert TensorError(None, 2.0, finite=False).rel == float("inf")
    assert TensorError(0.0, 0.0).rel == 0.0


@pytest.mark.parametrize(
    ("backend", "names", "expected"),
    [
        ("fa2", ["void flash_fwd_kernel<Flash_fwd_kernel_traits<128, 128, 64, 4>>(Flash_fwd_params)"], True),
        (
            "fa2",
            ["void pytorch_flash::flash_fwd_kernel<...>(pytorch_flash::Flash_fwd_params)"],
            False,
        ),  # torch's own copy
        ("sdpa-flash", ["void pytorch_flash::flash_fwd_kernel<...>"], True),
        (
            "sdpa-cudnn",
            ["cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_3_64x64x128_4x1x1_kernel0_0"],
            True,
        ),
        (
            "sdpa-efficient",
            [
                "fmha_cutlassF_bf16_aligned_64x64_rf_sm80(PyTorchMemEffAttention::AttentionKernel<...>::Params)"
            ],
            True,
        ),
        (
            "sdpa-math",
            [
                "void at::native::(anonymous namespace)::cunn_SoftMaxForward<4, float>",
                "sm90_xmma_gemm_bf16bf16",
            ],
            True,
        ),
        (
            "fa3",
            ["void cutlass::device_kernel<flash::enable_sm90_or_later<flash::FlashAttnFwdSm90<...>>>"],
            True,
        ),
        (
            "fa4",
            ["kernel_cutlass_kernel_flash_attncuteflash_fwd_sm90FlashAttentionForwardSm90_object_at_"],
            True,
        ),
        (
            "fa2",
            ["sm90_xmma_gemm_bf16bf16_bf16f32", "cunn_SoftMaxForward"],
            False,
        ),  # a fallback, not the kernel
    ],
)
def test_kernel_proof(backend: str, names: list[str], expected: bool) -> None:
    assert (proof_kernel(backend, names) is not None) is expected


def test_normalise_backends() -> None:
    assert normalise_backends(None) == BACKENDS
    assert normalise_backends(["fa2"]) == ("sdpa-math", "fa2")  # the fallback always runs: the baseline
    assert normalise_backends(["FA3", "sdpa-cudnn"]) == ("sdpa-math", "sdpa-cudnn", "fa3")
    with pytest.raises(ValueError, match="unknown backend 'fa5'"):
        normalise_backends(["fa5"])


# -- judging events ---------------------------------------------------------------------------------
def errs(out: float = 1e-3, grad: float = 2e-3, ref: float = 2.0, finite: bool = True) -> dict[str, Any]:
    d = {"out": {"max_abs": out * ref, "ref_max": ref, "finite": finite}}
    for g in ("dq", "dk", "dv"):
        d[g] = {"max_abs": grad * ref, "ref_max": ref, "finite": True}
    if not finite:
        d["out"]["max_abs"] = None
    return d


def base_events(variants: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    ev: list[dict[str, Any]] = [
        {"event": "start"},
        {
            "event": "torch",
            "version": "2.11.0+cu130",
            "cuda": "13.0",
            "import_s": 6.5,
            "cuda_available": True,
            "device_count": 1,
        },
    ]
    for name in ("fa2", "fa3", "fa4"):
        v = (variants or {}).get(name, {"installed": False})
        ev.append({"event": "variant", "backend": name, **v})
    ev.append({"event": "gpu", "gpu": 0, "name": H100.name, "capability": "9.0", "memory_gb": 79.1})
    return ev


def ok_case(
    backend: str, case: str, fwd: float, fb: float, kernels: list[str], **e: Any
) -> list[dict[str, Any]]:
    k = {"gpu": 0, "backend": backend, "case": case}
    return [
        {"event": "case_start", **k, "phase": "check"},
        {"event": "result", **k, "ok": True, "errors": errs(**e)},
        {"event": "kernels", **k, "names": kernels},
        {"event": "timing", **k, "fwd_ms": fwd, "fwd_bwd_ms": fb, "peak_mib": 100.0},
    ]


FA2 = {"installed": True, "version": "2.8.3", "import_ok": True, "module": "flash_attn", "varlen": True}
CASES = (SEED, LONG)


def judge(
    events: list[dict[str, Any]],
    requested: list[str] | None = None,
    backends: tuple[str, ...] = ("sdpa-math", "sdpa-cudnn", "fa2"),
) -> Any:
    return judge_smoke(events, RunInfo("/venv/bin/python", "cuda", backends, requested, 12.5), cases=CASES)


def test_all_pass_with_speedups_and_kernels() -> None:
    ev = base_events({"fa2": FA2})
    ev += ok_case("sdpa-math", "seed", 0.49, 1.5, ["cunn_SoftMaxForward"])
    ev += ok_case("sdpa-math", "long", 4.0, 8.0, ["cunn_SoftMaxForward"])
    ev += ok_case("sdpa-cudnn", "seed", 0.036, 0.15, ["cudnn_generated_fort_native_sdpa_sm90_flash_fprop"])
    ev += ok_case("sdpa-cudnn", "long", 0.25, 1.0, ["cudnn_generated_fort_native_sdpa_sm90_flash_fprop"])
    ev += ok_case("fa2", "seed", 0.118, 0.4, ["flash_fwd_kernel<Flash_fwd_kernel_traits>"])
    ev += ok_case("fa2", "long", 0.4, 1.6, ["flash_fwd_kernel<Flash_fwd_kernel_traits>"])
    ev.append({"event": "done"})
    r = judge(ev)
    assert r.status == "passed" and r.exit_code() == 0
    assert {(x.backend, x.case.name): x.status for x in r.results} == {
        (b, c): CaseStatus.PASS for b in ("sdpa-math", "sdpa-cudnn", "fa2") for c in ("seed", "long")
    }
    cudnn_seed = next(x for x in r.results if x.backend == "sdpa-cudnn" and x.case.name == "seed")
    assert cudnn_seed.speedup_fwd == pytest.approx(0.49 / 0.036)
    assert cudnn_seed.speedup_fwd_bwd == pytest.approx(10.0)
    assert cudnn_seed.kernel_proof is True
    assert r.variant_ok("fa2") is True
    ok = {f.subject: f for f in r.findings if f.code == "smoke-ok"}
    assert set(ok) == {
        "sdpa-math @ GPU 0 NVIDIA H100 80GB HBM3 (sm_90)",
        "sdpa-cudnn @ GPU 0 NVIDIA H100 80GB HBM3 (sm_90)",
        "fa2 @ GPU 0 NVIDIA H100 80GB HBM3 (sm_90)",
    }
    assert (
        "up to 10.0× the fallback (fwd+bwd, seed)"
        in ok["sdpa-cudnn @ GPU 0 NVIDIA H100 80GB HBM3 (sm_90)"].message
    )
    assert r.torch_import_s == 6.5


def test_numerical_failure_fails_the_variant() -> None:
    ev = base_events({"fa2": FA2})
    ev += ok_case("sdpa-math", "seed", 0.49, 1.5, ["softmax"])
    ev += ok_case("fa2", "seed", 0.1, 0.3, ["flash_fwd_kernel"], out=0.3)  # out error 0.3 > 0.04
    ev += ok_case("fa2", "long", 0.1, 0.3, ["flash_fwd_kernel"], finite=False)
    r = judge(ev, backends=("sdpa-math", "fa2"))
    rows = {(x.backend, x.case.name): x for x in r.results}
    assert rows[("fa2", "seed")].status is CaseStatus.FAIL
    assert rows[("fa2", "seed")].reason == "out error 3.0e-01 > 4.0e-02 (bf16 tolerance)"
    assert rows[("fa2", "long")].status is CaseStatus.FAIL and "inf/nan" in str(rows[("fa2", "long")].reason)
    assert rows[("sdpa-math", "long")].status is CaseStatus.NOT_RUN
    fails = [f for f in r.findings if f.status is Status.FAIL]
    assert [f.code for f in fails] == ["smoke-numerics"]
    assert fails[0].variant == "fa2" and "[seed, long]" in fails[0].message
    assert r.exit_code() == 1 and r.status == "failed"
    assert r.variant_ok("fa2") is False


def test_a_grad_error_alone_fails() -> None:
    ev = base_events({"fa2": FA2}) + ok_case("fa2", "seed", 0.1, 0.3, ["flash_fwd_kernel"], grad=0.06)
    r = judge(ev, backends=("sdpa-math", "fa2"))
    row = next(x for x in r.results if x.backend == "fa2" and x.case.name == "seed")
    assert row.status is CaseStatus.FAIL
    assert row.reason is not None and row.reason.startswith("dq error 6.0e-02 > 5.0e-02")


def test_not_compiled_head_dim_is_a_warning_not_a_failure() -> None:
    ev = base_events({"fa2": FA2})
    ev += ok_case("fa2", "long", 0.4, 1.6, ["flash_fwd_kernel"])
    ev.append(
        {
            "event": "result",
            "gpu": 0,
            "backend": "fa2",
            "case": "seed",
            "ok": False,
            "phase": "forward",
            "error_type": "RuntimeError",
            "error": "RuntimeError: FlashAttention has no kernel for head dim 64 in this build",
        }
    )
    r = judge(ev, backends=("sdpa-math", "fa2"))
    row = next(x for x in r.results if x.backend == "fa2" and x.case.name == "seed")
    assert (row.status, row.category) == (CaseStatus.SKIP, "not_compiled")
    f = next(f for f in r.findings if f.code == "smoke-not-compiled")
    assert f.status is Status.WARN and "head dim 64 not compiled in this build" in f.message
    assert f.evidence == "RuntimeError: FlashAttention has no kernel for head dim 64 in this build"
    assert r.exit_code() == 0 and r.variant_ok("fa2") is True


def test_missing_kernel_proof_warns() -> None:
    ev = base_events({"fa2": FA2}) + ok_case(
        "fa2", "seed", 0.1, 0.3, ["sm90_xmma_gemm_bf16bf16", "cunn_SoftMaxForward"]
    )
    r = judge(ev, backends=("sdpa-math", "fa2"))
    f = next(f for f in r.findings if f.code == "smoke-no-kernel-proof")
    assert f.status is Status.WARN and "sm90_xmma_gemm_bf16bf16" in str(f.evidence)


def test_crash_in_flight_case_and_not_run_rest() -> None:
    ev = base_events({"fa2": FA2})
    ev += ok_case("sdpa-math", "seed", 0.49, 1.5, ["softmax"])
    ev += [
        {"event": "backend_start", "gpu": 0, "backend": "fa2"},
        {"event": "case_start", "gpu": 0, "backend": "fa2", "case": "seed", "phase": "check"},
        {"event": "run", "attempt": 0, "returncode": -11, "signal": "SIGSEGV"},
        {
            "event": "crash",
            "gpu": 0,
            "backend": "fa2",
            "case": "seed",
            "phase": "check",
            "signal": "SIGSEGV",
            "rc": -11,
            "stderr_tail": "Fatal Python error: Segmentation fault\n  File flash_attn_interface.py, line 90",
        },
        {"event": "run", "attempt": 1, "returncode": 0},
    ]
    r = judge(ev, backends=("sdpa-math", "fa2"))
    rows = {(x.backend, x.case.name): x for x in r.results}
    assert rows[("fa2", "seed")].status is CaseStatus.CRASH
    assert rows[("fa2", "seed")].reason == "the interpreter died (SIGSEGV)"
    assert rows[("fa2", "long")].status is CaseStatus.NOT_RUN
    f = next(f for f in r.findings if f.code == "smoke-crash")
    assert f.status is Status.FAIL and f.variant == "fa2"
    assert r.runs == 2 and r.exit_code() == 1


def test_crash_outside_a_case_is_still_a_finding() -> None:
    ev = base_events({"fa2": FA2})
    ev += ok_case("fa2", "seed", 0.1, 0.3, ["flash_fwd_kernel"])
    ev.append(
        {
            "event": "crash",
            "gpu": 0,
            "backend": "fa2",
            "case": "input:fp32",
            "phase": "input",
            "signal": "SIGABRT",
            "rc": -6,
        }
    )
    r = judge(ev, backends=("sdpa-math", "fa2"))
    f = next(f for f in r.findings if f.code == "smoke-crash")
    assert "during input:fp32" in f.message and f.status is Status.FAIL


def test_timeout_of_a_hanging_call() -> None:
    ev = base_events({"fa2": FA2})
    ev += [
        {"event": "case_start", "gpu": 0, "backend": "fa2", "case": "seed", "phase": "check"},
        {
            "event": "timeout",
            "gpu": 0,
            "backend": "fa2",
            "case": "seed",
            "phase": "check",
            "timeout_s": 120.0,
            "stalled": True,
        },
    ]
    r = judge(ev, backends=("sdpa-math", "fa2"))
    row = next(x for x in r.results if x.backend == "fa2" and x.case.name == "seed")
    assert row.status is CaseStatus.TIMEOUT and row.reason == "made no progress for 120.0 s (killed)"
    assert any(f.code == "smoke-timeout" and f.status is Status.FAIL for f in r.findings)


def test_import_failures() -> None:
    broken = {
        "installed": True,
        "version": "2.8.3",
        "import_ok": False,
        "error": "ImportError: undefined symbol: _ZN3c104cuda9SetDeviceEi",
    }
    ev = base_events({"fa2": broken})
    ev.append(
        {
            "event": "crash",
            "gpu": None,
            "backend": "fa3",
            "case": None,
            "phase": "import",
            "signal": "SIGABRT",
            "rc": -6,
        }
    )
    r = judge(ev, backends=("sdpa-math", "fa2", "fa3"))
    codes = {(f.code, f.variant) for f in r.findings if f.status is Status.FAIL}
    assert codes == {("smoke-import-error", "fa2"), ("smoke-import-error", "fa3")}
    msg = next(f.message for f in r.findings if f.variant == "fa3")
    assert "the interpreter died (SIGABRT)" in msg
    # The import error goes through the failure-log engine (flashdoctor explain): its cause and fix.
    fix = next(f.fix for f in r.findings if f.variant == "fa2")
    assert fix is not None and fix.startswith("[torch-abi-mismatch]")
    assert not [x for x in r.results if x.backend in ("fa2", "fa3")]


def test_the_explained_fix_of_a_smoke_error_is_for_this_machine() -> None:
    # The smoke ran here, on the GPU its events name: the engine's fix is this machine's, not "For the
    # machine in this log (NVIDIA GeForce RTX 5090 (sm_120))" as for a log pasted from elsewhere.
    ev = [e for e in base_events() if e["event"] != "gpu"]
    ev.append({"event": "gpu", "gpu": 0, "name": "NVIDIA GeForce RTX 5090", "capability": "12.0"})
    ev.append({"event": "case_start", "gpu": 0, "backend": "sdpa-cudnn", "case": "seed", "phase": "check"})
    error = (
        "NVIDIA GeForce RTX 5090 with CUDA capability sm_120 is not compatible with the current PyTorch "
        "installation.\nRuntimeError: CUDA error: no kernel image is available for execution on the device"
    )
    ev.append(
        {
            "event": "result",
            "gpu": 0,
            "backend": "sdpa-cudnn",
            "case": "seed",
            "ok": False,
            "phase": "forward",
            "error_type": "RuntimeError",
            "error": error,
        }
    )
    r = judge(ev, backends=("sdpa-math", "sdpa-cudnn"))
    fix = next(f.fix for f in r.findings if f.code == "smoke-error")
    assert fix is not None and fix.startswith("[gpu-unsupported]"), fix
    assert "in this log" not in fix and "sm_120" in fix, fix


def test_requested_variant_missing_fails_unrequested_does_not() -> None:
    ev = base_events() + ok_case("sdpa-math", "seed", 0.49, 1.5, ["softmax"])
    assert judge(ev, backends=("sdpa-math", "fa2")).exit_code() == 0
    r = judge(ev, requested=["fa2"], backends=("sdpa-math", "fa2"))
    f = next(f for f in r.findings if f.code == "smoke-not-installed")
    assert f.status is Status.FAIL and f.fix == "flashdoctor install --fa2"
    assert r.variant_ok("fa2") is False


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (
            {"event": "no_gpu", "reason": "torch 2.13.0+cpu is a CPU-only build"},
            "no CUDA GPU visible: torch 2.13.0+cpu is a CPU-only build",
        ),
        (
            {"event": "no_torch", "error": "ModuleNotFoundError: No module named 'torch'"},
            "torch is not installed in /venv/bin/python",
        ),
    ],
)
def test_skipped_is_exit_0_with_a_reason(event: dict[str, Any], reason: str) -> None:
    r = judge([{"event": "start"}, event, {"event": "run", "attempt": 0, "returncode": 0}])
    assert r.skipped and r.skipped_reason == reason
    assert r.status == "skipped" and r.exit_code() == 0
    assert [f.code for f in r.findings] == ["smoke-skipped"]


def test_torch_that_does_not_import_fails() -> None:
    r = judge(
        [
            {"event": "start"},
            {
                "event": "torch_import_failed",
                "error": "OSError: libcudart.so.13: cannot open shared object file",
            },
        ]
    )
    assert r.exit_code() == 1
    assert r.findings[0].code == "smoke-torch-import-error" and "libcudart" in r.findings[0].message


def test_runner_death_outside_any_backend() -> None:
    r = judge(
        [
            {"event": "start"},
            {
                "event": "runner_failed",
                "why": "SIGKILL",
                "returncode": -9,
                "where": None,
                "stderr_tail": "Killed",
            },
        ]
    )
    assert r.exit_code() == 1
    assert r.findings[0].code == "smoke-runner-failed" and "SIGKILL" in r.findings[0].message


def test_input_checks_become_findings() -> None:
    ev = base_events({"fa2": FA2})
    ev.append(
        {
            "event": "input_check",
            "gpu": 0,
            "backend": "fa2",
            "check": "fp32",
            "raised": True,
            "error": "RuntimeError: FlashAttention only support fp16 and bf16 data type",
        }
    )
    ev.append({"event": "input_check", "gpu": 0, "backend": "fa2", "check": "head_dim_512", "raised": False})
    r = judge(ev, backends=("sdpa-math", "fa2"))
    msgs = {f.message: f.status for f in r.findings if f.code == "smoke-input-check"}
    assert msgs == {
        "FA2 flash_attn refuses fp32 tensors with a clear error: RuntimeError: FlashAttention only support fp16 and bf16 data type": Status.OK,
        "FA2 flash_attn accepted head dim 512 without an error": Status.SKIP,
    }


def test_usage_error_from_the_runner() -> None:
    from flashdoctor.errors import UsageError

    with pytest.raises(UsageError, match="--gpu 3: torch sees 1 GPU"):
        _raise_usage(
            [{"event": "fatal", "kind": "usage", "message": "--gpu 3: torch sees 1 GPU(s), numbered 0..0"}]
        )


def test_every_finding_code_is_documented_and_the_json_is_valid() -> None:
    ev = base_events({"fa2": FA2})
    ev += ok_case("sdpa-math", "seed", 0.49, 1.5, ["softmax"])
    ev += ok_case("fa2", "seed", 0.1, 0.3, ["gemm"], out=0.5)
    ev.append(
        {
            "event": "input_check",
            "gpu": 0,
            "backend": "fa2",
            "check": "fp32",
            "raised": True,
            "error": "RuntimeError: x",
        }
    )
    r = judge(ev, backends=("sdpa-math", "fa2"))
    doc = json.loads(json.dumps(r.to_json()))
    schema_validator("smoke-report.schema.json").validate(doc)
    assert {f["code"] for f in doc["findings"]} <= set(SMOKE_CODES)
    assert doc["schema"] == "flashdoctor/smoke/1" and doc["exit_code"] == 1


# -- the orchestrator's reading of a run ------------------------------------------------------------
@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([], None),
        ([{"event": "start"}, {"event": "torch"}], None),
        (
            [{"event": "variant_import", "backend": "fa3"}],
            {"gpu": None, "backend": "fa3", "case": None, "phase": "import"},
        ),
        ([{"event": "variant_import", "backend": "fa3"}, {"event": "variant", "backend": "fa3"}], None),
        (
            [
                {"event": "gpu", "gpu": 0},
                {
                    "event": "case_start",
                    "gpu": 0,
                    "backend": "reference",
                    "case": "long",
                    "phase": "reference",
                },
            ],
            {"gpu": 0, "backend": "reference", "case": "long", "phase": "reference"},
        ),
        (
            [
                {"event": "backend_start", "gpu": 1, "backend": "fa2"},
                {"event": "case_start", "gpu": 1, "backend": "fa2", "case": "seed", "phase": "time"},
            ],
            {"gpu": 1, "backend": "fa2", "case": "seed", "phase": "time"},
        ),
        (
            [
                {"event": "case_start", "gpu": 0, "backend": "fa2", "case": "seed", "phase": "check"},
                {"event": "result", "gpu": 0, "backend": "fa2", "case": "seed"},
            ],
            {"gpu": 0, "backend": "fa2", "case": None, "phase": "backend"},
        ),
        (
            [
                {"event": "backend_start", "gpu": 0, "backend": "fa2"},
                {"event": "backend_done", "gpu": 0, "backend": "fa2"},
            ],
            {"gpu": 0, "backend": None, "case": None, "phase": "gpu"},
        ),
        ([{"event": "backend_start", "gpu": 0, "backend": "fa2"}, {"event": "done"}], None),
    ],
)
def test_in_flight(events: list[dict[str, Any]], expected: dict[str, Any] | None) -> None:
    assert in_flight(events) == expected


def test_read_events_drops_a_torn_last_line(tmp_path: Any) -> None:
    p = tmp_path / "events.jsonl"
    p.write_text('{"event": "start"}\nnot json\n{"no_event": 1}\n{"event": "torch", "version": "2.1')
    assert read_events(str(p)) == [{"event": "start"}]
    assert read_events(str(tmp_path / "missing.jsonl")) == []


def test_a_crash_on_one_gpu_leaves_the_case_out_on_the_others() -> None:
    ev = base_events({"fa2": FA2})
    ev.append({"event": "gpu", "gpu": 1, "name": H100.name, "capability": "9.0", "memory_gb": 79.1})
    ev.append(
        {
            "event": "crash",
            "gpu": 0,
            "backend": "fa2",
            "case": "seed",
            "phase": "check",
            "signal": "SIGSEGV",
            "rc": -11,
        }
    )
    r = judge(ev, backends=("sdpa-math", "fa2"))
    other = next(x for x in r.results if x.gpu == 1 and x.backend == "fa2" and x.case.name == "seed")
    assert other.status is CaseStatus.NOT_RUN
    assert other.reason == "not run: fa2 crashed in this case on GPU 0 NVIDIA H100 80GB HBM3 (sm_90)"
    # A case of the backend that never ran on GPU 1 for another reason (no result at all) says so too.
    long = next(x for x in r.results if x.gpu == 1 and x.backend == "fa2" and x.case.name == "long")
    assert long.reason == "not run: fa2 crashed on GPU 0 NVIDIA H100 80GB HBM3 (sm_90)"


def test_a_minimal_build_crashing_on_wrong_input_warns_without_failing() -> None:
    """Should a minimal build die on input it must refuse (fp32, head dim 512), that is a warning: the runtime
    never sends a build what it lacks, so it does not fail (or roll back) an install whose real calls all
    passed. A full build that dies there still fails."""
    for version, status in (("3.0.0+fd.sm90.hd128.bf16.nosplit", Status.WARN), ("3.0.0", Status.FAIL)):
        fa3 = {"installed": True, "version": version, "import_ok": True, "module": "flash_attn_interface"}
        ev = base_events({"fa3": fa3})
        ev += ok_case("sdpa-math", "seed", 0.49, 1.5, ["cunn_SoftMaxForward"])
        ev += ok_case("sdpa-math", "long", 4.0, 8.0, ["cunn_SoftMaxForward"])
        ev += ok_case("fa3", "long", 0.3, 1.2, ["FlashAttnFwdSm90"])
        ev.append({"event": "case_start", "gpu": 0, "backend": "fa3", "case": "input:fp32", "phase": "input"})
        ev.append(
            {
                "event": "crash",
                "gpu": 0,
                "backend": "fa3",
                "case": "input:fp32",
                "phase": "input",
                "signal": "SIGSEGV",
                "rc": -11,
            }
        )
        r = judge(ev, backends=("sdpa-math", "fa3"))
        crash = next(f for f in r.findings if f.code == "smoke-crash")
        assert crash.status is status, (version, crash.message)
        assert ("runtime never sends it such input" in crash.message) is (status is Status.WARN)
