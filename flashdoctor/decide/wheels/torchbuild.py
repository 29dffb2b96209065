"""Which torch build a wheel was compiled against, and whether that build fits the torch at hand.

A wheel whose name says "torch2.3" was compiled against one particular torch: the index records it
(``torch_build``: the listings' ``torch_build_version``, or the torch x.y.z a full-torch or dated name
spells out). Whether it loads on another build of the same minor is measured on torch's own exported
symbols (data/torch_builds.json ``abi_across_builds``):

- the *release patches* of one minor export the same C++ symbols (a later patch only adds some that
  FlashAttention does not use), so a wheel built against *another patch*, earlier or later, fits: it
  ranks after one built against the exact patch. (Until 2026-12 a later patch was rejected, after a
  maintainer's "not compatible with 2.2.0" in Dao-AILab/flash-attention#931; 2.2.0 exports the missing
  symbol of that report, like 2.2.2, so that failure was not patch skew.)
- one built against a *nightly* of the minor fits a release, ranked after every release-built wheel,
  unless the data records a break: a nightly older than a symbol change (torch-2.3 wheels built on
  nightlies before 2024-02-08 import c10::cuda::SetDevice(int), which 2.3's releases do not export).
- a wheel built against an *earlier minor* fits a release of a later one only where every torch symbol
  the extension imports is still exported there (measured for FA2: built against 2.10, it loads on 2.11
  and 2.12; not on 2.13, nor 2.9 on 2.10: data/torch_builds.json ``abi_across_minors``), and only one
  built against a release (or an unrecorded build) of its minor; it ranks after every wheel of the
  torch's own minor.
- a *pre-release, nightly or vendor* torch (NGC's ``2.1.0a0+32f93b1``, ``2.8.0.dev20250319``, Jetson's
  ``2.0.0+nv23.05``) is its own cell: release wheels do not fit it ("compile from source",
  maintainer in #836, #709), so only a wheel built against that very build fits - or against the nightly
  the maintainers built for it (NGC 23.12, 24.02, 24.05: data/torch_builds.json ``same_build_as``).

Pure functions of version strings; the selector (rules.py, select.py) calls them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from packaging.version import InvalidVersion, Version

from flashdoctor.knowledge.torch_builds import (
    NightlyBreak,
    across_minors,
    measured_patches,
    nightly_breaks,
    vendor_builds,
)

# Local labels of PyTorch's own builds: the CUDA / CPU / ROCm / XPU flavour of one release.
_OWN_LABEL = re.compile(r"^(cu\d+|cpu|rocm[\d.]+|xpu)$")

KINDS = ("release", "nightly", "prerelease", "vendor")


@dataclass(frozen=True)
class TorchBuild:
    """One torch build. ``key`` identifies it for "the exact build": the public version for PyTorch's
    releases and nightlies (their +cuXYZ label is only the CUDA flavour), the whole string otherwise."""

    text: str
    version: Version
    kind: str  # one of KINDS
    key: str

    @property
    def mm(self) -> tuple[int, int]:
        r = self.version.release
        return (r[0], r[1] if len(r) > 1 else 0)

    @property
    def patch(self) -> int | None:
        """The patch number, None when the string does not give one ("2.4")."""
        r = self.version.release
        return r[2] if len(r) > 2 else None

    @property
    def is_release(self) -> bool:
        return self.kind == "release"

    @property
    def kind_words(self) -> str:
        """What kind of build it is, for people: "a pre-release build"."""
        return {
            "release": "a release",
            "nightly": "a nightly",
            "prerelease": "a pre-release build",
            "vendor": "a vendor build",
        }[self.kind]

    @property
    def what(self) -> str:
        """How a person names it: "the pre-release build 2.1.0a0+32f93b1"."""
        label = {
            "release": "the release",
            "nightly": "the nightly",
            "prerelease": "the pre-release build",
            "vendor": "the vendor build",
        }
        return f"{label[self.kind]} {self.text}"


@lru_cache(maxsize=4096)
def torch_build(text: str | None) -> TorchBuild | None:
    """The build a torch version string names; None when it is not a version."""
    if not text:
        return None
    try:
        v = Version(text.strip())
    except InvalidVersion:
        return None
    local = v.local
    if v.is_devrelease:
        kind = "nightly"
    elif v.is_prerelease:
        kind = "prerelease"
    elif local is not None and not _OWN_LABEL.match(local):
        kind = "vendor"
    else:
        kind = "release"
    key = v.public if kind in ("release", "nightly") else str(v)
    # A vendor build that is one nightly's code (NGC 23.12's 2.2.0a0+81ea7a4 is 2.2.0.dev20231106, by the
    # maintainers' word: data/torch_builds.json same_build_as): a wheel built against that nightly fits it.
    same = vendor_builds().get(key)
    key = same.nightly if same is not None else key
    return TorchBuild(text.strip(), v, kind, key)


# Fit classes of a wheel's build torch on the torch at hand, best first (ranks of the preference key).
# Another release patch fits (data: the patches export the same symbols) but ranks after the exact one:
# the conservative order, which the confirmed environments also favour.
EXACT, UNKNOWN, OTHER_PATCH, NIGHTLY, OTHER_MINOR = 0, 1, 2, 3, 4


def build_class(built: str | None, t: TorchBuild | None) -> int | None:
    """How a wheel built against ``built`` fits torch ``t`` (its minor already matches): one of the
    classes above, or None when it does not fit (``torch-build-mismatch``)."""
    if t is None:
        return UNKNOWN
    b = torch_build(built)
    if not t.is_release:  # a pre-release, nightly or vendor torch: only its very build
        return EXACT if b is not None and b.key == t.key else None
    if b is None:
        return UNKNOWN
    if not b.is_release:
        return None if nightly_break(b, t) is not None else NIGHTLY
    if b.mm != t.mm or t.patch is None or b.patch is None:
        return UNKNOWN
    return EXACT if b.patch == t.patch else OTHER_PATCH


def fit_class(
    variant: str,
    wheel_mm: tuple[int, int],
    built: str | None,
    t_mm: tuple[int, int] | None,
    t: TorchBuild | None,
    platform: str | None = None,
) -> int | None:
    """How a ``variant`` wheel for torch minor ``wheel_mm``, built against ``built``, fits the torch of minor
    ``t_mm`` whose build is ``t`` (None: unknown): the classes above (build_class for the same minor, or
    an unknown minor; OTHER_MINOR for an earlier minor whose extensions load on a release of ``t_mm``,
    measured: data/torch_builds.json ``abi_across_minors``, on its platforms: ``platform`` is the torch's,
    "linux_x86_64"), or None when it does not fit."""
    if t_mm is None or wheel_mm == t_mm:
        return build_class(built, t)
    across = across_minors()
    if t is None or not t.is_release or variant not in across.variants or platform not in across.platforms:
        return None
    if t_mm not in across.loads_on.get(wheel_mm, ()):
        return None
    b = torch_build(built)
    if b is not None and (not b.is_release or b.mm != wheel_mm):  # measured on releases only
        return None
    return OTHER_MINOR


def minor_break(variant: str, wheel_mm: tuple[int, int], t_mm: tuple[int, int]) -> str | None:
    """The torch symbol measured gone from minor ``t_mm`` for a ``variant`` extension built against
    ``wheel_mm`` (None: not measured, e.g. for another variant)."""
    across = across_minors()
    return across.breaks.get((wheel_mm, t_mm)) if variant in across.variants else None


def patches_measured(b: TorchBuild, t: TorchBuild) -> bool:
    """Whether the exported symbols of both release patches were compared and found the same (data)."""
    measured = measured_patches().get(t.mm, ())
    return b.mm == t.mm and b.patch in measured and t.patch in measured


def nightly_break(b: TorchBuild, t: TorchBuild) -> NightlyBreak | None:
    """The recorded break by which a wheel built against nightly ``b`` does not load on release ``t``."""
    if b.kind != "nightly" or b.mm != t.mm:
        return None
    for brk in nightly_breaks():
        if brk.minor == b.mm and b.version < brk.built_before:
            return brk
    return None
