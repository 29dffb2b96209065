"""The download cache: content-addressed, atomic, locked.

Layout under ``root`` (default: platformdirs' user cache dir + "/wheels", e.g. ~/.cache/flashdoctor/wheels):

    sha256/<2 hex>/<64 hex>/<filename>   final files; a file is only ever here complete and verified
    urls/<sha256 of the URL>.json        which content a URL gave (for indexes that publish no sha256)
    tmp/<key>.part (+ .json)             downloads in progress; same file system, so the rename is atomic
    locks/<key>.lock                     filelock files (one per download key)
    backups/<id>/                        the files an install replaces, until it has been verified

(An install's lock belongs to the target environment, not to this cache: see
flashdoctor.actions.install.envlock.)

A download is written to ``tmp/``, flushed and fsync'ed, its sha256 checked, then ``os.replace``'d into
``sha256/`` and the directory fsync'ed. Readers therefore see a complete file or none. Two processes
that want the same file serialise on its lock; the second finds it in the cache. A process killed
mid-download leaves at most a ``tmp/*.part``, which the next download of that URL resumes (when the
server's ETag / Last-Modified still match and it is a regular file this user owns) or discards; one
nobody resumed for a week is removed by the next download (``clean_stale_tmp``).

A writer killed between its temporary and the rename leaves the temporary (``.<name>.<8 chars>.tmp``); the
next write of that file (whoever writes it: the refreshed index, a build.json, a lock file the user names)
removes those a day old first (``_new_temp``).

Every file is created by the process that writes it (O_EXCL, O_NOFOLLOW, or mkstemp in the destination
directory), so a link planted under a name flashdoctor will use is removed or refused, never followed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flashdoctor.errors import FlashdoctorError
from flashdoctor.model.verification import is_sha256

if TYPE_CHECKING:
    from filelock import FileLock

LOCK_TIMEOUT = 900.0  # another flashdoctor downloading a 500 MB wheel on a slow line
STALE_TMP_S = 7 * 86400.0  # a partial download nobody resumed for a week is abandoned
STALE_WRITE_S = 86400.0  # a temporary of atomic_write_bytes this old was left by a writer killed mid-write
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class CacheLockTimeout(FlashdoctorError):
    pass


def cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """flashdoctor's cache: $FLASHDOCTOR_CACHE_DIR, else platformdirs' user cache dir (XDG_CACHE_HOME on
    Linux). Downloads live in its wheels/, local builds in its wheelhouse/, sources in its sources/."""
    env = os.environ if environ is None else environ
    if env.get("FLASHDOCTOR_CACHE_DIR"):
        return Path(env["FLASHDOCTOR_CACHE_DIR"])
    from platformdirs import user_cache_path

    return user_cache_path("flashdoctor", appauthor=False)


def default_cache_root(environ: Mapping[str, str] | None = None) -> Path:
    """The download cache (WheelCache's root)."""
    return cache_root(environ) / "wheels"


def default_wheelhouse(environ: Mapping[str, str] | None = None) -> Path:
    """Where `flashdoctor build` stores wheels when no --wheelhouse is given."""
    return cache_root(environ) / "wheelhouse"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def url_key(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:32]


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _new_temp(directory: Path, name: str) -> tuple[int, Path]:
    """A new file for ``name`` in ``directory``: mkstemp (O_CREAT|O_EXCL, mode 0600), so a file or a link
    planted under a predictable temporary name is never opened, let alone followed. The temporaries of
    ``name`` a writer killed before its rename left there (``.<name>.<mkstemp's 8 characters>.tmp``, stale
    after ``STALE_WRITE_S``: see :func:`remove_stale`) are removed first, whoever writes the file."""
    ours = re.compile(re.escape(f".{name}.") + r"[a-z0-9_]{8}\.tmp")
    remove_stale(directory, STALE_WRITE_S, ours.fullmatch)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    return fd, Path(tmp)


def remove_stale(directory: Path, max_age_s: float, match: Callable[[str], object] = bool) -> list[str]:
    """Remove what writers killed midway left in ``directory`` under the names ``match`` accepts: this
    user's regular files not written to for ``max_age_s`` (a write takes seconds: one going on now is
    younger), and links of such a name, whatever their age (removed, never followed: flashdoctor makes
    none there). A directory, another user's file or anything else is left alone. Returns the names removed."""
    try:
        names = [n for n in os.listdir(directory) if match(n)]
    except OSError:
        return []
    removed: list[str] = []
    now = time.time()
    for name in names:
        p = directory / name
        with contextlib.suppress(OSError):
            st = os.lstat(p)
            mine = stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid()
            if stat.S_ISLNK(st.st_mode) or (mine and now - st.st_mtime > max_age_s):
                p.unlink()
                removed.append(name)
    return removed


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` through a new temporary file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = write_temp(path, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def write_temp(path: Path, data: bytes, mode: int = 0o644) -> Path:
    """``data`` in a new temporary file beside ``path`` (its directory must exist), on disk, for the caller
    to rename over ``path`` or remove; nothing is left on failure."""
    fd, tmp = _new_temp(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return tmp


def copy_new(src: Path, directory: Path, name: str | None = None, mode: int = 0o644) -> tuple[Path, str]:
    """Copy ``src`` into a file this process creates: ``directory/name`` (O_CREAT|O_EXCL|O_NOFOLLOW: an
    existing file or link there is an error, never opened), or a new temporary name (mkstemp) for the
    caller to rename. The sha256 is of the bytes written, computed as they are copied, so it describes
    the copy even if ``src`` changes meanwhile. Returns (path, sha256); nothing is left on failure."""
    if name is None:
        fd, dst = _new_temp(directory, src.name)
    else:
        dst = directory / name
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, mode)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as fo, open(src, "rb") as fi:
            for block in iter(lambda: fi.read(1 << 20), b""):
                h.update(block)
                fo.write(block)
            fo.flush()
            os.fchmod(fo.fileno(), mode)
            os.fsync(fo.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            dst.unlink()
        raise
    return dst, h.hexdigest()


def read_bounded(path: Path, limit: int) -> bytes:
    """The contents of a small file we did not write (a manifest, a record), refusing more than
    ``limit`` bytes and links. Raises OSError / ValueError."""
    fd = os.open(path, os.O_RDONLY | NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path} is larger than {limit} bytes")
    return data


def own_regular_file(path: Path) -> bool:
    """True when ``path`` is a regular file (not a link) that this user owns, with one name: a partial
    download another process or person planted (a link to a file of theirs) is never resumed."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and st.st_nlink == 1


def acquire(lk: FileLock, timeout: float, on_wait: Callable[[], None] | None = None) -> bool:
    """Take ``lk``, calling ``on_wait`` once if another process holds it; False after ``timeout``."""
    from filelock import Timeout  # imported where locks are taken: `check` never takes one

    try:
        lk.acquire(timeout=0)
        return True
    except Timeout:
        if on_wait is not None:
            on_wait()
    try:
        lk.acquire(timeout=timeout)
    except Timeout:
        return False
    return True


def _check_key(key: str) -> None:
    """A cache key is a sha256, or a url_key (32 hex digits), bare or after "url-"; ValueError otherwise."""
    bare = key.removeprefix("url-")
    if not (is_sha256(key) or (len(bare) == 32 and set(bare) <= set("0123456789abcdef"))):
        raise ValueError(f"not a cache key: {key!r}")


@dataclass(frozen=True)
class CacheEntry:
    path: Path
    sha256: str


class WheelCache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- paths ----------------------------------------------------------------------------------
    # Every name under root is built from a sha256 (or "url-" and a url_key), never from other text: a
    # digest read from a publisher ("../../x") would otherwise name a path outside the cache.
    def path_for(self, sha256: str, filename: str) -> Path:
        sha256 = sha256.lower()
        _check_key(sha256)
        if not filename or "/" in filename or filename in (".", ".."):
            raise ValueError(f"not a file name: {filename!r}")
        return self.root / "sha256" / sha256[:2] / sha256 / filename

    def tmp_path(self, key: str) -> Path:
        _check_key(key)
        return self.root / "tmp" / f"{key}.part"

    def _url_record(self, url: str) -> Path:
        return self.root / "urls" / f"{url_key(url)}.json"

    # -- locks ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, key: str, timeout: float = LOCK_TIMEOUT, on_wait: Any = None) -> Iterator[None]:
        """Hold ``locks/<key>.lock``. ``on_wait`` is called once if another process holds it."""
        _check_key(key)
        d = self.root / "locks"
        d.mkdir(parents=True, exist_ok=True)
        from filelock import FileLock

        lk = FileLock(str(d / f"{key}.lock"))
        if not acquire(lk, timeout, on_wait):
            raise CacheLockTimeout(
                f"another flashdoctor process has held {d / (key + '.lock')} for {timeout:.0f}s",
                hint="wait for it to finish, or end it; a lock of a dead process frees itself",
            )
        try:
            yield
        finally:
            lk.release()

    # -- lookups --------------------------------------------------------------------------------
    def get(
        self, sha256: str | None = None, url: str | None = None, filename: str | None = None
    ) -> CacheEntry | None:
        """A cached file by content hash, or by the URL it came from. Its bytes are re-hashed: a file
        that no longer matches its name (disk corruption, tampering) is dropped and None returned."""
        if sha256 is None and url is not None:
            rec = self.url_record(url)
            if rec is None:
                return None
            sha256, filename = rec["sha256"], rec["filename"]
        if sha256 is None or filename is None:
            return None
        try:
            p = self.path_for(sha256, filename)
        except ValueError:
            return None
        if not p.is_file():
            return None
        if sha256_file(p) != sha256.lower():
            with contextlib.suppress(OSError):
                p.unlink()
            return None
        return CacheEntry(p, sha256.lower())

    def url_record(self, url: str) -> dict[str, Any] | None:
        try:
            rec = json.loads(read_bounded(self._url_record(url), 1 << 16).decode("utf-8"))
        except (OSError, ValueError):
            return None
        if (
            not isinstance(rec, dict)
            or rec.get("url") != url
            or not rec.get("sha256")
            or not rec.get("filename")
        ):
            return None
        return rec

    # -- writes ---------------------------------------------------------------------------------
    def commit(self, tmp: Path, sha256: str, filename: str, url: str | None = None) -> CacheEntry:
        """Move a complete, verified temporary file into place (atomic), and remember its URL."""
        final = self.path_for(sha256, filename)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        fsync_dir(final.parent)
        if url is not None:
            rec = {"url": url, "sha256": sha256.lower(), "filename": filename, "time": int(time.time())}
            atomic_write_bytes(self._url_record(url), json.dumps(rec).encode())
        return CacheEntry(final, sha256.lower())

    def clean_stale_tmp(self, max_age_s: float = STALE_TMP_S) -> list[str]:
        """Remove partial downloads (and their records) nobody resumed for ``max_age_s``, and links, never
        followed (:func:`remove_stale`). Returns the names removed."""
        return remove_stale(self.root / "tmp", max_age_s)

    def open_part(self, key: str, resume: bool) -> tuple[Path, bool]:
        """The partial download for ``key``, ready for the downloader: the existing one when ``resume``
        and it is a regular file this user owns (never a link: see own_regular_file), else a new empty
        file created here with O_EXCL|O_NOFOLLOW. Returns (path, resumable)."""
        tmp = self.tmp_path(key)
        tmp.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if resume and own_regular_file(tmp):
            return tmp, True
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()  # a link is removed, not followed
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o600)
        os.close(fd)
        return tmp, False

    def has(self, sha256: str | None, url: str, filename: str) -> bool:
        """Whether the cache holds this wheel (by digest, else by the URL it came from), without reading
        it: for a plan's "already here"; the fetch re-hashes whatever it uses."""
        if sha256 is None:
            rec = self.url_record(url)
            if rec is None or rec["filename"] != filename:
                return False
            sha256 = str(rec["sha256"])
        try:
            return self.path_for(sha256, filename).is_file()
        except ValueError:
            return False

    def backups(self) -> Path:
        """Where installs keep what they replace until it is verified (flashdoctor.actions.install.rollback)."""
        return self.root / "backups"

    def backup_dir(self) -> Path:
        d = self.backups() / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        d.parent.mkdir(parents=True, exist_ok=True)
        d.mkdir(mode=0o700)
        return d
