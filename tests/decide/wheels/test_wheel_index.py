"""The committed wheels_index.json, and the loader's refusal of a bad index (naming the entry)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from flashdoctor.decide.wheels import index as index_mod
from flashdoctor.decide.wheels.index import (
    ENV_VAR,
    WheelIndexError,
    default_index_path,
    index_from_document,
    load_index,
    validate_document,
)
from tests.support.paths import ROOT, TARGETS

COMMITTED = ROOT / "wheels_index.json"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(COMMITTED.read_text(encoding="utf-8"))
    return data


# -- the committed index ------------------------------------------------------------------------------
def test_committed_index_is_valid_and_small(doc: dict[str, Any]) -> None:
    validate_document(doc, "wheels_index.json")  # the full JSON Schema pass, not the cached marker
    # Loading it is part of every command: 2.76 MB (6,772 entries, with the releases before v2.5.0) loads
    # in 0.26-0.28 s cold on the 2-core box, was 0.21-0.23 s at 5,221 (scripts/bench_select.py).
    assert COMMITTED.stat().st_size < 3_000_000
    assert doc["built_from"] == "listings"
    assert "/" + "work/" not in COMMITTED.read_text(encoding="utf-8")  # no path of the machine that built it


def test_committed_index_holds_every_listed_wheel(doc: dict[str, Any]) -> None:
    inputs = {i["name"]: i["entries"] for i in doc["inputs"]}
    counts: dict[str, int] = {}
    published: dict[str, int] = {}  # files only the published digests list (their release URLs)
    for w in doc["wheels"]:
        counts[w["source"]] = counts.get(w["source"], 0) + 1
        if w["evidence"].startswith("published_digest:"):
            published[w["source"]] = published.get(w["source"], 0) + 1
    # every row of the listing files became an entry (all are FlashAttention wheels), but the claimed
    # wheels never published (counted in "dropped"): v2.8.0's CI could not have run, and the releases the
    # asset listing (scripts/data/release_assets.json) shows without them
    dropped = sum(doc["dropped"].values())
    assets = json.loads((ROOT / "scripts" / "data" / "release_assets.json").read_text(encoding="utf-8"))
    assert doc["dropped"]["v2.8.0"] == 38 and set(doc["dropped"]) <= set(assets["releases"])
    assert not any(assets["releases"][tag] for tag in ("v2.7.0", "v2.7.1", "v2.5.9")) and all(
        tag in doc["dropped"] for tag in ("v2.7.0", "v2.7.1", "v2.5.9")
    )
    official_rows = inputs["wheels_official.json"] + inputs["wheels_official_pre25.json"]
    listed = (
        official_rows
        + inputs["wheels_pytorch_index.json"]
        + inputs["wheels_community.json"]
        + inputs["wheels_community_supplement.json"]
        + inputs["wheels_community_opt_in.json"]
    )
    assert sum(n for s, n in counts.items() if s != "pypi") == listed - dropped + sum(published.values())
    assert counts["official"] == official_rows - dropped + published.get("official", 0)
    assert counts["pytorch-index"] == inputs["wheels_pytorch_index.json"]
    assert counts.get("pypi", 0) == inputs.get("pypi:flash-attn-4", 0)


def test_committed_index_entries_are_complete() -> None:
    index = load_index(COMMITTED)
    assert len(index.entries) > 5000
    for e in index.entries:
        assert e.url.startswith("https://"), e.filename
        assert e.evidence
        if e.source.startswith(("official", "community:")):
            src = index.sources[e.source]
            raw = src.raw or {}
            if src.kind == "huggingface-repo":  # the Hub's download URL of the file
                assert e.url.startswith(f"https://huggingface.co/{raw['repo']}/resolve/main/"), e.url
            elif src.kind == "simple-index":  # Astral's index: content-addressed files on its host
                assert e.url.startswith("https://wheels.astral.sh/artifacts/" + (e.sha256 or "?") + "/"), (
                    e.url
                )
            else:
                assert e.url.startswith(f"https://github.com/{raw['repo']}/releases/download/{e.tag}/"), e.url
        if e.variant == "fa2":
            assert e.archs and "sm_80" in e.archs, e.filename  # every FA2 build has Ampere code
            assert e.cuda_mm is not None and e.name.torch is not None
        if e.source == "official" and e.name.platforms <= {"linux_x86_64", "linux_aarch64"}:
            assert e.glibc in ((2, 31), (2, 35)), e.filename
        if e.source == "official" and e.version >= index_mod.Version("2.8.0.post1"):
            assert e.glibc == (2, 35), e.filename  # built on Ubuntu 22.04
        if e.variant == "fa3" and e.name.torch is None:
            assert str(e.torch_spec) == ">=2.9"
        assert e.sha256 is None or len(e.sha256) == 64


def test_official_abi_decisions_in_the_committed_index() -> None:
    by_name = {e.filename: e for e in load_index(COMMITTED).entries if e.source == "official"}
    # a FALSE label on torch >= 2.7: built against a CXX11-ABI torch (inferred)
    e = by_name["flash_attn-2.8.3.post1+cu12torch2.8cxx11abiFALSE-cp312-cp312-linux_x86_64.whl"]
    assert (e.abi, "abi" in e.inferred) == (True, True)
    # a FALSE label on torch 2.4: the torch was an old-ABI build, the label holds
    e = by_name["flash_attn-2.8.3.post1+cu12torch2.4cxx11abiFALSE-cp312-cp312-linux_x86_64.whl"]
    assert (e.abi, "abi" in e.inferred) == (False, False)
    e = by_name["flash_attn-2.8.3.post1+cu12torch2.4cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"]
    assert (e.abi, "abi" in e.inferred) == (True, False)
    # 2.7.x: CUDA 12.3/12.4 builds, no Blackwell code
    e = by_name["flash_attn-2.7.4.post1+cu12torch2.6cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"]
    assert e.archs == ("sm_80", "sm_90")


# -- a bad index is refused, naming the entry -------------------------------------------------------
SMALL = {
    "schema": "flashdoctor/wheels-index/1",
    "sources": {
        "official": {
            "kind": "github-releases",
            "repo": "Dao-AILab/flash-attention",
            "rank": 0,
            "community": False,
            "url": "https://github.com/Dao-AILab/flash-attention/releases/download/{tag}/{filename_quoted}",
        },
        "pytorch-index": {"kind": "simple-index", "rank": 1, "community": False},
    },
    "wheels": [
        {
            "filename": "flash_attn-2.8.3+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl",
            "source": "official",
            "evidence": "test",
            "sha256": None,
            "tag": "v2.8.3",
            "cuda": "12.9.1",
            "abi": True,
            "glibc": "2.35",
            "archs": ["sm_80", "sm_90", "sm_100", "sm_120"],
        },
        {
            "filename": "flash_attn_3-3.0.0-cp39-abi3-manylinux_2_28_x86_64.whl",
            "source": "pytorch-index",
            "evidence": "test",
            "sha256": "a" * 64,
            "url": "https://download.pytorch.org/whl/cu130/flash_attn_3-3.0.0-cp39-abi3-manylinux_2_28_x86_64.whl",
            "cuda": "13.0",
            "torch": ">=2.9",
        },
    ],
}
FA3 = "flash_attn_3-3.0.0-cp39-abi3-manylinux_2_28_x86_64.whl"


def test_the_small_index_is_good() -> None:
    index = index_from_document(copy.deepcopy(SMALL))
    assert [e.url for e in index.entries] == [
        "https://github.com/Dao-AILab/flash-attention/releases/download/v2.8.3/"
        "flash_attn-2.8.3%2Bcu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl",
        SMALL["wheels"][1]["url"],  # type: ignore[index]
    ]


def _set(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    target = doc
    for p in path[:-1]:
        target = target[p]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value


_DELETE = object()

BAD = [
    ("sha256", ("wheels", 1, "sha256"), "xyz", f"entry 1 ({FA3}), field 'sha256'"),
    ("no evidence", ("wheels", 1, "evidence"), _DELETE, f"entry 1 ({FA3}): 'evidence' is a required property"),
    ("unknown field", ("wheels", 1, "color"), "red", f"entry 1 ({FA3})"),
    ("archs", ("wheels", 0, "archs"), ["ampere"], "entry 0 (flash_attn-2.8.3+cu12torch2.8"),
    ("source pattern", ("wheels", 1, "source"), "somebody", f"entry 1 ({FA3}), field 'source'"),
    ("source not in table", ("wheels", 1, "source"), "community:nobody", f"entry 1 ({FA3}): source 'community:nobody'"),
    ("not a wheel of ours", ("wheels", 1, "filename"), "numpy-2.0.0-cp312-cp312-linux_x86_64.whl",
     "entry 1 (numpy-2.0.0-cp312-cp312-linux_x86_64.whl): 'numpy-2.0.0-cp312-cp312-linux_x86_64.whl' is not a FlashAttention wheel"),
    ("bad filename", ("wheels", 1, "filename"), "flash_attn-2.8.3.whl", "entry 1 (flash_attn-2.8.3.whl)"),
    ("cuda contradicts name", ("wheels", 0, "cuda"), "13.0", "field 'cuda' '13.0' contradicts the filename's CUDA 12"),
    ("bad torch spec", ("wheels", 1, "torch"), "two point nine", f"entry 1 ({FA3}): field 'torch'"),
    ("no url, no tag", ("wheels", 0, "tag"), _DELETE, "no 'url', and source 'official' has no URL template"),
    ("schema id", ("schema",), "something/else", "field schema: 'flashdoctor/wheels-index/1' was expected"),
    ("no wheels", ("wheels",), _DELETE, "top level: 'wheels' is a required property"),
    ("sources", ("sources",), [], "field sources"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "value", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_index_names_the_entry(path: tuple[Any, ...], value: Any, message: str) -> None:
    doc = copy.deepcopy(SMALL)
    _set(doc, path, value)
    with pytest.raises(WheelIndexError) as exc:
        index_from_document(doc, origin="bad.json")
    assert message in exc.value.message
    assert exc.value.message.startswith("bad.json: ")
    assert exc.value.return_code == 2


def test_duplicate_entry_is_refused() -> None:
    doc = copy.deepcopy(SMALL)
    doc["wheels"].append(copy.deepcopy(doc["wheels"][1]))  # type: ignore[union-attr]
    with pytest.raises(WheelIndexError, match=f"entry 2 \\({FA3}\\): duplicate of an earlier entry"):
        index_from_document(doc, origin="dup.json")


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(WheelIndexError, match="cannot read wheel index"):
        load_index(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema": ', encoding="utf-8")
    with pytest.raises(WheelIndexError, match="is not valid JSON at line 1"):
        load_index(broken)


# -- loading: where from, and the schema pass done once per content --------------------------------------
def test_schema_pass_runs_once_per_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "index.json"
    path.write_text(json.dumps(SMALL), encoding="utf-8")
    calls: list[str] = []
    real = index_mod.validate_document

    def spy(doc: Any, origin: str = "") -> None:
        calls.append(origin)
        real(doc, origin)

    monkeypatch.setattr(index_mod, "validate_document", spy)
    load_index(path)
    assert len(calls) == 1
    index_mod._load_cached.cache_clear()
    load_index(path)  # same content: the marker in the (test-private) cache dir says it passed
    assert len(calls) == 1
    changed = copy.deepcopy(SMALL)
    changed["wheels"][1]["sha256"] = "xyz"  # type: ignore[index]
    path.write_text(json.dumps(changed), encoding="utf-8")
    with pytest.raises(WheelIndexError, match="sha256"):
        load_index(path)
    assert len(calls) == 2


def test_default_index_path(tmp_path: Path) -> None:
    assert default_index_path({}) == COMMITTED  # a checkout: the top-level file
    other = tmp_path / "mine.json"
    assert default_index_path({ENV_VAR: str(other)}) == other


# -- hostile input: a clear message (exit 2), never an internal error (issue 15 row 12) -------------------
TEMPLATES = [
    ("unknown field", "https://h/{nope}/{filename}", "uses {nope}"),
    ("positional field", "https://h/{}/{filename}", "uses {}"),
    ("attribute access", "https://h/{tag.__class__}/{filename}", "uses {tag.__class__}"),
    ("conversion", "https://h/{tag!r}/{filename}", "uses {tag!r}"),
    ("format spec", "https://h/{filename:>99999}", "uses {filename:>99999}"),
    ("unbalanced", "https://h/{tag/{filename}", "is malformed"),
    ("stray brace", "https://h/}{filename}", "is malformed"),
]


@pytest.mark.parametrize(("template", "message"), [t[1:] for t in TEMPLATES], ids=[t[0] for t in TEMPLATES])
def test_bad_url_template_of_a_source_is_refused(template: str, message: str) -> None:
    doc = copy.deepcopy(SMALL)
    doc["sources"]["official"]["url"] = template  # type: ignore[index]
    with pytest.raises(WheelIndexError) as exc:
        index_from_document(doc, origin="t.json")
    assert exc.value.message.startswith("t.json: source 'official': URL template")
    assert message in exc.value.message
    assert exc.value.return_code == 2


@pytest.mark.parametrize(("template", "message"), [t[1:] for t in TEMPLATES], ids=[t[0] for t in TEMPLATES])
def test_bad_url_template_of_an_entry_is_refused(template: str, message: str) -> None:
    doc = copy.deepcopy(SMALL)
    doc["wheels"][1]["url"] = template  # type: ignore[index]
    with pytest.raises(WheelIndexError) as exc:
        index_from_document(doc, origin="t.json")
    assert exc.value.message.startswith(f"t.json: entry 1 ({FA3}): URL template")
    assert message in exc.value.message


def test_an_entry_url_template_with_tag_needs_a_tag() -> None:
    doc = copy.deepcopy(SMALL)
    doc["wheels"][1]["url"] = "https://h/{tag}/{filename}"  # type: ignore[index]
    with pytest.raises(WheelIndexError, match="needs a 'tag'"):
        index_from_document(doc, origin="t.json")
    doc["wheels"][1]["tag"] = "v1"  # type: ignore[index]
    index = index_from_document(doc, origin="t.json")
    assert index.entries[1].url == f"https://h/v1/{FA3}"


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [500, 100_000])
def test_deeply_nested_index_is_a_clear_error(tmp_path: Path, depth: int) -> None:
    # 500: parses, and the schema's error message would repr it; 100 000: json itself recurses too deep
    path = tmp_path / "deep.json"
    text = json.dumps(SMALL).replace(
        '"schema": "flashdoctor/wheels-index/1"', f'"about": {_nested(depth)}', 1
    )
    text = text.replace("{", '{"schema": "flashdoctor/wheels-index/1", ', 1)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(WheelIndexError) as exc:
        load_index(path)
    assert str(path) in exc.value.message
    assert len(exc.value.message) < 600  # one line, not the nested document
    assert exc.value.return_code == 2


def test_endless_index_file_is_refused_without_reading_it_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_mod, "MAX_INDEX_BYTES", 1000)
    path = tmp_path / "big.json"
    path.write_text(" " * 5000 + json.dumps(SMALL), encoding="utf-8")
    with pytest.raises(WheelIndexError, match="larger than"):
        load_index(path)


@pytest.mark.parametrize("bad", ["template", "nested"])
@pytest.mark.parametrize("how", ["--index", "env"])
def test_cli_exits_2_on_a_hostile_index(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, bad: str, how: str
) -> None:
    from flashdoctor.cli import main

    path = tmp_path / "index.json"
    doc = copy.deepcopy(SMALL)
    if bad == "template":
        doc["sources"]["official"]["url"] = "https://h/{nope}/{filename}"  # type: ignore[index]
        path.write_text(json.dumps(doc), encoding="utf-8")
    else:
        path.write_text('{"about": ' + _nested(100_000) + "}", encoding="utf-8")
    target = str(TARGETS / "h100.json")
    if how == "env":
        monkeypatch.setenv(ENV_VAR, str(path))
        argv = ["check", "--target", target]
    else:
        argv = ["wheels", "--index", str(path), "--target", target]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert "Traceback" not in err and "unexpected error" not in err
    assert ("{nope}" if bad == "template" else "nested too deeply") in err


def test_opt_in_sources_rank_after_the_community_builds_released_on_github() -> None:
    # Same version, same cell: mjun0812's aarch64 wheel for torch 2.11 + CUDA 13 before Astral's copy.
    index = load_index(COMMITTED)
    opt_in = {n for n, s in index.sources.items() if (s.raw or {}).get("opt_in")}
    assert {"community:astral", "community:lldacing", "community:wildminder", "community:kijai"} <= opt_in
    github = [s.rank for n, s in index.sources.items() if s.community and s.kind == "github-releases"]
    assert all(index.sources[n].rank > max(github) for n in opt_in - {"community:windreamer"})
    astral = [e for e in index.entries if e.source == "community:astral"]
    assert astral and all(e.sha256 and e.name.torch == (2, 11) and e.cuda_mm == (13, 0) for e in astral)
