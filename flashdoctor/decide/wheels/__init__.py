"""Prebuilt wheels: the index (index.py), one filename parser (parse.py), the selector (select.py, with
target.py, rules.py and reasons.py), the install plan (plan.py), coverage (coverage.py) and the index
builder (builder.py, derive.py).

The install helper calls :func:`make_plan`; ``check`` gets its verdicts' wheels from
:func:`find_wheel`, through flashdoctor.actions.inputs.wheel_finder (which loads the index).
"""

from __future__ import annotations

from flashdoctor.decide.wheels.freshness import STALE_AFTER_DAYS, index_age, stale_index_finding
from flashdoctor.decide.wheels.index import IndexEntry, WheelIndex, load_index
from flashdoctor.decide.wheels.location import (
    IndexLocation,
    WheelIndexError,
    default_index_path,
    locate_index,
)
from flashdoctor.decide.wheels.parse import WheelName, WheelNameError, parse_wheel_name
from flashdoctor.decide.wheels.plan import (
    make_plan,
    refit_plan,
    replay_premise,
    replay_selection,
    selection_json,
)
from flashdoctor.decide.wheels.select import (
    REJECTION_CODES,
    Selection,
    find_wheel,
    parse_version_spec,
    select_wheels,
)

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
    "find_wheel",
    "index_age",
    "load_index",
    "locate_index",
    "make_plan",
    "parse_version_spec",
    "parse_wheel_name",
    "refit_plan",
    "replay_premise",
    "replay_selection",
    "select_wheels",
    "selection_json",
    "stale_index_finding",
]
