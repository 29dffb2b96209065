"""The NVIDIA driver table and host-compiler limits (flashdoctor/data/cuda_drivers.json,
host_compilers.json)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from packaging.version import Version

from flashdoctor.knowledge.data import load_data
from flashdoctor.knowledge.versions import major_minor, parse_version


def _last_reached(
    rows: Iterable[Mapping[str, Any]], threshold: Callable[[Mapping[str, Any]], Any], value: Any
) -> Mapping[str, Any] | None:
    """The last row of an ascending table whose ``threshold`` ``value`` reaches (None: none, or no value)."""
    best = None
    for row in rows:
        t = threshold(row)
        if value is not None and t is not None and value >= t:
            best = row
    return best


def driver_max_cuda(driver: str) -> str | None:
    """Newest CUDA toolkit release the given Linux driver supports (from the release-notes table)."""
    row = _last_reached(
        load_data("cuda_drivers")["toolkits"], lambda r: Version(r["linux"]), parse_version(driver)
    )
    return None if row is None else str(row["cuda"])


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
    row = _last_reached(
        load_data("host_compilers")["gcc_max"], lambda r: major_minor(r["nvcc"]), major_minor(nvcc)
    )
    return None if row is None else int(row["gcc_max"])


def gcc_min() -> int:
    return int(load_data("host_compilers")["gcc_min_for_torch_extensions"])
