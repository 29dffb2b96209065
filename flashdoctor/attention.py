"""FlashAttention for model code: a flag, a kernel dispatcher, a drop-in module, a model rewrite.

The public face of the runtime (``flashdoctor/runtime/``); ``import flashdoctor`` stays light: torch
comes in with this module. The runtime depends on ``flashdoctor.knowledge`` only.

- ``FLASH_AVAILABLE``: True when a flash-class kernel (FA3, FA2, FA4, SDPA flash or SDPA cuDNN)
  runs on the current CUDA device for fp16 or bf16. ``available_backends()`` says which, for which
  dtypes and head dims (an installed flashdoctor minimal build shows its profile), and why the
  others do not.
- ``flash_attention(q, k, v, causal, dropout_p, softmax_scale)``: (batch, seq, heads, head_dim)
  tensors, dispatched to the best backend for the device, dtype and head dim; PyTorch SDPA
  otherwise (fp32, CPU, older GPUs, masks). The choice is `flashdoctor.runtime.dispatch.decide()`, a
  pure function of the call and of what imports here, fed by the same knowledge as ``check``.
- ``FlashAttention``: a subclass of ``nn.MultiheadAttention`` with the same parameters, state dict,
  call signature and outputs; calls a kernel can take go to ``flash_attention``, the rest (attention
  weights, padding or arbitrary masks) to ``nn.MultiheadAttention``'s own code, unchanged.
- ``replace_with_flash_attention(model)``: swaps every ``nn.MultiheadAttention`` in place.
- ``backend_usage()``: which backends ran, after any fallback.

Every choice is logged once per reason on the ``flashdoctor.attention`` logger. docs/runtime.md
describes the behaviour (eval included).

Where things live: ``runtime/dispatch.py`` (the pure decision), ``runtime/availability.py`` (what
imports and runs here), ``runtime/kernels.py`` (running one backend; padding), ``runtime/call.py``
(the call path and its log), ``runtime/module.py`` (the module and the rewrite), ``runtime/state.py``
(what was logged, failed and ran).
"""

from __future__ import annotations

from typing import Any

from flashdoctor.runtime.availability import available_backends, dtype_name, flash_available
from flashdoctor.runtime.call import describe_call, flash_attention, select_backend
from flashdoctor.runtime.dispatch import AttentionCall, BackendStatus, Decision
from flashdoctor.runtime.kernels import pad_sequence_length, unpad_sequence_length
from flashdoctor.runtime.module import FlashAttention, replace_with_flash_attention
from flashdoctor.runtime.state import NOT_AVAILABLE_MESSAGE, REPLACED_MESSAGE, backend_usage, logger

__all__ = [
    "FLASH_AVAILABLE",
    "NOT_AVAILABLE_MESSAGE",
    "REPLACED_MESSAGE",
    "AttentionCall",
    "BackendStatus",
    "Decision",
    "FlashAttention",
    "available_backends",
    "backend_usage",
    "describe_call",
    "dtype_name",
    "flash_attention",
    "flash_available",
    "logger",
    "pad_sequence_length",
    "replace_with_flash_attention",
    "select_backend",
    "unpad_sequence_length",
]

# Computed on each access by __getattr__ below (it needs the GPU and the FlashAttention imports).
FLASH_AVAILABLE: bool


def __getattr__(name: str) -> Any:
    # FLASH_AVAILABLE is computed on first use, not at import: it needs the GPU and the FA imports.
    if name == "FLASH_AVAILABLE":
        return flash_available()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
