"""What a wheel's name does not say: the rules that turn a raw listing row (or a live asset) into an
index entry. Used only by the index builder; the results land in wheels_index.json, each inferred
field named in the entry's ``inferred`` list so that a reader can tell a fact from a deduction.

Every rule cites where it comes from. Sources: flash-attention setup.py (v2.5.0 … v2.8.3.post1),
the tags' .github/workflows/publish.yml, and the wheel dataset's README ("Provenance", quirks 4 and 6).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from packaging.version import Version

from flashdoctor.decide.wheels.parse import WheelName, platform_arch
from flashdoctor.knowledge.data import load_data
from flashdoctor.knowledge.fa2_build import fa2_default_archs
from flashdoctor.knowledge.torch_builds import torch_pip_cxx11abi
from flashdoctor.knowledge.versions import major_minor

# Official Linux wheels are tagged linux_x86_64, so their glibc need is not in the tag: it is the
# glibc of the runner that built them (dataset README quirk 6).
GLIBC_BY_RUNNER = {"ubuntu-20.04": "2.31", "ubuntu-22.04": "2.35", "ubuntu-24.04": "2.39"}
# When GitHub stopped running jobs on a hosted runner image: a release tagged later whose publish
# workflow still asked for it built nothing (the ubuntu-20.04 image was fully retired on 2025-04-15,
# actions/runner-images#11101). v2.8.0 (2025-06-14) still targeted ubuntu-20.04: its matrix-derived
# wheels were very probably never published, and v2.8.0.post1/.post2 followed within hours
# (Dao-AILab/flash-attention #1708, #1762; the wheel dataset's README, "entries that are claims").
RUNNER_RETIRED = {"ubuntu-20.04": "2025-04-15"}
# publish.yml moved from ubuntu-20.04 to ubuntu-22.04 at v2.8.0.post1 (facts.md: "GLIBC_2.32 not found"
# for Ubuntu 20.04 users of 2.8.0.post1+).
OFFICIAL_UBUNTU_2204_SINCE = Version("2.8.0.post1")

# FA3 release builds target Hopper (sm_90a kernels; hopper/setup.py). SM8x kernels exist only on newer
# main, and whether a given wheel carries them is unknown: assume it does not.
FA3_ARCHS = ("sm_90a",)


def official_glibc(version: Version, built_on: str | None, added_later: bool) -> tuple[str, bool]:
    """(glibc, inferred). Assets added to a release after its tag were built from main's workflow at
    some later date; assume the newer runner (the safe side: it can only reject a wheel that works)."""
    if built_on in GLIBC_BY_RUNNER:
        return GLIBC_BY_RUNNER[built_on], False
    if added_later or version >= OFFICIAL_UBUNTU_2204_SINCE:
        return GLIBC_BY_RUNNER["ubuntu-22.04"], True
    return GLIBC_BY_RUNNER["ubuntu-20.04"], True


def fa2_archs(
    version: Version, cuda_build: str | None, cuda_major: int | None
) -> tuple[tuple[str, ...], bool]:
    """(SASS archs, inferred) of an FA2 wheel built with the default arch list, by the build rules the
    build plan reads (data/build.json): before FLASH_ATTN_CUDA_ARCHS (2.7.3) setup.py compiled sm_80 and
    sm_90; from it, the default archs whose nvcc minimum the build's CUDA meets. Official wheels are built
    with nvcc >= 11.8, so sm_80 and sm_90 are in every one."""
    rules = load_data("build")["fa2"]
    base = ("sm_80", "sm_90")
    if version < Version(rules["arch_switch_since"]):
        return base, cuda_build is None
    cu = major_minor(cuda_build)
    if cu is None and cuda_major is not None and cuda_major >= 13:
        cu = (cuda_major, 0)  # a CUDA 13.x build meets every minimum of the 12.x era
    if cu is None:
        return base, True  # unknown nvcc: only what every build has
    return tuple(f"sm_{a}" for a in fa2_default_archs(cu)), cuda_build is None


def official_cuda_build(name: WheelName, listed: str | None) -> tuple[str | None, bool]:
    """(CUDA the wheel was built with, inferred). The 2.8.x matrix used CUDA 12.9 for cu12 wheels; a
    cu13 wheel was built with some CUDA 13.x."""
    if listed:
        return listed, False
    if name.cuda is None:
        return None, False
    major, minor = name.cuda
    if minor is not None:
        return f"{major}.{minor}", False  # <= 2.6.3 names carry the nvcc major.minor
    if major >= 13:
        return f"{major}.0", True
    if major == 12 and name.public_version >= Version("2.8.0"):
        return "12.9", True
    return None, False


def derive_abi(
    name: WheelName, source: str, cuda_for_torch: str | None, listed_inferred: bool | None = None
) -> tuple[bool | None, bool]:
    """(CXX11 ABI the wheel needs, inferred). None: not applicable (Windows, LibTorch stable ABI) or
    unknown.

    - An explicit ``cxx11abiTRUE`` forces the new ABI (setup.py FLASH_ATTENTION_FORCE_CXX11_ABI).
    - ``cxx11abiFALSE`` in the official naming means "not forced": the wheel has the ABI of the torch
      it was built against. For torch >= 2.7 (and 2.6 + cu126) that torch is a CXX11-ABI build, so
      both labels are probably CXX11-ABI wheels (dataset README quirk 4, inferred from setup.py,
      untested). flashdoctor treats them as such: they serve CXX11-ABI torch only, and the selector
      prefers the TRUE-labelled twin, whose ABI is certain.
    - The full-torch scheme (kingbri1, bdashore3) hard-codes FALSE: the label says nothing.
    - Names without a label (mjun0812) have the ABI of the torch used in the build.
    """
    arch = _arch(name)
    if not any(p.startswith(("linux", "manylinux")) for p in name.platforms):
        return None, False
    if name.torch is None:
        return None, False  # FA3 on the LibTorch stable ABI; FA4 pure Python
    pip_abi = torch_pip_cxx11abi(name.torch, cuda_for_torch, arch)
    if name.scheme in ("cuda-major", "cuda-minor"):
        if name.abi_label:
            return True, False
        if pip_abi is True:
            return True, True
        return False, False
    if name.scheme == "dated" and name.abi_label is not None:
        return name.abi_label, False  # windreamer's label is the ABI of the torch it built against
    if listed_inferred is not None:
        return listed_inferred, True
    return pip_abi, pip_abi is not None


def _arch(name: WheelName) -> str | None:
    for p in name.platforms:
        a = platform_arch(p)
        if a:
            return a
    return None


def is_claim(row: Mapping[str, Any]) -> bool:
    """Whether a listing row is only derived from a build matrix: no published copy was seen. Rows of
    the live sources (an API listing real files) have no ``evidence_kind`` and are never claims."""
    kind = row.get("evidence_kind")
    return isinstance(kind, str) and "derived_from_matrix" in kind and "seen" not in kind


def never_built(row: Mapping[str, Any]) -> str | None:
    """Why a claimed wheel cannot exist (its release's CI could not have run), else None."""
    if not is_claim(row):
        return None
    runner = row.get("built_on")
    retired = RUNNER_RETIRED.get(runner) if isinstance(runner, str) else None
    tagged = str(row.get("tag_date") or "")[:10]
    if retired and tagged and tagged > retired:
        return f"{row.get('release_tag')}'s workflow ran on {runner}, retired on {retired}"
    return None


def torch_build_of(name: WheelName, listed: str | None) -> str | None:
    """The torch a wheel was compiled against: what the listing records (the build matrix's torch), else
    what its name spells out in full (kingbri1/bdashore3 "torch2.8.0", windreamer "torch2100")."""
    if listed:
        return listed
    return name.torch_full
