"""What is inside a wheel file: is it one at all, which distribution, what it requires, where it installs.

Checked before a download enters the cache and before pip sees the file, so that an HTML error page
saved under a .whl name, a truncated archive or a wheel of another project fails with a clear message.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path
from urllib.parse import urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from flashdoctor.actions.net.errors import NotAWheelError, RefusedURL
from flashdoctor.actions.net.http import HttpPolicy
from flashdoctor.actions.net.urls import check_url, redact

# METADATA is read whole, so bounded: a zip member's size is whatever its writer chose (16 MiB of deflated
# "A" is 16 KiB on disk); flash-attn's is a few KiB, the largest on PyPI a few MiB.
MAX_METADATA = 16 << 20


@dataclass(frozen=True)
class WheelInfo:
    filename: str
    name: str  # canonical distribution name
    version: str
    requires: tuple[str, ...]  # Requires-Dist lines as written
    dist_info: str  # "flash_attn-2.8.3.dist-info"
    root_files: tuple[str, ...]  # archive paths installed into site-packages (purelib/platlib)
    script_files: tuple[str, ...]  # <name>.data/scripts/* basenames
    data_files: tuple[str, ...] = ()  # <name>.data/data/* paths, installed relative to the prefix

    def requirements(self) -> list[Requirement]:
        out = []
        for line in self.requires:
            try:
                out.append(Requirement(line))
            except InvalidRequirement:
                continue
        return out


def inspect_wheel(path: Path, filename: str | None = None) -> WheelInfo:
    """Read a wheel's metadata. Raises NotAWheelError naming what is wrong."""
    filename = filename or path.name
    try:
        fname, fver, _build, _tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise NotAWheelError(f"{filename} is not a wheel file name: {exc}") from None
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError as exc:
        raise NotAWheelError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not zipfile.is_zipfile(path):
        low = head.lower()
        what = "an HTML page" if (b"<html" in low or b"<!doctype" in low) else "not a zip archive"
        raise NotAWheelError(
            f"{filename} is {what} ({len(head)}+ bytes starting {head[:24]!r}), not a wheel",
            hint="the server sent an error or login page under the wheel's name; check the URL and credentials",
        )
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            dist_infos = sorted(
                {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")}
            )
            if len(dist_infos) != 1:
                raise NotAWheelError(
                    f"{filename} has {len(dist_infos)} .dist-info directories (one expected)"
                )
            di = dist_infos[0]
            for required in ("METADATA", "WHEEL", "RECORD"):
                if f"{di}/{required}" not in names:
                    raise NotAWheelError(f"{filename} lacks {di}/{required}: a broken or incomplete wheel")
            with zf.open(f"{di}/METADATA") as fh:
                raw = fh.read(MAX_METADATA + 1)
            if len(raw) > MAX_METADATA:
                raise NotAWheelError(f"{filename}: {di}/METADATA is larger than {MAX_METADATA >> 20} MiB")
            meta = HeaderParser().parsestr(raw.decode("utf-8", "replace"))
    except zipfile.BadZipFile as exc:
        raise NotAWheelError(f"{filename} is a damaged zip archive: {exc}") from None
    name, version = meta.get("Name"), meta.get("Version")
    if not name or not version:
        raise NotAWheelError(f"{filename}: METADATA has no Name or Version")
    if canonicalize_name(name) != fname:
        raise NotAWheelError(f"{filename} contains distribution {name!r}, not {fname!r}")
    try:
        if Version(version) != fver:
            raise NotAWheelError(f"{filename} contains version {version}, not {fver}")
    except InvalidVersion:
        raise NotAWheelError(f"{filename}: METADATA version {version!r} is not a valid version") from None
    data_dir = di[: -len(".dist-info")] + ".data"
    root_files, scripts, data = [], [], []
    for n in names:
        if n.endswith("/"):
            continue
        top = n.split("/", 1)[0]
        if top == data_dir:
            parts = n.split("/", 2)
            if len(parts) == 3 and parts[1] in ("purelib", "platlib"):
                root_files.append(parts[2])
            elif len(parts) == 3 and parts[1] == "scripts":
                scripts.append(parts[2])
            elif len(parts) == 3 and parts[1] == "data":
                data.append(parts[2])
            continue
        root_files.append(n)
    return WheelInfo(
        filename=filename,
        name=str(fname),
        version=version,
        requires=tuple(meta.get_all("Requires-Dist") or ()),
        dist_info=di,
        root_files=tuple(root_files),
        script_files=tuple(scripts),
        data_files=tuple(data),
    )


def torch_conflict(info: WheelInfo, torch_version: str | None, markers: Mapping[str, str]) -> str | None:
    """Why installing this wheel would need another torch, or None when the current one is fine.
    flashdoctor never changes torch, so any such wheel is refused before anything changes."""
    for req in info.requirements():
        if canonicalize_name(req.name) != "torch":
            continue
        if req.marker is not None and not req.marker.evaluate(dict(markers)):
            continue
        if torch_version is None:
            return f"{info.filename} requires torch ({req}), and the target has none; install torch first"
        if req.specifier and not req.specifier.contains(torch_version, prereleases=True):
            return (
                f"{info.filename} requires {req}, but the target has torch {torch_version}; "
                "installing it would change torch, which flashdoctor never does"
            )
    return None


def _direct_url_problem(url: str, allow_http: bool) -> str | None:
    """Why a dependency may not be fetched from ``url`` (a PEP 508 direct reference), or None."""
    scheme = url.split(":", 1)[0].lower()
    if "+" in scheme:
        return f"a {scheme.split('+', 1)[0]} checkout, which is neither a file nor verifiable"
    if scheme == "file":
        return "a file on the machine that built the wheel"
    try:
        check_url(url, allow_http)
    except RefusedURL as exc:
        return exc.message
    fragment = urlsplit(url).fragment
    if not any(re.fullmatch(r"sha256=[0-9a-fA-F]{64}", part) for part in fragment.split("&")):
        return (
            "a direct URL without a #sha256= digest: the installer would take whatever bytes it is sent "
            "(with #sha256=<64 hex> it checks them)"
        )
    return None


def dependency_problems(
    info: WheelInfo,
    torch_version: str | None,
    markers: Mapping[str, str],
    policy: HttpPolicy | None = None,
) -> list[str]:
    """Why the wheel's dependencies may not be installed (empty: they may). Checked before anything
    changes: the torch guard (:func:`torch_conflict`), a dependency on torch from a URL (it would replace
    torch), and direct-URL requirements (``x @ http://host/x.whl``) that the download policy refuses
    (plain http to a non-loopback host without --allow-http, VCS and file URLs) or that carry no
    ``#sha256=`` digest: the installer would fetch those itself, unverified."""
    allow_http = policy.allow_http if policy is not None else False
    problems = []
    conflict = torch_conflict(info, torch_version, markers)
    if conflict:
        problems.append(conflict)
    env = dict(markers)
    env["extra"] = ""
    for req in info.requirements():
        if not req.url or (req.marker is not None and not req.marker.evaluate(env)):
            continue
        shown = redact(req.url)
        if canonicalize_name(req.name) == "torch":
            problems.append(
                f"{info.filename} requires torch from {shown}: installing it would replace torch, "
                "which flashdoctor never does"
            )
            continue
        why = _direct_url_problem(req.url, allow_http)
        if why:
            problems.append(
                f"{info.filename} requires {req.name} from {shown}, which flashdoctor does not let "
                f"the installer fetch: {why}"
            )
    return problems


def missing_requirements(
    info: WheelInfo, installed: Mapping[str, str], markers: Mapping[str, str]
) -> list[str]:
    """Requires-Dist entries (torch excluded, extras ignored) that the target does not satisfy."""
    out = []
    for req in info.requirements():
        cname = canonicalize_name(req.name)
        if cname == "torch":
            continue
        env = dict(markers)
        env["extra"] = ""
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        have = installed.get(cname)
        if have is not None and (not req.specifier or req.specifier.contains(have, prereleases=True)):
            continue
        out.append(str(req))
    return out
