"""Wheel source kind "pypi-json": a project's files on PyPI, from its JSON API.

Listing: GET {base}/pypi/{project}/json; every wheel of every release is a row whose URL is the file's
own ``url`` from the document, resolved against it (the hashed path pip downloads,
files.pythonhosted.org/packages/<blake2b_256 split 2/2/60>/<file>; never the legacy
packages/<python_version>/<p>/<project>/<file> path, which no longer serves every file), and whose
sha256 is its ``digests.sha256``. From the public PyPI, a URL whose path is that hashed path is written
with the public file host (a proxy or stand-in may serve the document with relative URLs). Digest lookup for one file:
GET {base}/pypi/{project}/{version}/json and that file's ``digests.sha256``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from flashdoctor.actions.net.errors import DownloadError
from flashdoctor.actions.net.sources.base import (
    PYPI,
    PYPI_FILES,
    Listing,
    PublishedDigest,
    Row,
    SourceContext,
)
from flashdoctor.actions.net.urls import redact
from flashdoctor.model.plan import WheelRef


def _document(ctx: SourceContext, url: str) -> dict[str, Any] | None:
    page = ctx.http.get(url, accept="application/json")
    if page.status == 404:
        return None
    if page.status != 200:
        raise DownloadError(f"GET {page.shown}: HTTP {page.status} {page.reason}")
    doc = page.json()
    if not isinstance(doc, dict):
        raise DownloadError(f"GET {page.shown}: not a PyPI JSON document")
    return doc


def _sha(f: Mapping[str, Any]) -> str | None:
    d = f.get("digests")
    s = d.get("sha256") if isinstance(d, dict) else None
    return s.lower() if isinstance(s, str) and s else None


def file_url(doc_url: str, f: Mapping[str, Any], public: bool) -> str:
    """A file's URL from its JSON entry, resolved against the document. ``public``: the document is the
    public PyPI's, and a URL that ends in the file's hashed storage path (from ``digests.blake2b_256``)
    is given on the public file host."""
    url = urljoin(doc_url, str(f["url"]))
    d = f.get("digests")
    b2 = d.get("blake2b_256") if isinstance(d, dict) else None
    if public and isinstance(b2, str) and len(b2) == 64 and all(c in "0123456789abcdef" for c in b2):
        hashed = f"packages/{b2[:2]}/{b2[2:4]}/{b2[4:]}/{quote(f['filename'])}"
        if urlsplit(url).path.endswith("/" + hashed):
            return f"{PYPI_FILES}/{hashed}"
    return url


def rows_from_document(
    source: str, project: str, doc: Mapping[str, Any], doc_url: str, fetched: str, public: bool = False
) -> list[Row]:
    """Rows for the wheels of a JSON API document; each URL is the document's own (:func:`file_url`)."""
    releases = doc.get("releases")
    if not isinstance(releases, dict):
        raise DownloadError(f"GET {redact(doc_url)}: no 'releases' in the document")
    rows = []
    for version, files in releases.items():
        for f in files if isinstance(files, list) else ():
            if not isinstance(f, dict) or f.get("packagetype") != "bdist_wheel":
                continue
            if not isinstance(f.get("filename"), str) or not isinstance(f.get("url"), str):
                continue
            rows.append(
                {
                    "source": source,
                    "filename": f["filename"],
                    "url": file_url(doc_url, f, public),
                    "sha256": _sha(f),
                    "requires_python": rp if isinstance(rp := f.get("requires_python"), str) and rp else None,
                    "yanked": bool(f.get("yanked")),
                    "evidence": f"pypi-json:{project} {version} uploaded {f.get('upload_time', '?')} "
                    f"(fetched {fetched})",
                }
            )
    return rows


class PypiJson:
    name = "pypi-json"

    def list_rows(self, ctx: SourceContext, source: str, config: Mapping[str, Any], fetched: str) -> Listing:
        project = config["project"]
        base = ctx.at(config.get("base") or PYPI).rstrip("/")
        url = f"{base}/pypi/{project}/json"
        doc = _document(ctx, url)
        if doc is None:
            raise DownloadError(f"GET {redact(url)}: HTTP 404 (no project {project})")
        rows = rows_from_document(source, project, doc, url, fetched, public=base == PYPI)
        return Listing(rows, [{"name": f"pypi:{project}", "entries": len(rows), "fetched": fetched}])

    def published_digest(
        self, ctx: SourceContext, ref: WheelRef, config: Mapping[str, Any]
    ) -> PublishedDigest | None:
        base = config.get("base") or PYPI
        if not ctx.same_host(ref.url, base, PYPI_FILES):
            return None
        try:
            _name, version, _b, _t = parse_wheel_filename(ref.filename)
        except InvalidWheelFilename:
            return None
        project = config["project"]
        url = f"{ctx.at(base).rstrip('/')}/pypi/{project}/{quote(str(version))}/json"
        doc = _document(ctx, url)
        where = redact(url)
        if doc is None:
            return PublishedDigest(None, "pypi-json", where, f"PyPI has no release {version} of {project}")
        urls = doc.get("urls")
        for f in urls if isinstance(urls, list) else ():
            if isinstance(f, dict) and f.get("filename") == ref.filename:
                sha = _sha(f)
                return PublishedDigest(sha, "pypi-json", where, None if sha else "PyPI lists no digest")
        return PublishedDigest(None, "pypi-json", where, f"PyPI's {version} has no file {ref.filename}")


KIND = PypiJson()
