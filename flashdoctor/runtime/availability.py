"""What runs in this process: the runtime's only contact with the system (torch, the GPU, imports).

Each flash-attn backend is imported once per process; SDPA backends are asked of torch on each call
(``torch.backends.cuda.enable_*_sdp`` can be toggled at runtime). Nothing is probed for a CPU.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from functools import cache
from importlib import metadata
from typing import Any

import torch

from flashdoctor import knowledge
from flashdoctor.runtime import dispatch
from flashdoctor.runtime.dispatch import FALLBACK, BackendStatus

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


def device_capability(device: torch.device) -> tuple[int, int] | None:
    if device.type != "cuda":
        return None
    return _capability(device.index if device.index is not None else torch.cuda.current_device())


def is_rocm() -> bool:
    return getattr(torch.version, "hip", None) is not None


def _dist_version(variant: str) -> str | None:
    dist = knowledge.variant_info(variant).dist  # type: ignore[arg-type,unused-ignore]
    for name in (dist, dist.replace("-", "_")):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


#: The function import_backend() found per backend: what a call runs, read without the cache's wrapper
#: (torch.compile would trace into import_backend's body, its data-file read and imports).
IMPORTED: dict[str, Callable[..., Any]] = {}


@cache
def import_backend(name: str) -> tuple[Callable[..., Any] | None, str | None, str | None]:
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
        except Exception as exc:
            # A wheel for another torch/CUDA: undefined symbol, libcudart.so.N missing, ... or any other
            # error a broken install raises at import: the backend is unusable, the call falls back.
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            kind = "" if isinstance(exc, (ImportError, OSError)) else f"{type(exc).__name__}: "
            errors.append(f"{module_name} does not import: {kind}{first or repr(exc)}")
            continue
        fn = getattr(module, spec.function or "flash_attn_func", None)
        if fn is None:
            errors.append(f"{module_name} has no {spec.function}")
            continue
        IMPORTED[name] = fn
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


def availability(device_type: str) -> dict[str, str | None]:
    """What is importable/enabled here: backend -> None, or why not. Only probed for CUDA devices."""
    if device_type != "cuda":
        return {}
    out: dict[str, str | None] = {}
    for name in dispatch.FLASH_BACKENDS:
        spec = dispatch.backend_spec(name)
        out[name] = import_backend(name)[1] if spec.kind == "flash-attn" else _sdpa_why_not(name)
    return out


def versions(available: dict[str, str | None]) -> dict[str, str | None]:
    """The installed version of each importable flash-attn backend: its build profile is in it."""
    return {
        name: import_backend(name)[2]
        for name, why in available.items()
        if why is None and dispatch.backend_spec(name).kind == "flash-attn"
    }


def _resolve_device(device: torch.device | str | None) -> torch.device:
    if device is None:
        return (
            torch.device("cuda", torch.cuda.current_device())
            if torch.cuda.is_available()
            else torch.device("cpu")
        )
    return torch.device(device)


def _missing_cuda_device(dev: torch.device) -> str | None:
    """Why `dev` names no CUDA device torch can use here (None: it does, or it is not a CUDA device)."""
    if dev.type != "cuda":
        return None
    if not torch.cuda.is_available():
        return f"no CUDA device is visible to torch {torch.__version__}"
    count = torch.cuda.device_count()
    if dev.index is not None and not 0 <= dev.index < count:
        return f"{dev} does not exist (torch sees {count} CUDA device{'s' if count != 1 else ''})"
    return None


def available_backends(device: torch.device | str | None = None) -> tuple[BackendStatus, ...]:
    """Every backend's status on `device` (default: the current CUDA device, else the CPU), in the
    order flash_attention() tries them; the standard-attention fallback is last and always usable.
    An installed flashdoctor minimal build shows its profile (`build`, `head_dims`, `dtypes`)."""
    dev = _resolve_device(device)
    missing = _missing_cuda_device(dev)
    if missing is not None:
        # No such GPU here: say so for every flash backend (nothing is imported) instead of raising.
        return tuple(
            s if s.name == FALLBACK else dataclasses.replace(s, usable=False, why_not=missing)
            for s in dispatch.backend_statuses(dev.type, None, {}, rocm=is_rocm())
        )
    available = availability(dev.type)
    found: dict[str, str | None] = {}
    if dev.type == "cuda":
        for name in dispatch.FLASH_BACKENDS:
            if dispatch.backend_spec(name).kind == "flash-attn":
                found[name] = import_backend(name)[2]
            else:
                found[name] = torch.__version__
    return dispatch.backend_statuses(
        dev.type,
        device_capability(dev),
        available,
        found,
        rocm=is_rocm() and dev.type == "cuda",
    )


def flash_available(device: torch.device | str | None = None) -> bool:
    """True when a flash-class kernel runs on `device` (default: the current CUDA device); False for a
    CUDA device that is not there (no GPU, or an index past the last one)."""
    return any(s.usable for s in available_backends(device) if s.name != FALLBACK)
