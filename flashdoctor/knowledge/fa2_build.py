"""Which FA2 build arch serves a GPU, and what compiling it needs (flashdoctor/data/build.json): one rule
for the build plan, check's toolchain findings and explain's FLASH_ATTN_CUDA_ARCHS advice."""

from __future__ import annotations

from dataclasses import dataclass

from flashdoctor.knowledge.archs import runs_on
from flashdoctor.knowledge.data import load_data


@dataclass(frozen=True)
class Fa2Arch:
    arch: int  # the arch to compile (80 for an sm_86 GPU: SASS runs on the same major, minor >= its own)
    nvcc: str | None  # the nvcc that compiles it (setup.py drops it silently with an older one)
    torch: str | None  # the torch that knows its name (an arch torch's cpp_extension compiles)
    via_torch: bool  # setup.py has no switch for it: torch's cpp_extension compiles it


def fa2_build_arch(sm: int) -> Fa2Arch | None:
    """The FA2 arch whose code runs natively on compute capability ``sm``; None where none does
    (before Ampere; FA2 emits SASS and no PTX, so there is nothing to JIT)."""
    data = load_data("build")["fa2"]
    cands = [a for a in data["archs"] if runs_on([f"sm_{a}"], sm) == "native"]
    if cands:
        a = max(cands)
        return Fa2Arch(a, data["archs_nvcc_min"].get(str(a)), None, False)
    via = data["archs_via_torch"].get(str(sm))
    if via is not None:
        return Fa2Arch(sm, via["nvcc"], via["torch"], True)
    return None
