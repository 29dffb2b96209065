"""Knowledge as data: what flashdoctor knows about FlashAttention, CUDA, drivers and wheels.

The JSON files under flashdoctor/data are the one reviewed place for these facts (each names its
source). This package only loads them and answers typed questions; it never probes the system, and
it imports nothing of flashdoctor's other layers (the layer contract in pyproject.toml checks it).
"""

from __future__ import annotations

from flashdoctor.knowledge.data import load_data
from flashdoctor.knowledge.drivers import (
    driver_max_cuda,
    driver_min_for_cuda,
    driver_min_for_major,
    gcc_max_for_nvcc,
    gcc_min,
)
from flashdoctor.knowledge.variants import VariantInfo, variant_info

__all__ = [
    "VariantInfo",
    "driver_max_cuda",
    "driver_min_for_cuda",
    "driver_min_for_major",
    "gcc_max_for_nvcc",
    "gcc_min",
    "load_data",
    "variant_info",
]
