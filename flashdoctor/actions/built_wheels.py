"""Built wheels, keyed by an environment fingerprint, so that every machine with the same
fingerprint installs the wheel instead of building it again (the cluster case).

Layout (README "Wheelhouse"; also what `flashdoctor install --wheelhouse DIR` reads):

    DIR/<fingerprint id>/<the wheel pip built>      flash_attn-2.8.3.post2+fd.sm90.hd128.bf16-cp312-cp312-linux_x86_64.whl
    DIR/<fingerprint id>/build.json                 the fingerprint, profile, sha256, how it was built

The id is the first 16 hex digits of the sha256 of the canonical JSON of the fingerprint's key.
The wheel's own name cannot be the key: it says nothing about torch, CUDA or the C++ ABI.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from flashdoctor import __version__
from flashdoctor.actions.cache import atomic_write_bytes, sha256_file
from flashdoctor.knowledge.profiles import Profile, parse_label
from flashdoctor.knowledge.versions import major_minor
from flashdoctor.model.environment import Environment

SCHEMA = "flashdoctor/built-wheel/1"
MANIFEST = "build.json"


@dataclass(frozen=True)
class Fingerprint:
    """What a built wheel depends on. torch major.minor (FA2 links libtorch's C++ API, which changes
    between minors), torch's CUDA major (the extension links libcudart.so.<major>), the C++ ABI,
    the Python ABI, the platform, glibc (a wheel built on a newer glibc may not load on an older
    one: compatible when built <= target), and what was compiled (variant, version, archs, profile)."""

    variant: str
    version: str  # the FlashAttention version built (public part)
    torch: str  # "2.11"
    cuda: str  # "13"
    cxx11abi: bool | None
    python_abi: str  # "cp312"
    platform: str  # "linux_x86_64"
    glibc: str | None  # "2.39"; None where there is no glibc
    archs: tuple[int, ...]
    profile: str  # the local version label, e.g. "fd.sm90.hd128.bf16"

    def key(self) -> dict[str, Any]:
        """The fields that make the id (glibc is compared, not hashed)."""
        return {
            "variant": self.variant,
            "version": self.version,
            "torch": self.torch,
            "cuda": self.cuda,
            "cxx11abi": self.cxx11abi,
            "python_abi": self.python_abi,
            "platform": self.platform,
            "archs": list(self.archs),
            "profile": self.profile,
        }

    @property
    def id(self) -> str:
        blob = json.dumps(self.key(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return {**self.key(), "glibc": self.glibc, "id": self.id}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Fingerprint:
        return cls(
            variant=str(d["variant"]),
            version=str(d["version"]),
            torch=str(d["torch"]),
            cuda=str(d["cuda"]),
            cxx11abi=d.get("cxx11abi"),
            python_abi=str(d["python_abi"]),
            platform=str(d["platform"]),
            glibc=d.get("glibc"),
            archs=tuple(int(a) for a in d["archs"]),
            profile=str(d["profile"]),
        )


class FingerprintError(ValueError):
    """The environment lacks a fact the fingerprint needs (e.g. no torch)."""


def fingerprint(env: Environment, variant: str, version: str, profile: Profile) -> Fingerprint:
    """The fingerprint of a build of ``profile`` in ``env``. Raises FingerprintError if a fact is missing."""
    tmm = env.torch_mm
    cmm = env.torch_cuda_mm
    missing = [
        name
        for name, val in (
            ("torch", tmm),
            ("torch CUDA", cmm),
            ("python ABI", env.python_abi),
            ("platform", env.platform),
        )
        if val is None
    ]
    if missing:
        raise FingerprintError("cannot fingerprint the build environment: unknown " + ", ".join(missing))
    assert tmm is not None and cmm is not None
    gl = major_minor(env.glibc) if env.glibc else None
    return Fingerprint(
        variant=variant,
        version=version.split("+", 1)[0],
        torch=f"{tmm[0]}.{tmm[1]}",
        cuda=str(cmm[0]),
        cxx11abi=env.cxx11abi,
        python_abi=str(env.python_abi),
        platform=str(env.platform),
        glibc=None if gl is None else f"{gl[0]}.{gl[1]}",
        archs=tuple(sorted(profile.archs)),
        profile=profile.label(),
    )


@dataclass(frozen=True)
class BuiltWheel:
    path: Path
    fingerprint: Fingerprint
    sha256: str
    manifest: dict[str, Any]

    @property
    def filename(self) -> str:
        return self.path.name


def store(wheelhouse: Path, wheel: Path, fp: Fingerprint, build_info: dict[str, Any]) -> BuiltWheel:
    """Copy ``wheel`` into ``wheelhouse/<id>/`` with its manifest (the manifest is written last, so a
    reader that finds build.json finds a complete wheel)."""
    dest_dir = wheelhouse / fp.id
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / wheel.name
    tmp = dest_dir / (wheel.name + f".part{os.getpid()}")
    shutil.copyfile(wheel, tmp)
    os.replace(tmp, dest)
    digest = sha256_file(dest)
    manifest = {
        "schema": SCHEMA,
        "wheel": dest.name,
        "sha256": digest,
        "fingerprint": fp.to_json(),
        "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "flashdoctor": __version__,
        **build_info,
    }
    atomic_write_bytes(dest_dir / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
    return BuiltWheel(dest, fp, digest, manifest)


def scan(wheelhouse: Path) -> Iterator[BuiltWheel]:
    """Every complete built wheel in ``wheelhouse`` (unreadable or partial entries are skipped)."""
    if not wheelhouse.is_dir():
        return
    for mpath in sorted(wheelhouse.glob(f"*/{MANIFEST}")):
        try:
            m = json.loads(mpath.read_text(encoding="utf-8"))
            if m.get("schema") != SCHEMA:
                continue
            fp = Fingerprint.from_json(m["fingerprint"])
            whl = mpath.parent / m["wheel"]
            parse_wheel_filename(whl.name)
        except (OSError, ValueError, KeyError, TypeError, InvalidWheelFilename):
            continue
        if whl.is_file() and fp.id == mpath.parent.name:
            yield BuiltWheel(whl, fp, str(m.get("sha256", "")), m)


def _covers(built: Fingerprint, wanted: Fingerprint) -> bool:
    """A built wheel serves a wanted build when everything but the profile is equal, glibc is not
    newer, and its profile compiled at least the wanted archs, head dims, dtypes and features."""
    if any(
        built.key()[k] != wanted.key()[k]
        for k in ("variant", "torch", "cuda", "cxx11abi", "python_abi", "platform")
    ):
        return False
    if wanted.version and built.version != wanted.version:
        return False
    bg, wg = major_minor(built.glibc), major_minor(wanted.glibc)
    if bg is not None and (wg is None or bg > wg):
        return False
    b, w = parse_label(built.profile), parse_label(wanted.profile)
    if b is None or w is None:
        return built.profile == wanted.profile
    if not set(w.archs) <= set(b.archs):
        return False
    if b.head_dims is not None and (w.head_dims is None or not set(w.head_dims) <= set(b.head_dims)):
        return False
    if b.dtypes is not None and (w.dtypes is None or not set(w.dtypes) <= set(b.dtypes)):
        return False
    return set(b.disabled) <= set(w.disabled)


def find(wheelhouses: Iterable[Path], wanted: Fingerprint) -> BuiltWheel | None:
    """The built wheel for ``wanted``: the exact id first, else the smallest one that covers it."""
    candidates: list[BuiltWheel] = []
    for wh in wheelhouses:
        for bw in scan(wh):
            if bw.fingerprint.id == wanted.id:
                return bw
            if _covers(bw.fingerprint, wanted):
                candidates.append(bw)
    if not candidates:
        return None
    return min(candidates, key=lambda bw: len(bw.fingerprint.profile))
