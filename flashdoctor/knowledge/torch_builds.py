"""PyTorch's own builds (flashdoctor/data/torch_builds.json): the torch × CUDA × Python grid it
publishes, and the C++ ABI of its pip wheels, read from a version string where nothing was probed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from packaging.version import Version

from flashdoctor.knowledge.data import load_data
from flashdoctor.knowledge.versions import major_minor, parse_version


def _rule() -> dict[str, Any]:
    rule: dict[str, Any] = load_data("torch_builds")["cxx11abi"]
    return rule


def torch_pip_cxx11abi(torch_mm: tuple[int, int] | None, cuda: str | None, arch: str | None) -> bool | None:
    """The C++ ABI of PyTorch's own pip wheels: CXX11 from torch 2.7, for torch 2.6 only the CUDA 12.6
    builds (PyTorch PR #142064), always on aarch64; pre-CXX11 before. None: cannot tell (torch 2.6
    with its CUDA unknown)."""
    rule = _rule()
    if arch in rule["cxx11_archs"]:
        return True
    if torch_mm is None:
        return None
    if torch_mm >= (major_minor(rule["cxx11_from"]) or (99, 0)):
        return True
    for minor, cuda_from in rule["cxx11_cuda_from"].items():
        if torch_mm == major_minor(minor):
            cu = major_minor(cuda)
            if cu is None:
                return None
            return cu >= (major_minor(cuda_from) or (99, 0))
    return False


def pypi_default_cuda(torch: str, platform: str | None) -> str | None:
    """The CUDA of PyPI's own build of torch ``torch`` on ``platform`` (a plain release version such as
    "2.10.0", no local label): what ``pip install torch==2.10.0`` gives there. None where PyPI's build is
    not a CUDA build or the data does not say (data/torch_builds.json ``pypi_default_cuda``)."""
    rule = _rule()
    v = parse_version(torch)
    if v is None or v.local is not None or v.is_prerelease or v.is_devrelease:
        return None
    first = major_minor(rule["pypi_default_cuda_platforms"].get(platform or "") or "")
    mm = major_minor(v.public)
    if first is None or mm is None or mm < first:  # a CPU build there (Windows; aarch64 before 2.11)
        return None
    return _pypi_cuda(mm)


def _pypi_cuda(mm: tuple[int, int] | None) -> str | None:
    """The CUDA of PyPI's Linux x86_64 build of torch ``mm`` (None: not in the data)."""
    cuda: str | None = _rule()["pypi_default_cuda"].get(f"{mm[0]}.{mm[1]}") if mm else None
    return cuda


@dataclass(frozen=True)
class AbiGuess:
    """The ABI a torch version string implies (``abi`` None: it does not tell), and why."""

    abi: bool | None
    why: str


def cxx11abi_from_version(torch: str, torch_cuda: str | None = None, arch: str | None = None) -> AbiGuess:
    """The C++ ABI of torch ``torch`` ("2.6.0+cu124", "2.7.1", "2.6.0") if it is one of PyTorch's own
    release wheels. ``torch_cuda`` is its CUDA where the version has no ``+cuXYZ`` label; without either,
    a plain version is PyPI's default build of that release. Pre-releases, vendor builds (NGC's
    "2.1.0a0+32f93b1"), ROCm and unknown labels do not tell."""
    v = parse_version(torch)
    if v is None:
        return AbiGuess(None, f"torch {torch!r} is not a version")
    if v.is_prerelease or v.is_devrelease:
        return AbiGuess(
            None, f"torch {torch} is a pre-release or vendor build, whose ABI its version does not tell"
        )
    mm = major_minor(v.public)
    local = v.local
    cuda = torch_cuda
    if local is not None:
        m = re.fullmatch(r"cu(\d+)(\d)", local)
        if m:
            cuda = f"{m.group(1)}.{m.group(2)}"
        elif local != "cpu":
            return AbiGuess(
                None, f"torch {torch} is not one of PyTorch's CUDA or CPU builds (label {local!r})"
            )
    elif cuda is None:
        cuda = _pypi_cuda(mm)
    abi = torch_pip_cxx11abi(mm, cuda, arch)
    if abi is None:
        return AbiGuess(None, f"torch {torch}: the ABI of its builds depends on the CUDA, which is unknown")
    label = "CXX11" if abi else "pre-CXX11"
    build = f"torch {torch}" + (f" (CUDA {cuda})" if cuda and not local else "")
    if arch in _rule()["cxx11_archs"]:
        return AbiGuess(abi, f"{build} is a {label} build: PyTorch's {arch} builds always use the CXX11 ABI")
    return AbiGuess(
        abi,
        f"{build} is a {label} build: PyTorch's pip builds use the CXX11 ABI from torch "
        f"{_rule()['cxx11_from']}, in 2.6 from CUDA 12.6",
    )


@dataclass(frozen=True)
class VendorBuild:
    """A vendor torch build that is one PyTorch nightly's code (data/torch_builds.json ``same_build_as``)."""

    nightly: str  # the nightly's version ("2.3.0.dev20240105")
    container: str  # where it ships ("NGC PyTorch 24.02")


def vendor_builds() -> dict[str, VendorBuild]:
    """Vendor version string -> the nightly it is built from and its container, as the FlashAttention
    maintainers matched them."""
    return {
        b["vendor"]: VendorBuild(b["nightly"], b["container"])
        for b in load_data("torch_builds")["same_build_as"]["builds"]
    }


@dataclass(frozen=True)
class NightlyBreak:
    """Wheels built against a nightly of ``minor`` older than ``built_before`` do not load on that
    minor's releases: ``symbol`` is gone from them (data/torch_builds.json ``abi_across_builds``)."""

    minor: tuple[int, int]
    built_before: Version
    symbol: str
    why: str


@cache
def nightly_breaks() -> tuple[NightlyBreak, ...]:
    out = []
    for b in load_data("torch_builds")["abi_across_builds"]["nightly_breaks"]:
        mm, before = major_minor(b["minor"]), parse_version(b["built_before"])
        assert mm is not None and before is not None, b  # the schema's patterns
        out.append(NightlyBreak(mm, before, b["symbol"], b["why"]))
    return tuple(out)


@cache
def measured_patches() -> dict[tuple[int, int], tuple[int, ...]]:
    """torch minor -> the release patches whose exported C++ symbols were compared and found to serve one
    another's extensions (data/torch_builds.json ``abi_across_builds.release_patches.measured``)."""
    out: dict[tuple[int, int], tuple[int, ...]] = {}
    for group in load_data("torch_builds")["abi_across_builds"]["release_patches"]["measured"]:
        versions = [parse_version(v) for v in group.split("-")]
        for v in versions:
            assert v is not None, group  # the schema's pattern
            mm = (v.release[0], v.release[1])
            out[mm] = tuple(sorted({*out.get(mm, ()), v.release[2]}))
    return out


@dataclass(frozen=True)
class AcrossMinors:
    """Which later torch minors a wheel built against a minor loads on (data/torch_builds.json
    ``abi_across_minors``), for the variants measured; ``breaks``: (built, on) -> the first symbol gone."""

    variants: frozenset[str]
    platforms: frozenset[str]  # "linux_x86_64": where the torch wheels measured run
    loads_on: dict[tuple[int, int], frozenset[tuple[int, int]]]
    breaks: dict[tuple[tuple[int, int], tuple[int, int]], str]
    measured_versions: tuple[str, ...]  # the flash-attn versions whose sources were measured


@cache
def across_minors() -> AcrossMinors:
    block = load_data("torch_builds")["abi_across_minors"]

    def mm(text: str) -> tuple[int, int]:
        out = major_minor(text)
        assert out is not None, text  # the schema's pattern
        return out

    return AcrossMinors(
        frozenset(block["variants"]),
        frozenset(block["platforms"]),
        {mm(e["built"]): frozenset(mm(o) for o in e["on"]) for e in block["loads_on"]},
        {(mm(b["built"]), mm(b["on"])): b["symbol"] for b in block["breaks"]},
        tuple(block["measured"]["flash_attn"]),
    )
