"""Terminal-safe text without rich (light enough for every command's start): untrusted strings (server
replies, index entries, target specs, logs, file names) reach a terminal only through :func:`clean`.
Every C0/C1 control character but newline and tab is shown as a visible symbol, so a string cannot clear
the screen, set the window title or write the clipboard (OSC 52); nor can it reorder what the reader sees
(Unicode's bidi overrides and isolates), nor stop the output (a lone surrogate, which no stream can encode).

Also the width policy and the one word wrapper (render.console wraps styled text with the same one):

- on a terminal: COLUMNS when set, else the terminal's width;
- anywhere else (a pipe, a file, a CI log): COLUMNS when set, else 80;
- prose is wrapped at spaces, never inside a word; a word that does not fit where it falls moves left just
  enough to end at the right edge (or starts at column 0 when it is wider than the whole line), so that
  a terminal never folds a word that the width could have held; no line ends in spaces.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TextIO

import click

# Unicode's bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069): a terminal that
# does bidi shows the text after one reordered ("Trojan Source"), so what is read is not what is there.
BIDI_CONTROLS = (*range(0x202A, 0x202F), *range(0x2066, 0x206A))
# C0 controls (but \t and \n) -> their Control Pictures symbol (ESC -> ␛, BEL -> ␇, CR -> ␍); DEL -> ␡;
# C1 controls (U+0080-U+009F: 8-bit CSI, OSC, ...) and the bidi controls -> U+FFFD. One cell each, as rich
# measured them.
_CONTROLS: dict[int, str] = {c: chr(0x2400 + c) for c in range(0x20) if c not in (0x09, 0x0A)}
_CONTROLS[0x7F] = "\u2421"
_CONTROLS.update({c: "\ufffd" for c in (*range(0x80, 0xA0), *BIDI_CONTROLS)})
# Half a UTF-16 pair (JSON's "\ud800", an undecodable byte of a file name): no UTF-8 stream or file can
# write it (a C.UTF-8 locale's stdout, the step summary raised UnicodeEncodeError) -> U+FFFD too.
_CONTROLS.update({c: "\ufffd" for c in range(0xD800, 0xE000)})

DEFAULT_WIDTH = 80  # off a terminal, without COLUMNS
MIN_WIDTH = 20  # narrower than this, wrapping helps nobody


def clean(text: str) -> str:
    """``text`` safe for a terminal: control characters (but newline and tab) made visible, lone
    surrogates U+FFFD."""
    return text.translate(_CONTROLS)


def _columns(environ: Mapping[str, str]) -> int | None:
    value = environ.get("COLUMNS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def fixed_width(stream: TextIO, environ: Mapping[str, str] | None = None) -> int | None:
    """The width to lay out for on ``stream`` when it is not a terminal (COLUMNS, else 80); None on a
    terminal, whose own width (or COLUMNS) the console asks for."""
    environ = os.environ if environ is None else environ
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return None if tty else (_columns(environ) or DEFAULT_WIDTH)


def stream_width(stream: TextIO, environ: Mapping[str, str] | None = None) -> int:
    """The width of ``stream``: :func:`fixed_width`, else the terminal's (COLUMNS first)."""
    environ = os.environ if environ is None else environ
    fixed = fixed_width(stream, environ)
    if fixed is not None:
        return fixed
    return _columns(environ) or shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns


def wrap_spans(
    text: str,
    width: int,
    hang: int = 0,
    measure: Callable[[str], int] = len,
    continued: bool = False,
    keep_long: bool = True,
) -> list[tuple[int, int, int]]:
    """How to wrap one line of ``text`` (no newline in it) at ``width``: (indent, start, end) per output
    line, the line being ``" " * indent + text[start:end]``. The first line keeps ``text``'s own leading
    spaces (indent 0, start 0); the others start at column ``hang``. Breaks only at spaces; a word that
    does not fit at ``hang`` gets a line of its own, moved left to end at ``width`` (column 0 at least).
    ``measure`` gives a string's width in cells (rich.cells.cell_len for wide characters). ``continued``:
    the text continues a paragraph, so its first line is placed as the others are (its leading spaces
    dropped). ``keep_long`` False: a word wider than ``width`` gets a line of its own too (a table cell,
    whose table may still find room for it to the left)."""
    words: list[tuple[int, int]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == " ":
            i += 1
            continue
        j = text.find(" ", i)
        j = n if j == -1 else j
        words.append((i, j))
        i = j
    if not words:
        return [(0, 0, 0)]

    def place(ws: int, we: int) -> int:
        size = measure(text[ws:we])
        return hang if hang + size <= width else max(0, width - size)

    out: list[tuple[int, int, int]] = []
    if continued:
        indent, start, end = place(*words[0]), words[0][0], words[0][1]
    else:
        indent, start, end = 0, 0, words[0][1]  # the first line: its leading spaces, then its first word
    for ws, we in words[1:]:
        if indent + measure(text[start:we]) <= width:
            end = we
            continue
        if keep_long and measure(text[ws:we]) > width and indent + measure(text[start:end]) < width:
            # wider than any line (a URL): no line would keep it whole, so it stays with what it follows
            # ("url: https://...") and the terminal folds it; what comes after it starts a new line
            end = we
            continue
        out.append((indent, start, end))
        indent, start, end = place(ws, we), ws, we
    out.append((indent, start, end))
    return out


def wrap(text: str, width: int, hang: int = 0) -> list[str]:
    """``text`` wrapped at spaces (:func:`wrap_spans`); each newline in it starts a line at ``hang``."""
    width = max(MIN_WIDTH, width)
    hang = min(hang, width // 2)
    lines: list[str] = []
    for k, para in enumerate(text.split("\n")):
        para = para.expandtabs(8)
        lines.extend(" " * i + para[s:e] for i, s, e in wrap_spans(para, width, hang, continued=k > 0))
    return lines


def in_github_actions(environ: Mapping[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    return environ.get("GITHUB_ACTIONS") == "true"


# What GitHub's runner reads as a workflow command in a line of a step's output, on stdout and stderr
# alike (actions/runner, ActionCommand.cs): `::name` after leading blanks, and `##[name]` (the legacy
# form) anywhere in the line.
_WORKFLOW_COMMAND = re.compile(r"^\s*::|##\[", re.MULTILINE)


@contextmanager
def commands_paused(err: bool = False) -> Iterator[None]:
    """In GitHub Actions, what is printed inside is shown by the runner and never run as a workflow
    command: it is framed by ``::stop-commands::TOKEN`` and ``::TOKEN::``, a random token that the
    text cannot know. Elsewhere, nothing is added."""
    if not in_github_actions():
        yield
        return
    token = secrets.token_hex(16)
    click.echo(f"::stop-commands::{token}", err=err)
    try:
        yield
    finally:
        click.echo(f"::{token}::", err=err)


def echo(text: str, err: bool = False, nl: bool = True) -> None:
    """click.echo for text that may hold untrusted parts (messages naming URLs, files, server replies);
    in GitHub Actions, text that the runner would run as a workflow command is shown instead
    (:func:`commands_paused`; the resume needs a line of its own, so such text ends its line)."""
    text = clean(text)
    if in_github_actions() and _WORKFLOW_COMMAND.search(text):
        with commands_paused(err):
            click.echo(text, err=err)
    else:
        click.echo(text, err=err, nl=nl)


def echo_wrapped(text: str, err: bool = False, hang: int = 0) -> None:
    """:func:`echo`, wrapped at words to the width of its stream (no rich: cheap for every command)."""
    stream = sys.stderr if err else sys.stdout
    echo("\n".join(wrap(clean(text), stream_width(stream), hang)), err=err)
