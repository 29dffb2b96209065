"""Which torch build a wheel was compiled against, and whether that build fits the torch at hand.

A wheel whose name says "torch2.3" was compiled against one particular torch: the index records it
(``torch_build``: the listings' ``torch_build_version``, or the torch x.y.z a full-torch or dated name
spells out). What the evidence says about loading it on another build of the same minor:

- a wheel built against a *later patch* fails on an earlier one: "Wheels are built for torch 2.2.2 and
  torch 2.3.0. Looks like it's not compatible with 2.2.0" (maintainer, Dao-AILab/flash-attention#931);
  it is rejected (``torch-build-mismatch``);
- one built against an *earlier patch* usually loads (one report of a failure, #1027): it fits, ranked
  after a wheel built against the exact patch;
- one built against a *nightly* of the minor loaded on the release in one report (#975) and failed in
  another (#931/#966, 2.5.7 on torch 2.3.0): it fits, ranked after every release-built wheel;
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

from flashdoctor.knowledge.torch_builds import vendor_builds

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
EXACT, UNKNOWN, OLDER_PATCH, NIGHTLY = 0, 1, 2, 3
CLASS_WORDS = {
    EXACT: "built against this exact torch",
    UNKNOWN: "the torch it was built against is not recorded",
    OLDER_PATCH: "built against an earlier patch of this torch",
    NIGHTLY: "built against a nightly of this torch minor",
}


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
        return NIGHTLY
    if b.mm != t.mm or t.patch is None or b.patch is None:
        return UNKNOWN
    if b.patch == t.patch:
        return EXACT
    return OLDER_PATCH if b.patch < t.patch else None
