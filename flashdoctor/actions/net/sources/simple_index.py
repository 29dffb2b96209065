"""Wheel source kind "simple-index": a project on PEP 503/691 indexes, one per CUDA version (the PyTorch
index: https://download.pytorch.org/whl/cu130/flash-attn-3/).

Listing: each configured index's project page, read by the one parser (flashdoctor.actions.net.pep503).
Digest lookup for one file: the project page of the index the file's URL sits in (the file's directory,
as on download.pytorch.org: .../whl/cu130/<file> is listed on .../whl/cu130/<project>/), whose
``#sha256=`` fragment (or PEP 691 ``hashes``) is the published digest, as pip reads it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flashdoctor.actions.net.pep503 import IndexFile, fetch_project, is_json_page
from flashdoctor.actions.net.sources.base import Listing, PublishedDigest, Row, SourceContext
from flashdoctor.model.plan import WheelRef


def rows_from_files(
    source: str, cuda: str, page_url: str, files: Iterable[IndexFile], fetched: str
) -> list[Row]:
    """Rows from a project page of one per-CUDA index."""
    rows = []
    for f in files:
        if not f.filename.endswith(".whl"):
            continue
        rows.append(
            {
                "source": source,
                "filename": f.filename,
                "url": f.url,
                "sha256": f.sha256,
                "cuda_version": cuda,
                "yanked": f.yanked,
                "confidence": "high",
                "evidence": f"simple-index:{page_url} (fetched {fetched})",
            }
        )
    return rows


class SimpleIndex:
    name = "simple-index"

    def list_rows(self, ctx: SourceContext, source: str, config: Mapping[str, Any], fetched: str) -> Listing:
        rows: list[Row] = []
        inputs = []
        for cuda, index_url in config["indexes"].items():
            page, files = fetch_project(ctx.http, ctx.at(index_url), config["project"])
            got = rows_from_files(source, cuda, page.shown, files, fetched)
            rows.extend(got)
            inputs.append({"name": f"simple:{page.shown}", "entries": len(got), "fetched": fetched})
        return Listing(rows, inputs)

    def published_digest(
        self, ctx: SourceContext, ref: WheelRef, config: Mapping[str, Any]
    ) -> PublishedDigest | None:
        if "/" not in ref.url or not ref.url.rsplit("/", 1)[-1]:
            return None
        index_url = ref.url.rsplit("/", 1)[0]
        page, files = fetch_project(ctx.http, index_url, config["project"])
        origin = "pep691-page" if is_json_page(page.body, page.content_type) else "pep503-page"
        for f in files:
            if f.filename == ref.filename:
                note = None if f.sha256 else "the index page lists the file without a digest"
                return PublishedDigest(f.sha256, origin, page.shown, note)
        return PublishedDigest(None, origin, page.shown, f"the index page does not list {ref.filename}")


KIND = SimpleIndex()
