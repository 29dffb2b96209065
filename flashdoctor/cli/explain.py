"""`flashdoctor explain`: the cause of a failure log (flashdoctor/decide/explain/)."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from flashdoctor.cli.options import examples, json_option, python_option, target_option, verbose_option
from flashdoctor.errors import UsageError


@click.command(
    epilog=examples(
        "flashdoctor explain build.log",
        "pip install flash-attn --no-build-isolation 2>&1 | flashdoctor explain -",
        "flashdoctor explain import-error.txt --target h100.json --json",
        "flashdoctor explain build.log --no-probe -v     # the log alone, with the sources of each cause",
    )
)
@click.argument("log", required=False, metavar="[FILE | -]")
@python_option
@target_option
@json_option('Print {"diagnoses": [...]} as JSON.')
@click.option(
    "--no-probe", is_flag=True, help="Do not probe this machine: explain the log alone (generic fixes)."
)
@verbose_option("Also show where each diagnosis is documented.")
def explain(log: str | None, **opts: Any) -> int:
    """Name the cause of a FlashAttention failure log (pip, uv, setup.py, ninja, import or runtime),
    its evidence line and the fix for this machine (or --target). Exit 0 when a cause is found, 1 when
    nothing is recognised, 2 when FILE is not a text log."""
    from flashdoctor.actions.check import resolve_environment
    from flashdoctor.actions.inputs import read_log, wheel_finder
    from flashdoctor.decide.explain import explain_bytes

    python, target, verbose = opts["python"], opts["target"], opts["verbose"]
    if opts["no_probe"] and (python or target):
        raise UsageError("--no-probe excludes --python and --target")
    data, name = read_log(log, sys.stdin.buffer, sys.stdin.isatty())
    env = None if opts["no_probe"] else resolve_environment(python, target, import_tests=False)[0]
    finder = wheel_finder(os.environ) if env else None
    expl = explain_bytes(data, env, wheel_finder=finder, key_lines=verbose or None)
    code = 0 if expl.recognised else 1
    if opts["as_json"]:
        from flashdoctor.model.envelope import EXPLAIN_SCHEMA_ID
        from flashdoctor.render.json import document, emit

        status = "recognised" if expl.recognised else "unrecognised"
        doc = document(
            expl.to_json(), command="explain", exit_code=code, schema=EXPLAIN_SCHEMA_ID, status=status
        )
        emit(doc, ensure_ascii=False)
    else:
        from flashdoctor.render.console import make_console
        from flashdoctor.render.explain import render_explanation

        render_explanation(expl, make_console(), name, verbose=verbose)
    return code
