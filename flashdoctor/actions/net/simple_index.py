"""Find a wheel on a PEP 503/691 "simple" index (``--index-url``): a mirror or an air-gapped
devpi/Artifactory. The page is read by the one parser (flashdoctor.actions.net.pep503); its ``#sha256=``
fragment (or PEP 691 ``hashes``), when present, is the file's published digest.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from flashdoctor.actions.net.errors import DownloadError
from flashdoctor.actions.net.http import Http
from flashdoctor.actions.net.pep503 import IndexFile, fetch_project, parse_project_page
from flashdoctor.actions.net.urls import redact
from flashdoctor.model.plan import WheelRef


@dataclass(frozen=True)
class OnIndex:
    ref: WheelRef  # the planned wheel with the mirror's URL (and its digest, when the mirror lists one)
    page: str  # the project page (redacted)
    listed_sha256: str | None  # what the mirror lists for the file


def parse_simple_page(text: str, page_url: str) -> list[IndexFile]:
    """Files on a PEP 503 HTML or PEP 691 JSON project page (flashdoctor.actions.net.pep503)."""
    return parse_project_page(text, page_url)


def resolve_on_index(index_url: str, ref: WheelRef, dist: str, http: Http) -> OnIndex:
    """The same wheel (by file name) on ``index_url``. Raises DownloadError when it is not listed, or
    listed with a digest other than the one flashdoctor's wheel index has."""
    page, files = fetch_project(http, index_url, dist)
    for f in files:
        if f.filename != ref.filename:
            continue
        if ref.sha256 and f.sha256 and f.sha256 != ref.sha256.lower():
            raise DownloadError(
                f"the index {redact(index_url)} lists {ref.filename} with sha256 {f.sha256}, "
                f"but flashdoctor's wheel index says {ref.sha256}: refusing a wheel that differs",
            )
        return OnIndex(replace(ref, url=f.url, sha256=ref.sha256 or f.sha256), page.shown, f.sha256)
    raise DownloadError(
        f"{ref.filename} is not on the index {redact(index_url)} ({len(files)} files listed for {dist})",
        hint="copy the wheel into the mirror, or put it in a directory and pass --wheelhouse DIR",
    )
