"""The resemblance fallback: a log no signature matches is offered the known cause its words are close to,
labelled as a guess; logs that report no failure, and build causes for logs that show no build, get nothing."""

from __future__ import annotations

import json
import math

import jsonschema
import pytest

from flashdoctor.decide.explain import explain_bytes, explain_text
from flashdoctor.decide.explain import resemble as res
from flashdoctor.knowledge.schemas import load_schema
from flashdoctor.knowledge.signatures import ResemblanceCorpus, knowledge, resemblance_corpus
from tests.support.paths import ROOT, load_script


def explain(text: str):  # type: ignore[no-untyped-def]
    return explain_bytes(text.encode(), None)


# Reports in words no signature anticipated (checked below: no signature matches them).
PARAPHRASES = [
    ("no kernel for my old card? compute capability 7.5 here", "gpu-unsupported"),
    (
        "pip install flash-attn has been sitting at 'Building wheel' for two hours, is that normal?",
        "build-slow",
    ),
    ("compiling flash_attn with many jobs used up the memory and the ssh session froze", "build-oom"),
]


@pytest.mark.parametrize(("log", "code"), PARAPHRASES)
def test_a_paraphrase_is_offered_the_cause_it_resembles(log: str, code: str) -> None:
    expl = explain(log)
    first = expl.diagnoses[0]
    assert (first.code, first.basis) == (code, "resemblance")
    assert all(d.basis == "resemblance" for d in expl.diagnoses)
    assert first.confidence <= res.CONFIDENCE_CAP
    assert "by resemblance" in first.message and first.fix
    assert first.line == 1 and first.evidence == log
    # A guess is not a recognition: explain still says nothing was recognised (exit 1) and shows the key lines.
    assert not expl.recognised
    assert expl.key_lines


@pytest.mark.parametrize(
    "log",
    [
        "export CUDA_HOME=/usr/local/cuda-12.4\nexport PATH=$CUDA_HOME/bin:$PATH\n",
        "Collecting flash-attn\n  Downloading flash_attn-2.8.3.tar.gz (8.4 MB)\nSuccessfully installed flash-attn-2.8.3\n",
        "flash-attn does not support this head dimension yet, padding to 64\n",
        "FA3 runs on H100, which is supported on sm90 and above GPUs fine",
        "ValueError: shard 17 is corrupt\n",
        "Traceback (most recent call last):\n  File \"run.py\", line 12, in <module>\nKeyError: 'input_ids'\n",
        "",
    ],
)
def test_logs_that_report_no_flash_attention_failure_are_offered_nothing(log: str) -> None:
    assert explain(log).diagnoses == ()


def test_a_deprecation_notice_is_not_compared() -> None:
    # torch's "torch.cuda.amp.autocast(args...) is deprecated" FutureWarning is in countless logs and names no
    # failure; its words ("autocast", "amp") are dtype-unsupported's. Neither a log nor the corpus counts them,
    # and the line is never offered as the evidence.
    notice = (
        "/venv/lib/python3.11/site-packages/torch/amp/autocast_mode.py:265: FutureWarning: "
        "`torch.cuda.amp.autocast(args...)` is deprecated. Please use `torch.amp.autocast('cuda', args...)` instead."
    )
    log = notice + "\nValueError: shard 17 is corrupt"
    assert "autocast" not in res.words(res._window(log))
    assert "autocast" not in res.corpus_words([("dtype-unsupported", log)], 1)["dtype-unsupported"]
    prose = "flash attention fails with float32 tensors, only fp16 and bf16 are supported"
    assert [r.code for r in res.resemble(notice + "\n" + prose)] == ["dtype-unsupported"]
    model = res._model()
    weak = "the run fails with a float error"  # closer to the cause than nothing, farther than the notice
    assert res._best_line(notice + "\n" + weak, model.codes["dtype-unsupported"], model.idf) == (2, weak)


def test_the_services_that_report_a_cause_get_no_guess() -> None:
    # install, build, smoke and check read a failure with explain_text: a resemblance is not a cause.
    log = PARAPHRASES[0][0]
    assert explain(log).diagnoses and explain_text(log) == []


def test_a_build_cause_is_not_offered_for_a_log_that_shows_no_build() -> None:
    # Close to build-oom in words, but nothing says a build or an install ran.
    log = "the machine dies: it eats all 32 GB of RAM and gets killed"
    assert "build-oom" in {r.code for r in res.resemble(log)}  # the words alone
    assert "build-oom" not in [d.code for d in explain(log).diagnoses]  # resembles_when: build, build_talk


def test_a_matched_signature_leaves_no_room_for_resemblance() -> None:
    expl = explain(
        "ImportError: flash_attn_2_cuda.cpython-310-x86_64-linux-gnu.so: undefined symbol: _ZN3c104cuda9SetDeviceEi"
    )
    assert expl.recognised and all(d.basis == "log" for d in expl.diagnoses)


@pytest.mark.parametrize(("log", "code"), PARAPHRASES)
def test_a_guess_offers_the_cause_s_general_fix(log: str, code: str) -> None:
    # Not the fix of the signature whose words are closest: that one is written for the message the
    # signature matches and may need its captures (an AlphaFold log on a GTX 1650 was told to "leave {arch}
    # out of TORCH_CUDA_ARCH_LIST", and a log naming no diffusers to use "the diffusers release before").
    for diagnosis in explain(log).diagnoses:
        assert diagnosis.fix == knowledge().codes[diagnosis.code].fix
        assert "{" not in diagnosis.fix


def test_the_runner_up_is_offered_only_when_close() -> None:
    for log, _code in PARAPHRASES:
        found = res.resemble(log)
        assert 1 <= len(found) <= 2
        assert all(r.score >= res.THRESHOLD for r in found)
        if len(found) == 2:
            assert found[0].score - found[1].score <= res.MARGIN


def test_the_json_report_validates_with_a_resemblance() -> None:
    expl = explain(PARAPHRASES[0][0])
    doc = {
        "schema": "flashdoctor/explain/1",
        "command": "explain",
        "status": "unrecognised",
        "exit_code": 1,
        **expl.to_json(),
        "machine": expl.machine_json(),
    }
    jsonschema.validate(json.loads(json.dumps(doc)), load_schema("explain-report.schema.json"))
    assert doc["recognised"] is False and doc["diagnoses"][0]["basis"] == "resemblance"


def test_resembles_when_names_known_contexts_and_codes_with_cause_signatures() -> None:
    kb = knowledge()
    cause_codes = {s.code for s in kb.signatures if s.role == "cause"}
    gated = {code: info.resembles_when for code, info in kb.codes.items() if info.resembles_when}
    assert gated, "the build causes are gated"
    sig_codes = {s.code for s in kb.signatures}
    for code, contexts in gated.items():
        assert code in sig_codes  # its signature's fix is offered
        assert set(contexts) <= set(kb.contexts), code
    # A code with no cause signature is offered only where its data gates it (build-slow: build logs).
    assert {code for code in gated if code not in cause_codes} == {"build-slow"}


def test_words_drop_glue_and_short_tokens() -> None:
    assert res.words("The build of flash_attn failed: nvcc is too old (CUDA 11.4)") == [
        "build",
        "flash_attn",
        "nvcc",
        "too",
        "old",
        "cuda",
    ]


def _build_resemblance():  # type: ignore[no-untyped-def]
    return load_script("build_resemblance")


def test_the_corpus_is_what_the_generator_writes_from_the_tuning_splits_only() -> None:
    mod = _build_resemblance()
    committed = (ROOT / "flashdoctor" / "data" / "resemblance.json").read_text(encoding="utf-8")
    assert committed == mod.render(mod.build()), "stale: run python scripts/build_resemblance.py"
    doc = json.loads(committed)
    jsonschema.validate(doc, load_schema("resemblance.schema.json"))
    assert doc["source"]["splits"] and not any(s.startswith("holdout") for s in doc["source"]["splits"])
    # Leaving a split out leaves its logs out (what scripts/eval_resemblance.py relies on).
    without = mod.build(exclude="dev8")
    assert "dev8" not in without["source"]["splits"] and without["source"]["logs"] < doc["source"]["logs"]


def test_the_corpus_names_known_codes_and_only_cause_codes_are_offered() -> None:
    kb = knowledge()
    cause_codes = {s.code for s in kb.signatures if s.role == "cause"}
    assert set(resemblance_corpus().codes) <= set(kb.codes)
    # build-failed's signatures are fallbacks and it has no resembles_when: never offered (a failed build
    # is what the log shows, not why).
    offered = set(res.build_model(kb, resemblance_corpus()).codes)
    assert offered == cause_codes | {c for c, info in kb.codes.items() if info.resembles_when}
    assert "build-failed" not in offered and "build-slow" in offered


def test_corpus_words_keep_words_of_several_logs_weighted_per_log() -> None:
    logs = [
        ("build-oom", "nvcc killed, nvcc killed again: out of memory"),
        ("build-oom", "the compiler was killed (memory)"),
        ("nvcc-missing", "nvcc not found; thread-specific-word"),
    ]
    got = res.corpus_words(logs, min_logs=2)
    assert got == {
        "build-oom": {
            "killed": round(1 + math.log(2), 3) + 1.0,
            "memory": 2.0,
            "nvcc": round(1 + math.log(2), 3),
        },
        "nvcc-missing": {"nvcc": 1.0},
    }
    assert res.corpus_words(logs, min_logs=4) == {}


def test_the_corpus_moves_a_log_towards_the_cause_of_real_logs_like_it() -> None:
    kb = knowledge()
    log = "compiling flash attention: the box froze, dmesg shows oom-killer picked cc1plus"
    corpus = ResemblanceCorpus(weight=1.0, codes={"build-oom": {"dmesg": 5.0, "cc1plus": 5.0, "froze": 5.0}})
    plain = {r.code: r.score for r in res.resemble(log, model=res.build_model(kb))}
    helped = {r.code: r.score for r in res.resemble(log, model=res.build_model(kb, corpus))}
    assert helped.get("build-oom", 0.0) > plain.get("build-oom", 0.0)
