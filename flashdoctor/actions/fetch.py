"""Get a checked wheel file for a WheelRef: wheelhouse, then cache, then (mirror or) network.

Whatever the source, the file handed back has been checked: its sha256 against the published digest when
there is one (a mismatch deletes the file and fails loudly), and its contents as a wheel of the expected
distribution and version (an HTML page saved as .whl never reaches pip or the cache).

With ``stage`` (a private directory of this process: the installer's), the file handed back is a copy
made there, and the checks are of that copy, hashed as it was written: a file in a shared wheelhouse or
cache that is swapped after its check cannot reach pip, because pip never reads it.
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
    redact,
)
from flashdoctor.actions.net.simple_index import resolve_on_index
from flashdoctor.actions.wheelfile import WheelInfo, inspect_wheel
from flashdoctor.actions.wheelhouse import Wheelhouse
from flashdoctor.model.plan import WheelRef

Origin = Literal["wheelhouse", "cache", "download", "local"]


class ChecksumError(DownloadError):
    pass


@dataclass(frozen=True)
class Artifact:
    path: Path
    sha256: str
    origin: Origin
    sha256_from: Literal["index", "computed"]  # "computed": the index had none; we hashed what we got
    info: WheelInfo
    url: str  # the URL it came from (redacted), or the file path
    ref: WheelRef
    attempts: int = 0
    resumed: bool = False


@dataclass(frozen=True)
class FetchOptions:
    cache: WheelCache
    policy: DownloadPolicy = field(default_factory=DownloadPolicy)
    wheelhouse: Wheelhouse | None = None
    index_url: str | None = None
    progress: Progress | None = None
    on_wait: Callable[[], None] | None = None  # another process holds the download lock


def _checked(
    path: Path,
    ref: WheelRef,
    origin: Origin,
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
    if ref.sha256 and digest != ref.sha256.lower():
        if stage is not None:
            path.unlink(missing_ok=True)
        raise ChecksumError(
            f"sha256 mismatch for {ref.filename} from {origin} ({url or path}): "
            f"expected {ref.sha256.lower()}, got {digest}",
            hint="the file is not the one the index lists (tampered, or replaced upstream); it was not used",
        )
    try:
        info = inspect_wheel(path, ref.filename)
    except NotAWheelError:
        if stage is not None:
            path.unlink(missing_ok=True)
        raise
    return Artifact(path, digest, origin, "index" if ref.sha256 else "computed", info, url or str(path), ref)


def obtain(
    ref: WheelRef, opts: FetchOptions, environ: Mapping[str, str], dist: str, stage: Path | None = None
) -> Artifact:
    """The checked wheel for ``ref``; with ``stage`` a private copy in that directory (module docstring)."""
    if ref.url.startswith("file:"):
        p = Path(unquote(urlsplit(ref.url).path))
        if not p.is_file():
            raise DownloadError(f"{p} does not exist")
        return _checked(p, ref, "local", url=str(p), stage=stage)
    if opts.wheelhouse is not None:
        found = opts.wheelhouse.find(ref.filename)
        if found is not None:  # a wrong file there fails loudly
            return _checked(found, ref, "wheelhouse", url=str(found), stage=stage)
    hit = _cache_lookup(ref, opts.cache, stage)
    if hit is not None:
        return hit
    if opts.index_url:
        ref = resolve_on_index(opts.index_url, ref, dist, opts.policy, environ, opts.cache.root / "tmp")
        hit = _cache_lookup(ref, opts.cache, stage)
        if hit is not None:
            return hit
    art = _download(ref, opts, environ)
    if opts.wheelhouse is not None:
        opts.wheelhouse.add(art.path, ref.filename)
    if stage is None:
        return art
    staged = _checked(art.path, art.ref, art.origin, sha=art.sha256, url=art.url, stage=stage)
    return replace(staged, sha256_from=art.sha256_from, attempts=art.attempts, resumed=art.resumed)


def _cache_lookup(ref: WheelRef, cache: WheelCache, stage: Path | None = None) -> Artifact | None:
    e = cache.get(sha256=ref.sha256, filename=ref.filename) if ref.sha256 else cache.get(url=ref.url)
    if e is None or e.path.name != ref.filename:
        return None
    try:
        return _checked(e.path, ref, "cache", sha=e.sha256, url=redact(ref.url), stage=stage)
    except NotAWheelError:
        with contextlib.suppress(OSError):
            e.path.unlink()
        return None


def _download(ref: WheelRef, opts: FetchOptions, environ: Mapping[str, str]) -> Artifact:
    cache = opts.cache
    key = ref.sha256.lower() if ref.sha256 else "url-" + url_key(ref.url)
    with cache.lock(key, on_wait=opts.on_wait):
        hit = _cache_lookup(ref, cache)  # another process may have fetched it while we waited
        if hit is not None:
            return hit
        cache.clean_stale_tmp()  # partial downloads abandoned long ago (not this key's: it is locked)
        side = cache.tmp_path(key).with_name(cache.tmp_path(key).name + ".json")
        validators: dict[str, str] = {}
        with contextlib.suppress(OSError, ValueError, AttributeError):
            rec = json.loads(read_bounded(side, 1 << 16).decode("utf-8"))
            if rec.get("url") == ref.url:
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
                atomic_write_bytes(side, json.dumps({"url": ref.url, "validators": v}).encode())

        tries = 0
        try:
            while True:
                tries += 1
                res = download(
                    ref.url,
                    tmp,
                    policy=opts.policy,
                    environ=environ,
                    progress=opts.progress,
                    name=ref.filename,
                    validators=validators,
                    on_validators=persist,
                )
                if ref.sha256 and res.sha256 != ref.sha256.lower() and res.resumed and tries == 1:
                    # A resumed download may have stitched two versions of a file: once, from zero.
                    tmp.unlink()
                    validators = {}
                    continue
                art = _checked(tmp, ref, "download", sha=res.sha256, url=res.final_url)
                break
            entry = cache.commit(tmp, art.sha256, ref.filename, url=ref.url)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        finally:
            with contextlib.suppress(OSError):
                side.unlink()
        return Artifact(
            entry.path,
            art.sha256,
            "download",
            art.sha256_from,
            art.info,
            res.final_url,
            ref,
            attempts=res.attempts,
            resumed=res.resumed,
        )
