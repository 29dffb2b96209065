"""The one backend vocabulary: every attention backend name flashdoctor uses, its kind, title and short
label (data/attention_backends.json "vocabulary"), and where each FlashAttention variant is found in a
target interpreter (its distributions, the modules that hold ``flash_attn_func``, its extensions).

Two users, one set of names:

- the runtime (``flashdoctor.attention``) dispatches to ``fa3``, ``fa2``, ``fa4``, ``sdpa-cudnn``,
  ``sdpa-flash`` and falls back to ``sdpa``: torch's own selection among its kernels;
- the smoke test and the bench run each kernel on its own: the variants and the forced SDPA kernels
  ``sdpa-math`` (their baseline), ``sdpa-flash``, ``sdpa-cudnn`` and ``sdpa-efficient``.

``sdpa-flash`` means the same in both (SDPA with the flash kernel forced); ``sdpa`` *selects* among the
forced kernels (``Backend.selects``), and :func:`runtime_name` maps a smoke name onto the runtime's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from flashdoctor.knowledge.data import load_data
from flashdoctor.knowledge.variants import Variant, variant_info

BackendKind = Literal["variant", "sdpa"]


def _vocabulary() -> dict[str, Any]:
    voc: dict[str, Any] = load_data("attention_backends")["vocabulary"]
    return voc


@dataclass(frozen=True)
class Backend:
    """One backend name and what it means."""

    name: str
    kind: BackendKind
    title: str  # "FA3 flash_attn_interface", "SDPA cuDNN"
    short: str  # table label: "FA3", "SDPA cuDNN"
    variant: Variant | None  # fa2/fa3/fa4 for a FlashAttention variant
    sdpa_backend: str | None  # the torch.nn.attention.SDPBackend member forced; None: torch selects
    selects: tuple[str, ...]  # "sdpa": the forced kernels torch's own selection picks among

    @property
    def forced(self) -> bool:
        """An SDPA call with one kernel forced (sdpa-flash, ...), not torch's own selection."""
        return self.kind == "sdpa" and self.sdpa_backend is not None


@cache
def backend(name: str) -> Backend:
    """The vocabulary entry of ``name``; KeyError for a name that is not one."""
    raw = _vocabulary()["names"][name]
    return Backend(
        name=name,
        kind=raw["kind"],
        title=str(raw["title"]),
        short=str(raw["short"]),
        variant=raw.get("variant"),
        sdpa_backend=raw.get("sdpa_backend"),
        selects=tuple(raw.get("selects", ())),
    )


#: Every name, in the vocabulary's order.
NAMES: tuple[str, ...] = tuple(_vocabulary()["names"])
#: What the smoke test and the bench run, in run order; the fallback (their speed-up baseline) first.
SMOKE_BACKENDS: tuple[str, ...] = tuple(_vocabulary()["smoke"]["order"])
SMOKE_FALLBACK: str = str(_vocabulary()["smoke"]["fallback"])
#: What the runtime dispatches to, best-known first; its fallback (torch's own selection) last.
RUNTIME_BACKENDS: tuple[str, ...] = tuple(load_data("attention_backends")["backends"])
RUNTIME_FALLBACK: str = str(load_data("attention_backends")["fallback"])


def runtime_name(name: str) -> str:
    """The runtime backend that runs what ``name`` runs: itself where the runtime has it, else the
    SDPA selection that contains it (sdpa-math and sdpa-efficient run inside the runtime's "sdpa")."""
    if name in RUNTIME_BACKENDS:
        return name
    for candidate in RUNTIME_BACKENDS:
        if name in backend(candidate).selects:
            return candidate
    raise KeyError(name)


# -- where a variant lives in a target interpreter ---------------------------------------------------
@dataclass(frozen=True)
class VariantImport:
    """How a script in the target interpreter finds a variant (no flashdoctor there: passed as JSON).

    ``dists``: the distribution name as registered and with underscores (importlib.metadata of Python
    < 3.10 does not normalise names); ``modules``: where ``function`` lives, tried in order;
    ``needs_dist``: the module counts only with the distribution installed (FA4's flash_attn.cute also
    ships inside flash-attn 2.8.3); ``extensions``: the compiled extension modules (their files hold
    the architectures the build has).
    """

    variant: Variant
    dists: tuple[str, ...]
    modules: tuple[str, ...]
    function: str
    needs_dist: bool
    extensions: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "dists": list(self.dists),
            "modules": list(self.modules),
            "function": self.function,
            "needs_dist": self.needs_dist,
            "extensions": list(self.extensions),
        }


@cache
def variant_import(variant: Variant) -> VariantImport:
    raw = _vocabulary()["names"][variant]
    runtime = load_data("attention_backends")["backends"][variant]
    dist = variant_info(variant).dist
    return VariantImport(
        variant=variant,
        dists=tuple(dict.fromkeys((dist, dist.replace("-", "_")))),
        modules=tuple(runtime["modules"]),
        function=str(runtime["function"]),
        needs_dist=bool(raw["needs_dist"]),
        extensions=tuple(raw["extensions"]),
    )


def variant_imports() -> dict[str, dict[str, Any]]:
    """Every variant's :class:`VariantImport` as JSON, for a target-side script's config."""
    out: dict[str, dict[str, Any]] = {}
    for name in NAMES:
        variant = backend(name).variant
        if variant is not None:
            out[variant] = variant_import(variant).to_json()
    return out
