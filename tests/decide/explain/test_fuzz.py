"""Arbitrary text and bytes never make the engine raise, and what it returns is always well formed."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from flashdoctor.decide.explain import explain_bytes, explain_text
from flashdoctor.decide.explain.engine import normalise
from flashdoctor.knowledge.signatures import knowledge
from tests.support.targets import target_env

KB = knowledge()
REAL_LINES = [ex for s in KB.signatures for ex in s.examples] + [
    "Guessing wheel URL:  https://github.com/x/y.whl",
    "Building wheel for flash-attn (setup.py) ... error",
    "torch.__version__  = 2.6.0+cu124",
    '  File "/src/flash-attention/flash_attn/__init__.py", line 3, in <module>',
    "Successfully installed flash-attn-2.8.3",
]
# More examples for a deeper local run: FLASHDOCTOR_FUZZ_EXAMPLES=3000 pytest tests/decide/explain/test_fuzz.py
FUZZ_EXAMPLES = int(os.environ.get("FLASHDOCTOR_FUZZ_EXAMPLES", "150"))
ENVS = [None, target_env("h100"), target_env("t4"), target_env("rocm-mi300"), target_env("no-torch")]
# Derandomised by the hypothesis profile that tests/conftest.py loads (``ci``: the same examples on every
# run, no example database): a CI run can only fail for a change of the code. FLASHDOCTOR_FUZZ_RANDOM=1 (or
# HYPOTHESIS_PROFILE=random) explores new examples locally.
FUZZ = settings(max_examples=FUZZ_EXAMPLES, suppress_health_check=[HealthCheck.too_slow])


def _well_formed(diags) -> None:  # type: ignore[no-untyped-def]
    assert all(d.code in KB.codes for d in diags)
    assert len({d.code for d in diags}) == len(diags)
    conf = [d.confidence for d in diags]
    assert conf == sorted(conf, reverse=True) and all(0 < c <= 1 for c in conf)
    for d in diags:
        assert d.message and d.fix and "{" not in d.message
        assert not any(ord(c) < 32 and c != "\t" for c in d.evidence)


@FUZZ
@given(st.text())
def test_any_text(text: str) -> None:
    _well_formed(explain_text(text))


@FUZZ
@given(st.binary(max_size=4096))
def test_any_bytes(data: bytes) -> None:
    expl = explain_bytes(data)
    _well_formed(expl.diagnoses)
    if not expl.diagnoses and normalise(data).strip():
        assert expl.key_lines, "an unrecognised, non-empty log always shows some lines"
    for k in expl.key_lines:
        assert k.line >= 1


@FUZZ
@example(  # found by the fuzzer once: the log's own --no-build-isolation makes a more specific signature
    # of the same line (no-module-torch-no-isolation) the right answer
    lines=[
        "ModuleNotFoundError: No module named 'torch'",
        'ERROR: process "/bin/sh -c pip install flash-attn --no-build-isolation" did not complete '
        "successfully: exit code: 137",
    ],
    env_index=0,
    newline="\n",
)
@given(
    st.lists(st.one_of(st.sampled_from(REAL_LINES), st.text(max_size=80)), max_size=30),
    st.sampled_from(range(len(ENVS))),
    st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_real_lines_mixed_with_junk(lines: list[str], env_index: int, newline: str) -> None:
    text = newline.join(lines)
    diags = explain_text(text, ENVS[env_index])
    _well_formed(diags)
    # Every real cause line in the log is found (its code, or the code of another signature that reads the
    # same line more specifically in this log's context, is somewhere in the answer), whatever surrounds it.
    # A signature with contexts_unless is left out: another line can rightly switch it off (a report of
    # nondeterministic training is no such report in a build log).
    for line in lines:
        same_line = {s.code for s in KB.signatures if s.search(line)}
        for sig in KB.signatures:
            if (
                line in sig.examples
                and sig.role == "cause"
                and not (sig.contexts or sig.contexts_unless or sig.env_if or sig.env_unless or sig.condition)
            ):
                assert any(d.code == sig.code or d.code in same_line for d in diags) or any(
                    sig.code in KB.codes[d.code].yields_to or d.code in KB.codes[sig.code].yields_to
                    for d in diags
                ), (sig.id, [d.code for d in diags])
