"""flashdoctor.actions.cache: what writers killed midway leave behind, and who removes it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from flashdoctor.actions.cache import WheelCache, atomic_write_bytes

OTHER_UID = 54321  # a user who is not this one (the suite runs as root in CI's containers too)


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


def test_a_link_under_a_writes_temporary_name_is_removed_at_any_age(tmp_path: Path) -> None:
    """The index writer kept a link of its temporaries' pattern until it was a day old, where the download
    cache removes one at once: flashdoctor never makes a link there, so none is a write going on."""
    target = tmp_path / "wheels_index.json"
    outside = tmp_path / "outside.txt"
    outside.write_text("mine")
    link = tmp_path / ".wheels_index.json.link0123.tmp"
    link.symlink_to(outside)
    atomic_write_bytes(target, b"{}")
    assert not os.path.lexists(link) and outside.read_text() == "mine"


def test_a_partial_download_of_another_user_is_left_alone(tmp_path: Path) -> None:
    """clean_stale_tmp removed any week-old entry of tmp/, another user's file too (root sweeping a user's
    cache), where the index writer leaves another user's file alone: not ours to judge."""
    if os.geteuid() != 0:
        pytest.skip("needs root to give a file to another user")
    cache = WheelCache(tmp_path)
    d = tmp_path / "tmp"
    d.mkdir()
    theirs, mine = d / ("a" * 64 + ".part"), d / ("b" * 64 + ".part")
    for p in (theirs, mine):
        p.write_bytes(b"partial")
        age(p, 8 * 86400)
    os.chown(theirs, OTHER_UID, OTHER_UID)
    assert cache.clean_stale_tmp() == [mine.name]
    assert theirs.exists() and not mine.exists()


def plant_temps(target: Path) -> tuple[Path, Path]:
    """A temporary of ``target`` a killed writer left two days ago, and one of a write going on now."""
    old, busy = (target.with_name(f".{target.name}.{k}.tmp") for k in ("old01234", "busy0123"))
    for p in (old, busy):
        p.write_bytes(b"cut short")
    age(old, 2 * 86400)
    return old, busy


def test_every_atomic_write_removes_the_stale_temporaries_of_its_file(tmp_path: Path) -> None:
    """Only the refreshed index's writer swept them: a build.json, a backup's manifest, a URL record kept
    a killed write's temporary for ever."""
    target = tmp_path / "build.json"
    old, busy = plant_temps(target)
    atomic_write_bytes(target, b"{}")
    assert not old.exists() and busy.exists() and target.read_bytes() == b"{}"


def test_a_file_the_user_names_removes_the_stale_temporaries_of_its_file(tmp_path: Path) -> None:
    """`lock -o`, `--save-target`, `--json-out`: written through the same temporaries, never swept."""
    from flashdoctor.actions.inputs import write_text

    target = tmp_path / "flash.lock"
    old, busy = plant_temps(target)
    write_text(str(target), "lock\n")
    assert not old.exists() and busy.exists() and target.read_text() == "lock\n"
