"""`flashdoctor check` (and its cluster mode, --distributed)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import click

from flashdoctor.cli.options import (
    Seconds,
    announce_machine,
    combine,
    declared,
    document,
    examples,
    json_option,
    machine,
    names,
    output_option,
    python_option,
    target_option,
    timeout_option,
    verbose_option,
)
from flashdoctor.errors import UsageError
from flashdoctor.knowledge.variants import VARIANTS, Variant
from flashdoctor.render.text import commands_paused, echo, in_github_actions

if TYPE_CHECKING:
    from flashdoctor.actions.check import CheckResult

# -- cluster preflight options (issue 9; logic in flashdoctor/actions/cluster/) ---------------------------
# The join timeout is also the rendezvous store's and the gloo group's: torch cannot hold "inf" (OverflowError)
# and times out at once past about 1e10 s (its clock overflows). A week is longer than any launch takes.
JOIN_TIMEOUT_MAX_S = 7 * 24 * 3600
distributed_options = combine(
    click.option(
        "--distributed",
        is_flag=True,
        help="Check every rank of a torchrun / srun job; rank 0 prints one cluster report (docs/cluster.md).",
    ),
    timeout_option(
        60.0,
        "With --distributed: how long rank 0 waits for every rank to join before naming the missing.",
        name="--join-timeout",
        minimum=0.1,
        maximum=JOIN_TIMEOUT_MAX_S,
    ),
    # The old name of --join-timeout: still accepted, with a warning.
    click.option(
        "--timeout", "legacy_join_timeout", type=Seconds(min=0.1, max=JOIN_TIMEOUT_MAX_S), hidden=True
    ),
    timeout_option(
        900.0,
        "With --distributed: how long a rank's check (and smoke test) may take before it is reported unfinished.",
        name="--rank-timeout",
        minimum=0.1,
    ),
    click.option(
        "--target-for-rank",
        multiple=True,
        metavar="RANK=FILE",
        help="With --distributed: this rank checks a target spec instead of its machine (repeatable). "
        "FLASHDOCTOR_TARGET in a rank's environment does the same.",
    ),
    output_option("With --distributed: rank 0 also writes the JSON cluster report to FILE."),
)
# The options above that mean something only with --distributed: read from the group, so that one added
# to it is refused without --distributed too, not ignored in silence.
CLUSTER_ONLY = tuple(p for p in declared(distributed_options) if p.name != "distributed")


def _refuse_cluster_options(ctx: click.Context) -> None:
    """The options of --distributed given without it: a usage error, not silently ignored."""
    given = [
        p.opts[-1]
        for p in CLUSTER_ONLY
        if p.name and ctx.get_parameter_source(p.name) is not click.core.ParameterSource.DEFAULT
    ]
    if given:
        raise UsageError(f"{', '.join(given)}: options of --distributed (a cluster preflight) only")


def _join_timeout(ctx: click.Context, join_timeout: float, legacy: float | None) -> float:
    if legacy is None:
        return join_timeout
    if ctx.get_parameter_source("join_timeout") is not click.core.ParameterSource.DEFAULT:
        raise UsageError("--timeout is the old name of --join-timeout: give only --join-timeout")
    echo(
        "flashdoctor: warning: --timeout is deprecated for check --distributed; use --join-timeout", err=True
    )
    return legacy


def _distributed_check(opts: dict[str, Any], as_json: bool, verbose: bool, join_timeout: float) -> int:
    from flashdoctor.actions.cluster.launch import parse_target_for_rank
    from flashdoctor.actions.cluster.protocol import Timeouts
    from flashdoctor.actions.cluster.rank import RankOptions
    from flashdoctor.actions.cluster.run import run_distributed_check
    from flashdoctor.decide.cluster import ClusterReport

    python = machine(opts["python"], opts["target"], err=as_json, announce=False)
    rank_opts = RankOptions(
        python=python,
        target=opts["target"],
        target_for_rank=parse_target_for_rank(opts["target_for_rank"]),
        strict=opts["strict"],
        require=opts["require"],
        deep=opts["deep"],
        import_tests=not opts["no_import_test"],
        smoke=opts["smoke"],
        save_target=opts["save_target"],
    )

    def enveloped(doc: dict[str, Any]) -> dict[str, Any]:
        """The cluster report in its result envelope: what --json prints and -o FILE holds."""
        return document(doc, command="check", exit_code=doc["exit_code"])

    def show(report: ClusterReport, doc: dict[str, Any]) -> None:
        announce_machine(err=as_json)  # rank 0's; every rank chose its own
        if as_json:
            from flashdoctor.render.json import emit

            emit(enveloped(doc))
        else:
            from flashdoctor.render.cluster import render_cluster
            from flashdoctor.render.console import make_console

            # every rank's GPU names, versions and paths: shown in a CI log, never run (as in _render)
            with commands_paused():
                render_cluster(report, make_console(), strict=opts["strict"], verbose=verbose)

    code = run_distributed_check(
        rank_opts,
        timeouts=Timeouts(join_s=join_timeout, rank_s=opts["rank_timeout"]),
        output=opts["output"],
        environ=os.environ,
        show=show,
        document=enveloped,
        say=lambda message: echo(message, err=True),
    )
    # Leave at once, without interpreter teardown: torchrun stops the other ranks as soon as one
    # exits non-zero, and a stop that lands in a rank's teardown (Python has dropped its signal
    # handlers by then) would replace that rank's exit code with SIGTERM.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _render(
    result: CheckResult, as_json: bool, verbose: bool, strict: bool, require: tuple[Variant, ...]
) -> None:
    from flashdoctor.render import github

    report, code = result.report, result.exit_code
    if as_json:
        from flashdoctor.model.findings import report_to_json
        from flashdoctor.render.json import emit

        emit(
            document(report_to_json(report, strict=strict, require=require), command="check", exit_code=code)
        )
    else:
        from flashdoctor.render.console import make_console
        from flashdoctor.render.human import render_check

        # GPU names, versions and paths: shown in a CI log, never run as workflow commands
        with commands_paused():
            render_check(report, make_console(), verbose=verbose)
            if result.smoke is not None:
                from flashdoctor.render.smoke import render_smoke

                make_console().print()
                render_smoke(result.smoke, make_console(), verbose=verbose)
        for v in require:
            vv = report.verdicts[v]
            if vv.verdict.value != "ready":
                echo(f"--require {v}: {v} is {vv.verdict.value}, not ready", err=True)
    if in_github_actions(os.environ):
        # With --json, stdout is the document: the runner reads workflow commands from stderr too.
        for line in github.annotation_lines(report, require):
            click.echo(line, err=as_json)
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            reasons = github.exit_reasons(report, code, strict=strict, require=require)
            error = github.append_summary(summary, github.summary_markdown(report, code, reasons))
            if error:
                echo(f"flashdoctor: cannot append to GITHUB_STEP_SUMMARY: {error}", err=True)


@click.command(
    epilog=examples(
        "flashdoctor check",
        "flashdoctor check --python ~/venvs/train/bin/python -v",
        "flashdoctor check --require fa2 --json > preflight.json     # CI preflight",
        "flashdoctor check --target h100.json                         # another machine, described",
        "torchrun --nproc-per-node 8 -m flashdoctor check --distributed   # every rank of a job",
    )
)
@python_option
@target_option
@json_option("Print the versioned JSON report.", frame=False)
@verbose_option("Show evidence, skipped checks and probe notes.")
@click.option("--strict", is_flag=True, help="Warnings fail too (exit 1).")
@click.option(
    "--require",
    type=names(VARIANTS),
    multiple=True,
    help="Exit 1 unless this variant is 'ready' (repeatable). The CI preflight.",
)
@click.option("--save-target", metavar="FILE", help="Write the probed machine as a target spec.")
@click.option("--deep", is_flag=True, help="Also import torch (seconds) to confirm ABI and arch list.")
@click.option("--no-import-test", is_flag=True, help="Do not import installed FlashAttention builds.")
@click.option(
    "--smoke",
    "smoke",
    is_flag=True,
    help="Also run the smoke test (docs/smoke.md); adds a 'smoke' key to --json. "
    "With --distributed: on each rank's GPU.",
)
@distributed_options
@click.pass_context
def check(ctx: click.Context, /, **opts: Any) -> int:
    """Say per variant (fa2, fa3, fa4) whether FlashAttention is ready, installable, buildable or
    unsupported here, and what to fix."""
    if not opts["distributed"]:
        _refuse_cluster_options(ctx)
    join_timeout = _join_timeout(ctx, opts.pop("join_timeout"), opts.pop("legacy_join_timeout"))
    as_json, verbose = opts["as_json"], opts["verbose"]
    if opts["distributed"]:  # cluster preflight (issue 9)
        return _distributed_check(opts, as_json, verbose, join_timeout)
    from flashdoctor.actions.check import run_check

    python = machine(opts["python"], opts["target"], err=as_json)
    result = run_check(
        python=python,
        target=opts["target"],
        strict=opts["strict"],
        require=opts["require"],
        save_target=opts["save_target"],
        deep=opts["deep"],
        import_tests=not opts["no_import_test"],
        smoke=opts["smoke"],
        environ=os.environ,
        say=lambda message: echo(f"flashdoctor: {message}", err=True),
        # the walk of libtorch_cuda.so for its arch list, only for an output that shows it
        torch_archs=as_json or verbose or bool(opts["save_target"]) or opts["deep"],
    )
    _render(result, as_json, verbose, opts["strict"], opts["require"])
    return result.exit_code
