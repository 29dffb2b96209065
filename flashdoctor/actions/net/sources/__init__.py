"""Wheel source kinds: a protocol (flashdoctor.actions.net.sources.base) and this registry.

A new kind is one module implementing :class:`SourceKind` and one line in :data:`KINDS`; a source of
that kind is one entry in data/wheel_sources.json. The schema (schemas/wheels-index.schema.json) takes
any kind name and the configuration keys every kind shares (repo, project, packages, indexes, base, root);
this registry rejects an unknown kind. A kind that needs a key of its own adds it to the schema too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from flashdoctor import knowledge
from flashdoctor.actions.net.sources import (
    find_links,
    github_releases,
    huggingface_repo,
    pypi_json,
    simple_index,
)
from flashdoctor.actions.net.sources.base import (
    GITHUB_API,
    GITHUB_WEB,
    HUGGINGFACE,
    MAX_REFRESH_BYTES,
    MAX_SOURCE_BYTES,
    PYPI,
    PYTORCH_WHL,
    Listing,
    PublishedDigest,
    SourceContext,
    SourceKind,
)
from flashdoctor.actions.net.urls import redact
from flashdoctor.model.plan import WheelRef

KINDS: dict[str, SourceKind] = {
    "github-releases": github_releases.KIND,
    "simple-index": simple_index.KIND,
    "pypi-json": pypi_json.KIND,
    "find-links": find_links.KIND,
    "huggingface-repo": huggingface_repo.KIND,
}


def wheel_sources() -> dict[str, dict[str, Any]]:
    """The configured sources (data/wheel_sources.json), by name."""
    data: dict[str, dict[str, Any]] = knowledge.load_data("wheel_sources")["sources"]
    return data


def public_endpoints() -> tuple[str, ...]:
    """The public endpoints the kinds and the configured sources read (what a refresh may reach at a
    mirror instead): the APIs the kinds know, then the host of each source's own base, root or index
    that none of those covers (Astral's index, windreamer's pages)."""
    out = [GITHUB_API, PYPI, PYTORCH_WHL, HUGGINGFACE]
    for config in wheel_sources().values():
        urls = [config.get("base"), config.get("root"), *(config.get("indexes") or {}).values()]
        for url in urls:
            if not isinstance(url, str) or any(url == e or url.startswith(e + "/") for e in out):
                continue
            parts = urlsplit(url)
            out.append(f"{parts.scheme}://{parts.netloc}")
    return tuple(dict.fromkeys(out))


def kind_of(config: Mapping[str, Any]) -> SourceKind:
    kind = KINDS.get(str(config.get("kind")))
    if kind is None:
        raise KeyError(f"unknown wheel source kind {config.get('kind')!r} (known: {', '.join(KINDS)})")
    return kind


def list_source(ctx: SourceContext, name: str, config: Mapping[str, Any], fetched: str) -> Listing:
    """What source ``name`` publishes now; each input record names the source it lists. Its pages add up to
    ``ctx.max_bytes`` at most (TooLarge past it: a listing cut short must not replace the source's entries)."""
    hint = "a real listing is a few MB: the server (or the --mirror) sends something else"
    with ctx.http.budget(ctx.max_bytes, f"wheel source {name}", hint):
        listing = kind_of(config).list_rows(ctx, name, config, fetched)
    for record in listing.inputs:
        record.setdefault("sources", [name])
    return listing


def live_rows(
    ctx: SourceContext,
    names: Sequence[str],
    fetched: str,
    sources: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows, inputs) of the sources ``names``, read live, in that order."""
    config = wheel_sources() if sources is None else sources
    rows: list[dict[str, Any]] = []
    inputs: list[dict[str, Any]] = []
    for name in names:
        listing = list_source(ctx, name, config[name], fetched)
        for row in listing.rows:
            # a --mirror URL's user:password@ is used to read it, never written: files are then fetched with
            # the credentials of netrc or a keyring, as pip does (docs/wheel-index.md)
            if isinstance(row.get("url"), str):
                row["url"] = redact(row["url"], drop_userinfo=True)
        rows.extend(listing.rows)
        inputs.extend(listing.inputs)
    return rows, inputs


def published_digest(
    ctx: SourceContext, ref: WheelRef, sources: Mapping[str, Mapping[str, Any]] | None = None
) -> PublishedDigest | None:
    """The digest the publisher of ``ref`` gives for it, looked up live; None when flashdoctor knows no
    way to ask (an unknown source, or a URL that is not the publisher's). Network failures raise."""
    config = (wheel_sources() if sources is None else sources).get(ref.source)
    if config is None or config.get("kind") not in KINDS:
        return None
    return kind_of(config).published_digest(ctx, ref, config)


__all__ = [
    "GITHUB_API",
    "GITHUB_WEB",
    "HUGGINGFACE",
    "KINDS",
    "MAX_REFRESH_BYTES",
    "MAX_SOURCE_BYTES",
    "PYPI",
    "PYTORCH_WHL",
    "Listing",
    "PublishedDigest",
    "SourceContext",
    "SourceKind",
    "kind_of",
    "list_source",
    "live_rows",
    "public_endpoints",
    "published_digest",
    "wheel_sources",
]
