"""Failure log -> diagnoses (cause, evidence line, fix). The signatures are data: data/signatures.json.

This is the engine every command calls on what it captures (check's failed imports, install, build,
smoke). It never raises on any input. Rendering lives in flashdoctor.render.explain.
"""

from __future__ import annotations

from collections.abc import Mapping

from flashdoctor.decide import checks
from flashdoctor.decide.checks import ImportDiagnoser
from flashdoctor.decide.explain.engine import (
    Diagnosis,
    Explanation,
    KeyLine,
    Skipped,
    explain_bytes,
    explain_text,
)
from flashdoctor.decide.explain.tailor import WheelFinder
from flashdoctor.model.environment import Environment
from flashdoctor.model.findings import CheckReport

__all__ = [
    "Diagnosis",
    "Explanation",
    "KeyLine",
    "Skipped",
    "WheelFinder",
    "explain_bytes",
    "explain_output",
    "explain_text",
    "import_diagnoser",
    "run_checks",
]


def import_diagnoser(wheel_finder: WheelFinder | None = None) -> ImportDiagnoser:
    """checks' ImportDiagnoser backed by this engine: the cause and fix of a failed import; with a
    wheel finder the fix names the wheel that fits."""

    def diagnose(text: str, env: Environment) -> tuple[str, str] | None:
        # The import ran in this machine's interpreter: its facts tailor the fix.
        diags = explain_text(text, env, wheel_finder=wheel_finder, here=True)
        return (diags[0].message, diags[0].fix) if diags else None

    return diagnose


def run_checks(
    env: Environment, source: str = "probe", wheel_finder: WheelFinder | None = None
) -> CheckReport:
    """Every check and verdict, with failed imports explained by this engine (what `check` runs)."""
    return checks.run_checks(
        env, source=source, wheel_finder=wheel_finder, diagnose=import_diagnoser(wheel_finder)
    )


def explain_output(
    output: str | bytes,
    env: Environment | None = None,
    wheel_finder: WheelFinder | None = None,
    limit: int | None = 3,
    fields: Mapping[str, str] | None = None,
    *,
    here: bool = True,
) -> list[Diagnosis]:
    """Diagnoses for output captured by another command (pip, a build, an import, a smoke run), best first.

    ``limit`` keeps the first few (None: all). ``fields`` passes fix-template values only the caller
    knows (tailor.CALLER_FIELDS: the build's ``jobs_used`` / ``fewer_jobs``). ``here``: the command ran
    on ``env``'s machine, so its facts tailor the fixes (the default: captured output is from here).
    Pair with flashdoctor.render.explain.render_diagnoses (rich) or format_diagnoses (plain text).
    """
    data = output if isinstance(output, bytes) else output.encode("utf-8", errors="replace")
    diags = list(explain_bytes(data, env, wheel_finder, key_lines=False, fields=fields, here=here).diagnoses)
    return diags if limit is None else diags[:limit]
