"""The download cache: content-addressed, atomic, locked.

Layout under ``root`` (default: platformdirs' user cache dir + "/wheels", e.g. ~/.cache/flashdoctor/wheels):

    sha256/<2 hex>/<64 hex>/<filename>   final files; a file is only ever here complete and verified
    urls/<sha256 of the URL>.json        which content a URL gave (for indexes that publish no sha256)
    tmp/<key>.part (+ .json)             downloads in progress; same file system, so the rename is atomic
    locks/<key>.lock                     filelock files (one per download key, one per target environment)
    backups/<id>/                        the files an install replaces, until it has been verified

A download is written to ``tmp/``, flushed and fsync'ed, its sha256 checked, then ``os.replace``'d into
``sha256/`` and the directory fsync'ed. Readers therefore see a complete file or none. Two processes
that want the same file serialise on its lock; the second finds it in the cache. A process killed
mid-download leaves at most a ``tmp/*.part``, which the next download of that URL resumes (when the
server's ETag / Last-Modified still match) or discards.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from flashdoctor.errors import FlashdoctorError

LOCK_TIMEOUT = 900.0  # another flashdoctor downloading a 500 MB wheel on a slow line


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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary name in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


@dataclass(frozen=True)
class CacheEntry:
    path: Path
    sha256: str


class WheelCache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- paths ----------------------------------------------------------------------------------
    def path_for(self, sha256: str, filename: str) -> Path:
        sha256 = sha256.lower()
        return self.root / "sha256" / sha256[:2] / sha256 / filename

    def tmp_path(self, key: str) -> Path:
        return self.root / "tmp" / f"{key}.part"

    def _url_record(self, url: str) -> Path:
        return self.root / "urls" / f"{url_key(url)}.json"

    # -- locks ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, key: str, timeout: float = LOCK_TIMEOUT, on_wait: Any = None) -> Iterator[None]:
        """Hold ``locks/<key>.lock``. ``on_wait`` is called once if another process holds it."""
        d = self.root / "locks"
        d.mkdir(parents=True, exist_ok=True)
        lk = FileLock(str(d / f"{key}.lock"))
        try:
            lk.acquire(timeout=0)
        except Timeout:
            if on_wait is not None:
                on_wait()
            try:
                lk.acquire(timeout=timeout)
            except Timeout:
                raise CacheLockTimeout(
                    f"another flashdoctor process has held {d / (key + '.lock')} for {timeout:.0f}s",
                    hint="wait for it to finish, or end it; a lock of a dead process frees itself",
                ) from None
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
        p = self.path_for(sha256, filename)
        if not p.is_file():
            return None
        if sha256_file(p) != sha256.lower():
            with contextlib.suppress(OSError):
                p.unlink()
            return None
        return CacheEntry(p, sha256.lower())

    def url_record(self, url: str) -> dict[str, Any] | None:
        try:
            rec = json.loads(self._url_record(url).read_text(encoding="utf-8"))
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

    def clean_stale_tmp(self, max_age_s: float = 7 * 86400) -> None:
        """Remove partial downloads nobody resumed for a week."""
        d = self.root / "tmp"
        if not d.is_dir():
            return
        now = time.time()
        for p in d.iterdir():
            with contextlib.suppress(OSError):
                if now - p.stat().st_mtime > max_age_s:
                    p.unlink()

    def backup_dir(self) -> Path:
        d = self.root / "backups" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        d.mkdir(parents=True, exist_ok=False)
        return d
