"""The one reader of PEP 503 (HTML) and PEP 691 (JSON) "simple" project pages, used by the --index-url
mirror, the sdist finder, the PyTorch-index source of the wheel index and the published-digest lookup.

What it reads, as pip does: each file's name (the last path component of its URL), its absolute URL
(relative links resolve against the page, or its ``<base href>``), the ``#sha256=`` fragment (HTML) or
``hashes.sha256`` (JSON), ``data-yanked`` / ``yanked`` (with the reason) and ``data-requires-python`` /
``requires-python``. Pages are fetched bounded (flashdoctor.actions.net.http) and at most ``MAX_FILES``
files are read from one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

from packaging.utils import canonicalize_name

from flashdoctor.actions.net.errors import DownloadError
from flashdoctor.actions.net.http import Http, Page, credentials_hint
from flashdoctor.actions.net.urls import redact

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
# PEP 691: ask for JSON, accept the HTML form (PEP 503) that most indexes still serve.
SIMPLE_ACCEPT = f"{SIMPLE_JSON}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
MAX_FILES = 100_000


class ProjectNotFound(DownloadError):
    """The index has no page for the project (HTTP 404)."""


class NotAnIndexPage(DownloadError):
    """The answer is neither a PEP 503 nor a PEP 691 page."""


@dataclass(frozen=True)
class IndexFile:
    filename: str
    url: str  # absolute, without the fragment
    sha256: str | None
    yanked: bool = False
    yanked_reason: str | None = None
    requires_python: str | None = None


def _sha256(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    v = value.strip().lower()
    return v[:128] or None


def _from_fragment(fragment: str) -> str | None:
    name, _, value = fragment.partition("=")
    return _sha256(value) if name.lower() == "sha256" else None


def _filename(url: str, fallback: str) -> str:
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return name or fallback.strip()


class _Full(Exception):
    """MAX_FILES anchors read: the rest of the page is not parsed."""


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self._open: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "base" and self.base is None:
            self.base = dict(attrs).get("href")
        elif tag == "a":
            self._open, self._text = dict(attrs), []

    def handle_data(self, data: str) -> None:
        if self._open is not None and len(self._text) < 64:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.anchors.append((self._open, "".join(self._text)))
            self._open = None
            if len(self.anchors) >= MAX_FILES:
                raise _Full


def is_json_page(body: bytes | str, content_type: str | None) -> bool:
    ct = (content_type or "").split(";")[0].strip().lower()
    if ct in (SIMPLE_JSON, "application/json"):
        return True
    head = body[:64].lstrip() if isinstance(body, str) else body[:64].lstrip().decode("latin-1")
    return head.startswith("{")


def parse_project_page(body: bytes | str, page_url: str, content_type: str | None = None) -> list[IndexFile]:
    """The files listed on a project page. Raises NotAnIndexPage for a JSON answer of another shape."""
    if is_json_page(body, content_type):
        return _parse_json(body, page_url)
    text = body if isinstance(body, str) else body.decode("utf-8", errors="replace")
    p = _Anchors()
    try:
        p.feed(text)
        p.close()
    except _Full:
        pass
    base = urljoin(page_url, p.base) if p.base else page_url
    out = []
    for attrs, label in p.anchors:
        href = attrs.get("href")
        if not href:
            continue
        url, fragment = urldefrag(urljoin(base, href.strip()))
        yanked = "data-yanked" in attrs
        out.append(
            IndexFile(
                filename=_filename(url, label),
                url=url,
                sha256=_from_fragment(fragment),
                yanked=yanked,
                yanked_reason=(attrs.get("data-yanked") or None) if yanked else None,
                requires_python=attrs.get("data-requires-python") or None,
            )
        )
    return out


def _parse_json(body: bytes | str, page_url: str) -> list[IndexFile]:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise NotAnIndexPage(f"{redact(page_url)}: the page is not valid JSON") from None
    files = doc.get("files") if isinstance(doc, dict) else None
    if not isinstance(files, list):
        raise NotAnIndexPage(f"{redact(page_url)}: a JSON answer without a 'files' list (not a PEP 691 page)")
    out = []
    for f in files[:MAX_FILES]:
        if not isinstance(f, dict) or not isinstance(f.get("url"), str) or not f["url"]:
            continue
        url, fragment = urldefrag(urljoin(page_url, f["url"]))
        hashes = f.get("hashes")
        if not isinstance(hashes, dict):
            hashes = {}
        yanked = f.get("yanked")
        name = f.get("filename") if isinstance(f.get("filename"), str) else ""
        rp = f.get("requires-python")
        out.append(
            IndexFile(
                filename=name or _filename(url, ""),
                url=url,
                sha256=_sha256(hashes.get("sha256")) or _from_fragment(fragment),
                yanked=bool(yanked),
                yanked_reason=yanked if isinstance(yanked, str) and yanked else None,
                requires_python=rp if isinstance(rp, str) and rp else None,
            )
        )
    return out


def project_page_url(index_url: str, project: str) -> str:
    return f"{index_url.rstrip('/')}/{canonicalize_name(project)}/"


def read_page(http: Http, page_url: str) -> tuple[Page, list[IndexFile]]:
    """Fetch one project page (PEP 691 JSON asked for, HTML accepted) and read its files."""
    page = http.get(page_url, accept=SIMPLE_ACCEPT)
    if page.status == 404:
        raise ProjectNotFound(f"{page.shown}: not found on the index (HTTP 404)")
    if page.status != 200:
        hint = (
            credentials_hint(page.shown, http.policy.token_hosts, page.credentials)
            if page.status in (401, 403)
            else None
        )
        raise DownloadError(f"HTTP {page.status} {page.reason} for {page.shown}", hint=hint)
    return page, parse_project_page(page.body, page.url, page.content_type)


def fetch_project(http: Http, index_url: str, project: str) -> tuple[Page, list[IndexFile]]:
    """The files of ``project`` on the simple index ``index_url``."""
    return read_page(http, project_page_url(index_url, project))
