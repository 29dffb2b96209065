"""The one rich Console factory: colour only on a terminal, NO_COLOR honoured (rich reads it)."""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console


def make_console(file: TextIO | None = None, stderr: bool = False) -> Console:
    stream = file or (sys.stderr if stderr else sys.stdout)
    # Off a terminal (a pipe, a CI log) rich would wrap at 80 columns; logs read better wider.
    width = None if stream.isatty() else 120
    return Console(file=stream, highlight=False, soft_wrap=True, emoji=False, width=width)


STATUS_MARK = {"ok": ("✓", "green"), "warn": ("!", "yellow"), "fail": ("✗", "red"), "skip": ("-", "dim")}
VERDICT_STYLE = {"ready": "bold green", "installable": "cyan", "buildable": "yellow", "unsupported": "red"}
