"""Wheel source kind "github-releases": the assets of a repository's GitHub releases.

Listing: GET {api}/repos/{repo}/releases (paged through Link: rel="next", at most ``max_pages``); each
``.whl`` asset is a row, its ``digest`` ("sha256:<hex>", recorded by GitHub for assets uploaded since
2025) the published sha256. Digest lookup for one file: its URL
``https://github.com/{owner}/{repo}/releases/download/{tag}/{file}`` names the release; GET
{api}/repos/{owner}/{repo}/releases/tags/{tag} and read that asset's ``digest``.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from flashdoctor.actions.net.errors import DownloadError
from flashdoctor.actions.net.http import Page
from flashdoctor.actions.net.sources.base import (
    GITHUB_API,
    GITHUB_WEB,
    Listing,
    PublishedDigest,
    Row,
    SourceContext,
    follow_pages,
)
from flashdoctor.actions.net.urls import redact
from flashdoctor.model.plan import WheelRef

API_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
ADDED_LATER_AFTER = datetime.timedelta(days=2)  # an asset uploaded this long after its release


def api_get(ctx: SourceContext, url: str, allow_404: bool = False) -> Page:
    """A GitHub API document; 4xx answers (but a 404 when ``allow_404``) become errors that say what to
    do. An error body is shown bounded, with the token redacted."""
    page = ctx.http.get(url, headers=API_HEADERS, accept=API_HEADERS["Accept"])
    if page.status == 403 and page.headers.get("X-RateLimit-Remaining") == "0":
        raise DownloadError(
            f"GET {page.shown}: GitHub API rate limit reached",
            hint="set GITHUB_TOKEN to a token (no scopes needed) for a higher limit",
        )
    if page.status in (401, 403):
        raise DownloadError(
            f"GET {page.shown}: HTTP {page.status} from the GitHub API",
            hint="check GITHUB_TOKEN" if ctx.http.token else "set GITHUB_TOKEN",
        )
    if page.status >= 400 and not (allow_404 and page.status == 404):
        body = ctx.http.redact(page.text()[:200].strip())
        raise DownloadError(f"GET {page.shown}: HTTP {page.status}" + (f": {body}" if body else ""))
    return page


def releases(ctx: SourceContext, repo: str) -> list[dict[str, Any]]:
    """All releases of ``owner/name``, following Link: rel="next" on the API's host (base.follow_pages)."""
    url = f"{ctx.at(GITHUB_API)}/repos/{repo}/releases?per_page=100"
    out: list[dict[str, Any]] = []
    for page in follow_pages(ctx, url, lambda u: api_get(ctx, u)):
        doc = page.json()
        if not isinstance(doc, list):
            raise DownloadError(f"GET {page.shown}: expected a list of releases")
        out.extend(r for r in doc if isinstance(r, dict))
    return out


def _text(value: Any) -> str | None:
    """A string field of an API object; anything else (a broken or hostile answer) reads as absent."""
    return value if isinstance(value, str) and value else None


def _parse_time(text: Any) -> datetime.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _digest(asset: Mapping[str, Any]) -> str | None:
    d = asset.get("digest")
    return d.split(":", 1)[1].lower() if isinstance(d, str) and d.startswith("sha256:") else None


def rows_from_releases(source: str, repo: str, rels: Iterable[Mapping[str, Any]], fetched: str) -> list[Row]:
    """Rows from GitHub Releases API objects (``GET /repos/{repo}/releases``).

    Community repositories rebuild the same filename in later releases: the newest release gives the
    URL and the others are kept as ``alt_release_tags``. The official repository's assets are all kept
    (the same filename on two tags is two real files). A release without a tag name, an asset without a
    file name, or a field of the wrong type is read as absent: the answer is untrusted."""
    community = source.startswith("community:")
    rows: list[Row] = []
    by_name: dict[str, Row] = {}
    ordered = sorted(
        (r for r in rels if not r.get("draft") and _text(r.get("tag_name"))),
        key=lambda r: _text(r.get("published_at")) or _text(r.get("created_at")) or "",
        reverse=True,
    )
    for rel in ordered:
        tag = rel["tag_name"]
        published = _parse_time(rel.get("published_at"))
        assets = rel.get("assets")
        for asset in assets if isinstance(assets, list) else ():
            fname = _text(asset.get("name")) if isinstance(asset, dict) else None
            if fname is None or not fname.endswith(".whl"):
                continue
            created = _parse_time(asset.get("created_at"))
            added_later = bool(published and created and created - published > ADDED_LATER_AFTER)
            if community and fname in by_name:
                by_name[fname].setdefault("alt_release_tags", []).append(tag)
                continue
            row = {
                "source": source,
                "filename": fname,
                "url": _text(asset.get("browser_download_url")),
                "release_tag": tag,
                "sha256": _digest(asset),
                "evidence": f"github-api:{repo} release {tag} asset"
                + (" (added after the release)" if added_later else "")
                + f" (fetched {fetched})",
                "in_tag_matrix": not added_later,
            }
            rows.append(row)
            by_name[fname] = row
    return rows


def release_asset(ctx: SourceContext, url: str) -> tuple[str, str, str] | None:
    """(owner/repo, tag, file name) of a release asset URL on GitHub (as reached here), else None."""
    return release_asset_on(ctx.at(GITHUB_WEB), url)


def release_asset_on(web: str, url: str) -> tuple[str, str, str] | None:
    """(owner/repo, tag, file name) of a release asset URL under the GitHub web base ``web``."""
    web = web.rstrip("/")
    if not url.startswith(web + "/"):
        return None
    parts = urlsplit(url[len(web) :]).path.split("/")
    # ['', owner, repo, 'releases', 'download', tag, file]
    if len(parts) != 7 or parts[3:5] != ["releases", "download"] or not all(parts[1:3]):
        return None
    return f"{parts[1]}/{parts[2]}", unquote(parts[5]), unquote(parts[6])


class GithubReleases:
    name = "github-releases"

    def list_rows(self, ctx: SourceContext, source: str, config: Mapping[str, Any], fetched: str) -> Listing:
        repo = config["repo"]
        rows = rows_from_releases(source, repo, releases(ctx, repo), fetched)
        return Listing(rows, [{"name": f"github:{repo}", "entries": len(rows), "fetched": fetched}])

    def published_digest(
        self, ctx: SourceContext, ref: WheelRef, config: Mapping[str, Any]
    ) -> PublishedDigest | None:
        found = release_asset(ctx, ref.url)
        if found is None:
            return None
        repo, tag, _file = found
        api = f"{ctx.at(GITHUB_API)}/repos/{repo}/releases/tags/{quote(tag, safe='')}"
        page = api_get(ctx, api, allow_404=True)
        where = redact(api)
        if page.status == 404:
            return PublishedDigest(None, "github-release-asset", where, f"no release {tag} in {repo}")
        doc = page.json()
        assets = doc.get("assets") if isinstance(doc, dict) else None
        for asset in assets if isinstance(assets, list) else ():
            if isinstance(asset, dict) and asset.get("name") == ref.filename:
                sha = _digest(asset)
                note = None if sha else "GitHub records no digest for this asset (uploaded before mid-2025)"
                return PublishedDigest(sha, "github-release-asset", where, note)
        return PublishedDigest(
            None, "github-release-asset", where, f"release {tag} has no asset {ref.filename}"
        )


KIND = GithubReleases()
