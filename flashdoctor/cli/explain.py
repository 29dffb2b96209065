"""`flashdoctor explain`: the cause of a failure log (flashdoctor/decide/explain/)."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from flashdoctor.cli.options import (
    document,
    examples,
    json_option,
    machine,
    python_option,
    target_option,
    verbose_option,
)
from flashdoctor.errors import UsageError


@click.command(
    epilog=examples(
        "flashdoctor explain build.log",
        "pip install flash-attn --no-build-isolation 2>&1 | flashdoctor explain -",
        "flashdoctor explain import-error.txt --target h100.json --json",
        "flashdoctor explain build.log --no-probe -v     # the log alone, with the sources of each cause",
        "flashdoctor explain build.log --here            # the log is from this machine: fixes for it",
    )
)
@click.argument("log", required=False, metavar="[FILE | -]")
@python_option
@target_option
@json_option('Print {"diagnoses": [...]} as JSON.')
@click.option(
    "--no-probe", is_flag=True, help="Do not probe this machine: explain the log alone (generic fixes)."
)
@click.option(
    "--here",
    is_flag=True,
    help="The log comes from this machine (or --target): tailor the fixes with its facts. Without it they "
    "are tailored only when the log's own facts (torch, Python, paths) show it comes from here.",
)
@verbose_option("Also show where each diagnosis is documented.")
def explain(log: str | None, **opts: Any) -> int:
    """Name the cause of a FlashAttention failure log (pip, uv, setup.py, ninja, import or runtime),
    its evidence line and the fix, for the machine the log comes from: this one (or --target) when the
    log shows it or --here says so, else the machine the log describes. Exit 0 when a cause is found, 1
    when nothing is recognised, 2 when FILE is not a text log."""
    from flashdoctor.actions.check import resolve_environment
    from flashdoctor.actions.inputs import read_log, release_table, wheel_finder
    from flashdoctor.decide.explain import explain_bytes

    python, target, verbose, as_json = opts["python"], opts["target"], opts["verbose"], opts["as_json"]
    if opts["no_probe"] and (python or target or opts["here"]):
        raise UsageError("--no-probe excludes --python, --target and --here")
    stdin = sys.stdin  # None when it is closed (`flashdoctor explain - <&-`)
    data, name, skipped = read_log(
        log, None if stdin is None else stdin.buffer, stdin is not None and stdin.isatty()
    )
    env = None
    if not opts["no_probe"]:
        python = machine(python, target, err=as_json)
        env = resolve_environment(python, target, import_tests=False)[0]
    finder = wheel_finder(os.environ) if env else None
    expl = explain_bytes(
        data,
        env,
        wheel_finder=finder,
        key_lines=verbose or None,
        here=opts["here"],
        releases=lambda: release_table(os.environ),  # the index's knowledge, with or without a machine
        skipped=skipped,
    )
    code = 0 if expl.recognised else 1
    if as_json:
        from flashdoctor.model.envelope import EXPLAIN_SCHEMA_ID
        from flashdoctor.render.json import emit

        status = "recognised" if expl.recognised else "unrecognised"
        body = {**expl.to_json(), "machine": expl.machine_json()}
        doc = document(body, command="explain", exit_code=code, schema=EXPLAIN_SCHEMA_ID, status=status)
        emit(doc, ensure_ascii=False)
    else:
        from flashdoctor.render.console import make_console
        from flashdoctor.render.explain import render_explanation

        render_explanation(expl, make_console(), name, verbose=verbose, target=target)
    return code
