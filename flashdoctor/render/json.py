"""Every JSON document flashdoctor prints or writes goes out here, in its result envelope
(flashdoctor.model.envelope): one place for the envelope, the formatting and terminal safety."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import click

from flashdoctor.model.envelope import envelope
from flashdoctor.render.text import BIDI_CONTROLS

# json.dumps escapes C0 controls; with ensure_ascii=False it leaves DEL, the C1 controls (8-bit CSI, OSC)
# and the bidi overrides raw. Escaped here (\\u0085 is the same string to a JSON reader), so the document is
# terminal-safe.
_RAW_CONTROLS = {c: f"\\u{c:04x}" for c in (0x7F, *range(0x80, 0xA0), *BIDI_CONTROLS)}


def document(
    body: Mapping[str, Any], *, interpreter: Mapping[str, Any] | None = None, **head: Any
) -> dict[str, Any]:
    """``body`` in its result envelope (``head``: model.envelope.envelope's keywords, command, exit_code,
    schema, status; one implementation), and the ``interpreter`` the command worked on (path, reason,
    why; with --target: path null, reason "--target", target) when it has one."""
    doc = envelope(body, **head)
    if interpreter is not None and "interpreter" not in doc:
        doc["interpreter"] = dict(interpreter)
    return doc


def dumps(doc: Any, indent: int = 2, ensure_ascii: bool = True) -> str:
    text = json.dumps(doc, indent=indent, ensure_ascii=ensure_ascii)
    # "##[" only occurs inside strings; GitHub's runner runs `##[name]...` anywhere in a line of a log as
    # a workflow command (render.text.commands_paused), "##\u005b" is the same string to a JSON reader.
    text = text.replace("##[", "##\\u005b")
    return text if ensure_ascii else text.translate(_RAW_CONTROLS)


# One write of a document larger than a pipe holds, to a pipe whose reader has gone (`| head -c 10`), is
# accepted in part, and io's buffered writer reports it done: the document cut, exit 0. Written a buffer at
# a time, every part is written whole or the write raises (BrokenPipeError: exit 1, click's convention).
_CHUNK = io.DEFAULT_BUFFER_SIZE


def emit(doc: Mapping[str, Any], indent: int = 2, ensure_ascii: bool = True) -> None:
    """Print a document (already in its envelope) on standard output: valid JSON and nothing else."""
    text = dumps(doc, indent=indent, ensure_ascii=ensure_ascii) + "\n"
    for start in range(0, len(text), _CHUNK):
        click.echo(text[start : start + _CHUNK], nl=False)


__all__ = ["document", "dumps", "emit"]
