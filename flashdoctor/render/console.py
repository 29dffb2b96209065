"""The one rich Console factory, the one finding line, and the layout every human output uses.

Colour only on a terminal, NO_COLOR honoured (rich reads it). Every text segment a console prints goes
through render.text.clean (control characters made visible); rich's own styling is not text and is kept.

Width (render.text): a terminal's own (COLUMNS first); off a terminal COLUMNS, else 80. Nothing here lets
rich wrap or crop: prose is wrapped at spaces by :func:`say` / :func:`print_markup` (never inside a word;
continuation lines hang under the text they continue), tables are laid out by :func:`fit_widths` and
:func:`print_table` (only the prose columns re-wrapped, long names kept whole), and no line ends in
padding — at 80 columns as at 200.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TextIO

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, ConsoleRenderable, RenderHook, RenderResult
from rich.markup import escape
from rich.segment import Segment
from rich.text import Text

from flashdoctor.render.text import MIN_WIDTH, clean, fixed_width, wrap_spans


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
    import sys

    stream = file or (sys.stderr if stderr else sys.stdout)
    console = Console(file=stream, highlight=False, soft_wrap=True, emoji=False, width=fixed_width(stream))
    console.push_render_hook(_CleanHook())
    return console


EVIDENCE_STYLE = "bold red"  # the log line a diagnosis rests on
STATUS_MARK = {"ok": ("✓", "green"), "warn": ("!", "yellow"), "fail": ("✗", "red"), "skip": ("-", "dim")}
VERDICT_STYLE = {"ready": "bold green", "installable": "cyan", "buildable": "yellow", "unsupported": "red"}
# Marks for diagnoses: the cause, another possible one, a consequence of an earlier one.
STATUS_MARK.update({"cause": ("✗", "red"), "possible": ("?", "yellow"), "consequence": ("↳", "yellow")})


# -- prose --------------------------------------------------------------------------------------------
def wrap_text(text: Text, width: int, hang: int = 0) -> list[Text]:
    """Styled ``text`` wrapped at spaces (render.text.wrap_spans; each newline starts a line at
    ``hang``), without trailing spaces."""
    width = max(MIN_WIDTH, width)
    hang = min(hang, width // 2)
    out: list[Text] = []
    text = text.copy()
    text.expand_tabs(8)
    for k, para in enumerate(text.split("\n", allow_blank=True)):
        for indent, start, end in wrap_spans(para.plain, width, hang, cell_len, continued=k > 0):
            line = Text(" " * indent) + para[start:end]
            line.rstrip()
            out.append(line)
    return out


def print_text(console: Console, text: Text, hang: int | None = None) -> None:
    """Print ``text`` wrapped to the console's width, continuation lines at column ``hang`` (default:
    two columns right of the text's own indentation)."""
    if hang is None:
        plain = text.plain
        hang = len(plain) - len(plain.lstrip(" ")) + 2
    for line in wrap_text(text, console.width, hang):
        console.print(line, soft_wrap=True)


def print_markup(console: Console, markup: str, hang: int | None = None) -> None:
    """A line of rich markup (untrusted parts escaped by the caller), wrapped as :func:`print_text`."""
    print_text(console, Text.from_markup(markup), hang)


def say(console: Console, text: str, style: str = "", indent: int = 0, hang: int = 0) -> None:
    """One paragraph of plain text (no markup), wrapped at words to the console's width; ``indent``
    before it, continuation lines at ``indent + hang``."""
    print_text(console, Text(" " * indent + text, style=style), indent + hang)


# -- the finding line -----------------------------------------------------------------------------------
class FindingLine(NamedTuple):
    markup: str
    hang: int  # where its continuation lines start when it is wrapped


DETAIL_INDENT = 5


def finding_lines(
    status: str,
    message: str,
    code: str | None = None,
    *,
    scope: str | None = None,
    note: str | None = None,
    details: Iterable[tuple[str, str | None]] = (),
    strong: Any = None,
) -> list[FindingLine]:
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
    lines = [FindingLine(head, 3)]
    for label, text in details:
        if text is None:
            continue
        body = f"[{EVIDENCE_STYLE}]{escape(text)}[/]" if label == strong else escape(text)
        pad = " " * DETAIL_INDENT
        lines.append(
            FindingLine(f"{pad}[dim]{escape(label)}:[/] {body}", DETAIL_INDENT + cell_len(label) + 2)
        )
    return lines


def print_finding(console: Console, *args: Any, **kwargs: Any) -> None:
    """Print :func:`finding_lines` on ``console``, each wrapped at words under its own text."""
    for line in finding_lines(*args, **kwargs):
        print_markup(console, line.markup, line.hang)


# -- tables -------------------------------------------------------------------------------------------
GAP = 2  # spaces between columns


@dataclass(frozen=True)
class Col:
    header: str  # "\n" splits a header over two lines
    justify: str = "right"
    wrap: int = 0  # 0: keeps its natural width; 1, 2, ...: re-wrapped at words when too wide, 1 first
    floor: int = 12  # never narrower than this (nor than its longest word, unless ``overflow``)
    # The last column only: it may be narrower than its longest word; such a word gets a line of its
    # own, moved left to end at the right edge (a wheel's file name in a 30-column reason column).
    overflow: bool = False


Cell = tuple[str, str]  # (plain text, rich style)


def _lines(text: str) -> list[str]:
    return text.split("\n") if text else [""]


def _longest_word(text: str) -> int:
    return max((cell_len(w) for w in text.split()), default=0)


def natural_widths(cols: Sequence[Col], rows: Sequence[Sequence[Cell]]) -> list[int]:
    return [
        max(
            max(cell_len(ln) for ln in _lines(c.header)),
            *(cell_len(ln) for r in rows for ln in _lines(r[i][0])),
        )
        for i, c in enumerate(cols)
    ]


def fit_widths(cols: Sequence[Col], rows: Sequence[Sequence[Cell]], width: int) -> list[int]:
    """Column widths that fit ``width``: natural widths, then the wrap columns narrowed in order, each
    down to its floor or its longest word (never below: no word is cut; an ``overflow`` column down to
    its floor)."""
    natural = natural_widths(cols, rows)
    widths = list(natural)
    gaps = GAP * (len(cols) - 1)
    for i in sorted((i for i, c in enumerate(cols) if c.wrap), key=lambda i: cols[i].wrap):
        excess = sum(widths) + gaps - width
        if excess <= 0:
            break
        words = 0
        if not cols[i].overflow:
            words = max([_longest_word(cols[i].header)] + [_longest_word(r[i][0]) for r in rows])
        widths[i] = max(min(natural[i], max(cols[i].floor, words)), widths[i] - excess)
    return widths


def fits(cols: Sequence[Col], rows: Sequence[Sequence[Cell]], width: int) -> bool:
    """Whether the table fits ``width`` with every word whole inside its column."""
    widths = fit_widths(cols, rows, width)
    longest = [
        max([_longest_word(c.header)] + [_longest_word(r[i][0]) for r in rows]) for i, c in enumerate(cols)
    ]
    return sum(widths) + GAP * (len(cols) - 1) <= width and all(w >= n for w, n in zip(widths, longest))


def _cell_lines(text: str, col: Col, width: int) -> list[str]:
    if not col.wrap:
        return _lines(text)
    out: list[str] = []
    for ln in _lines(text):
        spans = wrap_spans(ln.strip(), width, 0, cell_len, continued=True, keep_long=False)
        out.extend(ln.strip()[s:e] for _i, s, e in spans)
    return out


def _fit_cell(text: str, width: int, justify: str) -> str:
    size = cell_len(text)
    if size > width:  # cannot happen for widths from fit_widths; cut visibly rather than misalign
        while text and cell_len(text) > width - 1:
            text = text[:-1]
        return text + "…"
    pad = width - size
    if justify == "center":
        return " " * (pad // 2) + text + " " * (pad - pad // 2)
    return " " * pad + text if justify == "right" else text + " " * pad


def table_lines(
    cols: Sequence[Col],
    rows: Sequence[Sequence[Cell]],
    widths: Sequence[int],
    header: bool = True,
    total: int | None = None,
) -> list[Text]:
    """A borderless table as lines (GAP spaces between columns, no trailing spaces): the wrap columns'
    cells wrapped at words, the others as they are. ``total``: the console's width, for an ``overflow``
    column's over-long words."""
    body: list[tuple[Sequence[Cell], bool]] = [(r, False) for r in rows]
    if header:
        body.insert(0, ([(c.header, "bold") for c in cols], True))
    last = len(cols) - 1
    start_last = sum(widths[:last]) + GAP * last
    out: list[Text] = []
    for row, is_header in body:
        cells = [
            _lines(text) if is_header else _cell_lines(text, c, w)
            for (text, _style), c, w in zip(row, cols, widths)
        ]
        if is_header:  # headers sit on the bottom line, above their column
            height = max(len(c) for c in cells)
            cells = [[""] * (height - len(c)) + c for c in cells]
        for k in range(max(len(c) for c in cells)):
            line = Text()
            for i, (c, w) in enumerate(zip(cols, widths)):
                part = cells[i][k] if k < len(cells[i]) else ""
                style = row[i][1]
                long = i == last and c.overflow and cell_len(part) > w
                if long and total is not None and start_last + cell_len(part) > total:
                    # a word too long for its column: a line of its own, ending at the right edge
                    line.rstrip()
                    if line.plain:
                        out.append(line)
                    line = Text(" " * max(0, total - cell_len(part)))
                    line.append(part, style)
                    continue
                if i:
                    line.append(" " * GAP)
                line.append(part if long else _fit_cell(part, w, c.justify), style)
            line.rstrip()
            out.append(line)
    return out


def print_table(
    console: Console,
    cols: Sequence[Col],
    rows: Sequence[Sequence[Cell]],
    widths: Sequence[int] | None = None,
    header: bool = True,
    indent: int = 0,
) -> None:
    """Print a table laid out by :func:`fit_widths` for the console's width (less ``indent``)."""
    room = console.width - indent
    widths = list(widths) if widths is not None else fit_widths(cols, rows, room)
    for line in table_lines(cols, rows, widths, header=header, total=room):
        console.print(Text(" " * indent) + line if indent and line.plain else line, soft_wrap=True)
