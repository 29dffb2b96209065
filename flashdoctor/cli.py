"""Command line: parse options, call the layers, render, return an exit code. No decisions here."""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
import traceback
from collections.abc import Sequence
from dataclasses import replace
from urllib.parse import unquote, urlsplit

import click

from flashdoctor import __version__
from flashdoctor.environment import VARIANT_DIST, VARIANTS, Environment, TargetSpecError, Variant, load_target
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
        return probe_environment(python=python, environ=os.environ, import_tests=import_tests, deep=deep), "probe"
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
    from flashdoctor.render.github import annotations, in_github_actions, summary_markdown
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
        for line in annotations(report):
            click.echo(line)
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            try:
                with open(summary, "a", encoding="utf-8") as fh:
                    fh.write(summary_markdown(report, code))
            except OSError as exc:
                click.echo(f"flashdoctor: cannot append to GITHUB_STEP_SUMMARY: {exc}", err=True)
    return code


# == install / lock (issue 4; logic in flashdoctor/install/) ========================================
def _variant_options(f):  # type: ignore[no-untyped-def]
    f = click.option("--fa4", "variant", flag_value="fa4", help="FA4 (flash-attn-4, CuTe DSL).")(f)
    f = click.option("--fa3", "variant", flag_value="fa3", help="FA3 (flash-attn-3, Hopper).")(f)
    f = click.option("--fa2", "variant", flag_value="fa2", default=True, help="FA2 (flash-attn), the default.")(f)
    return f


def _fetch_options(f):  # type: ignore[no-untyped-def]
    f = click.option(
        "--allow-http", is_flag=True, help="Allow plain-http URLs (a trusted mirror on your own network); loopback always may."
    )(f)
    f = click.option("--index-url", metavar="URL", help="A PEP 503 mirror to fetch the planned wheel from instead of its origin.")(f)
    f = click.option(
        "--wheelhouse",
        metavar="DIR",
        help="A directory of wheels read before the network and written after a download (offline / cluster use).",
    )(f)
    return f


def _install_plan(
    env: Environment, variant: Variant, plan_file: str | None, version_spec: str | None, allow_community: bool
):  # type: ignore[no-untyped-def]
    """The plan: from --plan FILE, else from the wheel selector (issue 3)."""
    if plan_file:
        from flashdoctor.install.prepare import load_plan

        return load_plan(plan_file)
    try:
        from flashdoctor.wheels import load_index, make_plan  # type: ignore[attr-defined]
    except ImportError:
        raise UsageError("this flashdoctor has no wheel selector yet: pass --plan FILE") from None
    return make_plan(env, variant, load_index(), version_spec=version_spec, allow_community=allow_community)


def _fetch_setup(wheelhouse: str | None, index_url: str | None, allow_http: bool, progress: bool):  # type: ignore[no-untyped-def]
    from flashdoctor.install.cache import WheelCache, default_cache_root
    from flashdoctor.install.download import DownloadPolicy, check_url
    from flashdoctor.install.fetch import FetchOptions
    from flashdoctor.install.prepare import wheelhouse_paths
    from flashdoctor.render.console import make_console
    from flashdoctor.render.install import RichProgress

    if index_url:
        try:
            check_url(index_url, allow_http)
        except FlashdoctorError as exc:
            raise UsageError(f"--index-url: {exc.message}", hint=exc.hint) from None
    houses = wheelhouse_paths((wheelhouse,) if wheelhouse else ())
    err = make_console(stderr=True)
    return FetchOptions(
        cache=WheelCache(default_cache_root(os.environ)),
        policy=DownloadPolicy(allow_http=allow_http),
        wheelhouse=houses[0] if houses else None,
        index_url=index_url,
        progress=RichProgress(err) if progress and err.is_terminal else None,
        on_wait=lambda: click.echo("flashdoctor: another process is downloading this wheel; waiting for it", err=True),
    ), houses


@cli.command()
@_variant_options
@python_option
@target_option
@_fetch_options
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before changing the environment (non-interactive use).")
@click.option("--plan", "plan_file", metavar="FILE", help="Install exactly this plan (as printed by --dry-run --json).")
@click.option("--version", "version_spec", metavar="SPEC", help="Pin the FlashAttention version, e.g. '==2.8.3'.")
@click.option("--allow-community", is_flag=True, help="Also consider community-built wheels.")
@click.option("--no-deps", "no_deps", is_flag=True, help="Do not add missing dependencies of the wheel (torch is never touched).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("-v", "--verbose", is_flag=True, help="Show the installer output on failure.")
def install(
    variant: Variant,
    python: str | None,
    target: str | None,
    wheelhouse: str | None,
    index_url: str | None,
    allow_http: bool,
    dry_run: bool,
    yes: bool,
    plan_file: str | None,
    version_spec: str | None,
    allow_community: bool,
    no_deps: bool,
    as_json: bool,
    verbose: bool,
) -> int:
    """Install the FlashAttention wheel that fits this machine, verify it (import, then the smoke test on
    a GPU), and restore the previous state if anything fails."""
    from flashdoctor.install.executor import InstallContext, execute
    from flashdoctor.install.prepare import smoke_hook, with_local_build
    from flashdoctor.render.console import make_console
    from flashdoctor.render.install import render_install

    if target and not dry_run:
        raise UsageError("--target describes another machine: flashdoctor can only --dry-run for it")
    fetch, houses = _fetch_setup(wheelhouse, index_url, allow_http, progress=not as_json)
    env, _source = resolve_environment(python, target)
    plan = _install_plan(env, variant, plan_file, version_spec, allow_community)
    plan, notes = with_local_build(plan, env, houses)
    if dry_run or plan.action != "wheel":
        doc = plan.to_json()
        if notes:
            doc["wheelhouse_notes"] = notes
        if as_json:
            click.echo(json.dumps(doc, indent=2))
        else:
            click.echo(f"plan for {plan.variant}: {plan.action}")
            if plan.wheel:
                click.echo(f"  wheel {plan.wheel.filename}\n  from  {plan.wheel.url}\n  sha256 {plan.wheel.sha256 or '(none in the index)'}")
            for r in (*plan.reasons, *notes):
                click.echo(f"  - {r}")
        if dry_run:
            return 0
        return 0 if plan.action == "none" else 1
    py = python or sys.executable
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("not a terminal, so flashdoctor cannot ask: pass --yes to install without asking")
        assert plan.wheel is not None
        click.confirm(f"Install {plan.wheel.filename} into {py}?", default=True, abort=True)
    ctx = InstallContext(
        python=py,
        environ=os.environ,
        fetch=fetch,
        env=env,
        smoke=smoke_hook(),
        install_deps=not no_deps,
        log_dir=fetch.cache.root.parent / "logs",
        on_wait=lambda msg: click.echo(f"flashdoctor: {msg}", err=True),
    )
    result = execute(plan, ctx)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        render_install(result, make_console(), verbose=verbose)
    return result.exit_code


@cli.command()
@_variant_options
@python_option
@target_option
@_fetch_options
@click.option("--plan", "plan_file", metavar="FILE", help="Lock exactly this plan (as printed by install --dry-run --json).")
@click.option("--version", "version_spec", metavar="SPEC", help="Pin the FlashAttention version, e.g. '==2.8.3'.")
@click.option("--allow-community", is_flag=True, help="Also consider community-built wheels.")
@click.option("-o", "--output", metavar="FILE", help="Write the requirements file here (default: standard output).")
@click.option("--json", "as_json", is_flag=True, help="Print the locked entry as JSON.")
def lock(
    variant: Variant,
    python: str | None,
    target: str | None,
    wheelhouse: str | None,
    index_url: str | None,
    allow_http: bool,
    plan_file: str | None,
    version_spec: str | None,
    allow_community: bool,
    output: str | None,
    as_json: bool,
) -> int:
    """Write a requirements line with the exact URL and --hash=sha256: for the planned wheel, so that
    `pip install --require-hashes -r FILE` reproduces the install without flashdoctor."""
    from flashdoctor.install.fetch import obtain
    from flashdoctor.install.lock import LockEntry, lock_text

    fetch, houses = _fetch_setup(wheelhouse, index_url, allow_http, progress=not as_json)
    env, source = resolve_environment(python, target)
    plan = _install_plan(env, variant, plan_file, version_spec, allow_community)
    from flashdoctor.install.prepare import with_local_build

    plan, _notes = with_local_build(plan, env, houses)
    if plan.action != "wheel" or plan.wheel is None:
        raise FlashdoctorError(f"nothing to lock: the plan for {plan.variant} is {plan.action!r}", hint="; ".join(plan.reasons) or None)
    ref, sha_from = plan.wheel, "index"
    if index_url or not ref.sha256:
        # No digest in the index (or a mirror whose URL we must write): fetch, verify it is the wheel, hash it.
        art = obtain(ref, fetch, os.environ, VARIANT_DIST[plan.variant])
        url = art.ref.url if art.origin in ("download", "cache") else ref.url
        ref, sha_from = replace(ref, url=url, sha256=art.sha256), art.sha256_from
    assert ref.sha256 is not None
    if unquote(urlsplit(ref.url).path).rsplit("/", 1)[-1] != ref.filename:
        raise FlashdoctorError(
            f"cannot lock {ref.url}: pip reads the wheel's name from the URL, and it does not end in {ref.filename}"
        )
    entry = LockEntry(plan.variant, ref, ref.sha256, sha_from)
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
        click.echo(f"wrote {output}: {entry.dist} {ref.version} (sha256 {'from the index' if sha_from == 'index' else 'computed from the download'})")
    return 0


# == end install / lock =============================================================================


# -- entry point ------------------------------------------------------------------------------------
def _crash_log(exc: BaseException) -> str | None:
    try:
        from platformdirs import user_log_dir

        d = user_log_dir("flashdoctor", appauthor=False)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "crash.log")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(f"flashdoctor {__version__}\n")
            fh.write(f"python {sys.version}\nplatform {platform.platform()}\n")
            fh.write(f"argv {sys.argv}\ntime {datetime.datetime.now().isoformat()}\n\n")
            fh.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        return path
    except OSError:
        return None


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point. User errors: one message and their exit code; bugs: exit 3 with a
    log to paste into an issue; Ctrl-C: 130."""
    try:
        rv = cli.main(args=list(argv) if argv is not None else None, prog_name="flashdoctor", standalone_mode=False)
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
