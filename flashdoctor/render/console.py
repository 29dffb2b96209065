"""The one rich Console factory and the one finding line.

Colour only on a terminal, NO_COLOR honoured (rich reads it). Every text segment a console prints goes
through render.text.clean (control characters made visible); rich's own styling is not text and is kept.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TextIO

from rich.console import Console, ConsoleOptions, ConsoleRenderable, RenderHook, RenderResult
from rich.markup import escape
from rich.segment import Segment

from flashdoctor.render.text import clean


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
