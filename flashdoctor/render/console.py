"""The one rich Console factory, the terminal-safety filter, and the one finding line.

Colour only on a terminal, NO_COLOR honoured (rich reads it). Untrusted text (server replies, index
entries, target specs, logs, file names) reaches the terminal only through :func:`clean`: every C0/C1
control character but newline and tab is shown as a visible symbol, so a string cannot clear the screen,
set the window title or write the clipboard (OSC 52). rich's own styling is not text and is kept.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TextIO

import click
from rich.console import Console, ConsoleOptions, ConsoleRenderable, RenderHook, RenderResult
from rich.markup import escape
from rich.segment import Segment

# C0 controls (but \t and \n) -> their Control Pictures symbol (ESC -> ␛, BEL -> ␇, CR -> ␍); DEL -> ␡;
# C1 controls (U+0080-U+009F: 8-bit CSI, OSC, ...) -> U+FFFD. One cell each, as rich measured them.
_CONTROLS: dict[int, str] = {c: chr(0x2400 + c) for c in range(0x20) if c not in (0x09, 0x0A)}
_CONTROLS[0x7F] = "\u2421"
_CONTROLS.update({c: "\ufffd" for c in range(0x80, 0xA0)})


def clean(text: str) -> str:
    """``text`` safe for a terminal: control characters (but newline and tab) made visible."""
    return text.translate(_CONTROLS)


class _Clean:
    """A renderable whose text segments are :func:`clean`; rich's control segments pass untouched."""

    def __init__(self, inner: ConsoleRenderable) -> None:
        self.inner = inner

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for seg in console.render(self.inner, options):
            if seg.control or not seg.text:
                yield seg
            else:
                yield Segment(clean(seg.text), seg.style, seg.control)


class _CleanHook(RenderHook):
    def process_renderables(self, renderables: list[ConsoleRenderable]) -> list[ConsoleRenderable]:
        return [_Clean(r) for r in renderables]


def make_console(file: TextIO | None = None, stderr: bool = False) -> Console:
    stream = file or (sys.stderr if stderr else sys.stdout)
    # Off a terminal (a pipe, a CI log) rich would wrap at 80 columns; logs read better wider.
    width = None if stream.isatty() else 120
    console = Console(file=stream, highlight=False, soft_wrap=True, emoji=False, width=width)
    console.push_render_hook(_CleanHook())
    return console


def echo(text: str, err: bool = False, nl: bool = True) -> None:
    """click.echo for text that may hold untrusted parts (messages naming URLs, files, server replies)."""
    click.echo(clean(text), err=err, nl=nl)


EVIDENCE_STYLE = "bold red"  # the log line a diagnosis rests on
STATUS_MARK = {"ok": ("✓", "green"), "warn": ("!", "yellow"), "fail": ("✗", "red"), "skip": ("-", "dim")}
VERDICT_STYLE = {"ready": "bold green", "installable": "cyan", "buildable": "yellow", "unsupported": "red"}
# Marks for diagnoses: the cause, another possible one, a consequence of an earlier one.
STATUS_MARK.update({"cause": ("✗", "red"), "possible": ("?", "yellow"), "consequence": ("↳", "yellow")})


def finding_lines(
    status: str,
    message: str,
    code: str | None = None,
    *,
    scope: str | None = None,
    note: str | None = None,
    details: Iterable[tuple[str, str | None]] = (),
    strong: Any = None,
) -> list[str]:
    """The one "✓/!/✗ message [code] — evidence — fix" block, as rich markup lines: the mark of
    ``status`` (STATUS_MARK), an optional dim ``scope`` (a variant), the message, the code, a dim
    ``note``; then one indented "label: text" line per ``details`` entry whose text is not None
    (``strong`` names a label whose text is highlighted, as explain's evidence line is). All text is
    escaped for rich markup; the console's filter makes it terminal-safe."""
    mark, style = STATUS_MARK[status]
    head = f" [{style}]{mark}[/] " + (f"[dim]{escape(scope)}[/] " if scope else "") + escape(message)
    if code:
        head += f" [dim]\\[{escape(code)}][/]"
    if note:
        head += f" [dim]({escape(note)})[/]"
    lines = [head]
    for label, text in details:
        if text is None:
            continue
        body = f"[{EVIDENCE_STYLE}]{escape(text)}[/]" if label == strong else escape(text)
        lines.append(f"     [dim]{escape(label)}:[/] {body}")
    return lines


def print_finding(console: Console, *args: Any, **kwargs: Any) -> None:
    """Print :func:`finding_lines` on ``console``."""
    for line in finding_lines(*args, **kwargs):
        console.print(line)
