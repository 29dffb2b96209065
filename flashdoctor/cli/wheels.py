"""`flashdoctor wheels`: the prebuilt wheels for this machine, or the index's coverage."""

from __future__ import annotations

import os
from typing import Any

import click

from flashdoctor.cli.options import (
    document,
    examples,
    json_option,
    machine,
    python_option,
    selection_options,
    target_option,
    variant_options,
)
from flashdoctor.errors import FlashdoctorError, UsageError
from flashdoctor.knowledge.variants import Variant


@click.command(
    epilog=examples(
        "flashdoctor wheels                      # fitting wheels first (★ = what install picks), then misses",
        "flashdoctor wheels --fa3 --all --json",
        "flashdoctor wheels --target a100.json --version '>=2.7,<2.8'",
        "flashdoctor wheels --coverage           # torch × CUDA × Python cells with a wheel",
        "flashdoctor wheels --refresh            # online: rebuild the index from the publishers",
        "flashdoctor wheels --refresh --only community:windreamer   # add an opt-in source",
    )
)
@variant_options()
@click.option(
    "--coverage", is_flag=True, help="Per platform: which torch × CUDA × Python cells have a wheel."
)
@click.option(
    "--all", "show_all", is_flag=True, help="List every wheel of the variant, not only the nearest."
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=25,
    show_default=True,
    help="Rows of fitting and of rejected wheels shown.",
)
@click.option(
    "--refresh",
    is_flag=True,
    help="Online: rebuild the wheel index from the live sources into flashdoctor's cache; later runs use "
    "it while it is newer than the bundled one. Nothing is written if a source fails.",
)
@click.option(
    "--only",
    "sources",
    metavar="NAME",
    multiple=True,
    help="With --refresh: read only this source (repeatable; an opt-in source such as "
    "community:windreamer is read only when named); the others' entries are kept.",
)
@click.option(
    "--mirror",
    "mirrors",
    metavar="PUBLIC=URL",
    multiple=True,
    help="With --refresh: reach a public endpoint (https://api.github.com, https://pypi.org, "
    "https://download.pytorch.org/whl, https://huggingface.co, or a configured source's host) at a "
    "mirror URL instead (repeatable).",
)
@json_option("Print JSON.")
@selection_options
@python_option
@target_option
def wheels(variant: Variant, **opts: Any) -> int:
    """List the prebuilt wheels for this machine (or --target): those that fit, best first, and the
    others with the reasons they were rejected."""
    from flashdoctor.actions.check import resolve_environment
    from flashdoctor.actions.inputs import load_wheel_index
    from flashdoctor.render.console import make_console
    from flashdoctor.render.json import emit

    python, target, version_spec, as_json = (
        opts["python"],
        opts["target"],
        opts["version_spec"],
        opts["as_json"],
    )
    if opts["refresh"]:
        given = [
            flag
            for flag, key in (
                ("--coverage", "coverage"),
                ("--all", "show_all"),
                ("--python", "python"),
                ("--target", "target"),
                ("--version", "version_spec"),
                ("--index", "index_path"),
            )
            if opts[key]
        ]
        if given:
            raise UsageError(f"--refresh rebuilds the index; it takes no {', '.join(given)}")
        return _refresh(opts["sources"], opts["mirrors"], as_json)
    if opts["sources"] or opts["mirrors"]:
        raise UsageError("--only and --mirror are options of --refresh")
    if opts["coverage"] and (python or target or version_spec):
        raise UsageError(
            "--coverage describes every torch × CUDA × Python cell: it takes no machine or --version"
        )
    index = load_wheel_index(opts["index_path"], os.environ)
    if opts["coverage"]:
        from flashdoctor.decide.wheels.coverage import coverage as compute_coverage
        from flashdoctor.model.envelope import COVERAGE_SCHEMA_ID
        from flashdoctor.render.wheels import coverage_to_json, render_coverage

        cov = compute_coverage(index, variant)
        if as_json:
            body = coverage_to_json(cov, variant)
            emit(document(body, command="wheels", exit_code=0, schema=COVERAGE_SCHEMA_ID), indent=1)
        else:
            render_coverage(cov, make_console(), variant)
        return 0
    from flashdoctor.decide.wheels import parse_version_spec, select_wheels

    spec = parse_version_spec(version_spec)
    python = machine(python, target, err=as_json)
    env, source = resolve_environment(python, target, import_tests=False, environ=os.environ)
    sel = select_wheels(env, variant, index, spec, opts["allow_community"])
    rows = None if opts["show_all"] else opts["limit"]
    if as_json:
        from flashdoctor.model.envelope import WHEELS_SCHEMA_ID
        from flashdoctor.render.wheels import candidates_to_json

        body = candidates_to_json(sel, rows, source=source, index=index.origin)
        emit(document(body, command="wheels", exit_code=0, schema=WHEELS_SCHEMA_ID))
    else:
        from flashdoctor.render.wheels import render_candidates

        render_candidates(sel, make_console(), rows, source=source)
    return 0


def _mirrors(pairs: tuple[str, ...]) -> dict[str, str]:
    """--mirror PUBLIC=URL pairs as the refresh's rewrites (public endpoint -> where it is reached)."""
    from flashdoctor.actions.net.sources import public_endpoints

    known = public_endpoints()
    out: dict[str, str] = {}
    for pair in pairs:
        public, sep, there = pair.partition("=")
        public = public.rstrip("/")
        if not sep or not there:
            raise UsageError(
                f"--mirror {pair!r}: expected PUBLIC=URL, e.g. https://pypi.org=https://pypi.example"
            )
        if public not in known:
            raise UsageError(
                f"--mirror {public!r}: not a public endpoint flashdoctor reads",
                hint=f"known: {', '.join(known)}",
            )
        out[public] = there
    return out


def _refresh(sources: tuple[str, ...], mirrors: tuple[str, ...], as_json: bool) -> int:
    """`wheels --refresh`: the service (actions.wheel_index.refresh_index), then what it read."""
    from flashdoctor.actions.wheel_index import refresh_index, today_of
    from flashdoctor.render.console import make_console

    rewrites = _mirrors(mirrors)
    err = make_console(stderr=True)
    say = (lambda name: None) if as_json else (lambda name: err.print(f"reading {name} …", markup=False))
    try:
        result = refresh_index(
            sources, os.environ, rewrites=rewrites, today=today_of(os.environ).isoformat(), on_source=say
        )
    except FlashdoctorError as exc:
        # nothing was written: say which index stays in use
        from flashdoctor.actions.wheel_index import current_index

        try:
            kept = f"nothing was written; still in use: {current_index(None, os.environ).describe()}"
        except FlashdoctorError:
            kept = "nothing was written"
        exc.hint = f"{exc.hint}; {kept}" if exc.hint else kept
        raise
    if as_json:
        from flashdoctor.model.envelope import REFRESH_SCHEMA_ID
        from flashdoctor.render.json import emit

        emit(document(result.to_json(), command="wheels", exit_code=0, schema=REFRESH_SCHEMA_ID))
    else:
        from flashdoctor.render.wheels import render_refresh

        render_refresh(result, make_console())
    return 0
