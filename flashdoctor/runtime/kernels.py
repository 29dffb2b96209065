"""Running one backend on (batch, seq, heads, head_dim) tensors, and the padding helpers.

`run()` calls exactly the backend it is given: a flash-attn function or PyTorch SDPA restricted to
one of its kernels (or SDPA's own selection, the fallback). Which backend is the dispatcher's
business (`flashdoctor.runtime.call`).
"""

from __future__ import annotations

import warnings
from functools import cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from flashdoctor.runtime import availability, compat, dispatch


# -- padding -------------------------------------------------------------------------------------
def pad_sequence_length(
    x: Tensor, multiple: int = 64, dim: int = 1, value: float = 0.0
) -> tuple[Tensor, int]:
    """Pad dimension `dim` of `x` (the sequence in (batch, seq, ...) layouts) with `value` up to a
    multiple of `multiple`. Returns the padded tensor and the original length for
    ``unpad_sequence_length``. Padded keys must be masked (key_padding_mask) to leave attention
    unchanged; padded queries only add rows to drop. The runtime uses it to pad head dims to what
    a kernel takes (zeros do not change q·k, and the extra output columns are dropped)."""
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    if x.dim() == 0:
        raise ValueError("cannot pad a 0-d tensor")
    d = dim % x.dim()
    length = x.shape[d]
    target = -(-length // multiple) * multiple
    if target == length:
        return x, length
    pad = [0, 0] * (x.dim() - 1 - d) + [0, target - length]
    return F.pad(x, pad, value=value), length


def unpad_sequence_length(x: Tensor, length: int, dim: int = 1) -> Tensor:
    """The inverse of pad_sequence_length: the first `length` entries along `dim`."""
    if length > x.shape[dim]:
        raise ValueError(f"length {length} is longer than dimension {dim} ({x.shape[dim]})")
    return x.narrow(dim, 0, length)


# -- layouts ---------------------------------------------------------------------------------------
def repeat_kv(x: Tensor, heads: int) -> Tensor:
    # (B, S, H_kv, D) -> (B, S, heads, D): each KV head serves heads // H_kv query heads, in order.
    n = heads // x.shape[2]
    return x if n == 1 else x.repeat_interleave(n, dim=2)


def cudnn_layout(q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(batch, seq, heads, dim) tensors in a layout torch's cuDNN backend takes.

    torch's check_cudnn_layout (sdp_utils.cpp, some versions) accepts the packed QKV layout (views
    into one (batch, seq, 3*heads*dim) projection, what FlashAttention's self-attention produces)
    or each tensor contiguous in (batch, seq, heads, dim); anything else is copied into the latter.
    """

    def packed(t: Tensor) -> bool:
        h, d = t.shape[2], t.shape[3]
        return (
            t.stride(3) == 1
            and t.stride(2) == d
            and t.stride(1) == 3 * h * d
            and t.stride(0) == t.shape[1] * 3 * h * d
        )

    if packed(q) and packed(k) and packed(v):
        return q, k, v
    return q.contiguous(), k.contiguous(), v.contiguous()


@cache  # torch's version does not change in a process; this runs on every GQA call
def _supports_enable_gqa() -> bool:
    from flashdoctor.knowledge.versions import parse_version

    v = parse_version(torch.__version__)
    return v is not None and v.release[:2] >= (2, 5)


@compat.assume_constant_result
def _backend_spec(name: str) -> dispatch.BackendSpec:
    return dispatch.backend_spec(name)


# -- running one backend ------------------------------------------------------------------------------
def _sdpa_forced(
    sdpa_backend: str,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    dropout_p: float,
    causal: bool,
    scale: float,
    kwargs: dict[str, Any],
) -> Tensor:
    """SDPA restricted to one backend. When torch refuses it, it warns its reasons and raises
    "No available kernel": the reasons go into the RuntimeError, which flash_attention() turns into
    a fallback and one log line. Other warnings are re-emitted unchanged. While torch.compile traces, the
    warnings are left alone (dynamo cannot trace catch_warnings; a compiled kernel does not fall back)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def forced() -> Tensor:
        with sdpa_kernel(getattr(SDPBackend, sdpa_backend)):
            return F.scaled_dot_product_attention(
                q, k, v, dropout_p=dropout_p, is_causal=causal, scale=scale, **kwargs
            )

    if compat.is_compiling():
        return forced()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = forced()
        except RuntimeError as exc:
            reasons = "; ".join(dict.fromkeys(str(w.message).strip() for w in caught))
            raise RuntimeError(f"{str(exc).strip()} {reasons}".strip()) from exc
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return out


def run(
    name: str,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    causal: bool,
    dropout_p: float,
    scale: float,
    attn_mask: Tensor | None,
    deterministic: bool = False,
) -> Tensor:
    """Attention on backend `name`; (batch, seq, heads, head_dim) in and out. Raises RuntimeError
    when the backend refuses the call (the caller falls back). `deterministic`: torch is in
    deterministic mode and a backward follows, so a flash-attn function is asked for its deterministic
    backward (torch's own SDPA kernels read the mode themselves)."""
    spec = _backend_spec(name)
    d_v = v.shape[-1]
    if spec.head_dim_multiple > 1 and q.shape[-1] % spec.head_dim_multiple:
        # Zero columns change neither q·k nor the kept output columns; the scale stays the original's.
        q = pad_sequence_length(q, spec.head_dim_multiple, dim=-1)[0]
        k = pad_sequence_length(k, spec.head_dim_multiple, dim=-1)[0]
        v = pad_sequence_length(v, spec.head_dim_multiple, dim=-1)[0]
    if spec.kind == "flash-attn":
        fn = availability.IMPORTED[name]  # decide() only picks backends import_backend() imported
        q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
        extra: dict[str, Any] = {"dropout_p": dropout_p} if spec.dropout else {}
        if deterministic and spec.deterministic:
            extra["deterministic"] = True
        out = fn(q, k, v, softmax_scale=scale, causal=causal, **extra)
        if isinstance(out, (tuple, list)):  # FA4 always, FA3 in some versions: (out, lse)
            out = out[0]
    else:
        kwargs: dict[str, Any] = {}
        if q.shape[2] != k.shape[2]:
            if spec.native_gqa and _supports_enable_gqa():
                kwargs["enable_gqa"] = True
            else:
                k, v = repeat_kv(k, q.shape[2]), repeat_kv(v, q.shape[2])
        if spec.sdpa_backend == "CUDNN_ATTENTION":
            q, k, v = cudnn_layout(q, k, v)
        qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if spec.sdpa_backend is None:
            out = F.scaled_dot_product_attention(
                qt, kt, vt, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=causal, scale=scale, **kwargs
            )
        else:
            out = _sdpa_forced(spec.sdpa_backend, qt, kt, vt, dropout_p, causal, scale, kwargs)
        out = out.transpose(1, 2)
    result: Tensor = out[..., :d_v] if out.shape[-1] != d_v else out
    return result
