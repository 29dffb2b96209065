"""`flashdoctor build`: a source build that fits this machine (flashdoctor/actions/source_build/)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from flashdoctor.cli.options import (
    SOURCE_BUILD_PARAMS,
    allow_http_option,
    build_options,
    document,
    dry_run_option,
    examples,
    index_url_option,
    json_option,
    machine,
    python_option,
    source_build_options,
    target_option,
    variant_options,
    verbose_option,
    wheelhouse_option,
)
from flashdoctor.knowledge.variants import VARIANTS, Variant, variant_info

if TYPE_CHECKING:
    from rich.console import Console

    from flashdoctor.actions.source_build.api import BuildOptions
    from flashdoctor.model.build import BuildOutcome
    from flashdoctor.model.environment import Environment

# The variants with something to compile (FA4 is pure Python).
BUILDABLE: tuple[Variant, ...] = tuple(v for v in VARIANTS if variant_info(v).needs_nvcc)


def run_source_build(
    env: Environment,
    opts: BuildOptions,
    python: str | None,
    console: Console,
    variant: str,
    *,
    plan_only: bool,
    probe_tools: bool,
) -> BuildOutcome:
    """The build (or its plan) with a progress bar on a terminal, plain [N/M] lines otherwise."""
    from rich.markup import escape

    from flashdoctor.actions.install.service import source_build
    from flashdoctor.render.progress import LineProgress, RichProgress

    progress = (
        RichProgress(console, f"{variant} build")
        if console.is_terminal
        else LineProgress(lambda line: console.print(line, markup=False, highlight=False))
    )
    return source_build(
        env,
        opts,
        python,
        plan_only=plan_only,
        probe_tools=probe_tools,
        progress=progress,
        say=lambda m: console.print(f"[dim]{escape(m)}[/]"),
    )


@click.command(
    epilog=examples(
        "flashdoctor build --dry-run                              # the plan: units, MAX_JOBS, preflight",
        "flashdoctor build --arch 90 --head-dims 128 --dtypes bf16   # a minimal FA2 build for one model",
        "flashdoctor build --fa3 --source https://github.com/Dao-AILab/flash-attention --ref v2.8.3",
        "flashdoctor build --wheelhouse /shared/wheels && flashdoctor install --wheelhouse /shared/wheels --yes",
    )
)
@variant_options(BUILDABLE)
@source_build_options
@click.option("--flash-version", metavar="VER", help="FA2 sdist version to fetch (default: newest known).")
@wheelhouse_option
@click.option("--log", "log", metavar="FILE", help="Build log file (default: in flashdoctor's cache).")
@click.option(
    "--work-dir", metavar="DIR", help="Unpack and build here (kept); default: a temporary directory."
)
@click.option(
    "--keep-work", is_flag=True, help="Keep the temporary build directory after a successful build."
)
@click.option("--rebuild", is_flag=True, help="Build even if a wheel for this fingerprint exists.")
@click.option("--ignore-preflight", is_flag=True, help="Start the build despite blocking preflight findings.")
@index_url_option
@allow_http_option
@python_option
@target_option
@dry_run_option("Print the build plan (env vars, unit count, preflight) and stop.")
@json_option("Print the outcome as JSON.")
@verbose_option("Show the plan and every preflight finding.")
def build(variant: Variant, **opts: Any) -> int:
    """Build a FlashAttention wheel from source that fits this machine and model: only the GPUs'
    architectures (--arch), only the head dims and dtypes you use (--head-dims, --dtypes), MAX_JOBS
    that fit the memory, a progress bar, and a diagnosis when it fails. The wheel goes to the
    wheelhouse, keyed by an environment fingerprint, so other machines install it instead."""
    from flashdoctor.actions.check import resolve_environment
    from flashdoctor.render.build import outcome_to_json, render_outcome
    from flashdoctor.render.console import make_console

    build_opts = build_options(
        variant,
        **{k: opts[k] for k in SOURCE_BUILD_PARAMS},
        wheelhouse=opts["wheelhouse"],
        index_url=opts["index_url"],
        version=opts["flash_version"],
        log=opts["log"],
        work_dir=opts["work_dir"],
        keep_work=opts["keep_work"],
        rebuild=opts["rebuild"],
        ignore_preflight=opts["ignore_preflight"],
        allow_http=opts["allow_http"],
    )
    target, dry_run, as_json = opts["target"], opts["dry_run"], opts["as_json"]
    python = machine(opts["python"], target, err=as_json)
    env, _src = resolve_environment(python, target, import_tests=False, environ=os.environ)
    console = make_console(stderr=as_json)
    outcome = run_source_build(
        env, build_opts, python, console, variant, plan_only=dry_run or bool(target), probe_tools=not target
    )
    if as_json:
        from flashdoctor.render.json import emit

        emit(document(outcome_to_json(outcome), command="build", exit_code=outcome.exit_code))
    else:
        render_outcome(outcome, console, verbose=opts["verbose"] or dry_run or bool(target))
    return outcome.exit_code
