"""data/run_time_limits.json: valid against its schema, each range a requirement on a FlashAttention
distribution that the selector can read, and the releases of one library covered without overlap."""

from __future__ import annotations

from itertools import combinations

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from flashdoctor.knowledge.data import load_data
from flashdoctor.knowledge.run_time_limits import limits_for, run_time_limits, watched
from flashdoctor.knowledge.schemas import schema_validator
from flashdoctor.knowledge.variants import DIST_VARIANT


def test_the_data_is_valid_and_every_range_names_a_flashattention_distribution() -> None:
    assert (
        list(schema_validator("run-time-limits.schema.json").iter_errors(load_data("run_time_limits"))) == []
    )
    for limit in run_time_limits():
        req = Requirement(limit.requires)
        assert canonicalize_name(req.name) in DIST_VARIANT and req.specifier, limit


def test_no_release_of_a_library_falls_under_two_ranges() -> None:
    probes = [f"{a}.{b}.0" for a in range(1, 4) for b in range(0, 25)]
    probes += [f"0.0.{b}{post}" for b in range(20, 40) for post in ("", ".post1", ".post2", ".post3")]
    for x, y in combinations(run_time_limits(), 2):
        if x.dist == y.dist:
            assert not [v for v in probes if v in x.versions and v in y.versions], (x, y)


def test_which_ranges_apply_to_an_installed_release() -> None:
    assert watched() == {"transformer-engine": [], "xformers": ["xformers/_C_flashattention"]}
    assert [x.requires for x in limits_for("transformer-engine", "1.12.0+7f2afaa")] == [
        "flash-attn>=2.1.1,<=2.6.3"
    ]
    assert [x.requires for x in limits_for("transformer-engine", "2.0.0")] == ["flash-attn>=2.1.1,<=2.7.3"]
    assert [x.requires for x in limits_for("transformer-engine", "2.14.1")] == ["flash-attn>=2.1.1,<=2.8.3"]
    assert limits_for("transformer-engine", "1.11.0") == ()  # declared in its metadata: the probe reads that
    assert limits_for("transformer-engine", "2.19.0") == ()  # not read yet: not limited
    assert limits_for("transformer-engine", None) == () and limits_for("vllm", "0.8.0") == ()
    # xformers: the first three numbers are compared up to 0.0.31 (2.8.0.post2 passes 0.0.31's <= (2, 8, 0))
    assert [x.requires for x in limits_for("xformers", "0.0.31.post1")] == ["flash-attn>=2.7.1,<2.8.1"]
    assert limits_for("xformers", "0.0.31.post1")[0].versions.contains("0.0.31.post1")
    assert [x.requires for x in limits_for("xformers", "0.0.29")] == ["flash-attn>=2.6.3,<2.7.3"]
    assert [x.requires for x in limits_for("xformers", "0.0.29.post3")] == ["flash-attn>=2.7.1,<2.7.3"]
    assert [x.requires for x in limits_for("xformers", "0.0.33.post1+cu128")] == ["flash-attn>=2.7.1,<=2.8.4"]
    assert (
        limits_for("xformers", "0.0.31", present=["xformers/_C_flashattention"]) == ()
    )  # its own bundled copy
    assert limits_for("xformers", "0.0.24") == () and limits_for("xformers", "0.0.36") == ()
