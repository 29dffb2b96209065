"""Which attention kernel runs a call: the runtime's decision, as a pure function.

`flashdoctor.attention` (the only module that imports torch) describes each call as an
`AttentionCall` value and asks `decide()` which backend runs it. The decision reads the same
knowledge as `check`: a FlashAttention variant runs on a GPU exactly when `VariantInfo.gpu_fit`
does not say FAIL, and its dtypes and head-dim limit come from `data/variants.json`. What only the
runtime needs (dropout, masks, GQA, the order per GPU) is in `data/attention_backends.json`.

Nothing here touches the system or torch, so every decision is tested with literal values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from flashdoctor import knowledge
from flashdoctor.knowledge.backends import RUNTIME_BACKENDS, RUNTIME_FALLBACK
from flashdoctor.knowledge.fields import FieldsJson
from flashdoctor.knowledge.profiles import build_coverage
from flashdoctor.knowledge.variants import Variant
from flashdoctor.knowledge.versions import major_minor, parse_version

#: Every backend name, best-known first. "sdpa" is the fallback that always works.
BACKENDS: tuple[str, ...] = RUNTIME_BACKENDS
FALLBACK = RUNTIME_FALLBACK
#: The flash-class backends (everything but the fallback): what FLASH_AVAILABLE is about.
FLASH_BACKENDS: tuple[str, ...] = tuple(b for b in BACKENDS if b != FALLBACK)


@dataclass(frozen=True)
class DeterministicLimit:
    """Calls a backend has no deterministic backward for; it applies when every condition given holds."""

    why: str
    capabilities: tuple[tuple[int, int], ...] = ()
    below_version: str | None = None
    head_dim_above: int | None = None


@dataclass(frozen=True)
class BackendSpec:
    """What one backend accepts. For fa2/fa3/fa4 the GPU, dtype and head-dim limits are the variant's."""

    name: str
    title: str
    kind: str  # "flash-attn" | "sdpa"
    variant: Variant | None
    modules: tuple[str, ...]
    function: str | None
    sdpa_backend: str | None
    min_capability: tuple[int, int] | None
    dtypes: tuple[str, ...]
    max_head_dim: int | None
    head_dim_multiple: int
    dropout: bool
    masks: bool
    causal_non_square: bool
    native_gqa: bool
    native_gqa_min_torch: str | None
    rocm: bool
    deterministic: bool = True
    deterministic_limits: tuple[DeterministicLimit, ...] = ()

    @property
    def is_fallback(self) -> bool:
        return self.name == FALLBACK


@cache
def backend_spec(name: str) -> BackendSpec:
    raw: dict[str, Any] = knowledge.load_data("attention_backends")["backends"][name]
    variant: Variant | None = raw.get("variant")
    info = None if variant is None else knowledge.variant_info(variant)
    if info is not None:
        # The runtime dispatches only dtypes it can hand back unchanged: FA3's fp8 is forward-only.
        dtypes = tuple(d for d in info.dtypes if d in raw["runtime_dtypes"])
        max_head_dim: int | None = info.max_head_dim
        min_cc: tuple[int, int] | None = info.min_capability
        rocm = info.rocm
    else:
        dtypes = tuple(raw.get("runtime_dtypes", ()))
        max_head_dim = raw.get("max_head_dim")
        min_cc = major_minor(raw["min_capability"]) if raw.get("min_capability") else None
        rocm = raw["sdpa_backend"] in (None, "FLASH_ATTENTION")
    return BackendSpec(
        name=name,
        title=raw["title"],
        kind=raw["kind"],
        variant=variant,
        modules=() if info is None else info.modules,  # where a variant lives: the registry says
        function=None if info is None else info.function,
        sdpa_backend=raw.get("sdpa_backend"),
        min_capability=min_cc,
        dtypes=dtypes,
        max_head_dim=max_head_dim,
        head_dim_multiple=int(raw.get("head_dim_multiple", 1)),
        dropout=bool(raw.get("dropout", True)),
        masks=bool(raw.get("masks", True)),
        causal_non_square=bool(raw.get("causal_non_square", True)),
        native_gqa=bool(raw.get("native_gqa", True)),
        native_gqa_min_torch=raw.get("native_gqa_min_torch"),
        rocm=rocm,
        deterministic=bool(raw["deterministic"]),
        deterministic_limits=tuple(
            DeterministicLimit(
                why=limit["why"],
                capabilities=tuple(major_minor(c) or (0, 0) for c in limit.get("capabilities", ())),
                below_version=limit.get("below_version"),
                head_dim_above=limit.get("head_dim_above"),
            )
            for limit in raw.get("deterministic_limits", ())
        ),
    )


def override_env_var() -> str:
    """The environment variable that overrides the order (docs/runtime.md)."""
    return str(knowledge.load_data("attention_backends")["override_env"])


@dataclass(frozen=True)
class AttentionCall:
    """One attention call, as the dispatcher sees it. Layout-free: only what decides the kernel."""

    device: str  # torch device type: "cuda", "cpu", ...
    capability: tuple[int, int] | None  # compute capability of the CUDA device
    dtype: str  # "fp16", "bf16", "fp32", ... (see attention.dtype_name)
    head_dim: int
    head_dim_v: int | None = None  # None: same as head_dim
    seq_q: int = 1
    seq_k: int = 1
    heads_q: int = 1
    heads_k: int = 1
    causal: bool = False
    dropout: bool = False
    mask: bool = False
    rocm: bool = False
    grad: bool = False  # a backward pass will follow (autograd records the call)
    deterministic: bool = False  # torch.use_deterministic_algorithms(True), not warn_only

    @property
    def sm(self) -> str:
        return "sm_?" if self.capability is None else f"sm_{self.capability[0]}{self.capability[1]}"


@dataclass(frozen=True)
class Decision:
    """The backend that runs a call, why, and the ranked alternatives (used if it fails at runtime)."""

    backend: str
    reason: str
    candidates: tuple[str, ...]  # usable backends, best first; always ends with the fallback
    rejected: tuple[tuple[str, str], ...]  # (backend, why not), in the order they were considered
    order: tuple[str, ...]

    @property
    def flash(self) -> bool:
        """True when a flash-class kernel (not the standard-attention fallback) runs the call."""
        return self.backend != FALLBACK


def padded_head_dim(head_dim: int, multiple: int) -> int:
    return -(-head_dim // multiple) * multiple


def _variant_gpu_reason(variant: Variant, cc: tuple[int, int]) -> str | None:
    # The same rule `check` applies (VariantInfo.gpu_fit), so that check and runtime agree.
    info = knowledge.variant_info(variant)
    if info.gpu_fit(cc) == "unsupported":
        sms = ", ".join(f"sm_{a}{b}" for a, b in info.supported)
        return f"{info.title} does not run on sm_{cc[0]}{cc[1]} (it targets {sms})"
    return None


DETERMINISTIC = "torch.use_deterministic_algorithms(True)"


def _limit_applies(limit: DeterministicLimit, call: AttentionCall, version: str | None) -> bool:
    if limit.capabilities and call.capability not in limit.capabilities:
        return False
    if limit.head_dim_above is not None and call.head_dim <= limit.head_dim_above:
        return False
    if limit.below_version is not None:
        installed, below = parse_version(version), parse_version(limit.below_version)
        if installed is None or below is None or installed >= below:
            return False
    return True


def deterministic_reason(name: str, call: AttentionCall, version: str | None = None) -> str | None:
    """Why `name` cannot run `call` in torch's deterministic mode, or None (data/attention_backends.json
    'deterministic'): a backend torch itself refuses there (cuDNN attention), or, when a backward
    follows, one whose backward has no deterministic kernel for this call."""
    spec = backend_spec(name)
    if not call.deterministic:
        return None
    if not spec.deterministic:
        return f"{DETERMINISTIC}: this kernel is not deterministic (torch skips it too)"
    for limit in spec.deterministic_limits if call.grad else ():
        if _limit_applies(limit, call, version):
            return f"{DETERMINISTIC}: {limit.why}"
    return None


def build_reason(name: str, version: str | None, call: AttentionCall) -> str | None:
    """Why the installed build of `name` (at `version`) has no kernel for `call`, or None.

    The build's profile is read from its local version label (``2.8.3.post2+fd.sm90.hd128.bf16``,
    ``3.0.0+fd.sm90.hd128.bf16.nosplit...``) by `knowledge.profiles.build_coverage`, the answer that
    check, smoke and bench use too: FA2 2.7.x and 2.8.x have their own head-dim kernels, FA3 its own.
    A build without a label (an upstream wheel) has every kernel of its version."""
    spec = backend_spec(name)
    if spec.variant is None:
        return None
    coverage = build_coverage(spec.variant, version)
    if coverage is None:
        return None
    sm = None if call.capability is None or call.rocm else call.capability[0] * 10 + call.capability[1]
    missing = coverage.missing(call.head_dim, call.dtype, sm)
    if missing is None and call.grad and "backward" in coverage.disabled:
        missing = "the backward pass"
    if missing is None:
        return None
    return f"{missing} not compiled in this build ({coverage.label})"


def why_not(
    name: str,
    call: AttentionCall,
    available: Mapping[str, str | None] | None = None,
    versions: Mapping[str, str | None] | None = None,
) -> str | None:
    """Why `name` cannot run `call` (None: it can). Reasons are phrased without the backend's name,
    so that one cause shared by every backend reads as one sentence."""
    spec = backend_spec(name)
    if spec.is_fallback:
        return None
    if call.device != "cuda":
        return f"inputs are on {call.device}; FlashAttention kernels run on NVIDIA GPUs"
    if call.rocm:
        if not spec.rocm:
            return "ROCm GPU: this kernel is CUDA-only"
    elif call.capability is None:
        return "the GPU's compute capability is unknown"
    elif spec.variant is not None:
        reason = _variant_gpu_reason(spec.variant, call.capability)
        if reason:
            return reason
    elif spec.min_capability is not None and call.capability < spec.min_capability:
        a, b = spec.min_capability
        return f"needs compute capability sm_{a}{b} or newer (this GPU is {call.sm})"
    if call.dtype not in spec.dtypes:
        return f"dtype {call.dtype}: flash kernels take {'/'.join(spec.dtypes)}"
    if call.head_dim_v is not None and call.head_dim_v != call.head_dim:
        return f"q/k head dim {call.head_dim} differs from v head dim {call.head_dim_v}"
    hd = padded_head_dim(call.head_dim, spec.head_dim_multiple)
    if spec.max_head_dim is not None and hd > spec.max_head_dim:
        return f"head_dim {call.head_dim} > {spec.max_head_dim}"
    if call.dropout and not spec.dropout:
        return "dropout_p > 0 (this kernel has no dropout)"
    if call.mask and not spec.masks:
        return "an attention mask (flash kernels take no arbitrary mask)"
    if call.causal and call.seq_q != call.seq_k and not spec.causal_non_square:
        # No lengths in the text: it is logged once per distinct reason, and decoding grows seq_k by one
        # a step.
        return (
            "causal with seq_q != seq_k (FlashAttention aligns the causal mask bottom-right, SDPA top-left)"
        )
    det = deterministic_reason(name, call, (versions or {}).get(name))
    if det is not None:
        return det
    if available is None or name not in available:
        return "not probed"
    if available[name] is None and versions:
        return build_reason(name, versions.get(name), call)
    return available[name]


def default_order(capability: tuple[int, int] | None, rocm: bool = False) -> tuple[str, ...]:
    """The order backends are tried on a GPU (data/attention_backends.json 'order', first match)."""
    rules = knowledge.load_data("attention_backends")["order"]
    for rule in rules:
        if rule.get("default"):
            return tuple(rule["order"])
        if rocm or capability is None:
            continue
        caps = [major_minor(c) for c in rule.get("capabilities", ())]
        if capability in caps or rule.get("major") == capability[0]:
            return tuple(rule["order"])
    raise AssertionError("attention_backends.json has no default order")  # pragma: no cover - data test


def order_source(capability: tuple[int, int] | None, rocm: bool = False) -> str:
    """The citation behind default_order() for this GPU."""
    order = default_order(capability, rocm)
    for rule in knowledge.load_data("attention_backends")["order"]:
        if tuple(rule["order"]) == order:
            return str(rule["source"])
    return ""  # pragma: no cover


def parse_order(text: str | Sequence[str]) -> tuple[str, ...]:
    """An override order from "fa2,sdpa-flash" (or a sequence of names). Unknown names raise ValueError."""
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text)]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise ValueError(f"unknown attention backend(s) {', '.join(unknown)}; known: {', '.join(BACKENDS)}")
    if not names:
        raise ValueError(f"empty attention backend list; known: {', '.join(BACKENDS)}")
    return tuple(dict.fromkeys(names))


def _summary(rejected: Sequence[tuple[str, str]]) -> str:
    if not rejected:
        return "no flash backend was requested"
    reasons = list(dict.fromkeys(why for _, why in rejected))
    if len(reasons) == 1:
        return reasons[0]
    return "; ".join(f"{name}: {why}" for name, why in rejected)


def decide(
    call: AttentionCall,
    available: Mapping[str, str | None],
    order: Sequence[str] | None = None,
    failed: frozenset[str] = frozenset(),
    versions: Mapping[str, str | None] | None = None,
) -> Decision:
    """Pick the backend for `call`.

    `available` maps a backend to None when it is importable/enabled in this process, else to why
    not ("flash_attn is not installed"); a backend missing from it counts as unavailable. `order`
    overrides the per-GPU order (the fallback is always tried last). `failed` names backends that
    already raised for this kind of call at runtime. `versions` (backend -> installed version) lets
    a flashdoctor minimal build be skipped for the head dims and dtypes it does not contain.
    """
    tried = tuple(order) if order is not None else default_order(call.capability, call.rocm)
    tried = tuple(b for b in tried if b != FALLBACK)
    rejected: list[tuple[str, str]] = []
    candidates: list[str] = []
    for name in tried:
        why = (
            "it raised an error earlier in this process"
            if name in failed
            else why_not(name, call, available, versions)
        )
        if why is None:
            candidates.append(name)
        else:
            rejected.append((name, why))
    candidates.append(FALLBACK)
    best = candidates[0]
    if best == FALLBACK:
        reason = _summary(rejected) if (order is None or tried) else "standard attention was requested"
    else:
        how = "requested order" if order is not None else f"order for {call.sm}"
        reason = f"first usable backend in the {how} ({' > '.join(tried)})"
        skipped = [f"{n}: {w}" for n, w in rejected if tried.index(n) < tried.index(best)]
        if skipped:
            reason += "; skipped " + "; ".join(skipped)
    return Decision(
        backend=best,
        reason=reason,
        candidates=tuple(candidates),
        rejected=tuple(rejected),
        order=tried,
    )


@dataclass(frozen=True)
class BackendStatus(FieldsJson):
    """One backend on one device: can it run, for which dtypes and head dims, and why not.

    `build` and `head_dims` come from the installed build's profile (its local version label): a
    flashdoctor minimal build lists the dtypes and head-dim kernels it has; None = all of them."""

    name: str
    title: str
    usable: bool
    why_not: str | None
    dtypes: tuple[str, ...]
    max_head_dim: int | None
    head_dim_multiple: int
    dropout: bool
    gqa: bool
    version: str | None = None
    head_dims: tuple[int, ...] | None = None  # the compiled head-dim kernels; None: every head dim
    build: str | None = None  # the build's profile ("fd.sm90.hd128.bf16: head dim 128, bf16")


#: The head dim a backend's status is probed at when its build is not narrowed to other head dims.
STATUS_HEAD_DIM = 64


def backend_statuses(
    device: str,
    capability: tuple[int, int] | None,
    available: Mapping[str, str | None],
    versions: Mapping[str, str | None] | None = None,
    rocm: bool = False,
) -> tuple[BackendStatus, ...]:
    """Every backend's status on a device, in the device's order (then the rest, then the fallback).

    A backend is usable when it accepts a plain call (no mask, no dropout) for at least one dtype at
    head dim 64, or, for a build narrowed to other head dims, at one of those; `dtypes` lists the
    dtypes it accepts there (a bf16-only build lists bf16 only).
    """
    versions = versions or {}
    order = default_order(capability, rocm)
    names = [*order, *(b for b in FLASH_BACKENDS if b not in order), FALLBACK]
    out = []
    for name in names:
        spec = backend_spec(name)
        if spec.is_fallback:
            out.append(
                BackendStatus(
                    name, spec.title, True, None, ("any floating dtype",), None, 1, True, True, None
                )
            )
            continue
        version = versions.get(name)
        coverage = build_coverage(spec.variant, version) if spec.variant is not None else None
        head_dims = coverage.head_dims if coverage is not None else None
        ok_dtypes: list[str] = []
        first_why: str | None = None
        for dtype in spec.dtypes:
            for head_dim in head_dims or (STATUS_HEAD_DIM,):
                call = AttentionCall(device, capability, dtype, head_dim, rocm=rocm)
                why = why_not(name, call, available, versions)
                if why is None:
                    ok_dtypes.append(dtype)
                    break
                if first_why is None:
                    first_why = why
        out.append(
            BackendStatus(
                name=name,
                title=spec.title,
                usable=bool(ok_dtypes),
                why_not=None if ok_dtypes else first_why,
                dtypes=tuple(ok_dtypes) if ok_dtypes else spec.dtypes,
                max_head_dim=spec.max_head_dim,
                head_dim_multiple=spec.head_dim_multiple,
                dropout=spec.dropout,
                gqa=True,  # every backend takes fewer KV heads: natively or by repeating them
                version=version,
                head_dims=head_dims,
                build=coverage.describe() if coverage is not None else None,
            )
        )
    return tuple(out)
