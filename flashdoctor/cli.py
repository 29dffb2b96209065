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
) -> int:
    """Say per variant (fa2, fa3, fa4) whether FlashAttention is ready, installable, buildable or
    unsupported here, and what to fix."""
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


# -- build (source builds: flashdoctor/build/) --------------------------------------------------------
_FA3_FLAGS = ("backward", "split", "paged-kv", "append-kv", "local", "softcap", "pack-gqa", "fp8", "varlen", "cluster")


def _fa3_flags(f):  # type: ignore[no-untyped-def]
    for name in reversed(_FA3_FLAGS):
        f = click.option(
            f"--no-{name}",
            "disable",
            flag_value=name,
            multiple=True,
            help=f"FA3: do not compile the {name} kernels (its FLASH_ATTENTION_DISABLE_* switch).",
        )(f)
    return f


@cli.command()
@click.option("--fa2", "variant", flag_value="fa2", default=True, help="Build FA2 (flash-attn) from its sdist (default).")
@click.option("--fa3", "variant", flag_value="fa3", help="Build FA3 from a flash-attention checkout's hopper/.")
@click.option("--source", metavar="PATH|URL", help="FA2: sdist archive or source tree; FA3: checkout or git URL.")
@click.option("--ref", metavar="TAG", help="FA3: git tag or branch of --source URL.")
@click.option("--flash-version", metavar="VER", help="FA2 sdist version to fetch from PyPI (default: newest known).")
@click.option("--arch", metavar="LIST", help="Compute capabilities to build for, e.g. 80,90 (default: the GPUs here).")
@click.option("--head-dims", metavar="LIST", help="Only these head dims, e.g. 64,128 (minimal build).")
@click.option("--dtypes", metavar="LIST", help="Only these dtypes: fp16, bf16 (minimal build).")
@_fa3_flags
@click.option("--max-jobs", type=click.IntRange(1, 1024), help="Parallel compile jobs (MAX_JOBS; default from cores and memory).")
@click.option("--nvcc-threads", type=click.IntRange(1, 64), help="Threads per nvcc (NVCC_THREADS; default: one per arch, ≤ 4).")
@click.option("--wheelhouse", metavar="DIR", help="Store the wheel here, keyed by fingerprint (and reuse one found here).")
@click.option("--log", "log", metavar="FILE", help="Build log file (default: in flashdoctor's cache).")
@click.option("--work-dir", metavar="DIR", help="Unpack and build here (kept); default: a temporary directory.")
@click.option("--keep-work", is_flag=True, help="Keep the temporary build directory after a successful build.")
@click.option("--rebuild", is_flag=True, help="Build even if a wheel for this fingerprint exists.")
@click.option("--ignore-preflight", is_flag=True, help="Start the build despite blocking preflight findings.")
@click.option("--index-url", metavar="URL", default="https://pypi.org/simple", show_default=True, help="PEP 691 index for the sdist.")
@python_option
@target_option
@click.option("--dry-run", is_flag=True, help="Print the build plan (env vars, unit count, preflight) and stop.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.option("-v", "--verbose", is_flag=True, help="Show the plan and every preflight finding.")
def build(
    variant: str,
    source: str | None,
    ref: str | None,
    flash_version: str | None,
    arch: str | None,
    head_dims: str | None,
    dtypes: str | None,
    disable: tuple[str, ...],
    max_jobs: int | None,
    nvcc_threads: int | None,
    wheelhouse: str | None,
    log: str | None,
    work_dir: str | None,
    keep_work: bool,
    rebuild: bool,
    ignore_preflight: bool,
    index_url: str,
    python: str | None,
    target: str | None,
    dry_run: bool,
    as_json: bool,
    verbose: bool,
) -> int:
    """Build a FlashAttention wheel from source that fits this machine and model: only the GPUs'
    architectures (--arch), only the head dims and dtypes you use (--head-dims, --dtypes), MAX_JOBS
    that fit the memory, a progress bar, and a diagnosis when it fails. The wheel goes to the
    wheelhouse, keyed by an environment fingerprint, so other machines install it instead."""
    from pathlib import Path

    from flashdoctor.build.api import BuildOptions, plan_build
    from flashdoctor.build.api import build as run_build
    from flashdoctor.build.plan import BuildRequest
    from flashdoctor.build.profile import parse_archs, parse_dtypes, parse_head_dims
    from flashdoctor.errors import EXIT_FAILED, EXIT_INSTALL
    from flashdoctor.render.build import outcome_to_json, render_outcome
    from flashdoctor.render.console import make_console

    request = BuildRequest(
        variant=variant,  # type: ignore[arg-type]
        archs=parse_archs(arch) if arch else None,
        head_dims=parse_head_dims(head_dims) if head_dims else None,
        dtypes=parse_dtypes(dtypes) if dtypes else None,
        disable=tuple(dict.fromkeys(disable)),
        max_jobs=max_jobs,
        nvcc_threads=nvcc_threads,
    )
    if ref and variant != "fa3":
        raise UsageError("--ref is for --fa3 git sources")
    opts = BuildOptions(
        request=request,
        source=source,
        version=flash_version,
        ref=ref,
        wheelhouse=Path(wheelhouse).expanduser() if wheelhouse else None,
        log=Path(log).expanduser() if log else None,
        work_dir=Path(work_dir).expanduser() if work_dir else None,
        keep_work=keep_work,
        rebuild=rebuild,
        ignore_preflight=ignore_preflight,
        index_url=index_url,
    )
    env, _src = resolve_environment(python, target, import_tests=False)
    console = make_console(stderr=as_json)
    tools = None
    if not target:
        from flashdoctor.probe.buildtools import probe_build_tools

        tools = probe_build_tools(python or sys.executable, os.environ)
    if dry_run or target:
        outcome = plan_build(env, opts, tools)
    else:
        from flashdoctor.build.runner import LineProgress, RichProgress

        progress = (
            RichProgress(console, f"{variant} build")
            if console.is_terminal
            else LineProgress(lambda line: console.print(line, markup=False, highlight=False))
        )
        outcome = run_build(
            env, opts, python or sys.executable, tools, progress=progress, say=lambda m: console.print(f"[dim]{m}[/]")
        )
    code = {"planned": 0, "cached": 0, "built": 0, "blocked": EXIT_FAILED, "failed": EXIT_INSTALL}[outcome.status]
    if as_json:
        click.echo(json.dumps(outcome_to_json(outcome, code), indent=2))
    else:
        render_outcome(outcome, console, verbose=verbose or dry_run or bool(target))
    return code
# -- end build --------------------------------------------------------------------------------------


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
