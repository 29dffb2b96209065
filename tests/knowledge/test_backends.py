"""The one backend vocabulary (knowledge.backends): the smoke's and the runtime's names agree on what
each means, and every variant is found through the registry."""

from __future__ import annotations

import pytest

from flashdoctor import knowledge
from flashdoctor.knowledge import backends as voc
from flashdoctor.knowledge.variants import VARIANTS, variant_info
from flashdoctor.model import cases
from flashdoctor.runtime import dispatch


def test_the_smoke_and_the_runtime_read_their_names_from_the_vocabulary() -> None:
    assert cases.BACKENDS == voc.SMOKE_BACKENDS and cases.FALLBACK == voc.SMOKE_FALLBACK == "sdpa-math"
    assert dispatch.BACKENDS == voc.RUNTIME_BACKENDS and dispatch.FALLBACK == voc.RUNTIME_FALLBACK == "sdpa"
    assert set(voc.SMOKE_BACKENDS) | set(voc.RUNTIME_BACKENDS) == set(voc.NAMES)
    assert cases.VARIANT_BACKENDS == VARIANTS


def test_a_name_means_the_same_to_the_runtime_and_to_the_smoke() -> None:
    runtime = knowledge.load_data("attention_backends")["backends"]
    for name, raw in runtime.items():
        word = voc.backend(name)
        assert word.kind == ("variant" if raw["kind"] == "flash-attn" else "sdpa"), name
        assert word.variant == raw.get("variant"), name
        if word.kind == "sdpa":
            assert word.sdpa_backend == raw["sdpa_backend"], name


def test_sdpa_selects_among_the_forced_kernels() -> None:
    sdpa = voc.backend("sdpa")
    assert not sdpa.forced and sdpa.sdpa_backend is None
    assert set(sdpa.selects) == {b for b in voc.SMOKE_BACKENDS if voc.backend(b).kind == "sdpa"}
    assert all(voc.backend(b).forced for b in sdpa.selects)
    assert voc.runtime_name("sdpa-flash") == "sdpa-flash" and voc.runtime_name("sdpa-cudnn") == "sdpa-cudnn"
    assert voc.runtime_name("sdpa-math") == voc.runtime_name("sdpa-efficient") == "sdpa"
    assert voc.runtime_name("fa3") == "fa3"
    with pytest.raises(KeyError):
        voc.runtime_name("fa5")


def test_each_variant_is_found_through_the_registry() -> None:
    table = voc.variant_imports()
    assert set(table) == set(VARIANTS)
    for v in VARIANTS:
        spec = table[v]
        assert spec["dists"][0] == variant_info(v).dist  # the registry's distribution, then _ spelling
        assert spec["modules"] == list(variant_info(v).modules)  # the registry's, in its order
        assert spec["function"] == "flash_attn_func"
    assert "flash_attn_3.flash_attn_interface" in table["fa3"]["modules"]
    assert table["fa3"]["dists"] == ["flash-attn-3", "flash_attn_3"]
    assert table["fa4"]["needs_dist"] is True and table["fa2"]["needs_dist"] is False
    assert "flash_attn_3._C" in table["fa3"]["extensions"]
