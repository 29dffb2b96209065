"""Download one file over HTTP(S): streamed, bounded retries, resume, and a URL policy.

Policy (README "Downloads"):
- https only; plain http for loopback hosts, or everywhere with ``allow_http`` (``--allow-http``).
  Every redirect hop is checked too, before it is followed.
- Connect and read timeouts; a stalled server is a read timeout.
- Retries (bounded, exponential back-off, Retry-After honoured up to the cap) for connection errors,
  timeouts, bodies cut short and HTTP 5xx / 429. Never for other 4xx, TLS failures, redirect loops,
  a body that is not a wheel, or a full disk.
- Resume with ``Range: bytes=N-`` after a cut: a 206 with the right Content-Range appends; anything else
  (200, 416, a wrong range) restarts from zero, so a server without range support costs time, not
  correctness. The final sha256 check catches what slips through.
- Proxies, .netrc and REQUESTS_CA_BUNDLE from the environment (requests' ``trust_env``).
- GITHUB_TOKEN is sent only to the hosts in ``TOKEN_HOSTS`` (github.com and api.github.com), only
  over https (or loopback, for tests), never across a redirect to another host (release assets redirect
  to signed storage URLs that must not get it), and never printed: messages show redacted URLs only.

This module knows nothing of caches or wheels beyond sniffing that a body is a zip archive; the cache
(flashdoctor.actions.cache) decides where bytes go.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import requests

from flashdoctor import __version__
from flashdoctor.errors import NetworkError

# GITHUB_TOKEN goes to these hosts only (exact match). Release assets are served from
# github.com/<owner>/<repo>/releases/download/... and api.github.com/repos/.../releases/assets/<id>;
# both redirect to short-lived signed URLs on *.githubusercontent.com that need no token (and some
# storage backends reject a request carrying two kinds of credentials), so the token stops there.
TOKEN_HOSTS: frozenset[str] = frozenset({"github.com", "api.github.com"})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
ZIP_MAGIC = b"PK\x03\x04"


class DownloadError(NetworkError):
    """A download that failed for good (after retries, or at once when retrying cannot help)."""


class DiskError(DownloadError):
    """The bytes could not be written (disk full, file size limit, permissions)."""


class NotAWheelError(DownloadError):
    """The server answered with something that is not a zip archive (typically an HTML page)."""


@dataclass(frozen=True)
class DownloadPolicy:
    connect_timeout: float = 15.0
    read_timeout: float = 60.0
    retries: int = 4  # attempts after the first
    backoff: float = 1.0  # first wait in seconds; doubles each retry
    backoff_max: float = 20.0
    max_redirects: int = 10
    allow_http: bool = False
    token_hosts: frozenset[str] = TOKEN_HOSTS
    chunk_size: int = 1 << 16
    expect_zip: bool = True  # fail fast when the body does not start like a zip archive


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


# -- URL policy ---------------------------------------------------------------------------------
def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def redact(url: str) -> str:
    """A URL fit for messages and logs: no user:password, no secret-looking query values."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    query = parts.query
    if query:
        secretish = ("token", "sig", "signature", "key", "auth", "credential", "password", "secret")
        pairs = [
            (k, "REDACTED" if any(s in k.lower() for s in secretish) else v)
            for k, v in parse_qsl(query, keep_blank_values=True)
        ]
        query = urlencode(pairs)
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def check_url(url: str, allow_http: bool) -> None:
    """Raise DownloadError unless the URL may be fetched under the policy."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise DownloadError(f"not a URL: {redact(url)}") from None
    if parts.scheme == "https":
        if not parts.hostname:
            raise DownloadError(f"URL has no host: {redact(url)}")
        return
    if parts.scheme == "http":
        if allow_http or is_loopback(parts.hostname):
            return
        raise DownloadError(
            f"refusing plain http for {redact(url)}: wheels are only fetched over https",
            hint="use an https URL, or pass --allow-http if this is a trusted mirror on your own network",
        )
    raise DownloadError(f"unsupported URL scheme {parts.scheme!r} in {redact(url)} (https expected)")


def _wants_token(url: str, token_hosts: frozenset[str]) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return host in token_hosts and (parts.scheme == "https" or is_loopback(host))


class _Session(requests.Session):
    """requests' Session with the policy applied to every redirect hop."""

    def __init__(self, policy: DownloadPolicy) -> None:
        super().__init__()
        self.policy = policy
        self.max_redirects = policy.max_redirects
        self.trust_env = True  # proxies, .netrc, REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        target = super().get_redirect_target(resp)
        if target:
            check_url(urljoin(resp.url, target), self.policy.allow_http)
        return target

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        super().rebuild_auth(prepared_request, response)  # type: ignore[no-untyped-call]  # strips Authorization on a host change
        if prepared_request.url and not _wants_token(prepared_request.url, self.policy.token_hosts):
            prepared_request.headers.pop("Authorization", None)


class _State:
    """What has been written to ``dest`` so far (survives an exception in the middle of a body)."""

    def __init__(self) -> None:
        self.have = 0
        self.hasher = hashlib.sha256()
        self.resumed = False

    def reset(self) -> None:
        self.have = 0
        self.hasher = hashlib.sha256()


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after(resp: requests.Response) -> float | None:
    val = resp.headers.get("Retry-After")
    if val and val.strip().isdigit():
        return float(val.strip())
    return None


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


def _looks_like_html(head: bytes) -> bool:
    h = head.lstrip()[:64].lower()
    return (
        h.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body")) or b"<html" in head[:512].lower()
    )


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
) -> DownloadResult:
    """Fetch ``url`` into ``dest`` (a temporary path chosen by the caller), resuming a partial ``dest``
    that is already there when ``validators`` (ETag / Last-Modified of that earlier answer) are given.

    On failure ``dest`` is removed and DownloadError raised. ``on_validators`` is called with the
    server's ETag / Last-Modified as soon as they are known, so a caller can persist them for a resume
    by a later process (this one may be killed).
    """
    policy = policy or DownloadPolicy()
    environ = os.environ if environ is None else environ
    check_url(url, policy.allow_http)
    shown = redact(url)
    name = name or Path(urlsplit(url).path).name or "download"
    headers = {
        "User-Agent": f"flashdoctor/{__version__} (+requests {requests.__version__})",
        "Accept-Encoding": "identity",  # byte offsets and Content-Length must mean file bytes
    }
    token = environ.get("GITHUB_TOKEN")
    if token and _wants_token(url, policy.token_hosts):
        headers["Authorization"] = f"Bearer {token}"
    if validators is None:
        validators = {}
    st = _State()
    if dest.exists():
        if validators.get("etag") or validators.get("last-modified"):
            st.have = _hash_existing(dest, st.hasher)
        else:
            dest.unlink()
    attempts = 0
    last_error = ""
    session = _Session(policy)
    try:
        while True:
            attempts += 1
            try:
                h = dict(headers)
                if st.have:
                    h["Range"] = f"bytes={st.have}-"
                    if validators.get("etag") or validators.get("last-modified"):
                        h["If-Range"] = validators.get("etag") or validators["last-modified"]
                with session.get(
                    url, headers=h, stream=True, timeout=(policy.connect_timeout, policy.read_timeout)
                ) as resp:
                    _receive(resp, dest, st, policy, shown, validators, progress, name, on_validators)
                    final_url = redact(resp.url)
                return DownloadResult(dest, st.have, st.hasher.hexdigest(), attempts, st.resumed, final_url)
            except (
                requests.exceptions.SSLError,
                requests.exceptions.TooManyRedirects,
                requests.exceptions.InvalidURL,
            ) as exc:
                raise _fatal(exc, shown) from None
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
                _Retryable,
            ) as exc:
                last_error = _describe(exc)
                retry_after = exc.retry_after if isinstance(exc, _Retryable) else None
            if attempts > policy.retries:
                raise DownloadError(
                    f"download of {shown} failed after {attempts} attempts: {last_error}",
                    hint="check the network or proxy (HTTPS_PROXY / NO_PROXY); offline machines can use --wheelhouse DIR",
                )
            wait = min(policy.backoff * (2 ** (attempts - 1)), policy.backoff_max)
            if retry_after is not None:
                wait = min(max(wait, retry_after), policy.backoff_max)
            sleep(wait)
    except BaseException:
        _unlink(dest)
        raise
    finally:
        session.close()
        if progress is not None:
            progress.stop()


def _hash_existing(path: Path, hasher: Any) -> int:
    n = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            hasher.update(block)
            n += len(block)
    return n


def _receive(
    resp: requests.Response,
    dest: Path,
    st: _State,
    policy: DownloadPolicy,
    shown: str,
    validators: dict[str, str],
    progress: Progress | None,
    name: str,
    on_validators: Callable[[dict[str, str]], None] | None = None,
) -> None:
    status = resp.status_code
    if status in RETRY_STATUSES:
        raise _Retryable(f"HTTP {status} {resp.reason}", _retry_after(resp))
    if status == 416 and st.have:
        # Our range is past the end: the file changed or our partial is bogus. Start again.
        _unlink(dest)
        st.reset()
        raise _Retryable("HTTP 416 for a resumed download; restarting from zero", 0.0)
    if status >= 400:
        hint = None
        if status == 404:
            hint = "the file is gone from the server or the index is stale; try another --index-url or a --wheelhouse"
        elif status in (401, 403):
            hint = "the server wants credentials; for GitHub set GITHUB_TOKEN (it is never printed)"
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
            raise _Retryable(
                f"server answered a resume at byte {at} with range {resp.headers.get('Content-Range')!r}", 0.0
            )
        total = cr[1]
        mode = "ab"
        st.resumed = True
    else:
        if status == 206:  # a range we never asked for
            raise DownloadError(f"server sent a partial answer (206) to a plain request for {shown}")
        st.reset()  # a 200: the whole file again (Range unsupported, or If-Range said it changed)
        cl = resp.headers.get("Content-Length")
        total = int(cl) if cl and cl.isdigit() else None
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
        fh: IO[bytes] = open(dest, mode)  # noqa: SIM115 - closed below, errors need the path
    except OSError as exc:
        raise _disk_error(exc, dest) from None
    try:
        for chunk in resp.iter_content(chunk_size=policy.chunk_size):
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
            raise _Retryable(f"body longer than announced ({total} bytes); restarting")
        raise _Retryable(f"body cut short: {st.have} of {total} bytes")
    if st.have == 0:
        raise _Retryable("empty body")


def _disk_error(exc: OSError, dest: Path) -> DiskError:
    _unlink(dest)
    return DiskError(
        f"cannot write {dest.name} in {dest.parent}: {exc.strerror or exc}",
        hint="free disk space in the cache directory (or point XDG_CACHE_HOME / --wheelhouse elsewhere)",
    )


def _fatal(exc: Exception, shown: str) -> DownloadError:
    if isinstance(exc, requests.exceptions.TooManyRedirects):
        return DownloadError(
            f"{shown} redirects in a loop (more than the limit of redirects)",
            hint="the server or a proxy is misconfigured; try the URL in a browser or use a mirror",
        )
    if isinstance(exc, requests.exceptions.SSLError):
        return DownloadError(
            f"TLS failure for {shown}: {_describe(exc)}",
            hint="behind a TLS-inspecting proxy, point REQUESTS_CA_BUNDLE at its CA certificate",
        )
    return DownloadError(f"cannot fetch {shown}: {_describe(exc)}")


def _describe(exc: BaseException) -> str:
    """One line naming the failure, without URLs (they may carry secrets) or nested reprs."""
    if isinstance(exc, _Retryable):
        return str(exc)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "the server stopped sending (read timeout)"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the connection broke mid-body"
    text = str(exc)
    if "Read timed out" in text:
        return "the server stopped sending (read timeout)"
    if "Connection refused" in text:
        return "connection refused"
    if "RemoteDisconnected" in text or "Connection aborted" in text or "Connection reset" in text:
        return "the server closed the connection"
    if "IncompleteRead" in text or "Connection broken" in text:
        return "the connection broke mid-body"
    if "Name or service not known" in text or "Failed to resolve" in text or "NameResolutionError" in text:
        return "host name could not be resolved (offline?)"
    return type(exc).__name__


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        pass
