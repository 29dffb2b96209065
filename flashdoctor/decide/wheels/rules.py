"""The wheel rules: the rejection codes of one index entry against a Target. Fast: no strings are
formatted here (reasons.py words them).

Matching rules (facts.md, "FA2" / "FA3" / "Wheels in the wild"; each code is public: data/codes.json,
README "Wheel rejection codes"):

- ``torch-mismatch``: an FA2 (or torch-labelled) wheel must match torch's major.minor — a wheel for
  another minor fails with ``undefined symbol: _ZN3c10...`` — except an FA2 wheel of an earlier minor
  whose torch symbols a later minor still exports (measured: built against 2.10, it loads on 2.11 and
  2.12; torchbuild.fit_class, data/torch_builds.json ``abi_across_minors``). FA3 stable-ABI wheels (no torch in
  the name) serve torch >= 2.9 (hopper/setup.py TORCH_TARGET_VERSION).
- ``torch-build-mismatch``: the wheel was compiled against another build of torch's major.minor whose
  symbols this torch lacks: a nightly from before a recorded symbol change (torch-2.3 wheels built on
  early-2024 nightlies import c10::cuda::SetDevice(int), gone from the 2.3 releases), or — for a
  pre-release, nightly or vendor torch (NGC, Jetson) — anything but that very build (torchbuild.py); a
  stable-ABI wheel (built against no particular torch) does not fit such a torch either. Another release
  patch of the minor fits (the patches export the same symbols: data/torch_builds.json).
- ``cuda-mismatch``: the wheel's CUDA major must be torch's — a cu12 wheel on a cu11 torch fails with
  ``libcudart.so.12: cannot open shared object file``.
- ``abi-mismatch``: the wheel's C++ ABI must be torch's (``torch._C._GLIBCXX_USE_CXX11_ABI``).
- ``python-mismatch`` / ``platform-mismatch``: the wheel's tags (packaging.tags) against this
  interpreter and OS/architecture; abi3 wheels serve every later CPython (not free-threaded builds).
- ``glibc-too-old``: manylinux tags, and official ``linux_*`` wheels built on Ubuntu 22.04 (from
  2.8.0.post1) need glibc 2.35.
- ``gpu-code-missing``: the wheel has no code for a visible GPU (2.7.x wheels were built with CUDA 12.4:
  no sm_100 / sm_120); of mixed GPUs, only those the variant runs on count (``served_sms``).
- ``driver-too-old``: the driver must support the CUDA major the wheel was built with (minor-version
  compatibility covers the minor). Not where the driver is too old for torch's own CUDA: that blocks
  every variant (check's finding, the plan's blocker), and the wheel named is the one that fits after.
- ``no-cuda-torch``: torch is missing, a CPU build or a ROCm build.
- ``community`` (needs --allow-community), ``version-excluded`` (outside --version), ``yanked``.
- ``required-by-installed``: an installed distribution requires another version (its Requires-Dist on
  the FlashAttention distribution, e.g. transformer-engine's ``flash-attn<=2.4.2``): installing this one
  would break it (``pip check`` would say so).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from flashdoctor import knowledge
from flashdoctor.decide.wheels.index import IndexEntry, WheelIndex
from flashdoctor.decide.wheels.parse import manylinux_glibc, platform_arch
from flashdoctor.decide.wheels.target import Target
from flashdoctor.decide.wheels.torchbuild import fit_class
from flashdoctor.knowledge import codes as code_registry
from flashdoctor.knowledge.archs import runs_on
from flashdoctor.knowledge.variants import TorchApiFloor, Variant
from flashdoctor.model.requirements import Required

REJECTION_CODES: Mapping[str, str] = code_registry.codes("rejection")  # public interface: data/codes.json


@lru_cache(maxsize=4096)
def gpu_runs(archs: tuple[str, ...], sm: int) -> bool:
    return runs_on(archs, sm) != "no"


@lru_cache(maxsize=256)
def served_sms(variant: Variant, sms: tuple[int, ...]) -> tuple[int, ...]:
    """The GPUs a wheel of ``variant`` must carry code for: those the variant runs on at all. A GPU it
    never runs on (FA2 on a V100 beside an H100) is no reason to prefer a source build, which cannot give
    it code either; check's gpu-unsupported says so. Where it runs on none of them, all (the plan is
    unsupported, and every wheel still shows what it lacks)."""
    info = knowledge.variant_info(variant)
    runs = tuple(sm for sm in sms if info.gpu_fit(divmod(sm, 10)) != "unsupported")
    return runs or sms


def variant_driver_min(variant: Variant | None) -> tuple[int, int] | None:
    """The driver CUDA a variant's wheels need when the wheel names no CUDA (FA4: data/variants.json)."""
    return None if variant is None else knowledge.variant_info(variant).needs_driver_cuda


def evaluate(
    entry: IndexEntry,
    t: Target,
    spec: SpecifierSet | None = None,
    allow_community: bool = False,
) -> tuple[str, ...]:
    """The rejection codes of one entry (empty: it fits). Fast: no strings are formatted here."""
    return (*machine_codes(entry, t), *policy_codes(entry, spec, allow_community, t))


def torch_fit(entry: IndexEntry, t: Target) -> int | None:
    """How the torch a torch-labelled wheel was built against fits this torch (torchbuild.fit_class: its
    classes, best first), or None when it does not fit; the one call of the rules, the ranking and the
    plan's notes."""
    n = entry.name
    if n.torch is None:
        return None
    return fit_class(n.variant or "", n.torch, entry.torch_build, t.torch_mm, t.torch_build, t.platform)


def machine_codes(entry: IndexEntry, t: Target) -> list[str]:
    """The codes that depend only on what the wheel was built for (its ``build_signature``)."""
    codes: list[str] = []
    n = entry.name
    # Python and platform, by tags
    tag_miss = t.pairs is not None and not (n.pythons & t.pairs)
    if tag_miss or (
        entry.requires_python is not None
        and t.python is not None
        and not entry.requires_python.contains(t.python, prereleases=True)
    ):
        codes.append("python-mismatch")
    if t.platforms is not None:
        if not (n.platforms & t.platforms):
            codes.append("glibc-too-old" if _only_glibc(n.platforms, t) else "platform-mismatch")
        elif t.glibc is not None and entry.glibc is not None and entry.glibc > t.glibc:
            codes.append("glibc-too-old")
    # torch, CUDA, ABI
    if t.torch_state in ("missing", "cpu", "rocm", "xpu"):
        codes.append("no-cuda-torch")
    elif t.torch_state == "cuda":
        if n.torch is not None:
            if torch_fit(entry, t) is None:
                other_minor = t.torch_mm is not None and n.torch != t.torch_mm
                codes.append("torch-mismatch" if other_minor else "torch-build-mismatch")
        elif entry.torch_spec is not None and t.torch_version is not None:
            if not entry.torch_spec.contains(t.torch_version, prereleases=True):
                codes.append("torch-mismatch")
            elif t.torch_build is not None and not t.torch_build.is_release:
                # The stable ABI is a promise between releases; a pre-release, nightly or vendor torch
                # is its own cell, as for every other wheel (built against no torch build of its own).
                codes.append("torch-build-mismatch")
        if entry.cuda_mm is not None and t.cuda is not None and entry.cuda_mm[0] != t.cuda[0]:
            codes.append("cuda-mismatch")
        if entry.abi is not None and t.abi is not None and t.os == "linux" and entry.abi != t.abi:
            codes.append("abi-mismatch")
    # GPU code and driver
    if (
        entry.archs is not None
        and t.sms
        and not all(gpu_runs(entry.archs, sm) for sm in served_sms(n.variant, t.sms))
    ):
        codes.append("gpu-code-missing")
    # A driver too old for torch's own CUDA is the machine's problem, not the wheel's (check's driver-too-old
    # blocks every variant there): the wheel that fits once the driver is upgraded is still the one to name.
    if t.driver_cuda is not None and not (t.cuda is not None and t.driver_cuda < (t.cuda[0], 0)):
        need: tuple[int, int] | None
        need = (entry.cuda_mm[0], 0) if entry.cuda_mm is not None else variant_driver_min(n.variant)
        if need is not None and t.driver_cuda < need:
            codes.append("driver-too-old")
    return codes


def torch_api_short(entry: IndexEntry, t: Target) -> TorchApiFloor | None:
    """The rule by which this torch is too old for part of the release's Python code (None: it is not)."""
    if t.torch_mm is None:
        return None
    return knowledge.variant_info(entry.name.variant).torch_api_floor(entry.version, t.torch_mm)


def policy_codes(entry: IndexEntry, spec: SpecifierSet | None, allow_community: bool, t: Target) -> list[str]:
    """The codes that depend on the publisher, the user's options and what installed distributions
    require of FlashAttention, not on the machine."""
    codes = []
    if entry.yanked:
        codes.append("yanked")
    if entry.community and not allow_community:
        codes.append("community")
    if spec is not None and not spec.contains(entry.version, prereleases=True):
        codes.append("version-excluded")
    if t.required and refused_by(entry, t):
        codes.append("required-by-installed")
    return codes


def refused_by(entry: IndexEntry, t: Target) -> tuple[Required, ...]:
    """The installed distributions' requirements this entry's version falls outside."""
    return tuple(r for r in t.required if not r.allows(entry.name.dist, entry.version))


def build_signature(entry: IndexEntry) -> tuple[object, ...]:
    """Everything ``machine_codes`` reads. ~5000 FA2 wheels have ~900 signatures: selection evaluates
    each signature once."""
    n = entry.name
    return (
        n.variant,
        n.pythons,
        n.platforms,
        n.torch,
        entry.torch_build,
        entry.torch_spec,
        entry.cuda_mm[0] if entry.cuda_mm else None,
        entry.abi,
        entry.glibc,
        entry.archs,
        entry.requires_python,
    )


@lru_cache(maxsize=16)
def groups_of(index: WheelIndex, variant: Variant) -> tuple[tuple[IndexEntry, ...], ...]:
    groups: dict[tuple[object, ...], list[IndexEntry]] = {}
    for e in index.for_variant(variant):
        groups.setdefault(build_signature(e), []).append(e)
    return tuple(tuple(es) for es in groups.values())


@lru_cache(maxsize=16)
def version_ranks(index: WheelIndex) -> dict[Version, int]:
    """Every version and release of the index numbered in ascending order (cheap sort keys)."""
    versions = {e.version for e in index.entries} | {
        e.release for e in index.entries if e.release is not None
    }
    return {v: i for i, v in enumerate(sorted(versions))}


def _only_glibc(platforms: frozenset[str], t: Target) -> bool:
    """Whether a manylinux tag for this very architecture exists that only a newer glibc accepts."""
    if t.os != "linux" or t.glibc is None:
        return False
    for p in platforms:
        g = manylinux_glibc(p)
        if g is not None and platform_arch(p) == t.arch and g > t.glibc:
            return True
    return False
