"""Cluster report, drift and exit codes, fed rank documents built from target specs."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import pytest

from flashdoctor.decide.cluster import (
    ClusterReport,
    Gathered,
    JoinInfo,
    RankResult,
    RankStatus,
    build_cluster_report,
    cluster_report_to_json,
    compute_drift,
    drift_fields,
    drift_values,
)
from flashdoctor.decide.explain import run_checks
from flashdoctor.knowledge.schemas import schema_validator
from flashdoctor.model.findings import Finding, Status, report_to_json
from tests.support.targets import target_env


def check_doc(name: str, **overrides: Any) -> dict[str, Any]:
    return report_to_json(run_checks(target_env(name, **overrides), source=f"target:{name}"))


def result(
    rank: int, name: str = "h100", host: str = "n1", device: str | None = None, **overrides: Any
) -> RankResult:
    doc = check_doc(name, **overrides)
    return RankResult(
        rank=rank,
        host=host,
        local_rank=rank,
        device=device,
        source="probe",
        check=doc,
        exit_code=doc["exit_code"],
    )


def joins(n: int, host: str = "n1", lws: int | None = None) -> dict[int, JoinInfo]:
    return {r: JoinInfo(rank=r, host=host, pid=100 + r, local_rank=r, local_world_size=lws) for r in range(n)}


default_joins = joins  # report()'s own parameter is called joins


def report(
    results: dict[int, RankResult],
    world: int | None = None,
    *,
    joins: dict[int, JoinInfo] | None = None,
    missing: Iterable[int] = (),
    unfinished: Iterable[int] = (),
    transport: str = "gloo",
    transport_error: str | None = None,
    extra_joins: int = 0,
    **kw: Any,
) -> ClusterReport:
    """The report of ``world`` ranks (default: one per result; every rank joined unless ``joins``);
    ``kw``: build_cluster_report's options."""
    world = world if world is not None else len(results)
    joined = joins if joins is not None else default_joins(world)
    g = Gathered(joined, results, tuple(missing), tuple(unfinished), transport, transport_error, extra_joins)
    return build_cluster_report(
        g,
        launcher="torchrun",
        world_size=world,
        rendezvous="n1:29500",
        timeouts={"join_s": 60.0, "rank_s": 900.0},
        **kw,
    )


def codes(rep: ClusterReport, status: Status | None = None) -> list[str]:
    return [f.code for f in rep.findings if status is None or f.status is status]


def validate(doc: dict[str, Any]) -> None:
    schema_validator("cluster-report.schema.json").validate(doc)


# -- drift ---------------------------------------------------------------------------------------------
def test_drift_values_of_an_h100_rank() -> None:
    doc = check_doc(
        "h100",
        installed={"flash-attn": {"version": "2.8.3+cu13torch2.11cxx11abiTRUE", "archs": ["sm_90"]}},
    )
    v = drift_values(doc)
    assert v["torch"] == "2.11.0+cu130"
    assert v["torch_cuda"] == "13.0"
    assert v["cxx11abi"] == "cxx11 (new)"
    assert v["python"] == "3.12 (cp312)"
    assert v["driver"] == "580.159.04 (CUDA 13.0)"
    assert v["gpu"] == "NVIDIA H100 80GB HBM3 (sm_90)"
    assert (
        v["flash-attn"] == "2.8.3+cu13torch2.11cxx11abiTRUE [sm_90]"
    )  # version with its local label + archs
    assert v["flash-attn-3"] == "not installed"
    assert v["nvcc"] == "13.0"


def test_drift_values_without_torch_and_unknowns() -> None:
    v = drift_values(check_doc("no-torch"))
    assert v["torch"] == "not installed"
    assert v["cxx11abi"] == "no torch"
    # A document that lacks a key (unknown on that rank) gives None: it takes no part in the vote.
    assert drift_values({"environment": {"python": "3.12"}})["torch"] is None
    assert drift_values(None)["python"] is None


def test_compute_drift_names_the_odd_one_out() -> None:
    vals = {0: {"torch": "2.8.0"}, 1: {"torch": "2.8.0"}, 2: {"torch": "2.7.1"}, 3: {"torch": "2.8.0"}}
    (d,) = compute_drift(vals)
    assert (d.field, d.majority, d.odd, d.status) == ("torch", "2.8.0", (2,), Status.FAIL)
    assert d.groups == (("2.8.0", (0, 1, 3)), ("2.7.1", (2,)))


def test_compute_drift_plurality_and_tie() -> None:
    vals = {0: {"driver": "a"}, 1: {"driver": "a"}, 2: {"driver": "b"}, 3: {"driver": "c"}}
    (d,) = compute_drift(vals)
    assert (d.majority, d.odd, d.status) == ("a", (2, 3), Status.WARN)
    tie = {0: {"python": "3.11"}, 1: {"python": "3.12"}, 2: {"python": "3.12"}, 3: {"python": "3.11"}}
    (d,) = compute_drift(tie)
    assert d.majority is None and d.odd == ()  # nobody is singled out on a tie
    assert [g[1] for g in d.groups] == [(0, 3), (1, 2)]


def test_unknown_values_do_not_make_drift() -> None:
    vals = {0: {"torch": "2.8.0"}, 1: {"torch": None}, 2: {"torch": "2.8.0"}}
    assert compute_drift(vals) == ()
    vals[1] = {"torch": "2.7.0"}
    vals[3] = {"torch": None}
    (d,) = compute_drift(vals)
    assert d.unknown == (3,)


def test_every_drift_field_is_extracted() -> None:
    fields = {f.field for f in drift_fields()}
    assert fields == set(drift_values(check_doc("h100")))
    assert all(f.source and f.why for f in drift_fields())


# -- the report --------------------------------------------------------------------------------------
def test_identical_ranks_pass_without_drift() -> None:
    rep = report({r: result(r, device=str(r)) for r in range(4)})
    assert rep.drift == ()
    assert codes(rep) == ["cluster-ranks-ok"]
    assert rep.exit_code() == 0
    doc = cluster_report_to_json(rep)
    validate(doc)
    assert doc["summary"] == {
        "ranks": 4,
        "ok": 4,
        "failed": 0,
        "error": 0,
        "unfinished": 0,
        "missing": 0,
        "drift_fields": 0,
    }
    assert [r["gpu"] for r in doc["ranks"]] == [f"GPU {r} NVIDIA H100 80GB HBM3 (sm_90)" for r in range(4)]


def test_a_failing_rank_fails_the_cluster_and_is_named_with_its_reason() -> None:
    res = {r: result(r, device=str(r)) for r in range(3)}
    res[3] = result(3, "old-driver", host="n2", device="3")
    rep = report(res)
    assert rep.entry(3).status is RankStatus.FAILED
    failed = [f for f in rep.findings if f.code == "cluster-rank-failed"]
    assert len(failed) == 1
    assert failed[0].message.startswith("rank 3 (host n2, GPU 3) failed: ")
    assert "[driver-too-old]" in failed[0].message
    assert rep.exit_code() == 1
    # old-driver is an A100 box on torch 2.8: every field it differs in is drift, rank 3 the odd one.
    by_field = {d.field: d for d in rep.drift}
    assert by_field["torch"].odd == (3,) and by_field["torch"].majority == "2.11.0+cu130"
    assert by_field["driver"].odd == (3,) and by_field["driver"].status is Status.WARN
    assert by_field["gpu"].value_of(3) == "NVIDIA A100-SXM4-40GB (sm_80)"
    validate(cluster_report_to_json(rep))


def test_warn_drift_passes_unless_strict() -> None:
    res = {r: result(r, device=str(r)) for r in range(3)}
    res[2] = result(2, device="2", driver="580.65.06")  # same CUDA 13.0, another driver build
    rep = report(res)
    assert [(d.field, d.status) for d in rep.drift] == [("driver", Status.WARN)]
    assert rep.exit_code() == 0
    assert rep.exit_code(strict=True) == 1
    assert cluster_report_to_json(rep, strict=True)["exit_code"] == 1


def test_flash_attn_build_drift_fails() -> None:
    fa = {"flash-attn": {"version": "2.8.3", "import_ok": True, "archs": ["sm_90"]}}
    res = {r: result(r, device=str(r), installed=fa) for r in range(4)}
    other = {"flash-attn": {"version": "2.8.3", "import_ok": True, "archs": ["sm_80"]}}
    res[1] = result(1, device="1", installed=other)  # same version, built for another GPU
    rep = report(res)
    (d,) = rep.drift
    assert (d.field, d.odd, d.majority) == ("flash-attn", (1,), "2.8.3 [sm_90]")
    assert rep.exit_code() == 1


def test_missing_and_unfinished_ranks_are_named() -> None:
    res = {0: result(0, device="0"), 1: result(1, device="1")}
    j = joins(3, lws=4)  # rank 2 joined, rank 3 never did
    rep = report(res, world=4, joins=j, missing=[3], unfinished=[2])
    assert [e.status for e in rep.ranks] == [
        RankStatus.OK,
        RankStatus.OK,
        RankStatus.UNFINISHED,
        RankStatus.MISSING,
    ]
    msgs = {f.code: f.message for f in rep.findings}
    assert msgs["cluster-rank-missing"].startswith("rank 3 never joined within 60 s")
    assert "n1" in msgs["cluster-rank-missing"]  # same node block (LOCAL_WORLD_SIZE 4) as ranks 0-2
    assert msgs["cluster-rank-unfinished"].startswith(
        "rank 2 (host n1) joined but sent no result within 900 s"
    )
    assert rep.exit_code() == 1
    doc = cluster_report_to_json(rep)
    validate(doc)
    assert doc["ranks"][3]["host_inferred"] is True and doc["ranks"][3]["check"] is None
    assert doc["summary"]["missing"] == 1 and doc["summary"]["unfinished"] == 1


def test_missing_rank_host_is_not_guessed_without_a_node_layout() -> None:
    rep = report({0: result(0)}, world=2, joins=joins(1), missing=[1])
    assert rep.entry(1).host is None
    assert "host unknown" in next(f.message for f in rep.findings if f.code == "cluster-rank-missing")


def test_a_rank_error_is_reported() -> None:
    res = {
        0: result(0),
        1: RankResult(rank=1, host="n1", error="cannot read target spec x.json: No such file", exit_code=1),
    }
    rep = report(res)
    assert rep.entry(1).status is RankStatus.ERROR
    assert "cannot read target spec" in next(
        f.message for f in rep.findings if f.code == "cluster-rank-error"
    )
    validate(cluster_report_to_json(rep))


def test_ranks_that_disagree_on_the_world_size_fail() -> None:
    started = {r: dataclasses.replace(j, world_size=3 if r == 1 else 2) for r, j in joins(2).items()}
    rep = report({0: result(0), 1: result(1)}, joins=started)
    f = next(f for f in rep.findings if f.code == "cluster-world-size-mismatch")
    assert f.status is Status.FAIL and rep.exit_code() == 1
    assert (
        f.message
        == "rank 1 (host n1) was started with WORLD_SIZE 3, rank 0 with 2: the ranks disagree on the job's size"
    )
    validate(cluster_report_to_json(rep))
    extra = report({0: result(0), 1: result(1)}, extra_joins=2)
    f = next(f for f in extra.findings if f.code == "cluster-world-size-mismatch")
    assert f.message.startswith("2 more processes joined than ranks 0-1")
    assert extra.exit_code() == 1
    same = {r: dataclasses.replace(j, world_size=2) for r, j in joins(2).items()}
    assert report({0: result(0), 1: result(1)}, joins=same).exit_code() == 0


def test_two_ranks_on_one_gpu_fail() -> None:
    res = {0: result(0, device="0"), 1: result(1, device="0"), 2: result(2, host="n2", device="0")}
    rep = report(res)
    shared = [f for f in rep.findings if f.code == "cluster-gpu-shared"]
    assert len(shared) == 1 and shared[0].message.startswith("ranks 0, 1 on host n1")
    assert rep.exit_code() == 1
    # The last line says why: it blamed "warnings under --strict", without --strict and with no warning.
    assert render(rep).splitlines()[-1] == "cluster: FAILED — cluster-gpu-shared; exit 1 on every rank"


def test_rank_without_gpu_warns() -> None:
    note = "local rank 1 has no GPU of its own: 1 visible on this host"
    res = {0: result(0, device="0"), 1: dataclasses.replace(result(1), device_note=note)}
    rep = report(res)
    assert ("cluster-no-gpu-for-rank", Status.WARN) in [(f.code, f.status) for f in rep.findings]


def failed_smoke_doc() -> dict[str, Any]:
    from flashdoctor.actions.smoke import SmokeReport

    bad = Finding(
        "smoke-numerics",
        Status.FAIL,
        "fa2 output disagrees with the fp32 reference (max err 0.5 > 0.02)",
        subject="fa2 @ GPU 0",
    )
    rep = SmokeReport(
        python="/py",
        device="cuda",
        torch="2.11.0+cu130",
        skipped_reason=None,
        gpus=(),
        backends=(),
        cases=(),
        results=(),
        input_checks=(),
        findings=(bad,),
        elapsed_s=3.0,
    )
    assert rep.exit_code() == 1
    return rep.to_json()


def test_smoke_failure_counts() -> None:
    r1 = dataclasses.replace(result(1), smoke=failed_smoke_doc(), smoke_passed=False, exit_code=1)
    r2 = dataclasses.replace(
        result(2), smoke_passed=False, smoke_error="UsageError: GPU 0 is not visible", exit_code=1
    )
    rep = report({0: result(0), 1: r1, 2: r2}, smoke=True)
    msgs = [f.message for f in rep.findings if f.code == "cluster-rank-failed"]
    assert "its smoke test failed: fa2 output disagrees with the fp32 reference" in msgs[0]
    assert msgs[0].endswith("[smoke-numerics]")
    assert "its smoke test could not run: UsageError: GPU 0 is not visible" in msgs[1]
    doc = cluster_report_to_json(rep)
    validate(doc)
    assert doc["smoke"] is True and doc["ranks"][1]["smoke_passed"] is False
    assert doc["ranks"][2]["smoke_error"] == "UsageError: GPU 0 is not visible"
    row1 = next(line for line in render(rep).splitlines() if line.startswith("1 "))
    assert row1.split()[-4:] == ["failed", "failed", "(exit", "1)"]  # smoke column, then the result


def test_store_fallback_warns() -> None:
    rep = report({0: result(0)}, transport="store", transport_error="RuntimeError: Connection refused")
    f = next(f for f in rep.findings if f.code == "cluster-gloo-failed")
    assert f.status is Status.WARN and f.evidence == "RuntimeError: Connection refused"
    assert cluster_report_to_json(rep)["transport"] == "store"


def test_rank_result_survives_json_round_trip_and_junk() -> None:
    r = result(2, device="2")
    assert RankResult.from_json(r.to_json()) == r
    junk = RankResult.from_json({"rank": 3, "exit_code": "0", "host": 7, "check": []})
    assert (junk.exit_code, junk.host, junk.check) == (1, None, None)  # unreadable code = failure


@pytest.mark.parametrize(
    "breakage",
    [
        {"environment": "a string"},
        {"verdicts": ["fa2"]},
        {"findings": [["fail"]]},
        {"environment": {**target_env("h100").to_target(), "torch": ["2.8.0"]}},
    ],
    ids=["environment", "verdicts", "findings", "torch"],
)
def test_a_check_document_off_its_schema_is_the_ranks_error(breakage: dict[str, Any]) -> None:
    """What a rank sends is read, never trusted (another flashdoctor, a bug, anyone who can write to the
    store): a check document of another shape crashed rank 0 (AttributeError, unhashable list) or went into
    the report, which promises flashdoctor/check/1 documents."""
    sent = {**result(1).to_json(), "check": {**check_doc("h100"), **breakage}}
    rep = report({0: result(0), 1: RankResult.from_json(sent)})
    assert rep.entry(1).status is RankStatus.ERROR and rep.exit_code() == 1
    msg = next(f.message for f in rep.findings if f.code == "cluster-rank-error")
    assert "its check document does not follow flashdoctor/check/1" in msg
    validate(cluster_report_to_json(rep))
    assert "cluster: FAILED" in render(rep, verbose=True)


def test_a_smoke_document_off_its_schema_is_the_ranks_error() -> None:
    sent = {**result(1).to_json(), "smoke": {"findings": "none"}, "smoke_passed": True}
    rep = report({0: result(0), 1: RankResult.from_json(sent)}, smoke=True)
    assert rep.entry(1).status is RankStatus.ERROR
    assert "its smoke document does not follow flashdoctor/smoke/1" in rep.entry(1).result.error  # type: ignore[union-attr]
    validate(cluster_report_to_json(rep))


@pytest.mark.parametrize("sent", [[1], {"rank": "one"}, {"rank": True}, {"host": "n1"}])
def test_a_result_without_a_rank_is_refused_with_a_value_error(sent: Any) -> None:
    with pytest.raises(ValueError, match="rank"):
        RankResult.from_json(sent)


@pytest.mark.parametrize("world", [1, 2, 5])
def test_every_rank_appears_once(world: int) -> None:
    rep = report({0: result(0)}, world=world, joins=joins(1), missing=list(range(1, world)))
    assert [e.rank for e in rep.ranks] == list(range(world))


# -- human rendering -----------------------------------------------------------------------------------
def render(rep: ClusterReport, **kw: Any) -> str:
    import io

    from rich.console import Console

    from flashdoctor.render.cluster import render_cluster

    buf = io.StringIO()
    render_cluster(rep, Console(file=buf, width=200, no_color=True, highlight=False), **kw)
    return buf.getvalue()


def test_human_report_names_ranks_drift_and_outcome() -> None:
    res = {r: result(r, device=str(r)) for r in range(3)}
    res[3] = result(3, "old-driver", host="n2", device="3")
    out = render(report(res, world=5, joins={**joins(4), 3: JoinInfo(rank=3, host="n2")}, missing=[4]))
    lines = out.splitlines()
    assert lines[0].startswith("flashdoctor cluster check: 5 ranks on 2 hosts (torchrun, rendezvous n1:29500")
    row3 = next(line for line in lines if line.startswith("3 "))
    assert "n2" in row3 and "A100" in row3 and "2.8.0+cu128" in row3 and "failed (exit 1)" in row3
    assert next(line for line in lines if line.startswith("4 ")).rstrip().endswith("missing")
    assert " ✗ torch: 2.11.0+cu130 on 3 of 4; odd one(s) out: rank 3 2.8.0+cu128" in out
    assert "rank 4 never joined within 60 s" in out and "[cluster-rank-missing]" in out
    assert "[driver-too-old]" in out
    assert lines[-1].startswith("cluster: FAILED — 1 failed, 1 missing, ") and lines[-1].endswith(
        "exit 1 on every rank"
    )


def test_human_report_of_a_clean_cluster_and_verbose_details() -> None:
    rep = report({r: result(r, device=str(r)) for r in range(2)})
    out = render(rep)
    assert "drift" not in out
    assert out.splitlines()[-1] == "cluster: passed — exit 0 on every rank"
    verbose = render(rep, verbose=True)
    assert "rank 1 (host n1, GPU 1)" in verbose and "[gpu-found]" in verbose


def test_human_report_tie_and_strict() -> None:
    res = {0: result(0), 1: result(1, python="3.11")}
    out = render(report(res))
    assert "Python: no majority — 3.12 (cp312) on rank 0; 3.11 (cp311) on rank 1" in out
    res = {0: result(0, device="0"), 1: result(1, device="1", driver="580.65.06")}
    assert render(report(res)).splitlines()[-1].startswith("cluster: passed (1 field drift)")
    assert "FAILED" in render(report(res, strict=True), strict=True).splitlines()[-1]
