"""Every JSON document flashdoctor prints or writes goes out here, in its result envelope
(flashdoctor.model.envelope): one place for the envelope, the formatting and terminal safety."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import click

from flashdoctor.model.envelope import envelope

# json.dumps escapes C0 controls; with ensure_ascii=False it leaves DEL and the C1 controls (8-bit CSI,
# OSC) raw. Escaped here (\\u0085 is the same string to a JSON reader), so the document is terminal-safe.
_RAW_CONTROLS = {c: f"\\u{c:04x}" for c in (0x7F, *range(0x80, 0xA0))}


def document(
    body: Mapping[str, Any],
    *,
    command: str,
    exit_code: int,
    schema: str | None = None,
    status: str | None = None,
    interpreter: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``body`` in its result envelope (model.envelope: one implementation), and the ``interpreter`` the
    command worked on (path, reason, why; with --target: path null, reason "--target", target) when it
    has one."""
    doc = envelope(body, command=command, exit_code=exit_code, schema=schema, status=status)
    if interpreter is not None and "interpreter" not in doc:
        doc["interpreter"] = dict(interpreter)
    return doc


def dumps(doc: Any, indent: int = 2, ensure_ascii: bool = True) -> str:
    text = json.dumps(doc, indent=indent, ensure_ascii=ensure_ascii)
    return text if ensure_ascii else text.translate(_RAW_CONTROLS)


def emit(doc: Mapping[str, Any], indent: int = 2, ensure_ascii: bool = True) -> None:
    """Print a document (already in its envelope) on standard output: valid JSON and nothing else."""
    click.echo(dumps(doc, indent=indent, ensure_ascii=ensure_ascii))


__all__ = ["document", "dumps", "emit"]
