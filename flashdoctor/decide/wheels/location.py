"""Which wheel index is in use, and how old its knowledge is.

First match wins:
1. an explicit path (``--index FILE``), else ``$FLASHDOCTOR_WHEELS_INDEX``;
2. the index ``flashdoctor wheels --refresh`` wrote into flashdoctor's cache, when its knowledge is newer
   than the bundled one's (the caller says where that file is: flashdoctor.actions.wheel_index) and not
   dated after today (by more than CLOCK_SLACK_DAYS: a clock that ran ahead wrote that date, which then
   cannot be trusted to be newer);
3. the bundled index: ``wheels_index.json`` next to the ``flashdoctor`` package (a checkout or an
   editable install), else ``<sys.prefix>/share/flashdoctor/wheels_index.json`` (a regular install).

An index's date is the oldest day one of its listings was read (``inputs[].fetched``; an input without
one, such as the published digests, does not count, nor one that lists only opt-in sources, whose wheels
are used only with --allow-community and read by a refresh only when named), else the day it was generated (``generated``); an
index that says neither has no date.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flashdoctor
from flashdoctor.errors import UsageError

INDEX_FILENAME = "wheels_index.json"
ENV_VAR = "FLASHDOCTOR_WHEELS_INDEX"
CLOCK_SLACK_DAYS = 1  # an index dated a day after today is a time zone away; more is a wrong clock
MAX_INDEX_BYTES = 64 << 20  # the bundled index is ~2.5 MB; a bound keeps /dev/zero from exhausting memory


class WheelIndexError(UsageError):
    """The wheel index is missing, unreadable, or fails validation."""


@dataclass(frozen=True)
class IndexLocation:
    """The index in use: its file, why it was chosen (``kind``: "explicit", "env", "refreshed",
    "bundled"), its date (None: it says none) and a note on the one it was preferred to; ``ahead``: the
    refreshed index passed over because it is dated after today (``check`` warns of it)."""

    path: Path
    kind: str
    date: str | None
    note: str | None = None
    ahead: IndexLocation | None = None

    def describe(self) -> str:
        """One line for people: "wheel index: refreshed, data of 2026-12-20 (<path>); newer than ..."."""
        what = {
            "explicit": "given with --index",
            "env": f"from ${ENV_VAR}",
            "refreshed": "refreshed by `flashdoctor wheels --refresh`",
            "bundled": "bundled with flashdoctor",
        }[self.kind]
        dated = f", data of {self.date}" if self.date else ", undated"
        return f"wheel index: {what}{dated} ({self.path})" + (f"; {self.note}" if self.note else "")

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "kind": self.kind, "date": self.date, "note": self.note}

    def age_days(self, today: datetime.date) -> int | None:
        d = parse_day(self.date)
        return None if d is None else (today - d).days


def parse_day(text: str | None) -> datetime.date | None:
    try:
        return datetime.date.fromisoformat(str(text)[:10]) if text else None
    except ValueError:
        return None


def after_today(date: str | None, today: datetime.date) -> bool:
    """Whether ``date`` lies after ``today`` by more than CLOCK_SLACK_DAYS (a wrong clock, here or where
    it was written)."""
    d = parse_day(date)
    return d is not None and (d - today).days > CLOCK_SLACK_DAYS


def _opt_in_only(record: Mapping[str, Any], sources: Any) -> bool:
    """Whether an input lists only opt-in sources (read by a refresh only when named, used only with
    --allow-community): their data's age does not make the index stale."""
    names = record.get("sources")
    if not isinstance(names, list) or not names or not isinstance(sources, Mapping):
        return False
    return all(isinstance(sources.get(n), Mapping) and sources[n].get("opt_in") is True for n in names)


def document_date(doc: Mapping[str, Any]) -> str | None:
    """The date of an index document's knowledge (see the module's doc)."""
    inputs = doc.get("inputs")
    sources = doc.get("sources")
    dates = [
        i.get("fetched") for i in inputs or () if isinstance(i, Mapping) and not _opt_in_only(i, sources)
    ]
    days = [str(d)[:10] for d in dates if parse_day(d) is not None]
    if days:
        return min(days)
    generated = doc.get("generated")
    return str(generated)[:10] if parse_day(generated) is not None else None


_WHEELS_AT = (
    b',\n "wheels": ['  # where scripts/update_wheels_index.py's layout (builder.dump_index) ends the header
)


def file_date(path: Path) -> str | None:
    """The date of the index at ``path`` (None: unreadable, not an index, or undated). An index in the
    builder's layout is dated from its header alone; any other is parsed whole."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_INDEX_BYTES + 1)
        doc: Any = None
        cut = data.find(_WHEELS_AT)
        if cut > 0:
            try:
                doc = json.loads(data[:cut] + b"\n}")
            except ValueError:
                doc = None
        if not isinstance(doc, dict) and len(data) <= MAX_INDEX_BYTES:
            doc = json.loads(data)
    except (OSError, ValueError, RecursionError):
        return None
    return document_date(doc) if isinstance(doc, dict) else None


def bundled_index_path() -> Path | None:
    here = Path(flashdoctor.__file__).resolve().parent.parent / INDEX_FILENAME  # a checkout
    if here.is_file():
        return here
    installed = Path(sys.prefix) / "share" / "flashdoctor" / INDEX_FILENAME
    return installed if installed.is_file() else None


def locate_index(
    explicit: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    refreshed: Path | None = None,
    dated: bool = True,
    today: datetime.date | None = None,
) -> IndexLocation:
    """The index in use (see the module's doc). ``refreshed``: where a refresh writes its index.
    ``dated=False`` reads no file's date unless two indexes must be compared. ``today``: a refreshed
    index dated after it is not newer (None: the dates alone decide)."""
    env = os.environ if environ is None else environ
    if explicit is not None:
        p = Path(explicit)
        return IndexLocation(p, "explicit", file_date(p) if dated else None)
    if env.get(ENV_VAR):
        p = Path(env[ENV_VAR])
        return IndexLocation(p, "env", file_date(p) if dated else None)
    bundled = bundled_index_path()
    if refreshed is not None and refreshed.is_file():
        b_date = file_date(bundled) if bundled is not None else None
        r_date = file_date(refreshed)
        ahead = today is not None and after_today(r_date, today)
        newer = r_date is not None and (b_date is None or r_date > b_date) and not ahead
        if newer or bundled is None:
            note = f"newer than the bundled index (data of {b_date})" if bundled is not None else None
            return IndexLocation(refreshed, "refreshed", r_date, note)
        if ahead:
            why = f"a refreshed index dated {r_date}, after today ({today}), is not trusted to be newer"
            passed = IndexLocation(refreshed, "refreshed", r_date)
            return IndexLocation(bundled, "bundled", b_date, f"{why} ({refreshed})", ahead=passed)
        why = f"a refreshed index of {r_date} is not newer" if r_date else "a refreshed index is undated"
        return IndexLocation(bundled, "bundled", b_date, f"{why} ({refreshed})")
    if bundled is None:
        looked = Path(flashdoctor.__file__).resolve().parent.parent / INDEX_FILENAME
        installed = Path(sys.prefix) / "share" / "flashdoctor" / INDEX_FILENAME
        raise WheelIndexError(
            f"no wheel index found (looked for {looked} and {installed})",
            hint=f"pass --index FILE, set {ENV_VAR}, or run `flashdoctor wheels --refresh` (online)",
        )
    return IndexLocation(bundled, "bundled", file_date(bundled) if dated else None)


def default_index_path(environ: Mapping[str, str] | None = None, refreshed: Path | None = None) -> Path:
    return locate_index(None, environ, refreshed, dated=False).path
