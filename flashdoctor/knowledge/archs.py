"""GPU architecture arithmetic: which compiled code runs on which GPU. Pure functions.

CUDA rules (CUDA C Programming Guide, "Binary Compatibility" and "PTX Compatibility"):
- SASS (cubin) for sm_XY runs on GPUs of the same major X and minor >= Y.
- Architecture-specific SASS (sm_90a, sm_100a) runs only on exactly that compute capability;
  family-specific SASS (sm_100f) runs on that major's family members with minor >= Y.
- PTX for compute_XY is JIT-compiled by the driver for any GPU with capability >= XY
  (not for the 'a' variants), at first use, which is slow and needs a driver new enough for that PTX.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Runs = Literal["native", "ptx-jit", "no"]

_ARCH_RE = re.compile(r"^(sm|compute)_(\d+)([af]?)$")


@dataclass(frozen=True)
class Arch:
    kind: Literal["sm", "compute"]
    number: int  # 90 for sm_90
    suffix: str  # "", "a" or "f"

    @property
    def major(self) -> int:
        return self.number // 10

    @property
    def minor(self) -> int:
        return self.number % 10

    def __str__(self) -> str:
        return f"{self.kind}_{self.number}{self.suffix}"


def parse_arch(text: str) -> Arch | None:
    m = _ARCH_RE.match(text.strip().lower())
    if not m:
        return None
    kind: Literal["sm", "compute"] = "sm" if m.group(1) == "sm" else "compute"
    return Arch(kind=kind, number=int(m.group(2)), suffix=m.group(3))


def sass_runs_on(arch: Arch, gpu_sm: int) -> bool:
    gmaj, gmin = divmod(gpu_sm, 10)
    if arch.suffix == "a":
        return arch.number == gpu_sm
    return arch.major == gmaj and arch.minor <= gmin


def ptx_runs_on(arch: Arch, gpu_sm: int) -> bool:
    if arch.suffix == "a":
        return arch.number == gpu_sm
    if arch.suffix == "f":
        return arch.major == gpu_sm // 10 and arch.number <= gpu_sm
    return arch.number <= gpu_sm


def runs_on(archs: Iterable[str], gpu_sm: int) -> Runs:
    """Whether a binary holding ``archs`` has code for a GPU of compute capability ``gpu_sm``."""
    parsed = [a for a in (parse_arch(s) for s in archs) if a is not None]
    if any(a.kind == "sm" and sass_runs_on(a, gpu_sm) for a in parsed):
        return "native"
    if any(a.kind == "compute" and ptx_runs_on(a, gpu_sm) for a in parsed):
        return "ptx-jit"
    return "no"


def sort_archs(archs: Iterable[str]) -> list[str]:
    def key(s: str) -> tuple[int, int, str]:
        a = parse_arch(s)
        if a is None:
            return (10**6, 0, s)
        return (a.number, 0 if a.kind == "sm" else 1, a.suffix)

    return sorted(set(archs), key=key)
