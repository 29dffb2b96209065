"""Prebuilt wheels: the index (index.py), one filename parser (parse.py), the selector (select.py, with
target.py, rules.py and reasons.py), the install plan (plan.py), coverage (coverage.py) and the index
builder (builder.py, derive.py).

The install helper calls :func:`make_plan`; ``check`` gets its verdicts' wheels from
:func:`wheel_finder`.
"""

from __future__ import annotations

from pathlib import Path

from flashdoctor.decide.checks import WheelFinder
from flashdoctor.decide.wheels.freshness import STALE_AFTER_DAYS, index_age, stale_index_finding
from flashdoctor.decide.wheels.index import IndexEntry, WheelIndex, load_index
from flashdoctor.decide.wheels.location import (
    IndexLocation,
    WheelIndexError,
    default_index_path,
    locate_index,
)
from flashdoctor.decide.wheels.parse import WheelName, WheelNameError, parse_wheel_name
from flashdoctor.decide.wheels.plan import make_plan
from flashdoctor.decide.wheels.select import (
    REJECTION_CODES,
    Selection,
    find_wheel,
    parse_version_spec,
    select_wheels,
)
from flashdoctor.knowledge.variants import Variant
from flashdoctor.model.environment import Environment


def wheel_finder(index_path: str | None = None, allow_community: bool = False) -> WheelFinder:
    """A checks.WheelFinder over the index at ``index_path`` (default: the bundled index), loaded at
    the first call."""

    def find(env: Environment, variant: Variant) -> str | None:
        return find_wheel(env, variant, load_index(index_path), allow_community=allow_community)

    return find


def default_wheel_finder(refreshed: Path | None = None) -> WheelFinder | None:
    """wheel_finder over the default index (FLASHDOCTOR_WHEELS_INDEX, the refreshed index at ``refreshed``
    while newer, or the bundled one); None when there is no index, so verdicts say "no wheel index
    consulted" instead of failing."""
    try:
        return wheel_finder(str(default_index_path(refreshed=refreshed)))
    except WheelIndexError:
        return None


__all__ = [
    "REJECTION_CODES",
    "STALE_AFTER_DAYS",
    "IndexEntry",
    "IndexLocation",
    "Selection",
    "WheelIndex",
    "WheelIndexError",
    "WheelName",
    "WheelNameError",
    "default_index_path",
    "default_wheel_finder",
    "find_wheel",
    "index_age",
    "load_index",
    "locate_index",
    "make_plan",
    "parse_version_spec",
    "parse_wheel_name",
    "select_wheels",
    "stale_index_finding",
    "wheel_finder",
]
