"""Published digests merged into the index by URL (issue 18, "Digests"): cross-checked where two sources
exist, disagreements refused loudly, each digest's source in the entry's evidence; never by filename
alone; and what an index knew carried into a refreshed one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flashdoctor.decide.wheels import builder, digests
from flashdoctor.decide.wheels.index import load_index
from tests.decide.wheels.test_wheel_builder import run_script
from tests.support.paths import DATA, ROOT, SCRIPTS

LISTINGS = DATA / "wheel_listings"
SCRIPT = SCRIPTS / "update_wheels_index.py"
GH = "https://github.com/Dao-AILab/flash-attention/releases/download"
TRUE = "flash_attn-2.8.3.post1+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"
FALSE = "flash_attn-2.8.3.post1+cu12torch2.8cxx11abiFALSE-cp312-cp312-linux_x86_64.whl"
MATRIX = "flash_attn-2.6.3+cu123torch2.4cxx11abiFALSE-cp310-cp310-linux_x86_64.whl"
MJUN = "flash_attn-2.8.3+cu124torch2.5-cp310-cp310-linux_x86_64.whl"
NIX = "sirati/nix-torch-bin-pascal@73ed24a03ee16ec673dccef561002713a9295904:pkgs/flash-attn/binary-hashes/v2.8.3.nix"


def record(
    filename: str, sha: str, url: str, kind: str = "nix", where: str = NIX, **more: Any
) -> dict[str, Any]:
    return {
        "filename": filename,
        "sha256": sha,
        "url": url,
        "sources": [{"kind": kind, "where": where}],
        **more,
    }


def doc_of(*records: dict[str, Any]) -> dict[str, Any]:
    return {"schema": digests.DIGESTS_SCHEMA, "digests": list(records)}


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return builder.rows_from_listings(LISTINGS)[0]


def listed_sha(rows: list[dict[str, Any]], filename: str) -> str:
    return next(r["sha256"] for r in rows if r["filename"] == filename)


def build(rows: list[dict[str, Any]], *records: dict[str, Any]) -> tuple[dict[str, Any], digests.DigestStats]:
    stats = digests.DigestStats()
    published = digests.published_by_url(doc_of(*records))
    return builder.assemble(rows, "listings", [], published=published, stats=stats), stats


def one(doc: dict[str, Any], filename: str) -> dict[str, Any]:
    found = [w for w in doc["wheels"] if w["filename"] == filename]
    assert len(found) == 1, found
    return found[0]


def test_a_digest_is_attached_by_url_and_cited(rows: list[dict[str, Any]]) -> None:
    sha = "a1" * 32
    # uv writes the label lower-case in uv.lock; the + is percent-encoded in one URL and not the other
    url = f"{GH}/v2.6.3/{MATRIX.replace('FALSE', 'false')}"
    doc, stats = build(rows, record(MATRIX, sha, url, "lock-file", "org/repo@" + "c" * 40 + ":uv.lock"))
    e = one(doc, MATRIX)
    assert e["sha256"] == sha
    assert e["evidence"].endswith(f"; sha256 from lock-file org/repo@{'c' * 40}:uv.lock")
    assert "claim" not in e  # a digest recorded for its URL: the file was published
    assert (stats.added, stats.confirmed) == (1, 0)


def test_a_digest_that_agrees_is_a_cross_check(rows: list[dict[str, Any]]) -> None:
    sha = listed_sha(rows, TRUE)
    assert sha
    doc, stats = build(rows, record(TRUE, sha, f"{GH}/v2.8.3.post1/{TRUE.replace('+', '%2B')}"))
    assert one(doc, TRUE)["evidence"].endswith(f"; sha256 cross-checked with nix {NIX}")
    assert (stats.added, stats.confirmed) == (0, 1)


def test_a_digest_that_disagrees_with_the_listing_stops_the_build(rows: list[dict[str, Any]]) -> None:
    with pytest.raises(
        digests.DigestConflict, match="1 published digest\\(s\\) disagree with the index"
    ) as exc:
        build(rows, record(TRUE, "ee" * 32, f"{GH}/v2.8.3.post1/{TRUE}"))
    assert listed_sha(rows, TRUE) in str(exc.value) and "ee" * 32 in str(exc.value)


def test_two_sources_that_disagree_stop_the_build() -> None:
    url = f"{GH}/v2.6.3/{MATRIX}"
    with pytest.raises(digests.DigestConflict, match="published digests disagree on 1 file"):
        digests.published_by_url(doc_of(record(MATRIX, "01" * 32, url), record(MATRIX, "02" * 32, url)))


def test_the_same_filename_elsewhere_is_not_the_same_file(rows: list[dict[str, Any]]) -> None:
    fork = "https://github.com/someone/RL/releases/download/v0.0.0/" + MATRIX
    doc, stats = build(rows, record(MATRIX, "03" * 32, fork), record(MATRIX, "04" * 32, "", other_urls=[]))
    assert one(doc, MATRIX)["sha256"] is None
    assert stats.unmatched == 1


def test_an_older_community_rebuild_is_not_the_index_file(rows: list[dict[str, Any]]) -> None:
    old = f"https://github.com/mjun0812/flash-attention-prebuild-wheels/releases/download/v0.0.1/{MJUN}"
    doc, stats = build(rows, record(MJUN, "05" * 32, old))
    assert one(doc, MJUN)["sha256"] is None and stats.new_rows == 0


def test_a_published_file_no_listing_has_becomes_an_entry(rows: list[dict[str, Any]]) -> None:
    name = "flash_attn-2.8.1+cu13torch2.10cxx11abiTRUE-cp313-cp313-linux_x86_64.whl"
    doc, stats = build(
        rows, record(name, "06" * 32, f"{GH}/v2.8.1/{name}", "lock-file", "o/r@" + "d" * 40 + ":uv.lock")
    )
    e = one(doc, name)
    assert (e["source"], e["tag"], e["sha256"]) == ("official", "v2.8.1", "06" * 32)
    assert e["evidence"].startswith("published_digest:lock-file o/r@")
    assert stats.new_rows == 1
    # not for another project's files on that repository (FA4 betas: PyPI is FA4's source)
    fa4 = "flash_attn_4-4.0.0b5-py3-none-any.whl"
    doc, stats = build(rows, record(fa4, "07" * 32, f"{GH}/fa4-v4.0.0.beta6/{fa4}"))
    assert stats.new_rows == 0


def test_carry_known_keeps_digests_and_build_torch_and_refuses_a_changed_file(
    rows: list[dict[str, Any]],
) -> None:
    previous = builder.assemble(rows, "listings", [])
    live = [
        dict(r, sha256=None, torch_build_version=None, evidence="github-api:x")
        for r in rows
        if r["source"] == "official"
    ]
    fresh = builder.refresh(previous, ["official"], live, [{"name": "github:x", "entries": len(live)}])
    e = one(fresh, TRUE)
    assert e["sha256"] == listed_sha(rows, TRUE) and "sha256 carried from the index of" in e["evidence"]
    assert e["torch_build"] == "2.8.0"
    changed = [dict(r, sha256="ff" * 32) if r["filename"] == TRUE else r for r in live]
    with pytest.raises(digests.DigestConflict, match="changed digest since the index in use"):
        builder.refresh(previous, ["official"], changed, [])


# -- the committed index and the script ----------------------------------------------------------------
def test_committed_index_digest_coverage() -> None:
    index = load_index(ROOT / "wheels_index.json")
    with_sha = [e for e in index.entries if e.sha256]
    assert len(with_sha) >= 300  # 229 before the published digests were merged (issue 18 counted 227)
    cited = [e for e in with_sha if "sha256 from " in e.evidence]
    assert len(cited) >= 70 and all(e.source != "pytorch-index" for e in cited)


@pytest.mark.system
def test_script_merges_and_refuses_loudly(tmp_path: Path) -> None:
    sha = listed_sha(builder.rows_from_listings(LISTINGS)[0], TRUE)
    good = tmp_path / "good.json"
    good.write_text(
        json.dumps(
            doc_of(
                record(TRUE, sha, f"{GH}/v2.8.3.post1/{TRUE}"),
                record(MATRIX, "08" * 32, f"{GH}/v2.6.3/{MATRIX}"),
            )
        )
    )
    out = tmp_path / "index.json"
    common = ["--from-listings", str(LISTINGS), "--no-pypi", "--supplement", "none", "--output", str(out)]
    r = run_script(*common, "--digests", str(good), "--as-of", "2026-12-01")
    assert r.returncode == 0, r.stderr
    assert "1 took one, 1 cross-checked" in r.stdout
    doc = json.loads(out.read_text())
    assert one(doc, MATRIX)["sha256"] == "08" * 32
    assert {i["name"]: i.get("fetched") for i in doc["inputs"]}["wheels_official.json"] == "2026-12-01"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc_of(record(TRUE, "09" * 32, f"{GH}/v2.8.3.post1/{TRUE}"))))
    before = out.read_bytes()
    r = run_script(*common, "--digests", str(bad))
    assert r.returncode == 2 and "disagree with the index" in r.stderr and "09" * 32 in r.stderr
    assert "Traceback" not in r.stderr
    assert out.read_bytes() == before  # nothing written
