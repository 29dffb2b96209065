"""The keyword scan of flashdoctor/decide/explain/scan.py on logs without line breaks to speak of: every
reader of "the line around a keyword" (the scan, a context, a fact's last lines) keeps LONG_LINE_WINDOW
bytes on each side of the keyword itself."""

from __future__ import annotations

from flashdoctor.decide.explain.scan import LONG_LINE, LONG_LINE_WINDOW, LogContexts, normalise
from flashdoctor.knowledge.signatures import knowledge


def _contexts(data: bytes) -> LogContexts:
    data = normalise(data)
    return LogContexts(data, data.lower(), knowledge(), None)


def test_a_context_in_a_long_line_reads_as_far_past_its_keyword_as_the_scan() -> None:
    # "Successfully installed" then, within LONG_LINE_WINDOW bytes of the keyword's end, "flash-attn":
    # the `success` context's pattern matches there, as the scan's window would read it.
    keyword = b"Successfully installed "
    gap = b"pkg-1.0 " * ((LONG_LINE_WINDOW - 16) // 8)
    line = b"x " * LONG_LINE + keyword + gap + b"flash-attn-2.7.4 " + b"y " * LONG_LINE
    assert len(keyword + gap) > LONG_LINE_WINDOW > len(gap) + len(b"flash-attn")
    assert "success" in _contexts(line + b"\n")
    assert "success" not in _contexts(line.replace(b"flash-attn", b"other-pkg") + b"\n")
