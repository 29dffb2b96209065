"""Command line: parse options, call the layers, render, return an exit code. No decisions here."""

from __future__ import annotations

import datetime
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit

import click

from flashdoctor import __version__
from flashdoctor.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    FlashdoctorError,
    UsageError,
)
from flashdoctor.knowledge.variants import VARIANT_DIST, VARIANTS, Variant
from flashdoctor.model.environment import Environment
from flashdoctor.model.target import TargetSpecError, load_target

if TYPE_CHECKING:
    from packaging.specifiers import SpecifierSet

    from flashdoctor.actions.fetch import FetchOptions
    from flashdoctor.actions.smoke import SmokeReport
    from flashdoctor.actions.source_build.api import BuildOutcome
    from flashdoctor.actions.wheelhouse import Wheelhouse
    from flashdoctor.decide.checks import WheelFinder
    from flashdoctor.model.plan import Plan


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


def allow_http_option(f):  # type: ignore[no-untyped-def]
    return click.option(
        "--allow-http",
        is_flag=True,
        help="Allow plain-http URLs (a trusted mirror on your own network); loopback always may.",
    )(f)


def target_option(f):  # type: ignore[no-untyped-def]
    return click.option(
        "--target",
        "target",
        metavar="FILE",
        help="Describe a machine in JSON instead of probing this one (README 'Target spec').",
    )(f)


def _check_python_target(python: str | None, target: str | None) -> None:
    """--python must exist, and describes this machine: it cannot go with --target."""
    if target and python:
        raise UsageError("--target and --python exclude each other: a target spec describes another machine")
    if python and not os.path.exists(python):
        raise UsageError(f"--python {python}: no such file")


def resolve_environment(
    python: str | None,
    target: str | None,
    import_tests: bool = True,
    deep: bool = False,
) -> tuple[Environment, str]:
    """The Environment for a command: from --target, else from the probes."""
    _check_python_target(python, target)
    if target:
        try:
            return load_target(target), f"target:{target}"
        except TargetSpecError as exc:
            raise UsageError(str(exc)) from None
    from flashdoctor.probe import InterpreterError, probe_environment

    try:
        return probe_environment(
            python=python, environ=os.environ, import_tests=import_tests, deep=deep
        ), "probe"
    except InterpreterError as exc:
        raise UsageError(str(exc)) from None


class _EarlyProbes:
    """resolve_environment (and, for an install about to happen, the target's installed state) started
    in threads, so that they overlap the imports and set-up that follow. Errors surface where the
    results are taken, exactly as from a direct call."""

    def __init__(self, python: str | None, target: str | None, *, read_state: bool, variant: Variant) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._python, self._target = python, target
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="flashdoctor-probe")
        self._env = None if target else self._pool.submit(resolve_environment, python, None, True)
        self.state = None
        if read_state and not target and (python is None or os.path.exists(python)):
            from flashdoctor.probe.state import read_state as read

            dist = VARIANT_DIST[variant]
            self.state = self._pool.submit(read, python or sys.executable, os.environ, (dist,))
        self._pool.shutdown(wait=False)

    def environment(self) -> tuple[Environment, str]:
        if self._env is None:
            return resolve_environment(self._python, self._target, import_tests=True)
        return self._env.result()


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
    from flashdoctor.actions.cluster.launch import parse_target_for_rank
    from flashdoctor.actions.cluster.protocol import Timeouts
    from flashdoctor.actions.cluster.rank import RankOptions
    from flashdoctor.actions.cluster.run import run_distributed_check
    from flashdoctor.decide.cluster import ClusterReport

    _check_python_target(python, target)
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

    def show(report: ClusterReport, doc: dict[str, Any]) -> None:
        if as_json:
            click.echo(json.dumps(doc, indent=2))
        else:
            from flashdoctor.render.cluster import render_cluster
            from flashdoctor.render.console import make_console

            render_cluster(report, make_console(), strict=strict, verbose=verbose)

    code = run_distributed_check(
        opts,
        timeouts=Timeouts(join_s=join_timeout, rank_s=rank_timeout),
        output=output,
        environ=os.environ,
        show=show,
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
@click.option(
    "--smoke",
    "smoke",
    is_flag=True,
    help="Also run the smoke test (README 'Smoke test'); adds a 'smoke' key to --json. "
    "With --distributed: on each rank's GPU.",
)
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
    smoke: bool = False,
    distributed: bool = False,
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
    if target_for_rank or output:
        raise UsageError("--target-for-rank and --output are options of --distributed")
    from flashdoctor.decide.explain import run_checks
    from flashdoctor.model.findings import report_to_json
    from flashdoctor.render.github import annotation_lines, in_github_actions, summary_markdown

    if smoke and target:
        raise UsageError("--smoke runs kernels on this machine; it cannot be combined with --target")
    env, source = resolve_environment(python, target, import_tests=not no_import_test, deep=deep)
    report = run_checks(env, source=source, wheel_finder=_check_wheel_finder())
    if save_target:
        _write_json(save_target, env.to_target())
    code = report.exit_code(strict=strict, require=require)
    smoke_report = _check_smoke(python) if smoke else None  # -- smoke (issue 5)
    if smoke_report is not None:
        import dataclasses

        report = dataclasses.replace(report, extra={**report.extra, "smoke": smoke_report.to_json()})
        code = max(code, smoke_report.exit_code())
    if as_json:
        doc = report_to_json(report, strict=strict, require=require)
        doc["exit_code"] = code
        click.echo(json.dumps(doc, indent=2))
    else:
        from flashdoctor.render.console import make_console
        from flashdoctor.render.human import render_check

        render_check(report, make_console(), verbose=verbose)
        if smoke_report is not None:
            from flashdoctor.render.smoke import render_smoke

            make_console().print()
            render_smoke(smoke_report, make_console(), verbose=verbose)
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
from flashdoctor.knowledge.profiles import FA3_FEATURES as _FA3_FLAGS  # noqa: E402  (light: no I/O)


def _run_build(
    env: Environment, opts: Any, python: str | None, tools: Any, console: Any, variant: str
) -> BuildOutcome:
    """Run a source build with a progress bar on a terminal (plain [N/M] lines otherwise)."""
    from flashdoctor.actions.source_build.api import build as run_build
    from flashdoctor.render.progress import LineProgress, RichProgress

    progress = (
        RichProgress(console, f"{variant} build")
        if console.is_terminal
        else LineProgress(lambda line: console.print(line, markup=False, highlight=False))
    )
    return run_build(
        env,
        opts,
        python or sys.executable,
        tools,
        progress=progress,
        say=lambda m: console.print(f"[dim]{m}[/]"),
    )


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
@click.option(
    "--fa2",
    "variant",
    flag_value="fa2",
    default=True,
    help="Build FA2 (flash-attn) from its sdist (default).",
)
@click.option(
    "--fa3", "variant", flag_value="fa3", help="Build FA3 from a flash-attention checkout's hopper/."
)
@click.option(
    "--source", metavar="PATH|URL", help="FA2: sdist archive or source tree; FA3: checkout or git URL."
)
@click.option("--ref", metavar="TAG", help="FA3: git tag or branch of --source URL.")
@click.option(
    "--flash-version", metavar="VER", help="FA2 sdist version to fetch from PyPI (default: newest known)."
)
@click.option(
    "--arch", metavar="LIST", help="Compute capabilities to build for, e.g. 80,90 (default: the GPUs here)."
)
@click.option("--head-dims", metavar="LIST", help="Only these head dims, e.g. 64,128 (minimal build).")
@click.option("--dtypes", metavar="LIST", help="Only these dtypes: fp16, bf16 (minimal build).")
@_fa3_flags
@click.option(
    "--max-jobs",
    type=click.IntRange(1, 1024),
    help="Parallel compile jobs (MAX_JOBS; default from cores and memory).",
)
@click.option(
    "--nvcc-threads",
    type=click.IntRange(1, 64),
    help="Threads per nvcc (NVCC_THREADS; default: one per arch, ≤ 4).",
)
@click.option(
    "--wheelhouse",
    metavar="DIR",
    help="Store the wheel here, keyed by fingerprint (and reuse one found here).",
)
@click.option("--log", "log", metavar="FILE", help="Build log file (default: in flashdoctor's cache).")
@click.option(
    "--work-dir", metavar="DIR", help="Unpack and build here (kept); default: a temporary directory."
)
@click.option(
    "--keep-work", is_flag=True, help="Keep the temporary build directory after a successful build."
)
@click.option("--rebuild", is_flag=True, help="Build even if a wheel for this fingerprint exists.")
@click.option("--ignore-preflight", is_flag=True, help="Start the build despite blocking preflight findings.")
@click.option(
    "--index-url",
    metavar="URL",
    default="https://pypi.org/simple",
    show_default=True,
    help="PEP 691 index for the sdist.",
)
@allow_http_option
@python_option
@target_option
@click.option(
    "--dry-run", is_flag=True, help="Print the build plan (env vars, unit count, preflight) and stop."
)
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
    allow_http: bool,
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

    from flashdoctor.actions.source_build.api import BuildOptions, plan_build
    from flashdoctor.decide.source_build.plan import BuildRequest
    from flashdoctor.knowledge.profiles import parse_archs, parse_dtypes, parse_head_dims
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
    _check_index_url(index_url, allow_http)
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
        allow_http=allow_http,
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
        outcome = _run_build(env, opts, python, tools, console, variant)
    if as_json:
        click.echo(json.dumps(outcome_to_json(outcome), indent=2))
    else:
        render_outcome(outcome, console, verbose=verbose or dry_run or bool(target))
    return outcome.exit_code


def source_build_options(f):  # type: ignore[no-untyped-def]
    """`install --from-source`: the build options that shape the wheel (the rest: `flashdoctor build`)."""
    for opt in reversed(
        [
            click.option(
                "--from-source",
                is_flag=True,
                help="Build the wheel from source first (README 'Source builds').",
            ),
            click.option(
                "--source",
                "build_source",
                metavar="PATH|URL",
                help="With --from-source: sdist, tree, checkout or git URL.",
            ),
            click.option(
                "--ref", "build_ref", metavar="TAG", help="With --from-source --fa3: git tag or branch."
            ),
            click.option(
                "--arch",
                "build_arch",
                metavar="LIST",
                help="With --from-source: compute capabilities (default: the GPUs).",
            ),
            click.option(
                "--head-dims",
                "build_head_dims",
                metavar="LIST",
                help="With --from-source: only these head dims.",
            ),
            click.option(
                "--dtypes", "build_dtypes", metavar="LIST", help="With --from-source: only these dtypes."
            ),
            click.option(
                "--max-jobs",
                "build_max_jobs",
                type=click.IntRange(1, 1024),
                help="With --from-source: MAX_JOBS.",
            ),
            click.option(
                "--nvcc-threads",
                "build_nvcc_threads",
                type=click.IntRange(1, 64),
                help="With --from-source: NVCC_THREADS.",
            ),
        ]
    ):
        f = opt(f)
    return f


def _plan_from_source(
    env: Environment,
    variant: Variant,
    python: str | None,
    target: str | None,
    dry_run: bool,
    as_json: bool,
    wheelhouse: str | None,
    build_source: str | None,
    build_ref: str | None,
    build_arch: str | None,
    build_head_dims: str | None,
    build_dtypes: str | None,
    build_max_jobs: int | None,
    build_nvcc_threads: int | None,
) -> Plan | int:
    """`install --from-source`: build (or find in the wheelhouse) the wheel for this fingerprint and
    return the install Plan for it; an int is the exit code when there is nothing to install."""
    from pathlib import Path

    from packaging.utils import parse_wheel_filename

    from flashdoctor.actions.source_build.api import BuildOptions, plan_build
    from flashdoctor.decide.source_build.plan import BuildRequest
    from flashdoctor.knowledge.profiles import parse_archs, parse_dtypes, parse_head_dims
    from flashdoctor.model.plan import Plan, WheelRef
    from flashdoctor.render.build import outcome_to_json, render_outcome
    from flashdoctor.render.console import make_console

    if variant == "fa4":
        raise UsageError("FA4 is pure Python: there is nothing to build", hint="flashdoctor install --fa4")
    request = BuildRequest(
        variant=variant,
        archs=parse_archs(build_arch) if build_arch else None,
        head_dims=parse_head_dims(build_head_dims) if build_head_dims else None,
        dtypes=parse_dtypes(build_dtypes) if build_dtypes else None,
        max_jobs=build_max_jobs,
        nvcc_threads=build_nvcc_threads,
    )
    opts = BuildOptions(
        request=request,
        source=build_source,
        ref=build_ref,
        wheelhouse=Path(wheelhouse).expanduser() if wheelhouse else None,
    )
    tools = None
    if not target:
        from flashdoctor.probe.buildtools import probe_build_tools

        tools = probe_build_tools(python or sys.executable, os.environ)
    console = make_console(stderr=as_json)
    if dry_run:
        outcome = plan_build(env, opts, tools)
        if as_json:
            click.echo(json.dumps(outcome_to_json(outcome), indent=2))
        else:
            render_outcome(outcome, console, verbose=True)
        return outcome.exit_code
    outcome = _run_build(env, opts, python, tools, console, variant)
    render_outcome(outcome, console)
    if outcome.status not in ("built", "cached") or outcome.wheel is None:
        return outcome.exit_code
    w = outcome.wheel
    _, version, _, _ = parse_wheel_filename(w.filename)
    ref = WheelRef(
        filename=w.filename,
        url=w.path.resolve().as_uri(),
        sha256=w.sha256,
        source="wheelhouse",
        version=str(version),
    )
    why = (
        "built from source by flashdoctor"
        if outcome.status == "built"
        else "already built for this fingerprint"
    )
    return Plan(action="wheel", variant=variant, wheel=ref, reasons=(f"{why}: {w.path}",))


# -- end build --------------------------------------------------------------------------------------
# -- wheels / install (wheel index and selection; issue "Wheel index and selection") -----------------
def variant_options(f):  # type: ignore[no-untyped-def]
    f = click.option("--fa4", "variant", flag_value="fa4", help="FlashAttention-4 (flash-attn-4, CuTe DSL).")(
        f
    )
    f = click.option("--fa3", "variant", flag_value="fa3", help="FlashAttention-3 (flash-attn-3, Hopper).")(f)
    return click.option(
        "--fa2", "variant", flag_value="fa2", default=True, help="FlashAttention-2 (default)."
    )(f)


def index_option(f):  # type: ignore[no-untyped-def]
    return click.option(
        "--index",
        "index_path",
        metavar="FILE",
        help="Select from this wheel index instead of the bundled wheels_index.json.",
    )(f)


def selection_options(f):  # type: ignore[no-untyped-def]
    f = click.option(
        "--allow-community", is_flag=True, help="Also consider community builds (after official ones)."
    )(f)
    return click.option(
        "--version",
        "version_spec",
        metavar="SPEC",
        help="Only versions matching SPEC ('2.8.3', '>=2.7,<2.8').",
    )(f)


def _check_wheel_finder() -> WheelFinder | None:
    """The wheel finder for check's verdicts, or None (with a note) when no index can be found."""
    from flashdoctor.decide.wheels import WheelIndexError, default_index_path, wheel_finder

    try:
        path = default_index_path()
    except WheelIndexError as exc:
        click.echo(f"flashdoctor: {exc.message}; verdicts do not consider prebuilt wheels", err=True)
        return None
    return wheel_finder(str(path))


def _version_spec(text: str | None) -> SpecifierSet | None:
    from flashdoctor.decide.wheels import parse_version_spec

    return parse_version_spec(text)


@cli.command()
@variant_options
@click.option(
    "--coverage", is_flag=True, help="Per platform: which torch × CUDA × Python cells have a wheel."
)
@click.option(
    "--all", "show_all", is_flag=True, help="List every wheel of the variant, not only the nearest."
)
@click.option("--limit", default=25, show_default=True, help="Rows of fitting and of rejected wheels shown.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@selection_options
@index_option
@python_option
@target_option
def wheels(
    variant: Variant,
    coverage: bool,
    show_all: bool,
    limit: int,
    as_json: bool,
    version_spec: str | None,
    allow_community: bool,
    index_path: str | None,
    python: str | None,
    target: str | None,
) -> int:
    """List the prebuilt wheels for this machine (or --target): those that fit, best first, and the
    others with the reasons they were rejected."""
    from flashdoctor.decide.wheels import load_index, select_wheels
    from flashdoctor.render.console import make_console

    if coverage and (python or target or version_spec):
        raise UsageError(
            "--coverage describes every torch × CUDA × Python cell: it takes no machine or --version"
        )
    index = load_index(index_path)
    if coverage:
        from flashdoctor.decide.wheels.coverage import coverage as compute_coverage
        from flashdoctor.render.wheels import render_coverage

        cov = compute_coverage(index, variant)
        if as_json:
            doc: dict[str, Any] = {
                "variant": variant,
                "platforms": {p: [c.to_json() for c in cells] for p, cells in cov.items()},
            }
            click.echo(json.dumps(doc, indent=1))
        else:
            render_coverage(cov, make_console(), variant)
        return 0
    spec = _version_spec(version_spec)
    env, source = resolve_environment(python, target, import_tests=False)
    sel = select_wheels(env, variant, index, spec, allow_community)
    rows = None if show_all else limit
    if as_json:
        doc = {
            "variant": variant,
            "source": source,
            "index": index.origin,
            "total": len(sel.fits) + len(sel.misses),
            "fits": [e.ref().to_json() for e in (sel.fits if rows is None else sel.fits[:rows])],
            "rejected": [r.to_json() for r in sel.rejections(rows, None if rows is None else 3)],
        }
        click.echo(json.dumps(doc, indent=2))
    else:
        from flashdoctor.render.wheels import render_candidates

        render_candidates(sel, make_console(), rows, source=source)
    return 0


# == install / lock (issue 4; logic in flashdoctor/install/) ========================================
def _check_index_url(index_url: str | None, allow_http: bool) -> None:
    """--index-url under the download policy: a usage error (nothing is sent) when it is refused."""
    from flashdoctor.actions.net.urls import check_url

    if index_url:
        try:
            check_url(index_url, allow_http)
        except FlashdoctorError as exc:
            raise UsageError(f"--index-url: {exc.message}", hint=exc.hint) from None


def _fetch_options(f):  # type: ignore[no-untyped-def]
    f = allow_http_option(f)  # type: ignore[no-untyped-call]
    f = click.option(
        "--index-url",
        metavar="URL",
        help="A PEP 503 mirror to fetch the planned wheel from instead of its origin.",
    )(f)
    f = click.option(
        "--wheelhouse",
        metavar="DIR",
        help="A directory of wheels read before the network and written after a download (offline / cluster use).",
    )(f)
    return f


def _install_plan(
    env: Environment,
    variant: Variant,
    plan_file: str | None,
    version_spec: str | None,
    allow_community: bool,
    index_path: str | None,
) -> Plan:
    """The plan: from --plan FILE (a reviewed --dry-run --json), else from the wheel selector."""
    if plan_file:
        from flashdoctor.actions.install.prepare import load_plan

        return load_plan(plan_file)
    from flashdoctor.decide.wheels import load_index, make_plan

    spec = _version_spec(version_spec)
    return make_plan(env, variant, load_index(index_path), version_spec=spec, allow_community=allow_community)


def _fetch_setup(
    wheelhouse: str | None, index_url: str | None, allow_http: bool, progress: bool
) -> tuple[FetchOptions, list[Wheelhouse]]:
    from flashdoctor.actions.cache import WheelCache, default_cache_root, default_wheelhouse
    from flashdoctor.actions.fetch import FetchOptions
    from flashdoctor.actions.install.prepare import wheelhouse_paths
    from flashdoctor.actions.net.download import DownloadPolicy
    from flashdoctor.actions.wheelhouse import Wheelhouse
    from flashdoctor.render.console import make_console
    from flashdoctor.render.install import RichProgress

    _check_index_url(index_url, allow_http)
    houses = wheelhouse_paths((wheelhouse,) if wheelhouse else ())
    # `flashdoctor build` without --wheelhouse stores into <cache>/wheelhouse: local builds are found there too.
    default_house = default_wheelhouse(os.environ)
    if default_house.is_dir() and all(h.root != default_house for h in houses):
        houses.append(Wheelhouse(default_house))
    err = make_console(stderr=True)
    return FetchOptions(
        cache=WheelCache(default_cache_root(os.environ)),
        policy=DownloadPolicy(allow_http=allow_http),
        wheelhouse=houses[0] if wheelhouse else None,
        index_url=index_url,
        progress=RichProgress(err) if progress and err.is_terminal else None,
        on_wait=lambda: click.echo(
            "flashdoctor: another process is downloading this wheel; waiting for it", err=True
        ),
    ), houses


@cli.command()
@variant_options
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan (--dry-run) or the result as JSON.")
@selection_options
@index_option
@python_option
@target_option
@_fetch_options
@click.option(
    "--yes", "-y", is_flag=True, help="Do not ask before changing the environment (non-interactive use)."
)
@click.option(
    "--plan", "plan_file", metavar="FILE", help="Install exactly this plan (as printed by --dry-run --json)."
)
@click.option(
    "--no-deps",
    "no_deps",
    is_flag=True,
    help="Do not add missing dependencies of the wheel (torch is never touched).",
)
@click.option("--no-smoke", is_flag=True, help="Skip the smoke test on the GPU after the import check.")
@click.option("-v", "--verbose", is_flag=True, help="Show the installer output on failure.")
@source_build_options
def install(
    variant: Variant,
    dry_run: bool,
    as_json: bool,
    version_spec: str | None,
    allow_community: bool,
    index_path: str | None,
    python: str | None,
    target: str | None,
    wheelhouse: str | None,
    index_url: str | None,
    allow_http: bool,
    yes: bool,
    plan_file: str | None,
    no_deps: bool,
    no_smoke: bool,
    verbose: bool,
    from_source: bool,
    build_source: str | None,
    build_ref: str | None,
    build_arch: str | None,
    build_head_dims: str | None,
    build_dtypes: str | None,
    build_max_jobs: int | None,
    build_nvcc_threads: int | None,
) -> int:
    """Install the FlashAttention variant that fits this machine: the prebuilt wheel (or a matching local
    build from --wheelhouse), verified by an import and, on a GPU, the smoke test; anything failing restores
    the previous state.

    With --dry-run, print the plan: action wheel | build | none | unsupported, the wheel, the
    alternatives and why every near miss was rejected. Exit 1 when the plan is 'unsupported'."""
    if target and not dry_run:
        raise UsageError("--target describes another machine: flashdoctor can only --dry-run for it")
    # The probes (subprocesses of the target, NVML) start first and run while the install machinery is
    # imported; for a small wheel these fixed costs are most of what flashdoctor adds to a bare pip.
    early = _EarlyProbes(python, target, read_state=not dry_run and yes and not from_source, variant=variant)
    from flashdoctor.actions.install.executor import InstallContext, execute
    from flashdoctor.actions.install.prepare import local_build_for_source, resolve_local, smoke_hook

    fetch, houses = _fetch_setup(wheelhouse, index_url, allow_http, progress=not as_json)
    env, source = early.environment()
    if from_source:
        local, notes = local_build_for_source(env, variant, houses, build_arch, build_head_dims, build_dtypes)
        built = local or _plan_from_source(
            env, variant, python, target, dry_run, as_json, wheelhouse, build_source, build_ref,
            build_arch, build_head_dims, build_dtypes, build_max_jobs, build_nvcc_threads,
        )  # fmt: skip
        if isinstance(built, int):
            return built
        plan = built
    elif any(
        (
            build_source,
            build_ref,
            build_arch,
            build_head_dims,
            build_dtypes,
            build_max_jobs,
            build_nvcc_threads,
        )
    ):
        raise UsageError("--source/--arch/--head-dims/--dtypes/--max-jobs/--nvcc-threads need --from-source")
    else:
        plan = _install_plan(env, variant, plan_file, version_spec, allow_community, index_path)
        plan, notes = resolve_local(
            plan, env, houses, fetch.cache, _version_spec(version_spec), reviewed=bool(plan_file)
        )
    if dry_run or plan.action != "wheel":
        if as_json:
            doc = plan.to_json()
            if notes:
                doc["wheelhouse_notes"] = notes
            click.echo(json.dumps(doc, indent=2))
        else:
            from flashdoctor.render.console import make_console
            from flashdoctor.render.wheels import render_plan

            console = make_console()
            render_plan(plan, console, source=source)
            for n in notes:
                console.print(f"  wheelhouse: {n}", markup=False)
        if dry_run or plan.action == "none":
            return 1 if plan.action == "unsupported" else 0
        if plan.action == "build":
            click.echo(
                "flashdoctor: no prebuilt wheel fits; build one with `flashdoctor build --wheelhouse DIR`, "
                "then install it with `flashdoctor install --wheelhouse DIR`",
                err=True,
            )
        return 1
    py = python or sys.executable
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(
                "not a terminal, so flashdoctor cannot ask: pass --yes to install without asking"
            )
        assert plan.wheel is not None
        click.confirm(f"Install {plan.wheel.filename} into {py}?", default=True, abort=True)
    ctx = InstallContext(
        python=py,
        environ=os.environ,
        fetch=fetch,
        env=env,
        smoke=None if no_smoke else smoke_hook(),
        install_deps=not no_deps,
        log_dir=fetch.cache.root.parent / "logs",
        on_wait=lambda msg: click.echo(f"flashdoctor: {msg}", err=True),
        early_state=early.state,
    )
    result = execute(plan, ctx)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        from flashdoctor.render.console import make_console
        from flashdoctor.render.install import render_install

        render_install(result, make_console(), verbose=verbose)
    return result.exit_code


@cli.command()
@variant_options
@selection_options
@index_option
@python_option
@target_option
@_fetch_options
@click.option(
    "--plan",
    "plan_file",
    metavar="FILE",
    help="Lock exactly this plan (as printed by install --dry-run --json).",
)
@click.option(
    "-o", "--output", metavar="FILE", help="Write the requirements file here (default: standard output)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the locked entry as JSON.")
def lock(
    variant: Variant,
    version_spec: str | None,
    allow_community: bool,
    index_path: str | None,
    python: str | None,
    target: str | None,
    wheelhouse: str | None,
    index_url: str | None,
    allow_http: bool,
    plan_file: str | None,
    output: str | None,
    as_json: bool,
) -> int:
    """Write a requirements line with the exact URL and --hash=sha256: for the planned wheel, so that
    `pip install --require-hashes -r FILE` reproduces the install without flashdoctor."""
    from flashdoctor.actions.fetch import obtain
    from flashdoctor.actions.install.lock import LockEntry, lock_text
    from flashdoctor.model.install import digest_wording

    fetch, houses = _fetch_setup(wheelhouse, index_url, allow_http, progress=not as_json)
    env, source = resolve_environment(python, target, import_tests=False)
    plan = _install_plan(env, variant, plan_file, version_spec, allow_community, index_path)
    from flashdoctor.actions.install.prepare import with_local_build

    plan, _notes = with_local_build(plan, env, houses)
    if plan.action != "wheel" or plan.wheel is None:
        raise FlashdoctorError(
            f"nothing to lock: the plan for {plan.variant} is {plan.action!r}",
            hint="; ".join(plan.reasons) or None,
        )
    ref, sha_from = plan.wheel, "index"
    verification = None
    if index_url or not ref.sha256:
        # No digest in the index (or a mirror whose URL we must write): fetch, verify it is the wheel, hash it.
        art = obtain(ref, fetch, os.environ, VARIANT_DIST[plan.variant])
        url = art.ref.url if art.origin in ("download", "cache") else ref.url
        ref, sha_from = replace(ref, url=url, sha256=art.sha256), art.sha256_from
        verification = art.verification.to_json()
    assert ref.sha256 is not None
    if unquote(urlsplit(ref.url).path).rsplit("/", 1)[-1] != ref.filename:
        raise FlashdoctorError(
            f"cannot lock {ref.url}: pip reads the wheel's name from the URL, and it does not end in {ref.filename}"
        )
    entry = LockEntry(plan.variant, ref, ref.sha256, sha_from, verification)
    text = lock_text([entry], env, source)
    if output:
        try:
            with open(output, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    if as_json:
        click.echo(json.dumps({"entries": [entry.to_json()], "output": output}, indent=2))
    elif not output:
        click.echo(text, nl=False)
    else:
        click.echo(f"wrote {output}: {entry.dist} {ref.version} ({digest_wording(sha_from)})")
    return 0


# == end install / lock =============================================================================


# -- smoke and bench (issue 5) ----------------------------------------------------------------------
_F = TypeVar("_F", bound=Callable[..., Any])


def _target_python(python: str | None) -> str:
    _check_python_target(python, None)
    return python or sys.executable


def _check_smoke(python: str | None) -> SmokeReport:
    from flashdoctor.actions.smoke import run_smoke

    return run_smoke(_target_python(python), os.environ)


def _device_option(f: _F) -> _F:
    # Hidden testing mode: toy shapes on CPU torch, so CI runs the real runner without a GPU.
    return click.option("--device", type=click.Choice(["cuda", "cpu"]), default="cuda", hidden=True)(f)


def _gpu_option(f: _F) -> _F:
    return click.option(
        "--gpu", type=click.IntRange(min=0), metavar="N", help="Run on GPU N only (torch's numbering)."
    )(f)


def _output_option(f: _F) -> _F:
    return click.option("-o", "--output", metavar="FILE", help="Also write the JSON report to FILE.")(f)


SMOKE_BACKEND_CHOICES = ("fa2", "fa3", "fa4", "sdpa-flash", "sdpa-cudnn", "sdpa-efficient", "sdpa-math")


@cli.command()
@python_option
@_gpu_option
@click.option(
    "--variant",
    "variants",
    type=click.Choice(SMOKE_BACKEND_CHOICES),
    multiple=True,
    help="Only this backend (repeatable): fa2, fa3, fa4 or an SDPA backend. A variant named here must be installed.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the versioned JSON report.")
@_output_option
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    metavar="S",
    help="Limit for the whole test, in seconds.",
)
@click.option("-v", "--verbose", is_flag=True, help="Show every row and the evidence.")
@_device_option
def smoke(
    python: str | None,
    gpu: int | None,
    variants: tuple[str, ...],
    as_json: bool,
    output: str | None,
    timeout: float,
    verbose: bool,
    device: str,
) -> int:
    """Run every installed FlashAttention variant and PyTorch's SDPA backends on this GPU, forward and
    backward, against an fp32 reference; prove the kernel ran and time it. Exit 1 on a failure."""
    from flashdoctor.actions.smoke import run_smoke

    report = run_smoke(
        _target_python(python), os.environ, gpu=gpu, variants=variants or None, device=device, timeout=timeout
    )
    doc = report.to_json()
    if output:
        _write_json(output, doc)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        from flashdoctor.render.console import make_console
        from flashdoctor.render.smoke import render_smoke

        render_smoke(report, make_console(), verbose=verbose)
    return report.exit_code()


@cli.command()
@python_option
@_gpu_option
@click.option("--batch", type=int, default=32, show_default=True)
@click.option("--seqlen", type=int, default=196, show_default=True)
@click.option("--heads", type=int, default=16, show_default=True)
@click.option("--kv-heads", type=int, default=None, help="Key/value heads for GQA/MQA  [default: --heads]")
@click.option("--head-dim", type=int, default=64, show_default=True)
@click.option("--dtype", type=click.Choice(["bf16", "fp16", "fp32"]), default="bf16", show_default=True)
@click.option("--causal", is_flag=True, help="Causal (autoregressive) mask.")
@click.option(
    "--backend",
    "backends",
    type=click.Choice(SMOKE_BACKEND_CHOICES),
    multiple=True,
    help="Only this backend (repeatable; SDPA math always runs as the baseline).",
)
@click.option(
    "--repeats",
    type=click.IntRange(min=1, max=1000),
    default=10,
    show_default=True,
    help="Timed batches; the median is reported.",
)
@click.option("--forward-only", is_flag=True, help="Skip the forward+backward timing.")
@click.option("--json", "as_json", is_flag=True, help="Print the versioned JSON report.")
@_output_option
@click.option("--plot", metavar="FILE.png", help="Draw the comparison (needs matplotlib: the 'plot' extra).")
@click.option("--timeout", type=click.FloatRange(min=1), default=600.0, show_default=True, metavar="S")
@click.option("-v", "--verbose", is_flag=True, help="Also list backends that are not installed.")
@_device_option
def bench(
    python: str | None,
    gpu: int | None,
    batch: int,
    seqlen: int,
    heads: int,
    kv_heads: int | None,
    head_dim: int,
    dtype: str,
    causal: bool,
    backends: tuple[str, ...],
    repeats: int,
    forward_only: bool,
    as_json: bool,
    output: str | None,
    plot: str | None,
    timeout: float,
    verbose: bool,
    device: str,
) -> int:
    """Time every available attention backend at one shape: forward and forward+backward, TFLOP/s,
    % of the GPU's measured bf16 matmul peak, peak memory; the fastest is marked and recommended."""
    from flashdoctor.actions.smoke import Case, run_bench
    from flashdoctor.decide.smoke.bench import validate_shape

    problem = validate_shape(batch, seqlen, heads, kv_heads, head_dim, dtype)
    if problem:
        raise UsageError(problem)
    if plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UsageError(
                "--plot needs matplotlib, which is not installed", hint="pip install 'flashdoctor[plot]'"
            ) from None
    case = Case("bench", batch, seqlen, heads, head_dim, dtype=dtype, causal=causal, kv_heads=kv_heads)  # type: ignore[arg-type]
    report = run_bench(
        _target_python(python),
        os.environ,
        case,
        gpu=gpu,
        backends=backends or None,
        device=device,
        timeout=timeout,
        repeats=repeats,
        backward=not forward_only,
    )
    doc = report.to_json()
    if output:
        _write_json(output, doc)
    if plot and not report.skipped_reason:
        from flashdoctor.render.plot import plot_bench

        plot_bench(report, plot)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        from flashdoctor.render.console import make_console
        from flashdoctor.render.smoke import render_bench

        render_bench(report, make_console(), verbose=verbose)
        if plot and not report.skipped_reason:
            click.echo(f"plot written to {plot}")
    return report.exit_code()


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
            from flashdoctor.actions.net.urls import redact_text  # no credentials in the log

            secrets = (os.environ.get("GITHUB_TOKEN"),)
            fh.write(redact_text(f"argv {sys.argv}\ntime {datetime.datetime.now().isoformat()}\n\n", secrets))
            fh.write(
                redact_text("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)), secrets)
            )
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


# -- explain (issue 7) ----------------------------------------------------------------------------
EXPLAIN_MAX_BYTES = 256 * 1024 * 1024  # beyond this, the head and the tail of the log are read


def _read_log(path: str | None) -> tuple[bytes, str]:
    """The log's bytes and a name for it: a file, or stdin for '-' / no argument on a pipe."""
    if path is None or path == "-":
        if path is None and sys.stdin.isatty():
            raise UsageError(
                "give a log file, or pipe one in",
                hint="flashdoctor explain build.log   |   pip install flash-attn 2>&1 | flashdoctor explain -",
            )
        stream = sys.stdin.buffer
        data = stream.read(EXPLAIN_MAX_BYTES + 1)
        if len(data) > EXPLAIN_MAX_BYTES:
            tail = b""
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                tail = (tail + chunk)[-EXPLAIN_MAX_BYTES // 2 :]
            data = data[: EXPLAIN_MAX_BYTES // 2] + b"\n" + tail
        return data, "<stdin>"
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > EXPLAIN_MAX_BYTES:
                head = fh.read(EXPLAIN_MAX_BYTES // 2)
                fh.seek(size - EXPLAIN_MAX_BYTES // 2)
                return head + b"\n" + fh.read(), path
            return fh.read(), path
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not a log file") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None


@cli.command()
@click.argument("log", required=False, metavar="[FILE | -]")
@python_option
@target_option
@click.option("--json", "as_json", is_flag=True, help='Print {"diagnoses": [...]} as JSON.')
@click.option(
    "--no-probe", is_flag=True, help="Do not probe this machine: explain the log alone (generic fixes)."
)
@click.option("-v", "--verbose", is_flag=True, help="Also show where each diagnosis is documented.")
def explain(
    log: str | None, python: str | None, target: str | None, as_json: bool, no_probe: bool, verbose: bool
) -> int:
    """Name the cause of a FlashAttention failure log (pip, uv, setup.py, ninja, import or runtime),
    its evidence line and the fix for this machine (or --target). Exit 0 when a cause is found, 1 when
    nothing is recognised."""
    from flashdoctor.decide.explain import explain_bytes
    from flashdoctor.decide.wheels import default_wheel_finder

    if no_probe and (python or target):
        raise UsageError("--no-probe excludes --python and --target")
    data, name = _read_log(log)
    env = None if no_probe else resolve_environment(python, target, import_tests=False)[0]
    expl = explain_bytes(
        data, env, wheel_finder=default_wheel_finder() if env else None, key_lines=verbose or None
    )
    if as_json:
        click.echo(json.dumps(expl.to_json(), indent=2, ensure_ascii=False))
    else:
        from flashdoctor.render.console import make_console
        from flashdoctor.render.explain import render_explanation

        render_explanation(expl, make_console(), name, verbose=verbose)
    return 0 if expl.recognised else 1
