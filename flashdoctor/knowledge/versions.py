"""Version arithmetic shared by every layer: lenient parsing and major.minor."""

from __future__ import annotations

import re

from packaging.version import InvalidVersion, Version


def parse_version(text: str | None) -> Version | None:
    """Lenient version parse: "12.8" -> 12.8, "2.8.0+cu128" -> 2.8.0+cu128, junk -> None."""
    if text is None:
        return None
    try:
        return Version(str(text).strip())
    except InvalidVersion:
        m = re.match(r"\d+(\.\d+)*", str(text).strip())
        if not m:
            return None
        try:
            return Version(m.group(0))
        except InvalidVersion:  # pragma: no cover - the regex only admits valid releases
            return None


def major_minor(text: str | None) -> tuple[int, int] | None:
    v = parse_version(text)
    if v is None:
        return None
    rel = (*v.release, 0)
    return rel[0], rel[1]
