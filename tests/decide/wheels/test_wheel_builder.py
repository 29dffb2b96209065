"""scripts/update_wheels_index.py --from-listings, on small listing files whose rows are copied verbatim
from the wheel dataset (tests/data/wheel_listings), and the rules that derive what names do not say."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flashdoctor.decide.wheels import builder
from flashdoctor.decide.wheels.digests import DigestConflict
from flashdoctor.decide.wheels.index import index_from_document
from tests.support.paths import DATA, ROOT, SCRIPTS

LISTINGS = DATA / "wheel_listings"
SCRIPT = SCRIPTS / "update_wheels_index.py"


@pytest.fixture(scope="module")
def built() -> dict[str, Any]:
    rows, inputs = builder.rows_from_listings(LISTINGS)
    return builder.assemble(rows, "listings", inputs)


def entries(doc: dict[str, Any], filename: str) -> list[dict[str, Any]]:
    return [w for w in doc["wheels"] if w["filename"] == filename]


def one(doc: dict[str, Any], filename: str) -> dict[str, Any]:
    found = entries(doc, filename)
    assert len(found) == 1, found
    return found[0]


def derived(e: dict[str, Any]) -> dict[str, Any]:
    keys = ("cuda", "abi", "glibc", "archs", "inferred", "torch", "confidence", "alt_tags")
    return {k: e[k] for k in keys if k in e}


A4 = ["sm_80", "sm_90", "sm_100", "sm_120"]
A2 = ["sm_80", "sm_90"]
# filename -> what the index must say about it (worked out from the rows and derive.py's rules)
EXPECTED = {
    # matrix rows: runner, CUDA and torch index are listed, nothing inferred
    "flash_attn-2.5.0+cu118torch1.12cxx11abiFALSE-cp37-cp37m-linux_x86_64.whl":
        {"cuda": "11.8.0", "abi": False, "glibc": "2.31", "archs": A2},
    "flash_attn-2.6.3+cu123torch2.4cxx11abiFALSE-cp310-cp310-linux_x86_64.whl":
        {"cuda": "12.3.2", "abi": False, "glibc": "2.31", "archs": A2},
    # torch 2.6 from the cu124 index: an old-ABI torch, so the FALSE label holds; CUDA 12.4: no Blackwell
    "flash_attn-2.7.4.post1+cu12torch2.6cxx11abiFALSE-cp312-cp312-linux_x86_64.whl":
        {"cuda": "12.4.1", "abi": False, "glibc": "2.31", "archs": A2},
    # added to v2.7.4.post1 later: CUDA unknown (only what every build has), newer runner assumed
    "flash_attn-2.7.4.post1+cu12torch2.7cxx11abiTRUE-cp311-cp311-linux_x86_64.whl":
        {"abi": True, "glibc": "2.35", "archs": A2, "inferred": ["glibc", "archs"]},
    # aarch64 addition on v2.8.1: the 2.8.x CUDA 12.9 assumed, so Blackwell code too (both inferred)
    "flash_attn-2.8.1+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_aarch64.whl":
        {"cuda": "12.9", "abi": True, "glibc": "2.35", "archs": A4, "inferred": ["cuda", "glibc", "archs"]},
    "flash_attn-2.8.3+cu13torch2.10cxx11abiTRUE-cp312-cp312-linux_x86_64.whl":
        {"cuda": "13.0", "abi": True, "glibc": "2.35", "archs": A4, "inferred": ["cuda", "glibc", "archs"]},
    # FALSE label, built against torch 2.8 (cu129 index): a CXX11-ABI build (dataset README quirk 4)
    "flash_attn-2.8.3.post1+cu12torch2.8cxx11abiFALSE-cp312-cp312-linux_x86_64.whl":
        {"cuda": "12.9.1", "abi": True, "glibc": "2.35", "archs": A4, "inferred": ["abi"]},
    "flash_attn-2.8.3.post1+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl":
        {"cuda": "12.9.1", "abi": True, "glibc": "2.35", "archs": A4},
    # mjun0812: no ABI in the name (the dataset's inference is kept), default arch list assumed
    "flash_attn-2.8.3+cu124torch2.5-cp310-cp310-linux_x86_64.whl":
        {"cuda": "12.4", "abi": False, "archs": A2, "inferred": ["abi", "archs"], "alt_tags": ["v0.4.11"]},
    "flash_attn-2.8.3+cu130torch2.11-cp312-cp312-linux_x86_64.whl":
        {"cuda": "13.0", "abi": True, "archs": A4, "inferred": ["abi", "archs"]},
    "flash_attn_3-3.0.0+cu128torch2.10gite2743ab-cp39-abi3-manylinux_2_24_aarch64.manylinux_2_28_aarch64.whl":
        {"cuda": "12.8", "abi": True, "archs": ["sm_90a"], "inferred": ["abi", "archs"]},
    # Windows: no C++ ABI question
    "flash_attn-2.8.3+cu128torch2.8-cp312-cp312-win_amd64.whl":
        {"cuda": "12.8", "archs": A4, "inferred": ["archs"]},
    "flash_attn-2.8.3+cu128torch2.8.0cxx11abiFALSE-cp312-cp312-win_amd64.whl":
        {"cuda": "12.8", "archs": A4, "inferred": ["archs"]},
    # kingbri1 on Linux: the FALSE label is hard-coded; torch 2.7.0's pip wheels are CXX11-ABI builds
    "flash_attn-2.7.4.post1+cu128torch2.7.0cxx11abiFALSE-cp310-cp310-linux_x86_64.whl":
        {"cuda": "12.8", "abi": True, "archs": A4, "inferred": ["abi", "archs"]},
    # lesj0610: an explicit TRUE label, built with CUDA 12.8 (issue #2299)
    "flash_attn-2.8.3+cu12torch2.10cxx11abiTRUE-cp312-cp312-linux_x86_64.whl":
        {"cuda": "12.8", "abi": True, "archs": A4, "inferred": ["archs"]},
}  # fmt: skip


@pytest.mark.parametrize("filename", list(EXPECTED))
def test_derived_fields(built: dict[str, Any], filename: str) -> None:
    assert derived(one(built, filename)) == EXPECTED[filename]


def test_pytorch_index_rows(built: dict[str, Any]) -> None:
    fa3 = entries(built, "flash_attn_3-3.0.0-cp39-abi3-manylinux_2_28_x86_64.whl")
    assert len(fa3) == 1
    assert (
        fa3[0]["url"]
        == "https://download.pytorch.org/whl/cu130/flash_attn_3-3.0.0-cp39-abi3-manylinux_2_28_x86_64.whl"
    )
    assert derived(fa3[0]) == {
        "cuda": "13.0",
        "archs": ["sm_90a"],
        "inferred": ["archs"],
        "torch": ">=2.9",
        "confidence": "high",
    }


def test_claims_of_a_release_whose_ci_could_not_run_are_dropped(built: dict[str, Any]) -> None:
    # v2.8.0 (tagged 2025-06-14) still built on ubuntu-20.04 runners, retired on 2025-04-15: its
    # matrix-derived wheels were very probably never published (.post1/.post2 followed within hours)
    assert entries(built, "flash_attn-2.8.0+cu12torch2.4cxx11abiFALSE-cp310-cp310-linux_x86_64.whl") == []
    assert built["dropped"] == {"v2.8.0": 1}


def test_build_torch_claims_and_superseded_releases_are_recorded(built: dict[str, Any]) -> None:
    e = one(built, "flash_attn-2.6.3+cu123torch2.4cxx11abiFALSE-cp310-cp310-linux_x86_64.whl")
    assert (e["torch_build"], e["claim"]) == ("2.4.0", True)  # matrix-derived: a claim
    seen = one(built, "flash_attn-2.8.3.post1+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl")
    assert seen["torch_build"] == "2.8.0" and "claim" not in seen  # seen listed: a published file
    win = one(built, "flash_attn-2.8.3+cu128torch2.8.0cxx11abiFALSE-cp312-cp312-win_amd64.whl")
    assert win["torch_build"] == "2.8.0"  # a full-torch name spells its build torch out


def test_a_superseded_release_is_marked_on_its_claims() -> None:
    row = dict(json.loads((LISTINGS / "wheels_official.json").read_text())[0])
    row.update(release_tag="v2.7.4", release_superseded_within_24h_by="v2.7.4.post1")
    entry = builder.entry_from_row(row)
    assert entry is not None and entry["superseded_by"] == "v2.7.4.post1" and entry["claim"] is True


def test_urls_are_left_to_the_source_template(built: dict[str, Any]) -> None:
    index = index_from_document(built)
    by_url = {e.url for e in index.entries}
    for path in ("wheels_official.json", "wheels_community.json", "wheels_pytorch_index.json"):
        for row in json.loads((LISTINGS / path).read_text()):
            if row.get("release_tag") != "v2.8.0":  # dropped: see above
                assert row["url"] in by_url  # every listed URL comes back out of the index
    kept = [w for w in built["wheels"] if "url" in w]
    assert {w["source"] for w in kept} == {"pytorch-index"}  # the others are rebuilt from tag + template


def test_one_file_on_two_release_tags_is_two_entries(built: dict[str, Any]) -> None:
    both = entries(built, "flash_attn-2.8.3+cu13torch2.9cxx11abiTRUE-cp312-cp312-linux_x86_64.whl")
    assert sorted(w["tag"] for w in both) == ["v2.8.3", "v2.8.3.post1"]


def test_dump_is_one_wheel_per_line_and_round_trips(built: dict[str, Any]) -> None:
    text = builder.dump_index(built)
    assert json.loads(text) == built
    wheel_lines = [line for line in text.splitlines() if line.startswith('{"filename"')]
    assert len(wheel_lines) == len(built["wheels"])


def test_unknown_source_is_refused() -> None:
    row = dict(json.loads((LISTINGS / "wheels_official.json").read_text())[0], source="community:stranger")
    with pytest.raises(builder.ListingError, match="unknown source 'community:stranger'"):
        builder.assemble([row], "listings", [])


def test_rows_that_are_not_flashattention_wheels_are_skipped() -> None:
    row = dict(
        json.loads((LISTINGS / "wheels_official.json").read_text())[0], filename="flash_attn-2.8.3.tar.gz"
    )
    assert builder.entry_from_row(row) is None


# -- the script, as a real process ---------------------------------------------------------------------
def run_script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    child = dict(os.environ if env is None else env)
    child["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=child,
        timeout=120,
        check=False,
    )


@pytest.mark.system
def test_script_builds_from_listings(tmp_path: Path, built: dict[str, Any]) -> None:
    out = tmp_path / "wheels_index.json"
    r = run_script(
        "--from-listings", str(LISTINGS), "--no-pypi", "--supplement", "none", "--digests", "none",
        "--assets", "none", "--output", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"wrote {out} (20 wheels" in r.stdout
    assert "dropped 1 claimed wheels of v2.8.0: never published" in r.stdout
    doc = json.loads(out.read_text())
    assert doc["wheels"] == built["wheels"]
    assert [i["name"] for i in doc["inputs"]] == list(builder.LISTING_FILES)


@pytest.mark.system
@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "is not a directory"),
        ("empty", "holds none of wheels_official.json"),
        ("badjson", "wheels_official.json is not valid JSON"),
        ("norow", "wheels_official.json: row 0 lacks filename"),
    ],
)
def test_script_refuses_bad_listings(tmp_path: Path, setup: str, message: str) -> None:
    d = tmp_path / "listings"
    if setup != "missing":
        d.mkdir()
    if setup == "badjson":
        (d / "wheels_official.json").write_text("[{", encoding="utf-8")
    if setup == "norow":
        (d / "wheels_official.json").write_text('[{"source": "official", "evidence": "x"}]', encoding="utf-8")
    out = tmp_path / "out.json"
    r = run_script("--from-listings", str(d), "--no-pypi", "--output", str(out))
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists()


def _row(
    tag: str, filename: str, kind: str = "derived_from_matrix", date: str = "2025-01-02T00:00:00Z"
) -> dict[str, Any]:
    return {
        "source": "official",
        "filename": filename,
        "release_tag": tag,
        "evidence": f"derived_from_matrix:Dao-AILab/flash-attention@{tag}:.github/workflows/publish.yml",
        "evidence_kind": kind,
        "tag_date": date,
    }


def test_a_release_asset_listing_marks_listed_claims_seen_and_drops_the_rest() -> None:
    listed = "flash_attn-2.7.0.post2+cu12torch2.4cxx11abiFALSE-cp310-cp310-linux_x86_64.whl"
    absent = "flash_attn-2.7.0.post2+cu12torch2.4cxx11abiTRUE-cp310-cp310-linux_x86_64.whl"
    listing = {
        "source": "official",
        "cite": "someone/listing@abc:assets.csv",
        "as_of": "2025-08-15",
        "releases": {"v2.7.0.post2": [listed.replace("cxx11abiFALSE", "cxx11abifalse")], "v2.7.0": []},
    }
    rows = [
        _row("v2.7.0.post2", listed),
        _row("v2.7.0.post2", absent),
        _row("v2.7.0", "flash_attn-2.7.0+cu12torch2.4cxx11abiFALSE-cp310-cp310-linux_x86_64.whl"),
        # seen elsewhere (an asset added later): kept though the listing lacks it
        _row("v2.7.0.post2", absent.replace("cp310", "cp311"), kind="seen_listed"),
        # a release tagged after the listing's day, and another source: not judged
        _row(
            "v2.8.3.post1",
            "flash_attn-2.8.3+cu12torch2.9cxx11abiTRUE-cp312-cp312-linux_x86_64.whl",
            date="2026-06-10",
        ),
        {
            **_row("v2.7.0", "flash_attn-2.7.0+cu124torch2.4-cp310-cp310-linux_x86_64.whl"),
            "source": "community:mjun0812",
        },
    ]
    dropped: dict[str, int] = {}
    out = builder.apply_release_assets(rows, listing, dropped)
    assert dropped == {"v2.7.0.post2": 1, "v2.7.0": 1}
    assert [r["filename"] for r in out] == [rows[i]["filename"] for i in (0, 3, 4, 5)]
    seen = out[0]
    assert seen["evidence_kind"] == "derived_from_matrix+seen_listed"
    assert "seen_listed:someone/listing@abc:assets.csv (2025-08-15)" in seen["evidence"]
    assert out[1:] == rows[3:]  # unchanged
    # The index that results holds the listed claim as seen (no longer a claim) and says what was dropped.
    doc = builder.assemble(rows, "listings", [], assets=listing, generated="2026-12-06")
    assert doc["dropped"] == {"v2.7.0.post2": 1, "v2.7.0": 1}
    entry = next(w for w in doc["wheels"] if w["filename"] == listed)
    assert "claim" not in entry


def test_one_file_listed_twice_with_two_digests_is_refused_never_a_guess() -> None:
    # A page (or JSON document) that lists one file at one URL twice with different digests: the index
    # does not pick the first one silently; it stops with both, as for any other digest disagreement.
    url = "https://download.pytorch.org/whl/cu128/flash_attn_3-3.0.9-cp39-abi3-manylinux_2_28_x86_64.whl"
    row = {
        "source": "pytorch-index", "filename": url.rsplit("/", 1)[1], "url": url, "sha256": "0f" * 32,
        "cuda_version": "12.8", "evidence": "simple-index:page",
    }  # fmt: skip
    twin = dict(row, sha256="1f" * 32)
    for build in (
        lambda rows: builder.assemble(rows, "live", []),
        lambda rows: builder.refresh(json.loads((ROOT / "wheels_index.json").read_text()), ["pytorch-index"], rows, []),
    ):  # fmt: skip
        with pytest.raises(DigestConflict, match="listed twice with different digests") as exc:
            build([row, twin])
        assert "0f" * 32 in str(exc.value) and "1f" * 32 in str(exc.value) and url in str(exc.value)
        # the same digest twice, or a copy without one, is one entry
        assert [
            w["sha256"]
            for w in build([row, dict(row), dict(row, sha256=None)])["wheels"]
            if w.get("url") == url
        ] == ["0f" * 32]
