"""What a build covers, how a build and a kernel are named in a report, and how a dead runner reads."""

from __future__ import annotations

import pytest

from flashdoctor.decide.smoke.classify import (
    covered_dtypes,
    crash_evidence,
    crash_reason,
    kernel_label,
    not_compiled,
    version_label,
)
from flashdoctor.model.cases import BACKENDS, SMOKE_CASES_CPU, SMOKE_CASES_CUDA, Case

FA3_MINIMAL = (
    "3.0.0+fd.sm90.hd128.bf16.nosplit.nopagedkv.noappendkv.nolocal.nosoftcap.nopackgqa.nofp8.nocluster"
)


def test_an_fa3_minimal_build_is_never_given_fp16_or_a_head_dim_it_lacks() -> None:
    got = not_compiled(BACKENDS, SMOKE_CASES_CUDA, {"fa3": FA3_MINIMAL})
    assert got == {
        "fa3": {
            "seed": "not compiled in this build: head dim 64",
            "seed-causal": "not compiled in this build: head dim 64",
            "seed-fp16": "not compiled in this build: fp16",
        }
    }


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("2.8.3", {}),  # an upstream wheel: everything compiled
        ("2.8.3+cu12torch2.7cxx11abiFALSE", {}),  # an upstream local label is not a profile
        (
            "2.8.3.post2+fd.sm90.hd128.bf16",
            {c.name: "not compiled in this build: head dim 64" for c in SMOKE_CASES_CUDA if c.head_dim == 64}
            | {"seed-fp16": "not compiled in this build: fp16"},
        ),
        # FA2 2.7.x has a head dim 160 kernel: 128 still serves 97..128
        (
            "2.7.4.post1+fd.sm80.hd128.fp16",
            {c.name: "not compiled in this build: bf16" for c in SMOKE_CASES_CUDA if c.dtype == "bf16"}
            | {"seed-fp16": "not compiled in this build: head dim 64"},
        ),
    ],
)
def test_fa2_profiles_of_2_7_and_2_8(version: str, expected: dict[str, str]) -> None:
    assert not_compiled(("fa2",), SMOKE_CASES_CUDA, {"fa2": version}).get("fa2", {}) == expected


def test_fp32_and_sdpa_and_fa4_are_left_to_their_own_checks() -> None:
    fp32 = Case("fp32", 1, 8, 1, 64, dtype="fp32")
    assert not_compiled(BACKENDS, (fp32,), {"fa2": "2.8.3+fd.sm90.hd64.bf16"}) == {}
    assert not_compiled(("fa4", "sdpa-flash"), SMOKE_CASES_CPU, {"fa4": "4.0.0b1+fd.sm90.hd64"}) == {}
    assert covered_dtypes("fa3", FA3_MINIMAL) == ("bf16",) and covered_dtypes("fa2", "2.8.3") is None


def test_version_labels() -> None:
    assert version_label("fa3", FA3_MINIMAL) == (
        "3.0.0 hd128 bf16",
        "flashdoctor build with head dim 128, bf16 only",
    )
    assert version_label("fa2", "2.8.3+cu12torch2.7cxx11abiFALSE") == (
        "2.8.3+cu12torch2.7cxx11abiFALSE",
        None,
    )
    assert version_label("fa2", None) == ("", None)


@pytest.mark.parametrize(
    ("name", "limit", "label"),
    [
        (
            "void cutlass::device_kernel<flash::enable_sm90<flash::FlashAttnFwdSm90<flash::Mainloop<2, "
            "cute::tuple<cute::C<1> > >, flash::Epilogue<int> > > >(flash::FlashAttnFwdSm90<int>::Params)",
            70,
            "flash::FlashAttnFwdSm90<flash::Mainloop<…>, flash::Epilogue<…>>",
        ),
        (
            "void cutlass::device_kernel<flash::enable_sm90<flash::FlashAttnFwdSm90<int> > >()",
            20,
            "FlashAttnFwdSm90<…>",
        ),
        (
            "void at::native::(anonymous namespace)::cunn_SoftMaxForward<4, float>(float*)",
            70,
            "at::native::cunn_SoftMaxForward<4, float>",
        ),
        (
            "cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_3_64x64x64_4x1x1_kernel0_0",
            20,
            "cudnn_generated_for…",
        ),
        ("flash_fwd_kernel_fake", 70, "flash_fwd_kernel_fake"),
    ],
)
def test_kernel_labels(name: str, limit: int, label: str) -> None:
    assert kernel_label(name, limit) == label and len(label) <= limit


def test_crash_reasons() -> None:
    assert crash_reason({"event": "crash", "signal": "SIGSEGV"}) == "the interpreter died (SIGSEGV)"
    assert crash_reason({"event": "crash", "signal": None, "rc": 1}) == "the interpreter died (exit 1)"
    stalled = {"event": "timeout", "stalled": True, "timeout_s": 120.0, "budget_s": 300.0}
    assert crash_reason(stalled) == "made no progress for 120.0 s (killed)"
    whole = {"event": "timeout", "stalled": False, "timeout_s": 300.0, "budget_s": 300.0, "attempt": 0}
    assert crash_reason(whole) == "did not finish within the 300.0 s limit (killed)"
    restarted = {"event": "timeout", "stalled": False, "timeout_s": 41.5, "budget_s": 300.0, "attempt": 2}
    assert crash_reason(restarted) == (
        "did not finish before the 300 s limit ran out (killed after 41.5 s in runner process 3)"
    )


def test_fa3_switches_left_out() -> None:
    from flashdoctor.decide.smoke.classify import classify_error

    got = not_compiled(("fa3",), SMOKE_CASES_CUDA, {"fa3": "3.0.0+fd.sm90.hd128.bf16.novarlen"})["fa3"]
    assert got["varlen"] == "not compiled in this build: varlen"
    long = next(c for c in SMOKE_CASES_CUDA if c.name == "long")
    c = classify_error("RuntimeError: This flash attention build does not support backward.", "fa3", long)
    assert (c.category, c.status.value, c.reason) == (
        "not_compiled",
        "skip",
        "not compiled in this build: backward",
    )


def test_crash_evidence_keeps_faulthandlers_header_however_long_the_stack() -> None:
    # A checkout at a longer path made the stack longer: the last 1,500 characters began "mentation fault".
    stack = "".join(
        f'  File "/tmp/tmp.x1y2z3/flashdoctor/actions/smoke/_runner.py", line {i}, in run\n'
        for i in range(40)
    )
    stderr = (
        "warming up\nFatal Python error: Segmentation fault\n\nCurrent thread (most recent call first):\n"
        + stack
    )
    stderr += "\nExtension modules: torch._C, torch._C._fft (total: 2)\n"
    ev = crash_evidence({"stderr_tail": stderr})
    assert ev is not None and ev.startswith("Fatal Python error: Segmentation fault") and len(ev) == 1500
    assert crash_evidence({"stderr_tail": "x" * 2000 + "\nKilled"}) == ("x" * 2000 + "\nKilled")[-1500:]
    assert crash_evidence({"stderr_tail": "  \n"}) is None and crash_evidence({}) is None
