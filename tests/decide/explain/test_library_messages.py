"""explain on the messages other libraries (and flash-attn's own setup.py) print about FlashAttention, read
from their sources (tests/data/explain/library_messages.json: the condition that raises each message and the
code that names its cause were judged from the source, not from explain's answer). A message pasted on its
own is the hardest case: no traceback, no versions, no context.

The score when this set was added (126 messages of transformers, diffusers, unsloth, LLaMA-Factory, Transformer
Engine, xformers, ComfyUI, vLLM, sglang, flashinfer and flash-attn's setup.py): 69 first with the signatures of
that day, 99 after the messages became signatures. With FA4's CuTe DSL stack and ROCm's messages added (227):
120 with the day's starting signatures, 182 then; with the installers (pip, uv, poetry, pdm, pixi, conda,
mamba), Windows and Jetson (311): 176 with the day's starting signatures, 256 now. The misses are mostly notices that name no failure by
themselves (an informational 'Cannot use FlashAttention backend because ...', 'Auto set MAX_JOBS'), where the
cause has to come from the rest of the log."""

from __future__ import annotations

import json

import pytest

from flashdoctor.decide.explain import explain_bytes
from flashdoctor.knowledge.signatures import knowledge
from tests.support.paths import DATA

# library -> messages explain names right first, when the floor was set
FLOORS = {
    "comfyui": 3,
    "conda": 1,
    "cpython": 2,
    "diffusers": 5,
    "flash-attn": 30,
    "flash-attn-3": 3,
    "flash-attn-4": 29,
    "flashinfer-python": 2,
    "git (Git for Windows)": 1,
    "jetson-containers": 0,
    "llamafactory": 6,
    "mamba": 1,
    "ninja": 1,
    "nvidia-cutlass-dsl": 18,
    "pdm": 3,
    "pip": 20,
    "pixi": 3,
    "poetry": 4,
    "quack-kernels": 0,
    "setuptools": 4,
    "sgl-kernel": 2,
    "sglang": 1,
    "torch": 30,
    "transformer-engine": 8,
    "transformers": 29,
    "unsloth": 4,
    "uv": 19,
    "vllm": 6,
    "vllm-flash-attn": 2,
    "xformers": 22,
}
MESSAGES = json.loads((DATA / "explain" / "library_messages.json").read_text(encoding="utf-8"))["messages"]


def test_every_message_names_a_known_code_and_its_source() -> None:
    assert {m["library"] for m in MESSAGES} == set(FLOORS)
    codes = set(knowledge().codes)
    for m in MESSAGES:
        assert m["code"] in codes, m
        assert m["repo"].count("/") == 1 and m["path"] and m["ref"], m


@pytest.mark.parametrize("library", sorted(FLOORS))
def test_library_messages_keep_their_score(library: str) -> None:
    cases = [m for m in MESSAGES if m["library"] == library]
    got = {
        m["message"]: [d.code for d in explain_bytes(m["message"].encode(), None).diagnoses] for m in cases
    }
    right = [m for m in cases if got[m["message"]][:1] == [m["code"]]]
    misses = [(m["code"], got[m["message"]][:2], m["message"][:80]) for m in cases if m not in right]
    assert len(right) >= FLOORS[library], misses
