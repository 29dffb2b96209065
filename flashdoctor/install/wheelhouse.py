"""Wheelhouses: directories of wheels (local or shared) that are read before the network and written
after a download or a build, and the locally built wheels in them.

A wheel from the index is found in a wheelhouse by its exact file name (and checked against the index's
sha256 when there is one). A wheel built by flashdoctor (issue "source builds") has a local version label
(``flash_attn-2.8.3.post2+fd.sm90.hd128.bf16-cp312-cp312-linux_x86_64.whl``) that no index knows; it is
found by its *build record*: a JSON file next to it, ``<wheel file name>.flashdoctor.json``, or the same
document inside the wheel as ``<name>-<version>.dist-info/flashdoctor.json``. The record names the
environment the wheel was built for, and :func:`match_build` decides whether it fits this one. The
format is described in README "Wheelhouse and build records".
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from flashdoctor.environment import VARIANT_DIST, Environment, Variant, major_minor, parse_version
from flashdoctor.install.cache import fsync_dir, sha256_file
from flashdoctor.plan import WheelRef

BUILD_SCHEMA = "flashdoctor/build/1"
RECORD_SUFFIX = ".flashdoctor.json"


@dataclass(frozen=True)
class LocalBuild:
    path: Path
    filename: str
    dist: str
    variant: Variant
    version: str
    record: dict[str, Any]

    def ref(self) -> WheelRef:
        return WheelRef(
            filename=self.filename,
            url=self.path.resolve().as_uri(),
            sha256=self.record.get("sha256"),
            source="wheelhouse",
            version=self.version,
        )


def _read_record(path: Path) -> dict[str, Any] | None:
    side = path.with_name(path.name + RECORD_SUFFIX)
    text: str | None = None
    if side.is_file():
        with contextlib.suppress(OSError):
            text = side.read_text(encoding="utf-8")
    if text is None:
        try:
            with zipfile.ZipFile(path) as zf:
                for n in zf.namelist():
                    if n.count("/") == 1 and n.endswith(".dist-info/flashdoctor.json"):
                        text = zf.read(n).decode("utf-8")
                        break
        except (OSError, zipfile.BadZipFile):
            return None
    if text is None:
        return None
    try:
        rec = json.loads(text)
    except ValueError:
        return None
    if not isinstance(rec, dict) or rec.get("schema") != BUILD_SCHEMA or not isinstance(rec.get("fingerprint"), dict):
        return None
    return rec


def match_build(record: dict[str, Any], env: Environment, variant: Variant) -> list[str]:
    """Why a build record does not fit ``env`` (empty: it fits). Pure."""
    fp: dict[str, Any] = record.get("fingerprint") or {}
    why: list[str] = []
    if record.get("variant") != variant:
        why.append(f"built for {record.get('variant')}, not {variant}")
    if fp.get("python_abi") and env.python_abi and fp["python_abi"] != env.python_abi:
        why.append(f"built for {fp['python_abi']}, this Python is {env.python_abi}")
    if fp.get("platform") and env.platform and fp["platform"] != env.platform:
        why.append(f"built for {fp['platform']}, this is {env.platform}")
    bt, et = major_minor(fp.get("torch")), env.torch_mm
    if bt is None or et is None:
        why.append("torch version unknown on one side")
    elif bt != et:
        why.append(f"built against torch {fp.get('torch')}, this torch is {env.torch} (the minor must match)")
    bc, ec = major_minor(fp.get("torch_cuda")), env.torch_cuda_mm
    if bc != ec:
        why.append(f"built for torch CUDA {fp.get('torch_cuda')}, this torch has CUDA {env.torch_cuda}")
    if fp.get("cxx11abi") is not None and env.cxx11abi is not None and bool(fp["cxx11abi"]) != env.cxx11abi:
        why.append(f"built with CXX11 ABI {fp['cxx11abi']}, this torch uses {env.cxx11abi}")
    archs = fp.get("archs")
    if isinstance(archs, list) and env.gpus:
        sass = {int(a[3:]) for a in archs if isinstance(a, str) and a.startswith("sm_") and a[3:].isdigit()}
        ptx = {int(a[8:]) for a in archs if isinstance(a, str) and a.startswith("compute_") and a[8:].isdigit()}
        for g in env.gpus:
            sm = g.sm
            if sm is None:
                continue
            if sm in sass or any(p <= sm for p in ptx):
                continue
            why.append(f"has no code for {g.label} (built for {', '.join(archs)})")
    return why


def _sort_key(b: LocalBuild) -> Version:
    try:
        return Version(b.version)
    except InvalidVersion:  # pragma: no cover - filtered when read
        return Version("0")


class Wheelhouse:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def find(self, filename: str, sha256: str | None = None) -> Path | None:
        """The wheel of that exact name, if present (and matching ``sha256`` when given)."""
        p = self.root / filename
        if not p.is_file():
            return None
        if sha256 and sha256_file(p) != sha256.lower():
            return None
        return p

    def local_builds(self, variant: Variant) -> list[LocalBuild]:
        dist = VARIANT_DIST[variant]
        out = []
        if not self.root.is_dir():
            return out
        for p in sorted(self.root.glob("*.whl")):
            try:
                name, version, _b, _t = parse_wheel_filename(p.name)
            except InvalidWheelFilename:
                continue
            if canonicalize_name(name) != dist:
                continue
            rec = _read_record(p)
            if rec is None:
                continue
            out.append(LocalBuild(p, p.name, dist, variant, str(version), rec))
        return out

    def best_build(self, env: Environment, variant: Variant) -> tuple[LocalBuild | None, list[tuple[str, list[str]]]]:
        """The newest local build that fits ``env``, and why the others do not."""
        fits, rejected = [], []
        for b in self.local_builds(variant):
            why = match_build(b.record, env, variant)
            if why:
                rejected.append((b.filename, why))
            else:
                fits.append(b)
        fits.sort(key=_sort_key, reverse=True)
        return (fits[0] if fits else None), rejected

    def add(self, src: Path, filename: str) -> Path | None:
        """Copy a verified wheel in (temporary name + rename). Returns None when the directory cannot be
        written (a read-only shared wheelhouse is not an error)."""
        dst = self.root / filename
        if dst.is_file():
            return dst
        tmp = self.root / f".{filename}.tmp-{os.getpid()}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, dst)
            fsync_dir(self.root)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            return None
        return dst


def local_label_profile(version: str) -> str | None:
    """The build profile in a local version label written by flashdoctor ("fd.sm90.hd128.bf16")."""
    v = parse_version(version)
    if v is None or not v.local or not v.local.startswith("fd"):
        return None
    return v.local
