"""The lines most likely to matter in a log nothing was recognised in: errors and the final exception,
not warnings."""

from __future__ import annotations

import re
from dataclasses import dataclass

from flashdoctor.decide.explain.scan import decode, trie_regex
from flashdoctor.model.fields import FieldsJson

EVIDENCE_MAX = 400  # characters of a line kept
KEY_LINES_MAX = 8
KEY_LINE_BUDGET = 2000

_KEY_WORDS = (
    b"error",
    b"fail",
    b"fatal",
    b"traceback",
    b"exception",
    b"killed",
    b"denied",
    b"not found",
    b"cannot",
    b"unable",
    b"abort",
)
_KEY_RX = trie_regex(_KEY_WORDS)
_EXC_LINE = re.compile(r"^\s*(?:[\w.]+\.)?\w*(?:Error|Exception|Exit|Interrupt)\b(?::|$)")
_ERRORISH = re.compile(r"\berror\b|\bfatal\b|\bFAILED\b|\bfailed\b", re.IGNORECASE)
_WARNINGISH = re.compile(
    r"warn(?:ings?)?\b|deprecat|\b0 errors?\b|-Werror|error[-_]?(?:handl|check)", re.IGNORECASE
)


@dataclass(frozen=True)
class KeyLine(FieldsJson):
    line: int
    text: str


def line_number(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def find_key_lines(data: bytes, low: bytes | None = None, limit: int = KEY_LINES_MAX) -> list[KeyLine]:
    """The lines most likely to matter: errors and final exceptions, not warnings. Never empty for a
    non-empty log (falls back to its last lines)."""
    low = data.lower() if low is None else low
    scored: list[tuple[int, int, str]] = []  # (score, line start offset, text)
    pos, seen, size = 0, 0, len(low)
    while seen < KEY_LINE_BUDGET:
        m = _KEY_RX.search(low, pos)
        if m is None:
            break
        start = low.rfind(b"\n", 0, m.start()) + 1
        end = low.find(b"\n", m.end())
        end = size if end < 0 else end
        pos = end + 1
        seen += 1
        text = decode(data[start:end]).strip()
        if not text or _WARNINGISH.search(text):
            continue
        score = 1
        if _EXC_LINE.search(text):
            score += 4
        if _ERRORISH.search(text):
            score += 3
        if text.lower().startswith("traceback"):
            score -= 1
        scored.append((score, start, text[:EVIDENCE_MAX]))
        if pos >= size:
            break
    if scored:
        last_exc = max((s for s in scored if s[0] >= 5), key=lambda s: s[1], default=None)
        top = sorted(scored, key=lambda s: (-s[0], s[1]))[:limit]
        if last_exc is not None and last_exc not in top:
            top = [*top[: limit - 1], last_exc]
        top.sort(key=lambda s: s[1])
        return [KeyLine(line_number(data, s), t) for _sc, s, t in top]
    # Nothing error-like: the end of the log is where a failure usually is (warnings left out).
    lines = data.rstrip(b"\n").split(b"\n")
    first = max(0, len(lines) - 200)
    tail = [
        (i, t) for i, t in ((i, decode(raw).strip()) for i, raw in enumerate(lines[first:], start=first)) if t
    ]
    quiet = [(i, t) for i, t in tail if not _WARNINGISH.search(t)]
    return [KeyLine(i + 1, t[:EVIDENCE_MAX]) for i, t in (quiet or tail)[-5:]]
