"""Keeping the wheel index fresh: ``flashdoctor wheels --refresh`` (online) and which index is in use.

:func:`refresh_index` reads every configured source live (data/wheel_sources.json; an ``opt_in`` source
only when named) through its kind (flashdoctor.actions.net.sources) and flashdoctor's one HTTP client,
rebuilds the index with the same rules as the committed one (flashdoctor.decide.wheels.builder), keeps
what the index in use knew of each file that the publisher does not say (digests, the torch a wheel was
built against: decide.wheels.digests.carry_known) and the entries of the sources it did not read, checks
the result against the schema, and writes it atomically to ``<cache>/index/wheels_index.json``
(``$FLASHDOCTOR_CACHE_DIR``, else platformdirs' user cache dir). Later runs use it while its data are
newer than the bundled index's and not dated after today (:func:`current_index`, decide.wheels.location).
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flashdoctor.actions.cache import atomic_write_bytes, cache_root
from flashdoctor.decide.wheels.freshness import stale_index_finding
from flashdoctor.decide.wheels.location import (
    INDEX_FILENAME,
    IndexLocation,
    locate_index,
)
from flashdoctor.errors import UsageError
from flashdoctor.model.findings import Finding

# The network and the builder are imported by a refresh only (refresh_index): `check` reads the index's date.
if TYPE_CHECKING:
    from flashdoctor.actions.net.http import Http

REFRESHED_DIR = "index"
# YYYY-MM-DD: the day taken as today for the index's age (reproducible output, tests)
TODAY_VAR = "FLASHDOCTOR_TODAY"


def refreshed_index_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where a refresh writes its index: ``<cache>/index/wheels_index.json``."""
    return cache_root(environ) / REFRESHED_DIR / INDEX_FILENAME


def current_index(
    index_path: str | None = None,
    environ: Mapping[str, str] | None = None,
    dated: bool = True,
    today: datetime.date | None = None,
) -> IndexLocation:
    """The index in use: ``--index FILE``, $FLASHDOCTOR_WHEELS_INDEX, the refreshed one while newer than
    the bundled one and not dated after ``today`` (default :func:`today_of` ``environ``), else the bundled
    one (``.describe()`` says which, for people). ``dated=False``: a caller that needs only the path
    (locate_index reads no date unless two indexes must be compared)."""
    day = today_of(environ) if today is None else today
    return locate_index(index_path, environ, refreshed_index_path(environ), dated=dated, today=day)


def today_of(environ: Mapping[str, str] | None = None) -> datetime.date:
    """Today (UTC), or the day ``$FLASHDOCTOR_TODAY`` names (YYYY-MM-DD)."""
    text = (environ or {}).get(TODAY_VAR)
    if text:
        try:
            return datetime.date.fromisoformat(text)
        except ValueError:
            raise UsageError(f"${TODAY_VAR}={text[:40]!r} is not a date (YYYY-MM-DD)") from None
    return datetime.datetime.now(datetime.timezone.utc).date()


def index_status(
    index_path: str | None = None,
    environ: Mapping[str, str] | None = None,
    today: datetime.date | None = None,
) -> tuple[IndexLocation, Finding | None]:
    """The index in use and, when it is older than 60 days, the ``wheel-index-stale`` finding for
    ``check`` (decide.wheels.freshness). ``today`` (default :func:`today_of` ``environ``) both picks the
    index (a refreshed one dated after it is passed over) and judges its age."""
    day = today_of(environ) if today is None else today
    location = current_index(index_path, environ, today=day)
    return location, stale_index_finding(location, day)


@dataclass
class RefreshResult:
    path: Path
    generated: str
    sources: list[str]  # the sources read live
    entries: int
    by_source: dict[str, int]
    with_sha256: int
    carried_from: str | None  # the index whose knowledge was kept (None: none could be read)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    in_use: IndexLocation | None = None  # the index later runs use (the refreshed one while it is newer)
    unlisted: dict[str, int] = field(default_factory=dict)  # source -> its entries kept: it listed no wheel

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "generated": self.generated,
            "sources": self.sources,
            "entries": self.entries,
            "by_source": self.by_source,
            "with_sha256": self.with_sha256,
            "carried_from": self.carried_from,
            "inputs": self.inputs,
            "in_use": None if self.in_use is None else self.in_use.to_json(),
            "unlisted": self.unlisted,
        }


def _names(config: Mapping[str, Mapping[str, Any]], only: Sequence[str]) -> list[str]:
    unknown = [n for n in only if n not in config]
    if unknown:
        raise UsageError(
            f"unknown wheel source(s) {', '.join(unknown)}",
            hint=f"known: {', '.join(config)}",
        )
    if only:
        return list(dict.fromkeys(only))
    return [n for n, c in config.items() if not c.get("opt_in")]


def _previous(location: IndexLocation | None) -> tuple[dict[str, Any], Path] | None:
    """The index whose knowledge a refresh keeps, and its path: the index in use when it loads (schema
    and entry checks), else the bundled one (a refreshed index broken on disk is replaced, not built on,
    and not dropped with every entry of the sources not read), else None."""
    from flashdoctor.decide.wheels.index import load_index, read_index_document
    from flashdoctor.decide.wheels.location import WheelIndexError, bundled_index_path

    for path in (None if location is None else location.path, bundled_index_path()):
        if path is None:
            continue
        try:
            load_index(path)
            doc = read_index_document(path)[1]
        except WheelIndexError:
            continue
        return doc, path
    return None


def refresh_index(
    only: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    rewrites: Mapping[str, str] | None = None,
    http: Http | None = None,
    today: str | None = None,
    max_pages: int = 50,
    on_source: Callable[[str], None] | None = None,
    max_bytes: int | None = None,
) -> RefreshResult:
    """Rebuild the wheel index from the live sources into flashdoctor's cache (see the module's doc).

    ``only``: the sources to read (default: every source that is not ``opt_in``); ``rewrites``: where
    each public endpoint is reached (loopback mirrors in tests); ``on_source``: called with each source's
    name before it is read (progress); ``max_bytes``: what the listings of all sources may add up to
    (default MAX_REFRESH_BYTES; each source's are bounded on their own too, MAX_SOURCE_BYTES). Network
    failures (TooLarge past a bound) raise NetworkError; a digest that changed since
    the index in use, or an index the schema refuses, raise UsageError; nothing is written then."""
    from flashdoctor.actions.net.http import TOKEN_HOSTS, Http, HttpPolicy
    from flashdoctor.actions.net.sources import (
        GITHUB_API,
        MAX_REFRESH_BYTES,
        SourceContext,
        live_rows,
        wheel_sources,
    )
    from flashdoctor.actions.net.urls import host_entry
    from flashdoctor.decide.wheels import builder
    from flashdoctor.decide.wheels.digests import DigestConflict

    config = wheel_sources()
    names = _names(config, only)
    fetched = today or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    env = environ
    own_http = http is None
    if http is None:
        # GITHUB_TOKEN goes to the GitHub API (the real one, or where ``rewrites`` puts it) and no other
        api = (rewrites or {}).get(GITHUB_API)
        hosts = {host_entry(api)} if api else set()
        http = Http(HttpPolicy(token_hosts=TOKEN_HOSTS | hosts), environ)
    ctx = SourceContext(http, dict(rewrites or {}), max_pages=max_pages)
    listed: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
    hint = "a real refresh of every source reads a few tens of MB: the servers (or the --mirror) send something else"
    try:
        with http.budget(
            MAX_REFRESH_BYTES if max_bytes is None else max_bytes,
            "wheels --refresh, all its sources together",
            hint,
        ):
            for name in names:
                if on_source is not None:
                    on_source(name)
                listed[name] = live_rows(ctx, [name], fetched, config)
    finally:
        if own_http:
            http.close()
    try:
        location: IndexLocation | None = current_index(None, env)
    except UsageError:
        location = None
    found = _previous(location)
    previous, carried_from = (None, None) if found is None else found
    # A source that listed no wheel where the index in use has entries of it (a broken or emptied mirror, a
    # listing cut short upstream) does not erase them: its entries are kept as they were, and said.
    had = Counter(w.get("source") for w in (previous or {}).get("wheels") or ())
    unlisted = {name: had[name] for name, (got, _inputs) in listed.items() if not got and had[name]}
    taken = [n for n in names if n not in unlisted]
    rows = [r for n in taken for r in listed[n][0]]
    inputs = [i for n in taken for i in listed[n][1]]
    try:
        if previous is not None:
            doc = builder.refresh(previous, taken, rows, inputs, config, generated=fetched)
        else:
            doc = builder.assemble(rows, "live", inputs, config, generated=fetched)
    except (builder.ListingError, DigestConflict) as exc:
        raise UsageError(f"wheel index refresh: {exc}") from None
    if set(taken) >= {n for n, c in config.items() if not c.get("opt_in")}:
        doc["built_from"] = "live"
    path = refreshed_index_path(env)
    atomic_write_bytes(path, builder.dump_index(doc).encode("utf-8"))
    by_source = Counter(str(w["source"]) for w in doc["wheels"])
    return RefreshResult(
        path=path,
        generated=str(doc["generated"]),
        sources=names,
        entries=len(doc["wheels"]),
        by_source=dict(sorted(by_source.items())),
        with_sha256=sum(1 for w in doc["wheels"] if w.get("sha256")),
        carried_from=None if carried_from is None else str(carried_from),
        inputs=inputs,
        in_use=current_index(None, env),
        unlisted=unlisted,
    )


__all__ = [
    "RefreshResult",
    "current_index",
    "index_status",
    "refresh_index",
    "refreshed_index_path",
    "today_of",
]
