"""Which torch × CUDA × Python cells have a prebuilt wheel, per platform: the selector asked for every
cell of PyTorch's own release grid (flashdoctor/data/torch_builds.json). Pure."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from flashdoctor import knowledge
from flashdoctor.decide.wheels.index import IndexEntry, WheelIndex
from flashdoctor.decide.wheels.select import (
    build_signature,
    machine_codes,
    policy_codes,
    preference_key,
    target_of,
)
from flashdoctor.knowledge.torch_builds import across_minors, torch_pip_cxx11abi
from flashdoctor.knowledge.variants import DEFAULT_VARIANT, Variant
from flashdoctor.model.environment import Environment

PLATFORMS = ("linux_x86_64", "linux_aarch64", "win_amd64")
# A current Linux: coverage asks "is there a wheel for this torch", not "for this old OS".
COVERAGE_GLIBC = "2.39"


@dataclass(frozen=True)
class Cell:
    platform: str
    torch: str  # "2.8"
    cuda: str  # torch's CUDA, "12.8"
    python: str  # "3.12"
    official: tuple[str, ...]  # filenames of fitting non-community wheels, best first
    community: tuple[str, ...]  # sources of fitting community wheels

    @property
    def has_official(self) -> bool:
        return bool(self.official)

    @property
    def has_any(self) -> bool:
        return bool(self.official or self.community)

    def to_json(self) -> dict[str, Any]:
        return {
            "torch": self.torch,
            "cuda": self.cuda,
            "python": self.python,
            "official": self.has_official,
            "any": self.has_any,
            "best_official": self.official[0] if self.official else None,
            "community_sources": list(self.community),
        }


def cell_environment(platform: str, torch: str, cuda: str, python: str) -> Environment:
    """A synthetic machine for one cell: PyTorch's own wheel of that torch and CUDA, a current glibc,
    GPUs and driver unknown (they do not decide whether a wheel exists). The cell is a torch minor: its
    patch is left unknown, so that no patch of it rules a wheel out (decide.wheels.torchbuild)."""
    arch = platform.split("_", 1)[1] if platform.startswith("linux") else None
    mm = tuple(int(x) for x in torch.split("."))
    abi = torch_pip_cxx11abi((mm[0], mm[1]), cuda, arch) if platform.startswith("linux") else None
    return Environment(
        python=python,
        python_abi="cp" + python.replace(".", ""),
        platform=platform,
        glibc=COVERAGE_GLIBC if platform.startswith("linux") else None,
        torch=f"{torch}+cu{cuda.replace('.', '')}",
        torch_cuda=cuda,
        cxx11abi=abi,
        unknown=frozenset({"gpus", "driver", "driver_cuda"}),
    )


def grid() -> list[tuple[str, str, str]]:
    out = []
    for rel in knowledge.load_data("torch_builds")["releases"]:
        for cuda in rel["cuda"]:
            for py in rel["python"]:
                out.append((rel["torch"], cuda, py))
    return out


def coverage(index: WheelIndex, variant: Variant = DEFAULT_VARIANT) -> dict[str, list[Cell]]:
    """Per platform, every cell of the grid with the wheels that would be chosen there."""
    # Entries are bucketed by the torch minor in their name (each cell evaluates only the wheels that
    # could fit it, plus those with no torch in the name), and within a bucket by build signature.
    buckets: dict[tuple[int, int] | None, dict[tuple[object, ...], list[IndexEntry]]] = defaultdict(dict)
    for e in index.for_variant(variant):
        buckets[e.name.torch].setdefault(build_signature(e), []).append(e)
    out: dict[str, list[Cell]] = {}
    for platform in PLATFORMS:
        cells = []
        for torch, cuda, py in grid():
            t = target_of(cell_environment(platform, torch, cuda, py))
            mm = (int(torch.split(".")[0]), int(torch.split(".")[1]))
            fits: list[IndexEntry] = []
            # an earlier minor whose wheels load on this one (measured: torchbuild.fit_class) too
            earlier = [b for b, on in across_minors().loads_on.items() if mm in on]
            for groups in (
                buckets.get(mm, {}),
                buckets.get(None, {}),
                *(buckets.get(b, {}) for b in earlier),
            ):
                for group in groups.values():
                    if machine_codes(group[0], t):
                        continue
                    fits.extend(e for e in group if not policy_codes(e, None, True, t))
            fits.sort(key=lambda e: preference_key(e, t))
            official = [e.filename for e in fits if not e.community]
            community = sorted({e.source for e in fits if e.community})
            cells.append(Cell(platform, torch, cuda, py, tuple(dict.fromkeys(official)), tuple(community)))
        out[platform] = cells
    return out
