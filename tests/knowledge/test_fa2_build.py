"""knowledge.fa2_build: the one rule for which FA2 arch serves a GPU (build plan, check, explain)."""

from __future__ import annotations

import pytest

from flashdoctor.knowledge.fa2_build import fa2_build_arch


@pytest.mark.parametrize(
    ("sm", "arch", "nvcc", "via_torch"),
    [
        (80, 80, None, False),
        (86, 80, None, False),
        (89, 80, None, False),
        (90, 90, "11.8", False),
        (103, 100, "12.8", False),
        (110, 110, "13.0", True),  # Jetson Thor: no setup.py switch, torch's cpp_extension compiles it
        (121, 120, "12.8", False),
    ],
)
def test_the_arch_that_serves_a_gpu_and_the_nvcc_it_needs(
    sm: int, arch: int, nvcc: str, via_torch: bool
) -> None:
    found = fa2_build_arch(sm)
    assert found is not None
    assert (found.arch, found.nvcc, found.via_torch) == (arch, nvcc, via_torch)


@pytest.mark.parametrize("sm", [70, 75])
def test_no_fa2_code_runs_before_ampere(sm: int) -> None:
    assert fa2_build_arch(sm) is None
