"""Get a checked wheel file for a WheelRef: wheelhouse, then cache, then (mirror or) network.

Whatever the source, the file handed back has been checked: its sha256 against a published digest when
one is known (a mismatch deletes the file and fails loudly), and its contents as a wheel of the expected
distribution and version (an HTML page saved as .whl never reaches pip or the cache).

Where the plan has no digest, the publisher's is looked up *before* the download (the wheel source kind
of the plan's source: the GitHub release asset's ``digest``, the index page's ``#sha256=`` fragment,
PyPI's JSON ``digests``; flashdoctor.actions.net.sources) and the download checked against it. When
there is none, or the lookup fails, the file is hashed and recorded, and the artifact says so
(``Artifact.verification``). With an --index-url mirror the publisher is not asked: the mirror's page
is the source (an air-gapped mirror is its use).

With ``stage`` (a private directory of this process: the installer's), the file handed back is a copy
made there, and the checks are of that copy, hashed as it was written: a file in a shared wheelhouse or
cache that is swapped after its check cannot reach pip, because pip never reads it.

URLs are written to the cache's records and sidecars redacted (no credentials).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from flashdoctor.actions.cache import (
    WheelCache,
    atomic_write_bytes,
    copy_new,
    read_bounded,
    sha256_file,
    url_key,
)
from flashdoctor.actions.net.download import (
    DiskError,
    DownloadError,
    DownloadPolicy,
    NotAWheelError,
    Progress,
    download,
)
from flashdoctor.actions.net.http import Http
from flashdoctor.actions.net.simple_index import resolve_on_index
from flashdoctor.actions.net.sources import SourceContext, published_digest
from flashdoctor.actions.net.urls import redact
from flashdoctor.actions.wheelfile import WheelInfo, inspect_wheel
from flashdoctor.actions.wheelhouse import Wheelhouse
from flashdoctor.model.plan import WheelRef
from flashdoctor.model.verification import (
    DIGEST_SOURCES,
    Verification,
    is_sha256,
    published,
    recorded,
)

Origin = Literal["wheelhouse", "cache", "download", "local"]


class ChecksumError(DownloadError):
    pass


@dataclass(frozen=True)
class Artifact:
    path: Path
    sha256: str
    origin: Origin
    # "index": checked against a digest published before the download (the wheel index, the --index-url
    # page, or the publisher's own); "computed": none was known, the bytes were hashed and recorded.
    sha256_from: Literal["index", "computed"]
    info: WheelInfo
    url: str  # the URL it came from (redacted), or the file path
    ref: WheelRef
    attempts: int = 0
    resumed: bool = False
    verification: Verification = field(default_factory=recorded)


@dataclass(frozen=True)
class DigestLookup:
    """Ask the publisher for a digest the plan lacks. ``rewrites`` reach the public APIs elsewhere (tests:
    loopback mirrors of the GitHub API, PyPI and the PyTorch index)."""

    rewrites: Mapping[str, str] = field(default_factory=dict)
    sources: Mapping[str, Mapping[str, object]] | None = None  # default: data/wheel_sources.json


@dataclass(frozen=True)
class FetchOptions:
    cache: WheelCache
    policy: DownloadPolicy = field(default_factory=DownloadPolicy)
    wheelhouse: Wheelhouse | None = None
    index_url: str | None = None
    progress: Progress | None = None
    on_wait: Callable[[], None] | None = None  # another process holds the download lock
    digests: DigestLookup | None = field(default_factory=DigestLookup)  # None: never ask a publisher
    digest_from: str = "wheel-index"  # where a planned sha256 came from (a --plan file: "plan-file")


def known_verification(ref: WheelRef, opts: FetchOptions) -> Verification:
    """Where the digest ``ref`` carries came from (a plan file, a flashdoctor build's record, the wheel
    index); "recorded" when it carries none. A plan file's digest is the file's, whatever source it names."""
    if ref.sha256 and ref.source == "wheelhouse" and opts.digest_from != "plan-file":
        return published("build-record")  # a flashdoctor build: its build.json recorded the digest
    return published(opts.digest_from) if ref.sha256 else recorded()


def _checked(
    path: Path,
    ref: WheelRef,
    origin: Origin,
    verification: Verification,
    sha: str | None = None,
    url: str = "",
    stage: Path | None = None,
) -> Artifact:
    """Check ``path`` (or, with ``stage``, a private copy of it made there: the copy is what is checked
    and handed back) against the published digest and as a wheel of ``ref``."""
    if stage is not None:
        try:
            path, digest = copy_new(path, stage, ref.filename, mode=0o600)
        except OSError as exc:
            raise DiskError(
                f"cannot copy {ref.filename} into {stage}: {exc.strerror or exc}",
                hint="free disk space in the temporary directory (TMPDIR)",
            ) from None
        if sha and digest != sha:
            path.unlink(missing_ok=True)
            raise ChecksumError(
                f"{ref.filename} from {origin} ({url or path}) changed after it was checked: "
                f"sha256 {sha} when checked, {digest} when copied for the install",
                hint="another process is writing that file; it was not used",
            )
    else:
        digest = sha or sha256_file(path)
    if not ref.sha256 and verification.published:
        verification = recorded()
    if ref.sha256 and digest != ref.sha256.lower():
        if stage is not None:
            path.unlink(missing_ok=True)
        src = DIGEST_SOURCES.get(verification.digest_from or "", "the plan")
        raise ChecksumError(
            f"sha256 mismatch for {ref.filename} from {origin} ({url or path}): "
            f"expected {ref.sha256.lower()}, got {digest}; the expected digest comes from {src}",
            hint="the file is not the one its publisher lists (tampered, or replaced upstream); it was not used",
        )
    try:
        info = inspect_wheel(path, ref.filename)
    except NotAWheelError:
        if stage is not None:
            path.unlink(missing_ok=True)
        raise
    sha_from: Literal["index", "computed"] = "index" if verification.published else "computed"
    return Artifact(path, digest, origin, sha_from, info, url or str(path), ref, verification=verification)


def local_file(ref: WheelRef) -> Path | None:
    """The file a ``file:`` URL names (a wheelhouse's build, a plan's local wheel); None for other URLs."""
    return Path(unquote(urlsplit(ref.url).path)) if ref.url.startswith("file:") else None


def obtain(
    ref: WheelRef,
    opts: FetchOptions,
    environ: Mapping[str, str],
    dist: str,
    stage: Path | None = None,
    pin: bool = False,
) -> Artifact:
    """The checked wheel for ``ref``; with ``stage`` a private copy in that directory (module docstring).

    ``pin`` (lock): the artifact's URL and digest are written down for other machines, so they must be
    the URL pip will fetch and the digest of what it serves: a wheelhouse file of that name (a local
    rebuild, perhaps) is not what the URL serves, and with an --index-url the mirror is asked for its URL
    even when the cache holds the file."""
    p = local_file(ref)
    if p is not None:
        if not p.is_file():
            raise DownloadError(f"{p} does not exist")
        return _checked(p, ref, "local", _local(ref, opts), url=str(p), stage=stage)
    if opts.wheelhouse is not None and not pin:
        found = opts.wheelhouse.find(ref.filename)
        if found is not None:  # a wrong file there fails loudly
            return _checked(found, ref, "wheelhouse", _local(ref, opts), url=str(found), stage=stage)
    with Http(opts.policy, environ) as http:
        verification = known_verification(ref, opts)
        _refuse_malformed(ref, verification)
        if ref.sha256 and not (pin and opts.index_url):
            hit = _cache_lookup(ref, opts.cache, verification, stage)
            if hit is not None:
                return hit
        if opts.index_url:
            on = resolve_on_index(opts.index_url, ref, dist, http)
            if not ref.sha256:
                verification = (
                    published("index-url", on.page)
                    if on.listed_sha256
                    else recorded(f"the --index-url page {on.page} lists no digest for it")
                )
            ref = on.ref
        elif not ref.sha256:
            ref, verification = _ask_publisher(ref, opts, http)
        _refuse_malformed(ref, verification)
        hit = _cache_lookup(ref, opts.cache, verification, stage)
        if hit is not None:
            return hit
        art = _download(ref, opts, http, verification)
    if opts.wheelhouse is not None:
        opts.wheelhouse.add(art.path, ref.filename)
    if stage is None:
        return art
    staged = _checked(
        art.path, art.ref, art.origin, art.verification, sha=art.sha256, url=art.url, stage=stage
    )
    return replace(staged, attempts=art.attempts, resumed=art.resumed)


def _refuse_malformed(ref: WheelRef, verification: Verification) -> None:
    """A digest that is not 64 hex digits (an index page's ``#sha256=../../x``) is refused before it is
    compared or used: it can match no file, and the cache names paths by digests."""
    if ref.sha256 and not is_sha256(ref.sha256.lower()):
        src = DIGEST_SOURCES.get(verification.digest_from or "", "the plan")
        where = f" ({verification.where})" if verification.where else ""
        raise ChecksumError(
            f"{src}{where} gives {ref.filename} a sha256 that is not one ({ref.sha256[:80]!r}): refusing it",
            hint="the index or publisher lists a malformed digest; nothing was downloaded",
        )


def _local(ref: WheelRef, opts: FetchOptions) -> Verification:
    return (
        known_verification(ref, opts)
        if ref.sha256
        else recorded("a local file; no published digest was looked up")
    )


def _ask_publisher(ref: WheelRef, opts: FetchOptions, http: Http) -> tuple[WheelRef, Verification]:
    """The plan's ref with its publisher's digest, and how it will be verified."""
    if opts.digests is None:
        return ref, recorded()
    ctx = SourceContext(http, opts.digests.rewrites)
    try:
        answer = published_digest(ctx, ref, opts.digests.sources)
    except DownloadError as exc:
        return ref, recorded(f"the digest lookup failed ({exc.message})")
    if answer is None:
        return ref, recorded()
    if answer.sha256 is None:
        return ref, recorded(answer.note or f"{answer.where} lists no digest for it")
    return replace(ref, sha256=answer.sha256), published(answer.digest_from, answer.where)


def _cache_lookup(
    ref: WheelRef, cache: WheelCache, verification: Verification, stage: Path | None = None
) -> Artifact | None:
    if ref.sha256:
        e = cache.get(sha256=ref.sha256, filename=ref.filename)
    else:
        e = cache.get(url=redact(ref.url))
        verification = recorded(verification.note or "hashed when it was first downloaded")
    if e is None or e.path.name != ref.filename:
        return None
    try:
        return _checked(e.path, ref, "cache", verification, sha=e.sha256, url=redact(ref.url), stage=stage)
    except NotAWheelError:
        with contextlib.suppress(OSError):
            e.path.unlink()
        return None


def _download(ref: WheelRef, opts: FetchOptions, http: Http, verification: Verification) -> Artifact:
    cache = opts.cache
    record_url = redact(ref.url)  # what the cache may write down: no credentials
    key = ref.sha256.lower() if ref.sha256 else "url-" + url_key(record_url)
    with cache.lock(key, on_wait=opts.on_wait):
        hit = _cache_lookup(ref, cache, verification)  # another process may have fetched it while we waited
        if hit is not None:
            return hit
        cache.clean_stale_tmp()  # partial downloads abandoned long ago (not this key's: it is locked)
        side = cache.tmp_path(key).with_name(cache.tmp_path(key).name + ".json")
        validators: dict[str, str] = {}
        with contextlib.suppress(OSError, ValueError, AttributeError):
            rec = json.loads(read_bounded(side, 1 << 16).decode("utf-8"))
            if rec.get("url") == record_url:
                validators = {
                    str(k): str(v)
                    for k, v in rec.get("validators", {}).items()
                    if k in ("etag", "last-modified")
                }
        # A partial file is resumed only when it is a regular file this user owns (never a planted link).
        tmp, resumable = cache.open_part(key, resume=bool(validators))
        if not resumable:
            validators = {}

        def persist(v: dict[str, str]) -> None:
            with contextlib.suppress(OSError):
                atomic_write_bytes(side, json.dumps({"url": record_url, "validators": v}).encode())

        tries = 0
        try:
            while True:
                tries += 1
                res = download(
                    ref.url,
                    tmp,
                    policy=opts.policy,
                    progress=opts.progress,
                    name=ref.filename,
                    validators=validators,
                    on_validators=persist,
                    http=http,
                )
                if ref.sha256 and res.sha256 != ref.sha256.lower() and res.resumed and tries == 1:
                    # A resumed download may have stitched two versions of a file: once, from zero.
                    tmp.unlink()
                    validators = {}
                    continue
                art = _checked(tmp, ref, "download", verification, sha=res.sha256, url=res.final_url)
                break
            entry = cache.commit(tmp, art.sha256, ref.filename, url=record_url)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        finally:
            with contextlib.suppress(OSError):
                side.unlink()
        return replace(
            art, path=entry.path, url=res.final_url, attempts=res.attempts, resumed=res.resumed, ref=ref
        )
