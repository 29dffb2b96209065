"""Where a planned wheel comes from, in one plain line for people, and how its download will be checked.

The install plan names its wheel's source in one line ("PyTorch index download.pytorch.org/whl/cu130
(official)"); the index's research provenance of the entry (its ``evidence``) stays in ``--json`` and
``-v``. The sha256 line says what will really happen: the index's digest, else the digest the publisher
publishes for that URL, read before the download by flashdoctor.actions.fetch (a PEP 503/691 page's
``#sha256=``, a GitHub release asset's ``digest``, PyPI's JSON ``digests``, a Hugging Face file's Git LFS
sha256), else none: the download is
hashed and recorded and cannot be checked. Which publisher is asked follows the same rule as the lookup
(flashdoctor.actions.net.sources, by the source's kind in data/wheel_sources.json and the URL's host).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from flashdoctor.decide.wheels.builder import wheel_sources
from flashdoctor.decide.wheels.digests import huggingface_file, release_asset
from flashdoctor.model.plan import DigestState, WheelOrigin, WheelRef

PYPI_HOSTS = ("pypi.org", "files.pythonhosted.org")
HUGGINGFACE_HOST = "huggingface.co"

# digest_from (a key of flashdoctor.model.verification.DIGEST_SOURCES) -> how the plan words it
AT_DOWNLOAD = {
    "pep503-page": "read from the index page when downloaded",
    "github-release-asset": "read from the GitHub release asset when downloaded (where GitHub records one)",
    "pypi-json": "read from PyPI's JSON API when downloaded",
    "huggingface-lfs": "read from the Hugging Face repository's file listing when downloaded (its Git LFS sha256)",
}
NO_DIGEST = "none published for this file: the download cannot be checked against a digest (it is hashed and recorded)"


def evidence_reason(source: str, evidence: str) -> str:
    """The plan's reason that carries the index's research provenance (``-v`` and ``--json`` only)."""
    return f"source: {source}; evidence: {evidence}"


def _where(url: str) -> str:
    """host/path of the directory holding the file: "download.pytorch.org/whl/cu130"."""
    parts = urlsplit(url)
    return (parts.netloc + parts.path.rsplit("/", 1)[0]).rstrip("/")


def _hf_repo_file(config: Mapping[str, Any], url: str) -> bool:
    """Whether ``url`` downloads a file of the configured Hugging Face repository (as the lookup reads it)."""
    base = str(config.get("base") or f"https://{HUGGINGFACE_HOST}")
    return huggingface_file(base, str(config.get("repo")), url) is not None


def _digest_from(kind: str | None, url: str, config: Mapping[str, Any] | None = None) -> str | None:
    """Where the publisher's digest for ``url`` is read at download time (None: nowhere)."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        return None
    if kind == "simple-index":
        return "pep503-page" if "/" in parts.path.strip("/") else None
    if kind in ("github-releases", "find-links"):
        return "github-release-asset" if release_asset(url) is not None else None
    if kind == "pypi-json":
        return "pypi-json" if parts.netloc.lower() in PYPI_HOSTS else None
    if kind == "huggingface-repo" and config is not None:
        return "huggingface-lfs" if _hf_repo_file(config, url) else None
    return None


def _text(ref: WheelRef, config: Mapping[str, Any] | None) -> str:
    local = ref.source in ("wheelhouse", "local") or not ref.url.startswith(("https:", "http:"))
    if local:
        return f"{ref.source if ref.source in ('wheelhouse', 'local') else 'local file'}: {ref.url}"
    if config is None:
        return f"{_where(ref.url)} ({ref.source})"
    who = "community build" if config.get("community") else "official"
    kind = config.get("kind")
    asset = release_asset(ref.url) if kind in ("github-releases", "find-links") else None
    if asset is not None:
        repo = str(config.get("repo") or asset[0])
        repo = repo if repo.lower() == asset[0] else asset[0]
        return f"GitHub release {asset[1]} of {repo} ({who})"
    if kind == "simple-index":
        name = "PyTorch index" if urlsplit(ref.url).netloc.lower() == "download.pytorch.org" else "index"
        return f"{name} {_where(ref.url)} ({who})"
    if kind == "pypi-json":
        return f"PyPI project {config.get('project') or ref.filename.split('-')[0]} ({who})"
    if kind == "huggingface-repo" and _hf_repo_file(config, ref.url):
        return f"Hugging Face repository {config.get('repo')} ({who})"
    return f"{_where(ref.url)} ({ref.source}, {who})"


def wheel_origin(
    ref: WheelRef,
    evidence: str | None = None,
    sources: Mapping[str, Mapping[str, Any]] | None = None,
) -> WheelOrigin:
    """Where ``ref`` comes from and how its download will be checked (see the module's doc).
    ``sources``: the configured sources (default: data/wheel_sources.json, as the download uses)."""
    config = (wheel_sources() if sources is None else sources).get(ref.source)
    kind = None if config is None else str(config.get("kind"))
    state: DigestState
    digest_from: str | None
    if ref.sha256:
        state, digest_from, words = "known", "wheel-index", "from flashdoctor's wheel index"
    else:
        digest_from = _digest_from(kind, ref.url, config)
        state = "at-download" if digest_from else "none"
        words = AT_DOWNLOAD[digest_from] if digest_from else NO_DIGEST
    return WheelOrigin(
        text=_text(ref, config),
        community=bool(config and config.get("community")) or ref.source.startswith("community:"),
        digest=state,
        digest_from=digest_from,
        digest_text=words,
        evidence=evidence,
    )
