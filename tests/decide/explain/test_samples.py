"""Realistic logs (tests/data/explain/*.log: pip, uv, setup.py, ninja, docker, import, runtime) with the
expected result in tests/data/explain/expected.json. Every public code has at least one sample."""

from __future__ import annotations

import json

import pytest

from flashdoctor.decide.explain import explain_bytes
from flashdoctor.decide.explain.engine import match_naive
from flashdoctor.knowledge.signatures import knowledge
from tests.support.paths import DATA
from tests.support.targets import target_env

SAMPLES = DATA / "explain"
EXPECTED: dict[str, dict] = json.loads((SAMPLES / "expected.json").read_text(encoding="utf-8"))


def test_every_sample_has_an_expectation_and_every_code_a_sample() -> None:
    assert set(EXPECTED) == {p.name for p in SAMPLES.glob("*.log")}
    firsts = {e["first"] for e in EXPECTED.values() if "first" in e}
    also = {c for e in EXPECTED.values() for c in e.get("also", [])}
    assert set(knowledge().codes) <= firsts | also, set(knowledge().codes) - firsts - also


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample(name: str) -> None:
    exp = EXPECTED[name]
    data = (SAMPLES / name).read_bytes()
    env = target_env(exp["target"]) if "target" in exp else None
    expl = explain_bytes(data, env, here=True)  # a sample's target is the machine it was captured on
    codes = [d.code for d in expl.diagnoses]
    if exp.get("none"):
        assert codes == [], codes
        assert expl.key_lines, "an unrecognised log still shows lines"
        if "key_line" in exp:
            assert any(exp["key_line"] in k.text for k in expl.key_lines)
        assert not any("Warning" in k.text or "warning" in k.text for k in expl.key_lines)
        return
    assert codes[:1] == [exp["first"]], codes
    for c in exp.get("also", []):
        assert c in codes, (c, codes)
    for c in exp.get("absent", []):
        assert c not in codes, (c, codes)
    if "variant" in exp:
        assert expl.variant == exp["variant"]
    if "fix_contains" in exp:
        assert exp["fix_contains"] in expl.diagnoses[0].fix, expl.diagnoses[0].fix
    for code, text in exp.get("evidence", {}).items():
        assert text in next(d for d in expl.diagnoses if d.code == code).evidence
    for code, text in exp.get("fix", {}).items():
        assert text in next(d for d in expl.diagnoses if d.code == code).fix
    top = expl.diagnoses[0]
    assert top.line is not None and top.evidence
    # The evidence is the line the number points to.
    lines = data.decode("utf-8", errors="replace").splitlines()
    assert top.evidence[:40].strip("…") in lines[top.line - 1]
    # Everything after the first cause that follows from it says so.
    for d in expl.diagnoses[1:]:
        if d.consequence_of:
            assert d.consequence_of in codes[: codes.index(d.code)]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_prefilter_finds_what_the_naive_matcher_finds(name: str) -> None:
    # The keyword prefilter is sound: every signature the naive matcher (every pattern on every line)
    # finds is found by the scan, on the same line.
    from flashdoctor.decide.explain.scan import normalise, scan

    text = (SAMPLES / name).read_text(encoding="utf-8")
    naive = match_naive(text)
    data = normalise(text.encode())
    found = scan(data, data.lower(), knowledge())
    fast = {sid: data.count(b"\n", 0, hit.offset) + 1 for sid, hit in found.hits.items()}
    conditional = {s.id for s in knowledge().signatures if s.condition}
    assert {k: v for k, v in fast.items() if k not in conditional} == {
        k: v for k, v in naive.items() if k not in conditional
    }
