"""flash_attention against an explicit softmax(q·kᵀ·scale + mask)·v in float64, written here.

The fallback (standard attention, PyTorch SDPA) is what runs on a CPU, and what a GPU runs when no
flash kernel takes a call; the forced SDPA kernels (head dims padded, k/v heads passed natively or
repeated) run through torch's CPU kernels with only the GPU description of the call faked. Either
way the result must be the documented semantics: causal aligned top-left (docs/runtime.md), k/v
heads shared by consecutive query heads, softmax_scale defaulting to 1/sqrt(head_dim), the SDPA mask
convention, (batch, seq, heads, head_dim) in and out, whatever the strides.
"""

from __future__ import annotations

import math
import warnings

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy", category=UserWarning)
    import torch

from flashdoctor.attention import backend_usage, flash_attention
from tests.support.runtime_fakes import pretend_h100


def naive(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    scale: float | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """softmax(q·kᵀ·scale + mask)·v, float64, loops over heads: (batch, seq, heads, dim) in and out."""
    q, k, v = q.double(), k.double(), v.double()
    b, lq, h, d = q.shape
    lk, hk = k.shape[1], k.shape[2]
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    out = torch.empty(b, lq, h, v.shape[-1], dtype=torch.float64)
    for head in range(h):
        kv = head // (h // hk)  # consecutive query heads share one k/v head
        s = torch.einsum("bld,bsd->bls", q[:, :, head], k[:, :, kv]) * scale
        if causal:  # top-left: query i sees keys 0..i
            allowed = torch.arange(lk)[None, :] <= torch.arange(lq)[:, None]
            s = s.masked_fill(~allowed, -math.inf)
        if mask is not None:
            m = mask.expand(b, h, lq, lk)[:, head]
            s = s.masked_fill(~m, -math.inf) if m.dtype == torch.bool else s + m.double()
        out[:, :, head] = torch.einsum("bls,bsd->bld", s.softmax(-1), v[:, :, kv])
    return out


def qkv(
    lq: int, lk: int, h: int, hk: int, d: int, dv: int | None = None, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Non-contiguous (batch, seq, heads, dim) views of (batch, heads, seq, dim) tensors, as model code
    that keeps SDPA's layout hands them over."""
    q = torch.randn(2, h, lq, d, dtype=dtype).transpose(1, 2)
    k = torch.randn(2, hk, lk, d, dtype=dtype).transpose(1, 2)
    v = torch.randn(2, hk, lk, dv or d, dtype=dtype).transpose(1, 2)
    return q, k, v


SHAPES = [  # (seq_q, seq_k, heads, kv_heads, head_dim, head_dim_v)
    (7, 7, 4, 4, 16, 16),
    (3, 9, 4, 2, 16, 16),  # decoding-like: fewer queries than keys, GQA
    (9, 3, 6, 1, 12, 12),  # more queries than keys, MQA, head dim not a multiple of 8
    (1, 5, 4, 4, 8, 24),  # one query, v head dim differs
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("scale", [None, 0.37])
def test_fallback_matches_the_explicit_formula_forward_and_backward(
    shape: tuple[int, ...], causal: bool, scale: float | None
) -> None:
    lq, lk, h, hk, d, dv = shape
    q, k, v = (t.requires_grad_(True) for t in qkv(lq, lk, h, hk, d, dv))
    out = flash_attention(q, k, v, causal=causal, softmax_scale=scale)
    want = naive(q, k, v, causal, scale)
    assert out.shape == (2, lq, h, dv) and out.dtype == torch.float64
    torch.testing.assert_close(out, want, atol=1e-10, rtol=1e-9)
    w = torch.randn_like(out)
    got = torch.autograd.grad((out * w).sum(), (q, k, v))
    ref = torch.autograd.grad((want * w).sum(), (q, k, v))
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-9)
    assert backend_usage() == {"sdpa": 1}


@pytest.mark.parametrize("kind", ["bool-key-padding", "bool-full", "float-additive"])
@pytest.mark.parametrize("hk", [4, 2])
def test_masks_follow_the_sdpa_convention(kind: str, hk: int) -> None:
    q, k, v = qkv(5, 6, 4, hk, 8)
    if kind == "bool-key-padding":  # True takes part: batch 0 has two padded keys
        keep = torch.ones(2, 1, 1, 6, dtype=torch.bool)
        keep[0, ..., -2:] = False
        mask = keep
    elif kind == "bool-full":
        mask = torch.rand(2, 4, 5, 6) > 0.3
        mask[..., 0] = True  # no fully masked row
    else:
        mask = torch.randn(1, 4, 5, 6, dtype=torch.float64)
    out = flash_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out, naive(q, k, v, mask=mask), atol=1e-10, rtol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_low_precision_inputs_keep_their_dtype_within_tolerance(dtype: torch.dtype) -> None:
    q, k, v = qkv(6, 6, 4, 2, 16, dtype=dtype)
    out = flash_attention(q, k, v, causal=True)
    assert out.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(out.double(), naive(q, k, v, causal=True), atol=tol, rtol=tol)


def test_dropout_zero_is_deterministic_and_dropout_applies_as_given() -> None:
    q, k, v = qkv(6, 6, 2, 2, 8)
    a, b = flash_attention(q, k, v, dropout_p=0.0), flash_attention(q, k, v, dropout_p=0.0)
    assert torch.equal(a, b)
    torch.testing.assert_close(a, naive(q, k, v), atol=1e-10, rtol=1e-9)
    assert not torch.allclose(flash_attention(q, k, v, dropout_p=0.5), a)


@pytest.fixture(name="pretend_h100")
def pretend_h100_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    """CPU calls described as an H100's with only torch (no flash-attn): SDPA's forced kernels run on
    torch's CPU kernels; cuDNN has none, so it is reported off."""
    pretend_h100(monkeypatch, cudnn="disabled")


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("causal", [False, True])
def test_the_gpu_dispatch_path_keeps_the_semantics(
    pretend_h100: None, shape: tuple[int, ...], causal: bool
) -> None:
    """bf16 on a pretended H100: square calls run SDPA flash forced (head dim padded to 8, GQA through
    enable_gqa), non-square causal calls and a differing v head dim go to standard attention."""
    lq, lk, h, hk, d, dv = shape
    q, k, v = (t.requires_grad_(True) for t in qkv(lq, lk, h, hk, d, dv, dtype=torch.bfloat16))
    out = flash_attention(q, k, v, causal=causal, softmax_scale=0.3)
    assert out.shape == (2, lq, h, dv) and out.dtype == torch.bfloat16
    torch.testing.assert_close(out.double(), naive(q, k, v, causal, 0.3), atol=2e-2, rtol=2e-2)
    out.float().sum().backward()
    flash = d == dv and not (causal and lq != lk)
    assert backend_usage() == ({"sdpa-flash": 1} if flash else {"sdpa": 1})


@pytest.mark.gpu
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("causal", [False, True])
def test_on_a_gpu_whatever_kernel_runs_keeps_the_semantics(shape: tuple[int, ...], causal: bool) -> None:
    """The same comparison on the real GPU, bf16, whichever backend the dispatcher picks there (FA3,
    SDPA cuDNN, SDPA flash, ... or standard attention for non-square causal calls)."""
    lq, lk, h, hk, d, dv = shape
    q, k, v = (t.cuda().requires_grad_(True) for t in qkv(lq, lk, h, hk, d, dv, dtype=torch.bfloat16))
    out = flash_attention(q, k, v, causal=causal, softmax_scale=0.3)
    assert out.shape == (2, lq, h, dv) and out.dtype == torch.bfloat16 and out.is_cuda
    cpu = [t.detach().cpu() for t in (q, k, v)]
    torch.testing.assert_close(out.double().cpu(), naive(*cpu, causal, 0.3), atol=2e-2, rtol=2e-2)
    out.float().sum().backward()
    assert all(t.grad is not None and torch.isfinite(t.grad.float()).all() for t in (q, k, v))
    (ran,) = backend_usage()
    if causal and lq != lk:
        assert ran == "sdpa"  # FlashAttention kernels align causal masks bottom-right: not used
