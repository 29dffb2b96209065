"""The FlashAttention variants (FA2, FA3, FA4): their names, distributions and requirements
(flashdoctor/data/variants.json, each rule with its source)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from packaging.specifiers import SpecifierSet

from flashdoctor.knowledge.data import load_data
from flashdoctor.knowledge.versions import major_minor, parse_version

Variant = Literal["fa2", "fa3", "fa4"]
GpuFit = Literal["supported", "experimental", "unsupported"]
VARIANTS: tuple[Variant, ...] = ("fa2", "fa3", "fa4")

# Distribution name (canonical) -> variant. FA3 is published as `flash_attn_3`; FA4 as `flash-attn-4`.
DIST_VARIANT: dict[str, Variant] = {
    "flash-attn": "fa2",
    "flash-attn-3": "fa3",
    "flash-attn-4": "fa4",
}
VARIANT_DIST: dict[Variant, str] = {v: k for k, v in DIST_VARIANT.items()}


@dataclass(frozen=True)
class VariantInfo:
    name: Variant
    title: str
    dist: str
    import_name: str
    min_capability: tuple[int, int]
    supported: tuple[tuple[int, int], ...]
    experimental: tuple[tuple[int, int], ...]
    experimental_note: str | None
    build_archs: tuple[str, ...]
    nvcc_min_rules: tuple[tuple[SpecifierSet, str, str], ...]
    nvcc_recommended: str | None
    python_min: tuple[int, int]
    dtypes: tuple[str, ...]
    max_head_dim: int
    rocm: bool
    raw: dict[str, Any]

    def nvcc_min(self, version: str | None = None) -> str | None:
        """Minimum nvcc for a given variant version (None = the newest rule)."""
        if not self.nvcc_min_rules:
            return None
        v = parse_version(version) if version else None
        if v is None:
            return self.nvcc_min_rules[-1][1]
        for spec, nvcc, _src in self.nvcc_min_rules:
            if spec.contains(v, prereleases=True):
                return nvcc
        return self.nvcc_min_rules[-1][1]

    def gpu_fit(self, cc: tuple[int, int]) -> GpuFit:
        """How this variant stands on a GPU of compute capability ``cc`` (one rule for check and the
        runtime dispatcher)."""
        if cc in self.supported:
            return "supported"
        if cc in self.experimental:
            return "experimental"
        # An unlisted newer minor of a supported major (e.g. a future sm_121) runs the major's SASS.
        if cc >= self.min_capability and any(s[0] == cc[0] and s <= cc for s in self.supported):
            return "supported"
        return "unsupported"

    @property
    def needs_nvcc(self) -> bool:
        return bool(self.nvcc_min_rules)


def _cc(text: str) -> tuple[int, int]:
    mm = major_minor(text)
    assert mm is not None, text
    return mm


@cache
def variant_info(name: Variant) -> VariantInfo:
    raw = load_data("variants")["variants"][name]
    return VariantInfo(
        name=name,
        title=raw["title"],
        dist=raw["dist"],
        import_name=raw["import"],
        min_capability=_cc(raw["min_capability"]),
        supported=tuple(_cc(c) for c in raw["supported_capabilities"]),
        experimental=tuple(_cc(c) for c in raw["experimental_capabilities"]),
        experimental_note=raw.get("experimental_note"),
        build_archs=tuple(raw["build_archs"]),
        nvcc_min_rules=tuple((SpecifierSet(r["versions"]), r["nvcc"], r["source"]) for r in raw["nvcc_min"]),
        nvcc_recommended=raw.get("nvcc_recommended"),
        python_min=_cc(raw["python_min"]),
        dtypes=tuple(raw["dtypes"]),
        max_head_dim=int(raw["max_head_dim"]),
        rocm=bool(raw["rocm"]),
        raw=raw,
    )
