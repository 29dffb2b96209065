from __future__ import annotations

import pytest

from flashdoctor.knowledge.archs import runs_on, sort_archs


@pytest.mark.parametrize(
    ("archs", "gpu", "expected"),
    [
        (["sm_80"], 80, "native"),
        (["sm_80"], 86, "native"),  # same major, higher minor
        (["sm_80"], 89, "native"),
        (["sm_80"], 90, "no"),  # other major: needs sm_90 or PTX
        (["sm_80", "compute_80"], 90, "ptx-jit"),
        (["sm_90a"], 90, "native"),
        (["sm_90a"], 100, "no"),
        (["compute_90a"], 100, "no"),  # arch-specific PTX does not move forward
        (["sm_86"], 80, "no"),  # lower minor cannot run higher-minor SASS
        (["sm_100"], 120, "no"),
        (["sm_120"], 121, "native"),
        (["compute_100f"], 103, "ptx-jit"),
        (["compute_100f"], 120, "no"),
        ([], 90, "no"),
    ],
)
def test_runs_on(archs, gpu, expected):  # type: ignore[no-untyped-def]
    assert runs_on(archs, gpu) == expected


def test_sort():
    assert sort_archs(["compute_90", "sm_90", "sm_80", "sm_90a", "junk"]) == [
        "sm_80",
        "sm_90",
        "sm_90a",
        "compute_90",
        "junk",
    ]
