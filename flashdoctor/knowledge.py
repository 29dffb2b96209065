"""Knowledge as data: variant requirements, the driver table, host compilers.

The JSON files under flashdoctor/data are the one reviewed place for these facts (each names its
source). This module only loads them and answers typed questions; it never probes the system.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from flashdoctor.environment import Variant, major_minor, parse_version


@cache
def load_data(name: str) -> Any:
    """Load flashdoctor/data/<name>.json (cached)."""
    text = resources.files("flashdoctor").joinpath("data", f"{name}.json").read_text(encoding="utf-8")
    return json.loads(text)


@dataclass(frozen=True)
class VariantInfo:
    name: Variant
    title: str
    dist: str
    import_name: str
    min_capability: tuple[int, int]
    supported: tuple[tuple[int, int], ...]
    experimental: tuple[tuple[int, int], ...]
    experimental_note: str | None
    build_archs: tuple[str, ...]
    nvcc_min_rules: tuple[tuple[SpecifierSet, str, str], ...]
    nvcc_recommended: str | None
    python_min: tuple[int, int]
    dtypes: tuple[str, ...]
    max_head_dim: int
    rocm: bool
    raw: dict[str, Any]

    def nvcc_min(self, version: str | None = None) -> str | None:
        """Minimum nvcc for a given variant version (None = the newest rule)."""
        if not self.nvcc_min_rules:
            return None
        v = parse_version(version) if version else None
        if v is None:
            return self.nvcc_min_rules[-1][1]
        for spec, nvcc, _src in self.nvcc_min_rules:
            if spec.contains(v, prereleases=True):
                return nvcc
        return self.nvcc_min_rules[-1][1]

    @property
    def needs_nvcc(self) -> bool:
        return bool(self.nvcc_min_rules)


def _cc(text: str) -> tuple[int, int]:
    mm = major_minor(text)
    assert mm is not None, text
    return mm


@cache
def variant_info(name: Variant) -> VariantInfo:
    raw = load_data("variants")["variants"][name]
    return VariantInfo(
        name=name,
        title=raw["title"],
        dist=raw["dist"],
        import_name=raw["import"],
        min_capability=_cc(raw["min_capability"]),
        supported=tuple(_cc(c) for c in raw["supported_capabilities"]),
        experimental=tuple(_cc(c) for c in raw["experimental_capabilities"]),
        experimental_note=raw.get("experimental_note"),
        build_archs=tuple(raw["build_archs"]),
        nvcc_min_rules=tuple((SpecifierSet(r["versions"]), r["nvcc"], r["source"]) for r in raw["nvcc_min"]),
        nvcc_recommended=raw.get("nvcc_recommended"),
        python_min=_cc(raw["python_min"]),
        dtypes=tuple(raw["dtypes"]),
        max_head_dim=int(raw["max_head_dim"]),
        rocm=bool(raw["rocm"]),
        raw=raw,
    )


def driver_max_cuda(driver: str) -> str | None:
    """Newest CUDA toolkit release the given Linux driver supports (from the release-notes table)."""
    dv = parse_version(driver)
    if dv is None:
        return None
    best: str | None = None
    for row in load_data("cuda_drivers")["toolkits"]:
        if dv >= Version(row["linux"]):
            best = row["cuda"]
    return best


def driver_min_for_cuda(cuda: str) -> str | None:
    """Driver needed to run a CUDA toolkit release natively (not relying on minor-version compatibility)."""
    mm = major_minor(cuda)
    if mm is None:
        return None
    exact = None
    for row in load_data("cuda_drivers")["toolkits"]:
        if major_minor(row["cuda"]) == mm:
            exact = row["linux"]
    if exact:
        return str(exact)
    # A release missing from the table: use the nearest older row of the same major.
    older = [
        r
        for r in load_data("cuda_drivers")["toolkits"]
        if (rm := major_minor(r["cuda"])) and rm[0] == mm[0] and rm <= mm
    ]
    return str(older[-1]["linux"]) if older else None


def driver_min_for_major(major: int) -> str | None:
    for row in load_data("cuda_drivers")["minor_version_compatibility"]:
        if row["major"] == major:
            return str(row["linux"])
    return None


def gcc_max_for_nvcc(nvcc: str) -> int | None:
    mm = major_minor(nvcc)
    if mm is None:
        return None
    best: int | None = None
    for row in load_data("host_compilers")["gcc_max"]:
        rm = major_minor(row["nvcc"])
        if rm is not None and mm >= rm:
            best = int(row["gcc_max"])
    return best


def gcc_min() -> int:
    return int(load_data("host_compilers")["gcc_min_for_torch_extensions"])
