"""How old the wheel index in use is, and the ``check`` finding when it is too old to trust for "no wheel
fits" (``wheel-index-stale``: a wheel published since is unknown to it)."""

from __future__ import annotations

import datetime

from flashdoctor.decide.checks.common import finding
from flashdoctor.decide.wheels.location import IndexLocation
from flashdoctor.model.findings import Finding, Status

STALE_AFTER_DAYS = 60
REFRESH_COMMAND = "flashdoctor wheels --refresh"


def index_age(location: IndexLocation, today: datetime.date) -> int | None:
    """Days between the index's date and ``today``; None when the index has no date."""
    return location.age_days(today)


def stale_index_finding(
    location: IndexLocation, today: datetime.date, max_days: int = STALE_AFTER_DAYS
) -> Finding | None:
    """A warning when the index in use is older than ``max_days`` (or has no date); None when it is
    fresh enough."""
    age = index_age(location, today)
    if age is not None and age <= max_days:
        return None
    which = {
        "explicit": "given with --index",
        "env": "from $FLASHDOCTOR_WHEELS_INDEX",
        "refreshed": "refreshed",
        "bundled": "bundled with flashdoctor",
    }.get(location.kind, location.kind)
    if age is None:
        message = f"the wheel index in use ({which}) does not say how old it is"
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
