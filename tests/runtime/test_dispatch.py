"""The runtime's kernel choice, as a pure function: literal GPUs, dtypes, head dims and installs.

No torch here: these are the decisions the CUDA paths of flashdoctor.attention take, tested with
the values a GPU machine would feed them (scripts/bench_attention.py runs them for real).
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

import flashdoctor
from flashdoctor import knowledge
from flashdoctor.decide.checks import gpu_support
from flashdoctor.knowledge.variants import VARIANTS
from flashdoctor.model.environment import GPU
from flashdoctor.model.findings import Status
from flashdoctor.model.target import environment_from_target
from flashdoctor.runtime import dispatch
from flashdoctor.runtime.dispatch import (
    AttentionCall,
    backend_statuses,
    decide,
    default_order,
    parse_order,
    why_not,
)
from tests.support.paths import TARGETS

H100 = (9, 0)
A100 = (8, 0)
T4 = (7, 5)
B200 = (10, 0)
RTX5090 = (12, 0)

ALL = {name: None for name in dispatch.FLASH_BACKENDS}
TORCH_ONLY = {
    "fa3": "flash_attn_interface is not installed",
    "fa2": "flash_attn is not installed",
    "fa4": "flash_attn.cute is not installed",
    "sdpa-cudnn": None,
    "sdpa-flash": None,
}


def call(cc: tuple[int, int] | None = H100, dtype: str = "bf16", d: int = 64, **kw: object) -> AttentionCall:
    kw.setdefault("seq_q", 196)
    kw.setdefault("seq_k", 196)
    kw.setdefault("heads_q", 16)
    kw.setdefault("heads_k", 16)
    return AttentionCall(device="cuda" if cc else "cpu", capability=cc, dtype=dtype, head_dim=d, **kw)  # type: ignore[arg-type]


# -- the data ------------------------------------------------------------------------------------
def test_data_matches_its_schema_and_names_only_known_backends() -> None:
    root = Path(flashdoctor.__file__).parent
    schema = json.loads((root / "schemas" / "attention_backends.schema.json").read_text())
    data = knowledge.load_data("attention_backends")
    jsonschema.validate(data, schema)
    assert set(data["backends"]) == set(dispatch.BACKENDS)
    assert data["fallback"] == dispatch.FALLBACK
    assert sum(1 for rule in data["order"] if rule.get("default")) == 1
    assert data["order"][-1].get("default"), "the default order must come last (first match wins)"
    for rule in data["order"]:
        assert dispatch.FALLBACK not in rule["order"], "the fallback is always last, never listed"


def test_flash_attn_backends_take_their_limits_from_variants_json() -> None:
    # One source of truth with `check`: the variant's dtypes (minus fp8) and head-dim limit.
    for name in ("fa2", "fa3", "fa4"):
        spec = dispatch.backend_spec(name)
        info = knowledge.variant_info(spec.variant)  # type: ignore[arg-type]
        assert spec.max_head_dim == info.max_head_dim
        assert set(spec.dtypes) == set(info.dtypes) - {"fp8"}
        assert spec.min_capability == info.min_capability


@pytest.mark.parametrize("target", sorted(p.stem for p in TARGETS.glob("*.json")))
def test_runtime_and_check_agree_on_every_target_gpu(target: str) -> None:
    """A variant is a runtime candidate on a GPU exactly when `check` does not call the GPU unsupported."""
    spec = json.loads((TARGETS / f"{target}.json").read_text())
    env = environment_from_target(spec)
    rocm = bool(env.torch_hip)
    for gpu in env.gpus or ():
        if gpu.cc is None:
            continue
        for variant, name in ((v, b) for v in VARIANTS for b in knowledge.variant_info(v).backends):
            reason = why_not(name, call(gpu.cc, rocm=rocm), ALL)
            if rocm:
                assert (reason is None) == knowledge.variant_info(variant).rocm
                continue
            unsupported = gpu_support(variant, gpu) is Status.FAIL
            assert (reason is not None and "does not run on" in reason) == unsupported, (
                target,
                variant,
                reason,
            )


# -- the order ------------------------------------------------------------------------------------
def test_order_per_gpu_follows_the_measurements() -> None:
    # FA3 before cuDNN: FA3 was faster forward and causal at B8 N4096 H16 D128 bf16 (issue 16's numbers).
    assert default_order(H100) == ("fa3", "sdpa-cudnn", "fa4", "fa2", "sdpa-flash")
    assert default_order(B200)[0] == "fa4"
    assert default_order(A100)[0] == "fa2"
    assert default_order((8, 9))[0] == "fa2"
    assert default_order(RTX5090) == default_order(None) == default_order(H100, rocm=True)
    assert "measured on an H100" in dispatch.order_source(H100)


def test_parse_order() -> None:
    assert parse_order("FA2, sdpa-flash,fa2") == ("fa2", "sdpa-flash")
    assert parse_order(["sdpa"]) == ("sdpa",)
    with pytest.raises(ValueError, match=r"unknown attention backend.*flash3.*known: fa3, fa2"):
        parse_order("flash3")
    with pytest.raises(ValueError, match="empty"):
        parse_order(" , ")


# -- decisions ------------------------------------------------------------------------------------
def test_h100_bf16_with_only_torch_uses_sdpa_cudnn() -> None:
    d = decide(call(), TORCH_ONLY)
    assert d.backend == "sdpa-cudnn" and d.flash
    assert d.candidates == ("sdpa-cudnn", "sdpa-flash", "sdpa")
    assert "order for sm_90" in d.reason


def test_h100_prefers_fa3_then_cudnn_then_fa2() -> None:
    d = decide(call(causal=True), ALL)
    assert d.backend == "fa3" and d.reason == (
        "first usable backend in the order for sm_90 (fa3 > sdpa-cudnn > fa4 > fa2 > sdpa-flash)"
    )
    assert d.candidates == ("fa3", "sdpa-cudnn", "fa4", "fa2", "sdpa-flash", "sdpa")
    no_fa3 = decide(call(), {**ALL, "fa3": "flash_attn_interface is not installed"})
    assert no_fa3.backend == "sdpa-cudnn"
    assert "skipped fa3: flash_attn_interface is not installed" in no_fa3.reason
    available = {**ALL, "sdpa-cudnn": "disabled (torch.backends.cuda.enable_cudnn_sdp(False))"}
    no_cudnn = decide(call(), {**available, "fa3": "flash_attn_interface is not installed", "fa4": "no"})
    assert no_cudnn.backend == "fa2"


def test_fp32_cpu_and_old_gpus_fall_back_with_one_clear_reason() -> None:
    fp32 = decide(call(dtype="fp32"), ALL)
    assert fp32.backend == "sdpa" and not fp32.flash
    assert fp32.reason == "dtype fp32: flash kernels take fp16/bf16"
    cpu = decide(call(None, dtype="fp32"), {})
    assert cpu.reason == "inputs are on cpu; FlashAttention kernels run on NVIDIA GPUs"
    t4 = decide(call(T4, dtype="fp16"), ALL)
    assert t4.backend == "sdpa"
    reasons = dict(t4.rejected)
    assert reasons["fa2"].startswith("FlashAttention-2 does not run on sm_75")
    assert reasons["sdpa-flash"] == "needs compute capability sm_80 or newer (this GPU is sm_75)"


def test_head_dims() -> None:
    # cuDNN is kept to head dim 128: a 160 head goes to FA3, a 320 head to standard attention.
    assert decide(call(d=160), ALL).backend == "fa3"
    assert decide(call(d=160), TORCH_ONLY).backend == "sdpa-flash"
    big = decide(call(d=320), ALL)
    assert big.backend == "sdpa"
    assert dict(big.rejected)["fa2"] == "head_dim 320 > 256"
    assert dict(big.rejected)["sdpa-cudnn"] == "head_dim 320 > 128"
    # Not a multiple of 8: padded to 40 internally, which every kernel takes.
    assert decide(call(d=36), TORCH_ONLY).backend == "sdpa-cudnn"
    # 252 pads to 256: still fine; 250 also pads to 256.
    assert decide(call(d=250), {**TORCH_ONLY, "sdpa-cudnn": None}).backend == "sdpa-flash"
    assert why_not("fa2", call(d=64, head_dim_v=128), ALL) == "q/k head dim 64 differs from v head dim 128"


def test_dropout_masks_and_non_square_causal() -> None:
    no_cudnn = {**ALL, "sdpa-cudnn": "disabled"}
    # FA3 and FA4 have no dropout: FA2 takes it.
    assert decide(call(dropout=True), no_cudnn).backend == "fa2"
    assert dict(decide(call(dropout=True), no_cudnn).rejected)["fa3"].startswith("dropout_p > 0")
    assert decide(call(dropout=True), ALL).backend == "sdpa-cudnn"
    masked = decide(call(mask=True), ALL)
    assert masked.backend == "sdpa"
    assert masked.reason == "an attention mask (flash kernels take no arbitrary mask)"
    assert decide(call(causal=True), ALL).backend == "fa3"
    assert decide(call(causal=True), {**ALL, "fa3": "not installed"}).backend == "sdpa-cudnn"
    decode = decide(call(causal=True, seq_q=1, seq_k=196), ALL)
    assert decode.backend == "sdpa"
    assert "bottom-right" in decode.reason
    # Without causal, different lengths are fine.
    assert decide(call(seq_q=1, seq_k=196), ALL).backend == "fa3"


def test_gqa_is_not_a_reason_to_fall_back() -> None:
    for available in (ALL, TORCH_ONLY):
        assert decide(call(heads_q=16, heads_k=4), available).flash


def test_blackwell_ampere_consumer_and_rocm() -> None:
    b200 = decide(call(B200), ALL)
    assert b200.backend == "fa4"
    assert "fa3" not in b200.order  # no Blackwell kernels: not even tried
    forced_fa3 = decide(call(B200), ALL, order=("fa3",))
    assert forced_fa3.backend == "sdpa"
    assert forced_fa3.reason == "FlashAttention-3 does not run on sm_100 (it targets sm_90)"
    assert decide(call(A100), ALL).backend == "fa2"
    assert decide(call(A100), TORCH_ONLY).backend == "sdpa-flash"
    # sm_120: FA4 is experimental there (check says warn), so it is allowed, after FA2.
    assert gpu_support("fa4", GPU(capability="12.0")) is Status.WARN
    assert (
        decide(call(RTX5090), {**ALL, "fa2": "not installed", "sdpa-flash": "x", "sdpa-cudnn": "x"}).backend
        == "fa4"
    )
    rocm = call((9, 4), rocm=True)
    assert decide(rocm, ALL).backend == "fa2"
    assert why_not("sdpa-cudnn", rocm, ALL) == "ROCm GPU: this kernel is CUDA-only"


def test_override_order_and_runtime_failures() -> None:
    assert decide(call(), ALL, order=("fa2",)).backend == "fa2"
    assert "requested order" in decide(call(), ALL, order=("fa2",)).reason
    not_there = decide(call(), TORCH_ONLY, order=("fa2",))
    assert not_there.backend == "sdpa"
    assert not_there.reason == "flash_attn is not installed"
    forced = decide(call(), ALL, order=("sdpa",))
    assert forced.backend == "sdpa" and forced.reason == "standard attention was requested"
    failed = decide(call(), ALL, failed=frozenset({"sdpa-cudnn"}))
    assert failed.backend == "fa3"
    assert dict(failed.rejected)["sdpa-cudnn"] == "it raised an error earlier in this process"


def test_a_backend_missing_from_the_availability_map_is_not_used() -> None:
    assert why_not("fa2", call(A100), {}) == "not probed"
    assert decide(call(A100), {}).backend == "sdpa"


# -- statuses --------------------------------------------------------------------------------------
def test_backend_statuses_on_an_h100_with_only_torch() -> None:
    statuses = {s.name: s for s in backend_statuses("cuda", H100, TORCH_ONLY, {"sdpa-cudnn": "2.11.0"})}
    assert list(statuses)[:5] == ["fa3", "sdpa-cudnn", "fa4", "fa2", "sdpa-flash"]
    assert list(statuses)[-1] == "sdpa"
    assert statuses["sdpa-cudnn"].usable and statuses["sdpa-cudnn"].dtypes == ("fp16", "bf16")
    assert statuses["sdpa-cudnn"].max_head_dim == 128 and statuses["sdpa-cudnn"].version == "2.11.0"
    assert not statuses["fa2"].usable and statuses["fa2"].why_not == "flash_attn is not installed"
    assert statuses["sdpa"].usable
    doc = statuses["fa3"].to_json()
    assert doc["usable"] is False and doc["dropout"] is False and doc["max_head_dim"] == 256


def test_backend_statuses_on_cpu_and_t4() -> None:
    cpu = backend_statuses("cpu", None, {})
    assert [s.name for s in cpu if s.usable] == ["sdpa"]
    assert {s.why_not for s in cpu if not s.usable} == {
        "inputs are on cpu; FlashAttention kernels run on NVIDIA GPUs"
    }
    t4 = backend_statuses("cuda", T4, ALL)
    assert [s.name for s in t4 if s.usable] == ["sdpa"]


def test_minimal_build_is_skipped_for_what_it_does_not_contain():
    from flashdoctor.runtime.dispatch import AttentionCall, decide

    avail = {"fa2": None, "sdpa-flash": None}
    versions = {"fa2": "2.8.3.post2+fd.sm90.hd128.bf16"}
    order = ["fa2", "sdpa-flash"]

    def pick(head_dim: int, dtype: str) -> str:
        call = AttentionCall(
            device="cuda", capability=(9, 0), dtype=dtype, head_dim=head_dim, seq_q=196, seq_k=196
        )
        return decide(call, avail, order, versions=versions).backend

    assert pick(128, "bf16") == "fa2"
    assert pick(100, "bf16") == "fa2"  # upstream runs 97..128 on the 128 kernel
    assert pick(64, "bf16") == "sdpa-flash"
    assert pick(128, "fp16") == "sdpa-flash"
    call = AttentionCall(device="cuda", capability=(9, 0), dtype="bf16", head_dim=64)
    why = dict(decide(call, avail, order, versions=versions).rejected)["fa2"]
    assert "fd.sm90.hd128.bf16" in why and "64" in why
    # an official build (no flashdoctor label) is not narrowed
    assert decide(call, avail, order, versions={"fa2": "2.8.3"}).backend == "fa2"


def test_non_square_causal_reason_is_the_same_for_every_length() -> None:
    """Decoding grows seq_k by one a step: the reason (logged once per distinct text) must not name the
    lengths, or every step logs a new warning."""
    reasons = {why_not("sdpa-flash", call(seq_q=1, seq_k=n, causal=True)) for n in range(100, 104)}
    assert len(reasons) == 1
    (reason,) = reasons
    assert reason is not None and "causal with seq_q != seq_k" in reason
    assert why_not("sdpa-flash", call(seq_q=1, seq_k=1, causal=True), {"sdpa-flash": None}) is None


# -- every build's profile (knowledge.profiles.build_coverage): FA2 2.7.x, FA2 2.8.x, FA3 ---------------
FA3_MINIMAL = (
    "3.0.0+fd.sm90.hd128.bf16.nosplit.nopagedkv.noappendkv.nolocal.nosoftcap.nopackgqa.nofp8.nocluster"
)
FA3_LABEL = FA3_MINIMAL.split("+", 1)[1]


def test_an_fa3_minimal_build_is_skipped_for_fp16_and_other_head_dims() -> None:
    versions = {"fa3": FA3_MINIMAL}
    order = ("fa3", "sdpa-cudnn")
    assert decide(call(d=128, causal=True), ALL, order, versions=versions).backend == "fa3"
    assert decide(call(d=100), ALL, order, versions=versions).backend == "fa3"  # FA3 runs 97..128 on 128
    fp16 = decide(call(d=128, dtype="fp16", causal=True), ALL, order, versions=versions)
    assert fp16.backend == "sdpa-cudnn"
    assert dict(fp16.rejected)["fa3"] == f"fp16 not compiled in this build ({FA3_LABEL})"
    assert f"skipped fa3: fp16 not compiled in this build ({FA3_LABEL})" in fp16.reason
    d64 = decide(call(d=64), ALL, order, versions=versions)
    assert d64.backend == "sdpa-cudnn"
    assert dict(d64.rejected)["fa3"] == f"head dim 64 not compiled in this build ({FA3_LABEL})"
    # An upstream FA3 wheel (no flashdoctor label) has every kernel.
    assert decide(call(d=64, dtype="fp16"), ALL, order, versions={"fa3": "3.0.0"}).backend == "fa3"


def test_each_variant_and_version_rounds_head_dims_onto_its_own_kernels() -> None:
    # FA3 rounds head dims up to 64/96/128/192/256: head dim 32 runs on the 64 kernel. FA2 has a 32 kernel.
    fa3_hd64 = {"fa3": "3.0.0+fd.sm90.hd64.bf16"}
    assert why_not("fa3", call(d=32), ALL, fa3_hd64) is None
    assert why_not("fa2", call(d=32), ALL, {"fa2": "2.8.3+fd.sm90.hd64.bf16"}) == (
        "head dim 32 not compiled in this build (fd.sm90.hd64.bf16)"
    )
    # FA2 2.7.x has a 160 kernel that 2.8.x dropped: 150 runs on it there, on 192 in 2.8.x.
    assert why_not("fa2", call(A100, d=150), ALL, {"fa2": "2.7.4.post1+fd.sm80.hd160.bf16"}) is None
    assert why_not("fa2", call(A100, d=150), ALL, {"fa2": "2.8.3+fd.sm80.hd192.bf16"}) is None
    assert why_not("fa2", call(A100, d=170), ALL, {"fa2": "2.7.4.post1+fd.sm80.hd160.bf16"}) == (
        "head dim 170 not compiled in this build (fd.sm80.hd160.bf16)"
    )


def test_a_build_without_its_backward_pass_is_skipped_when_gradients_are_needed() -> None:
    versions = {"fa3": "3.0.0+fd.sm90.hd128.bf16.nobackward"}
    order = ("fa3", "sdpa-cudnn")
    assert decide(call(d=128), ALL, order, versions=versions).backend == "fa3"
    training = decide(call(d=128, grad=True), ALL, order, versions=versions)
    assert training.backend == "sdpa-cudnn"
    assert dict(training.rejected)["fa3"] == (
        "the backward pass not compiled in this build (fd.sm90.hd128.bf16.nobackward)"
    )


def test_a_build_without_code_for_this_gpu_is_not_usable_here() -> None:
    """A minimal build carries its archs in its label (SASS only, no PTX): an sm_80 FA2 build copied to an
    H100 imports, but every launch answers "no kernel image is available". The dispatcher and
    FLASH_AVAILABLE (backend_statuses) must not call it usable there; sm_80 code runs on sm_86/sm_89."""
    versions = {"fa2": "2.8.3+fd.sm80.hd128.bf16"}
    order = ("fa2", "sdpa-flash")
    on_h100 = decide(call(H100, d=128), ALL, order, versions=versions)
    assert on_h100.backend == "sdpa-flash"
    assert dict(on_h100.rejected)["fa2"] == "sm_90 not compiled in this build (fd.sm80.hd128.bf16)"
    assert decide(call((8, 6), d=128), ALL, order, versions=versions).backend == "fa2"
    assert decide(call(A100, d=128), ALL, order, versions=versions).backend == "fa2"
    status = {s.name: s for s in backend_statuses("cuda", H100, ALL, versions)}["fa2"]
    assert not status.usable and status.why_not == "sm_90 not compiled in this build (fd.sm80.hd128.bf16)"
    # A label without archs, and upstream wheels, say nothing about them.
    assert decide(call(H100, d=128), ALL, order, versions={"fa2": "2.8.3"}).backend == "fa2"


def test_backend_statuses_show_the_installed_builds_profile() -> None:
    versions = {"fa3": FA3_MINIMAL, "fa2": "2.8.3.post2+fd.sm90.hd64.hd128.fp16", "sdpa-cudnn": "2.11.0"}
    available = {**ALL, "fa4": "flash_attn.cute is not installed"}
    statuses = {s.name: s for s in backend_statuses("cuda", H100, available, versions)}
    fa3 = statuses["fa3"]
    # Usable at its own head dim (128), for bf16 only: the status no longer probes a head dim it lacks.
    assert fa3.usable and fa3.dtypes == ("bf16",) and fa3.head_dims == (128,)
    assert fa3.build == f"{FA3_LABEL}: head dim 128, bf16" and fa3.version == FA3_MINIMAL
    fa2 = statuses["fa2"]
    assert fa2.usable and fa2.dtypes == ("fp16",) and fa2.head_dims == (64, 128)
    doc = fa3.to_json()
    assert doc["head_dims"] == [128] and doc["build"].startswith("fd.sm90.hd128.bf16")
    # Builds without a label and SDPA backends have no profile.
    assert statuses["sdpa-cudnn"].build is None and statuses["sdpa-cudnn"].head_dims is None
    plain = {s.name: s for s in backend_statuses("cuda", H100, ALL, {"fa3": "3.0.0"})}["fa3"]
    assert plain.dtypes == ("fp16", "bf16") and plain.build is None and plain.to_json()["head_dims"] is None
    # On a GPU the build does not run on, the reason stays the GPU's.
    b200 = {s.name: s for s in backend_statuses("cuda", B200, ALL, versions)}["fa3"]
    assert not b200.usable and b200.why_not == "FlashAttention-3 does not run on sm_100 (it targets sm_90)"


def test_deterministic_mode_skips_what_torch_skips_and_backwards_that_cannot_be_deterministic() -> None:
    """torch.use_deterministic_algorithms(True): torch refuses cuDNN attention (check_cudnn_deterministic);
    FA3 has no deterministic backward for head dims over 192; FA4 none on sm_12x, nor on sm_90 before
    4.0.0b5. Those are skipped with the reason; the rest run their deterministic backward."""
    det = call(deterministic=True, grad=True)
    assert decide(det, ALL).backend == "fa3"
    assert decide(det, {**ALL, "fa3": "not installed"}).backend == "fa4"
    no_cudnn = decide(det, TORCH_ONLY)
    assert no_cudnn.backend == "sdpa-flash"
    assert dict(no_cudnn.rejected)["sdpa-cudnn"].startswith("torch.use_deterministic_algorithms(True)")
    assert decide(call(), TORCH_ONLY).backend == "sdpa-cudnn"  # only in deterministic mode
    assert decide(call(deterministic=True), TORCH_ONLY).backend == "sdpa-flash"  # torch refuses it even then
    wide = decide(call(d=256, deterministic=True, grad=True), ALL)
    assert "head dims over 192" in dict(wide.rejected)["fa3"] and wide.backend == "fa4"
    assert decide(call(d=256, deterministic=True), ALL).backend == "fa3"  # the forward alone is fine
    assert decide(call(d=192, deterministic=True, grad=True), ALL).backend == "fa3"
    fa4_only = {**ALL, "fa3": "x", "sdpa-cudnn": "x", "fa2": "x", "sdpa-flash": "x"}
    assert decide(det, fa4_only, versions={"fa4": "4.0.0b4"}).backend == "sdpa"
    assert decide(det, fa4_only, versions={"fa4": "4.0.0b5"}).backend == "fa4"
    rtx = call(RTX5090, deterministic=True, grad=True)
    assert "sm_12" in str(why_not("fa4", rtx, ALL)) and why_not("fa4", call(RTX5090), ALL) is None


@pytest.mark.parametrize(
    ("version", "keyword"),
    [
        ("2.3.6", False),
        ("2.4.0.post1", False),
        ("2.4.0+cu122torch2.1cxx11abiFALSE", False),
        ("2.4.1", True),
        ("2.8.3.post1", True),
        ("2.8.3.post2+fd.sm90.hd128.bf16", True),
    ],
)
def test_deterministic_mode_skips_an_fa2_before_2_4_1_instead_of_calling_it(
    version: str, keyword: bool
) -> None:
    """FA2 before 2.4.1 has no deterministic= argument (nor a deterministic backward): in deterministic mode
    with gradients the decision skips it with that reason. It was picked, called with deterministic=True,
    raised TypeError and only then fell back."""
    fa2_only = {**ALL, "fa3": "x", "sdpa-cudnn": "x", "fa4": "x", "sdpa-flash": "x"}
    det = call(d=128, deterministic=True, grad=True)
    decision = decide(det, fa2_only, versions={"fa2": version})
    if keyword:
        assert decision.backend == "fa2"
    else:
        assert decision.backend == "sdpa"
        assert dict(decision.rejected)["fa2"] == (
            "torch.use_deterministic_algorithms(True): FA2 before 2.4.1 has no deterministic backward "
            "(flash_attn_func takes no deterministic=)"
        )
    # Without a backward, or without the mode, every version runs (it is called without the keyword).
    assert decide(call(d=128, deterministic=True), fa2_only, versions={"fa2": version}).backend == "fa2"
    assert decide(call(d=128, grad=True), fa2_only, versions={"fa2": version}).backend == "fa2"
