"""Where an evaluation case comes from, however its source is written: one key for the explain splits and the
selection sets, so that no thread or file is in two of them."""

from __future__ import annotations

import re

_THREAD = re.compile(r"github\.com/([\w.-]+/[\w.-]+)/(?:issues|pull|discussions)/(\d+)")
_BLOB = re.compile(r"github\.com/([\w.-]+/[\w.-]+)/blob/([0-9a-f]{7,40})/([^\s#?]+)")
_AT_COMMIT = re.compile(r"([\w.-]+/[\w.-]+)@([0-9a-f]{7,40}):(\S+)")


def source_key(text: str) -> str:
    """A thread (owner/repo#N or its URL) as ``owner/repo#N``; a file at a commit (owner/repo@SHA:path or its
    blob URL) as ``owner/repo@SHA12:path``; anything else lower-cased as it is."""
    s = text.strip().lower()
    m = _THREAD.search(s)
    if m:
        return f"{m.group(1)}#{m.group(2)}"
    m = _BLOB.search(s) or _AT_COMMIT.match(s)
    return f"{m.group(1)}@{m.group(2)[:12]}:{m.group(3)}" if m else s
