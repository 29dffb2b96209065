"""What a wheel source kind is: one module implementing :class:`SourceKind` (list the wheels a source
publishes as listing rows; look up the digest it publishes for one file), registered by one line in
flashdoctor.actions.net.sources.KINDS. The index builder (scripts/update_wheels_index.py) and the
published-digest lookup before a download (flashdoctor.actions.fetch) both go through that registry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urljoin

from flashdoctor.actions.net.errors import DownloadError
from flashdoctor.actions.net.http import Http, Page
from flashdoctor.actions.net.urls import parse, redact
from flashdoctor.model.plan import WheelRef

GITHUB_API = "https://api.github.com"
GITHUB_WEB = "https://github.com"
PYPI = "https://pypi.org"
PYPI_FILES = "https://files.pythonhosted.org"
PYTORCH_WHL = "https://download.pytorch.org/whl"
HUGGINGFACE = "https://huggingface.co"

# What one source's listing may add up to, all its pages together (each page is bounded on its own by the
# HTTP client): the largest real one, the official releases in GitHub's API (~4,300 assets of ~2 KB), is
# about 10 MB. A server that pages on without end is refused here, not after 50 pages of 32 MiB.
MAX_SOURCE_BYTES = 64 << 20
# What a refresh's listings may add up to, all its sources together: with 11 sources read by default (15
# named), 64 MiB each would let hostile mirrors make one refresh read up to 960 MiB; a real refresh of every
# source reads a few tens of MB.
MAX_REFRESH_BYTES = 128 << 20

Row = dict[str, Any]  # a listing-shaped row (flashdoctor.decide.wheels.builder.entry_from_row reads it)


@dataclass(frozen=True)
class SourceContext:
    """How the kinds reach their publishers: one HTTP client, and where each public endpoint is reached
    (``rewrites``: canonical URL prefix -> the URL to use, e.g. a loopback mirror in tests, --github-api)."""

    http: Http
    rewrites: Mapping[str, str] = field(default_factory=dict)
    max_pages: int = 50  # pages of one paged listing (a repository's releases, a Hub tree) at most
    max_bytes: int = MAX_SOURCE_BYTES  # the pages of one source's listing, all together, at most

    def at(self, url: str) -> str:
        for prefix, there in self.rewrites.items():
            p = prefix.rstrip("/")
            if url == p or url.startswith(p + "/"):
                return there.rstrip("/") + url[len(p) :]
        return url

    def same_host(self, url: str, *bases: str) -> bool:
        """Whether ``url`` goes to the host (and port) of one of ``bases`` (as reached here)."""
        try:
            t = parse(url)
            return any(t.netloc == parse(self.at(b)).netloc for b in bases)
        except Exception:
            return False


def follow_pages(ctx: SourceContext, url: str, get: Callable[[str], Page]) -> Iterator[Page]:
    """The pages of one paged listing (GitHub's releases, the Hub's tree): ``url``, then each page's
    ``Link: rel="next"`` (resolved against the page), read with ``get``. A next page on another host than
    ``url`` (as the HTTP client connects), one already read (the pages loop) or past ``ctx.max_pages``
    raises DownloadError: a listing cut short must not replace the index's entries of its source, and
    another host's answer is not the publisher's."""
    shown = redact(url)
    read: set[str] = set()
    next_url: str | None = url
    while next_url is not None:
        if len(read) >= ctx.max_pages:
            raise DownloadError(f"{shown}: more than {ctx.max_pages} pages; refusing to go on")
        read.add(next_url)
        page = get(next_url)
        yield page
        following = page.links().get("next")
        if not following:
            return
        following = urljoin(page.url, following)
        if not ctx.same_host(following, url):
            raise DownloadError(
                f"{page.shown}: the next page is on another host ({redact(following)}); refusing to follow it"
            )
        if following in read:
            raise DownloadError(f"{page.shown}: the pages loop (the next page is one already read)")
        next_url = following


@dataclass
class Listing:
    rows: list[Row]
    inputs: list[dict[str, Any]]  # what was read: {"name", "entries", "fetched"}


@dataclass(frozen=True)
class PublishedDigest:
    """What a publisher says about one file. ``sha256`` None: it lists the file without a digest."""

    sha256: str | None
    digest_from: str  # a key of flashdoctor.model.verification.DIGEST_SOURCES
    where: str  # the page or API document (redacted)
    note: str | None = None


class SourceKind(Protocol):
    """One kind of wheel source (``kind`` in data/wheel_sources.json)."""

    name: str

    def list_rows(self, ctx: SourceContext, source: str, config: Mapping[str, Any], fetched: str) -> Listing:
        """Every wheel ``source`` (configured by ``config``) publishes, as listing rows."""
        ...

    def published_digest(
        self, ctx: SourceContext, ref: WheelRef, config: Mapping[str, Any]
    ) -> PublishedDigest | None:
        """The digest the publisher gives for ``ref``; None when ``ref.url`` is not one of its files."""
        ...
