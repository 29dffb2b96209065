"""How old the wheel index in use is, and the ``check`` finding when it is too old to trust for "no wheel
fits" (``wheel-index-stale``: a wheel published since is unknown to it), or its age is unknown (no date, or
a date after today: a wrong clock here or where it was written)."""

from __future__ import annotations

import datetime
from typing import Any

from flashdoctor.decide.checks.common import finding
from flashdoctor.decide.wheels.location import IndexLocation, after_today
from flashdoctor.model.findings import Finding, Status

STALE_AFTER_DAYS = 60
REFRESH_COMMAND = "flashdoctor wheels --refresh"


def index_age(location: IndexLocation, today: datetime.date) -> int | None:
    """Days between the index's date and ``today`` (negative: dated after today); None when the index
    has no date."""
    return location.age_days(today)


def _trusted(location: IndexLocation, age: int | None, today: datetime.date, max_days: int) -> bool:
    """Whether an index of this age is fresh: dated, at most ``max_days`` old, and not from the future
    (location.after_today, the rule that also passes over a refreshed index dated after today)."""
    return age is not None and age <= max_days and not after_today(location.date, today)


def index_info(
    location: IndexLocation, today: datetime.date, max_days: int = STALE_AFTER_DAYS
) -> dict[str, Any]:
    """``check --json``'s ``index``: the index in use, its date, its age on ``today`` and whether that is
    too old or of an unknown age (``source``: "bundled", "refreshed", "env" or "explicit", as
    :class:`IndexLocation` says)."""
    age = index_age(location, today)
    return {
        "path": str(location.path),
        "date": location.date,
        "age_days": age,
        "source": location.kind,
        "stale": not _trusted(location, age, today, max_days),
        "stale_after_days": max_days,
    }


def stale_index_finding(
    location: IndexLocation, today: datetime.date, max_days: int = STALE_AFTER_DAYS
) -> Finding | None:
    """A warning when the index in use is older than ``max_days``, has no date, or is dated after
    ``today`` (by more than CLOCK_SLACK_DAYS), or when a refreshed index was passed over because it is
    dated after today (``location.ahead``); None when it is fresh enough."""
    age = index_age(location, today)
    if _trusted(location, age, today, max_days):
        return None if location.ahead is None else _ahead_finding(location, location.ahead, today)
    which = {
        "explicit": "given with --index",
        "env": "from $FLASHDOCTOR_WHEELS_INDEX",
        "refreshed": "refreshed",
        "bundled": "bundled with flashdoctor",
    }.get(location.kind, location.kind)
    if age is None:
        message = f"the wheel index in use ({which}) does not say how old it is"
    elif age < 0:
        message = (
            f"the wheel index in use ({which}) is dated {location.date}, {-age} days after today ({today}): "
            "a clock (this machine's, or the one that wrote it) is wrong, so how old its data are is unknown"
        )
    else:
        message = (
            f"the wheel index in use ({which}, data of {location.date}) is {age} days old: wheels "
            f"published since then are unknown to it"
        )
    explicit = location.kind in ("explicit", "env")
    fix = (
        f"{REFRESH_COMMAND} (online: rebuilds the index from the publishers into flashdoctor's cache; "
        "later runs use it)"
        if not explicit
        else f"rebuild {location.path} (scripts/update_wheels_index.py), or drop it and run {REFRESH_COMMAND}"
    )
    return finding("wheel-index-stale", Status.WARN, message, evidence=str(location.path), fix=fix)


def _ahead_finding(location: IndexLocation, ahead: IndexLocation, today: datetime.date) -> Finding:
    """The refreshed index ``ahead`` is dated after ``today``: not trusted to be newer, so ``location``
    (the bundled index) is in use."""
    days = -(index_age(ahead, today) or 0)
    message = (
        f"a refreshed wheel index is dated {ahead.date}, {days} days after today ({today}): a clock (this "
        "machine's, or the one that wrote it) is wrong, so it is not trusted to be newer; the bundled index "
        f"(data of {location.date}) is in use"
    )
    fix = (
        f"{REFRESH_COMMAND} (online, with this machine's clock right: rewrites it dated today; later runs "
        "use it)"
    )
    return finding("wheel-index-stale", Status.WARN, message, evidence=str(ahead.path), fix=fix)
