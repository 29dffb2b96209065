"""The NVIDIA driver table and host-compiler limits (flashdoctor/data/cuda_drivers.json,
host_compilers.json)."""

from __future__ import annotations

from packaging.version import Version

from flashdoctor.knowledge.data import load_data
from flashdoctor.knowledge.versions import major_minor, parse_version


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
