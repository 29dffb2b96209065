"""flashdoctor.attention against nn.MultiheadAttention, on the real CPU torch.

On a CPU every call runs the standard-attention fallback: these tests prove the module, the
replacement and the fallback compute what nn.MultiheadAttention computes, forward and backward.
The CUDA decisions are tested as pure functions in test_dispatch.py; the forced-backend code path
(sdpa_kernel, head-dim padding, GQA, failure and fallback) runs for real here through torch's CPU
SDPA kernels, with only the GPU description of the call faked.
"""

from __future__ import annotations

import copy
import logging
import math
import sys
import threading
import warnings
from dataclasses import replace as dataclasses_replace
from typing import Any

import pytest

with warnings.catch_warnings():
    # The development venv has no numpy; torch warns about it once, at import (CI installs numpy).
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy", category=UserWarning)
    import torch

from torch import nn

from flashdoctor import attention
from flashdoctor.attention import (
    NOT_AVAILABLE_MESSAGE,
    FlashAttention,
    available_backends,
    backend_usage,
    flash_attention,
    pad_sequence_length,
    replace_with_flash_attention,
    select_backend,
    unpad_sequence_length,
)
from flashdoctor.runtime import availability, dispatch, kernels, state
from flashdoctor.runtime import call as runtime_call
from flashdoctor.runtime import module as runtime_module
from tests.support.runtime_fakes import FA3_LABEL, fa3_minimal_build_fixture, installed_on_h100, pretend_h100  # noqa: F401 (a fixture)
from tests.support.smoke_fakes import write_site

TOL = {"atol": 1e-10, "rtol": 1e-9}  # float64: both sides compute the same math


def pair(
    embed: int = 16,
    heads: int = 4,
    batch_first: bool = True,
    dtype: torch.dtype = torch.float64,
    **kw: object,
) -> tuple[nn.MultiheadAttention, FlashAttention]:
    mha = nn.MultiheadAttention(embed, heads, batch_first=batch_first, dtype=dtype, **kw)  # type: ignore[arg-type]
    with torch.no_grad():  # non-zero biases, so that a mixed-up bias slice would show
        for p in mha.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    fa = FlashAttention(embed, heads, batch_first=batch_first, dtype=dtype, **kw)  # type: ignore[arg-type]
    fa.load_state_dict(mha.state_dict())
    return mha, fa


def grads(module: nn.Module, *inputs: torch.Tensor) -> list[torch.Tensor]:
    out = [t.grad for t in inputs]
    out += [p.grad for _, p in sorted(module.named_parameters())]
    return [g if g is not None else torch.zeros(()) for g in out]


def run_both(
    mha: nn.Module,
    fa: nn.Module,
    make: dict[str, torch.Tensor],
    **kwargs: object,
) -> tuple[tuple[torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor | None], list, list]:
    """Forward + backward through both modules on equal copies of the inputs."""
    results = []
    for module in (mha, fa):
        module.zero_grad()
        ins = {k: v.detach().clone().requires_grad_(v.is_floating_point()) for k, v in make.items()}
        q = ins["q"]
        k = ins.get("k", q)
        v = ins.get("v", k if "k" in ins else q)
        out, weights = module(q, k, v, **kwargs)
        (out.square().sum() + (weights.sum() if weights is not None else 0)).backward()
        results.append(((out, weights), grads(module, *[t for t in ins.values() if t.requires_grad])))
    (a, ga), (b, gb) = results
    return a, b, ga, gb


def assert_same(x: object, y: object) -> None:
    if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
        assert isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)
        torch.testing.assert_close(x, y, **TOL, equal_nan=True)
    elif isinstance(x, (list, tuple)):
        assert isinstance(y, (list, tuple)) and len(x) == len(y)
        for a, b in zip(x, y):
            assert_same(a, b)
    else:
        assert x == y


# -- numerical equivalence ---------------------------------------------------------------------------
B, L, S, E, H = 3, 7, 5, 16, 4


def masks(kind: str, batch_first: bool) -> dict[str, torch.Tensor]:
    kpm = torch.zeros(B, L, dtype=torch.bool)
    kpm[0, -2:] = True
    kpm[2, -1] = True
    causal = torch.ones(L, L, dtype=torch.bool).triu(1)
    rand3d = torch.randn(B * H, L, L, dtype=torch.float64)
    return {
        "none": {},
        "kpm_bool": {"key_padding_mask": kpm},
        "kpm_float": {"key_padding_mask": torch.zeros(B, L, dtype=torch.float64).masked_fill(kpm, -math.inf)},
        "attn_bool_2d": {"attn_mask": causal},
        "attn_float_3d": {"attn_mask": rand3d},
        "both_bool": {"attn_mask": causal, "key_padding_mask": kpm},
        "causal_hint": {"attn_mask": causal, "is_causal": True},
        "causal_hint_and_kpm": {"attn_mask": causal, "is_causal": True, "key_padding_mask": kpm},
    }[kind]


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize(
    "mask_kind",
    [
        "none",
        "kpm_bool",
        "kpm_float",
        "attn_bool_2d",
        "attn_float_3d",
        "both_bool",
        "causal_hint",
        "causal_hint_and_kpm",
    ],
)
@pytest.mark.parametrize("need_weights", [False, True])
def test_self_attention_matches_multihead_attention(
    batch_first: bool, mask_kind: str, need_weights: bool
) -> None:
    mha, fa = pair(batch_first=batch_first)
    x = torch.randn(B, L, E, dtype=torch.float64)
    if not batch_first:
        x = x.transpose(0, 1).contiguous()
    kw = masks(mask_kind, batch_first)
    a, b, ga, gb = run_both(mha, fa, {"q": x}, need_weights=need_weights, **kw)
    assert_same(a, b)
    assert_same(ga, gb)
    # The flash path runs exactly for what it can take: no weights, no padding mask, no non-causal mask.
    kernel = (
        not need_weights
        and "key_padding_mask" not in kw
        and (kw.get("attn_mask") is None or kw.get("is_causal"))
    )
    assert backend_usage().get("sdpa", 0) == (1 if kernel else 0)


@pytest.mark.parametrize("average", [True, False])
def test_attention_weights_per_head_and_averaged(average: bool) -> None:
    mha, fa = pair()
    x = torch.randn(B, L, E, dtype=torch.float64)
    a, b, ga, gb = run_both(mha, fa, {"q": x}, need_weights=True, average_attn_weights=average)
    assert b[1] is not None and b[1].shape == ((B, L, L) if average else (B, H, L, L))
    assert_same(a, b)
    assert_same(ga, gb)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize(
    "config",
    [
        {},
        {"bias": False},
        {"kdim": 12, "vdim": 10},
        {"add_bias_kv": True},
        {"add_zero_attn": True},
        {"add_bias_kv": True, "add_zero_attn": True, "kdim": 12, "vdim": 10},
    ],
    ids=["plain", "no-bias", "kdim-vdim", "bias-kv", "zero-attn", "all"],
)
@pytest.mark.parametrize("with_kpm", [False, True])
def test_cross_attention_configurations(batch_first: bool, config: dict[str, object], with_kpm: bool) -> None:
    mha, fa = pair(batch_first=batch_first, **config)
    kd, vd = config.get("kdim", E), config.get("vdim", E)

    def seq(n: int, d: object) -> torch.Tensor:
        t = torch.randn(B, n, d, dtype=torch.float64)  # type: ignore[call-overload]
        return t if batch_first else t.transpose(0, 1).contiguous()

    ins = {"q": seq(L, E), "k": seq(S, kd), "v": seq(S, vd)}
    kw: dict[str, object] = {"need_weights": False}
    if with_kpm:
        kpm = torch.zeros(B, S, dtype=torch.bool)
        kpm[1, :2] = True
        kw["key_padding_mask"] = kpm
    a, b, ga, gb = run_both(mha, fa, ins, **kw)
    assert_same(a, b)
    assert_same(ga, gb)


def test_key_is_value_cross_attention_and_unbatched_input() -> None:
    mha, fa = pair()
    q, kv = torch.randn(B, L, E, dtype=torch.float64), torch.randn(B, S, E, dtype=torch.float64)
    assert_same(mha(q, kv, kv, need_weights=False), fa(q, kv, kv, need_weights=False))
    x = torch.randn(L, E, dtype=torch.float64)  # unbatched: (L, E), batch_first ignored
    assert_same(mha(x, x, x, need_weights=False), fa(x, x, x, need_weights=False))
    assert_same(mha(x, x, x), fa(x, x, x))


def test_float32_tolerance() -> None:
    mha, fa = pair(embed=64, heads=8, dtype=torch.float32)
    x = torch.randn(4, 33, 64)
    torch.testing.assert_close(fa(x, x, x, need_weights=False)[0], mha(x, x, x, need_weights=False)[0])


def test_self_call_returns_the_output_tensor_and_takes_is_causal_without_a_mask() -> None:
    mha, fa = pair()
    x = torch.randn(B, L, E, dtype=torch.float64)
    out = fa(x)
    assert isinstance(out, torch.Tensor)
    assert_same(out, mha(x, x, x, need_weights=False)[0])
    causal = torch.ones(L, L, dtype=torch.bool).triu(1)
    expected = mha(x, x, x, need_weights=False, attn_mask=causal)[0]
    assert_same(fa(x, is_causal=True), expected)
    # With a padding mask the causal mask is built for nn.MultiheadAttention's path.
    kpm = torch.zeros(B, L, dtype=torch.bool)
    kpm[0, -1] = True
    expected = mha(x, x, x, need_weights=False, attn_mask=causal, key_padding_mask=kpm)[0]
    assert_same(fa(x, is_causal=True, key_padding_mask=kpm), expected)


def test_eval_and_no_grad_match_nn_multihead_attention_fast_path() -> None:
    # In eval without grad nn.MultiheadAttention takes torch._native_multi_head_attention.
    mha, fa = pair(dtype=torch.float32)
    mha.eval()
    fa.eval()
    x = torch.randn(B, L, E)
    kpm = torch.zeros(B, L, dtype=torch.bool)
    kpm[1, -3:] = True
    with torch.no_grad():
        torch.testing.assert_close(fa(x, x, x, need_weights=False)[0], mha(x, x, x, need_weights=False)[0])
        got = fa(x, x, x, key_padding_mask=kpm, need_weights=False)[0]
        want = mha(x, x, x, key_padding_mask=kpm, need_weights=False)[0]
        torch.testing.assert_close(got[~kpm], want[~kpm])


def test_dropout_in_training_only() -> None:
    mha, fa = pair(dropout=0.5)
    x = torch.randn(B, L, E, dtype=torch.float64)
    fa.train()
    mha.train()
    torch.manual_seed(1)
    first = fa(x)
    torch.manual_seed(1)
    again = fa(x)
    torch.manual_seed(2)
    other = fa(x)
    torch.manual_seed(1)
    reference = mha(x, x, x, need_weights=False)[0]
    assert_same(first, again)  # the same seed drops the same weights
    assert not torch.allclose(first, other)  # dropout is on in training
    assert_same(first, reference)  # ... and is nn.MultiheadAttention's dropout (same SDPA call)
    fa.eval()
    mha.eval()
    assert_same(fa(x), mha(x, x, x, need_weights=False)[0])  # off in eval


def test_nested_tensors_and_half_calls_are_refused_clearly() -> None:
    _, fa = pair(dtype=torch.float32)
    x = torch.randn(B, L, E)
    with pytest.raises(TypeError, match="both key and value, or neither"):
        fa(x, x)
    nested = torch.nested.nested_tensor([torch.randn(3, E), torch.randn(5, E)], layout=torch.jagged)
    with pytest.raises(ValueError, match="not nested tensors"):
        fa(nested)


# -- state dicts and construction -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "config", [{}, {"bias": False}, {"kdim": 12, "vdim": 10}, {"add_bias_kv": True, "add_zero_attn": True}]
)
def test_state_dict_round_trip_both_ways(config: dict[str, object]) -> None:
    mha, fa = pair(**config)
    assert list(mha.state_dict()) == list(fa.state_dict())
    for (name, p), (name2, p2) in zip(mha.state_dict().items(), fa.state_dict().items()):
        assert name == name2 and p.shape == p2.shape
        assert torch.equal(p, p2)
    # FlashAttention -> nn.MultiheadAttention, with changed weights.
    with torch.no_grad():
        for p in fa.parameters():
            p.mul_(1.5)
    back = nn.MultiheadAttention(E, H, batch_first=True, dtype=torch.float64, **config)  # type: ignore[arg-type]
    back.load_state_dict(fa.state_dict(), strict=True)
    q = torch.randn(B, L, E, dtype=torch.float64)
    k = torch.randn(B, S, config.get("kdim", E), dtype=torch.float64)  # type: ignore[call-overload]
    v = torch.randn(B, S, config.get("vdim", E), dtype=torch.float64)  # type: ignore[call-overload]
    assert_same(back(q, k, v, need_weights=False), fa(q, k, v, need_weights=False))


def test_from_multihead_attention_takes_over_the_parameters() -> None:
    mha = nn.MultiheadAttention(E, H, dropout=0.25, dtype=torch.float64, kdim=12, vdim=10, add_bias_kv=True)
    mha.eval()
    fa = FlashAttention.from_multihead_attention(mha, backend="sdpa")
    assert not fa.training and fa.batch_first is False and fa.dropout == 0.25
    assert fa.backend == ("sdpa",)
    for (n1, p1), (n2, p2) in zip(mha.named_parameters(), fa.named_parameters()):
        assert n1 == n2 and p1 is p2  # the same tensors: optimizers and tied weights keep working
    assert all(p.device.type == "cpu" and p.dtype == torch.float64 for p in fa.parameters())
    assert "backend=sdpa" in repr(fa)


# -- the model rewrite --------------------------------------------------------------------------------
def encoder(
    batch_first: bool = True, layers: int = 2, dtype: torch.dtype = torch.float32
) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        E, H, dim_feedforward=32, dropout=0.0, batch_first=batch_first, dtype=dtype
    )
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=batch_first)


# The baseline's nested-tensor path (eval, no grad, padding) warns that nested tensors are a prototype.
@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors:UserWarning")
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("mode", ["train", "eval", "eval-no-grad"])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("native_fast_path", [False, True])
def test_replacement_in_a_transformer_encoder(
    batch_first: bool, mode: str, padded: bool, native_fast_path: bool
) -> None:
    model = encoder(batch_first)
    model.train(mode == "train")
    x = torch.randn(B, L, E) if batch_first else torch.randn(L, B, E)
    kpm = None
    if padded:
        kpm = torch.zeros(B, L, dtype=torch.bool)
        kpm[0, -3:] = True  # left-aligned padding: what the nested-tensor fast path takes
    baseline = copy.deepcopy(model)
    replaced_model, names = replace_with_flash_attention(model, native_fast_path=native_fast_path)
    assert replaced_model is model
    assert names == ["layers.0.self_attn", "layers.1.self_attn"]
    assert all(isinstance(layer.self_attn, FlashAttention) for layer in model.layers)
    assert all(layer.self_attn.training == (mode == "train") for layer in model.layers)

    def forward(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if mode == "eval-no-grad":
            with torch.no_grad():
                return m(x, src_key_padding_mask=kpm)
        x = x.clone().requires_grad_(True)
        out = m(x, src_key_padding_mask=kpm)
        out.square().sum().backward()
        return out

    want, got = forward(baseline, x), forward(model, x)
    keep = ~kpm if (kpm is not None) else torch.ones(B, L, dtype=torch.bool)
    if not batch_first:
        want, got = want.transpose(0, 1), got.transpose(0, 1)
    # Padded positions are torch's own business: its nested-tensor path writes zeros there.
    torch.testing.assert_close(got[keep], want[keep])
    if mode != "eval-no-grad":
        for (n1, p1), (n2, p2) in zip(baseline.named_parameters(), model.named_parameters()):
            assert n1 == n2
            torch.testing.assert_close(p2.grad, p1.grad, msg=n1)
    # The replaced layers really ran FlashAttention, also where torch would have fused the layer,
    # unless torch's fused inference path was kept (native_fast_path=True): then eval without grad is torch's.
    fused = native_fast_path and mode == "eval-no-grad" and batch_first  # torch fuses batch_first only
    assert backend_usage().get("sdpa", 0) == (0 if padded or fused else 2)


def test_fused_fast_path_and_nested_tensors_are_turned_off_only_where_replaced() -> None:
    model = nn.Sequential(encoder(), encoder())
    assert model[0].use_nested_tensor
    _, names = replace_with_flash_attention(model[0], native_fast_path=False)
    assert names == ["layers.0.self_attn", "layers.1.self_attn"]
    assert not model[0].use_nested_tensor and model[1].use_nested_tensor
    assert all(layer.activation_relu_or_gelu == 0 for layer in model[0].layers)
    assert all(layer.activation_relu_or_gelu == 1 for layer in model[1].layers)


def test_replacement_in_nn_transformer_with_a_causal_target_mask() -> None:
    model = nn.Transformer(E, H, 1, 1, dim_feedforward=32, dropout=0.0, batch_first=True)
    baseline = copy.deepcopy(model)
    _, names = replace_with_flash_attention(model)
    assert names == [
        "encoder.layers.0.self_attn",
        "decoder.layers.0.self_attn",
        "decoder.layers.0.multihead_attn",
    ]
    src, tgt = torch.randn(B, S, E), torch.randn(B, L, E)
    mask = nn.Transformer.generate_square_subsequent_mask(L)
    torch.testing.assert_close(
        model(src, tgt, tgt_mask=mask, tgt_is_causal=True), baseline(src, tgt, tgt_mask=mask)
    )


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(E, H, batch_first=True)
        self.shared = nn.MultiheadAttention(E, H)
        self.tied = self.shared


class OwnForward(nn.MultiheadAttention):
    def forward(self, *args: object, **kwargs: object) -> tuple[torch.Tensor, torch.Tensor | None]:  # type: ignore[override]
        return super().forward(*args, **kwargs)  # type: ignore[arg-type]


def test_replacement_logs_each_module_keeps_sharing_and_skips_custom_subclasses(
    caplog: pytest.LogCaptureFixture,
) -> None:
    block = Block()
    block.custom = OwnForward(E, H)
    block.eval()
    caplog.set_level(logging.INFO, logger="flashdoctor.attention")
    _, names = replace_with_flash_attention(block)
    assert names == ["self_attn", "shared"]
    assert block.tied is block.shared and isinstance(block.shared, FlashAttention)
    assert type(block.custom) is OwnForward
    assert not block.self_attn.training
    messages = [r.getMessage() for r in caplog.records]
    assert "Replaced self_attn with FlashAttention" in messages
    assert "Replaced shared with FlashAttention" in messages
    # On a CPU the guide's second message says why, once.
    fallback = [m for m in messages if m.startswith(NOT_AVAILABLE_MESSAGE)]
    assert fallback == [
        f"{NOT_AVAILABLE_MESSAGE}: inputs are on cpu; FlashAttention kernels run on NVIDIA GPUs"
    ]
    assert [r.levelname for r in caplog.records if r.getMessage() in fallback] == ["WARNING"]
    again, none = replace_with_flash_attention(block)
    assert none == [] and again is block


def test_a_bare_multihead_attention_is_returned_replaced() -> None:
    mha = nn.MultiheadAttention(E, H)
    new, names = replace_with_flash_attention(mha, backend="sdpa")
    assert isinstance(new, FlashAttention) and names == ["model"] and new.in_proj_weight is mha.in_proj_weight


# -- the functional API ---------------------------------------------------------------------------------
def reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False, scale: float | None = None
):
    # Naive attention in (batch, seq, heads, dim), KV heads repeated for GQA.
    rep = q.shape[2] // k.shape[2]
    k, v = k.repeat_interleave(rep, dim=2), v.repeat_interleave(rep, dim=2)
    scores = torch.einsum("blhd,bshd->bhls", q, k) * (scale if scale is not None else q.shape[-1] ** -0.5)
    if causal:
        scores = scores.masked_fill(torch.ones_like(scores, dtype=torch.bool).triu(1), -math.inf)
    return torch.einsum("bhls,bshd->blhd", scores.softmax(-1), v)


@pytest.mark.parametrize("heads_kv", [8, 2, 1])
@pytest.mark.parametrize("causal", [False, True])
def test_flash_attention_function_gqa_causal_scale(heads_kv: int, causal: bool) -> None:
    q = torch.randn(2, 9, 8, 12, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 9, heads_kv, 12, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, 9, heads_kv, 20, dtype=torch.float64, requires_grad=True)
    out = flash_attention(q, k, v, causal=causal, softmax_scale=0.3)
    want = reference(q, k, v, causal, 0.3)
    assert out.shape == (2, 9, 8, 20)
    torch.testing.assert_close(out, want)
    g1 = torch.autograd.grad(out.sum(), (q, k, v))
    g2 = torch.autograd.grad(want.sum(), (q, k, v))
    assert_same(g1, g2)


def test_flash_attention_mask_follows_sdpa() -> None:
    q = torch.randn(2, 4, 2, 8, dtype=torch.float64)
    keep = torch.tensor([True, True, False, True])  # SDPA: True takes part
    out = flash_attention(q, q, q, attn_mask=keep.view(1, 1, 1, 4))
    torch.testing.assert_close(out, reference(q[:, :, :], q[:, keep], q[:, keep]))


def test_flash_attention_validates_its_inputs() -> None:
    q = torch.randn(2, 4, 4, 8)
    with pytest.raises(ValueError, match=r"\(batch, seq, heads, head_dim\)"):
        flash_attention(q[0], q[0], q[0])
    with pytest.raises(ValueError, match="multiple of k/v heads"):
        flash_attention(q, q[:, :, :3], q[:, :, :3])
    with pytest.raises(ValueError, match="dtypes differ"):
        flash_attention(q, q.double(), q)
    with pytest.raises(ValueError, match="dropout_p"):
        flash_attention(q, q, q, dropout_p=1.0)
    # Zero-sized heads or head dims: a clear error naming the shapes, not a ZeroDivisionError.
    with pytest.raises(ValueError, match=r"k/v have 0 heads.*\(2, 4, 0, 8\)"):
        flash_attention(q, q[:, :, :0], q[:, :, :0])
    with pytest.raises(ValueError, match=r"head_dim 0.*\(2, 4, 4, 0\)"):
        flash_attention(q[..., :0], q[..., :0], q[..., :0])
    with pytest.raises(ValueError, match="k/v have 0 heads"):
        select_backend(q, q[:, :, :0], q[:, :, :0])


def test_backend_override_by_argument_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    q = torch.randn(1, 4, 2, 8)
    assert select_backend(q, q, q, backend="sdpa").reason == "standard attention was requested"
    monkeypatch.setenv(dispatch.override_env_var(), "fa3,flash2")
    with pytest.raises(
        ValueError, match=r"FLASHDOCTOR_ATTENTION_BACKENDS='fa3,flash2': unknown attention backend"
    ):
        flash_attention(q, q, q)
    monkeypatch.setenv(dispatch.override_env_var(), "fa2")
    assert select_backend(q, q, q).order == ("fa2",)


def test_cpu_reports_no_flash(caplog: pytest.LogCaptureFixture) -> None:
    statuses = available_backends()
    assert [s.name for s in statuses if s.usable] == ["sdpa"]
    assert attention.FLASH_AVAILABLE is False
    from flashdoctor.attention import FLASH_AVAILABLE

    assert FLASH_AVAILABLE is False
    with pytest.raises(AttributeError):
        attention.NO_SUCH_THING  # noqa: B018
    caplog.set_level(logging.INFO, logger="flashdoctor.attention")
    q = torch.randn(1, 4, 2, 8, dtype=torch.bfloat16)
    flash_attention(q, q, q)
    flash_attention(q, q, q)
    assert [r.getMessage() for r in caplog.records] == [
        f"{NOT_AVAILABLE_MESSAGE}: inputs are on cpu; FlashAttention kernels run on NVIDIA GPUs"
    ]
    assert backend_usage() == {"sdpa": 2}


# -- the forced-backend path, run for real on torch's CPU kernels -------------------------------------
@pytest.fixture(name="pretend_h100")
def pretend_h100_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    """CPU calls described as an H100's with only torch: the one thing that cannot exist here is the GPU."""
    pretend_h100(monkeypatch)


def test_an_fa3_minimal_build_runs_what_it_has_and_is_skipped_for_the_rest_with_one_line(
    fa3_minimal_build: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="flashdoctor.attention")
    q, k, v = (torch.randn(2, 16, 4, 128, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        out = flash_attention(q, k, v, causal=True)
    assert backend_usage(reset=True) == {"fa3": 1}
    assert fa3_minimal_build.calls == [(torch.bfloat16, 128, True)]
    assert any("FlashAttnFwdSm90" in e.name for e in prof.events())
    torch.testing.assert_close(
        out.float(), reference(q.float(), k.float(), v.float(), causal=True), atol=2e-2, rtol=2e-2
    )
    out.float().sum().backward()  # the build has its backward pass
    (first,) = [r.getMessage() for r in caplog.records]
    assert first.startswith("FlashAttention: using fa3 (FlashAttention-3")
    caplog.clear()
    # fp16 is not in the build (the real one segfaults): standard order goes on, one line, every call.
    h = [t.detach().half() for t in (q, k, v)]
    for _ in range(3):
        out16 = flash_attention(*h, causal=True)
    assert out16.dtype == torch.float16 and backend_usage(reset=True) == {"sdpa-flash": 3}
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("FlashAttention: using sdpa-flash") and "for fp16, head_dim 128" in line
    assert f"skipped fa3: fp16 not compiled in this build ({FA3_LABEL})" in line
    caplog.clear()
    # Another head dim: skipped the same way, with its own line; 100 runs on the 128 kernel.
    small = torch.randn(2, 16, 4, 64, dtype=torch.bfloat16)
    flash_attention(small, small, small)
    flash_attention(small, small, small)
    (line,) = [r.getMessage() for r in caplog.records]
    assert f"skipped fa3: head dim 64 not compiled in this build ({FA3_LABEL})" in line
    d100 = torch.randn(2, 16, 4, 100, dtype=torch.bfloat16)
    flash_attention(d100, d100, d100)
    assert backend_usage(reset=True) == {"sdpa-flash": 2, "fa3": 1}
    assert fa3_minimal_build.calls[-1] == (torch.bfloat16, 104, False)  # padded to a multiple of 8


def test_a_backend_that_torch_refuses_falls_back_once_with_its_reason(
    pretend_h100: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="flashdoctor.attention")
    q = torch.randn(2, 6, 4, 12, dtype=torch.bfloat16, requires_grad=True)
    k = torch.randn(2, 6, 2, 12, dtype=torch.bfloat16, requires_grad=True)
    assert select_backend(q, k, k).backend == "sdpa-cudnn"
    # cuDNN has no CPU kernel: torch refuses, SDPA flash (which has one) runs, with head dim 12
    # padded to 16 and GQA through enable_gqa.
    out = flash_attention(q, k, k)
    torch.testing.assert_close(out.float(), reference(q.float(), k.float(), k.float()), atol=2e-2, rtol=2e-2)
    out.sum().backward()
    assert q.grad is not None and q.grad.shape == q.shape and k.grad is not None
    assert backend_usage() == {"sdpa-flash": 1}
    assert select_backend(q, k, k).backend == "sdpa-flash"  # remembered: cuDNN is not retried
    flash_attention(q, k, k)
    messages = [r.getMessage() for r in caplog.records]
    failed = [m for m in messages if "sdpa-cudnn failed" in m]
    # torch's own words are kept ("No available kernel" on GPUs, "No viable backend" on this CPU build).
    assert len(failed) == 1 and ("No available kernel" in failed[0] or "No viable backend" in failed[0])
    assert any(m.startswith("FlashAttention: using sdpa-cudnn") for m in messages)
    assert backend_usage() == {"sdpa-flash": 2}


@pytest.mark.parametrize(
    "refusal",
    [
        AssertionError("Unsupported compute capability. Supported: 9.x, 10.x, 11.x"),  # FA4's asserts
        ValueError("head_dim_v must be divisible by 8"),
        TypeError("flash_attn_func() got an unexpected keyword argument 'softmax_scale'"),
    ],
)
def test_a_flash_kernel_refusing_with_another_exception_falls_back_too(
    fa3_minimal_build: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    refusal: Exception,
) -> None:
    """A flash-attn build refuses calls the knowledge admits with whatever its Python wrapper raises:
    FA4's interface asserts (AssertionError), others raise ValueError, or TypeError for a version whose
    signature differs. That is a
    refusal like torch's RuntimeError: the call goes to the next backend instead of crashing the model."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise refusal

    monkeypatch.setattr(fa3_minimal_build, "flash_attn_func", refuse)
    availability.import_backend.cache_clear()
    caplog.set_level(logging.WARNING, logger="flashdoctor.attention")
    q = torch.randn(2, 16, 4, 128, dtype=torch.bfloat16)
    assert select_backend(q, q, q).backend == "fa3"
    out = flash_attention(q, q, q)
    flash_attention(q, q, q)
    torch.testing.assert_close(out.float(), reference(q.float(), q.float(), q.float()), atol=2e-2, rtol=2e-2)
    assert backend_usage() == {"sdpa-flash": 2}
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("FlashAttention: fa3 failed") and str(refusal) in line
    assert select_backend(q, q, q).backend == "sdpa-flash"  # remembered for this kind of call


def test_dropout_with_a_forced_backend_that_cannot_take_it_still_computes(pretend_h100: None) -> None:
    # torch's CPU flash kernel has no dropout: the fallback computes it instead.
    q = torch.randn(1, 8, 2, 16, dtype=torch.bfloat16)
    out = flash_attention(q, q, q, dropout_p=0.5, backend="sdpa-flash")
    assert out.shape == q.shape and torch.isfinite(out.float()).all()
    assert backend_usage() == {"sdpa": 1}


# -- padding ---------------------------------------------------------------------------------------------
def test_pad_sequence_length_and_its_inverse() -> None:
    x = torch.randn(2, 196, 4, 8)
    padded, n = pad_sequence_length(x)
    assert padded.shape == (2, 256, 4, 8) and n == 196
    assert torch.equal(padded[:, 196:], torch.zeros(2, 60, 4, 8))
    assert torch.equal(unpad_sequence_length(padded, n), x)
    same, n2 = pad_sequence_length(x, multiple=4)
    assert same is x and n2 == 196
    last, d = pad_sequence_length(x[..., :6], multiple=8, dim=-1, value=1.0)
    assert last.shape[-1] == 8 and d == 6 and torch.equal(last[..., 6:], torch.ones(2, 196, 4, 2))
    with pytest.raises(ValueError, match="multiple"):
        pad_sequence_length(x, multiple=0)
    with pytest.raises(ValueError, match="longer"):
        unpad_sequence_length(x, 197)


def test_padded_keys_masked_out_leave_attention_unchanged() -> None:
    q = torch.randn(2, 50, 4, 8, dtype=torch.float64)
    padded, n = pad_sequence_length(q, 64)
    keep = (torch.arange(padded.shape[1]) < n).view(1, 1, 1, -1)  # SDPA mask: attend to real keys only
    out = unpad_sequence_length(flash_attention(padded, padded, padded, attn_mask=keep), n)
    torch.testing.assert_close(out, flash_attention(q, q, q))


def test_cudnn_layout_keeps_packed_projections_and_copies_the_rest() -> None:
    packed = torch.randn(2, 5, 3 * 4 * 8).unflatten(-1, (3, 4, 8))
    q, k, v = packed.unbind(2)  # views into one (batch, seq, 3*heads*dim) projection
    assert kernels.cudnn_layout(q, k, v) == (q, k, v)
    assert all(a is b for a, b in zip(kernels.cudnn_layout(q, k, v), (q, k, v)))
    kv = torch.randn(2, 5, 2 * 4 * 8).unflatten(
        -1, (2, 4, 8)
    )  # cross-attention key/value: not a cuDNN layout
    out = kernels.cudnn_layout(q, kv[:, :, 0], kv[:, :, 1])
    assert all(t.is_contiguous() for t in out)
    assert torch.equal(out[1], kv[:, :, 0]) and torch.equal(out[0], q)


def _eval_ops(model: nn.Module, x: torch.Tensor) -> set[str]:
    with torch.no_grad(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        model(x)
    return {e.name for e in prof.events()}


def test_eval_runs_the_flash_kernel_by_default_and_torchs_fused_path_only_when_asked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """docs/runtime.md: after replace_with_flash_attention(model), eval without grad runs flashdoctor's
    dispatch in every layer (backend_usage counts it, torch's fused layer op does not run);
    native_fast_path=True keeps torch's fused layer, flashdoctor does not run there, and says so once."""
    caplog.set_level(logging.INFO, logger="flashdoctor.attention")
    x = torch.randn(B, L, E)
    model = encoder(layers=3).eval()
    assert "aten::_transformer_encoder_layer_fwd" in _eval_ops(copy.deepcopy(model), x)  # torch's own
    default, _ = replace_with_flash_attention(copy.deepcopy(model))
    assert not default.use_nested_tensor
    assert all(layer.activation_relu_or_gelu == 0 for layer in default.layers)
    backend_usage(reset=True)
    ops = _eval_ops(default, x)
    assert backend_usage(reset=True) == {"sdpa": 3}  # on a GPU: fa3, sdpa-cudnn, ... (the decision)
    assert not {"aten::_transformer_encoder_layer_fwd", "aten::_native_multi_head_attention"} & ops
    assert not any("fused inference path" in r.getMessage() for r in caplog.records)

    fused, _ = replace_with_flash_attention(copy.deepcopy(model), native_fast_path=True)
    assert fused.use_nested_tensor and all(layer.activation_relu_or_gelu == 1 for layer in fused.layers)
    ops = _eval_ops(fused, x)
    assert backend_usage(reset=True) == {}
    assert "aten::_transformer_encoder_layer_fwd" in ops
    kept = [r.getMessage() for r in caplog.records if "fused inference path" in r.getMessage()]
    assert kept == [runtime_module.FUSED_KEPT_MESSAGE]
    replace_with_flash_attention(copy.deepcopy(model), native_fast_path=True)
    assert len([r for r in caplog.records if "fused inference path" in r.getMessage()]) == 1  # once
    # Training runs flashdoctor's dispatch either way.
    fused.train()
    fused(x.clone().requires_grad_(True)).sum().backward()
    assert backend_usage(reset=True) == {"sdpa": 3}


def test_decisions_are_cached_per_kind_of_call_not_per_length() -> None:
    """A decoding loop (seq_q 1, seq_k growing) decides once, not once per step."""
    base = dispatch.AttentionCall(
        device="cpu", capability=None, dtype="fp32", head_dim=64, seq_q=1, seq_k=1, causal=True
    )
    runtime_call._decide_cached.cache_clear()
    decisions = {runtime_call.decide(dataclasses_replace(base, seq_k=n), None) for n in range(100, 110)}
    info = runtime_call._decide_cached.cache_info()
    assert len(decisions) == 1 and info.misses == 1 and info.hits == 9
    square = runtime_call.decide(base, None)  # square is another kind of call
    assert runtime_call._decide_cached.cache_info().misses == 2 and square.backend


def test_threads_recording_failures_while_others_decide_do_not_break_a_call(pretend_h100: None) -> None:
    """Models call attention from several threads. One thread's backend failing (recorded for its kind of
    call) while another thread decides used to raise "Set changed size during iteration" in the reader."""
    gpu = dispatch.AttentionCall(
        device="cuda", capability=(9, 0), dtype="bf16", head_dim=128, seq_q=4, seq_k=4
    )
    errors: list[str] = []
    done = threading.Event()

    def record() -> None:
        for i in range(100_000):  # bounded; stops as soon as the decider is done
            if done.is_set():
                return
            state.record_failure("fa2", dataclasses_replace(gpu, head_dim=8 + i))

    def decide() -> None:
        try:
            for _ in range(2_000):
                runtime_call.decide(gpu, None)
        except Exception as exc:  # the old reader's RuntimeError
            errors.append(repr(exc))
        finally:
            done.set()

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        threads = [threading.Thread(target=record), threading.Thread(target=decide)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        sys.setswitchinterval(old)
    assert errors == [] and len(state.FAILED) > 10
    # what was recorded is what later calls of that kind skip
    state.record_failure("sdpa-cudnn", runtime_call._failure_key(gpu))
    assert state.failed_for(runtime_call._failure_key(gpu)) == {"sdpa-cudnn"}
    assert "sdpa-cudnn" not in runtime_call.decide(gpu, None).candidates
    # usage counted from several threads adds up
    q = torch.randn(1, 4, 2, 16)
    workers = [
        threading.Thread(target=lambda: [flash_attention(q, q, q) for _ in range(50)]) for _ in range(4)
    ]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=60)
    assert sum(backend_usage().values()) == 200


@pytest.fixture(name="deterministic")
def deterministic_fixture() -> Any:
    """torch.use_deterministic_algorithms(True) for one test, then torch's settings as they were."""
    was = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was[0], warn_only=was[1])


def test_deterministic_mode_asks_flash_kernels_for_their_deterministic_backward(
    fa3_minimal_build: Any, deterministic: None
) -> None:
    q = torch.randn(2, 16, 4, 128, dtype=torch.bfloat16, requires_grad=True)
    flash_attention(q, q, q).float().sum().backward()
    assert backend_usage(reset=True) == {"fa3": 1}
    assert fa3_minimal_build.kwargs[-1]["deterministic"] is True
    # Inference: no backward to make deterministic, and FA2 before 2.4.1 raises TypeError on the keyword.
    with torch.no_grad():
        flash_attention(q, q, q)
    assert "deterministic" not in fa3_minimal_build.kwargs[-1]
    assert backend_usage(reset=True) == {"fa3": 1}
    torch.use_deterministic_algorithms(False)
    flash_attention(q, q, q)
    assert "deterministic" not in fa3_minimal_build.kwargs[-1]  # as before: the kernel's own default


def test_deterministic_mode_skips_cudnn_as_torch_does_without_a_failure(
    pretend_h100: None, deterministic: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="flashdoctor.attention")
    q = torch.randn(2, 6, 4, 16, dtype=torch.bfloat16, requires_grad=True)
    decision = select_backend(q, q, q)
    assert (
        decision.backend == "sdpa-flash"
        and "sdpa-cudnn: torch.use_deterministic_algorithms" in decision.reason
    )
    flash_attention(q, q, q).sum().backward()
    assert backend_usage() == {"sdpa-flash": 1}
    assert not [r for r in caplog.records if "failed" in r.getMessage()]


# flash_attn_func's keywords past causal: 2.4.1 added deterministic= ("Implement deterministic backward").
FA2_SIGNATURE = """
_fake = flash_attn_func
calls = []  # the deterministic= each call got (None: the signature has no such keyword)


def flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, {keywords}):
    calls.append({deterministic})
    return _fake(q, k, v, dropout_p, softmax_scale, causal)
"""
BEFORE_2_4_1 = {
    "keywords": "window_size=(-1, -1), alibi_slopes=None, return_attn_probs=False",
    "deterministic": "None",
}
FROM_2_4_1 = {
    "keywords": "window_size=(-1, -1), alibi_slopes=None, deterministic=False, return_attn_probs=False",
    "deterministic": "deterministic",
}


@pytest.mark.parametrize(
    ("version", "signature"),
    [
        ("2.3.6", BEFORE_2_4_1),
        ("2.4.0.post1", BEFORE_2_4_1),
        ("2.4.1", FROM_2_4_1),
        ("2.8.3.post1", FROM_2_4_1),
    ],
)
def test_deterministic_mode_never_calls_an_fa2_without_the_deterministic_keyword(
    version: str,
    signature: dict[str, str],
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    deterministic: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An installed FA2 (a stand-in with that release's signature and dist-info version) on an H100 where FA2
    is the first flash-attn build: before 2.4.1 the decision skips it for a call that needs gradients, with
    the reason, and it is never called; it was called with deterministic=True, raised TypeError, was
    remembered as failed and logged a warning. From 2.4.1 it runs with deterministic=True."""
    site = write_site(tmp_path / "site", fa2_version=version)
    with (site / "flash_attn" / "__init__.py").open("a") as fh:
        fh.write(FA2_SIGNATURE.format(**signature))
    caplog.set_level(logging.INFO, logger="flashdoctor.attention")
    with installed_on_h100(site, monkeypatch):
        assert availability.import_backend("fa2")[1:] == (None, version)
        stand_in = sys.modules["flash_attn"]
        q = torch.randn(2, 16, 4, 64, dtype=torch.bfloat16, requires_grad=True)
        decision = select_backend(q, q, q)
        flash_attention(q, q, q).float().sum().backward()
        if signature is FROM_2_4_1:
            assert decision.backend == "fa2" and stand_in.calls == [True]
            assert backend_usage(reset=True) == {"fa2": 1}
        else:
            assert decision.backend == "sdpa-flash" and stand_in.calls == []
            assert "fa2: torch.use_deterministic_algorithms(True): FA2 before 2.4.1" in decision.reason
            assert backend_usage(reset=True) == {"sdpa-flash": 1}
            with torch.no_grad():  # no backward: it runs, called as outside the mode
                flash_attention(q, q, q)
            assert stand_in.calls == [None] and backend_usage(reset=True) == {"fa2": 1}
        assert not [r for r in caplog.records if "failed" in r.getMessage()]
