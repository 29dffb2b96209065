"""Find a wheel on a PEP 503 "simple" index (``--index-url``): a mirror or an air-gapped devpi/Artifactory.

The project page ``<index>/<normalized name>/`` lists files as anchors; the ``#sha256=`` fragment, when
present, is the file's digest (PEP 503). A PEP 691 JSON page is accepted too (``files[].url``,
``files[].hashes.sha256``).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from packaging.utils import canonicalize_name

from flashdoctor.actions.net.download import DownloadError, DownloadPolicy, download, redact
from flashdoctor.model.plan import WheelRef


@dataclass(frozen=True)
class IndexFile:
    filename: str
    url: str
    sha256: str | None


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href)


def parse_simple_page(text: str, page_url: str) -> list[IndexFile]:
    """Files on a PEP 503 HTML or PEP 691 JSON project page."""
    out = []
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError:
            doc = {}
        for f in doc.get("files") or []:
            if isinstance(f, dict) and f.get("filename") and f.get("url"):
                sha = (f.get("hashes") or {}).get("sha256")
                out.append(IndexFile(f["filename"], urljoin(page_url, f["url"]), sha))
        return out
    p = _Anchors()
    p.feed(text)
    for href in p.hrefs:
        url = urljoin(page_url, href)
        parts = urlsplit(url)
        sha = None
        if parts.fragment.startswith("sha256="):
            sha = parts.fragment[len("sha256=") :].lower()
        filename = unquote(parts.path.rsplit("/", 1)[-1])
        out.append(IndexFile(filename, url.split("#", 1)[0], sha))
    return out


def resolve_on_index(
    index_url: str,
    ref: WheelRef,
    dist: str,
    policy: DownloadPolicy,
    environ: Mapping[str, str],
    tmp_dir: Path,
) -> WheelRef:
    """The same wheel (by file name) on ``index_url``. Raises DownloadError when it is not listed."""
    page = index_url.rstrip("/") + "/" + canonicalize_name(dist) + "/"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="index-", suffix=".part", dir=tmp_dir)
    os.close(fd)
    path = Path(name)
    try:
        download(
            page, path, policy=replace(policy, expect_zip=False), environ=environ, name=f"{dist} index page"
        )
        text = path.read_text(encoding="utf-8", errors="replace")
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
    files = parse_simple_page(text, page)
    for f in files:
        if f.filename == ref.filename:
            sha = ref.sha256
            if ref.sha256 and f.sha256 and f.sha256 != ref.sha256.lower():
                raise DownloadError(
                    f"the index {redact(index_url)} lists {ref.filename} with sha256 {f.sha256}, "
                    f"but flashdoctor's wheel index says {ref.sha256}: refusing a wheel that differs",
                )
            return replace(ref, url=f.url, sha256=sha or f.sha256)
    raise DownloadError(
        f"{ref.filename} is not on the index {redact(index_url)} ({len(files)} files listed for {dist})",
        hint="copy the wheel into the mirror, or put it in a directory and pass --wheelhouse DIR",
    )
