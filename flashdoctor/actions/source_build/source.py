"""Getting the sources to build: the FA2 sdist from PyPI (cached), a local sdist or checkout, or an FA3
checkout / git URL + tag. Actions (network, disk, git); the decisions they need are in plan.py.

The sdist is fetched like any artifact, under the install policy (https only unless --allow-http; the
one HTTP client, flashdoctor.actions.net.http): the index's project page (PEP 691 JSON or PEP 503 HTML,
read by the one parser) gives the file URL and its published sha256; the file is streamed into the
content-addressed cache and checked against that digest before it is used. An sdist listed without a
digest is hashed and recorded, and the outcome says so (``SourceTree.verification``).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from packaging.version import InvalidVersion, Version

from flashdoctor.actions.net.errors import RefusedURL
from flashdoctor.actions.net.http import Http
from flashdoctor.actions.net.pep503 import SIMPLE_JSON, ProjectNotFound, fetch_project, is_json_page
from flashdoctor.actions.net.urls import check_url, parse, redact, redact_text
from flashdoctor.errors import NetworkError, UsageError
from flashdoctor.model.verification import Verification, published, recorded
from flashdoctor.probe.system import run, run_process

if TYPE_CHECKING:
    from flashdoctor.actions.net.download import DownloadPolicy

PYPI_SIMPLE = "https://pypi.org/simple"
__all__ = ["PYPI_SIMPLE", "SIMPLE_JSON", "SdistRef", "SourceTree", "download", "fetch_sdist", "find_sdist"]


@dataclass(frozen=True)
class SdistRef:
    filename: str
    url: str
    sha256: str | None
    version: str
    page: str | None = None  # the index page it was listed on (redacted)
    digest_from: str | None = None  # "pep691-page" | "pep503-page" when the page lists a digest


@dataclass(frozen=True)
class FetchedSdist:
    path: Path
    sha256: str
    verification: Verification


@dataclass(frozen=True)
class SourceTree:
    """Sources ready to build. ``setup_dir`` holds the setup.py pip builds (FA3: ``hopper/``)."""

    variant: str
    root: Path
    setup_dir: Path
    version: str
    origin: str  # "pypi:<file>", "archive:<path>", "dir:<path>", "git:<url>@<ref>"
    owned: bool  # True when flashdoctor made this copy (it may edit and delete it)
    verification: Verification | None = None  # how a downloaded sdist was checked (None: local sources)


def find_sdist(
    version: str,
    index_url: str = PYPI_SIMPLE,
    project: str = "flash-attn",
    http: Http | None = None,
    allow_http: bool = False,
) -> SdistRef:
    """Look the sdist of ``project`` ``version`` up on a simple index (PEP 691 JSON or PEP 503 HTML)."""
    check_url(index_url, allow_http)
    client = http or Http(_policy(allow_http))
    try:
        page, files = fetch_project(client, index_url, project)
    except ProjectNotFound:
        raise NetworkError(f"{redact(index_url)}: project {project} not found on the index") from None
    finally:
        if http is None:
            client.close()
    want = Version(version)
    stem = project.replace("-", "_")
    for f in files:
        m = re.fullmatch(rf"{re.escape(stem)}-(.+)\.tar\.gz", f.filename, re.IGNORECASE)
        if not m or f.yanked:
            continue
        try:
            if Version(m.group(1)) != want:
                continue
        except InvalidVersion:
            continue
        kind = "pep691-page" if is_json_page(page.body, page.content_type) else "pep503-page"
        return SdistRef(f.filename, f.url, f.sha256, version, page.shown, kind if f.sha256 else None)
    raise UsageError(f"{project} {version}: no sdist on {redact(index_url)}", hint="check --version")


def _policy(allow_http: bool, expect_zip: bool = False) -> DownloadPolicy:
    from flashdoctor.actions.net.download import DownloadPolicy

    return DownloadPolicy(allow_http=allow_http, expect_zip=expect_zip)


def fetch_sdist(
    ref: SdistRef,
    cache_dir: Path,
    policy: DownloadPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> FetchedSdist:
    """Download ``ref`` into the content-addressed artifact cache at ``cache_dir`` (the installer's
    WheelCache: verified on every hit, locked, atomic) with the installer's downloader. The result says
    whether the bytes matched a published digest or were only hashed and recorded."""
    from flashdoctor.actions.cache import WheelCache
    from flashdoctor.actions.net.download import download as fetch

    policy = policy or _policy(False)
    if ref.sha256:
        verification = published(ref.digest_from or "pep691-page", ref.page)
    else:
        verification = recorded(f"{ref.page or 'the index'} lists no sha256 for {ref.filename}")
    cache = WheelCache(cache_dir)
    if ref.sha256 and (hit := cache.get(sha256=ref.sha256, filename=ref.filename)) is not None:
        return FetchedSdist(hit.path, hit.sha256, verification)
    key = hashlib.sha256(redact(ref.url).encode()).hexdigest()[:32]
    with cache.lock(key):
        if ref.sha256 and (hit := cache.get(sha256=ref.sha256, filename=ref.filename)) is not None:
            return FetchedSdist(hit.path, hit.sha256, verification)
        tmp = cache.tmp_path(key)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        res = fetch(ref.url, tmp, policy=policy, name=ref.filename, sleep=sleep)
        if ref.sha256 and res.sha256 != ref.sha256.lower():
            tmp.unlink(missing_ok=True)
            raise NetworkError(
                f"{ref.filename}: sha256 {res.sha256[:16]}… does not match the index's {ref.sha256[:16]}…",
                hint="a broken download or a tampered mirror; try again",
            )
        entry = cache.commit(tmp, res.sha256, ref.filename, url=redact(ref.url))
        return FetchedSdist(entry.path, entry.sha256, verification)


def download(ref: SdistRef, cache_dir: Path, **options: Any) -> Path:
    """:func:`fetch_sdist` (same ``policy`` and ``sleep`` options), the path only."""
    return fetch_sdist(ref, cache_dir, **options).path


# What a source archive may unpack to, far above an FA2 sdist (about 8 MB of gzip, CUTLASS included). An
# archive past either bound (a gzip bomb, a million empty files) is refused before anything is written.
MAX_UNPACKED_BYTES = 4 << 30
MAX_MEMBERS = 200_000


def _bounded_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members: list[tarfile.TarInfo] = []
    total = 0
    for m in tar:  # read one header at a time: the count is checked before the next is read
        members.append(m)
        total += max(m.size, 0)
        if len(members) > MAX_MEMBERS:
            raise UsageError(f"refusing the archive: more than {MAX_MEMBERS} members")
        if total > MAX_UNPACKED_BYTES:
            raise UsageError(f"refusing the archive: it unpacks to more than {MAX_UNPACKED_BYTES >> 20} MiB")
    return members


def _safe_extract(tar: tarfile.TarFile, dest: Path) -> list[tarfile.TarInfo]:
    members = _bounded_members(tar)
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, members=members, filter="data")
        return members
    root = os.path.realpath(dest)  # Python < 3.11.4 / 3.12: check each member ourselves
    for m in members:
        target = os.path.realpath(os.path.join(root, m.name))
        if not (target == root or target.startswith(root + os.sep)) or m.issym() or m.islnk() or m.isdev():
            raise UsageError(f"refusing archive member {m.name!r}: it points outside the archive")
    tar.extractall(dest, members=members)
    return members


def unpack(archive: Path, dest: Path) -> Path:
    """Unpack an sdist into ``dest``; returns its single top-level directory. The archive's own members
    name it: ``dest`` may hold an earlier build's tree (a --work-dir used again)."""
    try:
        with tarfile.open(archive) as tar:
            members = _safe_extract(tar, dest)
    except (tarfile.TarError, OSError) as exc:
        raise UsageError(f"{archive}: not a readable source archive ({exc})") from None
    tops = sorted({m.name.removeprefix("./").split("/", 1)[0] for m in members} - {"", "."})
    if len(tops) != 1 or not (dest / tops[0]).is_dir():
        raise UsageError(f"{archive}: expected one top-level directory, found {len(tops)}")
    return dest / tops[0]


_VERSION_RE = re.compile(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)


def read_version(init_py: Path) -> str | None:
    try:
        m = _VERSION_RE.search(init_py.read_text(encoding="utf-8"))
    except OSError:
        return None
    return m.group(1) if m else None


def _copy_tree(src: Path, dest: Path) -> None:
    # Without .git: FA2's setup.py runs `git submodule update` (network) whenever .git exists.
    shutil.copytree(
        src, dest, symlinks=True, ignore=shutil.ignore_patterns(".git", "build", "dist", "*.egg-info")
    )


def fa2_tree(root: Path, origin: str, owned: bool) -> SourceTree:
    if not (root / "setup.py").is_file() or not (root / "flash_attn" / "__init__.py").is_file():
        raise UsageError(f"{origin}: not an FA2 source tree (no setup.py and flash_attn/__init__.py)")
    version = read_version(root / "flash_attn" / "__init__.py")
    if version is None:
        raise UsageError(f"{origin}: flash_attn/__init__.py has no __version__")
    if not (root / "csrc" / "cutlass" / "include" / "cutlass" / "cutlass.h").is_file():
        raise UsageError(
            f"{origin}: csrc/cutlass is empty (a git checkout without submodules)",
            hint="git submodule update --init csrc/cutlass, or use the PyPI sdist (it ships CUTLASS)",
        )
    return SourceTree("fa2", root, root, version, origin, owned)


def resolve_fa2(
    source: str | None,
    version: str,
    work: Path,
    cache: Path,
    index_url: str = PYPI_SIMPLE,
    allow_http: bool = False,
) -> SourceTree:
    """An FA2 tree in ``work`` that flashdoctor owns (it is edited): from PyPI, an archive or a directory."""
    work.mkdir(parents=True, exist_ok=True)
    if source is None:
        ref = find_sdist(version, index_url, allow_http=allow_http)
        got = fetch_sdist(ref, cache / "wheels", _policy(allow_http))  # the installer's artifact cache
        tree = fa2_tree(unpack(got.path, work / "src"), f"pypi:{ref.filename}", True)
        return replace(tree, verification=got.verification)
    path = Path(source).expanduser()
    if not path.exists():
        raise UsageError(f"--source {source}: no such file or directory")
    if path.is_dir():
        dest = work / "src" / path.resolve().name
        if path.resolve().is_relative_to(dest.resolve()):
            raise UsageError(
                f"--source {source} is inside the build's own copy {dest}: choose another --work-dir"
            )
        if dest.exists():
            shutil.rmtree(dest)  # an earlier build's copy (a --work-dir used again): copied afresh
        _copy_tree(path, dest)
        return fa2_tree(dest, f"dir:{path}", True)
    return fa2_tree(unpack(path, work / "src"), f"archive:{path}", True)


# -- FA3 ----------------------------------------------------------------------------------------------
def is_git_url(source: str) -> bool:
    return source.startswith(("http://", "https://", "git@", "ssh://", "file://", "git+")) or source.endswith(
        ".git"
    )


def check_git_url(url: str, allow_http: bool) -> str:
    """The git URL ``url`` (without ``git+``) when the download policy lets it be cloned: https (or plain
    http to loopback, or anywhere with --allow-http) under the same check as every download (the host as
    the client connects; no parser tricks), ssh (``ssh://`` or ``user@host:path``), or a local path or
    ``file://`` URL; never git:// or a remote helper (``ext::``). A usage error otherwise,
    before anything is sent. Credentials in the URL are used by git and never shown (redact_text)."""
    url = url.removeprefix("git+")
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("http", "https"):
        try:
            check_url(url, allow_http)
        except RefusedURL as exc:
            raise UsageError(f"--source: {exc.message}", hint=exc.hint) from None
    elif scheme not in ("file", "ssh") and not (
        scheme == "" and "::" not in url
    ):  # "": a path or user@host:path
        raise UsageError(
            f"--source: refusing {redact_text(url)}: git over {scheme or 'this kind of URL'} is not "
            "authenticated or encrypted; flashdoctor clones over https or ssh",
            hint="use the https URL of the repository, or a local checkout",
        )
    return url


def git_clone(
    url: str, ref: str, dest: Path, environ: Mapping[str, str] | None = None, allow_http: bool = False
) -> None:
    """Shallow clone of ``url`` at tag/branch ``ref`` with its submodules (CUTLASS). Submodules follow the
    same policy: no plain http (unless --allow-http or the URL itself is plain http to loopback), no git://."""
    url = check_git_url(url, allow_http)
    shown = redact_text(url)
    http_ok = allow_http or url.lower().startswith("http://")
    cmd = [
        "git", "-c", f"protocol.http.allow={'always' if http_ok else 'never'}", "-c", "protocol.git.allow=never",
        "clone", "--depth", "1", "--branch", ref,
        "--recurse-submodules", "--shallow-submodules", url, str(dest),
    ]  # fmt: skip
    env = {**(os.environ if environ is None else environ), "GIT_TERMINAL_PROMPT": "0"}
    try:
        # stopped, not lost, on Ctrl-C or SIGTERM; with the submodule clones it started (a group of its own:
        # a session, so not over ssh, whose prompts for a passphrase or a new host key need the terminal)
        p = run_process(cmd, env, timeout=1800, own_group=not _over_ssh(url))
    except FileNotFoundError:
        raise UsageError(
            "git is not installed: cannot clone the FA3 sources", hint="install git, or pass a checkout"
        ) from None
    except subprocess.TimeoutExpired:
        shutil.rmtree(dest, ignore_errors=True)
        raise NetworkError(f"git clone {shown} did not finish in 30 minutes") from None
    if p.returncode != 0:
        shutil.rmtree(dest, ignore_errors=True)
        err = redact_text(p.stderr.strip()[-500:], [_password(url)])
        raise NetworkError(f"git clone {shown} --branch {ref} failed: {err}")
    if url.lower().startswith(("http://", "https://")) and parse(url).userinfo:
        # git wrote the URL, user:password included, into the clone's .git/config: keep it without them
        # (the clone is reused, never fetched again).
        rc, _out, err = run(
            ["git", "-C", str(dest), "remote", "set-url", "origin", redact(url, drop_userinfo=True)], env, 60
        )
        if rc != 0:  # the password would stay in .git/config: keep no such clone
            shutil.rmtree(dest, ignore_errors=True)
            detail = redact_text(err.strip()[-300:], [_password(url)])
            raise NetworkError(
                f"git clone {shown}: the credentials could not be removed from the clone's .git/config "
                f"(git remote set-url: {detail or f'exit {rc}'}), so the clone was removed"
            )


def _over_ssh(url: str) -> bool:
    """ssh:// or scp-like user@host:path (check_git_url lets only these, https/http and local paths by)."""
    if url.lower().startswith("ssh://"):
        return True
    host, colon, _path = url.split("/", 1)[0].partition(":")
    return "://" not in url and bool(colon) and len(host) > 1  # C:/x is a Windows path


def _password(url: str) -> str | None:
    """The password in ``url``, so that git's own messages can be cleaned of it too."""
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def fa3_tree(root: Path, origin: str) -> SourceTree:
    hopper = root / "hopper"
    if not (hopper / "setup.py").is_file() and (root / "setup.py").is_file() and root.name == "hopper":
        root, hopper = root.parent, root
    if not (hopper / "setup.py").is_file():
        raise UsageError(f"{origin}: no hopper/setup.py: FA3 builds from a flash-attention checkout")
    if not any(hopper.glob("*.cu")) and not (hopper / "instantiations").is_dir():
        raise UsageError(
            f"{origin}: hopper/ has no CUDA sources (the PyPI sdist ships only its Python files)",
            hint="use a git checkout: --source https://github.com/Dao-AILab/flash-attention.git --ref <tag>",
        )
    if not (root / "csrc" / "cutlass" / "include" / "cutlass" / "cutlass.h").is_file():
        raise UsageError(
            f"{origin}: csrc/cutlass is empty (the submodule is not checked out)",
            hint="git submodule update --init csrc/cutlass",
        )
    version = (
        read_version(hopper / "__init__.py")
        or read_version(hopper / "flash_attn_3" / "__init__.py")
        or "0+unknown"
    )
    return SourceTree("fa3", root, hopper, version, origin, False)


def resolve_fa3(
    source: str | None,
    ref: str | None,
    cache: Path,
    environ: Mapping[str, str] | None = None,
    allow_http: bool = False,
) -> SourceTree:
    if source is None:
        raise UsageError(
            "FA3 is not on PyPI as source: pass a flash-attention checkout or a git URL",
            hint="flashdoctor build --fa3 --source https://github.com/Dao-AILab/flash-attention.git --ref <tag>",
        )
    if is_git_url(source):
        check_git_url(source, allow_http)
        if not ref:
            raise UsageError("--source is a git URL: name the tag or branch with --ref")
        key = hashlib.sha256(f"{source}@{ref}".encode()).hexdigest()[:16]
        dest = cache / "git" / key
        if not (dest / "hopper" / "setup.py").is_file():
            # Cloned beside it and renamed once git has finished: a clone stopped half-way (Ctrl-C, a
            # kill, while CUTLASS came) is never taken for a checkout, and the next run starts it again.
            partial = dest.with_name(key + ".partial")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(partial, ignore_errors=True)
            try:
                git_clone(source, ref, partial, environ, allow_http)
            except BaseException:  # a clone stopped half-way may hold the URL's password in .git/config
                shutil.rmtree(partial, ignore_errors=True)
                raise
            shutil.rmtree(dest, ignore_errors=True)
            os.replace(partial, dest)
        return fa3_tree(dest, f"git:{redact_text(source)}@{ref}")  # the origin is shown and stored
    path = Path(source).expanduser()
    if not path.is_dir():
        raise UsageError(f"--source {source}: FA3 needs a checkout directory or a git URL")
    return fa3_tree(path.resolve(), f"dir:{path}")
