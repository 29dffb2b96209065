"""Wheelhouses: directories of wheels (local or shared) that are read before the network and written
after a download or a build, and the locally built wheels in them.

Two kinds of entries live in a wheelhouse DIR (README "Wheelhouse"):

    DIR/<wheel file name>                   a wheel from an index, found by its exact name (and checked
                                            against the index's sha256); also what ``pip --find-links``
                                            reads. flashdoctor writes downloads here.
    DIR/<fingerprint id>/<wheel>            a wheel built by ``flashdoctor build`` (issue "source builds"),
    DIR/<fingerprint id>/build.json         with its manifest (schema ``flashdoctor/built-wheel/1``)

A locally built wheel has a local version label (``flash_attn-2.8.3.post2+fd.sm90.hd128.bf16-...whl``)
that no index knows, and its name says nothing of torch, CUDA or the C++ ABI; it is matched by the
fingerprint in its manifest (:func:`match_build`), never by its name. The manifest is written last by
the builder, so a manifest always points at a complete wheel.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from flashdoctor.actions.built_wheels import MANIFEST
from flashdoctor.actions.built_wheels import SCHEMA as BUILD_SCHEMA
from flashdoctor.actions.cache import fsync_dir
from flashdoctor.knowledge.archs import runs_on
from flashdoctor.knowledge.variants import VARIANT_DIST, Variant
from flashdoctor.knowledge.versions import major_minor
from flashdoctor.model.environment import Environment
from flashdoctor.model.plan import WheelRef


@dataclass(frozen=True)
class LocalBuild:
    path: Path
    filename: str
    dist: str
    variant: Variant
    version: str
    manifest: dict[str, Any]

    @property
    def fingerprint(self) -> dict[str, Any]:
        fp: dict[str, Any] = self.manifest.get("fingerprint") or {}
        return fp

    def ref(self) -> WheelRef:
        sha = self.manifest.get("sha256")
        return WheelRef(
            filename=self.filename,
            url=self.path.resolve().as_uri(),
            sha256=sha if isinstance(sha, str) and len(sha) == 64 else None,
            source="wheelhouse",
            version=self.version,
        )


def _archs(values: Any) -> set[int]:
    out = set()
    for a in values or []:
        text = str(a).lower().removeprefix("sm_").removeprefix("compute_")
        if text.isdigit():
            out.add(int(text))
    return out


def match_build(fp: dict[str, Any], env: Environment, variant: Variant) -> list[str]:
    """Why a build fingerprint does not fit ``env`` (empty: it fits). Pure.

    The rules follow the facts behind the builder's fingerprint: torch major.minor (FA2 links
    libtorch's C++ API, which changes between minors), torch's CUDA major (libcudart.so.<major>), the
    C++ ABI, the Python ABI and platform, a glibc no newer than this one, and SASS for every GPU here.
    """
    why: list[str] = []
    if fp.get("variant") != variant:
        why.append(f"built for {fp.get('variant')}, not {variant}")
    if env.python_abi and fp.get("python_abi") != env.python_abi:
        why.append(f"built for {fp.get('python_abi')}, this Python is {env.python_abi}")
    if env.platform and fp.get("platform") != env.platform:
        why.append(f"built for {fp.get('platform')}, this is {env.platform}")
    bt, et = major_minor(str(fp.get("torch"))), env.torch_mm
    if et is None:
        why.append("this environment has no torch")
    elif bt != et:
        why.append(f"built against torch {fp.get('torch')}, this torch is {env.torch} (the minor must match)")
    bc = major_minor(str(fp["cuda"])) if fp.get("cuda") is not None else None
    ec = env.torch_cuda_mm
    if (bc is None) != (ec is None) or (bc is not None and ec is not None and bc[0] != ec[0]):
        why.append(f"built for CUDA {fp.get('cuda')}, this torch has CUDA {env.torch_cuda or 'none'}")
    if fp.get("cxx11abi") is not None and env.cxx11abi is not None and bool(fp["cxx11abi"]) != env.cxx11abi:
        why.append(f"built with CXX11 ABI {fp['cxx11abi']}, this torch uses {env.cxx11abi}")
    bg, eg = major_minor(fp.get("glibc")), major_minor(env.glibc)
    if bg is not None and eg is not None and bg > eg:
        why.append(f"built on glibc {fp.get('glibc')}, this system has {env.glibc}")
    # Build archs, not GPU capabilities: sm_80 SASS runs on sm_86/87/89 GPUs, sm_100 on sm_103, sm_120 on
    # sm_121 (same major, not newer minor), which flashdoctor.knowledge.archs.runs_on knows.
    archs = [f"sm_{a}" for a in sorted(_archs(fp.get("archs")))]
    for g in env.gpus:
        if g.sm is not None and runs_on(archs, g.sm) == "no":
            why.append(f"has no code for {g.label} (built for {', '.join(archs) or 'nothing'})")
    return why


def _sort_key(b: LocalBuild) -> Version:
    try:
        return Version(b.version)
    except InvalidVersion:  # pragma: no cover - filtered when read
        return Version("0")


class Wheelhouse:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def find(self, filename: str) -> Path | None:
        """The wheel of that exact name, if present (its sha256 is checked by the caller: fetch)."""
        p = self.root / filename
        return p if p.is_file() else None

    def local_builds(self, variant: Variant) -> list[LocalBuild]:
        """Every complete flashdoctor-built wheel of ``variant`` here (unreadable entries skipped)."""
        dist = VARIANT_DIST[variant]
        out: list[LocalBuild] = []
        if not self.root.is_dir():
            return out
        for mpath in sorted(self.root.glob(f"*/{MANIFEST}")):
            try:
                m = json.loads(mpath.read_text(encoding="utf-8"))
                if (
                    not isinstance(m, dict)
                    or m.get("schema") != BUILD_SCHEMA
                    or not isinstance(m.get("fingerprint"), dict)
                ):
                    continue
                whl = mpath.parent / str(m["wheel"])
                name, version, _b, _t = parse_wheel_filename(whl.name)
            except (OSError, ValueError, KeyError, TypeError, InvalidWheelFilename):
                continue
            if canonicalize_name(name) != dist or not whl.is_file():
                continue
            out.append(LocalBuild(whl, whl.name, dist, variant, str(version), m))
        return out

    def best_build(
        self, env: Environment, variant: Variant
    ) -> tuple[LocalBuild | None, list[tuple[str, list[str]]]]:
        """The newest local build that fits ``env`` (the least restricted profile first), and why the
        others do not."""
        fits, rejected = [], []
        for b in self.local_builds(variant):
            why = match_build(b.fingerprint, env, variant)
            if why:
                rejected.append((b.filename, why))
            else:
                fits.append(b)
        fits.sort(key=lambda b: (_sort_key(b), -len(str(b.fingerprint.get("profile", "")))), reverse=True)
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
