"""The FlashAttention variants (FA2, FA3, FA4): the one registry (flashdoctor/data/variants.json, checked
against schemas/variants.schema.json; docs/variants.md says how to add one).

One entry per variant declares everything the rest of flashdoctor reads about it: distributions, the
modules that hold ``flash_attn_func`` (FA3's ``flash_attn_3.flash_attn_interface`` fallback included),
extension modules, CLI flag and title, pre-release policy, build rules, runtime backends, GPUs, dtypes,
and requirements, each rule with its source. Probe, smoke, dispatch, selection, build, CLI flags and
docs read it here; nobody keeps a second table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, cast, get_args

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from flashdoctor.knowledge.data import load_data
from flashdoctor.knowledge.versions import major_minor, parse_version

# The type checker's view of the registry; a test checks that it names exactly the registry's entries.
Variant = Literal["fa2", "fa3", "fa4"]
GpuFit = Literal["supported", "experimental", "unsupported"]


def _registry() -> dict[str, Any]:
    raw: dict[str, Any] = load_data("variants")["variants"]
    return raw


VARIANTS: tuple[Variant, ...] = cast("tuple[Variant, ...]", tuple(_registry()))  # registry order
DEFAULT_VARIANT: Variant = load_data("variants")["default"]
assert set(VARIANTS) == set(get_args(Variant)), "data/variants.json and the Variant type disagree"

# Distribution name (canonical) -> variant, from every spelling each entry lists under "dists".
DIST_VARIANT: dict[str, Variant] = {
    canonicalize_name(d): v for v in VARIANTS for d in _registry()[v]["dists"]
}
# Variant -> its canonical distribution name (what pip installs).
VARIANT_DIST: dict[Variant, str] = {v: str(canonicalize_name(_registry()[v]["dist"])) for v in VARIANTS}


@dataclass(frozen=True)
class GpuAdvice:
    """Why a variant cannot run on a GPU of at least ``min_capability`` (None: any), and what to use."""

    min_capability: tuple[int, int] | None
    why: str
    fix: str


@dataclass(frozen=True)
class DtypeLimit:
    """A dtype the variant runs only on some GPUs (FA3's fp8: sm90, forward only)."""

    capabilities: tuple[tuple[int, int], ...]
    forward_only: bool


@dataclass(frozen=True)
class Conflict:
    """Another variant's versions whose files collide with this variant's."""

    variant: Variant
    versions: SpecifierSet
    why: str
    fix: str


@dataclass(frozen=True)
class TorchApiFloor:
    """Releases (``versions``) whose Python code needs torch >= ``torch`` in full; ``what`` fails below."""

    versions: SpecifierSet
    torch: tuple[int, int]
    what: str
    source: str


@dataclass(frozen=True)
class VariantInfo:
    name: Variant
    title: str
    short: str  # "FA2"
    dist: str  # canonical distribution name
    dists: tuple[str, ...]  # every spelling of the distribution (metadata lookups)
    modules: tuple[str, ...]  # where ``function`` lives, tried in order
    function: str
    requires_dist: bool  # the module alone does not count (FA4: flash_attn.cute ships in flash-attn 2.8.3)
    extensions: tuple[str, ...]  # compiled extension modules (empty: pure Python)
    cli_flag: str
    cli_help: str
    pre_release_only: bool
    build: Mapping[str, Any] | None  # {"rules": "build.json#/fa2", "from": ..., "help": ...}; None: no build
    backends: tuple[str, ...]  # runtime backend names (data/attention_backends.json)
    smoke: Mapping[str, Any]  # how the smoke test calls it and knows its kernels (aot, usage, head_dims, ...)
    drift: Mapping[str, Any]  # the cluster check's field for its build (label, status, why, source)
    min_capability: tuple[int, int]
    supported: tuple[tuple[int, int], ...]
    experimental: tuple[tuple[int, int], ...]
    experimental_note: str | None
    experimental_fix: str | None
    unsupported_advice: tuple[GpuAdvice, ...]
    nvcc_min_rules: tuple[tuple[SpecifierSet, str, str], ...]
    torch_api_rules: tuple[TorchApiFloor, ...]
    nvcc_recommended: str | None
    python_min: tuple[int, int]
    dtypes: tuple[str, ...]
    dtype_limits: Mapping[str, DtypeLimit]
    max_head_dim: int
    rocm: bool
    rocm_note: str | None
    needs_driver_cuda: tuple[int, int] | None
    glibc_only: str | None  # why it cannot work on musl though its own wheel installs there (FA4)
    conflicts: tuple[Conflict, ...]
    raw: dict[str, Any]

    @property
    def import_name(self) -> str:
        """The module a user imports first (the first of ``modules``)."""
        return self.modules[0]

    @property
    def extension(self) -> str | None:
        return self.extensions[0] if self.extensions else None

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

    def torch_api_floor(self, version: Version, torch_mm: tuple[int, int]) -> TorchApiFloor | None:
        """The rule by which torch ``torch_mm`` is too old for part of release ``version``'s Python code
        (None: no rule for the release, or this torch is new enough). One rule for the selector and check."""
        floor = next(
            (r for r in self.torch_api_rules if r.versions.contains(version, prereleases=True)), None
        )
        return floor if floor is not None and torch_mm < floor.torch else None

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

    def gpu_advice(self, cc: tuple[int, int] | None) -> GpuAdvice:
        """Why the variant does not run on ``cc`` and what to use instead (the first rule that applies)."""
        for rule in self.unsupported_advice:
            if rule.min_capability is None or (cc is not None and cc >= rule.min_capability):
                return rule
        return self.unsupported_advice[-1]  # pragma: no cover - the schema requires a catch-all rule

    def dtypes_on(self, cc: tuple[int, int]) -> tuple[str, ...]:
        """The dtypes this variant runs on a GPU of compute capability ``cc`` ("fp8-forward" where only
        the forward pass exists). Empty where the variant does not run at all."""
        if self.gpu_fit(cc) == "unsupported":
            return ()
        out = []
        for d in self.dtypes:
            limit = self.dtype_limits.get(d)
            if limit is not None:
                if cc not in limit.capabilities:
                    continue
                out.append(f"{d}-forward" if limit.forward_only else d)
            elif d == "bf16" and cc < (8, 0):  # pragma: no cover - every variant needs sm80 already
                continue
            else:
                out.append(d)
        return tuple(out)

    @property
    def needs_nvcc(self) -> bool:
        return bool(self.nvcc_min_rules)

    @property
    def buildable(self) -> bool:
        return self.build is not None

    def script_table(self) -> dict[str, Any]:
        """What a target-interpreter script (probe, smoke runner) needs, as plain JSON: they run under
        any Python with no flashdoctor importable, so they receive this instead of keeping a copy."""
        return {
            "dist": self.dist,
            "dists": list(self.dists),
            "modules": list(self.modules),
            "function": self.function,
            "requires_dist": self.requires_dist,
            "extensions": list(self.extensions),
        }


def _cc(text: str) -> tuple[int, int]:
    mm = major_minor(text)
    assert mm is not None, text
    return mm


@cache
def variant_info(name: Variant) -> VariantInfo:
    raw = _registry()[name]
    return VariantInfo(
        name=name,
        title=raw["title"],
        short=raw["short"],
        dist=VARIANT_DIST[name],
        dists=tuple(raw["dists"]),
        modules=tuple(raw["modules"]),
        function=raw["function"],
        requires_dist=bool(raw["requires_dist"]),
        extensions=tuple(raw["extensions"]),
        cli_flag=raw["cli"]["flag"],
        cli_help=raw["cli"]["help"],
        pre_release_only=bool(raw["pre_release_only"]),
        build=raw["build"],
        backends=tuple(raw["backends"]),
        smoke=raw["smoke"],
        drift=raw["drift"],
        min_capability=_cc(raw["min_capability"]),
        supported=tuple(_cc(c) for c in raw["supported_capabilities"]),
        experimental=tuple(_cc(c) for c in raw["experimental_capabilities"]),
        experimental_note=raw.get("experimental_note"),
        experimental_fix=raw.get("experimental_fix"),
        unsupported_advice=tuple(
            GpuAdvice(
                min_capability=_cc(r["min_capability"]) if r.get("min_capability") else None,
                why=r["why"],
                fix=r["fix"],
            )
            for r in raw["unsupported_gpu"]
        ),
        nvcc_min_rules=tuple((SpecifierSet(r["versions"]), r["nvcc"], r["source"]) for r in raw["nvcc_min"]),
        torch_api_rules=tuple(
            TorchApiFloor(SpecifierSet(r["versions"]), _cc(r["torch"]), r["what"], r["source"])
            for r in raw.get("torch_api_min", ())
        ),
        nvcc_recommended=raw.get("nvcc_recommended"),
        python_min=_cc(raw["python_min"]),
        dtypes=tuple(raw["dtypes"]),
        dtype_limits={
            d: DtypeLimit(tuple(_cc(c) for c in lim["capabilities"]), bool(lim.get("forward_only", False)))
            for d, lim in raw["dtype_limits"].items()
        },
        max_head_dim=int(raw["max_head_dim"]),
        rocm=bool(raw["rocm"]),
        rocm_note=raw.get("rocm_note"),
        needs_driver_cuda=_cc(raw["needs_driver_cuda"]) if raw.get("needs_driver_cuda") else None,
        glibc_only=raw["glibc_only"]["why"] if raw.get("glibc_only") else None,
        conflicts=tuple(
            Conflict(c["variant"], SpecifierSet(c["versions"]), c["why"], c["fix"])
            for c in raw.get("conflicts", ())
        ),
        raw=raw,
    )


def as_variant(name: str) -> Variant | None:
    """``name`` as a variant when the registry has it; None for any other name (a backend, a typo)."""
    return name if name in VARIANTS else None


def variant_for_flag(flag: str) -> Variant | None:
    """The variant a CLI flag such as ``--fa3`` selects (None: no variant has it)."""
    for v in VARIANTS:
        if variant_info(v).cli_flag == flag:
            return v
    return None


def script_tables() -> dict[str, dict[str, Any]]:
    """Every variant's ``script_table()``, keyed by variant (passed to target-interpreter scripts)."""
    return {v: variant_info(v).script_table() for v in VARIANTS}
