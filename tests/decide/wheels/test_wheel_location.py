"""Which wheel index is in use (a refreshed one while it is newer than the bundled one) and the
``wheel-index-stale`` finding ``check`` gives when the index in use is older than 60 days."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from flashdoctor.decide.wheels import STALE_AFTER_DAYS, load_index, stale_index_finding
from flashdoctor.decide.wheels.location import (
    ENV_VAR,
    IndexLocation,
    WheelIndexError,
    document_date,
    file_date,
    locate_index,
)
from flashdoctor.knowledge import codes
from flashdoctor.model.findings import Status
from tests.support.paths import ROOT

COMMITTED = ROOT / "wheels_index.json"
DAY = datetime.date.fromisoformat


def index_file(path: Path, generated: str | None, fetched: list[str | None]) -> Path:
    doc = json.loads(COMMITTED.read_text(encoding="utf-8"))
    doc["inputs"] = [{"name": f"in{i}", **({"fetched": f} if f else {})} for i, f in enumerate(fetched)]
    if generated:
        doc["generated"] = generated
    else:
        doc.pop("generated", None)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_the_date_is_the_oldest_listing_read_else_the_generation_day() -> None:
    assert (
        document_date(
            {"generated": "2027-01-01", "inputs": [{"fetched": "2026-12-05"}, {"fetched": "2027-01-01"}]}
        )
        == "2026-12-05"
    )
    # an input without a date (the published digests) does not count
    assert (
        document_date({"generated": "2027-01-01", "inputs": [{"name": "digests"}, {"fetched": "2026-12-20"}]})
        == "2026-12-20"
    )
    assert document_date({"generated": "2027-01-01", "inputs": [{"name": "x"}]}) == "2027-01-01"
    assert document_date({"inputs": []}) is None


def test_the_committed_index_is_dated() -> None:
    assert file_date(COMMITTED) == "2026-12-05"
    assert load_index(COMMITTED).data_date == "2026-12-05"


def test_a_newer_refreshed_index_is_used_and_said(tmp_path: Path) -> None:
    refreshed = index_file(tmp_path / "wheels_index.json", "2027-02-01", ["2027-02-01"])
    loc = locate_index(None, {}, refreshed)
    assert (loc.path, loc.kind, loc.date) == (refreshed, "refreshed", "2027-02-01")
    assert "refreshed by `flashdoctor wheels --refresh`, data of 2027-02-01" in loc.describe()
    assert "newer than the bundled index (data of 2026-12-05)" in loc.describe()


def test_an_older_or_undated_refreshed_index_is_not(tmp_path: Path) -> None:
    old = index_file(tmp_path / "old.json", "2026-11-01", ["2026-11-01"])
    loc = locate_index(None, {}, old)
    assert (loc.path, loc.kind) == (COMMITTED, "bundled")
    assert loc.note is not None and "a refreshed index of 2026-11-01 is not newer" in loc.note
    undated = index_file(tmp_path / "undated.json", None, [None])
    assert locate_index(None, {}, undated).kind == "bundled"
    assert locate_index(None, {}, tmp_path / "absent.json").kind == "bundled"


def test_a_refreshed_index_dated_after_today_does_not_win_by_its_date(tmp_path: Path) -> None:
    # A refresh on a machine whose clock ran half a year ahead dated its index 2027-06-01; today is
    # 2026-12-20. That date cannot be trusted to be newer than the bundled index's (2026-12-05): the bundled
    # one is in use, and says which index it was preferred to and why.
    ahead = index_file(tmp_path / "wheels_index.json", "2027-06-01", ["2027-06-01"])
    loc = locate_index(None, {}, ahead, today=DAY("2026-12-20"))
    assert (loc.path, loc.kind, loc.date) == (COMMITTED, "bundled", "2026-12-05")
    assert loc.ahead == IndexLocation(ahead, "refreshed", "2027-06-01")
    assert (
        loc.note
        == f"a refreshed index dated 2027-06-01, after today (2026-12-20), is not trusted to be newer ({ahead})"
    )
    # a day ahead is a time zone, not a wrong clock: still newer; without a today, dates alone decide
    assert locate_index(None, {}, ahead, today=DAY("2027-05-31")).kind == "refreshed"
    assert locate_index(None, {}, ahead).kind == "refreshed"


def test_explicit_and_environment_win(tmp_path: Path) -> None:
    other = index_file(tmp_path / "mine.json", "2025-01-01", [])
    refreshed = index_file(tmp_path / "r.json", "2027-02-01", [])
    assert locate_index(other, {}, refreshed).kind == "explicit"
    loc = locate_index(None, {ENV_VAR: str(other)}, refreshed)
    assert (loc.kind, loc.path, loc.date) == ("env", other, "2025-01-01")


def test_no_index_at_all_says_how_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import flashdoctor.decide.wheels.location as location

    monkeypatch.setattr(location, "bundled_index_path", lambda: None)
    with pytest.raises(WheelIndexError) as exc:
        locate_index(None, {}, tmp_path / "absent.json")
    assert exc.value.hint is not None and "flashdoctor wheels --refresh" in exc.value.hint


# -- the finding -------------------------------------------------------------------------------------
def location(date: str | None, kind: str = "bundled") -> IndexLocation:
    return IndexLocation(COMMITTED, kind, date)


def test_stale_after_60_days() -> None:
    assert STALE_AFTER_DAYS == 60
    assert stale_index_finding(location("2026-12-05"), DAY("2027-02-03")) is None  # 60 days
    f = stale_index_finding(location("2026-12-05"), DAY("2027-02-04"))  # 61 days
    assert f is not None and f.code == "wheel-index-stale" and f.status is Status.WARN
    assert f.message == (
        "the wheel index in use (bundled with flashdoctor, data of 2026-12-05) is 61 days old: wheels "
        "published since then are unknown to it"
    )
    assert f.fix is not None and f.fix.startswith("flashdoctor wheels --refresh (online")
    assert f.evidence == str(COMMITTED)
    assert "wheel-index-stale" in codes.codes("finding")


def test_undated_or_explicit_index_findings() -> None:
    f = stale_index_finding(location(None), DAY("2027-01-01"))
    assert f is not None and "does not say how old it is" in f.message
    f = stale_index_finding(location("2020-01-01", "explicit"), DAY("2027-01-01"))
    assert f is not None and f.fix is not None and f.fix.startswith(f"rebuild {COMMITTED}")


def test_an_index_dated_after_today_is_not_fresh() -> None:
    # A refresh on a machine whose clock ran ahead (or a hand-made index) dates the index in the future: its
    # age is unknown, not "fresh for ever". A day ahead is a time zone, not a wrong clock.
    assert stale_index_finding(location("2027-01-02", "refreshed"), DAY("2027-01-01")) is None
    f = stale_index_finding(location("2030-06-01", "refreshed"), DAY("2027-01-01"))
    assert f is not None and f.code == "wheel-index-stale" and f.status is Status.WARN
    assert f.message == (
        "the wheel index in use (refreshed) is dated 2030-06-01, 1247 days after today (2027-01-01): a clock "
        "(this machine's, or the one that wrote it) is wrong, so how old its data are is unknown"
    )
    assert f.fix is not None and f.fix.startswith("flashdoctor wheels --refresh (online")
