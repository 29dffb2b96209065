"""The selector's view of an Environment (``Target``): what the wheel rules compare, precomputed once per
Environment, with ``None`` for what is unknown (a rule whose input is unknown does not reject)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.version import Version

from flashdoctor.decide.wheels.torchbuild import TorchBuild, torch_build
from flashdoctor.knowledge.versions import major_minor
from flashdoctor.model.environment import Environment
from flashdoctor.model.requirements import Required, of_dist, required_of


@dataclass(frozen=True)
class Target:
    """What the selector needs to know about an Environment, in the form it compares fastest.
    ``None`` means unknown: a rule whose input is unknown does not reject (the plan says so)."""

    os: str | None
    arch: str | None
    glibc: tuple[int, int] | None
    python: Version | None
    pairs: frozenset[tuple[str, str]] | None  # supported (interpreter, abi)
    platforms: frozenset[str] | None  # supported platform tags, "any" included
    torch_state: str  # "cuda" | "unknown" | "missing" | "cpu" | "rocm" | "xpu"
    torch_mm: tuple[int, int] | None
    torch_version: Version | None  # public
    torch_build: TorchBuild | None  # the build (release, nightly, pre-release or vendor); None: unknown
    cuda: tuple[int, int] | None
    abi: bool | None
    sms: tuple[int, ...]  # distinct compute capabilities of the visible GPUs (empty: none known)
    driver_cuda: tuple[int, int] | None
    unknowns: tuple[str, ...]  # environment facts the selection had to assume
    required: tuple[Required, ...] = ()  # what installed distributions require of FlashAttention
    musl: bool = False  # a Linux without glibc (Alpine): only musllinux wheels load there

    @property
    def platform(self) -> str | None:
        """ "linux_x86_64", "win_amd64"-like name of the OS and CPU (None: not both known)."""
        return f"{self.os}_{self.arch}" if self.os and self.arch else None

    def required_of(self, dist: str) -> tuple[Required, ...]:
        """What installed distributions require of this FlashAttention distribution."""
        return of_dist(self.required, dist)


@dataclass(frozen=True)
class TagFilter:
    """Whether a wheel filename's tags could be accepted by a Target, read off the name without parsing
    it: exactly the python and platform tests of rules.machine_codes (``python-mismatch``,
    ``platform-mismatch`` and the tag side of ``glibc-too-old``), so a name it refuses can never fit.
    Loading only the names it keeps makes a best-fit question (``check``'s verdicts) ~5x cheaper than
    parsing all ~5000 entries. Hashable: it keys the index cache."""

    pairs: frozenset[tuple[str, str]] | None
    platforms: frozenset[str] | None

    def __call__(self, filename: str) -> bool:
        parts = filename.lower().removesuffix(".whl").split("-")  # name-version[-build]-py-abi-plat
        if len(parts) < 5:
            return True  # not a wheel name: kept, for the parser to name the fault
        py, abi, plat = parts[-3:]
        if self.platforms is not None and self.platforms.isdisjoint(plat.split(".")):
            return False
        return self.pairs is None or any((i, a) in self.pairs for i in py.split(".") for a in abi.split("."))


def tag_filter(env: Environment) -> TagFilter:
    t = target_of(env)
    return TagFilter(t.pairs, t.platforms)


def linux_platforms(arch: str, glibc: tuple[int, int] | None) -> list[str]:
    """Platform tags a Linux system with this glibc accepts, newest first (PEP 600 manylinux_2_N and the
    legacy aliases of PEP 513/571/599). packaging computes these only for the running system, so they
    are spelled out here for a target that may be another machine. glibc unknown: any manylinux."""
    major, minor = glibc if glibc is not None else (2, 99)
    out: list[str] = []
    if major == 2:
        lowest = 5 if arch in ("x86_64", "i686") else 17
        for m in range(minor, lowest - 1, -1):
            out.append(f"manylinux_2_{m}_{arch}")
            if m == 17 and arch in ("x86_64", "i686", "aarch64", "armv7l", "ppc64", "ppc64le", "s390x"):
                out.append(f"manylinux2014_{arch}")
            if m == 12 and arch in ("x86_64", "i686"):
                out.append(f"manylinux2010_{arch}")
            if m == 5 and arch in ("x86_64", "i686"):
                out.append(f"manylinux1_{arch}")
    out.append(f"linux_{arch}")
    return out


def musllinux_platforms(arch: str, musl: tuple[int, int] | None) -> list[str]:
    """Platform tags a musl Linux accepts (PEP 656 musllinux_1_N), newest first; musl unknown: any. No
    linux_* tag: pip would take one, but every linux_* FlashAttention wheel is a glibc build."""
    newest = musl[1] if musl is not None and musl[0] == 1 else 9
    return [f"musllinux_1_{m}_{arch}" for m in range(newest, -1, -1)]


@lru_cache(maxsize=64)
def python_pairs(py: tuple[int, int], abi: str) -> frozenset[tuple[str, str]]:
    """The (interpreter, abi) pairs packaging.tags accepts for this CPython (its own tag rules: abi3 for
    every older minor, not for free-threaded builds; py3*-none). The platform part is checked apart."""
    interp = f"cp{py[0]}{py[1]}"
    tags = [*cpython_tags(py, abis=[abi], platforms=["x"]), *compatible_tags(py, interp, ["x"])]
    return frozenset((t.interpreter, t.abi) for t in tags)


def supported_tags(env: Environment) -> frozenset[Tag]:
    """Every tag this environment accepts (for comparisons with plain tag filtering)."""
    t = target_of(env)
    py = major_minor(env.python)
    if py is None or t.platforms is None:
        return frozenset()
    abi = env.python_abi or f"cp{py[0]}{py[1]}"
    plats = sorted(t.platforms - {"any"})
    interp = f"cp{py[0]}{py[1]}"
    return frozenset([*cpython_tags(py, abis=[abi], platforms=plats), *compatible_tags(py, interp, plats)])


@lru_cache(maxsize=1024)
def target_of(env: Environment) -> Target:
    unknowns: list[str] = []
    os_, arch = env.os, env.machine
    platforms: list[str] | None
    glibc = major_minor(env.glibc) if env.glibc else None
    if env.platform is None:
        platforms = None
        unknowns.append("platform")
    elif os_ == "linux" and arch and env.musl:
        glibc = None
        tag = re.match(r"musllinux_(\d+)_(\d+)_", env.platform)
        platforms = musllinux_platforms(arch, (int(tag[1]), int(tag[2])) if tag else None)
    elif os_ == "linux" and arch:
        if glibc is None:
            unknowns.append("glibc")
        platforms = linux_platforms(arch, glibc)
    else:
        platforms = [env.platform]
    py = major_minor(env.python) if env.python else None
    pairs: frozenset[tuple[str, str]] | None = None
    if py is None:
        unknowns.append("python")
    else:
        pairs = python_pairs(py, env.python_abi or f"cp{py[0]}{py[1]}")
    if not env.known("torch"):
        state = "unknown"
        unknowns.append("torch")
    elif env.torch is None:
        state = "missing"
    elif env.torch_hip:
        state = "rocm"
    elif env.torch_xpu:
        state = "xpu"
    elif env.known("torch_cuda") and env.torch_cuda is None:
        state = "cpu"
    else:
        state = "cuda"
    tv = env.torch_version
    if state == "cuda" and env.torch_cuda is None:
        unknowns.append("torch_cuda")
    if state == "cuda" and env.cxx11abi is None and os_ == "linux":
        unknowns.append("cxx11abi")
    sms = tuple(sorted({g.sm for g in env.gpus if g.sm is not None})) if env.known("gpus") else ()
    if not env.known("gpus"):
        unknowns.append("gpus")
    dc = major_minor(env.driver_cuda) if env.driver_cuda else None
    return Target(
        os=os_,
        arch=arch,
        glibc=glibc,
        python=None if py is None else Version(f"{py[0]}.{py[1]}"),
        pairs=pairs,
        platforms=None if platforms is None else frozenset([*platforms, "any"]),
        torch_state=state,
        torch_mm=env.torch_mm,
        torch_version=None if tv is None else Version(tv.public),
        torch_build=torch_build(env.torch) if state == "cuda" else None,
        cuda=env.torch_cuda_mm,
        abi=env.cxx11abi,
        sms=sms,
        driver_cuda=dc,
        unknowns=tuple(unknowns),
        required=required_of(env),
        musl=env.musl,
    )
