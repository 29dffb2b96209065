"""The call path: describe a call on real tensors, decide its backend, log why, run it, fall back.

The decision itself is `dispatch.decide()`, a pure function; this module reads its inputs (what
imports, what failed earlier, the override order) on every call and caches the decision per kind of
call, so a decoding loop decides once.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Sequence
from functools import lru_cache

import torch
from torch import Tensor

from flashdoctor.runtime import availability, compat, dispatch, kernels, state
from flashdoctor.runtime.dispatch import FALLBACK, AttentionCall, Decision


def _order_override(backend: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if backend is not None:
        return dispatch.parse_order(backend)
    env = os.environ.get(dispatch.override_env_var())
    if env:
        try:
            return dispatch.parse_order(env)
        except ValueError as exc:
            raise ValueError(f"{dispatch.override_env_var()}={env!r}: {exc}") from None
    return None


def _check_qkv(q: Tensor, k: Tensor, v: Tensor) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(
            "flash_attention takes (batch, seq, heads, head_dim) tensors; got shapes "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if not (q.shape[0] == k.shape[0] == v.shape[0]):
        raise ValueError(f"batch sizes differ: q {q.shape[0]}, k {k.shape[0]}, v {v.shape[0]}")
    if k.shape[1] != v.shape[1] or k.shape[2] != v.shape[2]:
        raise ValueError(f"k and v differ in seq or heads: {tuple(k.shape)} vs {tuple(v.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k head dims differ: {q.shape[-1]} vs {k.shape[-1]}")
    if k.shape[2] == 0:
        raise ValueError(f"k/v have 0 heads: shapes {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if q.shape[-1] == 0:
        raise ValueError(f"head_dim 0: shapes {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if q.shape[2] % k.shape[2] != 0:
        raise ValueError(f"q heads ({q.shape[2]}) must be a multiple of k/v heads ({k.shape[2]}) for GQA/MQA")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k, v dtypes differ: {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v are on different devices: {q.device}, {k.device}, {v.device}")


@compat.assume_constant_result
def _deterministic_warn_only() -> bool:
    # Dynamo cannot trace this torch function (it returns a bool, not a tensor): under torch.compile it is
    # read once, at trace time, like the decision it feeds.
    return torch.is_deterministic_algorithms_warn_only_enabled()


def describe_call(
    q: Tensor, k: Tensor, v: Tensor, causal: bool = False, dropout_p: float = 0.0, mask: bool = False
) -> AttentionCall:
    """The dispatcher's view of a call on real tensors ((batch, seq, heads, head_dim) layout)."""
    return AttentionCall(
        device=q.device.type,
        capability=availability.device_capability(q.device),
        dtype=availability.dtype_name(q.dtype),
        head_dim=q.shape[-1],
        head_dim_v=v.shape[-1] if v.shape[-1] != q.shape[-1] else None,
        seq_q=q.shape[1],
        seq_k=k.shape[1],
        heads_q=q.shape[2],
        heads_k=k.shape[2],
        causal=causal,
        dropout=dropout_p > 0.0,
        mask=mask,
        rocm=availability.is_rocm() and q.device.type == "cuda",
        grad=torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad),
        # As torch's SDPA: warn_only=True keeps the fast (non-deterministic) flash backward.
        deterministic=torch.are_deterministic_algorithms_enabled() and not _deterministic_warn_only(),
    )


def _failure_key(call: AttentionCall) -> AttentionCall:
    # Decisions and failures are per kind of call, not per sequence length: the lengths only matter as
    # square or not (causal alignment), so this keeps exactly that.
    square = call.seq_q == call.seq_k
    return dataclasses.replace(call, seq_q=0, seq_k=0 if square else 1)


@lru_cache(maxsize=1024)
def _decide_cached(
    call: AttentionCall,
    available: tuple[tuple[str, str | None], ...],
    order: tuple[str, ...] | None,
    failed: frozenset[str],
    versions: tuple[tuple[str, str | None], ...] = (),
) -> Decision:
    return dispatch.decide(call, dict(available), order, failed, dict(versions))


def decide(call: AttentionCall, backend: str | Sequence[str] | None) -> Decision:
    """The decision for `call`. Every input is read here, on each call (flags can be toggled at
    runtime); the decision itself is cached per kind of call."""
    fkey = _failure_key(call)
    failed = state.failed_for(fkey)
    found = availability.availability(call.device)
    available = tuple(sorted(found.items()))
    versions = tuple(sorted(availability.versions(found).items()))
    return _decide_cached(fkey, available, _order_override(backend), failed, versions)


def select_backend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    causal: bool = False,
    dropout_p: float = 0.0,
    attn_mask: Tensor | None = None,
    backend: str | Sequence[str] | None = None,
) -> Decision:
    """The decision flash_attention() would take for these tensors, without running anything."""
    _check_qkv(q, k, v)
    return decide(describe_call(q, k, v, causal, dropout_p, attn_mask is not None), backend)


def log_decision(call: AttentionCall, decision: Decision) -> None:
    """One line per distinct decision: which backend and why (what was skipped on the way, such as a
    minimal build without this dtype or head dim), or why standard attention runs."""
    where = f"{call.device} {call.sm}" if call.device == "cuda" else call.device
    if decision.flash:
        title = dispatch.backend_spec(decision.backend).title
        state.log_once(
            logging.INFO,
            f"FlashAttention: using {decision.backend} ({title}) for {call.dtype}, head_dim {call.head_dim} "
            f"on {where}: {decision.reason}",
        )
    elif not decision.order:
        state.log_once(logging.INFO, "FlashAttention: standard attention (PyTorch SDPA), as requested")
    elif call.mask and call.device == "cuda":
        state.log_once(
            logging.INFO,
            f"FlashAttention: standard attention for a masked call on {where}: {decision.reason}",
        )
    else:
        state.log_once(logging.WARNING, f"{state.NOT_AVAILABLE_MESSAGE}: {decision.reason}")


def _key_fields(call: AttentionCall) -> tuple[object, ...]:
    """The kind of call (`_failure_key`) as plain values, for `_decide_and_log`."""
    key = _failure_key(call)
    return tuple(getattr(key, f.name) for f in dataclasses.fields(key))


@compat.assume_constant_result
def _decide_and_log(fields: tuple[object, ...], backend: str | Sequence[str] | None) -> Decision:
    """decide() and log_decision() for the kind of call `fields` describes. Under torch.compile this
    runs once, when the graph is traced, and its decision is part of the graph: its locks, log lines
    and data-file reads never run inside it (they would break the graph on every call). Plain values
    in, because dynamo hands such a function its arguments as constants (a dataclass does not survive
    that)."""
    call = AttentionCall(*fields)  # type: ignore[arg-type]
    decision = decide(call, backend)
    log_decision(call, decision)
    return decision


def flash_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    causal: bool = False,
    dropout_p: float = 0.0,
    softmax_scale: float | None = None,
    *,
    attn_mask: Tensor | None = None,
    backend: str | Sequence[str] | None = None,
) -> Tensor:
    """softmax(q·kᵀ·scale [+ mask]) · v with the best kernel for the device, dtype and head dim.

    q: (batch, seq_q, heads, head_dim); k, v: (batch, seq_k, kv_heads, head_dim[_v]) where heads is
    a multiple of kv_heads (GQA/MQA). Returns (batch, seq_q, heads, head_dim_v).
    causal: top-left aligned as in torch SDPA (only matters when seq_q != seq_k; FlashAttention's
    bottom-right kernels are then not used). attn_mask follows SDPA: bool True = attend, or an
    additive float mask, broadcastable to (batch, heads, seq_q, seq_k); masked calls use SDPA.
    dropout_p applies as given (pass 0.0 in eval). softmax_scale defaults to 1/sqrt(head_dim).
    backend: a name or an order ("fa2,sdpa-flash") tried before the fallback, instead of the GPU's
    order; the FLASHDOCTOR_ATTENTION_BACKENDS environment variable does the same process-wide.
    An installed flashdoctor minimal build is skipped for the dtypes and head dims it was built
    without (and, built without its backward pass, for calls that need gradients).
    """
    _check_qkv(q, k, v)
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    call = describe_call(q, k, v, causal, dropout_p, attn_mask is not None)
    if compat.is_compiling():
        decision = _decide_and_log(_key_fields(call), backend)
    else:  # the plain route: _decide_and_log's plain values and rebuilt call cost as much as the decision
        decision = decide(call, backend)
        log_decision(call, decision)
    scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(q.shape[-1])
    # Only a backward has anything to make deterministic; FA2 before 2.4.1 raises TypeError on the keyword.
    deterministic_backward = call.deterministic and call.grad
    for name in decision.candidates:
        try:
            out = kernels.run(name, q, k, v, causal, dropout_p, scale, attn_mask, deterministic_backward)
        except torch.cuda.OutOfMemoryError:
            raise
        except Exception as exc:
            if name == FALLBACK:
                raise
            # The knowledge said yes but this torch/kernel build said no: remember, warn once, go on.
            # Not only RuntimeError: FA4's wrapper refuses with assert, others with ValueError/TypeError.
            state.record_failure(name, _failure_key(call))
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            state.log_once(
                logging.WARNING,
                f"FlashAttention: {name} failed for {call.dtype} head_dim {call.head_dim} on {call.sm} "
                f"({first}); trying the next backend",
            )
            continue
        if not compat.is_compiling():
            state.count_use(name)
        return out
    raise AssertionError("unreachable: the fallback either returns or raises")  # pragma: no cover
