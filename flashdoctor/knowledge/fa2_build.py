"""Which FA2 build arch serves a GPU, and what compiling it needs (flashdoctor/data/build.json): one rule
for the build plan and its preflight, check's toolchain findings, explain's FLASH_ATTN_CUDA_ARCHS advice
and the index builder's archs of a wheel built with the default list."""

from __future__ import annotations

from dataclasses import dataclass

from flashdoctor.knowledge.archs import runs_on
from flashdoctor.knowledge.data import load_data
from flashdoctor.knowledge.versions import major_minor


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
        return Fa2Arch(a, fa2_arch_nvcc(a), None, False)
    via = data["archs_via_torch"].get(str(sm))
    if via is not None:
        return Fa2Arch(sm, fa2_arch_nvcc(sm), via["torch"], True)
    return None


def fa2_arch_nvcc(arch: int) -> str | None:
    """The oldest nvcc that compiles FA2 build arch ``arch`` (one of setup.py's switch, or one torch's
    cpp_extension compiles); None when every nvcc FA2 accepts does. With an older one setup.py drops a
    switch arch silently, and torch refuses an arch name it does not know."""
    data = load_data("build")["fa2"]
    via = data["archs_via_torch"].get(str(arch))
    return str(via["nvcc"]) if via is not None else data["archs_nvcc_min"].get(str(arch))


def fa2_default_archs(nvcc: tuple[int, int]) -> tuple[int, ...]:
    """The archs setup.py's default list (FLASH_ATTN_CUDA_ARCHS unset, from 2.7.3) compiles with this nvcc."""
    return tuple(
        a
        for a in load_data("build")["fa2"]["archs"]
        if (need := major_minor(fa2_arch_nvcc(a))) is None or nvcc >= need
    )
