"""A mirror's credentials (user:password in --index-url) on the links of its own pages.

Nexus, Artifactory and devpi link their wheels with absolute URLs that carry no userinfo
(``https://mirror.example/repository/pypi/packages/.../x.whl``). pip remembers the credentials it used on a
host and port and sends them to later URLs there; flashdoctor sent them only where the URL carried them,
so the wheel download answered 401. They go to the same host and port now (http to https too), never to
another host or port, never across a redirect to another host, and are never written."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from flashdoctor.actions.cache import WheelCache
from flashdoctor.actions.fetch import Artifact, FetchOptions, obtain
from flashdoctor.actions.net.download import DownloadError, DownloadPolicy
from flashdoctor.actions.net.http import Http, HttpPolicy
from flashdoctor.actions.net.pep503 import NotAnIndexPage, read_page
from flashdoctor.model.plan import WheelRef
from tests.support.install_helpers import make_wheel, sha256_of
from tests.support.loopback import Response, Server, serve

pytestmark = pytest.mark.system

SECRET = "s3cr3t-MIRROR-41"
BASIC = "Basic " + base64.b64encode(f"u:{SECRET}".encode()).decode()
FAST = DownloadPolicy(connect_timeout=2, read_timeout=2, retries=0, backoff=0.01, backoff_max=0.05)


def with_userinfo(base: str) -> str:
    return base.replace("http://", f"http://u:{SECRET}@")


def obtain_by_an_absolute_link(mirror: Server, tmp_path: Path) -> Artifact:
    """A wheel obtained through the mirror as index (--index-url with u:SECRET, the only credentials it
    takes), its page linking it by an absolute URL on the mirror's host that carries no userinfo (Nexus,
    Artifactory, devpi); both requests checked to have carried them."""
    wheel = make_wheel(tmp_path / "w")
    mirror.require(BASIC)
    mirror.route(f"/packages/ab/{wheel.name}", Response(200, wheel.read_bytes()))
    link = f"{mirror.base}/packages/ab/{wheel.name}#sha256={sha256_of(wheel)}"
    mirror.route("/simple/flash-attn/", Response(200, f'<a href="{link}">{wheel.name}</a>'))
    ref = WheelRef(
        wheel.name, "https://github.com/x/y/releases/download/v1/" + wheel.name, None, "official", "1"
    )
    opts = FetchOptions(WheelCache(tmp_path / "c"), FAST, index_url=with_userinfo(mirror.base) + "/simple")
    art = obtain(ref, opts, {}, "flash-attn")
    assert art.sha256 == sha256_of(wheel)
    assert [(r.path, r.headers.get("Authorization")) for r in mirror.requests] == [
        ("/simple/flash-attn/", BASIC),
        (f"/packages/ab/{wheel.name}", BASIC),
    ]
    return art


def test_an_absolute_link_on_the_mirrors_host_gets_its_credentials(mirror: Server, tmp_path: Path) -> None:
    art = obtain_by_an_absolute_link(mirror, tmp_path)
    assert SECRET not in repr(art)
    assert not [p for p in (tmp_path / "c").rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]


def test_they_go_to_no_other_host_or_port_nor_across_a_redirect(mirror: Server) -> None:
    """127.0.0.1:PORT remembered: localhost:PORT (another host name), 127.0.0.1:OTHER (another port) and
    a redirect from the mirror to another port get nothing; a later request to the mirror does."""
    with serve() as other:
        mirror.route("/simple/", Response(200, "<html></html>"))
        mirror.route("/away", Response(302, "", {"Location": other.base + "/x"}))
        mirror.route("/here", Response(301, "", {"Location": "/simple/"}))
        other.route("/x", Response(200, "x"))
        localhost = mirror.base.replace("127.0.0.1", "localhost")
        with Http(HttpPolicy(retries=0), {}) as http:
            http.get(with_userinfo(mirror.base) + "/simple/")
            http.get(localhost + "/simple/")
            http.get(other.base + "/x")
            http.get(mirror.base + "/away")
            http.get(mirror.base + "/here")
        seen = [(r.path, r.headers.get("Authorization")) for r in mirror.requests]
        assert seen == [
            ("/simple/", BASIC),
            ("/simple/", None),  # localhost: another host name
            ("/away", BASIC),
            ("/here", BASIC),
            ("/simple/", BASIC),  # a redirect on the same host and port keeps them
        ]
        assert [r.headers.get("Authorization") for r in other.requests] == [None, None]


@pytest.mark.parametrize(
    "answer",
    [
        Response(200, "{not json", {"Content-Type": "application/vnd.pypi.simple.v1+json"}),
        Response(200, {"meta": {}}),  # JSON, but no 'files' list
    ],
)
def test_a_broken_page_of_the_mirror_is_named_without_its_credentials(
    mirror: Server, tmp_path: Path, answer: Response
) -> None:
    """The message named the page by the URL it was fetched with, user:password included: install puts
    it in its result (`error`, the fetch step: JSON and the install log)."""
    mirror.route("/simple/flash-attn/", answer)
    name = "flash_attn-2.8.3-cp311-cp311-linux_x86_64.whl"
    ref = WheelRef(name, "https://github.com/x/y/releases/download/v1/" + name, None, "official", "1")
    opts = FetchOptions(WheelCache(tmp_path / "c"), FAST, index_url=with_userinfo(mirror.base) + "/simple")
    with pytest.raises(NotAnIndexPage) as exc:
        obtain(ref, opts, {}, "flash-attn")
    assert SECRET not in exc.value.message + (exc.value.hint or "")
    assert f"***@127.0.0.1:{mirror.base.rsplit(':', 1)[1]}/simple/flash-attn/" in exc.value.message


def test_a_mirror_that_answers_401_is_told_how_to_give_it_credentials(mirror: Server, tmp_path: Path) -> None:
    """A 401 from a mirror said "for GitHub set GITHUB_TOKEN" (the wheel) or nothing (its page); it says
    how to give the mirror its credentials now, once (no retry), exit 4 as every download failure."""
    mirror.require(BASIC)
    name = "flash_attn-2.8.3-cp311-cp311-linux_x86_64.whl"
    ref = WheelRef(name, f"{mirror.base}/packages/{name}", "a" * 64, "official", "1")
    for index_url in (None, mirror.base + "/simple"):
        opts = FetchOptions(WheelCache(tmp_path / "c"), FAST, index_url=index_url)
        with pytest.raises(DownloadError) as exc:
            obtain(ref, opts, {}, "flash-attn")
        assert exc.value.message.startswith("HTTP 401 Unauthorized for ") and exc.value.return_code == 4
        assert "GITHUB_TOKEN" not in (exc.value.hint or "")
        assert ".netrc" in (exc.value.hint or "") and "USER:PASSWORD@" in (exc.value.hint or "")
    assert [r.path for r in mirror.requests] == [f"/packages/{name}", "/simple/flash-attn/"]


def test_an_absolute_link_gets_the_index_urls_credentials_before_netrcs(
    mirror: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip (network/auth.py, MultiDomainBasicAuth._get_new_credentials) takes a URL's own credentials,
    then its index URL's, then ~/.netrc's, then the keyring's. flashdoctor sent ~/.netrc's to a mirror's
    absolute link before the ones the user wrote into --index-url: a ~/.netrc entry for the host with other
    credentials (an old token, another account) made the wheel answer 401. The index URL's go first now."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".netrc").write_text("machine 127.0.0.1 login netrc-user password netrc-pw\n")
    (home / ".netrc").chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("NETRC", raising=False)
    obtain_by_an_absolute_link(mirror, tmp_path)
    with Http(HttpPolicy(retries=0), {}) as http:  # with nothing remembered, ~/.netrc's still go
        http.get(mirror.base + "/simple/flash-attn/")
    netrc_basic = "Basic " + base64.b64encode(b"netrc-user:netrc-pw").decode()
    assert mirror.requests[-1].headers.get("Authorization") == netrc_basic


def test_a_link_that_refuses_the_index_urls_credentials_is_told_so(mirror: Server, tmp_path: Path) -> None:
    """The index URL's credentials, remembered and sent to a link on its host, refused (401): the hint
    said "give them in the URL (USER:PASSWORD@...)" as if none had been given. It says the server refused
    the ones remembered from the index URL now (never printing them), for a wheel and for a page."""
    name = "flash_attn-2.8.3-cp311-cp311-linux_x86_64.whl"
    link = f"{mirror.base}/packages/ab/{name}#sha256={'a' * 64}"
    mirror.route("/simple/flash-attn/", Response(200, f'<a href="{link}">{name}</a>'))
    mirror.route(f"/packages/ab/{name}", Response(401, "unauthorized", {"Content-Type": "text/plain"}))
    mirror.route("/other/flash-attn/", Response(401, "unauthorized", {"Content-Type": "text/plain"}))
    ref = WheelRef(name, "https://github.com/x/y/releases/download/v1/" + name, None, "official", "1")
    opts = FetchOptions(WheelCache(tmp_path / "c"), FAST, index_url=with_userinfo(mirror.base) + "/simple")
    with pytest.raises(DownloadError) as wheel:
        obtain(ref, opts, {}, "flash-attn")
    with Http(HttpPolicy(retries=0), {}) as http:
        read_page(http, with_userinfo(mirror.base) + "/simple/flash-attn/")
        with pytest.raises(DownloadError) as page:
            read_page(http, mirror.base + "/other/flash-attn/")
    assert [r.headers.get("Authorization") for r in mirror.requests] == [BASIC] * 4
    for exc in (wheel.value, page.value):
        hint = exc.hint or ""
        assert exc.message.startswith("HTTP 401 Unauthorized for ") and exc.return_code == 4
        assert "refused the credentials remembered from the index URL" in hint, hint
        assert "USER:PASSWORD@" not in hint and SECRET not in exc.message + hint


def test_a_server_that_refuses_the_netrc_entry_is_told_so(
    mirror: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ~/.netrc entry for the host, sent and refused: the hint said to give credentials in the URL or in a
    ~/.netrc entry, as if there were none. It names the entry that was refused now."""
    (tmp_path / ".netrc").write_text("machine 127.0.0.1 login netrc-user password netrc-pw\n")
    (tmp_path / ".netrc").chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NETRC", raising=False)
    mirror.require(BASIC)
    with Http(HttpPolicy(retries=0), {}) as http, pytest.raises(DownloadError) as exc:
        read_page(http, mirror.base + "/simple/flash-attn/")
    assert mirror.requests[0].headers.get("Authorization", "").startswith("Basic ")
    hint = exc.value.hint or ""
    assert "refused the credentials of the ~/.netrc entry for 127.0.0.1" in hint, hint
    assert "USER:PASSWORD@" not in hint and "netrc-pw" not in exc.value.message + hint
