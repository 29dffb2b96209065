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
from flashdoctor.errors import UsageError
from flashdoctor.knowledge.variants import Variant


@click.command(
    epilog=examples(
        "flashdoctor wheels                      # fitting wheels first (★ = what install picks), then misses",
        "flashdoctor wheels --fa3 --all --json",
        "flashdoctor wheels --target a100.json --version '>=2.7,<2.8'",
        "flashdoctor wheels --coverage           # torch × CUDA × Python cells with a wheel",
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
