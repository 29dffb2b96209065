"""The layout every human output uses (render/text.py, render/console.py): the width policy, prose
wrapped at spaces and never inside a word, tables that fold their prose column and keep names whole,
and no trailing padding."""

from __future__ import annotations

import io
import re

import pytest
from rich.text import Text

from flashdoctor.render.console import Col, fit_widths, make_console, print_finding, print_table, wrap_text
from flashdoctor.render.text import fixed_width, wrap


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_width_policy() -> None:
    assert fixed_width(_Stream(False), {}) == 80  # a pipe without COLUMNS: 80, not 120
    assert fixed_width(_Stream(False), {"COLUMNS": "132"}) == 132
    assert fixed_width(_Stream(False), {"COLUMNS": "junk"}) == 80
    assert fixed_width(_Stream(True), {}) is None  # a terminal: its own width (rich asks it)


def test_a_piped_console_honours_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    assert make_console(file=_Stream(False)).width == 60
    monkeypatch.delenv("COLUMNS")
    assert make_console(file=_Stream(False)).width == 80


WORDS = (
    "fix: FA2 cannot run here; use PyTorch SDPA (torch.nn.functional.scaled_dot_product_attention) "
    "or flash_attn-2.8.3+cu12torch2.8cxx11abiFALSE-cp312-cp312-linux_x86_64.whl [flash-attn-missing]"
)


@pytest.mark.parametrize("width", [40, 60, 80, 200])
def test_prose_breaks_only_at_spaces(width: int) -> None:
    lines = wrap("     " + WORDS, width, hang=10)
    assert " ".join(" ".join(lines).split()) == WORDS  # every word whole, in order
    for ln in lines:
        # longer only when it ends in a word wider than any line (the 71-character wheel at 40 and 60)
        assert ln == ln.rstrip() and (len(ln) <= width or len(ln.split()[-1]) > width), ln


def test_a_word_that_does_not_fit_at_the_hang_moves_left_and_a_longer_one_stays_with_its_label() -> None:
    wheel = "flash_attn-2.8.3+cu12torch2.8cxx11abiFALSE-cp312-cp312-linux_x86_64.whl"  # 71
    lines = wrap(f"     fix: pip install {wheel}", 80, hang=10)
    assert lines == ["     fix: pip install", " " * (80 - len(wheel)) + wheel]  # ends at the right edge
    url = "https://example.org/" + "x" * 100
    assert wrap(f"  url: {url} next", 80, hang=4) == [f"  url: {url}", "    next"]


def test_styles_survive_wrapping() -> None:
    text = Text.from_markup(" [red]✗[/] " + "word " * 30 + "[dim]\\[code][/]")
    lines = wrap_text(text, 40, hang=3)
    assert all(len(ln.plain) <= 40 for ln in lines)
    assert lines[0].spans[0].style == "red" and lines[-1].spans[-1].style == "dim"


def test_finding_continuation_lines_hang_under_their_text() -> None:
    buf = _Stream(False)
    console = make_console(file=buf)
    console.width = 60
    print_finding(console, "warn", "the message " * 8, "some-code", details=(("fix", "do this " * 12),))
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith(" ! the message")
    head = [ln for ln in lines if not ln.startswith("     fix:") and not ln.startswith("          ")]
    assert all(ln.startswith("   ") for ln in head[1:])  # under the message, not under the mark
    fix = lines.index(next(ln for ln in lines if ln.startswith("     fix:")))
    assert all(ln.startswith(" " * 10) for ln in lines[fix + 1 :])
    assert all(len(ln) <= 60 and ln == ln.rstrip() for ln in lines)


def test_a_table_folds_its_reason_column_and_keeps_names_whole() -> None:
    cols = (
        Col("variant", "left"),
        Col("verdict", "left"),
        Col("why", "left", wrap=1, floor=20, overflow=True),
    )
    rows = [
        [
            ("fa2", ""),
            ("installable", "cyan"),
            ("prebuilt wheel fits: " + "w" * 70 + ".whl → flashdoctor install", ""),
        ],
        [("fa3", ""), ("unsupported", "red"), ("no NVIDIA GPU is visible → " + "use PyTorch SDPA " * 4, "")],
    ]
    buf = _Stream(False)
    console = make_console(file=buf)
    console.width = 80
    print_table(console, cols, rows)
    out = buf.getvalue()
    lines = out.splitlines()
    assert lines[0] == "variant  verdict      why"
    assert all(ln == ln.rstrip() and len(ln) <= 80 for ln in lines), out
    assert "w" * 70 + ".whl" in out  # the 74-character name is kept whole, moved left to fit
    assert re.search(r"^fa3\s+unsupported\s+no NVIDIA GPU", out, re.MULTILINE)
    widths = fit_widths(cols, rows, 80)
    assert sum(widths) + 4 <= 80 and widths[:2] == [7, 11]
