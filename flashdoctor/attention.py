"""FlashAttention for model code: a flag, a kernel dispatcher, a drop-in module, a model rewrite.

The only flashdoctor module that imports torch (``import flashdoctor`` stays light).

- ``FLASH_AVAILABLE``: True when a flash-class kernel (FA3, FA2, FA4, SDPA flash or SDPA cuDNN)
  runs on the current CUDA device for fp16 or bf16. ``available_backends()`` says which, for which
  dtypes and head dims, and why the others do not.
- ``flash_attention(q, k, v, causal, dropout_p, softmax_scale)``: (batch, seq, heads, head_dim)
  tensors, dispatched to the best backend for the device, dtype and head dim; PyTorch SDPA
  otherwise (fp32, CPU, older GPUs, masks). The choice is `flashdoctor.runtime.dispatch.decide()`, a pure
  function of the call and of what imports here, fed by the same knowledge as ``check``.
- ``FlashAttention``: a subclass of ``nn.MultiheadAttention`` with the same parameters, state dict,
  call signature and outputs; calls a kernel can take go to ``flash_attention``, the rest (attention
  weights, padding or arbitrary masks) to ``nn.MultiheadAttention``'s own code, unchanged.
- ``replace_with_flash_attention(model)``: swaps every ``nn.MultiheadAttention`` in place.

Every choice is logged once per reason on the ``flashdoctor.attention`` logger.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import math
import os
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from functools import cache, lru_cache
from importlib import metadata
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flashdoctor import knowledge
from flashdoctor.runtime import dispatch
from flashdoctor.runtime.dispatch import FALLBACK, AttentionCall, BackendStatus, Decision

__all__ = [
    "FLASH_AVAILABLE",
    "NOT_AVAILABLE_MESSAGE",
    "FlashAttention",
    "available_backends",
    "backend_usage",
    "flash_attention",
    "flash_available",
    "pad_sequence_length",
    "replace_with_flash_attention",
    "select_backend",
    "unpad_sequence_length",
]

logger = logging.getLogger(__name__)

# Computed on first access by __getattr__ below (it needs the GPU and the FlashAttention imports).
FLASH_AVAILABLE: bool

#: The guide's two messages.
NOT_AVAILABLE_MESSAGE = "FlashAttention not available, using standard attention"
REPLACED_MESSAGE = "Replaced {name} with FlashAttention"

_LOGGED: set[str] = set()
_FAILED: set[tuple[str, AttentionCall]] = set()
_USAGE: Counter[str] = Counter()


def _log_once(level: int, message: str) -> None:
    if message not in _LOGGED:
        _LOGGED.add(message)
        logger.log(level, message)


def backend_usage(reset: bool = False) -> dict[str, int]:
    """How many calls each backend ran in this process (what actually ran, after any fallback)."""
    out = dict(_USAGE)
    if reset:
        _USAGE.clear()
    return out


# -- probing this process (the runtime's only contact with the system) -------------------------------
_DTYPE_NAMES = {
    torch.float16: "fp16",
    torch.bfloat16: "bf16",
    torch.float32: "fp32",
    torch.float64: "fp64",
}


def dtype_name(dtype: torch.dtype) -> str:
    return _DTYPE_NAMES.get(dtype, str(dtype).replace("torch.", ""))


@cache
def _capability(index: int) -> tuple[int, int]:
    major, minor = torch.cuda.get_device_capability(index)
    return int(major), int(minor)


def _device_capability(device: torch.device) -> tuple[int, int] | None:
    if device.type != "cuda":
        return None
    return _capability(device.index if device.index is not None else torch.cuda.current_device())


def _is_rocm() -> bool:
    return getattr(torch.version, "hip", None) is not None


def _dist_version(variant: str) -> str | None:
    dist = knowledge.variant_info(variant).dist  # type: ignore[arg-type,unused-ignore]
    for name in (dist, dist.replace("-", "_")):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


@cache
def _import_backend(name: str) -> tuple[Callable[..., Any] | None, str | None, str | None]:
    """(function, why not, version) for a flash-attn backend; imported once per process."""
    spec = dispatch.backend_spec(name)
    errors = []
    for module_name in spec.modules:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                errors.append(f"{module_name} is not installed")
            else:
                errors.append(f"{module_name} does not import: {exc}")
            continue
        except (ImportError, OSError, RuntimeError, AttributeError) as exc:
            # A wheel for another torch/CUDA: undefined symbol, libcudart.so.N missing, ...
            errors.append(f"{module_name} does not import: {str(exc).splitlines()[0] if str(exc) else exc!r}")
            continue
        fn = getattr(module, spec.function or "flash_attn_func", None)
        if fn is None:
            errors.append(f"{module_name} has no {spec.function}")
            continue
        return fn, None, _dist_version(spec.variant) if spec.variant else None
    return None, "; ".join(errors) or "not installed", None


def _sdpa_why_not(name: str) -> str | None:
    spec = dispatch.backend_spec(name)
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: F401
    except ImportError:
        return f"torch {torch.__version__} has no torch.nn.attention.sdpa_kernel (torch >= 2.3)"
    if not hasattr(SDPBackend, str(spec.sdpa_backend)):
        return f"torch {torch.__version__} has no SDPBackend.{spec.sdpa_backend}"
    if spec.sdpa_backend == "FLASH_ATTENTION":
        if not torch.backends.cuda.flash_sdp_enabled():  # type: ignore[no-untyped-call,unused-ignore]
            return "disabled (torch.backends.cuda.enable_flash_sdp(False))"
        is_built = getattr(torch.backends.cuda, "is_flash_attention_available", None)
        if is_built is not None and not is_built():
            return f"torch {torch.__version__} was built without flash attention kernels"
    if spec.sdpa_backend == "CUDNN_ATTENTION":
        if not torch.backends.cuda.cudnn_sdp_enabled():  # type: ignore[no-untyped-call,unused-ignore]
            return "disabled (torch.backends.cuda.enable_cudnn_sdp(False))"
        if not torch.backends.cudnn.is_available():  # type: ignore[no-untyped-call,unused-ignore]
            return "cuDNN is not available to torch"
    return None


def _availability(device_type: str) -> dict[str, str | None]:
    """What is importable/enabled here: backend -> None, or why not. Only probed for CUDA devices."""
    if device_type != "cuda":
        return {}
    out: dict[str, str | None] = {}
    for name in dispatch.FLASH_BACKENDS:
        spec = dispatch.backend_spec(name)
        out[name] = _import_backend(name)[1] if spec.kind == "flash-attn" else _sdpa_why_not(name)
    return out


def _resolve_device(device: torch.device | str | None) -> torch.device:
    if device is None:
        return (
            torch.device("cuda", torch.cuda.current_device())
            if torch.cuda.is_available()
            else torch.device("cpu")
        )
    return torch.device(device)


def available_backends(device: torch.device | str | None = None) -> tuple[BackendStatus, ...]:
    """Every backend's status on `device` (default: the current CUDA device, else the CPU), in the
    order flash_attention() tries them; the standard-attention fallback is last and always usable."""
    dev = _resolve_device(device)
    versions: dict[str, str | None] = {}
    if dev.type == "cuda":
        for name in dispatch.FLASH_BACKENDS:
            if dispatch.backend_spec(name).kind == "flash-attn":
                versions[name] = _import_backend(name)[2]
            else:
                versions[name] = torch.__version__
    return dispatch.backend_statuses(
        dev.type,
        _device_capability(dev),
        _availability(dev.type),
        versions,
        rocm=_is_rocm() and dev.type == "cuda",
    )


def flash_available(device: torch.device | str | None = None) -> bool:
    """True when a flash-class kernel runs on `device` (default: the current CUDA device)."""
    return any(s.usable for s in available_backends(device) if s.name != FALLBACK)


def __getattr__(name: str) -> Any:
    # FLASH_AVAILABLE is computed on first use, not at import: it needs the GPU and the FA imports.
    if name == "FLASH_AVAILABLE":
        return flash_available()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


# -- the dispatcher --------------------------------------------------------------------------------
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
    if q.shape[2] % k.shape[2] != 0:
        raise ValueError(f"q heads ({q.shape[2]}) must be a multiple of k/v heads ({k.shape[2]}) for GQA/MQA")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k, v dtypes differ: {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v are on different devices: {q.device}, {k.device}, {v.device}")


def describe_call(
    q: Tensor, k: Tensor, v: Tensor, causal: bool = False, dropout_p: float = 0.0, mask: bool = False
) -> AttentionCall:
    """The dispatcher's view of a call on real tensors ((batch, seq, heads, head_dim) layout)."""
    return AttentionCall(
        device=q.device.type,
        capability=_device_capability(q.device),
        dtype=dtype_name(q.dtype),
        head_dim=q.shape[-1],
        head_dim_v=v.shape[-1] if v.shape[-1] != q.shape[-1] else None,
        seq_q=q.shape[1],
        seq_k=k.shape[1],
        heads_q=q.shape[2],
        heads_k=k.shape[2],
        causal=causal,
        dropout=dropout_p > 0.0,
        mask=mask,
        rocm=_is_rocm() and q.device.type == "cuda",
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


def _decide(call: AttentionCall, backend: str | Sequence[str] | None) -> Decision:
    # Every input of the decision is read here, on each call (flags can be toggled at runtime);
    # the decision itself is cached.
    fkey = _failure_key(call)
    failed = frozenset(name for name, key in _FAILED if key == fkey)
    availability = _availability(call.device)
    available = tuple(sorted(availability.items()))
    versions = tuple(
        (name, _import_backend(name)[2])
        for name, why in available
        if why is None and dispatch.backend_spec(name).kind == "flash-attn"
    )
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
    return _decide(describe_call(q, k, v, causal, dropout_p, attn_mask is not None), backend)


def _log_decision(call: AttentionCall, decision: Decision) -> None:
    where = f"{call.device} {call.sm}" if call.device == "cuda" else call.device
    if decision.flash:
        title = dispatch.backend_spec(decision.backend).title
        _log_once(
            logging.INFO,
            f"FlashAttention: using {decision.backend} ({title}) for {call.dtype}, head_dim {call.head_dim} "
            f"on {where}: {decision.reason}",
        )
    elif not decision.order:
        _log_once(logging.INFO, "FlashAttention: standard attention (PyTorch SDPA), as requested")
    elif call.mask and call.device == "cuda":
        _log_once(
            logging.INFO,
            f"FlashAttention: standard attention for a masked call on {where}: {decision.reason}",
        )
    else:
        _log_once(logging.WARNING, f"{NOT_AVAILABLE_MESSAGE}: {decision.reason}")


def _repeat_kv(x: Tensor, heads: int) -> Tensor:
    # (B, S, H_kv, D) -> (B, S, heads, D): each KV head serves heads // H_kv query heads, in order.
    n = heads // x.shape[2]
    return x if n == 1 else x.repeat_interleave(n, dim=2)


def _cudnn_layout(q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
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
    a fallback and one log line. Other warnings are re-emitted unchanged."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with sdpa_kernel(getattr(SDPBackend, sdpa_backend)):
                out = F.scaled_dot_product_attention(
                    q, k, v, dropout_p=dropout_p, is_causal=causal, scale=scale, **kwargs
                )
        except RuntimeError as exc:
            reasons = "; ".join(dict.fromkeys(str(w.message).strip() for w in caught))
            raise RuntimeError(f"{str(exc).strip()} {reasons}".strip()) from exc
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return out


def _run(
    name: str,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    causal: bool,
    dropout_p: float,
    scale: float,
    attn_mask: Tensor | None,
) -> Tensor:
    spec = dispatch.backend_spec(name)
    d_v = v.shape[-1]
    if spec.head_dim_multiple > 1 and q.shape[-1] % spec.head_dim_multiple:
        # Zero columns change neither q·k nor the kept output columns; the scale stays the original's.
        q = pad_sequence_length(q, spec.head_dim_multiple, dim=-1)[0]
        k = pad_sequence_length(k, spec.head_dim_multiple, dim=-1)[0]
        v = pad_sequence_length(v, spec.head_dim_multiple, dim=-1)[0]
    if spec.kind == "flash-attn":
        fn = _import_backend(name)[0]
        assert fn is not None, name  # decide() only picks importable backends
        q, k, v = (t if t.stride(-1) == 1 else t.contiguous() for t in (q, k, v))
        if spec.dropout:
            out = fn(q, k, v, dropout_p=dropout_p, softmax_scale=scale, causal=causal)
        else:
            out = fn(q, k, v, softmax_scale=scale, causal=causal)
        if isinstance(out, (tuple, list)):  # FA4 always, FA3 in some versions: (out, lse)
            out = out[0]
    else:
        kwargs: dict[str, Any] = {}
        if q.shape[2] != k.shape[2]:
            if spec.native_gqa and _supports_enable_gqa():
                kwargs["enable_gqa"] = True
            else:
                k, v = _repeat_kv(k, q.shape[2]), _repeat_kv(v, q.shape[2])
        if spec.sdpa_backend == "CUDNN_ATTENTION":
            q, k, v = _cudnn_layout(q, k, v)
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
    """
    _check_qkv(q, k, v)
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    call = describe_call(q, k, v, causal, dropout_p, attn_mask is not None)
    decision = _decide(call, backend)
    _log_decision(call, decision)
    scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(q.shape[-1])
    for name in decision.candidates:
        try:
            out = _run(name, q, k, v, causal, dropout_p, scale, attn_mask)
        except torch.cuda.OutOfMemoryError:
            raise
        except RuntimeError as exc:
            if name == FALLBACK:
                raise
            # The knowledge said yes but this torch/kernel build said no: remember, warn once, go on.
            _FAILED.add((name, _failure_key(call)))
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            _log_once(
                logging.WARNING,
                f"FlashAttention: {name} failed for {call.dtype} head_dim {call.head_dim} on {call.sm} "
                f"({first}); trying the next backend",
            )
            continue
        _USAGE[name] += 1
        return out
    raise AssertionError("unreachable: the fallback either returns or raises")  # pragma: no cover


# -- the module ------------------------------------------------------------------------------------
class FlashAttention(nn.MultiheadAttention):
    """A drop-in ``nn.MultiheadAttention`` that runs ``flash_attention``.

    Same constructor (plus ``backend``; ``batch_first`` defaults to True as in the guide), same
    parameters and state dict (loads both ways), same call
    ``(query, key, value, key_padding_mask, need_weights, attn_mask, average_attn_weights, is_causal)``
    and same outputs within floating-point tolerance.

    - Calls without attention weights and without masks (``is_causal=True`` with its causal
      ``attn_mask`` counts as mask-free, as in ``nn.MultiheadAttention``) run ``flash_attention``.
    - ``need_weights=True`` (nn.MultiheadAttention's default), a ``key_padding_mask`` or a
      non-causal ``attn_mask`` run ``nn.MultiheadAttention.forward`` itself: the exact same result.
    - ``module(x)`` is self-attention and returns only the output tensor (the guide's call);
      ``is_causal=True`` needs no ``attn_mask`` there.
    - Dropout on the attention weights applies in training only, as in nn.MultiheadAttention.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        backend: str | Sequence[str] | None = None,
    ) -> None:
        super().__init__(
            embed_dim,
            num_heads,
            dropout=dropout,
            bias=bias,
            add_bias_kv=add_bias_kv,
            add_zero_attn=add_zero_attn,
            kdim=kdim,
            vdim=vdim,
            batch_first=batch_first,
            device=device,
            dtype=dtype,
        )
        self.backend = dispatch.parse_order(backend) if backend is not None else None

    @classmethod
    def from_multihead_attention(
        cls, mha: nn.MultiheadAttention, backend: str | Sequence[str] | None = None
    ) -> FlashAttention:
        """A FlashAttention that takes over `mha`'s parameters (the same tensors: optimizers and
        tied weights keep working), its configuration and its train/eval mode."""
        new = cls(
            mha.embed_dim,
            mha.num_heads,
            dropout=mha.dropout,
            bias=mha.in_proj_bias is not None,
            add_bias_kv=mha.bias_k is not None,
            add_zero_attn=mha.add_zero_attn,
            kdim=mha.kdim,
            vdim=mha.vdim,
            batch_first=mha.batch_first,
            device="meta",  # no memory: every parameter is replaced by mha's own just below
            backend=backend,
        )
        for pname in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias"):
            param = getattr(mha, pname)
            if param is None:
                new.register_parameter(pname, None)
            else:
                setattr(new, pname, param)
        new.bias_k, new.bias_v = mha.bias_k, mha.bias_v
        new.out_proj = mha.out_proj
        new.train(mha.training)
        return new

    def extra_repr(self) -> str:
        order = ",".join(self.backend) if self.backend else "auto"
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}, backend={order}"

    def forward(  # type: ignore[override,unused-ignore]
        self,
        query: Tensor,
        key: Tensor | None = None,
        value: Tensor | None = None,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> Any:
        self_call = key is None and value is None
        if self_call:
            key = value = query
            need_weights = False
        elif key is None or value is None:
            raise TypeError("FlashAttention: pass both key and value, or neither (self-attention: module(x))")
        assert key is not None and value is not None
        if query.is_nested or key.is_nested or value.is_nested:
            raise ValueError(
                "FlashAttention takes padded tensors with a key_padding_mask, not nested tensors "
                "(replace_with_flash_attention turns nested tensors off in nn.TransformerEncoder)"
            )
        kernel = not need_weights and key_padding_mask is None and (attn_mask is None or is_causal)
        if kernel:
            out = self._kernel_forward(query, key, value, causal=is_causal)
            return out if self_call else (out, None)
        if need_weights:
            _log_once(
                logging.INFO,
                "FlashAttention: need_weights=True returns attention weights, which only standard "
                "attention computes; pass need_weights=False to run a flash kernel",
            )
        if is_causal and attn_mask is None:
            attn_mask = self._causal_mask(query, key, key_padding_mask)
        out, weights = super().forward(
            query,
            key,
            value,
            key_padding_mask=key_padding_mask,
            need_weights=need_weights,
            attn_mask=attn_mask,
            average_attn_weights=average_attn_weights,
            is_causal=is_causal,
        )
        return out if self_call else (out, weights)

    def _causal_mask(self, query: Tensor, key: Tensor, key_padding_mask: Tensor | None) -> Tensor:
        # nn.MultiheadAttention needs the mask that is_causal hints at once a padding mask is there.
        seq_dim = 1 if (query.dim() == 3 and self.batch_first) else 0
        lq, lk = query.shape[seq_dim], key.shape[seq_dim]
        upper = torch.ones(lq, lk, dtype=torch.bool, device=query.device).triu(1)
        if key_padding_mask is None or key_padding_mask.dtype == torch.bool:
            return upper
        return torch.zeros(lq, lk, dtype=query.dtype, device=query.device).masked_fill(upper, float("-inf"))

    def _project(
        self, query: Tensor, key: Tensor, value: Tensor, same: bool, kv_same: bool
    ) -> tuple[Tensor, ...]:
        e = self.embed_dim
        b = self.in_proj_bias
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            if same:
                return tuple(F.linear(query, w, b).split(e, dim=-1))  # type: ignore[no-untyped-call,unused-ignore]
            w_q, w_kv = w.split([e, 2 * e])  # type: ignore[no-untyped-call,unused-ignore]
            b_q, b_kv = b.split([e, 2 * e]) if b is not None else (None, None)  # type: ignore[no-untyped-call,unused-ignore]
            q = F.linear(query, w_q, b_q)
            if kv_same:
                k, v = F.linear(key, w_kv, b_kv).split(e, dim=-1)  # type: ignore[no-untyped-call,unused-ignore]
            else:
                w_k, w_v = w_kv.split(e)
                b_k, b_v = b_kv.split(e) if b_kv is not None else (None, None)
                k, v = F.linear(key, w_k, b_k), F.linear(value, w_v, b_v)
            return q, k, v
        b_q, b_k, b_v = b.chunk(3) if b is not None else (None, None, None)
        return (
            F.linear(query, self.q_proj_weight, b_q),
            F.linear(key, self.k_proj_weight, b_k),
            F.linear(value, self.v_proj_weight, b_v),
        )

    def _kernel_forward(self, query: Tensor, key: Tensor, value: Tensor, causal: bool) -> Tensor:
        same = query is key and key is value
        kv_same = key is value
        batched = query.dim() == 3
        if not batched:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
        elif not self.batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        bsz, tgt_len, _ = query.shape
        q, k, v = self._project(query, key, value, same, kv_same)
        if self.bias_k is not None and self.bias_v is not None:
            k = torch.cat([k, self.bias_k.expand(bsz, 1, -1)], dim=1)
            v = torch.cat([v, self.bias_v.expand(bsz, 1, -1)], dim=1)
        heads = (self.num_heads, self.head_dim)
        q, k, v = (t.unflatten(-1, heads) for t in (q, k, v))  # type: ignore[no-untyped-call,unused-ignore]
        if self.add_zero_attn:
            zeros = k.new_zeros(bsz, 1, *heads)
            k, v = torch.cat([k, zeros], dim=1), torch.cat([v, zeros], dim=1)
        out = flash_attention(
            q,
            k,
            v,
            causal=causal,
            dropout_p=self.dropout if self.training else 0.0,
            backend=self.backend,
        )
        out = F.linear(out.reshape(bsz, tgt_len, self.embed_dim), self.out_proj.weight, self.out_proj.bias)
        if not batched:
            return out.squeeze(0)
        return out if self.batch_first else out.transpose(0, 1)


# -- the model rewrite -----------------------------------------------------------------------------
def _plain_mha(module: nn.Module) -> bool:
    # Subclasses with their own forward keep it: replacing them would drop their behaviour.
    return (
        isinstance(module, nn.MultiheadAttention)
        and not isinstance(module, FlashAttention)
        and type(module).forward is nn.MultiheadAttention.forward
    )


def replace_with_flash_attention(
    model: nn.Module,
    *,
    backend: str | Sequence[str] | None = None,
    native_fast_path: bool = True,
) -> tuple[nn.Module, list[str]]:
    """Replace every ``nn.MultiheadAttention`` in `model` by a ``FlashAttention``, in place.

    The new modules take over the old ones' parameters (same tensors, so device, dtype, tied
    weights and optimizer state are kept) and train/eval mode. Returns the model (a new module only
    when `model` itself is an nn.MultiheadAttention) and the qualified names replaced; each is
    logged as "Replaced <name> with FlashAttention".

    ``nn.TransformerEncoderLayer`` has a fused inference path (``torch._transformer_encoder_layer_fwd``)
    that reads ``self_attn``'s weights (the same tensors after replacement) and never calls it. That
    path already runs SDPA's flash/cuDNN kernels and fuses the whole layer, so by default
    (``native_fast_path=True``) it is kept: inference without grad goes through it, training through
    FlashAttention's dispatch. Measured on an H100 (scripts/bench_attention.py, B32 N196 E1024 H16
    bf16, 6 layers) the fused path's forward took 2.1-3.0 ms against 2.9-4.9 ms with it turned off.
    With ``native_fast_path=False`` the path is turned off (``activation_relu_or_gelu = 0``, the flag
    torch itself uses for custom activations) so FlashAttention's kernel choice runs in eval too, and
    ``nn.TransformerEncoder``'s nested-tensor path is turned off (``use_nested_tensor = False``).
    """
    order = dispatch.parse_order(backend) if backend is not None else None
    if _plain_mha(model):
        assert isinstance(model, nn.MultiheadAttention)
        new = FlashAttention.from_multihead_attention(model, backend=order)
        _log_replacement("model", new)
        return new, ["model"]
    replaced: list[str] = []
    done: dict[int, FlashAttention] = {}  # a module used in two places stays one module
    for parent_name, parent in list(model.named_modules(remove_duplicate=False)):
        # _modules, not named_children(): a module registered twice (tied) must be swapped twice.
        for child_name, child in list(parent._modules.items()):
            if child is None:
                continue
            if id(child) in done:
                setattr(parent, child_name, done[id(child)])
                continue
            if not _plain_mha(child):
                continue
            assert isinstance(child, nn.MultiheadAttention)
            new = FlashAttention.from_multihead_attention(child, backend=order)
            done[id(child)] = new
            setattr(parent, child_name, new)
            name = f"{parent_name}.{child_name}" if parent_name else child_name
            replaced.append(name)
            _log_replacement(name, new)
    for module in () if native_fast_path else model.modules():
        if isinstance(module, nn.TransformerEncoderLayer) and isinstance(module.self_attn, FlashAttention):
            module.activation_relu_or_gelu = 0
        if isinstance(module, nn.TransformerEncoder) and any(
            isinstance(getattr(layer, "self_attn", None), FlashAttention) for layer in module.layers
        ):
            module.use_nested_tensor = False
    if not replaced:
        logger.info(
            "replace_with_flash_attention: no nn.MultiheadAttention found in %s", type(model).__name__
        )
    return model, replaced


def _log_replacement(name: str, module: FlashAttention) -> None:
    logger.info(REPLACED_MESSAGE.format(name=name))
    # Say up front what the module will run on its own device and dtype (a plain self-attention call).
    weight = module.in_proj_weight if module.in_proj_weight is not None else module.q_proj_weight
    if weight is None or weight.device.type == "meta":
        return
    call = AttentionCall(
        device=weight.device.type,
        capability=_device_capability(weight.device),
        dtype=dtype_name(weight.dtype),
        head_dim=module.head_dim,
        rocm=_is_rocm() and weight.device.type == "cuda",
    )
    _log_decision(call, _decide(call, module.backend))
