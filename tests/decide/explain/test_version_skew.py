"""A bare build failure of a flash-attn release far older than the log's torch (basis "versions"):
the release table comes from the wheel index (decide.wheels.index.release_torch); the rule is fed values."""

from __future__ import annotations

import json

import pytest
from packaging.version import Version

from flashdoctor.decide.explain import explain_bytes
from flashdoctor.decide.explain.engine import version_skew
from flashdoctor.decide.wheels.index import release_torch
from tests.support.paths import ROOT

RELEASES = {
    Version("2.5.8"): (2, 3),
    Version("2.6.3"): (2, 4),
    Version("2.7.4"): (2, 6),
    Version("2.8.3"): (2, 8),
}
BARE_BUILD = (
    "Collecting flash-attn==2.5.8\n"
    "  torch.__version__  = 2.6.0+cu124\n"
    "  RuntimeError: Error compiling objects for extension\n"
    "  ERROR: Failed building wheel for flash-attn\n"
)


@pytest.mark.parametrize(
    ("fa", "torch", "newest"),
    [
        ("2.5.8", "2.6.0+cu124", "2.8.3"),  # three minors past 2.3: 2.7.4 and 2.8.3 made wheels for 2.6
        ("2.6.3", "2.8.0", "2.8.3"),
        ("2.5.8.post1", "2.5.1", "2.8.3"),  # a .postN rebuild is its release
    ],
)
def test_a_release_far_older_than_the_torch_is_named(fa: str, torch: str, newest: str) -> None:
    skew = version_skew(fa, torch, RELEASES)
    assert skew is not None
    evidence, message, fix = skew
    assert f"flash-attn {fa} and torch {torch}" in evidence and "far older" in message
    assert f"flash-attn=={newest}" in fix


@pytest.mark.parametrize(
    ("fa", "torch"),
    [
        ("2.7.4", "2.7.1"),  # one minor past its newest: near enough to build
        ("2.8.3", "2.10.0"),  # no newer release made wheels for 2.10: nothing better to name
        ("2.4.2", "2.6.0"),  # a release the table does not know
        ("2.5.8", "3.0.0"),  # another torch major
        (None, "2.6.0"),
        ("2.5.8", None),
        ("not-a-version", "2.6.0"),
    ],
)
def test_no_skew_without_a_far_older_release_and_a_newer_one(fa: str | None, torch: str | None) -> None:
    assert version_skew(fa, torch, RELEASES) is None


def test_a_bare_build_failure_of_an_old_release_ranks_the_skew_first() -> None:
    expl = explain_bytes(BARE_BUILD.encode(), None, releases=lambda: RELEASES)
    first, second = expl.diagnoses[:2]
    assert (first.code, first.basis, first.line) == ("source-toolchain-mismatch", "versions", None)
    assert "wheel index" in (first.source or "")
    assert second.code == "build-failed" and second.consequence_of == "source-toolchain-mismatch"
    # Without the release table (a caller that has no index) the log shows only the failed build.
    assert [d.code for d in explain_bytes(BARE_BUILD.encode(), None).diagnoses] == ["build-failed"]


def test_a_cause_the_log_shows_wins_over_the_versions() -> None:
    log = BARE_BUILD.replace("  RuntimeError", "  [12/73] nvcc -c a.cu\n  Killed\n  RuntimeError")
    codes = [d.code for d in explain_bytes(log.encode(), None, releases=lambda: RELEASES).diagnoses]
    assert codes[0] == "build-oom" and "source-toolchain-mismatch" not in codes


def test_two_releases_in_one_log_name_none() -> None:
    log = "Attempting uninstall: flash-attn==2.8.3\n" + BARE_BUILD
    assert [d.code for d in explain_bytes(log.encode(), None, releases=lambda: RELEASES).diagnoses] == [
        "build-failed"
    ]


def test_the_release_table_counts_only_the_release_s_own_publishers() -> None:
    doc = {
        "sources": {"official": {"community": False}, "community:someone": {"community": True}, "odd": "junk"},
        "wheels": [
            {"source": "official", "filename": "flash_attn-2.5.8+cu122torch2.3cxx11abiFALSE-cp310-cp310-linux_x86_64.whl"},
            {"source": "official", "filename": "flash_attn-2.5.8+cu122torch2.2cxx11abiFALSE-cp310-cp310-linux_x86_64.whl"},
            # a community rebuild of an old release for a newer torch does not widen its range
            {"source": "community:someone", "filename": "flash_attn-2.5.8+cu128torch2.8-cp310-cp310-linux_x86_64.whl"},
            {"source": "official", "filename": "flash_attn-2.7.4.post1+cu12torch2.6cxx11abiTRUE-cp311-cp311-linux_x86_64.whl"},
            # FA3, junk and entries of unknown sources are skipped (a user's index is read unvalidated)
            {"source": "official", "filename": "flash_attn_3-3.0.0b1+20250911.cu128torch280cxx11abitrue.dfb664-cp39-abi3-linux_x86_64.whl"},
            {"source": "official", "filename": "not a wheel"},
            {"source": "odd", "filename": "flash_attn-2.6.3+cu123torch2.4cxx11abiFALSE-cp310-cp310-linux_x86_64.whl"},
            "junk",
            {"source": "official"},
        ],
    }  # fmt: skip
    assert release_torch(doc) == {Version("2.5.8"): (2, 3), Version("2.7.4"): (2, 6)}
    assert release_torch({"wheels": "x"}) == {} and release_torch([]) == {}


def test_the_bundled_index_gives_the_known_ranges() -> None:
    doc = json.loads((ROOT / "wheels_index.json").read_text(encoding="utf-8"))
    table = release_torch(doc)
    # v2.5.8's release page has wheels for torch 2.0-2.3, v2.6.3's for 2.0-2.4, v2.7.4.post1's up to 2.7
    assert table[Version("2.5.8")] == (2, 3) and table[Version("2.6.3")] == (2, 4)
    assert table[Version("2.7.4")] == (2, 7)
    assert max(table) >= Version("2.8.3")
