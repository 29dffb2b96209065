"""target.TagFilter: the filename test that lets a best-fit question parse only the entries it can use.

It must refuse exactly the names whose python or platform tags the target refuses (rules.machine_codes),
so that the best fit over the kept entries is the best fit over all of them.
"""

from __future__ import annotations

import json
from itertools import product
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flashdoctor.decide.wheels import index as index_mod
from flashdoctor.decide.wheels.index import IndexEntry, index_from_bytes, index_from_document, load_index
from flashdoctor.decide.wheels.parse import parse_wheel_name
from flashdoctor.decide.wheels.select import find_wheel
from flashdoctor.decide.wheels.target import TagFilter, Target, tag_filter, target_of
from flashdoctor.knowledge.variants import VARIANTS
from flashdoctor.model.environment import Environment
from flashdoctor.model.target import environment_from_target
from tests.support.paths import ROOT, TARGETS

COMMITTED = ROOT / "wheels_index.json"
TAG_CODES = {"python-mismatch", "platform-mismatch", "glibc-too-old"}


def environments() -> list[Environment]:
    """The test targets, and a grid of pythons x platforms x glibcs on an H100 (free-threaded included)."""
    envs = [environment_from_target(json.loads(p.read_text())) for p in sorted(TARGETS.glob("*.json"))]
    base = json.loads((TARGETS / "h100.json").read_text())
    for py, plat, glibc in product(
        ["3.8", "3.9", "3.10", "3.12", "3.13", "3.14"],
        ["linux_x86_64", "linux_aarch64", "win_amd64", "macosx_14_0_arm64"],
        ["2.17", "2.31", "2.35", None],
    ):
        envs.append(environment_from_target({**base, "python": py, "platform": plat, "glibc": glibc}))
    envs.append(environment_from_target({**base, "python": "3.13", "python_abi": "cp313t"}))
    envs.append(environment_from_target({k: v for k, v in base.items() if k not in ("python", "platform")}))
    return envs


ENVS = environments()


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(COMMITTED.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def entries(doc: dict[str, Any]) -> tuple[IndexEntry, ...]:
    return index_from_document(doc, validate=False).entries


def tags_accept(filename: str, t: Target) -> bool:
    """The tag side of rules.machine_codes, from the parsed name (packaging.tags)."""
    n = parse_wheel_name(filename)
    return (t.pairs is None or bool(n.pythons & t.pairs)) and (
        t.platforms is None or bool(n.platforms & t.platforms)
    )


def test_it_keeps_exactly_what_the_tag_rules_accept(entries: tuple[IndexEntry, ...]) -> None:
    names = sorted({e.filename for e in entries})
    refused = 0
    for env in ENVS:
        t = target_of(env)
        keep = tag_filter(env)
        for name in names:
            assert keep(name) == tags_accept(name, t), (name, env.python, env.platform, env.glibc)
            refused += not keep(name)
    assert refused > len(names) * len(ENVS) // 2  # it does filter: most names are for another machine


def test_a_refused_entry_always_has_a_tag_rejection(entries: tuple[IndexEntry, ...]) -> None:
    from flashdoctor.decide.wheels.rules import machine_codes

    for env in ENVS[:: max(1, len(ENVS) // 12)]:
        t, keep = target_of(env), tag_filter(env)
        for e in entries:
            if not keep(e.filename):
                assert TAG_CODES & set(machine_codes(e, t)), e.filename


@pytest.mark.slow  # ~3 s: the whole index for every machine of the grid
def test_the_best_fit_is_the_same_over_the_kept_entries(doc: dict[str, Any]) -> None:
    whole = index_from_document(doc, validate=False)
    found = 0
    for env in ENVS:
        part = index_from_document(doc, validate=False, keep=tag_filter(env))
        assert part.subset and len(part.entries) <= len(whole.entries)  # python/platform unknown: all
        for variant in VARIANTS:
            best = find_wheel(env, variant, whole)
            assert find_wheel(env, variant, part) == best, (env.python, env.platform, variant)
            found += best is not None
    assert found > 20  # the grid has machines that wheels fit


def test_unknown_python_and_platform_keep_everything() -> None:
    keep = TagFilter(None, None)
    assert keep("flash_attn-2.8.3+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl")
    assert keep("flash_attn_4-4.0.0b40-py3-none-any.whl")
    assert keep("not-a-wheel")  # kept for the parser to name the fault


@given(
    pys=st.lists(st.sampled_from(["cp39", "cp310", "cp312", "cp313", "py3", "py312", "CP311"]), min_size=1, max_size=3),
    abis=st.lists(st.sampled_from(["cp39", "cp310", "cp312", "cp313t", "abi3", "none", "ABI3"]), min_size=1, max_size=3),
    plats=st.lists(
        st.sampled_from(["linux_x86_64", "manylinux_2_28_x86_64", "manylinux2014_x86_64", "manylinux_2_34_aarch64",
                         "win_amd64", "any", "macosx_11_0_arm64", "Linux_X86_64"]),
        min_size=1,
        max_size=3,
    ),
    env=st.sampled_from(ENVS),
)  # fmt: skip
def test_compressed_tag_sets_are_read_as_packaging_reads_them(
    pys: list[str], abis: list[str], plats: list[str], env: Environment
) -> None:
    name = f"flash_attn-2.8.3-{'.'.join(pys)}-{'.'.join(abis)}-{'.'.join(plats)}.whl"
    assert tag_filter(env)(name) == tags_accept(name, target_of(env))


def small_index(step: int = 90) -> bytes:
    """Every ``step``-th entry of the committed index (~58, of every kind): validated in a blink."""
    doc = json.loads(COMMITTED.read_bytes())
    doc["wheels"] = doc["wheels"][::step]
    return json.dumps(doc).encode()


def test_only_content_that_passed_the_whole_parse_is_filtered(tmp_path: Path) -> None:
    data = small_index()
    doc = json.loads(data)
    keep = tag_filter(ENVS[0])
    with pytest.raises(ValueError, match="validated before"):
        index_from_document(doc, keep=keep)
    marker = index_mod._validated_marker(data)
    assert marker is not None and not marker.exists()  # a test-private cache dir
    first = index_from_bytes(data, doc, "bundled", keep=keep)
    assert not first.subset and len(first.entries) == len(doc["wheels"])  # not seen before: whole
    assert marker.exists()
    second = index_from_bytes(data, doc, "bundled", keep=keep)
    assert second.subset and 0 < len(second.entries) < len(doc["wheels"])


def test_load_index_caches_per_filter() -> None:
    a, b = tag_filter(ENVS[0]), tag_filter(ENVS[-2])
    assert load_index(COMMITTED, keep=a) is load_index(COMMITTED, keep=a)
    assert a != b and load_index(COMMITTED, keep=b) is not load_index(COMMITTED, keep=a)


def test_the_document_read_ahead_serves_the_load(tmp_path: Path) -> None:
    path = tmp_path / "index.json"
    path.write_bytes(small_index())
    data, doc = index_mod.read_index_document(path)
    hits = index_mod._document.cache_info().hits
    index = load_index(path, keep=tag_filter(ENVS[0]))
    assert index_mod._document.cache_info().hits == hits + 1  # not read nor parsed again
    assert data == path.read_bytes() and len(doc["wheels"]) == len(index.entries)  # not validated yet: whole
    path.write_text("{}", encoding="utf-8")  # another content (and size): read anew
    assert index_mod.read_index_document(path)[1] == {}
