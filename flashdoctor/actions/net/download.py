"""Download one file: streamed, resumable, through the one HTTP client (flashdoctor.actions.net.http,
which owns the URL policy, the token scoping, timeouts, deadlines and retries).

- Resume with ``Range: bytes=N-`` after a cut: a 206 with the right Content-Range appends; anything else
  (200, 416, a wrong range) restarts from zero, so a server without range support costs time, not
  correctness. The final sha256 check catches what slips through.
- A body that does not start like a zip archive (an HTML login or error page) fails at once when a
  wheel is expected.

This module knows nothing of caches or wheels beyond sniffing that a body is a zip archive; the cache
(flashdoctor.actions.cache) decides where bytes go.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urlsplit

import requests

from flashdoctor.actions.net.errors import (
    DiskError,
    DownloadError,
    NotAWheelError,
    OfflineError,
    RefusedURL,
)
from flashdoctor.actions.net.http import RETRY_STATUSES as _RETRY
from flashdoctor.actions.net.http import (
    TOKEN_HOSTS,
    Http,
    HttpPolicy,
    Retryable,
    Watch,
    credentials_hint,
    raw_chunks,
    retry_after,
)
from flashdoctor.actions.net.urls import check_url, is_loopback, redact

ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class DownloadPolicy(HttpPolicy):
    """The HTTP policy plus what only a file download needs."""

    chunk_size: int = 1 << 16
    expect_zip: bool = True  # fail fast when the body does not start like a zip archive
    # The most one file may be: FlashAttention's largest wheels are about 1 GB, an sdist 8 MB. A server
    # that announces more is refused before the body; one that sends more (no Content-Length) when it does.
    max_file_bytes: int = 4 << 30


class Progress(Protocol):
    """What the downloader tells a progress display (flashdoctor.render.install has the rich one)."""

    def start(self, name: str, total: int | None, done: int) -> None: ...

    def update(self, done: int) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    size: int
    sha256: str
    attempts: int
    resumed: bool  # some bytes came from a 206 Partial Content answer
    final_url: str  # redacted


class _State:
    """What has been written to ``dest`` so far (survives an exception in the middle of a body)."""

    def __init__(self) -> None:
        self.have = 0
        self.hasher = hashlib.sha256()
        self.resumed = False
        self.final_url = ""

    def reset(self) -> None:
        self.have = 0
        self.hasher = hashlib.sha256()


def _looks_like_html(head: bytes) -> bool:
    h = head.lstrip()[:64].lower()
    return (
        h.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body")) or b"<html" in head[:512].lower()
    )


def _parse_content_range(value: str | None) -> tuple[int, int | None] | None:
    """'bytes 100-199/200' -> (100, 200); total may be '*'."""
    if not value or not value.startswith("bytes "):
        return None
    try:
        span, total = value[6:].split("/", 1)
        start = int(span.split("-", 1)[0])
        return start, (None if total.strip() == "*" else int(total))
    except ValueError:
        return None


def download(
    url: str,
    dest: Path,
    *,
    policy: DownloadPolicy | None = None,
    environ: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    name: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    validators: dict[str, str] | None = None,
    on_validators: Callable[[dict[str, str]], None] | None = None,
    http: Http | None = None,
) -> DownloadResult:
    """Fetch ``url`` into ``dest`` (a temporary path chosen by the caller), resuming a partial ``dest``
    that is already there when ``validators`` (ETag / Last-Modified of that earlier answer) are given.

    On failure ``dest`` is removed and DownloadError raised. ``on_validators`` is called with the
    server's ETag / Last-Modified as soon as they are known, so a caller can persist them for a resume
    by a later process (this one may be killed). ``http`` is the client to use (default: a new one with
    ``policy``, ``environ`` and ``sleep``)."""
    policy = policy or (http.policy if http is not None and isinstance(http.policy, DownloadPolicy) else None)
    policy = policy or DownloadPolicy()
    check_url(url, policy.allow_http)
    shown = redact(url)
    name = name or Path(urlsplit(url).path).name or "download"
    if validators is None:
        validators = {}
    st = _State()
    own = http is None
    client = http if http is not None else Http(policy, environ, sleep)
    try:
        if dest.exists():
            if validators.get("etag") or validators.get("last-modified"):
                st.have = _hash_existing(dest, st.hasher)
            else:
                dest.unlink()

        def headers() -> dict[str, str]:
            h = {"Accept-Encoding": "identity"}  # byte offsets and Content-Length must mean file bytes
            if st.have:
                h["Range"] = f"bytes={st.have}-"
                if validators.get("etag") or validators.get("last-modified"):
                    h["If-Range"] = validators.get("etag") or validators["last-modified"]
            return h

        def receive(resp: requests.Response, watch: Watch) -> None:
            sent = client.session.credentials_sent
            _receive(resp, watch, dest, st, policy, shown, validators, progress, name, sent, on_validators)
            st.final_url = redact(resp.url)

        _, attempts = client.fetch(url, receive, headers=headers, deadline=policy.deadline)
        return DownloadResult(dest, st.have, st.hasher.hexdigest(), attempts, st.resumed, st.final_url)
    except BaseException:
        _unlink(dest)
        raise
    finally:
        if own:
            client.close()
        if progress is not None:
            progress.stop()


def open_own_file(path: Path, flags: int, mode: int = 0o600) -> int:
    """``os.open(path, flags)`` that never follows a link at ``path`` (O_NOFOLLOW) and gives a descriptor
    only for a regular file this user owns with one name (checked with fstat on what was opened, so a link
    or a file swapped in after an earlier check is refused, not written through). OSError otherwise."""
    fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), mode)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_uid != os.geteuid():
        os.close(fd)
        raise OSError(errno.EPERM, "not a regular file of this user with one name (refusing to use it)")
    return fd


def _hash_existing(path: Path, hasher: Any) -> int:
    """The bytes of a partial download, hashed; 0 (and the name removed) when it is not a regular file of
    ours: a link planted there is neither read nor resumed."""
    try:
        fd = open_own_file(path, os.O_RDONLY)
    except OSError:
        _unlink(path)
        return 0
    n = 0
    with os.fdopen(fd, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            hasher.update(block)
            n += len(block)
    return n


def _receive(
    resp: requests.Response,
    watch: Watch,
    dest: Path,
    st: _State,
    policy: DownloadPolicy,
    shown: str,
    validators: dict[str, str],
    progress: Progress | None,
    name: str,
    sent: Callable[[requests.PreparedRequest], str | None],  # the session's credentials_sent
    on_validators: Callable[[dict[str, str]], None] | None = None,
) -> None:
    status = resp.status_code
    if status in _RETRY:
        raise Retryable(f"HTTP {status} {resp.reason}", retry_after(resp))
    if status == 416 and st.have:
        # Our range is past the end: the file changed or our partial is bogus. Start again.
        _unlink(dest)
        st.reset()
        raise Retryable("HTTP 416 for a resumed download; restarting from zero", 0.0)
    if status >= 400:
        hint = None
        if status == 404:
            hint = "the file is gone from the server or the index is stale; try another --index-url or a --wheelhouse"
        elif status in (401, 403):
            hint = credentials_hint(shown, policy.token_hosts, sent(resp.request))
        raise DownloadError(f"HTTP {status} {resp.reason} for {shown}", hint=hint)
    if status not in (200, 206):
        raise DownloadError(f"unexpected HTTP {status} {resp.reason} for {shown}")
    for key in ("etag", "last-modified"):
        if resp.headers.get(key):
            validators[key] = resp.headers[key]
    if on_validators is not None and validators:
        on_validators(dict(validators))
    total: int | None
    if status == 206 and st.have:
        cr = _parse_content_range(resp.headers.get("Content-Range"))
        if cr is None or cr[0] != st.have:
            # A range we did not ask for: throw the partial away and restart.
            at = st.have
            _unlink(dest)
            st.reset()
            raise Retryable(
                f"server answered a resume at byte {at} with range {resp.headers.get('Content-Range')!r}", 0.0
            )
        total = cr[1]
        if total is not None and total > policy.max_file_bytes:
            raise DownloadError(_too_large(shown, total, policy))
        mode = "ab"
        st.resumed = True
    else:
        if status == 206:  # a range we never asked for
            raise DownloadError(f"server sent a partial answer (206) to a plain request for {shown}")
        st.reset()  # a 200: the whole file again (Range unsupported, or If-Range said it changed)
        cl = resp.headers.get("Content-Length")
        total = int(cl) if cl and cl.isdigit() else None
        if total is not None and total > policy.max_file_bytes:
            raise DownloadError(_too_large(shown, total, policy))
        mode = "wb"
        ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if policy.expect_zip and ctype in ("text/html", "application/xhtml+xml"):
            raise NotAWheelError(
                f"{shown} answered with an HTML page (Content-Type {ctype}), not a wheel",
                hint="a login, error or captive-portal page; check the URL, the proxy and credentials",
            )
    if progress is not None:
        progress.start(name, total, st.have)
    first = mode == "wb"
    try:
        # O_NOFOLLOW and an fstat check: a link swapped in after the cache made the file is not followed;
        # truncated only once it is known to be ours.
        fd = open_own_file(dest, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == "ab" else 0))
        if mode == "wb":
            os.ftruncate(fd, 0)
        fh: IO[bytes] = os.fdopen(fd, mode)
    except OSError as exc:
        raise _disk_error(exc, dest) from None
    try:
        for chunk in raw_chunks(resp, policy.chunk_size):
            if not chunk:
                continue
            if first:
                first = False
                if policy.expect_zip and not chunk.startswith(ZIP_MAGIC[: len(chunk)]):
                    what = "an HTML page" if _looks_like_html(chunk) else "data that is not a zip archive"
                    raise NotAWheelError(
                        f"{shown} served {what} instead of a wheel (first bytes {chunk[:16]!r})",
                        hint="a login, error or captive-portal page; check the URL, the proxy and credentials",
                    )
            try:
                fh.write(chunk)
            except OSError as exc:
                raise _disk_error(exc, dest) from None
            st.hasher.update(chunk)
            st.have += len(chunk)
            if st.have > policy.max_file_bytes:
                _unlink(dest)
                st.reset()
                raise DownloadError(_too_large(shown, None, policy))
            watch.progress(len(chunk))
            if progress is not None:
                progress.update(st.have)
        try:
            fh.flush()
            os.fsync(fh.fileno())
        except OSError as exc:
            raise _disk_error(exc, dest) from None
    finally:
        try:
            fh.close()
        except OSError as exc:  # a close can report the delayed write error (NFS, quotas)
            raise _disk_error(exc, dest) from None
    if total is not None and st.have != total:
        if st.have > total:
            _unlink(dest)
            st.reset()
            raise Retryable(f"body longer than announced ({total} bytes); restarting")
        raise Retryable(f"body cut short: {st.have} of {total} bytes")
    if st.have == 0:
        raise Retryable("empty body")


def _too_large(shown: str, announced: int | None, policy: DownloadPolicy) -> str:
    what = f"announces {announced} bytes" if announced is not None else "sent more"
    return f"{shown} {what}: more than any wheel or sdist ({policy.max_file_bytes >> 20} MiB); not downloaded"


def _disk_error(exc: OSError, dest: Path) -> DiskError:
    _unlink(dest)
    return DiskError(
        f"cannot write {dest.name} in {dest.parent}: {exc.strerror or exc}",
        hint="free disk space in the cache directory (or point XDG_CACHE_HOME / --wheelhouse elsewhere)",
    )


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        pass


__all__ = [
    "TOKEN_HOSTS",
    "DiskError",
    "DownloadError",
    "DownloadPolicy",
    "DownloadResult",
    "NotAWheelError",
    "OfflineError",
    "Progress",
    "RefusedURL",
    "check_url",
    "download",
    "is_loopback",
    "open_own_file",
    "redact",
]
