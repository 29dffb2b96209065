"""Failure log -> diagnoses (cause, evidence line, fix). The signatures are data: data/signatures.json.

This is the engine every command calls on what it captures (check's failed imports, install, build,
smoke). It never raises on any input.
"""

from __future__ import annotations

from flashdoctor.explain.engine import Diagnosis, explain_text

__all__ = ["Diagnosis", "explain_text"]
