"""Terminal-safe text without rich (light enough for every command's start): untrusted strings (server
replies, index entries, target specs, logs, file names) reach a terminal only through :func:`clean`.
Every C0/C1 control character but newline and tab is shown as a visible symbol, so a string cannot clear
the screen, set the window title or write the clipboard (OSC 52)."""

from __future__ import annotations

import click

# C0 controls (but \t and \n) -> their Control Pictures symbol (ESC -> ␛, BEL -> ␇, CR -> ␍); DEL -> ␡;
# C1 controls (U+0080-U+009F: 8-bit CSI, OSC, ...) -> U+FFFD. One cell each, as rich measured them.
_CONTROLS: dict[int, str] = {c: chr(0x2400 + c) for c in range(0x20) if c not in (0x09, 0x0A)}
_CONTROLS[0x7F] = "\u2421"
_CONTROLS.update({c: "\ufffd" for c in range(0x80, 0xA0)})


def clean(text: str) -> str:
    """``text`` safe for a terminal: control characters (but newline and tab) made visible."""
    return text.translate(_CONTROLS)


def echo(text: str, err: bool = False, nl: bool = True) -> None:
    """click.echo for text that may hold untrusted parts (messages naming URLs, files, server replies)."""
    click.echo(clean(text), err=err, nl=nl)
