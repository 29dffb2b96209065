"""check's view of the wheel index's age: a pure decision fed the index's date and today's date
(flashdoctor.decide.wheels.freshness.index_info, stale_index_finding), and check's report carrying both."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from flashdoctor.actions.check import with_index_freshness
from flashdoctor.actions.wheel_index import current_index, today_of
from flashdoctor.decide.checks import run_checks
from flashdoctor.decide.wheels import IndexLocation
from flashdoctor.decide.wheels.freshness import index_info
from flashdoctor.errors import UsageError
from flashdoctor.model.target import environment_from_target

DAY = datetime.date.fromisoformat
WHERE = Path("wheels_index.json")


@pytest.mark.parametrize(
    ("date", "today", "age", "stale"),
    [
        ("2026-12-05", "2026-12-05", 0, False),
        ("2026-12-05", "2027-02-03", 60, False),
        ("2026-12-05", "2027-02-04", 61, True),
        (None, "2027-02-04", None, True),
        ("2026-12-06", "2026-12-05", -1, False),  # a day ahead: a time zone
        ("2027-12-05", "2026-12-05", -365, True),  # a year ahead: a wrong clock, the age is unknown
    ],
)
def test_index_info(date: str | None, today: str, age: int | None, stale: bool) -> None:
    info = index_info(IndexLocation(WHERE, "refreshed", date), DAY(today))
    assert info == {
        "path": "wheels_index.json", "date": date, "age_days": age, "source": "refreshed", "stale": stale,
        "stale_after_days": 60,
    }  # fmt: skip


def test_today_of() -> None:
    assert today_of({"FLASHDOCTOR_TODAY": "2027-01-02"}) == DAY("2027-01-02")
    with pytest.raises(UsageError, match="FLASHDOCTOR_TODAY"):
        today_of({"FLASHDOCTOR_TODAY": "next week"})


def test_check_report_warns_on_an_old_index_and_says_how_to_refresh(tmp_path: Path) -> None:
    env = environment_from_target({"python": "3.12", "platform": "linux_x86_64", "installed": {}})
    report = run_checks(env, source="target:x")
    environ = {"FLASHDOCTOR_CACHE_DIR": str(tmp_path)}
    bundled = current_index(None, environ)
    assert bundled.kind == "bundled" and bundled.date is not None
    day = DAY(bundled.date)
    environ["FLASHDOCTOR_TODAY"] = (day + datetime.timedelta(days=61)).isoformat()
    old = with_index_freshness(report, environ)
    (stale,) = [f for f in old.findings if f.code == "wheel-index-stale"]
    assert stale.status.value == "warn" and "61 days old" in stale.message
    assert stale.fix is not None and stale.fix.startswith("flashdoctor wheels --refresh")
    assert old.extra["index"]["source"] == "bundled" and old.extra["index"]["age_days"] == 61
    fresh = with_index_freshness(
        report, {**environ, "FLASHDOCTOR_TODAY": (day + datetime.timedelta(days=60)).isoformat()}
    )
    assert "wheel-index-stale" not in [f.code for f in fresh.findings]
    assert fresh.extra["index"]["stale"] is False


def test_check_report_on_an_index_dated_after_today(tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from flashdoctor.render.human import render_check

    env = environment_from_target({"python": "3.12", "platform": "linux_x86_64", "installed": {}})
    environ = {"FLASHDOCTOR_CACHE_DIR": str(tmp_path)}
    day = DAY(str(current_index(None, environ).date))
    environ["FLASHDOCTOR_TODAY"] = (day - datetime.timedelta(days=30)).isoformat()  # the clock is behind
    report = with_index_freshness(run_checks(env, source="target:x"), environ)
    assert report.extra["index"]["age_days"] == -30 and report.extra["index"]["stale"] is True
    (stale,) = [f for f in report.findings if f.code == "wheel-index-stale"]
    assert "30 days after today" in stale.message and "a clock" in stale.message
    out = io.StringIO()
    render_check(report, Console(file=out, width=200), verbose=True)
    assert "dated 30 days after today" in out.getvalue() and "-30 days" not in out.getvalue()


def test_check_on_a_refreshed_index_dated_after_today_uses_the_bundled_one_and_warns(tmp_path: Path) -> None:
    # The refreshed index (dated 2027-06-01 by a clock that ran ahead) no longer wins over the newer bundled
    # one by that date; check says so, with the refresh (dated today) as the fix.
    from tests.decide.wheels.test_wheel_location import index_file

    env = environment_from_target({"python": "3.12", "platform": "linux_x86_64", "installed": {}})
    (tmp_path / "index").mkdir()
    ahead = index_file(tmp_path / "index" / "wheels_index.json", "2027-06-01", ["2027-06-01"])
    environ = {"FLASHDOCTOR_CACHE_DIR": str(tmp_path), "FLASHDOCTOR_TODAY": "2026-12-20"}
    assert current_index(None, environ).kind == "bundled"
    report = with_index_freshness(run_checks(env, source="target:x"), environ)
    assert report.extra["index"]["source"] == "bundled" and report.extra["index"]["stale"] is False
    (stale,) = [f for f in report.findings if f.code == "wheel-index-stale"]
    assert stale.message == (
        "a refreshed wheel index is dated 2027-06-01, 163 days after today (2026-12-20): a clock (this "
        "machine's, or the one that wrote it) is wrong, so it is not trusted to be newer; the bundled index "
        "(data of 2026-12-05) is in use"
    )
    assert stale.evidence == str(ahead)
    assert stale.fix is not None and stale.fix.startswith("flashdoctor wheels --refresh (online")
    # once today reaches its date, the refreshed index is newer and in use again
    later = {**environ, "FLASHDOCTOR_TODAY": "2027-06-01"}
    assert current_index(None, later).kind == "refreshed"
    assert "wheel-index-stale" not in [
        f.code for f in with_index_freshness(run_checks(env, source="t"), later).findings
    ]
