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
    atomic_write_bytes(target, b"{}", stale_after=86400.0)
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
