"""Reading a log: normalisation, the keyword scan, lazily decided contexts, lines a terminal wrapped.

How a log is read (designed for 10 MB in well under a second, see scripts/bench_explain.py):

1. Bytes are normalised once: UTF-16 (a PowerShell redirect) is re-encoded, ANSI colours and carriage
   returns are removed; nothing else is decoded up front.
2. One combined regex of every keyword in the signature data (a trie, so the regex engine walks it in
   C) finds candidate lines in the ASCII-lower-cased bytes. Only those lines are decoded
   (errors="replace") and only the signatures owning a keyword present in the line run their
   patterns. A keyword that keeps hitting is retired after a budget (a long line costs more of it: see
   line_cost), so a log with 100 000 "error" lines costs a bounded amount. Keywords outside ASCII (prose in other languages) are looked for in
   short logs only (PROSE_MAX).
3. A line a terminal (or uv, or a mail client) wrapped is read together with its continuation: when a
   pattern fails on a long line, or a value it captures runs into the line's end (a symbol split over
   two lines), the pattern is tried again on the line joined with the next one or two. A report up to
   PROSE_MAX is also read with every long line joined to the next (unwrap: once with a space, as a
   word wrap leaves it, once without, as a terminal cuts), so a keyword or message cut in two by
   a reflow is found; what the log's own lines say comes first.
4. Facts (the torch version setup.py printed, ...) are read by the same scan, and a fact keyword the budget
   retired is also looked for backwards from the log's end, as many lines again (a second machine's torch
   near the end of a long log makes the fact unknown, as in a short one). Contexts (is this a build?
   Windows? ROCm? FA3?) are decided on first use with bytes.find.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from flashdoctor.decide.explain.tailor import env_matches
from flashdoctor.knowledge.signatures import Knowledge, Signature, knowledge
from flashdoctor.model.environment import Environment

KEYWORD_LINE_BUDGET = 300  # candidate lines one keyword may contribute before it is retired (see line_cost)
FACT_LINE_BUDGET = 64  # the same for a keyword only facts use (a fact is settled in the first lines)
# Bytes at each end of a log read for what it says about its machine: a fact keyword its budget retired has
# its last FACT_LINE_BUDGET lines in the log's last MACHINE_WINDOW read too (a second machine near the end).
MACHINE_WINDOW = 1 << 20
LINE_COST_UNIT = 1024  # a candidate line this long costs a keyword's budget one line (see line_cost)
# Keywords outside ASCII (a report's prose in Chinese) slow the trie walk over every byte by ~15%: they
# are looked for in logs up to this size (a report in prose is short; a 10 MB build log is not prose).
PROSE_MAX = 256 * 1024
LONG_LINE = 8 * 1024  # a "line" longer than this (a log without line breaks) is read in windows
LONG_LINE_WINDOW = 1024  # bytes kept on each side of a keyword inside such a line
DEAD_HITS_BEFORE_REBUILD = 64  # candidate lines holding only retired keywords before the regex is rebuilt
WRAP_MIN = 60  # a line at least this long may be one that a terminal wrapped
WRAP_LINES = 2  # continuation lines read after a wrapped line
WRAP_PIECE = 512  # bytes of each continuation line read (a wrap leaves a terminal's row, not a megabyte)
CONDITIONAL_HITS = 32  # matches kept per signature whose condition is judged after the scan


# -- input normalisation --------------------------------------------------------------------------
_ANSI = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


_QUOTES = (
    ("\u2019".encode(), b"'"),
    ("\u2018".encode(), b"'"),
    ("\u201c".encode(), b'"'),
    ("\u201d".encode(), b'"'),
)


# Text copied from a web page (a report up to PROSE_MAX): no-break and other Unicode spaces read as
# spaces; zero-width characters (a page's soft breaks inside long identifiers) and byte-order marks vanish.
_SPACES = tuple(c.encode() for c in "\u00a0\u2007\u2009\u202f\u3000")
_INVISIBLE = tuple(c.encode() for c in "\u200b\u200c\u200d\u2060\ufeff")
# A page's source, an e-mail or an API's HTML body: the entities a log's text turns into. &amp; last,
# so that one level of escaping is undone ("&amp;lt;" stays "&lt;").
_ENTITY = re.compile(rb"&(?:lt|gt|quot|apos|nbsp|#39|#x27|#34|#x22);")
_ENTITIES = (
    (b"&lt;", b"<"),
    (b"&gt;", b">"),
    (b"&quot;", b'"'),
    (b"&#34;", b'"'),
    (b"&#x22;", b'"'),
    (b"&apos;", b"'"),
    (b"&#39;", b"'"),
    (b"&#x27;", b"'"),
    (b"&nbsp;", b" "),
    (b"&amp;", b"&"),
)
# What a tool writes before every line of a program's output: torchrun's "[rank0]:" / "[default0]:",
# a GitHub Actions log's timestamp, a BuildKit step and its seconds ("#12 45.67 "), srun --label's
# "0: ", journald's "Dec 06 12:00:01 host python[42]: ", Ray's "(WorkerName pid=42) " (one per actor, nested
# actors' side by side), kubectl logs --prefix's "[pod/name/container] ", a Markdown quote. Removed where most of
# the log's first lines carry the same one, so the signatures read the program's own lines.
_LINE_PREFIXES = tuple(
    re.compile(rb"^" + p, re.MULTILINE)
    for p in (
        rb"(?:\[rank\d+\]: ?|\[default\d+\]:)",
        rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z ",
        rb"#\d+ \d+\.\d+ ",
        rb"\d{1,4}: ",
        rb"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d [\w.-]+ [\w./-]+(?:\[\d+\])?: ",
        rb"(?:\([\w.:-]+ pid=\d+(?:, ip=[\d.]+)?\) ?)+",
        rb"\[pod/[\w.-]+/[\w.-]+\] ",
        rb"> ?",
    )
)
PREFIX_SAMPLE_LINES = 400  # lines looked at to decide whether the log carries a per-line prefix
PREFIX_SHARE = 0.6  # the share of those (non-empty) lines that must carry it


def _strip_line_prefix(data: bytes) -> bytes:
    sample = [
        ln
        for ln in data[: 200 * PREFIX_SAMPLE_LINES].split(b"\n", PREFIX_SAMPLE_LINES)[:PREFIX_SAMPLE_LINES]
        if ln.strip()
    ]
    if len(sample) < 3:
        return data
    for prefix in _LINE_PREFIXES:
        if sum(1 for ln in sample if prefix.match(ln)) >= PREFIX_SHARE * len(sample):
            return prefix.sub(b"", data)
    return data


def utf16(data: bytes) -> str | None:
    """The codec of a log written in UTF-16 (mostly ASCII, so about every other byte is NUL): "utf-16" with
    a byte-order mark (PowerShell's redirect), "utf-16-le" or "utf-16-be" without one (the NULs in the odd
    or the even bytes); None for any other log. Judged on its first 4 KiB."""
    head = data[:4096]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) and head[2:].count(0) >= 0.2 * len(head[2:]):
        return "utf-16"
    if len(head) >= 64:
        even, odd = head[0::2].count(0) / len(head[0::2]), head[1::2].count(0) / len(head[1::2])
        if odd > 0.4 and even < 0.1:
            return "utf-16-le"
        if even > 0.4 and odd < 0.1:
            return "utf-16-be"
    return None


def normalise(data: bytes) -> bytes:
    """UTF-16 -> UTF-8, no ANSI escapes, "\\n" line ends, ASCII quotes and spaces, no HTML entities, no
    per-line prefix a tool added. Other bytes are left for errors="replace". The line count stays."""
    codec = utf16(data)
    if codec is not None:
        data = data.decode(codec, errors="replace").encode("utf-8")
    if b"\x1b" in data:
        data = _ANSI.sub(b"", data)
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    # Prose pasted from an editor or a web page: typographic quotes ("couldn’t") read as ASCII ones.
    if b"\xe2\x80" in data:
        for curly, plain in _QUOTES:
            data = data.replace(curly, plain)
    # (Only in a report's size: a page's text is short, and each look costs ~7 ms on a 10 MB build log.)
    if len(data) <= PROSE_MAX and any(c in data for c in _SPACES + _INVISIBLE):
        for space in _SPACES:
            data = data.replace(space, b" ")
        for invisible in _INVISIBLE:
            data = data.replace(invisible, b"")
    # A log pasted as a JSON/Python string literal has escaped line breaks and (almost) no real ones.
    if len(data) > 1024 and data.count(b"\n") * 4096 < len(data) and data.count(b"\\n") > 8:
        data = data.replace(b"\\r\\n", b"\n").replace(b"\\n", b"\n").replace(b'\\"', b'"')
    if _ENTITY.search(data):
        for entity, char in _ENTITIES:
            data = data.replace(entity, char)
    return _strip_line_prefix(data)


def trie_regex(words: Iterable[bytes]) -> re.Pattern[bytes]:
    """One regex matching any of ``words``, as a trie (the regex engine walks it in C)."""
    return _trie_regex(tuple(sorted(set(words))))


@lru_cache(maxsize=64)  # the full keyword set is the same for every log: built once
def _trie_regex(words: tuple[bytes, ...]) -> re.Pattern[bytes]:
    trie: dict[bytes, Any] = {}
    for w in words:
        node = trie
        for b in w:
            node = node.setdefault(bytes([b]), {})
        node[b""] = {}

    def build(node: dict[bytes, Any]) -> bytes:
        branches = [re.escape(k) + build(v) for k, v in sorted(node.items()) if k]
        if not branches:
            return b""
        body = branches[0] if len(branches) == 1 else b"(?:" + b"|".join(branches) + b")"
        return b"(?:" + body + b")?" if b"" in node else body

    return re.compile(build(trie) or b"(?!)")


_CONTROLS = {c: "\ufffd" for c in [*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F]}


def decode(raw: bytes) -> str:
    """A log line as text: undecodable bytes and control characters (a lone ESC could still steer a
    terminal) become U+FFFD."""
    return raw.decode("utf-8", errors="replace").translate(_CONTROLS)


# -- wrapped lines --------------------------------------------------------------------------------
_FRAME = re.compile(r'\s*File "')


def joined(line: str, following: Iterable[str]) -> str | None:
    """``line`` with the continuation lines a wrap split off, or None when it does not look wrapped.

    A hard wrap (a terminal's) breaks a long line anywhere and the rest starts at column 0: joined with
    nothing between. A soft wrap (uv's, a mail client's) breaks at a space and indents the rest deeper:
    joined with one space."""
    if not WRAP_MIN <= len(line) <= 2 * LONG_LINE_WINDOW or line[-1:].isspace():
        return None
    indent = len(line) - len(line.lstrip())
    frame = _FRAME.match(line) is not None  # a traceback frame's code line is indented deeper too
    out = line
    for nxt in following:
        body = nxt.lstrip()
        if not body:
            break
        if body == nxt:
            out += body
        elif len(nxt) - len(body) > indent and not frame:
            out += " " + body
        else:
            break
        if len(body) < WRAP_MIN * 0.5:  # a short piece ends the wrapped line
            break
    return None if out == line else out


def _at_end(m: re.Match[str], line: str) -> bool:
    return m.end() >= len(line.rstrip())


def _cut(m: re.Match[str], line: str) -> bool:
    """A value the pattern captures runs into the end of the line: the wrap may have cut it."""
    end = len(line.rstrip())
    return any(m.end(g) >= end for g, v in m.groupdict().items() if v)


def search(
    sig: Signature, line: str, following: Callable[[], Iterable[str]], wrap: bool = True
) -> tuple[str, re.Match[str]] | None:
    """The signature's match on a line, reading the line's wrapped continuation where that decides
    (``wrap``: the line holds one of the signature's keywords, so a wrapped match starts on it).

    No match on the line, or a match that runs to its end: the line joined with its continuation is
    tried. A match there wins (the whole value, the whole message as evidence); when there is none, a
    match whose captured value the line's end cut is dropped (the whole value does not match), any
    other match stays."""
    return _search(sig, line, following, wrap)[0]


def _search(
    sig: Signature, line: str, following: Callable[[], Iterable[str]], wrap: bool = True
) -> tuple[tuple[str, re.Match[str]] | None, bool]:
    """:func:`search`, and whether a match on the line was dropped because the line's end cut its value
    (each pattern runs once: on a long line one search may take long)."""
    m = sig.search(line)
    if m is not None and not _at_end(m, line):
        return (line, m), False
    whole = joined(line, following()) if wrap else None
    if whole is not None:
        wm = sig.search(whole)
        if wm is not None and wm.start() < len(line):  # a match that starts on a later line is that line's
            return (whole, wm), False
        if m is not None and _cut(m, line):
            return None, True
    return (None if m is None else (line, m)), False


def line_around(low: bytes, start: int, end: int) -> tuple[int, int, bool]:
    """The line of ``low`` that holds the keyword at ``start:end``: from after the line break before it to
    the next one (or the log's end). A line longer than LONG_LINE (no line breaks to speak of) is cut to
    LONG_LINE_WINDOW bytes on each side of the keyword, and the flag says so (a caller's next search then
    goes on from the keyword, not from the line's end)."""
    first = low.rfind(b"\n", 0, start) + 1
    last = low.find(b"\n", end)
    last = len(low) if last < 0 else last
    if last - first > LONG_LINE:
        return max(first, start - LONG_LINE_WINDOW), min(last, end + LONG_LINE_WINDOW), True
    return first, last, False


# -- contexts -------------------------------------------------------------------------------------
class LogContexts:
    """Whether the log shows a context (a build, Windows, ROCm, FA3, ...), decided on first use.

    Contexts are read lazily with bytes.find rather than in the keyword scan: most logs need only a
    few of them, and an absent context's keywords would otherwise cost the scan on every position.
    With ``env`` None only the log decides (what the log says about its own machine)."""

    def __init__(self, data: bytes, low: bytes, kb: Knowledge, env: Environment | None) -> None:
        self._data, self._low, self._kb, self._env = data, low, kb, env
        self._known: dict[str, bool] = {}

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str) or name not in self._kb.contexts:
            return False
        if name not in self._known:
            self._known[name] = self._evaluate(name)
        return self._known[name]

    def true(self) -> frozenset[str]:
        """The contexts evaluated so far that hold."""
        return frozenset(n for n, v in self._known.items() if v)

    def _evaluate(self, name: str) -> bool:
        ctx = self._kb.contexts[name]
        if ctx.env and env_matches(self._env, ctx.env):
            return True
        low = self._low
        for kw in ctx.keywords:
            pos = low.find(kw)
            if pos < 0:
                continue
            if ctx.pattern is None:
                return True
            spent = 0
            while spent < KEYWORD_LINE_BUDGET:
                start, end, _ = line_around(low, pos, pos + len(kw))
                spent += line_cost(end - start)
                if ctx.pattern.search(decode(self._data[start:end])):
                    return True
                pos = low.find(kw, end)
                if pos < 0:
                    break
        return False


# -- the keyword scan -----------------------------------------------------------------------------
@dataclass
class Hit:
    offset: int  # byte offset of the line start in the normalised log
    line: str  # the decoded line (with its wrapped continuation when that was read)
    match: re.Match[str]


@dataclass
class Scan:
    hits: dict[str, Hit]  # signature id -> first match (signatures without a condition)
    facts: dict[str, str]
    # signature id -> its first matches, for signatures whose condition depends on the machine, which
    # is decided after the scan (the log's facts say whose machine it is)
    conditional: dict[str, list[Hit]] = field(default_factory=dict)
    # signatures whose only match captured a value the line's end cut, and whose wrapped continuation
    # did not match: the whole value is not theirs (a joined view must not revive them)
    cut: frozenset[str] = frozenset()
    # facts the log gives two values of (two machines' torch): unknown, and no joined view revives one
    ambiguous: frozenset[str] = frozenset()


def line_cost(size: int) -> int:
    """What reading a candidate line of ``size`` bytes (with the continuation a wrap may add) costs each of
    its keywords' budgets: one line up to LINE_COST_UNIT, and the square of its length in those units beyond.
    A pattern's time may grow with the square of the text it searches (``[\\w.-]+==`` tried at every position
    of one long word), so the budget bounds the time a keyword's patterns take, whatever its lines' lengths."""
    units = -(-size // LINE_COST_UNIT)
    return max(1, units * units)


def _continuation(data: bytes, end: int) -> list[tuple[int, int]]:
    """Where the lines after the one ending at ``end`` lie that a wrap may have split off it: up to
    WRAP_LINES of them, each at most WRAP_PIECE bytes (a longer line is no wrapped piece: its head is read
    and nothing after it)."""
    spans = []
    pos = end + 1
    for _ in range(WRAP_LINES):
        if pos >= len(data):
            break
        nxt = data.find(b"\n", pos, pos + WRAP_PIECE + 1)
        if nxt < 0:
            spans.append((pos, min(len(data), pos + WRAP_PIECE)))
            break
        spans.append((pos, nxt))
        pos = nxt + 1
    return spans


def _following(spans: list[tuple[int, int]], data: bytes) -> Callable[[], Iterable[str]]:
    def lines() -> Iterable[str]:
        for start, end in spans:
            yield decode(data[start:end])

    return lines


def scan(data: bytes, low: bytes, kb: Knowledge) -> Scan:
    by_kw: dict[bytes, list[Signature]] = {}
    prose = len(low) <= PROSE_MAX
    for sig in kb.signatures:
        for kw in sig.keywords:
            if prose or kw.isascii():
                by_kw.setdefault(kw, []).append(sig)
    fact_by_kw: dict[bytes, list[str]] = {}
    for fact in kb.facts.values():
        for kw in fact.keywords:
            fact_by_kw.setdefault(kw, []).append(fact.name)

    hits: dict[str, Hit] = {}
    conditional: dict[str, list[Hit]] = {}
    cut: set[str] = set()
    # fact -> the values found by its most trusted pattern so far, and that pattern's index: a log that
    # gives two values at that level (prose naming torch 2.8 and 2.6) does not tell, so it gives none
    fact_values: dict[str, set[str]] = {}
    fact_rank: dict[str, int] = {}
    budget = {kw: KEYWORD_LINE_BUDGET if kw in by_kw else FACT_LINE_BUDGET for kw in [*by_kw, *fact_by_kw]}
    retired: dict[bytes, int] = {}  # fact keyword -> where its budget ran out

    def read_facts(kw: bytes, line: str) -> None:
        for name in fact_by_kw.get(kw, ()):
            fact = kb.facts[name]
            for rank, pattern in enumerate(fact.patterns[: fact_rank.get(name, len(fact.patterns) - 1) + 1]):
                fm = pattern.search(line)
                value = fact.value(fm) if fm is not None else None
                if value:
                    if rank < fact_rank.get(name, len(fact.patterns)):
                        fact_values[name], fact_rank[name] = set(), rank
                    fact_values[name].add(value)
                    break

    def sig_done(sig: Signature) -> bool:
        if sig.condition:
            return len(conditional.get(sig.id, ())) >= CONDITIONAL_HITS
        return sig.id in hits

    def alive(kw: bytes) -> bool:
        if budget.get(kw, 0) <= 0:
            return False
        if any(not sig_done(s) for s in by_kw.get(kw, ())):
            return True
        return bool(fact_by_kw.get(kw))

    live = [kw for kw in budget if alive(kw)]
    rx = trie_regex(live)
    dead_hits = 0
    pos = 0
    size = len(low)
    while live:
        m = rx.search(low, pos)
        if m is None:
            break
        start, end, long = line_around(low, m.start(), m.end())
        pos = m.end() if long else end + 1
        seg = low[start:end]
        present = [kw for kw in live if kw in seg and alive(kw)]
        if not present:
            dead_hits += 1
        else:
            line: str | None = None
            after = _continuation(data, end) if end - start >= WRAP_MIN else []
            cost = line_cost(end - start + sum(e - s for s, e in after))
            for kw in present:
                budget[kw] -= cost
                if budget[kw] <= 0 and kw in fact_by_kw:
                    retired[kw] = end
            done: set[str] = set()
            for kw in present:
                for sig in by_kw.get(kw, ()):
                    if sig_done(sig) or sig.id in done:
                        continue
                    done.add(sig.id)
                    if line is None:
                        line = decode(data[start:end])
                    found, was_cut = _search(sig, line, _following(after, data))
                    if found is None:
                        if was_cut:
                            cut.add(sig.id)
                        continue
                    hit = Hit(start, found[0], found[1])
                    if sig.condition:
                        conditional.setdefault(sig.id, []).append(hit)
                    else:
                        hits[sig.id] = hit
                if kw in fact_by_kw:
                    if line is None:
                        line = decode(data[start:end])
                    read_facts(kw, line)
        if pos >= size:
            break
        # Retire keywords with nothing left to find. Rebuilding the regex costs ~5 ms and a wasted
        # candidate line ~10 us, so rebuild only once retired keywords keep costing lines.
        if dead_hits >= DEAD_HITS_BEFORE_REBUILD:
            live = [kw for kw in live if alive(kw)]
            rx = trie_regex(live)
            dead_hits = 0
    for kw, retired_end in retired.items():
        _read_last_lines(data, low, kw, max(retired_end, size - MACHINE_WINDOW), read_facts)
    facts = {name: next(iter(values)) for name, values in fact_values.items() if len(values) == 1}
    ambiguous = frozenset(name for name, values in fact_values.items() if len(values) > 1)
    return Scan(hits=hits, facts=facts, conditional=conditional, cut=frozenset(cut), ambiguous=ambiguous)


def _read_last_lines(data: bytes, low: bytes, kw: bytes, lo: int, read: Callable[[bytes, str], None]) -> None:
    """Read the last lines holding ``kw`` that start after ``lo``, last first, for FACT_LINE_BUDGET (what the
    forward scan spends on a fact keyword, see line_cost)."""
    hi, spent = len(low), 0
    while spent < FACT_LINE_BUDGET:
        pos = low.rfind(kw, lo, hi)
        if pos < 0:
            return
        start, end, long = line_around(low, pos, pos + len(kw))
        hi = pos if long else start
        spent += line_cost(end - start)
        read(kw, decode(data[start:end]))


# -- a log whose every long line was wrapped ----------------------------------------------------------
def unwrap(data: bytes, hard: bool) -> tuple[bytes, tuple[int, ...]]:
    """The log with the line breaks a wrap may have made taken out, and where they were.

    A break qualifies after a line of at least WRAP_MIN characters that does not end in a space, before
    a non-empty line. ``hard`` (a terminal cut the line anywhere): the break is removed where the next
    line starts at column 0. Otherwise (a word wrap: a browser, a mail client, a blog's reflowed text)
    it becomes a space, so offsets do not move. Returns the view and, for ``hard``, the offsets in
    ``data`` of the removed breaks (ascending)."""
    out = bytearray()
    removed: list[int] = []
    start = 0
    size = len(data)
    while start < size:
        end = data.find(b"\n", start)
        if end < 0:
            out += data[start:]
            break
        nxt = data[end + 1 : end + 2]
        long = end - start >= WRAP_MIN and data[end - 1 : end] not in (b" ", b"\t")
        out += data[start:end]
        if long and nxt and nxt != b"\n" and (not hard or nxt not in (b" ", b"\t")):
            if hard:
                removed.append(end)
            else:
                out += b" "
        else:
            out += b"\n"
        start = end + 1
    return bytes(out), tuple(removed)


def scan_unwrapped(data: bytes, kb: Knowledge, found: Scan) -> Scan:
    """``found`` (the scan of ``data``) with what the log says once its wrapped lines are joined again:
    signatures and facts the wrap hid (a keyword or a message cut in two) are read from the joined
    views, the word-wrapped one first; what the log's own lines gave is kept, and a fact they give two
    values of stays unknown (a joined line holds both, and its first alone would speak). Offsets stay
    ``data``'s."""
    hits = dict(found.hits)
    conditional = {k: list(v) for k, v in found.conditional.items()}
    facts = dict(found.facts)
    for hard in (False, True):
        view, removed = unwrap(data, hard)
        if view == data:
            continue
        again = scan(view, view.lower(), kb)
        at = [r - i for i, r in enumerate(removed)]  # where each removed break sits in the view

        def back(offset: int, at: list[int] = at) -> int:
            return offset + bisect_right(at, offset)

        for sid, hit in again.hits.items():
            if sid not in hits and sid not in found.cut:
                hits[sid] = Hit(back(hit.offset), hit.line, hit.match)
        for sid, more in again.conditional.items():
            if sid not in conditional and sid not in found.cut:
                conditional[sid] = [Hit(back(h.offset), h.line, h.match) for h in more]
        for name, value in again.facts.items():
            if name not in found.ambiguous:
                facts.setdefault(name, value)
    return Scan(hits=hits, facts=facts, conditional=conditional, cut=found.cut, ambiguous=found.ambiguous)


def match_naive(text: str) -> dict[str, int]:
    """Reference matcher: every signature's patterns over every line (and its wrapped continuation, as
    the scan reads it), no prefilter, no conditions.

    Returns signature id -> 1-based line of its first match. Tests compare it with the fast scan;
    scripts/bench_explain.py uses it as the baseline.
    """
    out: dict[str, int] = {}
    lines = [decode(raw) for raw in normalise(text.encode("utf-8", errors="replace")).split(b"\n")]
    for sig in knowledge().signatures:
        for i, line in enumerate(lines):
            wrap = any(kw.decode("utf-8") in line.lower() for kw in sig.keywords)
            if search(sig, line, lambda i=i: lines[i + 1 : i + 1 + WRAP_LINES], wrap):  # type: ignore[misc]
                out[sig.id] = i + 1
                break
    return out
