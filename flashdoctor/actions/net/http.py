"""The one HTTP client of flashdoctor: every fetch (wheels, a PEP 503 mirror, the sdist, the publishers'
digests, the index builder's sources) goes through :class:`Http` and its :class:`HttpPolicy`.

Policy (README "Downloads"):
- https only; plain http for loopback hosts, or everywhere with ``allow_http`` (--allow-http). The host
  is the one the client connects to (flashdoctor.actions.net.urls). Every redirect hop is checked by the
  same rule before it is followed.
- GITHUB_TOKEN goes only to ``token_hosts`` (github.com, api.github.com) by that host, over https, never
  with a URL that carries its own credentials, never across a redirect to another host, never printed.
- Timeouts: connect, read (per socket read), a header deadline (the status line and headers complete
  within ``header_timeout`` seconds of the request: of each redirect hop's), a stall deadline (fewer than
  ``stall_min_bytes`` in ``stall_window`` seconds once the body flows) and an overall deadline for the whole
  fetch, retries included. A watchdog thread enforces the last three by shutting the socket down, so a
  server that sends a byte every 20 s (which no read timeout catches), headers or body, fails in bounded
  time, with the reason.
- Retries (bounded, exponential back-off, Retry-After honoured up to ``backoff_max``) for connection
  errors, timeouts, headers past their deadline, stalls, bodies cut short and HTTP 429/5xx. Never for other 4xx, TLS failures,
  redirect loops or policy refusals. A host name that does not resolve is answered at once (OfflineError,
  with the wheelhouse route in the hint): retrying DNS on an offline machine only wastes the user's time.
- Pages and JSON documents are read whole but bounded (``max_page_bytes``); the pages read inside
  :meth:`Http.budget` (a wheel source's listing) are bounded together too. A redirect's body is never
  read (its connection is closed).
- Proxies, .netrc and REQUESTS_CA_BUNDLE from the environment (requests' ``trust_env``); a CA bundle
  named there that does not exist, or a SOCKS proxy without PySocks, is a usage error (exit 2) before
  anything is sent. The deadlines hold through every kind of proxy (http://, https://, SOCKS).
  A mirror's own credentials (.netrc, user:password in the URL) follow a redirect only on the same host and
  port (or from http to https), as requests has them. Where both give some for a host, the URL's win, as
  pip has them (requests prefers .netrc's): the user who wrote them into --index-url meant them. As pip
  does, the URL's are remembered for its host and port and sent to later URLs there that carry none (a
  mirror's absolute links), before .netrc's (pip's order: the URL's own, the index URL's, .netrc's); over
  http to https, never the other way, never to another host or port, never on a redirect to one.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from flashdoctor import __version__
from flashdoctor.actions.net.errors import OFFLINE_HINT, DownloadError, OfflineError, TooLarge
from flashdoctor.actions.net.urls import (
    Target,
    check_url,
    parse,
    redact,
    redact_text,
    token_allowed,
    token_host,
)
from flashdoctor.errors import UsageError

# GITHUB_TOKEN goes to these hosts only (exact match). Release assets are served from
# github.com/<owner>/<repo>/releases/download/... and the API from api.github.com; both redirect
# downloads to short-lived signed URLs on *.githubusercontent.com that need no token.
TOKEN_HOSTS: frozenset[str] = frozenset({"github.com", "api.github.com"})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
T = TypeVar("T")


@dataclass(frozen=True)
class HttpPolicy:
    connect_timeout: float = 15.0
    read_timeout: float = 60.0  # one socket read
    header_timeout: float = 60.0  # the whole status line and headers, from the request
    retries: int = 4  # attempts after the first
    backoff: float = 1.0  # first wait in seconds; doubles each retry
    backoff_max: float = 20.0  # also the most a Retry-After is honoured
    max_redirects: int = 10
    allow_http: bool = False
    token_hosts: frozenset[str] = TOKEN_HOSTS
    stall_window: float = 30.0  # seconds ...
    stall_min_bytes: int = 32 * 1024  # ... in which at least this much must arrive once the body flows
    deadline: float = 3600.0  # a whole file download, retries included
    page_deadline: float = 120.0  # a page or JSON document, retries included
    max_page_bytes: int = 32 << 20


class Retryable(Exception):
    """An attempt that failed in a way another attempt may fix."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Page:
    """A whole (bounded) answer: a PEP 503/691 page, a JSON document."""

    url: str  # the final URL after redirects (unredacted: relative links resolve against it)
    status: int
    reason: str
    headers: CaseInsensitiveDict[str]
    body: bytes
    credentials: str | None = (
        None  # where the user:password sent for it came from (_Session.credentials_sent)
    )

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()

    @property
    def shown(self) -> str:
        return redact(self.url)

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        import json

        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            raise DownloadError(f"{self.shown}: the answer is not JSON") from None

    def links(self) -> dict[str, str]:
        """rel -> URL from a Link header (GitHub's pagination)."""
        out = {}
        for link in requests.utils.parse_header_links(self.headers.get("Link", "")):
            if link.get("rel") and link.get("url"):
                out[link["rel"]] = link["url"]
        return out


# -- the watchdog ----------------------------------------------------------------------------------
_ACTIVE = threading.local()


class Watch:
    """Enforces the overall, header and stall deadlines of one attempt by shutting its sockets down."""

    def __init__(self, deadline_s: float, window: float, min_bytes: int, header_s: float) -> None:
        self.t0 = time.monotonic()
        self.deadline_s = deadline_s
        self.header_s = header_s
        self.window = window
        self.min_bytes = min_bytes
        self.received = 0
        self.fired: str | None = None  # "deadline" | "headers" | "stall"
        self._request_t0 = self.t0  # the latest request (a redirect hop's) or connection
        self._body_t0: float | None = None
        self._samples: deque[tuple[float, int]] = deque()
        self._socks: list[socket.socket] = []
        self._dups: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flashdoctor-http-watch", daemon=True)

    def __enter__(self) -> Watch:
        _ACTIVE.watch = self
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        _ACTIVE.watch = None
        self._stop.set()
        self._thread.join(timeout=5)
        for d in self._dups:
            d.close()

    def add(self, conn_sock: object) -> None:
        sock = _base_socket(conn_sock)
        if sock is not None:
            with self._lock:
                if self.fired:
                    _shutdown(sock)
                self._socks.append(sock)

    def add_new(self, sock: socket.socket) -> None:
        """A connection's socket as soon as it exists, before a proxy's CONNECT answer and the TLS
        handshakes: a duplicate (wrapping in TLS detaches the object from its descriptor; shutting the
        duplicate down ends the connection), closed with the watch."""
        dup = socket.fromfd(sock.fileno(), sock.family, sock.type)
        self._dups.append(dup)
        self.add(dup)

    def request_started(self) -> None:
        self._request_t0 = time.monotonic()

    def body_started(self) -> None:
        self._body_t0 = time.monotonic()

    def progress(self, n: int) -> None:
        self.received += n

    def _run(self) -> None:
        tick = max(0.05, min(0.5, self.window / 5, self.header_s / 5))
        while not self._stop.wait(tick):
            now = time.monotonic()
            if now - self.t0 >= self.deadline_s:
                self._fire("deadline")
                return
            if self._body_t0 is None:
                if now - self._request_t0 >= self.header_s:
                    self._fire("headers")
                    return
                continue
            self._samples.append((now, self.received))
            if now - self._body_t0 < self.window:
                continue
            while len(self._samples) > 1 and self._samples[1][0] <= now - self.window:
                self._samples.popleft()
            if self.received - self._samples[0][1] < self.min_bytes:
                self._fire("stall")
                return

    def _fire(self, why: str) -> None:
        with self._lock:
            self.fired = why
            for s in self._socks:
                _shutdown(s)

    def error(self, shown: str) -> Exception:
        if self.fired == "deadline":
            return DownloadError(
                f"{shown}: no complete answer within {self.deadline_s:.0f} s (the overall deadline); "
                f"{self.received} bytes arrived in this attempt",
                hint="a very slow or stuck server or proxy; try again later, or use a mirror or --wheelhouse",
            )
        if self.fired == "headers":
            return Retryable(f"the server did not finish its response headers within {self.header_s:g} s")
        return Retryable(
            f"the server sent less than {self.min_bytes} bytes in {self.window:.0f} s (stalled; "
            f"{self.received} bytes in this attempt)"
        )


def _base_socket(sock: object) -> socket.socket | None:
    """The OS socket under a connection's ``sock``: through an https:// proxy urllib3 speaks TLS inside TLS
    with an SSLTransport, which is no socket and holds the one under it as ``.socket``."""
    for _ in range(4):
        if sock is None or isinstance(sock, socket.socket):
            return sock
        sock = getattr(sock, "socket", None)
    return None


class _QuietOnceCut(logging.Filter):
    """urllib3 logs "Failed to parse headers" with a traceback (printed by Python's last-resort handler)
    for the head of a response the watchdog cut short; the cut is reported as the deadline it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        w = getattr(_ACTIVE, "watch", None)
        return w is None or not w.fired


logging.getLogger("urllib3.connection").addFilter(_QuietOnceCut())


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the base method: an SSLSocket's would unwrap


def _register(sock: object) -> None:
    """A connection made or a request about to be sent: watched, and the header deadline starts again."""
    w = getattr(_ACTIVE, "watch", None)
    if w is not None:
        w.add(sock)
        w.request_started()


def _register_new(sock: socket.socket) -> socket.socket:
    w = getattr(_ACTIVE, "watch", None)
    if w is not None:
        w.add_new(sock)
    return sock


class _WatchedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _register_new(super()._new_conn())

    def connect(self) -> None:
        super().connect()
        _register(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _register(self.sock)  # a kept-alive connection: already connected
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _register_new(super()._new_conn())

    def connect(self) -> None:
        super().connect()
        _register(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _register(self.sock)
        super().request(*args, **kwargs)


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


@functools.cache
def _socks_pools() -> dict[str, type[HTTPConnectionPool]]:
    """urllib3's SOCKS connections (PySocks is there: Http._check_proxy saw to it), watched like the others.
    PySocks connects to the proxy and speaks SOCKS to it in one call (socks.create_connection), out of the
    watchdog's reach: a proxy answering a byte at a time held a fetch past every deadline. The same steps
    here, with the socket watched before it connects; failures raised as urllib3 raises them."""
    import socks  # type: ignore[import-untyped,unused-ignore]
    from urllib3.contrib.socks import SOCKSConnection
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

    class Plain(_WatchedHTTPConnection, SOCKSConnection):
        def _new_conn(self) -> socket.socket:
            o = self._socks_options
            proxy_host = (o["proxy_host"] or "").strip("[]")
            try:
                err: OSError = OSError("the proxy's address resolves to nothing")
                for family, kind, proto, _, _ in socket.getaddrinfo(
                    proxy_host, o["proxy_port"], 0, socket.SOCK_STREAM
                ):
                    sock = socks.socksocket(family, kind, proto)
                    try:
                        for opt in self.socket_options or ():
                            sock.setsockopt(*opt)
                        if isinstance(self.timeout, (int, float)):
                            sock.settimeout(self.timeout)
                        sock.set_proxy(
                            o["socks_version"],
                            proxy_host,
                            o["proxy_port"],
                            o["rdns"],
                            o["username"],
                            o["password"],
                        )
                        if self.source_address:
                            sock.bind(self.source_address)
                        _register_new(sock)
                        sock.connect((self.host.strip("[]"), self.port))
                        return sock  # type: ignore[no-any-return]
                    except OSError as e:  # socks.ProxyError is one
                        sock.close()
                        err = e
                raise err
            except OSError as e:
                cause = getattr(e, "socket_err", None) or e
                if isinstance(cause, TimeoutError):
                    raise ConnectTimeoutError(
                        self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
                    ) from e
                raise NewConnectionError(self, f"Failed to establish a new connection: {cause}") from e

    class Tls(Plain, HTTPSConnection):
        pass

    class PlainPool(HTTPConnectionPool):
        ConnectionCls = Plain

    class TlsPool(HTTPSConnectionPool):
        ConnectionCls = Tls

    return {"http": PlainPool, "https": TlsPool}


class _Adapter(HTTPAdapter):
    """requests' adapter with connections the watchdog can reach."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _socks_pools() if proxy.lower().startswith("socks") else _POOLS
        return manager


def _as_given(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """An ``auth`` that keeps the request's own Authorization header (requests adds .netrc's only without one)."""
    return request


class _Session(requests.Session):
    """requests' Session with the policy applied to every redirect hop."""

    def __init__(self, policy: HttpPolicy) -> None:
        super().__init__()
        self.policy = policy
        self.max_redirects = policy.max_redirects
        self.trust_env = True  # proxies, .netrc, REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE
        self._remembered: dict[str, tuple[str, str]] = {}  # scheme://host:port -> a URL's user:password
        adapter = _Adapter()
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        target = super().get_redirect_target(resp)
        if target:
            from urllib.parse import urljoin

            check_url(urljoin(resp.url, target), self.policy.allow_http)
            # requests reads a redirect's whole body into memory before it follows (no size bound, no
            # stall deadline): closed unread instead, so that a redirect with an endless body costs nothing.
            resp.raw.close()
        return target

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        # pip's order (network/auth.py, MultiDomainBasicAuth._get_new_credentials): the URL's own
        # user:password, then the index URL's (those last given on its host and port, or on http://host for
        # https://host: a mirror page's absolute link), then .netrc's. requests alone puts .netrc's first.
        asked = CaseInsensitiveDict(request.headers or {})
        if request.auth is None and self.auth is None and "Authorization" in asked:
            # a header given for this request (GITHUB_TOKEN's Bearer) is what goes: requests would add a
            # .netrc entry for the host over it
            request.auth = _as_given
        elif request.auth is None and self.auth is None and request.url:
            own = requests.utils.get_auth_from_url(request.url)
            if any(own):
                request.auth = own
                self._remembered.pop(_origin(request.url), None)  # the latest for an origin is last
                self._remembered[_origin(request.url)] = own
            else:
                request.auth = self._remembered_for(request.url)  # None: requests adds .netrc's
        return super().prepare_request(request)

    def credentials_sent(self, request: requests.PreparedRequest) -> str | None:
        """Where the user:password sent with ``request`` came from: "url" (its own), "index" (remembered
        from a URL given earlier on its host and port: the index URL's), "netrc", or None (none sent)."""
        auth = request.headers.get("Authorization")
        if not isinstance(auth, str) or not auth.startswith("Basic ") or not request.url:
            return None
        if any(requests.utils.get_auth_from_url(request.url)):
            return "url"
        remembered = self._remembered_for(request.url)
        if remembered is not None and auth == requests.auth._basic_auth_str(*remembered):
            return "index"
        return "netrc"

    def _remembered_for(self, url: str) -> tuple[str, str] | None:
        for origin, auth in reversed(self._remembered.items()):
            if not self.should_strip_auth(origin, url):  # type: ignore[no-untyped-call]
                return auth
        return None

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        # requests strips Authorization on a change of host, port or scheme (then adds .netrc's for the new
        # host): a mirror's own credentials follow a redirect on its host, and there .netrc's do not replace
        # the URL's (prepare_request). The bearer token has its own rule.
        before = prepared_request.headers.get("Authorization")
        super().rebuild_auth(prepared_request, response)  # type: ignore[no-untyped-call]
        strip = self.should_strip_auth(response.request.url, prepared_request.url)  # type: ignore[no-untyped-call]
        if before is not None and not strip:
            prepared_request.headers["Authorization"] = before
        auth = prepared_request.headers.get("Authorization")
        if prepared_request.url and isinstance(auth, str) and auth.startswith("Bearer "):
            try:
                keep = token_allowed(check_url(prepared_request.url, True), self.policy.token_hosts)
            except DownloadError:
                keep = False
            if not keep:
                prepared_request.headers.pop("Authorization", None)


@dataclass
class _Budget:
    """What the pages read under :meth:`Http.budget` may add up to."""

    limit: int
    what: str
    hint: str | None = None
    outer: _Budget | None = None  # the budget around this one: what is read here counts there too
    used: int = 0

    def spend(self, n: int, url: str) -> None:
        self.check(n, url)
        b: _Budget | None = self
        while b is not None:
            b.used += n
            b = b.outer

    def check(self, more: int, url: str) -> None:
        """TooLarge when ``more`` bytes on top of those read would pass this limit or one around it."""
        if self.used + more > self.limit:
            raise TooLarge(
                f"{self.what}: its pages add up to more than {_size(self.limit)} (at {redact(url)}); "
                "refusing to read more",
                hint=self.hint,
            )
        if self.outer is not None:
            self.outer.check(more, url)


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n} bytes"


def _origin(url: str) -> str:
    """scheme://host[:port] of ``url``, without its credentials: where they were given."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme.lower()}://{host}" + (f":{parts.port}" if parts.port else "")


# -- the client -------------------------------------------------------------------------------------
class Http:
    """One session, one policy. ``environ`` supplies GITHUB_TOKEN (passed in: tests decide what it holds)."""

    def __init__(
        self,
        policy: HttpPolicy | None = None,
        environ: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import os

        self.policy = policy or HttpPolicy()
        self.environ = os.environ if environ is None else environ
        self.sleep = sleep
        self._session: _Session | None = None
        self._budget: _Budget | None = None

    @contextlib.contextmanager
    def budget(self, limit: int, what: str, hint: str | None = None) -> Iterator[None]:
        """Bound the pages :meth:`get` reads inside this block to ``limit`` bytes in all (each is still
        bounded by ``max_page_bytes``), every attempt's bytes counted: past it, TooLarge names ``what``.
        Inside another such block, both bounds hold (a listing's pages count towards the whole refresh's)."""
        outer = self._budget
        self._budget = _Budget(limit, what, hint, outer)
        try:
            yield
        finally:
            self._budget = outer

    @property
    def session(self) -> _Session:
        if self._session is None:
            self._session = _Session(self.policy)
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> Http:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def token(self) -> str | None:
        tok = (self.environ.get("GITHUB_TOKEN") or "").strip()
        return tok or None

    def _check_environment(self, url: str, https: bool) -> None:
        """What the environment sets for ``url`` (proxies, CA bundle: requests' own reading of it, once),
        checked before anything is sent: the CA bundle (https only), then the proxy."""
        settings = self.session.merge_environment_settings(url, {}, None, None, None)
        if https:
            self._check_ca_bundle(settings["verify"])
        self._check_proxy(url, settings["proxies"])

    def _check_ca_bundle(self, verify: object) -> None:
        """UsageError when the environment names a CA bundle that is not there (requests raises a bare
        OSError for it, at every https request)."""
        import os

        if isinstance(verify, str) and not os.path.exists(verify):
            var = "REQUESTS_CA_BUNDLE" if os.environ.get("REQUESTS_CA_BUNDLE") else "CURL_CA_BUNDLE"
            raise UsageError(
                f"${var}={verify} names no file or directory: no https answer can be verified without it",
                hint="point it at the CA certificate (PEM) of your proxy or mirror, or unset it to use the "
                "bundled certificates",
            )

    def _check_proxy(self, url: str, proxies: Mapping[str, str]) -> None:
        """UsageError when the proxy the environment names for ``url`` is a SOCKS one and PySocks (which
        requests needs for it, and flashdoctor does not install) is missing: requests raises InvalidSchema
        at every fetch, which said nothing of the proxy."""
        import importlib.util
        import os

        proxy = requests.utils.select_proxy(url, proxies) or ""
        if not proxy.lower().startswith("socks") or importlib.util.find_spec("socks") is not None:
            return
        names = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
        var = next((f"${v}" for v in names if os.environ.get(v) == proxy), "the proxy setting")
        raise UsageError(
            f"{var}={redact(proxy)} names a SOCKS proxy: requests needs PySocks for it, and it is not "
            "installed where flashdoctor runs",
            hint="install it there (pip install 'requests[socks]'), name an HTTP proxy instead "
            "(HTTPS_PROXY=http://HOST:PORT), or exempt the host with NO_PROXY",
        )

    def redact(self, text: str) -> str:
        return redact_text(text, (self.token,))

    def headers_for(self, target: Target) -> dict[str, str]:
        h = {"User-Agent": f"flashdoctor/{__version__} (+requests {requests.__version__})"}
        if self.token and token_allowed(target, self.policy.token_hosts):
            h["Authorization"] = f"Bearer {self.token}"
        return h

    # -- one attempt, many attempts ----------------------------------------------------------------
    @contextlib.contextmanager
    def _attempt(
        self, target: Target, headers: Mapping[str, str], remaining: float, shown: str
    ) -> Iterator[tuple[requests.Response, Watch]]:
        p = self.policy
        with Watch(remaining, p.stall_window, p.stall_min_bytes, p.header_timeout) as watch:
            try:
                h = {**self.headers_for(target), **headers}
                timeout = (min(p.connect_timeout, remaining), p.read_timeout)
                with self.session.get(target.url, headers=h, stream=True, timeout=timeout) as resp:
                    watch.add(_response_socket(resp))
                    watch.body_started()
                    yield resp, watch
            except (
                Exception
            ):  # a Ctrl-C (KeyboardInterrupt) is the user's, never an attempt's failure to retry
                if watch.fired:
                    raise watch.error(shown) from None
                raise
            if watch.fired:
                raise watch.error(shown)

    def fetch(
        self,
        url: str,
        receive: Callable[[requests.Response, Watch], T],
        *,
        headers: Mapping[str, str] | Callable[[], Mapping[str, str]] = (lambda: {}),
        deadline: float | None = None,
        what: str = "download",
    ) -> tuple[T, int]:
        """GET ``url`` under the policy, handing each answer to ``receive`` (which may raise Retryable), with
        retries. Returns (what ``receive`` returned, attempts)."""
        p = self.policy
        target = check_url(url, p.allow_http)
        shown = redact(url)
        self._check_environment(target.url, target.scheme == "https")
        budget = p.deadline if deadline is None else deadline
        start = time.monotonic()
        attempts = 0
        last = ""
        while True:
            attempts += 1
            remaining = budget - (time.monotonic() - start)
            if remaining <= 0:
                raise DownloadError(
                    f"{what} of {shown} gave up: {budget:.0f} s (the overall deadline) passed after "
                    f"{attempts - 1} attempts; last: {last}",
                    hint="check the network or proxy (HTTPS_PROXY / NO_PROXY); offline machines can use --wheelhouse DIR",
                )
            retry_after: float | None = None
            try:
                h = headers() if callable(headers) else headers
                with self._attempt(target, h, remaining, shown) as (resp, watch):
                    return receive(resp, watch), attempts
            except Retryable as exc:
                last, retry_after = str(exc), exc.retry_after
            except requests.exceptions.ConnectionError as exc:
                if _name_not_resolved(exc):
                    via = " (through the proxy)" if isinstance(exc, requests.exceptions.ProxyError) else ""
                    raise OfflineError(
                        f"cannot reach {target.netloc}{via}: a host name does not resolve (offline, or DNS is down)",
                        hint=OFFLINE_HINT,
                    ) from None
                if isinstance(exc, requests.exceptions.SSLError):
                    raise _tls_error(exc, shown) from None
                last = describe(exc)
            except (requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                last = describe(exc)
            except requests.exceptions.TooManyRedirects:
                raise DownloadError(
                    f"{shown} redirects in a loop (more than {p.max_redirects} redirects)",
                    hint="the server or a proxy is misconfigured; try the URL in a browser or use a mirror",
                ) from None
            except requests.RequestException as exc:
                raise DownloadError(f"cannot fetch {shown}: {describe(exc)}") from None
            if attempts > p.retries:
                raise DownloadError(
                    f"{what} of {shown} failed after {attempts} attempts: {last}",
                    hint="check the network or proxy (HTTPS_PROXY / NO_PROXY); offline machines can use --wheelhouse DIR",
                )
            wait = min(p.backoff * (2 ** (attempts - 1)), p.backoff_max)
            if retry_after is not None:
                wait = min(max(wait, retry_after), p.backoff_max)
            self.sleep(max(0.0, min(wait, budget - (time.monotonic() - start))))

    def get(
        self,
        url: str,
        *,
        accept: str | None = None,
        headers: Mapping[str, str] | None = None,
        max_bytes: int | None = None,
    ) -> Page:
        """A whole page or document (bounded), retried per the policy. Every status but 429/5xx is handed
        back (the caller knows what a 404 means); the body of an error answer is bounded too."""
        limit = self.policy.max_page_bytes if max_bytes is None else max_bytes
        budget = self._budget
        h = dict(headers or {})
        if accept:
            h["Accept"] = accept

        def receive(resp: requests.Response, watch: Watch) -> Page:
            if resp.status_code in RETRY_STATUSES:
                raise Retryable(f"HTTP {resp.status_code} {resp.reason}", retry_after(resp))
            declared = resp.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > limit:
                raise TooLarge(
                    f"{redact(url)}: the answer is {int(declared)} bytes (at most {limit} accepted)"
                )
            if budget is not None and declared.isdigit():
                budget.check(int(declared), url)
            chunks, n = [], 0
            for chunk in resp.iter_content(chunk_size=1 << 16):
                n += len(chunk)
                watch.progress(len(chunk))
                if n > limit:
                    raise TooLarge(f"{redact(url)}: the answer is larger than {limit} bytes; refusing it")
                if budget is not None:
                    budget.spend(len(chunk), url)
                chunks.append(chunk)
            sent = self.session.credentials_sent(resp.request)
            return Page(resp.url, resp.status_code, resp.reason or "", resp.headers, b"".join(chunks), sent)

        page, _ = self.fetch(url, receive, headers=h, deadline=self.policy.page_deadline, what="request")
        return page


def raw_chunks(resp: requests.Response, chunk_size: int) -> Iterator[bytes]:
    """The body as the server sent it, Content-Encoding not undone (``iter_content`` inflates gzip even
    where identity was asked): a file's bytes, length and digest are the ones on the wire, as pip stores
    them, and a small gzip stream cannot fill the disk. Failures are raised as requests raises them."""
    from urllib3.exceptions import ProtocolError, ReadTimeoutError
    from urllib3.exceptions import SSLError as Urllib3SSLError

    try:
        yield from resp.raw.stream(chunk_size, decode_content=False)
    except ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from None
    except ReadTimeoutError as exc:
        raise requests.exceptions.ConnectionError(exc) from None
    except Urllib3SSLError as exc:
        raise requests.exceptions.SSLError(exc) from None


def _response_socket(resp: requests.Response) -> object:
    conn = getattr(resp.raw, "connection", None) or getattr(resp.raw, "_connection", None)
    return getattr(conn, "sock", None)


def retry_after(resp: requests.Response) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), or None."""
    val = (resp.headers.get("Retry-After") or "").strip()
    if not val:
        return None
    if val.isdigit():
        return float(val)
    with contextlib.suppress(TypeError, ValueError, IndexError):
        when = email.utils.parsedate_to_datetime(val)
        import datetime

        return max(0.0, (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds())
    return None


def _name_not_resolved(exc: BaseException) -> bool:
    from urllib3.exceptions import NameResolutionError

    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, (NameResolutionError, socket.gaierror)):
            return True
        stack.extend([getattr(e, "reason", None), e.__cause__, e.__context__, *getattr(e, "args", ())])
        stack = [x for x in stack if isinstance(x, BaseException)]
    return False


def credentials_hint(url: str, token_hosts: frozenset[str], sent: str | None = None) -> str:
    """What to do about a 401/403 from ``url`` (as shown: credentials as ***): GitHub takes GITHUB_TOKEN, a
    mirror its own credentials; ones that were sent (the URL's, ``sent``: see _Session.credentials_sent)
    were refused."""
    try:
        t = parse(url)
    except DownloadError:
        return "the server wants credentials (in the URL, or a ~/.netrc entry for its host)"
    check = "check the user name and password (percent-encode '@', ':' and '/' in them)"
    if t.userinfo:
        return f"the server refused the credentials given in the URL: {check}, or the ~/.netrc entry for {t.host}"
    if sent == "index":
        return (
            f"the server refused the credentials remembered from the index URL for {t.netloc} (sent, as pip "
            f"sends them, to the index's host and port; never printed): {check} in --index-url"
        )
    if sent == "netrc":
        return f"the server refused the credentials of the ~/.netrc entry for {t.host}: check that entry"
    if token_host(t, token_hosts):
        return "the server wants credentials; for GitHub set GITHUB_TOKEN (it is never printed)"
    return (
        f"the server wants credentials: give them in the URL ({t.scheme}://USER:PASSWORD@{t.netloc}/...: they "
        f"go to that host and port only, and are never printed) or in a ~/.netrc entry for {t.host}"
    )


def _tls_error(exc: Exception, shown: str) -> DownloadError:
    return DownloadError(
        f"TLS failure for {shown}: {describe(exc)}",
        hint="behind a TLS-inspecting proxy, point REQUESTS_CA_BUNDLE at its CA certificate",
    )


def describe(exc: BaseException) -> str:
    """One line naming the failure, without URLs (they may carry secrets) or nested reprs."""
    if isinstance(exc, Retryable):
        return str(exc)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "the server stopped sending (read timeout)"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the connection broke mid-body"
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "certificate verify failed (the server's certificate is not trusted here)"
    if "Read timed out" in text:
        return "the server stopped sending (read timeout)"
    if "Connection refused" in text:
        return "connection refused"
    if "RemoteDisconnected" in text or "Connection aborted" in text or "Connection reset" in text:
        return "the server closed the connection"
    if "IncompleteRead" in text or "Connection broken" in text:
        return "the connection broke mid-body"
    return type(exc).__name__


__all__ = [
    "RETRY_STATUSES",
    "TOKEN_HOSTS",
    "Http",
    "HttpPolicy",
    "Page",
    "Retryable",
    "Watch",
    "credentials_hint",
    "describe",
    "raw_chunks",
    "retry_after",
]
