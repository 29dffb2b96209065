"""Failure log -> diagnoses (cause, evidence line, fix). The signatures are data: data/signatures.json.

This is the engine every command calls on what it captures (check's failed imports, install, build,
smoke). It never raises on any input. Rendering lives in flashdoctor.render.explain.
"""

from __future__ import annotations

from collections.abc import Mapping

from flashdoctor.decide.explain.engine import Diagnosis, Explanation, KeyLine, explain_bytes, explain_text
from flashdoctor.decide.explain.tailor import WheelFinder
from flashdoctor.model.environment import Environment

__all__ = [
    "Diagnosis",
    "Explanation",
    "KeyLine",
    "WheelFinder",
    "explain_bytes",
    "explain_output",
    "explain_text",
]


def explain_output(
    output: str | bytes,
    env: Environment | None = None,
    wheel_finder: WheelFinder | None = None,
    limit: int | None = 3,
    fields: Mapping[str, str] | None = None,
) -> list[Diagnosis]:
    """Diagnoses for output captured by another command (pip, a build, an import, a smoke run), best first.

    ``limit`` keeps the first few (None: all). ``fields`` passes fix-template values only the caller
    knows (tailor.CALLER_FIELDS: the build's ``jobs_used`` / ``fewer_jobs``). Pair with
    flashdoctor.render.explain.render_diagnoses (rich) or format_diagnoses (plain text for an error hint).
    """
    data = output if isinstance(output, bytes) else output.encode("utf-8", errors="replace")
    diags = list(explain_bytes(data, env, wheel_finder, key_lines=False, fields=fields).diagnoses)
    return diags if limit is None else diags[:limit]
