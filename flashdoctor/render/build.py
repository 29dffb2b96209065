"""Human and JSON forms of a source build: the plan (--dry-run), preflight findings, the outcome."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from flashdoctor import __version__
from flashdoctor.model.build import BuildOutcome, BuildPlan
from flashdoctor.model.findings import Status
from flashdoctor.render.console import STATUS_MARK, print_finding, print_markup

BUILD_SCHEMA_ID = "flashdoctor/build/1"


def outcome_to_json(outcome: BuildOutcome) -> dict[str, Any]:
    return {
        "schema": BUILD_SCHEMA_ID,
        "flashdoctor": __version__,
        **outcome.to_json(),
        "exit_code": outcome.exit_code,
    }


def render_plan(plan: BuildPlan, console: Console, command: tuple[str, ...] = ()) -> None:
    title = "FA2 (flash-attn)" if plan.variant == "fa2" else "FA3 (flash_attn_3, hopper/)"
    print_markup(
        console,
        f"[bold]Build plan[/]: {title} {escape(plan.version)} → local version [cyan]+{escape(plan.label)}[/]",
    )
    if plan.targets:
        print_markup(console, " targets:")
        for t in plan.targets:
            mark, style = STATUS_MARK["ok" if t.runs == "native" else "fail"]
            print_markup(console, f"  [{style}]{mark}[/] {escape(t.subject)}: {escape(t.note)}")
    archs = ", ".join(f"sm_{a}" for a in plan.profile.archs)
    n_arch = len(plan.profile.archs)
    if plan.variant == "fa2" and plan.units:
        print_markup(
            console,
            f" compile units: {len(plan.units)} kernel unit(s) × {n_arch} arch(s) ({archs}) = [bold]{plan.unit_count}[/]"
            f" (arch-only build {plan.arch_only_unit_count}, upstream default {plan.default_unit_count}:"
            f" [bold]{plan.reduction:.0f}× fewer[/])",
        )
        print_markup(console, f" ninja steps: {plan.edges} compiles (+ flash_api.cpp) and a link")
        for u in plan.units:
            print_markup(console, f"   [dim]{escape(u)}[/]")
    elif plan.variant == "fa3":
        source = {
            "checkout": "from the checkout's hopper/setup.py",
            "estimate": "[yellow]an estimate[/]: no readable hopper/setup.py",
        }.get(plan.units_from, plan.units_from)
        print_markup(
            console,
            f" compile units: [bold]{plan.unit_count}[/] ninja steps for {archs}, {source}"
            f" (arch-only build {plan.arch_only_unit_count}, upstream default {plan.default_unit_count}:"
            f" [bold]{plan.reduction:.1f}× fewer[/])",
        )
        for u in plan.units:
            print_markup(console, f"   [dim]{escape(u)}[/]")
    elif plan.variant == "fa2" and not plan.default_unit_count:
        # a release not in flashdoctor's table (plan.notes says so): "0 ... 0.0× fewer" would be a count
        print_markup(
            console, f" compile units: [yellow]unknown[/] for {archs} (the release's sources, as they are)"
        )
    else:
        print_markup(
            console,
            f" compile units: [bold]{plan.unit_count}[/] for {archs} (upstream default {plan.default_unit_count}:"
            f" {plan.reduction:.1f}× fewer)",
        )
    print_markup(
        console, f" parallelism: MAX_JOBS={plan.jobs.max_jobs} NVCC_THREADS={plan.jobs.nvcc_threads}"
    )
    for r in plan.jobs.reasons:
        print_markup(console, f"   [dim]{escape(r)}[/]")
    print_markup(console, " environment:")
    for k, v in plan.env.items():
        print_markup(console, f"   {escape(k)}={escape(v)}")
    if plan.edit_sources:
        what = (
            "kernel list and head-dim/dtype dispatch"
            if plan.profile.narrowed
            else "setup_requires and bdist_wheel import only"
        )
        print_markup(console, f" source edits: setup.py and static_switch.h ({what}; see docs/build.md)")
    if command:
        print_markup(console, f" command: {escape(' '.join(command))}")
    for n in plan.notes:
        print_markup(console, f" [dim]note:[/] {escape(n)}")


def render_findings(outcome: BuildOutcome, console: Console, verbose: bool = False) -> None:
    shown = [f for f in outcome.findings if verbose or f.status in (Status.FAIL, Status.WARN)]
    if not outcome.findings:
        return
    bad = sum(f.status is Status.FAIL for f in outcome.findings)
    print_markup(console, f"[bold]Preflight[/]: {len(outcome.findings)} check(s), {bad} blocking")
    for f in shown:
        evidence = f.evidence if f.evidence and (verbose or f.status is Status.FAIL) else None
        fix = f.fix if f.fix and f.status in (Status.WARN, Status.FAIL) else None
        print_finding(
            console, f.status.value, f.message, f.code, details=(("evidence", evidence), ("fix", fix))
        )


# The way past a blocking preflight, as the command that ran it words it: `build`'s own option, or, from
# `install --from-source` (which has no such option), that build first and then the install.
PAST_PREFLIGHT = "--ignore-preflight"


def render_outcome(
    outcome: BuildOutcome, console: Console, verbose: bool = False, past_preflight: str = PAST_PREFLIGHT
) -> None:
    if outcome.plan is not None and (outcome.status in ("planned", "blocked") or verbose):
        render_plan(outcome.plan, console, outcome.command)
    render_findings(outcome, console, verbose)
    fp = outcome.fingerprint
    if fp is not None:
        abi = {True: "cxx11abi", False: "pre-cxx11 abi", None: "abi ?"}[fp.cxx11abi]
        print_markup(
            console,
            f"[bold]Fingerprint[/] {fp.id}: torch {fp.torch}, CUDA {fp.cuda}, {abi}, {fp.python_abi}, "
            f"{fp.platform}, glibc {fp.glibc or '-'}, {fp.profile}",
        )
    for n in outcome.notes:
        print_markup(console, f"[dim]note:[/] {escape(n)}")
    run = outcome.run
    if outcome.status == "blocked":
        print_markup(
            console,
            f"[red]✗ not started[/]: fix the blocking preflight findings above (or {escape(past_preflight)}).",
        )
    elif outcome.status == "cached" and outcome.wheel is not None:
        print_markup(
            console, f"[green]✓ already built[/] for this fingerprint: {escape(str(outcome.wheel.path))}"
        )
    elif outcome.status == "built" and run is not None:
        wheel = outcome.wheel.path if outcome.wheel else "?"
        plan = outcome.plan
        kind = "kernel" if plan is not None and plan.variant == "fa2" else "compile"
        units = f" ({len(plan.units)} {kind} units)" if plan is not None and plan.units else ""
        print_markup(
            console,
            f"[green]✓ built[/] in {run.seconds:.0f} s, {run.steps_done} of {run.steps_total} ninja steps{units}: "
            f"{escape(str(wheel))}",
        )
        if plan is not None and plan.units_from == "checkout" and run.steps_total != plan.edges:
            print_markup(
                console,
                f"  [yellow]![/] ninja ran {run.steps_total} steps where the plan read {plan.edges} from hopper/setup.py",
            )
        print_markup(console, f"  [dim]log:[/] {escape(str(outcome.log_path))}")
    elif outcome.status == "failed" and run is not None:
        print_markup(
            console,
            f"[red]✗ build failed[/] (exit {run.returncode}) after {run.seconds:.0f} s, "
            f"{run.steps_done} of {run.steps_total or '?'} ninja steps",
        )
        if run.first_error is not None:
            print_markup(console, f"  [bold]first error[/] (log line {run.first_error.line_no}):")
            for line in run.first_error.text.splitlines():
                print_markup(console, f"    {escape(line)}")
        for i, d in enumerate(run.diagnoses[:2]):  # the cause first, then another possible one
            print_finding(
                console, "cause" if i == 0 else "possible", d.message, d.code, details=(("fix", d.fix),)
            )
        if not run.diagnoses:
            print_markup(
                console, "  [dim]fix:[/] read the first error above; `flashdoctor explain LOG` may know it."
            )
        print_markup(console, f"  [dim]log:[/] {escape(str(outcome.log_path))}")
