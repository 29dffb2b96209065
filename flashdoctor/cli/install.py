"""`flashdoctor install` and `flashdoctor lock` (services: flashdoctor/actions/install/service.py)."""

from __future__ import annotations

import os
import shlex
import sys
from typing import TYPE_CHECKING, Any

import click

from flashdoctor.cli.options import (
    SOURCE_BUILD_PARAMS,
    build_options,
    document,
    dry_run_option,
    examples,
    fetch_options,
    json_option,
    machine,
    output_option,
    plan_file_option,
    python_option,
    selection_options,
    source_build_options,
    target_option,
    variant_given,
    variant_options,
    verbose_option,
)
from flashdoctor.errors import PlanDoesNotHold, UsageError
from flashdoctor.knowledge.variants import Variant
from flashdoctor.model.install import LOCK_FORMS
from flashdoctor.render.text import clean, echo

if TYPE_CHECKING:
    from collections.abc import Sequence

    from flashdoctor.actions.fetch import FetchOptions
    from flashdoctor.actions.wheelhouse import Wheelhouse
    from flashdoctor.model.environment import Environment
    from flashdoctor.model.install import InstallResult
    from flashdoctor.model.plan import Plan


def _fetch(opts: dict[str, Any], progress: bool) -> tuple[FetchOptions, list[Wheelhouse]]:
    from flashdoctor.actions.install.service import fetch_setup
    from flashdoctor.render.install import download_progress

    fetch, houses = fetch_setup(
        opts["wheelhouse"],
        opts["index_url"],
        opts["allow_http"],
        os.environ,
        progress=download_progress(progress),
        on_wait=lambda: echo(
            "flashdoctor: another process is downloading this wheel; waiting for it", err=True
        ),
    )
    return fetch, houses


def _selection(opts: dict[str, Any]) -> dict[str, Any]:
    keys = ("plan_file", "version_spec", "allow_community", "index_path")
    return {**{k: opts[k] for k in keys}, "environ": os.environ, "variant_flag": variant_given()}


def _machine(opts: dict[str, Any]) -> str:
    """The machine a plan is judged for, in words: this one, or the one --target describes."""
    return f"the machine of --target {opts['target']}" if opts["target"] else "this machine"


def _past_preflight(variant: Variant, wheelhouse: str | None, python: str | None) -> str:
    """install has no --ignore-preflight (the other build options are build's: docs/build.md); a wheel
    build stores is one the next install of the same variant into the same interpreter finds in the same
    wheelhouse."""
    where = f" --wheelhouse {shlex.quote(wheelhouse)}" if wheelhouse else ""
    into = f" --python {shlex.quote(python)}" if python else ""
    return (
        f"flashdoctor build --{variant} --ignore-preflight with the same options, "
        f"then flashdoctor install --{variant}{into}{where} --yes"
    )


def _from_source(env: Environment, variant: Variant, opts: dict[str, Any]) -> Plan | int:
    """`install --from-source`: build (or find built) the wheel, show the outcome; its Plan, or the exit
    code when there is nothing to install."""
    from flashdoctor.actions.install.service import plan_from_build
    from flashdoctor.cli.build import run_source_build
    from flashdoctor.render.build import outcome_to_json, render_outcome
    from flashdoctor.render.console import make_console

    build_opts = build_options(
        variant,
        **{k: opts[k] for k in SOURCE_BUILD_PARAMS},
        wheelhouse=opts["wheelhouse"],
        index_url=opts["index_url"],
        allow_http=opts["allow_http"],
    )
    console = make_console(stderr=opts["as_json"])
    outcome = run_source_build(
        env,
        build_opts,
        opts["python"],
        console,
        variant,
        plan_only=opts["dry_run"],
        probe_tools=not opts["target"],
    )
    past = _past_preflight(variant, opts["wheelhouse"], opts["python"])
    if opts["dry_run"]:
        if opts["as_json"]:
            from flashdoctor.render.json import emit

            emit(document(outcome_to_json(outcome), command="install", exit_code=outcome.exit_code))
        else:
            render_outcome(outcome, console, verbose=True, past_preflight=past)
        return outcome.exit_code
    render_outcome(outcome, console, past_preflight=past)
    plan = plan_from_build(outcome, variant)
    return outcome.exit_code if plan is None else plan


def _show_plan(
    plan: Plan, notes: list[str], source: str, opts: dict[str, Any], restored: Sequence[str] = ()
) -> int:
    """The plan (--dry-run, no wheel to install, or a wheel the machine blocks) and its exit code.
    ``restored``: what the recovery of an interrupted install put back first (service.recover)."""
    dry_run = opts["dry_run"]
    code = plan_exit_code(plan, dry_run)
    if opts["as_json"]:
        from flashdoctor.model.envelope import PLAN_SCHEMA_ID
        from flashdoctor.render.json import emit

        doc = plan.to_json()
        if notes:
            doc["wheelhouse_notes"] = notes
        if restored:
            doc["restored"] = list(restored)
        emit(document(doc, command="install", exit_code=code, schema=PLAN_SCHEMA_ID))
    else:
        from flashdoctor.render.console import make_console
        from flashdoctor.render.wheels import render_plan

        console = make_console()
        render_plan(
            plan,
            console,
            source=source,
            dry_run=dry_run,
            verbose=bool(opts.get("verbose")),
            restored=restored,
        )
        for n in notes:
            console.print(f"  wheelhouse: {n}", markup=False)
    if not dry_run and plan.action == "build":
        echo(
            "flashdoctor: no prebuilt wheel fits; build one with `flashdoctor build --wheelhouse DIR`, "
            "then install it with `flashdoctor install --wheelhouse DIR`",
            err=True,
        )
    if not dry_run and plan.action == "wheel" and plan.blockers:
        echo(
            f"flashdoctor: nothing installed: fix {', '.join(plan.blockers)} first (flashdoctor check says how); "
            "the wheel would not run until then",
            err=True,
        )
    return code


def plan_exit_code(plan: Plan, dry_run: bool) -> int:
    """1 where the plan installs nothing although asked to: the variant cannot run here, a build is needed,
    or a wheel fits but the machine blocks it (a driver too old for torch itself: installing it would only
    fail the smoke test)."""
    if plan.action == "unsupported":
        return 1
    if dry_run:
        return 0
    return 1 if plan.action == "build" or (plan.action == "wheel" and plan.blockers) else 0


@click.command(
    epilog=examples(
        "flashdoctor install --fa2 --dry-run              # the plan: wheel, alternatives, near misses",
        "flashdoctor install --fa2 --yes                  # install it; verified or rolled back",
        "flashdoctor install --fa3 --python ~/venvs/train/bin/python",
        "flashdoctor install --dry-run --json > plan.json && flashdoctor install --plan plan.json --yes",
        "flashdoctor install --wheelhouse /shared/wheels --yes   # offline, from a wheelhouse",
        "flashdoctor install --from-source --arch 90 --head-dims 128 --yes",
    )
)
@variant_options()
@dry_run_option("Print the plan and change nothing.")
@json_option("Print the plan (--dry-run) or the result as JSON.")
@selection_options
@python_option
@target_option
@fetch_options
@click.option(
    "--yes", "-y", is_flag=True, help="Do not ask before changing the environment (non-interactive use)."
)
@plan_file_option("Install")
@click.option(
    "--no-deps",
    "no_deps",
    is_flag=True,
    help="Do not add missing dependencies of the wheel (torch is never touched).",
)
@click.option("--no-smoke", is_flag=True, help="Skip the smoke test on the GPU after the import check.")
@verbose_option("Show the installer output on failure, and the index's evidence for the planned wheel.")
@click.option("--from-source", is_flag=True, help="Build the wheel from source first (docs/build.md).")
@source_build_options
def install(variant: Variant, **opts: Any) -> int:
    """Install the FlashAttention variant that fits this machine: the prebuilt wheel (or a matching local
    build from --wheelhouse), verified by an import and, on a GPU, the smoke test; anything failing restores
    the previous state.

    With --dry-run, print the plan: action wheel | build | none | unsupported, the wheel, the
    alternatives and why every near miss was rejected. Exit 1 when the plan is 'unsupported'.

    --source, --ref, --arch, --head-dims, --dtypes, --max-jobs, --nvcc-threads and FA3's --no-* switches
    shape the wheel of --from-source (the other build options: `flashdoctor build`)."""
    from flashdoctor.actions.check import EarlyProbes

    target, dry_run = opts["target"], opts["dry_run"]
    if target and not dry_run:
        raise UsageError("--target describes another machine: flashdoctor can only --dry-run for it")
    if opts["plan_file"] and opts["from_source"]:
        raise UsageError(
            "--plan installs exactly the plan it names; --from-source builds a new wheel: give one of them",
            hint="a reviewed 'build' plan is carried out by `flashdoctor install --from-source` (or "
            "`flashdoctor build`) without --plan",
        )
    # A --python link that runs as the base Python is refused only when named (the user meant the venv);
    # the default interpreter found so (a Docker image's python3 linked into a venv) is what the user's
    # own python3 runs: it is warned about and installed into.
    named = opts["python"] is not None
    python = opts["python"] = machine(opts["python"], target, err=opts["as_json"], acts=named and not dry_run)
    # The probes (subprocesses of the target, NVML) start first and run while the install machinery is
    # imported; for a small wheel these fixed costs are most of what flashdoctor adds to a bare pip.
    read_state = not dry_run and opts["yes"] and not opts["from_source"]
    early = EarlyProbes(python, target, read_state=read_state, variant=variant)
    from flashdoctor.actions.install import service

    fetch, houses = _fetch(opts, progress=not opts["as_json"])
    env, source = early.environment()
    notes: list[str] = []
    restored: list[str] = []  # what the recovery of an interrupted install put back
    if opts["from_source"]:
        service.check_buildable(variant)
        local, notes = service.local_build_for_source(
            env, variant, houses, opts["arch"], opts["head_dims"], opts["dtypes"], opts["disable"]
        )
        built = local or _from_source(env, variant, opts)
        if isinstance(built, int):
            return built
        plan = built
    elif any(opts[k] for k in SOURCE_BUILD_PARAMS):
        raise UsageError(
            "--source/--ref/--arch/--head-dims/--dtypes/--max-jobs/--nvcc-threads/--no-* need --from-source"
        )
    else:
        refused: PlanDoesNotHold | None = None
        try:
            plan, notes, planned = service.resolve_plan(
                env, variant, houses, fetch, machine=_machine(opts), **_selection(opts)
            )
        except PlanDoesNotHold as exc:
            if dry_run:
                raise
            # a reviewed plan refused for what is installed here, which may be an interrupted install's
            # leftover: recover first, then judge the plan again by what is back
            refused = exc
        if refused is not None or (not dry_run and (plan.action != "wheel" or plan.blockers)):
            # Nothing to install, yet an install killed after its backup may have left its unverified
            # version in place (check: install-interrupted): restore it, and plan again for what is back.
            failed, warnings, restored = service.recover(
                variant,
                python=python or sys.executable,
                env=env,
                fetch=fetch,
                environ=os.environ,
                on_wait=_say,
            )
            if failed is not None:
                return _show_result(failed, opts)
            for w in warnings:
                _say(w)
            if restored:
                from flashdoctor.actions.check import resolve_environment

                env, source = resolve_environment(python, None, import_tests=True)
                plan, notes, planned = service.resolve_plan(
                    env, variant, houses, fetch, machine=_machine(opts), **_selection(opts)
                )
            elif refused is not None:
                raise refused
        fetch = planned
    if dry_run or plan.action != "wheel" or plan.blockers:
        return _show_plan(plan, notes, source, opts, restored)
    py = python or sys.executable  # python is None only with --target, which never gets here
    if not opts["yes"]:
        if not sys.stdin.isatty():
            raise UsageError(
                "not a terminal, so flashdoctor cannot ask: pass --yes to install without asking"
            )
        assert plan.wheel is not None
        click.confirm(clean(f"Install {plan.wheel.filename} into {py}?"), default=True, abort=True)
    result = service.install(
        plan,
        python=py,
        env=env,
        fetch=fetch,
        smoke=not opts["no_smoke"],
        install_deps=not opts["no_deps"],
        environ=os.environ,
        on_wait=_say,
        early_state=early.state,
    )
    return _show_result(result, opts)


def _say(message: str) -> None:
    echo(f"flashdoctor: {message}", err=True)


def _show_result(result: InstallResult, opts: dict[str, Any]) -> int:
    """An install's result (JSON, or the human report) and its exit code."""
    if opts["as_json"]:
        from flashdoctor.model.envelope import INSTALL_SCHEMA_ID
        from flashdoctor.render.json import emit

        emit(
            document(
                result.to_json(), command="install", exit_code=result.exit_code, schema=INSTALL_SCHEMA_ID
            )
        )
    else:
        from flashdoctor.render.console import make_console
        from flashdoctor.render.install import render_install

        render_install(result, make_console(), verbose=opts["verbose"])
    return result.exit_code


@click.command(
    epilog=examples(
        "flashdoctor lock --fa2 -o requirements-flash.txt",
        "pip install --no-deps --require-hashes -r requirements-flash.txt   # the same wheel, without flashdoctor",
        "flashdoctor lock --format uv           # a pyproject.toml dependency with its #sha256, for uv",
        "flashdoctor lock --format dockerfile   # a RUN line for a Dockerfile",
        "flashdoctor lock --format all -o flash # flash.txt, flash.pyproject.toml, flash.Dockerfile",
        "flashdoctor lock --target h100.json --index-url https://mirror.example/simple --json",
    )
)
@variant_options()
@selection_options
@python_option
@target_option
@fetch_options
@plan_file_option("Lock")
@click.option(
    "--format",
    "lock_format",
    type=click.Choice([*LOCK_FORMS, "all"]),
    default="requirements",
    show_default=True,
    help="requirements: a pip requirements file (--hash=sha256:); uv: a pyproject.toml dependency "
    "'flash-attn @ URL#sha256=...' that uv checks; dockerfile: a RUN line (pip --require-hashes); all: "
    "the three (with -o BASE: BASE.txt, BASE.pyproject.toml, BASE.Dockerfile).",
)
@output_option("Write it to FILE (default: standard output); with --format all, FILE is a base name.")
@json_option("Print the locked entry, and each format's text, as JSON.", frame=False)
def lock(variant: Variant, **opts: Any) -> int:
    """Pin the planned wheel by its exact URL and sha256, so that it installs the same without
    flashdoctor: a requirements line for `pip install --no-deps --require-hashes -r FILE`, a pyproject.toml
    dependency for uv, or a Dockerfile RUN line. Each says whether the sha256 matches a published
    digest or was recorded from the download."""
    from flashdoctor.actions.check import resolve_environment
    from flashdoctor.actions.install import service

    formats = LOCK_FORMS if opts["lock_format"] == "all" else (opts["lock_format"],)
    # standard output may be the locked file: the interpreter's line goes to standard error
    python = machine(opts["python"], opts["target"], err=opts["as_json"] or not opts["output"])
    fetch, houses = _fetch(opts, progress=not opts["as_json"])
    env, source = resolve_environment(python, opts["target"], import_tests=False)
    plan, _notes, fetch = service.resolve_plan(
        env, variant, houses, fetch, lock=True, machine=_machine(opts), **_selection(opts)
    )
    result = service.lock(
        plan,
        env,
        source,
        fetch,
        index_url=opts["index_url"],
        output=opts["output"],
        environ=os.environ,
        formats=formats,
    )
    entry = result.entry
    if opts["as_json"]:
        from flashdoctor.model.envelope import LOCK_SCHEMA_ID
        from flashdoctor.render.json import emit

        body = {
            "entries": [entry.to_json()],
            "output": result.output,
            "outputs": dict(result.outputs),
            "exports": dict(result.exports),
        }
        emit(document(body, command="lock", exit_code=0, schema=LOCK_SCHEMA_ID))
    elif not result.outputs:
        for i, (name, text) in enumerate(result.exports.items()):
            if len(result.exports) > 1:
                echo(("\n" if i else "") + f"# ==> {name} <==")
            echo(text, nl=False)
    else:
        for path in result.outputs.values():
            echo(f"wrote {path}: {entry.dist} {entry.wheel.version} ({entry.sha256_check})")
        if entry.credentials_removed:
            from flashdoctor.actions.install.lock import credentials_note

            echo(credentials_note([entry.credentials_removed]) or "")
    return 0
