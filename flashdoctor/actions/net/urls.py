"""URLs as the HTTP client will use them: which host it connects to, whether the policy allows it, and
the one redactor for everything that is written or printed.

The host is decided by the parser requests itself uses (``PreparedRequest.prepare_url``, i.e. urllib3's
``parse_url``), never by ``urllib.parse`` alone: the two disagree on URLs such as
``https://127.0.0.1:8443\\@github.com/x.whl`` (urlsplit reads github.com; requests rewrites the backslash
and connects to 127.0.0.1). A URL on which they disagree, or that carries characters whose reading
depends on the parser (backslashes, control characters, white space, two '@'), is refused outright.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from flashdoctor.actions.net.errors import RefusedURL

MAX_URL = 8192
_AMBIGUOUS = re.compile(r"[\x00-\x20\x7f\\]")
_SECRETISH = ("token", "sig", "signature", "key", "auth", "credential", "password", "secret")
# user:password@ (or a bare token@) right after a scheme, anywhere in free text
_USERINFO_IN_TEXT = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@'\"<>]+@")
_SECRET_QUERY_IN_TEXT = re.compile(
    r"(?i)([?&][^=&\s#'\"]*(?:" + "|".join(_SECRETISH) + r")[^=&\s#'\"]*=)[^&\s#'\"]+"
)


@dataclass(frozen=True)
class Target:
    """Where a request for ``url`` goes, as requests will send it."""

    url: str  # the URL requests sends (normalised)
    scheme: str
    host: str  # lower case; an IPv6 address without brackets
    port: int | None
    userinfo: bool  # the URL carries user[:password]@ (requests turns it into Basic auth)

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.port else host


def _describe_char(ch: str) -> str:
    if ch == "\\":
        return "a backslash"
    if ch == " ":
        return "a space"
    return f"the control character {ch!r}"


def parse(url: str) -> Target:
    """The request target of ``url``, or RefusedURL when it is not one URL to every parser."""
    if not isinstance(url, str) or not url:
        raise RefusedURL("empty URL")
    if len(url) > MAX_URL:
        raise RefusedURL(f"a URL of {len(url)} characters (at most {MAX_URL})")
    try:
        prepared = requests.PreparedRequest()
        prepared.prepare_url(url, None)
        p = parse_url(prepared.url or "")
    except (requests.RequestException, LocationParseError, ValueError, UnicodeError):
        raise RefusedURL(f"not a valid URL: {redact(url)}") from None
    host = (p.host or "").lower().strip("[]")
    target = Target(prepared.url or url, (p.scheme or "").lower(), host, p.port, bool(p.auth))
    bad = _AMBIGUOUS.search(url)
    if bad:
        raise RefusedURL(
            f"refusing a URL with {_describe_char(bad.group())} in it (it would go to {target.netloc or 'no host'}): "
            f"{redact(url)}",
            hint="URLs with such characters are read differently by different parsers; write the URL plainly",
        )
    try:
        s = urlsplit(url)
        s_host, s_port = (s.hostname or ""), s.port
    except ValueError:
        raise RefusedURL(f"not a valid URL: {redact(url)}") from None
    if not s_host.isascii():
        try:
            s_host = s_host.encode("idna").decode("ascii")
        except UnicodeError:
            raise RefusedURL(f"not a valid host name in {redact(url)}") from None
    if s.netloc.count("@") > 1:
        raise RefusedURL(
            f"refusing {redact(url)}: two '@' in the host part (it would go to {target.netloc})",
            hint="percent-encode an '@' in a user name or password (%40)",
        )
    if (s_host.lower(), s_port, s.scheme.lower()) != (host, p.port, target.scheme):
        raise RefusedURL(
            f"refusing {redact(url)}: it reads as host {s_host or '(none)'} but the HTTP client would connect "
            f"to {target.netloc or '(no host)'}",
            hint="write the URL plainly (no '@' or '\\\\' tricks in the host part)",
        )
    return target


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    h = host.lower().strip("[]").rstrip(".")
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def check_url(url: str, allow_http: bool) -> Target:
    """The target of ``url`` when the policy lets it be fetched; RefusedURL otherwise.

    https everywhere; plain http for loopback hosts, or everywhere with ``allow_http`` (--allow-http)."""
    t = parse(url)
    if t.scheme == "https":
        if not t.host:
            raise RefusedURL(f"URL has no host: {redact(url)}")
        return t
    if t.scheme == "http":
        if allow_http or is_loopback(t.host):
            return t
        raise RefusedURL(
            f"refusing plain http for {redact(url)} (host {t.netloc}): flashdoctor fetches over https only",
            hint="use an https URL, or pass --allow-http if this is a trusted mirror on your own network",
        )
    raise RefusedURL(f"unsupported URL scheme {t.scheme!r} in {redact(url)} (https expected)")


def token_allowed(target: Target, token_hosts: Iterable[str]) -> bool:
    """Whether a bearer token may go with a request to ``target``: its host (as the client connects) is
    one of ``token_hosts`` ("host" or "host:port"), over https (or loopback, for tests), and the URL does
    not carry credentials of its own."""
    if target.userinfo or not (target.scheme == "https" or is_loopback(target.host)):
        return False
    return token_host(target, token_hosts)


def token_host(target: Target, token_hosts: Iterable[str]) -> bool:
    """Whether ``target``'s host is one of ``token_hosts`` ("host", or "host:port" for that port only)."""
    hosts = set(token_hosts)
    return target.host in hosts or (target.port is not None and f"{target.host}:{target.port}" in hosts)


def host_entry(url: str) -> str:
    """A ``token_hosts`` entry for the host (and port, when the URL names one) of ``url``."""
    t = parse(url)
    return f"{t.host}:{t.port}" if t.port else t.host


# -- the redactor ------------------------------------------------------------------------------------
def redact(url: str, *, drop_userinfo: bool = False) -> str:
    """A URL fit for messages, logs and records: credentials replaced by *** (left out entirely with
    ``drop_userinfo``, for a URL another client such as pip will fetch: it finds them in netrc or a keyring),
    secret-looking query values by REDACTED, no fragment. The host shown is the one the HTTP client would
    connect to."""
    try:
        prepared = requests.PreparedRequest()
        prepared.prepare_url(url, None)
        shown = prepared.url or url
    except (requests.RequestException, LocationParseError, ValueError, UnicodeError, TypeError):
        shown = url
    try:
        parts = urlsplit(shown)
        host = parts.hostname or ""
        port = parts.port
        # an empty port is kept as written (requests drops it): `https://a=https://b`, an example of
        # --mirror PUBLIC=URL, is read as one URL whose host is `a=https`
        empty_port = urlsplit(url).netloc.endswith(":")
    except (ValueError, TypeError):
        return redact_text(str(url))[:200] if isinstance(url, str) else "<unparsable URL>"
    netloc = f"[{host}]" if ":" in host else host
    if port:
        netloc += f":{port}"
    elif empty_port:
        netloc += ":"
    if "@" in parts.netloc and not drop_userinfo:
        netloc = "***@" + netloc
    query = parts.query
    if query:
        pairs = [
            (k, "REDACTED" if any(s in k.lower() for s in _SECRETISH) else v)
            for k, v in parse_qsl(query, keep_blank_values=True)
        ]
        query = urlencode(pairs)
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Free text (a command line, a log, a traceback) with URL credentials, secret-looking query values
    and the given secrets (a token's value) replaced."""
    out = _USERINFO_IN_TEXT.sub(r"\1***@", text)
    out = _SECRET_QUERY_IN_TEXT.sub(r"\1REDACTED", out)
    for s in secrets:
        if s and len(s) >= 4:
            out = out.replace(s, "***")
    return out
