"""issue 15 row 7, the last two places that followed links: the downloader opened the ``.part`` with a plain
open() after the cache had checked it (a link swapped in between was written through), and the install log
(at a predictable name) was appended with open(log, "a"). Both now open with O_NOFOLLOW and check with
fstat that they hold a regular file of this user with one name."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from flashdoctor.actions.install.pip import run_installer
from flashdoctor.actions.net.download import DiskError, DownloadPolicy, download
from tests.support.install_helpers import FaultServer, make_wheel

FAST = DownloadPolicy(connect_timeout=2, read_timeout=2, retries=1, backoff=0.01, backoff_max=0.05)


def _plant(kind: str, victim: Path, at: Path) -> None:
    at.unlink(missing_ok=True)
    (os.symlink if kind == "symlink" else os.link)(victim, at)


class SwapInALink:
    """A progress display whose start() -- called after the partial file was checked, just before the
    downloader opens it -- swaps a link to the victim in: the race window, exactly."""

    def __init__(self, kind: str, victim: Path, dest: Path) -> None:
        self.kind, self.victim, self.dest = kind, victim, dest

    def start(self, name: str, total: int | None, done: int) -> None:
        _plant(self.kind, self.victim, self.dest)

    def update(self, done: int) -> None:
        pass

    def stop(self) -> None:
        pass


def _served_wheel_and_victim(server: FaultServer, tmp_path: Path) -> tuple[Path, str, Path, bytes]:
    w = make_wheel(tmp_path / "w")
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"precious " * 100)
    return w, server.add("/w.whl", w.read_bytes()), victim, victim.read_bytes()


@pytest.mark.system  # a loopback server
@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_the_downloader_never_writes_through_a_link_swapped_in(
    server: FaultServer, tmp_path: Path, kind: str
) -> None:
    _w, url, victim, before = _served_wheel_and_victim(server, tmp_path)
    dest = tmp_path / "x.part"
    dest.touch(mode=0o600)  # what the cache's open_part made
    with pytest.raises(DiskError, match=r"cannot write x\.part"):
        download(url, dest, policy=FAST, progress=SwapInALink(kind, victim, dest))
    assert victim.read_bytes() == before
    assert not dest.exists()  # the planted name is removed, the victim kept


@pytest.mark.system  # a loopback server
@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_a_resumable_looking_link_is_neither_read_nor_resumed(
    server: FaultServer, tmp_path: Path, kind: str
) -> None:
    w, url, victim, before = _served_wheel_and_victim(server, tmp_path)
    dest = tmp_path / "x.part"
    _plant(kind, victim, dest)
    res = download(url, dest, policy=FAST, validators={"etag": '"v1"'})
    assert victim.read_bytes() == before
    assert dest.read_bytes() == w.read_bytes() and not res.resumed
    assert [h.get("range") for p, h in server.requests if p == "/w.whl"] == [None]


@pytest.mark.system
@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_the_install_log_is_never_written_through_a_planted_link(tmp_path: Path, kind: str) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    log = tmp_path / "logs" / "install-20250101-000000-4242.log"
    log.parent.mkdir()
    _plant(kind, victim, log)
    rc, out = run_installer([sys.executable, "-c", "print('pip ran')"], dict(os.environ), log)
    assert (rc, out) == (0, "pip ran")
    assert victim.read_text() == "precious\n"


@pytest.mark.system
def test_the_install_log_is_private_and_appended(tmp_path: Path) -> None:
    log = tmp_path / "install.log"
    for _ in range(2):
        run_installer([sys.executable, "-c", "print('pip ran')"], dict(os.environ), log)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert log.read_text().count("[exit 0]") == 2
