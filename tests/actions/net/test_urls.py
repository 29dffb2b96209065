"""URLs as the HTTP client sends them (issue 15 rows 1 and 6): the host decided by requests' own parser,
confusable URLs refused with the real host named, tokens scoped by that host, one redactor."""

from __future__ import annotations

import pytest

from flashdoctor.actions.net.errors import RefusedURL
from flashdoctor.actions.net.http import TOKEN_HOSTS
from flashdoctor.actions.net.urls import check_url, parse, redact, redact_text, token_allowed


@pytest.mark.parametrize(
    ("url", "real"),
    [
        ("https://127.0.0.1:8443\\@github.com/w/x.whl", "127.0.0.1:8443"),  # requests rewrites the backslash
        ("https://github.com\\.evil.example/x.whl", "github.com"),
        ("https://evil.example\\@github.com/x.whl", "evil.example"),
    ],
)
def test_backslash_urls_are_refused_naming_the_host_they_would_reach(url: str, real: str) -> None:
    with pytest.raises(RefusedURL) as exc:
        check_url(url, allow_http=False)
    assert f"it would go to {real}" in exc.value.message and "backslash" in exc.value.message


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/x\x00.whl",
        "https://github.com/x\r\nX-Injected: 1",
        "https://github.com\t.evil/x",
        "https://a@b@github.com/x.whl",  # two '@': which one ends the userinfo depends on the parser
    ],
)
def test_ambiguous_urls_are_refused(url: str) -> None:
    with pytest.raises(RefusedURL):
        check_url(url, allow_http=False)


def test_the_host_is_the_one_the_client_connects_to() -> None:
    assert parse("https://github.com@127.0.0.1:9/x.whl").host == "127.0.0.1"
    assert parse("https://GitHub.com/x").host == "github.com"
    assert parse("https://[::1]:9/x").host == "::1" and parse("https://[::1]:9/x").netloc == "[::1]:9"
    assert parse("https://gitħub.com/x").host.startswith("xn--")  # IDNA, as requests sends it


def test_tokens_go_to_github_hosts_only_by_the_real_host() -> None:
    def ok(url: str, hosts: frozenset[str] = TOKEN_HOSTS) -> bool:
        return token_allowed(parse(url), hosts)

    assert ok("https://github.com/o/r/releases/download/v1/x.whl") and ok("https://api.github.com/repos")
    assert not ok("https://github.com@127.0.0.1/x.whl")  # userinfo names github; the host does not
    assert not ok("https://user:pw@github.com/x.whl")  # a URL with its own credentials
    assert not ok("http://github.com/x.whl")  # never over plain http
    assert not ok("https://objects.githubusercontent.com/x")  # the storage a release redirects to
    assert not ok("https://github.com.evil.example/x") and not ok("https://evilgithub.com/x")
    assert ok("http://127.0.0.1:8080/x", frozenset({"127.0.0.1:8080"}))  # host:port entries (tests)
    assert not ok("http://127.0.0.1:8081/x", frozenset({"127.0.0.1:8080"}))


def test_plain_http_only_for_loopback_or_when_allowed() -> None:
    for url in ("http://127.0.0.1:1/x", "http://localhost/x", "http://[::1]/x", "http://a.localhost/x"):
        check_url(url, allow_http=False)
    with pytest.raises(RefusedURL, match=r"refusing plain http .* \(host mirror.corp\)") as exc:
        check_url("http://mirror.corp/simple", allow_http=False)
    assert "--allow-http" in (exc.value.hint or "")
    check_url("http://mirror.corp/simple", allow_http=True)
    for bad in ("ftp://x/y.whl", "file:///etc/passwd", "https:///nohost", "", "x" * 9000):
        with pytest.raises(RefusedURL):
            check_url(bad, allow_http=True)


def test_one_redactor_for_urls_and_free_text() -> None:
    assert redact("https://user:SECRET@host.example/simple?token=t&x=1#sha256=00") == (
        "https://***@host.example/simple?token=REDACTED&x=1"
    )
    assert redact("https://127.0.0.1:8443\\@github.com/x.whl").startswith("https://127.0.0.1:8443/")
    # nothing secret, nothing dropped: an empty port's colon stays (it printed https://a=https//b)
    assert redact("https://pypi.org=https://pypi.example") == "https://pypi.org=https://pypi.example"
    text = (
        "pip install --index-url https://user:SECRET@m.example/simple x; https://h/a?X-Amz-Signature=abc&y=2"
    )
    out = redact_text(text + " ghp_TOKEN123", secrets=["ghp_TOKEN123", None, ""])
    assert "SECRET" not in out and "abc" not in out and "ghp_TOKEN123" not in out
    assert "https://***@m.example/simple" in out and "X-Amz-Signature=REDACTED&y=2" in out


@pytest.mark.parametrize(
    ("url", "wanted", "unwanted"),
    [
        # an IPv6 mirror: an unbracketed host in the example URL, and without a port ".netrc entry for :"
        (
            "https://[::1]:8443/simple/",
            ("https://USER:PASSWORD@[::1]:8443/", "~/.netrc entry for ::1"),
            ("@::1",),
        ),
        ("https://[::1]/simple/", ("https://USER:PASSWORD@[::1]/", "~/.netrc entry for ::1"), ("@::1",)),
        # a plain http mirror (--allow-http): the example URL said https://
        (
            "http://mirror.lan:8080/simple/",
            ("http://USER:PASSWORD@mirror.lan:8080/", "entry for mirror.lan"),
            (),
        ),
        # the URL already carried credentials (shown ***:***@): "give them in the URL" said nothing useful
        (
            "https://***:***@mirror.lan/simple/",
            ("refused the credentials given", "~/.netrc entry for mirror.lan"),
            ("give them in the URL",),
        ),
        ("https://github.com/x/y.whl", ("GITHUB_TOKEN",), ("USER:PASSWORD",)),
        ("https://127.0.0.1:9443/x.whl", ("GITHUB_TOKEN",), ()),  # a "host:port" entry
        ("https://127.0.0.1:9444/x.whl", ("USER:PASSWORD@127.0.0.1:9444",), ("GITHUB_TOKEN",)),
    ],
)
def test_credentials_hint_names_the_mirror_as_it_was_reached(
    url: str, wanted: tuple[str, ...], unwanted: tuple[str, ...]
) -> None:
    from flashdoctor.actions.net.http import credentials_hint

    hint = credentials_hint(url, frozenset({"github.com", "127.0.0.1:9443"}))
    assert all(w in hint for w in wanted), hint
    assert not any(u in hint for u in unwanted), hint
