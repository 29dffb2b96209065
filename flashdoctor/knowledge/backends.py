"""The one backend vocabulary: every attention backend name flashdoctor uses, its kind, title and short
label (data/attention_backends.json "vocabulary" for the SDPA kernels; every variant of the registry,
data/variants.json, is a name too), and where each FlashAttention variant is found in a target
interpreter (its distributions, the modules that hold ``flash_attn_func``, its extensions: the registry's).

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
from flashdoctor.knowledge.variants import VARIANTS, Variant, as_variant, variant_info

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
    """The vocabulary entry of ``name``; KeyError for a name that is not one. A variant's entry is its
    registry entry: "FA3 flash_attn_interface" (short label and first module)."""
    variant = as_variant(name)
    if variant is not None:
        info = variant_info(variant)
        return Backend(name, "variant", f"{info.short} {info.import_name}", info.short, info.name, None, ())
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


#: Every name: the variants (registry order), then the SDPA names in the vocabulary's order.
NAMES: tuple[str, ...] = (*VARIANTS, *_vocabulary()["names"])
#: What the smoke test and the bench run, in run order; the fallback (their speed-up baseline) first,
#: the SDPA kernels, then every variant.
SMOKE_BACKENDS: tuple[str, ...] = (*_vocabulary()["smoke"]["order"], *VARIANTS)
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
    info = variant_info(variant)
    return VariantImport(
        variant=variant,
        dists=tuple(dict.fromkeys((info.dist, info.dist.replace("-", "_")))),
        modules=info.modules,
        function=info.function,
        needs_dist=info.requires_dist,
        extensions=info.extensions,
    )


def variant_imports() -> dict[str, dict[str, Any]]:
    """Every variant's :class:`VariantImport` as JSON, for a target-side script's config."""
    return {v: variant_import(v).to_json() for v in VARIANTS}


# -- what the smoke test knows of a backend's own call -------------------------------------------------
def smoke_facts(name: str) -> dict[str, Any]:
    """How the smoke test calls ``name`` and recognises its kernels (usage, kernel_pattern,
    kernel_exclude, aot, head_dims where documented): a variant's ``smoke`` in data/variants.json, an
    SDPA kernel's entry in data/smoke.json. KeyError for an unknown name."""
    variant = as_variant(name)
    if variant is not None:
        return dict(variant_info(variant).smoke)
    facts: dict[str, Any] = load_data("smoke")["backends"][name]
    return dict(facts)
