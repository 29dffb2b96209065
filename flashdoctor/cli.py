"""Command line: parse options, call the layers, render, return an exit code. No decisions here."""

from __future__ import annotations

import datetime
import json
import os
import sys
import traceback
from collections.abc import Sequence

import click

from flashdoctor import __version__
from flashdoctor.environment import VARIANTS, Environment, TargetSpecError, Variant, load_target
from flashdoctor.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, FlashdoctorError, UsageError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="flashdoctor")
def cli() -> None:
    """Make FlashAttention work on this machine, and prove that it does."""


# -- shared options ---------------------------------------------------------------------------------
def python_option(f):  # type: ignore[no-untyped-def]
    return click.option(
        "--python",
        "python",
        metavar="PATH",
        help="Target interpreter to diagnose / install into (default: the one running flashdoctor).",
    )(f)


def target_option(f):  # type: ignore[no-untyped-def]
    return click.option(
        "--target",
        "target",
        metavar="FILE",
        help="Describe a machine in JSON instead of probing this one (README 'Target spec').",
    )(f)


def resolve_environment(
    python: str | None,
    target: str | None,
    import_tests: bool = True,
    deep: bool = False,
) -> tuple[Environment, str]:
    """The Environment for a command: from --target, else from the probes."""
    if target and python:
        raise UsageError("--target and --python exclude each other: a target spec describes another machine")
    if target:
        try:
            return load_target(target), f"target:{target}"
        except TargetSpecError as exc:
            raise UsageError(str(exc)) from None
    from flashdoctor.probe import InterpreterError, probe_environment

    if python and not os.path.exists(python):
        raise UsageError(f"--python {python}: no such file")
    try:
        return probe_environment(
            python=python, environ=os.environ, import_tests=import_tests, deep=deep
        ), "probe"
    except InterpreterError as exc:
        raise UsageError(str(exc)) from None


def _write_json(path: str, data: object) -> None:
    try:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


# -- cluster preflight options (issue 9; logic in flashdoctor/cluster/) ---------------------------------
def distributed_options(f):  # type: ignore[no-untyped-def]
    opts = [
        click.option(
            "--distributed",
            is_flag=True,
            help="Check every rank of a torchrun / srun job; rank 0 prints one cluster report (README 'Cluster preflight').",
        ),
        click.option(
            "--smoke", is_flag=True, help="With --distributed: also run the smoke test on each rank's GPU."
        ),
        click.option(
            "--timeout",
            "join_timeout",
            type=click.FloatRange(min=0.1),
            default=60.0,
            show_default=True,
            metavar="SECONDS",
            help="With --distributed: how long rank 0 waits for every rank to join before naming the missing.",
        ),
        click.option(
            "--rank-timeout",
            type=click.FloatRange(min=0.1),
            default=900.0,
            show_default=True,
            metavar="SECONDS",
            help="With --distributed: how long a rank's check (and smoke test) may take before it is reported unfinished.",
        ),
        click.option(
            "--target-for-rank",
            multiple=True,
            metavar="RANK=FILE",
            help="With --distributed: this rank checks a target spec instead of its machine (repeatable). "
            "FLASHDOCTOR_TARGET in a rank's environment does the same.",
        ),
        click.option(
            "-o",
            "--output",
            metavar="FILE",
            help="With --distributed: rank 0 also writes the JSON cluster report to FILE.",
        ),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _distributed_check(
    *,
    python: str | None,
    target: str | None,
    as_json: bool,
    verbose: bool,
    strict: bool,
    require: tuple[Variant, ...],
    save_target: str | None,
    deep: bool,
    no_import_test: bool,
    smoke: bool,
    join_timeout: float,
    rank_timeout: float,
    target_for_rank: tuple[str, ...],
    output: str | None,
) -> int:
    from flashdoctor.cluster.launch import parse_target_for_rank
    from flashdoctor.cluster.protocol import Timeouts
    from flashdoctor.cluster.rank import RankOptions
    from flashdoctor.cluster.run import run_distributed_check

    if target and python:
        raise UsageError("--target and --python exclude each other: a target spec describes another machine")
    if python and not os.path.exists(python):
        raise UsageError(f"--python {python}: no such file")
    opts = RankOptions(
        python=python,
        target=target,
        target_for_rank=parse_target_for_rank(target_for_rank),
        strict=strict,
        require=require,
        deep=deep,
        import_tests=not no_import_test,
        smoke=smoke,
        save_target=save_target,
    )
    code = run_distributed_check(
        opts,
        timeouts=Timeouts(join_s=join_timeout, rank_s=rank_timeout),
        as_json=as_json,
        verbose=verbose,
        output=output,
        environ=os.environ,
    )
    # Leave at once, without interpreter teardown: torchrun stops the other ranks as soon as one
    # exits non-zero, and a stop that lands in a rank's teardown (Python has dropped its signal
    # handlers by then) would replace that rank's exit code with SIGTERM.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# -- end of cluster preflight options ---------------------------------------------------------------


# -- check ----------------------------------------------------------------------------------------
@cli.command()
@python_option
@target_option
@click.option("--json", "as_json", is_flag=True, help="Print the versioned JSON report.")
@click.option("-v", "--verbose", is_flag=True, help="Show evidence, skipped checks and probe notes.")
@click.option("--strict", is_flag=True, help="Warnings fail too (exit 1).")
@click.option(
    "--require",
    type=click.Choice(VARIANTS),
    multiple=True,
    help="Exit 1 unless this variant is 'ready' (repeatable). The CI preflight.",
)
@click.option("--save-target", metavar="FILE", help="Write the probed machine as a target spec.")
@click.option("--deep", is_flag=True, help="Also import torch (seconds) to confirm ABI and arch list.")
@click.option("--no-import-test", is_flag=True, help="Do not import installed FlashAttention builds.")
@distributed_options
def check(
    python: str | None,
    target: str | None,
    as_json: bool,
    verbose: bool,
    strict: bool,
    require: tuple[Variant, ...],
    save_target: str | None,
    deep: bool,
    no_import_test: bool,
    distributed: bool = False,
    smoke: bool = False,
    join_timeout: float = 60.0,
    rank_timeout: float = 900.0,
    target_for_rank: tuple[str, ...] = (),
    output: str | None = None,
) -> int:
    """Say per variant (fa2, fa3, fa4) whether FlashAttention is ready, installable, buildable or
    unsupported here, and what to fix."""
    if distributed:  # cluster preflight (issue 9)
        return _distributed_check(
            python=python,
            target=target,
            as_json=as_json,
            verbose=verbose,
            strict=strict,
            require=require,
            save_target=save_target,
            deep=deep,
            no_import_test=no_import_test,
            smoke=smoke,
            join_timeout=join_timeout,
            rank_timeout=rank_timeout,
            target_for_rank=target_for_rank,
            output=output,
        )
    if smoke or target_for_rank or output:
        raise UsageError("--smoke, --target-for-rank and --output are options of --distributed")
    from flashdoctor.checks import run_checks
    from flashdoctor.render.github import annotation_lines, in_github_actions, summary_markdown
    from flashdoctor.render.report_json import report_to_json

    env, source = resolve_environment(python, target, import_tests=not no_import_test, deep=deep)
    report = run_checks(env, source=source)
    if save_target:
        _write_json(save_target, env.to_target())
    code = report.exit_code(strict=strict, require=require)
    if as_json:
        click.echo(json.dumps(report_to_json(report, strict=strict, require=require), indent=2))
    else:
        from flashdoctor.render.console import make_console
        from flashdoctor.render.human import render_check

        render_check(report, make_console(), verbose=verbose)
        for v in require:
            vv = report.verdicts[v]
            if vv.verdict.value != "ready":
                click.echo(f"--require {v}: {v} is {vv.verdict.value}, not ready", err=True)
    if in_github_actions(os.environ):
        for line in annotation_lines(report):
            click.echo(line)
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            try:
                with open(summary, "a", encoding="utf-8") as fh:
                    fh.write(summary_markdown(report, code))
            except OSError as exc:
                click.echo(f"flashdoctor: cannot append to GITHUB_STEP_SUMMARY: {exc}", err=True)
    return code


# -- entry point ------------------------------------------------------------------------------------
def _crash_log(exc: BaseException) -> str | None:
    try:
        from platformdirs import user_log_dir

        d = user_log_dir("flashdoctor", appauthor=False)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "crash.log")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(f"flashdoctor {__version__}\n")
            # os.uname, not platform.platform(): the latter runs `uname -p` in a subprocess
            uname = " ".join(os.uname()) if hasattr(os, "uname") else sys.platform
            fh.write(f"python {sys.version}\nplatform {uname}\n")
            fh.write(f"argv {sys.argv}\ntime {datetime.datetime.now().isoformat()}\n\n")
            fh.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        return path
    except OSError:
        return None


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point. User errors: one message and their exit code; bugs: exit 3 with a
    log to paste into an issue; Ctrl-C: 130."""
    try:
        rv = cli.main(
            args=list(argv) if argv is not None else None, prog_name="flashdoctor", standalone_mode=False
        )
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code if exc.exit_code else EXIT_USAGE)
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("\nflashdoctor: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except FlashdoctorError as exc:
        click.echo(f"flashdoctor: error: {exc.message}", err=True)
        if exc.hint:
            click.echo(f"  hint: {exc.hint}", err=True)
        sys.exit(exc.return_code)
    except Exception as exc:
        log = _crash_log(exc)
        click.echo(f"flashdoctor: an unexpected error has occurred: {type(exc).__name__}: {exc}", err=True)
        if log:
            click.echo(f"  the traceback is in {log}; please attach it to an issue", err=True)
        sys.exit(EXIT_INTERNAL)
    sys.exit(rv if isinstance(rv, int) else 0)
