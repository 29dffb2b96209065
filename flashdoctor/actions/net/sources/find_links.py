"""Wheel source kind "find-links": a root page that links per-cell pages, each a flat page of wheel links,
the layout pip reads with ``--find-links`` (windreamer/flash-attention3-wheels on GitHub Pages: the root
links ``cu128_torch291/index.html``, whose page links the wheels, hosted as assets of the repository's
GitHub releases; its generator is scripts/generate_pages.py of that repository).

Listing: the root page and every page it links below itself (at most ``MAX_PAGES``), read by the one
PEP 503 parser (anchors, relative links resolved, a ``#sha256=`` fragment if there is one); each ``.whl``
link is a row that names the page it was seen on (provenance) and, from a ``cuNNN_...`` cell name, the
CUDA it was built with. Digest lookup for one file: a file hosted as a GitHub release asset has the
release's asset digest (the github-releases kind); these pages carry no digest of their own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from flashdoctor.actions.net.errors import DownloadError
from flashdoctor.actions.net.pep503 import IndexFile, read_page
from flashdoctor.actions.net.sources import github_releases
from flashdoctor.actions.net.sources.base import GITHUB_WEB, Listing, PublishedDigest, Row, SourceContext
from flashdoctor.model.plan import WheelRef

MAX_PAGES = 200
_CELL_CUDA = re.compile(r"^cu(\d{2,3})_")


def _cuda_of(page_url: str, root: str) -> str | None:
    cell = page_url[len(root) :].strip("/").split("/", 1)[0]
    m = _CELL_CUDA.match(cell)
    return None if m is None else f"{m.group(1)[:-1]}.{m.group(1)[-1]}"


def _cell_pages(root: str, files: list[IndexFile]) -> list[str]:
    """Links of the root page to pages below it (not wheels, not the root itself), in page order."""
    out: list[str] = []
    for f in files:
        u = f.url
        if not u.startswith(root) or u.rstrip("/") == root.rstrip("/") or u.endswith(".whl"):
            continue
        path = urlsplit(u).path
        if (path.endswith("/") or path.endswith("/index.html")) and u not in out:
            out.append(u)
    return out


def rows_from_page(
    source: str, page_url: str, files: list[IndexFile], cuda: str | None, fetched: str
) -> list[Row]:
    rows: list[Row] = []
    for f in files:
        if not f.filename.endswith(".whl"):
            continue
        row: Row = {
            "source": source,
            "filename": f.filename,
            "url": f.url,
            "sha256": f.sha256,
            "yanked": f.yanked,
            "confidence": "high",
            "evidence": f"find-links:{page_url} (fetched {fetched})",
        }
        asset = github_releases.release_asset_on(GITHUB_WEB, f.url)
        if asset is not None:
            row["release_tag"] = asset[1]
            row["evidence"] += f"; GitHub release asset of {asset[0]} {asset[1]}"
        if cuda:
            row["cuda_version"] = cuda
        rows.append(row)
    return rows


class FindLinks:
    name = "find-links"

    def list_rows(self, ctx: SourceContext, source: str, config: Mapping[str, Any], fetched: str) -> Listing:
        root = ctx.at(str(config["root"]))
        root = root if root.endswith("/") else root + "/"
        page, files = read_page(ctx.http, root)
        cells = _cell_pages(root, files)
        if len(cells) > MAX_PAGES:
            raise DownloadError(f"{page.shown}: links {len(cells)} pages, more than {MAX_PAGES}; refusing")
        rows = rows_from_page(source, page.shown, files, None, fetched)
        for url in cells:
            cell, cell_files = read_page(ctx.http, url)
            rows.extend(rows_from_page(source, cell.shown, cell_files, _cuda_of(url, root), fetched))
        return Listing(rows, [{"name": f"find-links:{page.shown}", "entries": len(rows), "fetched": fetched}])

    def published_digest(
        self, ctx: SourceContext, ref: WheelRef, config: Mapping[str, Any]
    ) -> PublishedDigest | None:
        return github_releases.KIND.published_digest(ctx, ref, config)


KIND = FindLinks()
