"""Wheel selection: which wheels of the index fit an Environment (best first) and why every other one
does not (nearest miss first). Pure functions of (Environment, WheelIndex, options); nothing here touches
the system.

target.py   the Environment as the rules see it (Target)
rules.py    the rejection codes of one entry (public: data/codes.json)
reasons.py  the sentences people read about them
plan.py     the install plan (make_plan) and what would make a wheel fit

Preference among the wheels that fit: wheels built against another patch of torch, then those built
against a nightly, come after the rest (torchbuild.py); then files seen published before entries derived
only from a build matrix (claims), and a release not replaced within a day before one that was; then a
release whose whole Python package runs on this torch before one that needs a newer torch for part of it
(flash-attn 2.8's Triton ops need torch 2.6: variants.json ``torch_api_min``); then the newest version;
then official over the PyTorch index over community; then one built against this exact torch over one
whose build torch is not recorded; then a certain ABI over an inferred one; then the CUDA closest to
torch's (exact, older minor, newer minor); then higher listing confidence; then a known glibc need (a
manylinux copy) over an unknown one; then, within one source, the newer release of the same file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from flashdoctor.decide.wheels.index import IndexEntry, WheelIndex
from flashdoctor.decide.wheels.reasons import reason_text
from flashdoctor.decide.wheels.rules import (
    REJECTION_CODES,
    build_signature,
    evaluate,
    groups_of,
    machine_codes,
    policy_codes,
    torch_api_short,
    torch_fit,
    version_ranks,
)
from flashdoctor.decide.wheels.target import Target, supported_tags, target_of
from flashdoctor.decide.wheels.torchbuild import EXACT, UNKNOWN
from flashdoctor.errors import UsageError
from flashdoctor.knowledge.variants import Variant
from flashdoctor.model.environment import Environment
from flashdoctor.model.plan import Rejection

# How far a rejection is from fitting, to show the nearest misses first (lower is nearer).
_DISTANCE = {
    "community": 0,
    "version-excluded": 0,
    "required-by-installed": 0,
    "torch-mismatch": 1,
    "torch-build-mismatch": 1,
    "python-mismatch": 1,
    "cuda-mismatch": 2,
    "abi-mismatch": 2,
    "glibc-too-old": 2,
    "driver-too-old": 2,
    "gpu-code-missing": 3,
    "no-cuda-torch": 3,
    "yanked": 5,
    "platform-mismatch": 8,
}
_CONFIDENCE = {"high": 0, None: 1, "medium": 2, "low": 3}
MAX_REJECTED = 20
PER_KIND = 3


def _cuda_distance(entry: IndexEntry, t: Target) -> int:
    if entry.cuda_mm is None or t.cuda is None or entry.cuda_mm[1] is None:
        return 5
    diff = entry.cuda_mm[1] - t.cuda[1]
    if diff == 0:
        return 0
    return -diff if diff < 0 else 10 + diff


def preference_key(entry: IndexEntry, t: Target) -> tuple[object, ...]:
    """Sort key, best first when sorted ascending."""
    build = build_rank(entry, t)
    return (
        max(build - UNKNOWN, 0),  # another patch, then a nightly, then an earlier minor, after the rest
        1 if entry.claim else 0,
        1 if entry.superseded_by else 0,
        1 if torch_api_short(entry, t) else 0,
        1 if entry.unreleased else 0,  # a snapshot of unreleased code after the builds of a release
        _Neg(entry.version),
        entry.rank,
        build,  # then the exact build before an unrecorded one
        1 if "abi" in entry.inferred else 0,
        _cuda_distance(entry, t),
        _CONFIDENCE.get(entry.confidence, 1),
        # an auditwheel copy whose manylinux tag states its glibc need beats a linux_* copy of unknown need
        0 if entry.glibc is not None or t.os != "linux" else 1,
        entry.source,  # release tags of different repositories do not compare: only within one
        _Neg(entry.release or Version("0")),
        entry.filename,
        entry.url_or_template,
    )


def build_rank(entry: IndexEntry, t: Target) -> int:
    """How the torch the wheel was built against fits torch's (torchbuild.build_class; 0 is best).
    Wheels without torch in their name (FA3 on the stable ABI, FA4) do not depend on it: they rank as
    built against this very torch."""
    if entry.name.torch is None:
        return EXACT
    cls = torch_fit(entry, t)
    return UNKNOWN if cls is None else cls


class _Neg:
    """Reverses the order of a Version inside an ascending sort key."""

    __slots__ = ("v",)

    def __init__(self, v: Version) -> None:
        self.v = v

    def __lt__(self, other: _Neg) -> bool:
        return self.v > other.v

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Neg) and self.v == other.v

    def __hash__(self) -> int:  # pragma: no cover - keys are compared, not hashed
        return hash(self.v)


@lru_cache(maxsize=1024)
def _distance(codes: tuple[str, ...]) -> int:
    return sum(_DISTANCE.get(c, 5) for c in codes)


@dataclass(frozen=True)
class Selection:
    """Every entry of one variant, split: those that fit (best first) and those that do not (nearest
    miss first, with their codes)."""

    variant: Variant
    target: Target
    fits: tuple[IndexEntry, ...]
    unsorted_misses: tuple[tuple[IndexEntry, tuple[str, ...]], ...]
    spec: SpecifierSet | None
    allow_community: bool
    ranks: Mapping[Version, int]

    @property
    def best(self) -> IndexEntry | None:
        return self.fits[0] if self.fits else None

    @cached_property
    def misses(self) -> tuple[tuple[IndexEntry, tuple[str, ...]], ...]:
        """Rejected entries with their codes, nearest miss first (sorted on first use only: ``check``
        needs just the best fit)."""
        ranks = self.ranks

        def key(item: tuple[IndexEntry, tuple[str, ...]]) -> tuple[object, ...]:
            e, codes = item
            return (_distance(codes), len(codes), -ranks.get(e.version, 0), e.rank, e.filename)

        return tuple(sorted(self.unsorted_misses, key=key))

    def nearest_misses(
        self, limit: int | None = MAX_REJECTED, per_kind: int | None = PER_KIND
    ) -> list[tuple[IndexEntry, tuple[str, ...]]]:
        """The nearest misses, at most ``per_kind`` with the same set of reasons (so that twenty
        community rebuilds do not hide the one wheel that misses by the torch version)."""
        out: list[tuple[IndexEntry, tuple[str, ...]]] = []
        kinds: dict[tuple[str, ...], int] = {}
        for e, codes in self.misses:
            if limit is not None and len(out) >= limit:
                break
            if per_kind is not None:
                if kinds.get(codes, 0) >= per_kind:
                    continue
                kinds[codes] = kinds.get(codes, 0) + 1
            out.append((e, codes))
        return out

    def rejections(
        self, limit: int | None = MAX_REJECTED, per_kind: int | None = PER_KIND
    ) -> tuple[Rejection, ...]:
        return tuple(
            Rejection(e.label, tuple(reason_text(c, e, self.target, self.spec) for c in codes))
            for e, codes in self.nearest_misses(limit, per_kind)
        )


def parse_version_spec(text: str | SpecifierSet | None) -> SpecifierSet | None:
    """``--version``: a PEP 440 specifier; a bare version means exactly that version."""
    if text is None or isinstance(text, SpecifierSet):
        return text
    s = text.strip()
    if not s:
        return None
    try:
        Version(s)
        s = f"=={s}"
    except InvalidVersion:
        pass
    try:
        return SpecifierSet(s)
    except InvalidSpecifier:
        raise UsageError(
            f"--version {text!r} is not a version specifier (e.g. '2.8.3', '>=2.7,<2.8')"
        ) from None


def select_wheels(
    env: Environment,
    variant: Variant,
    index: WheelIndex,
    version_spec: str | SpecifierSet | None = None,
    allow_community: bool = False,
) -> Selection:
    """Evaluate every entry of ``variant`` against ``env``."""
    t = target_of(env)
    spec = parse_version_spec(version_spec)
    fits: list[IndexEntry] = []
    misses: list[tuple[IndexEntry, tuple[str, ...]]] = []
    for group in groups_of(index, variant):
        machine = machine_codes(group[0], t)
        for e in group:
            codes = (*machine, *policy_codes(e, spec, allow_community, t))
            if codes:
                misses.append((e, codes))
            else:
                fits.append(e)
    fits.sort(key=lambda e: preference_key(e, t))
    return Selection(variant, t, tuple(fits), tuple(misses), spec, allow_community, version_ranks(index))


def find_wheel(
    env: Environment, variant: Variant, index: WheelIndex, allow_community: bool = False
) -> str | None:
    """The filename of the wheel ``install`` would pick, or None (checks.WheelFinder)."""
    best = select_wheels(env, variant, index, allow_community=allow_community).best
    return None if best is None else best.filename


__all__ = [
    "REJECTION_CODES",
    "Selection",
    "Target",
    "build_signature",
    "evaluate",
    "find_wheel",
    "machine_codes",
    "parse_version_spec",
    "policy_codes",
    "preference_key",
    "reason_text",
    "select_wheels",
    "supported_tags",
    "target_of",
    "torch_api_short",
]
