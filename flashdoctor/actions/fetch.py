"""Get a verified wheel file for a WheelRef: wheelhouse, then cache, then (mirror or) network.

Whatever the source, the file handed back has been checked: its sha256 against the index's digest when
there is one (a mismatch deletes the file and fails loudly), and its contents as a wheel of the expected
distribution and version (an HTML page saved as .whl never reaches pip or the cache).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from flashdoctor.actions.cache import WheelCache, atomic_write_bytes, sha256_file, url_key
from flashdoctor.actions.net.download import (
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


def _checked(path: Path, ref: WheelRef, origin: Origin, sha: str | None = None, url: str = "") -> Artifact:
    digest = sha or sha256_file(path)
    if ref.sha256 and digest != ref.sha256.lower():
        raise ChecksumError(
            f"sha256 mismatch for {ref.filename} from {origin} ({url or path}): "
            f"expected {ref.sha256.lower()}, got {digest}",
            hint="the file is not the one the index lists (tampered, or replaced upstream); it was not used",
        )
    info = inspect_wheel(path, ref.filename)
    return Artifact(path, digest, origin, "index" if ref.sha256 else "computed", info, url or str(path), ref)


def obtain(ref: WheelRef, opts: FetchOptions, environ: Mapping[str, str], dist: str) -> Artifact:
    if ref.url.startswith("file:"):
        p = Path(unquote(urlsplit(ref.url).path))
        if not p.is_file():
            raise DownloadError(f"{p} does not exist")
        return _checked(p, ref, "local", url=str(p))
    if opts.wheelhouse is not None:
        found = opts.wheelhouse.find(ref.filename)
        if found is not None:
            return _checked(found, ref, "wheelhouse", url=str(found))  # a wrong file there fails loudly
    hit = _cache_lookup(ref, opts.cache)
    if hit is not None:
        return hit
    if opts.index_url:
        ref = resolve_on_index(opts.index_url, ref, dist, opts.policy, environ, opts.cache.root / "tmp")
        hit = _cache_lookup(ref, opts.cache)
        if hit is not None:
            return hit
    art = _download(ref, opts, environ)
    if opts.wheelhouse is not None:
        opts.wheelhouse.add(art.path, ref.filename)
    return art


def _cache_lookup(ref: WheelRef, cache: WheelCache) -> Artifact | None:
    e = cache.get(sha256=ref.sha256, filename=ref.filename) if ref.sha256 else cache.get(url=ref.url)
    if e is None or e.path.name != ref.filename:
        return None
    try:
        return _checked(e.path, ref, "cache", sha=e.sha256, url=redact(ref.url))
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
        tmp = cache.tmp_path(key)
        side = tmp.with_name(tmp.name + ".json")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        validators: dict[str, str] = {}
        with contextlib.suppress(OSError, ValueError):
            rec = json.loads(side.read_text(encoding="utf-8"))
            if rec.get("url") == ref.url:
                validators = {
                    k: v for k, v in rec.get("validators", {}).items() if k in ("etag", "last-modified")
                }
        if not validators:
            with contextlib.suppress(OSError):
                tmp.unlink()

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
