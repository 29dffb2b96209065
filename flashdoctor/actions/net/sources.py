"""Live fetchers for the wheel index: the GitHub Releases API, PEP 503/691 simple pages and the PyPI
JSON API. Used by scripts/update_wheels_index.py only; flashdoctor never fetches an index at run time.

- GITHUB_TOKEN (from the mapping passed in, never read from os.environ here) is sent only to the GitHub
  API host, and never appears in a message: every error text goes through :meth:`Fetcher.redact`.
- Retries with back-off for connection errors and 5xx (urllib3's Retry, through requests); timeouts on
  every request; pagination bounded by ``max_pages``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from flashdoctor import __version__
from flashdoctor.errors import NetworkError

GITHUB_API = "https://api.github.com"
PYPI = "https://pypi.org"
# PEP 691: ask for JSON, accept the HTML form (PEP 503) that most indexes still serve.
SIMPLE_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
)
TIMEOUT = (10, 60)  # connect, read (seconds)


def make_session(retries: int = 3, backoff: float = 0.5) -> requests.Session:
    s = requests.Session()
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff,
        status_forcelist=(500, 502, 503, 504),
        allowed_methods=frozenset({"GET"}),
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    s.headers["User-Agent"] = f"flashdoctor/{__version__} (wheel index builder)"
    return s


@dataclass
class Fetcher:
    """HTTP access for the index builder. ``environ`` supplies GITHUB_TOKEN (cibuildwheel-style: the
    environment is passed in, so tests decide what it holds)."""

    environ: Mapping[str, str] = field(default_factory=dict)
    session: requests.Session = field(default_factory=make_session)
    github_api: str = GITHUB_API
    max_pages: int = 50

    @property
    def token(self) -> str | None:
        tok = self.environ.get("GITHUB_TOKEN", "").strip()
        return tok or None

    def redact(self, text: str) -> str:
        tok = self.token
        return text.replace(tok, "***") if tok else text

    # -- plumbing -----------------------------------------------------------------------------------
    def _get(self, url: str, headers: Mapping[str, str] | None = None) -> requests.Response:
        hdrs = dict(headers or {})
        if self.token and _same_host(url, self.github_api):
            hdrs["Authorization"] = f"Bearer {self.token}"
        try:
            resp = self.session.get(url, headers=hdrs, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise NetworkError(self.redact(f"GET {url} failed: {type(exc).__name__}: {exc}")) from None
        if resp.status_code == 403 and resp.headers.get("X-RateLimit-Remaining") == "0":
            raise NetworkError(
                f"GET {url}: GitHub API rate limit reached",
                hint="set GITHUB_TOKEN to a token (no scopes needed) for a higher limit",
            )
        if resp.status_code in (401, 403) and _same_host(url, self.github_api):
            raise NetworkError(
                f"GET {url}: HTTP {resp.status_code} from the GitHub API",
                hint="check GITHUB_TOKEN" if self.token else "set GITHUB_TOKEN",
            )
        if resp.status_code >= 400:
            body = self.redact(resp.text[:200].strip())
            raise NetworkError(f"GET {url}: HTTP {resp.status_code}" + (f": {body}" if body else ""))
        return resp

    def _json(self, resp: requests.Response) -> Any:
        try:
            return resp.json()
        except ValueError:
            raise NetworkError(f"GET {resp.url}: the response is not JSON") from None

    # -- GitHub -------------------------------------------------------------------------------------
    def github_releases(self, repo: str) -> list[dict[str, Any]]:
        """All releases of ``owner/name`` (GET /repos/{repo}/releases, following Link: rel="next")."""
        url: str | None = f"{self.github_api.rstrip('/')}/repos/{repo}/releases?per_page=100"
        out: list[dict[str, Any]] = []
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        for _ in range(self.max_pages):
            if url is None:
                break
            resp = self._get(url, headers)
            page = self._json(resp)
            if not isinstance(page, list):
                raise NetworkError(f"GET {url}: expected a list of releases")
            out.extend(page)
            url = resp.links.get("next", {}).get("url")
        else:
            if url is not None:
                raise NetworkError(f"{repo}: more than {self.max_pages} pages of releases; refusing to go on")
        return out

    # -- PEP 503 / 691 ------------------------------------------------------------------------------
    def simple_project(self, index_url: str, project: str) -> tuple[str, list[dict[str, Any]]]:
        """(page URL, files) of ``project`` on a simple index; files as {filename, url, sha256, yanked}."""
        page = f"{index_url.rstrip('/')}/{project}/"
        resp = self._get(page, {"Accept": SIMPLE_ACCEPT})
        ctype = resp.headers.get("Content-Type", "").split(";")[0].strip()
        if ctype == "application/vnd.pypi.simple.v1+json":
            data = self._json(resp)
            files = []
            for f in data.get("files", []):
                files.append(
                    {
                        "filename": f["filename"],
                        "url": urljoin(resp.url, f["url"]),
                        "sha256": (f.get("hashes") or {}).get("sha256"),
                        "yanked": bool(f.get("yanked")),
                    }
                )
            return page, files
        parser = _AnchorParser()
        parser.feed(resp.text)
        files = []
        for href, text, yanked in parser.anchors:
            absolute, frag = urldefrag(urljoin(resp.url, href))
            sha = frag.split("=", 1)[1] if frag.startswith("sha256=") else None
            name = text.strip() or absolute.rsplit("/", 1)[-1]
            files.append({"filename": name, "url": absolute, "sha256": sha, "yanked": yanked})
        return page, files

    # -- PyPI JSON ----------------------------------------------------------------------------------
    def pypi_files(self, project: str, base: str = PYPI) -> list[dict[str, Any]]:
        """Every file of every release of ``project`` (GET {base}/pypi/{project}/json), each with its
        version, URL, sha256, requires_python, yanked flag and upload time.

        On the public PyPI the URL is the documented predictable one
        (``files.pythonhosted.org/packages/{python_version}/{p}/{project}/{filename}``, warehouse's
        integration guide), which stays valid whatever mirror the JSON came through; elsewhere (a mirror,
        a test server) it is the JSON's own URL resolved against the document."""
        doc_url = f"{base.rstrip('/')}/pypi/{project}/json"
        data = self._json(self._get(doc_url, {"Accept": "application/json"}))
        releases = data.get("releases")
        if not isinstance(releases, dict):
            raise NetworkError(f"GET {doc_url}: no 'releases' in the document")
        public = base.rstrip("/") == PYPI
        out = []
        for version, files in releases.items():
            for f in files:
                if public:
                    url = pypi_predictable_url(project, f.get("python_version") or "source", f["filename"])
                else:
                    url = urljoin(doc_url, f["url"])
                out.append(
                    {
                        "version": version,
                        "filename": f["filename"],
                        "url": url,
                        "sha256": (f.get("digests") or {}).get("sha256"),
                        "requires_python": f.get("requires_python"),
                        "yanked": bool(f.get("yanked")),
                        "packagetype": f.get("packagetype"),
                        "upload_time": f.get("upload_time"),
                    }
                )
        return out


def pypi_predictable_url(project: str, python_version: str, filename: str) -> str:
    """PyPI's documented stable URL for a file (warehouse integration guide, "Predictable URLs"): it
    redirects to the file's hashed location on files.pythonhosted.org."""
    return f"https://files.pythonhosted.org/packages/{python_version}/{project[0]}/{project}/{filename}"


def _same_host(url: str, base: str) -> bool:
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)


class _AnchorParser(HTMLParser):
    """The <a> elements of a PEP 503 page: (href, text, yanked)."""

    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[tuple[str, str, bool]] = []
        self._href: str | None = None
        self._yanked = False
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            d = dict(attrs)
            self._href = d.get("href")
            self._yanked = "data-yanked" in d
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.anchors.append((self._href, "".join(self._text), self._yanked))
            self._href = None
