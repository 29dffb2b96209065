"""Minimal builds and crashes in the real runner (CPU mode), with fakes installed as pip leaves them.

The fakes' dist versions carry flashdoctor build profiles (``3.0.0+fd.sm90.hd64.bf16``) and, like the
FA3 minimal build on the H100, they segfault when called with what the build left out. So a passing
test here proves that no uncovered call was made (the call log agrees), and the crash tests prove that a
crash in one case is reported for that case while the backend's other cases still run.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from flashdoctor.actions.smoke import (
    Case,
    CaseStatus,
    SmokeReport,
    installed_versions,
    run_bench,
    run_smoke,
)
from flashdoctor.actions.smoke.run import run_with_restarts
from flashdoctor.decide.smoke.events import RunInfo
from flashdoctor.decide.smoke.judge import judge_smoke
from flashdoctor.model.cases import SMOKE_CASES_CPU
from flashdoctor.model.findings import Status
from tests.support.smoke_fakes import FAKE_RUNNER_HEAD, runner_env, write_site

pytestmark = pytest.mark.system

FA2_MINIMAL = "2.7.4.post1+fd.sm80.hd32.fp16"  # FA2 2.7.x: head dims <= 32, fp16 only
FA3_MINIMAL = "3.0.0+fd.sm90.hd64.bf16.nosplit.nopagedkv.nofp8"  # FA3: head dim 64 kernel, bf16 only
WIDE = Case("wide", 2, 33, 2, 64)  # head dim 64: beyond FA2's hd32 build, FA3's hd64 kernel has it


def rows(report: SmokeReport) -> dict[tuple[str, str], Any]:
    return {(r.backend, r.case.name): r for r in report.results}


def calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_build_profiles_are_read_past_a_start_up_banner(tmp_path: Path) -> None:
    """A sitecustomize writing a banner to stdout without a newline made the environment probe's answer
    unreadable: the smoke then knew no build profile and called a minimal build with what it left out
    (a segfault on a real one)."""
    site = write_site(tmp_path / "site", fa2_version=FA2_MINIMAL)
    banner = tmp_path / "banner"
    banner.mkdir()
    (banner / "sitecustomize.py").write_text("import sys; sys.stdout.write('(base) ')\n")
    assert installed_versions(sys.executable, runner_env(banner, site)) == {"fa2": FA2_MINIMAL}


@pytest.fixture(scope="module")
def minimal(tmp_path_factory: pytest.TempPathFactory) -> tuple[SmokeReport, list[dict[str, Any]]]:
    root = tmp_path_factory.mktemp("minimal")
    site = write_site(
        root / "site",
        fa2_version=FA2_MINIMAL,
        fa3_version=FA3_MINIMAL,
        crash_outside={"fa2": {"dtypes": ["fp16"], "max_head_dim": 32}, "fa3": {"dtypes": ["bf16"]}},
    )
    log = root / "calls.jsonl"
    env = {**runner_env(site), "FAKE_FLASH_CALLS": str(log)}
    report = run_smoke(
        sys.executable,
        env,
        device="cpu",
        timeout=150,
        variants=["fa2", "fa3"],
        cases=(*SMOKE_CASES_CPU, WIDE),
        repeats=2,
    )
    return report, calls(log)


@pytest.mark.slow
def test_minimal_builds_are_called_only_with_what_they_cover(
    minimal: tuple[SmokeReport, list[dict[str, Any]]],
) -> None:
    report, log = minimal
    assert report.runs == 1, [f.message for f in report.findings]  # nothing crashed
    assert not [f for f in report.findings if f.status is Status.FAIL], [f.message for f in report.findings]
    # The call log: FA3 never saw fp16, FA2 never saw bf16 or a head dim above 32. (The deliberate wrong
    # inputs, fp32 and head dim 512, are refused by every build's own checks before any kernel.)
    real = [c for c in log if c["dtype"] != "fp32" and c["head_dim"] <= 256]
    assert real and {c["variant"] for c in real} == {"fa2", "fa3"}
    assert [c for c in real if c["variant"] == "fa3" and c["dtype"] == "fp16"] == []
    assert [c for c in real if c["variant"] == "fa2" and (c["dtype"] == "bf16" or c["head_dim"] > 32)] == []
    assert {(c["dtype"], c["head_dim"]) for c in log if c["variant"] == "fa2" and c not in real} == {
        ("fp32", 32),  # fp32 at a head dim the build has (its smallest kernel)
        ("fp16", 512),  # head dim 512 in the dtype the build has
    }


def test_uncovered_cases_are_reported_as_not_compiled(
    minimal: tuple[SmokeReport, list[dict[str, Any]]],
) -> None:
    report, _ = minimal
    r = rows(report)
    fa3_off = r[("fa3", "seed-fp16")]
    assert (fa3_off.status, fa3_off.category, fa3_off.reason) == (
        CaseStatus.SKIP,
        "not_compiled",
        "not compiled in this build: fp16",
    )
    # found through the registry's module list (flash_attn_3.flash_attn_interface), version from its dist
    fa3 = report.backend("fa3")
    assert (
        fa3 is not None and fa3.module == "flash_attn_3.flash_attn_interface" and fa3.version == FA3_MINIMAL
    )
    for case in ("seed", "seed-causal", "long", "long-causal", "gqa", "varlen", "wide"):
        assert r[("fa3", case)].status is CaseStatus.PASS, (case, r[("fa3", case)].reason)
    assert r[("fa2", "seed-fp16")].status is CaseStatus.PASS
    for case in ("seed", "seed-causal", "long", "long-causal", "gqa", "varlen"):
        assert r[("fa2", case)].reason == "not compiled in this build: bf16", case
    assert r[("fa2", "wide")].reason == "not compiled in this build: bf16"  # dtype first, then head dim
    nc = {f.variant: f for f in report.findings if f.code == "smoke-not-compiled"}
    assert set(nc) == {"fa2", "fa3"} and {f.status for f in nc.values()} == {Status.WARN}
    assert nc["fa3"].message.startswith("FA3 flash_attn_interface 3.0.0 hd64 bf16 on CPU: ")
    assert nc["fa3"].message.endswith("not compiled in this build: fp16 [seed-fp16]")
    # The deliberate wrong inputs use a dtype the build has: FA2 refuses head dim 512 in fp16. A minimal FA3
    # build is not fed wrong input at all (the registry: it dies instead of refusing).
    checks = {(c.backend, c.check): c for c in report.input_checks}
    assert checks[("fa2", "head_dim_512")].raised and not [b for b, _ in checks if b == "fa3"]


def _smoke_one_minimal_build(
    tmp_path: Path, variant: str, version: str, build_has: dict[str, Any]
) -> SmokeReport:
    """The smoke test of one fake minimal build (``build_has``: what it has kernels for; any other call
    segfaults) over the CPU cases and a head-dim-128 case."""
    site = write_site(
        tmp_path / "site", **{f"{variant}_version": version}, crash_outside={variant: build_has}
    )
    h128 = Case("h128", 1, 33, 2, 128)
    return run_smoke(
        sys.executable,
        runner_env(site),
        device="cpu",
        timeout=150,
        variants=[variant],
        cases=(*SMOKE_CASES_CPU, h128),
        repeats=2,
    )


@pytest.mark.slow
def test_input_checks_use_a_head_dim_the_build_has(tmp_path: Path) -> None:
    """Found on the H100: an FA3 minimal build (head dim 128, bf16) fed fp32 at head dim 64 died (SIGSEGV)
    in the input check, so `install --fa3 --from-source` rolled back a working build. A minimal FA2 build
    is fed fp32 at a head dim it has, and refuses it with its own error."""
    report = _smoke_one_minimal_build(
        tmp_path, "fa2", "2.8.3+fd.sm90.hd128.bf16", {"dtypes": ["bf16"], "head_dims": [128]}
    )
    assert report.runs == 1 and report.exit_code() == 0, [f.message for f in report.findings]
    checks = {c.check: c for c in report.input_checks if c.backend == "fa2"}
    assert checks["fp32"].raised and "fp16 and bf16" in str(checks["fp32"].error)
    assert rows(report)[("fa2", "h128")].status is CaseStatus.PASS


@pytest.mark.slow
def test_a_minimal_fa3_build_is_not_fed_input_it_must_refuse(tmp_path: Path) -> None:
    """Measured on the H100 (2026-12-05): the FA3 minimal build (head dim 128, bf16, every --no-*) died with
    SIGSEGV on fp32 at its own head dim 128 too, so the smoke test restarted its runner (19.4 s with FA2).
    The registry says so (variants.json fa3 smoke.minimal_input_checks: false): such a build is not called
    with wrong input at all — no crash, no restart — and the report says why."""
    report = _smoke_one_minimal_build(
        tmp_path,
        "fa3",
        "3.0.0+fd.sm90.hd128.bf16.nosplit.nopagedkv.nofp8",
        {"dtypes": ["bf16"], "head_dims": [128], "fp32": "crash"},
    )
    assert report.runs == 1 and report.exit_code() == 0, [f.message for f in report.findings]
    assert not [c for c in report.input_checks if c.backend == "fa3"]
    assert not [f for f in report.findings if f.code == "smoke-crash"]
    skip = [f for f in report.findings if f.code == "smoke-input-check" and f.variant == "fa3"]
    assert [f.status for f in skip] == [Status.SKIP] and "has no branch that refuses them" in skip[0].message
    assert rows(report)[("fa3", "h128")].status is CaseStatus.PASS


@pytest.mark.slow
def test_head_dims_outside_the_profile_are_not_called(tmp_path: Path) -> None:
    site = write_site(
        tmp_path / "site", fa2_version="2.8.3+fd.sm80.hd32.bf16", crash_outside={"fa2": {"max_head_dim": 32}}
    )
    r = run_bench(sys.executable, runner_env(site), WIDE, device="cpu", repeats=2, backends=["fa2"])
    fa2 = next(x for x in r.rows if x.backend == "fa2")
    assert (fa2.status, fa2.reason) == ("skip", "not compiled in this build: head dim 64")
    assert r.runs == 1 and r.exit_code() == 0


@pytest.mark.slow
def test_a_crash_is_confined_to_its_case(tmp_path: Path) -> None:
    """An upstream FA3 build (no profile label) that segfaults when given fp16, as on the H100: the fp16
    case is the crash; the runner is restarted and every other FA3 case runs and passes."""
    site = write_site(
        tmp_path / "site",
        fa2_version="2.8.3",
        fa3_version="3.0.0",
        crash_outside={"fa3": {"dtypes": ["bf16"]}},
    )
    r = run_smoke(
        sys.executable, runner_env(site), device="cpu", timeout=150, variants=["fa2", "fa3"], repeats=2
    )
    assert r.runs == 2 and r.exit_code() == 1
    row = rows(r)[("fa3", "seed-fp16")]
    assert row.status is CaseStatus.CRASH and row.reason == "the interpreter died (SIGSEGV)"
    assert row.error and "Segmentation fault" in row.error  # faulthandler's stack, the evidence
    others = [x for x in r.results if x.backend == "fa3" and x.case.name != "seed-fp16"]
    assert len(others) == 6 and {x.status for x in others} == {CaseStatus.PASS}, [x.reason for x in others]
    assert all(x.fwd_ms and x.kernel_proof for x in others)  # timed and profiled in the restarted runner
    assert all(x.status is CaseStatus.PASS for x in r.results if x.backend == "fa2")
    crash = next(f for f in r.findings if f.code == "smoke-crash")
    assert crash.variant == "fa3" and crash.message.endswith("[seed-fp16]")
    assert not [x for x in r.results if x.status is CaseStatus.NOT_RUN]


FAKE_RUNNER = FAKE_RUNNER_HEAD + textwrap.dedent(
    """
    emit("variant", backend="fa3", installed=True, import_ok=True, version="3.0.0")
    emit("gpu", gpu=0, name="fake", capability="9.0", memory_gb=80)
    emit("backend_start", gpu=0, backend="fa3")
    if ["*", "fa3", "seed-fp16"] not in cfg["skip_cases"]:
        emit("case_start", gpu=0, backend="fa3", case="seed-fp16", phase="check")
        time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGSEGV)
    emit("case_start", gpu=0, backend="fa3", case="long", phase="check")
    while True:
        time.sleep(0.5)
        emit("heartbeat")  # progress: only the overall limit stops it
    """
)


@pytest.mark.slow
def test_a_restarted_runner_reports_its_own_time_limit(tmp_path: Path) -> None:
    """The second runner has what is left of the budget, and its timeout says so (not the whole)."""
    fake = tmp_path / "fake_python"
    fake.write_text(f"#!{sys.executable}\n" + FAKE_RUNNER)
    fake.chmod(0o755)
    config = {"mode": "smoke", "device": "cuda", "backends": ["fa3"], "skip_cases": []}
    events = run_with_restarts(str(fake), dict(os.environ), config, timeout=10, stall_timeout=None)
    timeout = next(e for e in events if e["event"] == "timeout")
    assert timeout["case"] == "long" and timeout["budget_s"] == 10.0 and timeout["attempt"] == 1
    assert 5.0 < timeout["timeout_s"] < 9.9  # what was left after the first runner's crash
    report = judge_smoke(
        events,
        RunInfo(str(fake), "cuda", ("fa3",)),
        cases=[c for c in SMOKE_CASES_CPU if c.name in ("seed-fp16", "long")],
    )
    r = rows(report)
    assert r[("fa3", "seed-fp16")].status is CaseStatus.CRASH
    long = r[("fa3", "long")]
    assert long.status is CaseStatus.TIMEOUT
    assert long.reason is not None and long.reason.startswith("did not finish before the 10 s limit ran out")
    assert f"(killed after {timeout['timeout_s']:g} s in runner process 2)" in long.reason
