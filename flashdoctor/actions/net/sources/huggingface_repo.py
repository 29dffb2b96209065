"""Wheel source kind "huggingface-repo": the wheels in a Hugging Face model repository (where several
Windows builders publish: lldacing/flash-attention-windows-wheel, Wildminder/AI-windows-whl, ...).

Listing: GET {base}/api/models/{repo}/tree/main?recursive=true (the Hub's tree API; pages follow the
``Link: rel="next"`` header, at most ``ctx.max_pages``); every ``.whl`` file is a row whose URL is the
Hub's download URL ``{base}/{repo}/resolve/main/{path}`` and whose sha256 is the file's Git LFS object id
(``lfs.oid``: the sha256 of the file's content, which the Hub computed when the file was uploaded). A
wheel stored without LFS has no sha256 there (its ``oid`` is a Git blob id, not a digest of the bytes).
Digest lookup for one file: the tree of the file's folder, that file's ``lfs.oid``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from flashdoctor.actions.net.errors import DownloadError
from flashdoctor.actions.net.sources.base import (
    HUGGINGFACE,
    Listing,
    PublishedDigest,
    Row,
    SourceContext,
    follow_pages,
)
from flashdoctor.actions.net.urls import redact
from flashdoctor.decide.wheels.digests import HUGGINGFACE_REVISION, huggingface_file
from flashdoctor.model.plan import WheelRef
from flashdoctor.model.verification import is_sha256


def _base(config: Mapping[str, Any]) -> str:
    return str(config.get("base") or HUGGINGFACE).rstrip("/")


def download_url(base: str, repo: str, path: str) -> str:
    """The Hub's download URL of ``path`` in ``repo`` (each path segment quoted: '+' as %2B)."""
    return f"{base}/{repo}/resolve/{HUGGINGFACE_REVISION}/{quote(path, safe='/')}"


def _tree(ctx: SourceContext, url: str, allow_404: bool = False) -> tuple[list[dict[str, Any]], str]:
    """Every entry of a tree listing (pages followed on the same host: base.follow_pages); the first
    page's URL, redacted."""
    out: list[dict[str, Any]] = []
    shown = redact(url)
    for page in follow_pages(ctx, url, lambda u: ctx.http.get(u, accept="application/json")):
        if page.status == 404 and allow_404 and not out:
            return [], shown
        if page.status != 200:
            raise DownloadError(f"GET {page.shown}: HTTP {page.status} {page.reason}")
        doc = page.json()
        if not isinstance(doc, list):
            raise DownloadError(f"GET {page.shown}: not a Hugging Face tree listing")
        out.extend(e for e in doc if isinstance(e, dict))
    return out, shown


def _lfs_sha(entry: Mapping[str, Any]) -> str | None:
    lfs = entry.get("lfs")
    oid = lfs.get("oid") if isinstance(lfs, dict) else None
    return oid.lower() if isinstance(oid, str) and is_sha256(oid.lower()) else None


def rows_from_tree(
    source: str, repo: str, base: str, entries: list[dict[str, Any]], fetched: str
) -> list[Row]:
    rows: list[Row] = []
    for e in entries:
        path = e.get("path")
        if e.get("type") != "file" or not isinstance(path, str) or not path.endswith(".whl"):
            continue
        rows.append(
            {
                "source": source,
                "filename": path.rsplit("/", 1)[-1],
                "url": download_url(base, repo, path),
                "sha256": _lfs_sha(e),
                "evidence": f"huggingface-api:{repo} {path} (fetched {fetched})",
            }
        )
    return rows


class HuggingfaceRepo:
    name = "huggingface-repo"

    def list_rows(self, ctx: SourceContext, source: str, config: Mapping[str, Any], fetched: str) -> Listing:
        repo = config["repo"]
        base = _base(config)
        url = f"{ctx.at(base)}/api/models/{repo}/tree/{HUGGINGFACE_REVISION}?recursive=true"
        entries, _shown = _tree(ctx, url)
        rows = rows_from_tree(source, repo, base, entries, fetched)
        return Listing(rows, [{"name": f"huggingface:{repo}", "entries": len(rows), "fetched": fetched}])

    def published_digest(
        self, ctx: SourceContext, ref: WheelRef, config: Mapping[str, Any]
    ) -> PublishedDigest | None:
        repo = config["repo"]
        base = _base(config)
        if not ctx.same_host(ref.url, base):
            return None
        path = huggingface_file(ctx.at(base), repo, ref.url) or huggingface_file(base, repo, ref.url)
        if path is None:
            return None
        folder = path.rsplit("/", 1)[0] if "/" in path else ""
        url = f"{ctx.at(base)}/api/models/{repo}/tree/{HUGGINGFACE_REVISION}" + (
            f"/{quote(folder)}" if folder else ""
        )
        entries, where = _tree(ctx, url, allow_404=True)
        for e in entries:
            if e.get("path") == path:
                sha = _lfs_sha(e)
                note = None if sha else "the file is not stored with Git LFS: the Hub gives no sha256 of it"
                return PublishedDigest(sha, "huggingface-lfs", where, note)
        return PublishedDigest(None, "huggingface-lfs", where, f"{repo} has no file {path}")


KIND = HuggingfaceRepo()
