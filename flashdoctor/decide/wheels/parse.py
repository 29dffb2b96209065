"""One parser for every FlashAttention wheel filename in the wild.

The standard parts (distribution, version, Python / ABI / platform tags) come from
``packaging.utils.parse_wheel_filename``; what FlashAttention builders pack into the *local version
label* is read here. The schemes (see the wheel dataset's README, "Naming differences"):

=====================  ===========================================================  =======================
scheme                 example                                                      what the label says
=====================  ===========================================================  =======================
``cuda-minor``         ``flash_attn-2.6.3+cu123torch2.4cxx11abiFALSE-cp312-...``      nvcc major+minor, ABI
``cuda-major``         ``flash_attn-2.8.3+cu12torch2.8cxx11abiTRUE-cp312-...``        CUDA major only, ABI
``no-abi``             ``flash_attn-2.8.3+cu130torch2.11-cp313-cp313t-...``           full CUDA, no ABI field
``full-torch``         ``flash_attn-2.8.3+cu128torch2.8.0cxx11abiFALSE-...win_amd64``  torch x.y.z; ABI label
                                                                                    hard-coded (meaningless)
``git``                ``flash_attn_3-3.0.0+cu128torch2.10gite2743ab-cp39-abi3-...``  full CUDA, source commit
``dated``              ``flash_attn_3-3.0.0+20260318.cu128torch2100cxx11abitrue.8afc61-...`` build date, full
                                                                                    CUDA, torch x.y.z
                                                                                    packed (2100 = 2.10.0),
                                                                                    ABI, source commit
                                                                                    (windreamer's FA3)
``plain``              ``flash_attn_3-3.0.0-cp39-abi3-manylinux_2_28_x86_64.whl``     nothing (CUDA comes from
                                                                                    the index path; FA4 is
                                                                                    pure Python)
``other``              ``flash_attn-2.8.3+fd.sm90.hd128.bf16-...``                   a label we do not read
=====================  ===========================================================  =======================

This module says only what the *name* says. What a label means for a given source (an official
``cxx11abiFALSE`` on torch ≥ 2.7 is probably a CXX11-ABI build) is decided when the index is built
(flashdoctor.decide.wheels.derive) and recorded in the index entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from flashdoctor.knowledge.variants import DIST_VARIANT, Variant

Scheme = str  # one of SCHEMES
SCHEMES = ("cuda-minor", "cuda-major", "no-abi", "full-torch", "git", "dated", "plain", "other")

# The local label, after packaging's normalisation (lower case, "-"/"_" -> "."):
#   [d<yyyymmdd>[.]] cu<digits> torch<major.minor[.patch]> [cxx11abi<true|false>] [fullbackward] [git<hex>]
# ("fullbackward": sdbds' Windows builds name their build variant after the ABI label; "d20260328":
# Wildminder's Windows builds put their build date first)
_LOCAL_RE = re.compile(
    r"^(?:d\d{8}\.?)?cu(?P<cuda>\d{2,3})torch(?P<torch>\d+\.\d+(?:\.\d+)?)"
    r"(?:cxx11abi(?P<abi>true|false))?(?:fullbackward)?(?:git(?P<git>[0-9a-f]+))?$"
)
# windreamer/flash-attention3-wheels: <yyyymmdd>.cu<digits>torch<major><minor><patch>cxx11abi<bool>.<hex>
# (its own index generator reads the torch digits as major = first, patch = last, minor = the middle).
_DATED_RE = re.compile(
    r"^(?P<date>\d{8})\.cu(?P<cuda>\d{3})torch(?P<torch>\d{3,4})cxx11abi(?P<abi>true|false)\.(?P<git>[0-9a-f]+)$"
)
# Astral's GPU wheel index spells the same label with dots: cu.13.0.torch.2.11 (read as cu130torch2.11).
_DOTTED_RE = re.compile(r"^cu\.(\d+)\.(\d+)\.torch\.(\d+\.\d+(?:\.\d+)?)$")
# manylinux_2_28_x86_64 and the legacy aliases (PEP 600 / 599 / 571 / 513).
_MANYLINUX_RE = re.compile(r"^manylinux_(\d+)_(\d+)_(.+)$")
_LEGACY_MANYLINUX = {"manylinux2014": (2, 17), "manylinux2010": (2, 12), "manylinux1": (2, 5)}


class WheelNameError(ValueError):
    """Not a wheel filename, or not one of a FlashAttention distribution."""


@dataclass(frozen=True)
class WheelName:
    """What a wheel's filename says. ``cuda`` is (major, minor), minor None when the name gives
    only the major ("cu12"). ``torch`` is (major, minor) — FA2 wheels must match it exactly."""

    filename: str
    dist: str  # canonical: "flash-attn", "flash-attn-3", "flash-attn-4"
    variant: Variant | None
    version: Version  # with the local label
    scheme: Scheme
    cuda: tuple[int, int | None] | None
    torch: tuple[int, int] | None
    torch_full: str | None  # "2.8.0" in the full-torch and dated schemes
    abi_label: bool | None  # what "cxx11abiTRUE/FALSE" says; None when the name has none
    git: str | None
    tags: frozenset[Tag]
    platforms: frozenset[str]
    pythons: frozenset[
        tuple[str, str]
    ]  # (interpreter, abi): ("cp312", "cp312"), ("cp39", "abi3"), ("py3", "none")
    min_glibc: (
        tuple[int, int] | None
    )  # the oldest glibc a manylinux tag accepts; None for linux_* / other OSes

    @property
    def public_version(self) -> Version:
        return Version(self.version.public)

    @property
    def cuda_text(self) -> str | None:
        if self.cuda is None:
            return None
        major, minor = self.cuda
        return str(major) if minor is None else f"{major}.{minor}"

    @property
    def torch_text(self) -> str | None:
        return None if self.torch is None else f"{self.torch[0]}.{self.torch[1]}"


def manylinux_glibc(platform: str) -> tuple[int, int] | None:
    m = _MANYLINUX_RE.match(platform)
    if m:
        return int(m.group(1)), int(m.group(2))
    for legacy, glibc in _LEGACY_MANYLINUX.items():
        if platform.startswith(legacy + "_"):
            return glibc
    return None


def platform_arch(platform: str) -> str | None:
    """The machine of a platform tag: "x86_64", "aarch64", "amd64", "arm64"; None for "any"."""
    m = _MANYLINUX_RE.match(platform)
    if m:
        return m.group(3)
    for prefix in ("linux_", *(p + "_" for p in _LEGACY_MANYLINUX), "win_"):
        if platform.startswith(prefix):
            return platform[len(prefix) :]
    if platform.startswith("macosx_"):
        return platform.rsplit("_", 1)[-1]
    return None


def parse_cuda_token(token: str) -> tuple[int, int | None]:
    """ "12" -> (12, None); "122" -> (12, 2); "130" -> (13, 0); "118" -> (11, 8)."""
    if len(token) <= 2:
        return int(token), None
    return int(token[:-1]), int(token[-1])


@lru_cache(maxsize=16384)
def parse_wheel_name(filename: str) -> WheelName:
    """Parse a FlashAttention wheel filename. Raises WheelNameError for anything else."""
    try:
        name, version, _build, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise WheelNameError(f"{filename!r} is not a valid wheel filename: {exc}") from None
    dist = canonicalize_name(name)
    variant = DIST_VARIANT.get(dist)
    if variant is None:
        raise WheelNameError(f"{filename!r} is not a FlashAttention wheel (distribution {name!r})")
    local = version.local
    cuda: tuple[int, int | None] | None = None
    torch: tuple[int, int] | None = None
    torch_full: str | None = None
    abi: bool | None = None
    git: str | None = None
    if local is None:
        scheme = "plain"
    else:
        dotted = _DOTTED_RE.match(local)
        if dotted is not None:
            local = f"cu{dotted.group(1)}{dotted.group(2)}torch{dotted.group(3)}"
        m = _LOCAL_RE.match(local)
        d = _DATED_RE.match(local) if m is None else None
        if d is not None:
            scheme = "dated"
            cuda = parse_cuda_token(d.group("cuda"))
            digits = d.group("torch")
            torch = (int(digits[0]), int(digits[1:-1]))
            torch_full = f"{digits[0]}.{int(digits[1:-1])}.{digits[-1]}"
            abi = d.group("abi") == "true"
            git = d.group("git")
        elif m is None:
            scheme = "other"
        else:
            cuda = parse_cuda_token(m.group("cuda"))
            parts = m.group("torch").split(".")
            torch = (int(parts[0]), int(parts[1]))
            if len(parts) == 3:
                torch_full = m.group("torch")
            if m.group("abi") is not None:
                abi = m.group("abi") == "true"
            git = m.group("git")
            if git is not None:
                scheme = "git"
            elif torch_full is not None:
                scheme = "full-torch"
            elif abi is None:
                scheme = "no-abi"
            elif cuda[1] is None:
                scheme = "cuda-major"
            else:
                scheme = "cuda-minor"
    platforms = frozenset(t.platform for t in tags)
    glibcs = [g for g in (manylinux_glibc(p) for p in platforms) if g is not None]
    return WheelName(
        filename=filename,
        dist=dist,
        variant=variant,
        version=version,
        scheme=scheme,
        cuda=cuda,
        torch=torch,
        torch_full=torch_full,
        abi_label=abi,
        git=git,
        tags=frozenset(tags),
        platforms=platforms,
        pythons=frozenset((t.interpreter, t.abi) for t in tags),
        min_glibc=min(glibcs) if glibcs else None,
    )
