"""The FA3 build through the service and the CLI with a checkout whose hopper/setup.py has main's structure
(tests/support/fake_hopper.py): the dry run (local and --target) lists the units the checkout's own source
list gives, the real pip run's "ninja" steps are exactly those units, and progress arrives as events."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from flashdoctor.actions.source_build.api import BuildOptions, build, plan_build
from tests.cli.test_build_cli import fd
from tests.decide.source_build.test_build_hopper import FOUR, MEASURED
from tests.support.fake_hopper import make_fake_checkout
from tests.support.paths import TARGETS
from tests.support.targets import target_env

NO_FLAGS = [f"--no-{f}" for f in MEASURED.disable]


class Recorder:
    """A BuildProgress that keeps the events."""

    def __init__(self) -> None:
        self.events: list[tuple[object, ...]] = []

    def started(self, total: int | None) -> None:
        self.events.append(("started", total))

    def step(self, done: int, total: int, unit: str | None, elapsed: float) -> None:
        self.events.append(("step", done, total, unit))

    def finished(self, ok: bool, elapsed: float) -> None:
        self.events.append(("finished", ok))


def _opts(tmp: Path, checkout: Path, **kw: object) -> BuildOptions:
    return BuildOptions(
        request=MEASURED,
        source=str(checkout),
        wheelhouse=tmp / "wh",
        log=tmp / "build.log",
        **kw,  # type: ignore[arg-type]
    )


def test_dry_run_reads_the_checkout(tmp_path: Path) -> None:
    checkout = make_fake_checkout(tmp_path)
    out = plan_build(target_env("h100"), _opts(tmp_path, checkout))
    assert out.status == "planned" and out.plan is not None
    assert out.plan.units == FOUR and out.plan.unit_count == 4 and out.plan.units_from == "checkout"
    assert out.plan.version == "3.0.0b1"
    # The checkout's hopper/ directory works as --source too.
    again = plan_build(target_env("h100"), _opts(tmp_path, checkout / "hopper"))
    assert again.plan is not None and again.plan.units == FOUR


def test_dry_run_without_a_checkout_says_it_estimates(tmp_path: Path) -> None:
    out = plan_build(target_env("h100"), BuildOptions(request=MEASURED))
    assert out.plan is not None and out.plan.units_from == "estimate" and out.plan.unit_count == 4
    git = plan_build(
        target_env("h100"), BuildOptions(request=MEASURED, source="https://example.invalid/fa.git")
    )
    assert git.plan is not None and any(n.startswith("no checkout was read") for n in git.plan.notes)


def test_a_linked_setup_py_is_not_followed(tmp_path: Path) -> None:
    checkout = make_fake_checkout(tmp_path)
    real = tmp_path / "elsewhere.py"
    (checkout / "hopper" / "setup.py").rename(real)
    (checkout / "hopper" / "setup.py").symlink_to(real)
    from flashdoctor.errors import UsageError

    with pytest.raises(UsageError, match="cannot read"):
        plan_build(target_env("h100"), _opts(tmp_path, checkout))


@pytest.mark.system
@pytest.mark.slow
def test_build_runs_exactly_the_planned_units_and_emits_events(tmp_path: Path) -> None:
    checkout = make_fake_checkout(tmp_path)
    environ = {**os.environ, "FLASHDOCTOR_CACHE_DIR": str(tmp_path / "cache")}
    rec = Recorder()
    out = build(target_env("h100"), _opts(tmp_path, checkout), sys.executable, None, environ, rec)
    assert out.status == "built", (out.run and out.run.first_error, out.notes)
    assert out.plan is not None and out.run is not None
    assert out.run.compiled == tuple(Path(u).name for u in out.plan.units)
    assert (out.run.steps_done, out.run.steps_total) == (4, 4)
    assert rec.events[0] == ("started", 4) and rec.events[-1] == ("finished", True)
    assert [e[1:3] for e in rec.events[1:-1]] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert out.wheel is not None and out.wheel.filename.startswith("flash_attn_3-3.0.0b1+fd.sm90.hd128.bf16.")
    log = (tmp_path / "build.log").read_text()
    assert "FLASH_ATTENTION_DISABLE_HDIMDIFF64=TRUE" in log and "FLASH_ATTENTION_OFFLINE_BUILD=1" in log


@pytest.mark.system
def test_cli_dry_run_json_and_target(tmp_path: Path) -> None:
    checkout = make_fake_checkout(tmp_path)
    common = [
        "build",
        "--fa3",
        "--source",
        str(checkout),
        "--head-dims",
        "128",
        "--dtypes",
        "bf16",
        *NO_FLAGS,
    ]
    p = fd(*common, "--target", str(TARGETS / "h100.json"), "--json")
    assert p.returncode == 0, p.stderr
    plan = json.loads(p.stdout)["plan"]
    assert plan["units"] == list(FOUR) and plan["unit_count"] == 4 and plan["units_from"] == "checkout"
    assert plan["fa3_setup"]["download_when"] == ">=12.3,<13.0,!=12.8"
    p = fd(*common, "--target", str(TARGETS / "h100.json"))
    assert p.returncode == 0, p.stderr
    assert "4 ninja steps for sm_90, from the checkout's hopper/setup.py" in p.stdout
    assert "flash_fwd_hdim128_bf16_sm90.cu" in p.stdout and "2.8.3" not in p.stdout
    p = fd("build", "--fa3", "--head-dims", "128", "--target", str(TARGETS / "h100.json"))
    assert p.returncode == 0 and "no checkout was read" in p.stdout and "an estimate" in p.stdout


def test_the_outcome_says_when_ninja_ran_other_steps_than_planned(tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from flashdoctor.decide.source_build.hopper import fa3_setup_facts
    from flashdoctor.decide.source_build.plan import make_plan
    from flashdoctor.model.build import BuildOutcome, RunResult
    from flashdoctor.render.build import render_outcome
    from tests.support.hopper_setups import MAIN

    plan = make_plan(target_env("h100"), MEASURED, "3.0.0", fa3_setup_facts(MAIN))
    for steps, warned in ((4, False), (7, True)):
        run = RunResult(0, 150.0, tmp_path / "b.log", steps, steps, ())
        buf = io.StringIO()
        render_outcome(BuildOutcome("built", plan, run=run), Console(file=buf, width=200))
        text = buf.getvalue()
        assert f"{steps} of {steps} ninja steps (4 compile units)" in text
        assert ("ninja ran 7 steps where the plan read 4" in text) is warned
