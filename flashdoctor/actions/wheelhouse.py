"""Wheelhouses: directories of wheels (local or shared) read before the network and written after a
download or a build — the one reader and writer of a wheelhouse and its build.json manifests, and the one
rule for "this built wheel serves this request" (docs/wheelhouse.md).

Layout of a wheelhouse DIR:

    DIR/<wheel file name>                   a wheel from an index, found by its exact name (its sha256 is
                                            checked by the fetch); also what ``pip --find-links`` reads.
    DIR/<fingerprint id>/<wheel>            a wheel built by ``flashdoctor build``,
    DIR/<fingerprint id>/build.json         with its manifest (schema ``flashdoctor/built-wheel/1``): the
                                            fingerprint, the profile, the wheel's sha256, how it was built.

A locally built wheel has a local version label (``flash_attn-2.8.3.post2+fd.sm90.hd128.bf16-...whl``)
that no index knows, and its name says nothing of torch, CUDA or the C++ ABI: it is matched by the
fingerprint in its manifest, never by its name. The manifest is written last, so a manifest always
points at a complete wheel. The id (first 16 hex digits of the sha256 of the fingerprint's key) names the
directory; a reader matches the fingerprint inside the manifest, whatever the directory is called.

THE MATCH RULE (:func:`serves`; one rule for ``build``, which reuses instead of rebuilding, and for
``install``, which prefers a local build to a download). A built wheel serves a request when

  1. the variant is the same, and the version is one the request allows (when it names one);
  2. torch major.minor is the same (FA2/FA3 link libtorch's C++ API, which changes between minors);
  3. torch's CUDA major is the same (the extension links libcudart.so.<major>); a CPU torch (no CUDA)
     matches only a build without CUDA;
  4. the C++ ABI is the same. UNKNOWN IS NOT A VALUE: a build whose ABI was not recorded, or a target
     whose torch ABI could not be read, matches nothing — a wrong ABI only shows as an undefined symbol
     at import, and flashdoctor does not guess;
  5. the Python ABI (cp312) and the platform (linux_x86_64) are the same;
  6. glibc: a build made on glibc X needs a target whose glibc is known and >= X;
  7. the profile COVERS the request: its archs run every requested or visible GPU
     (flashdoctor.knowledge.archs.runs_on: sm_80 SASS runs on sm_86/89, not on sm_90; a GPU of unknown
     capability is not covered), and it compiled every head dim and dtype the request names and every
     FA3 feature the request does not do without (flashdoctor.knowledge.profiles.build_coverage; head dim
     d is served by the smallest compiled kernel >= d). A profile label flashdoctor cannot read covers
     only a request that names no head dims, dtypes or features.

What differs between the commands is the REQUEST, not the rule: ``build`` asks for the profile it would
compile (no --head-dims = every kernel, no --dtypes = fp16 and bf16, its --no-* switches), on the archs of
that profile; ``install`` (and ``install --from-source``) asks for the visible GPUs (or --arch) and for
the head dims / dtypes the user named, if any. Among the builds that serve, the one with the same
fingerprint id comes first, then the newest version, then the widest profile; the one taken is hashed,
and one whose bytes are not those its manifest records is passed over (listed with why).
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from flashdoctor import __version__
from flashdoctor.actions.cache import atomic_write_bytes, copy_new, fsync_dir, read_bounded, sha256_file
from flashdoctor.knowledge.archs import runs_on
from flashdoctor.knowledge.profiles import (
    DTYPES,
    BuildVariant,
    Profile,
    build_coverage,
    head_dim_kernels,
    parse_label,
)
from flashdoctor.knowledge.variants import VARIANT_DIST, Variant
from flashdoctor.knowledge.versions import major_minor
from flashdoctor.model.build import BuiltWheel as BuiltWheel  # values; re-exported, imported from here too
from flashdoctor.model.build import Fingerprint as Fingerprint
from flashdoctor.model.environment import Environment

SCHEMA = "flashdoctor/built-wheel/1"
MANIFEST = "build.json"
MANIFEST_MAX = 1 << 20  # a build.json is a few KiB; a larger one is not ours


# -- the fingerprint ---------------------------------------------------------------------------------
class FingerprintError(ValueError):
    """The environment lacks a fact the fingerprint needs (e.g. no torch)."""


def environment_facts(env: Environment) -> dict[str, Any]:
    """What a built wheel is matched on, as ``env`` gives it (rules 2-6 above), by the names Fingerprint
    and Request share: torch major.minor, torch's CUDA major, the C++ ABI, the Python ABI, the platform and
    glibc major.minor; None where ``env`` does not know (no torch: torch None; a CPU torch: cuda None)."""
    tmm, cmm, gl = env.torch_mm, env.torch_cuda_mm, major_minor(env.glibc) if env.glibc else None
    return {
        "torch": None if tmm is None else f"{tmm[0]}.{tmm[1]}",
        "cuda": None if cmm is None else str(cmm[0]),
        "cxx11abi": env.cxx11abi,
        "python_abi": env.python_abi,
        "platform": env.platform,
        "glibc": None if gl is None else f"{gl[0]}.{gl[1]}",
    }


def fingerprint(env: Environment, variant: str, version: str, profile: Profile) -> Fingerprint:
    """The fingerprint of a build of ``profile`` in ``env``. Raises FingerprintError if a fact is missing."""
    facts = environment_facts(env)
    needed = (
        ("torch", "torch"),
        ("torch CUDA", "cuda"),
        ("python ABI", "python_abi"),
        ("platform", "platform"),
    )
    missing = [name for name, key in needed if facts[key] is None]
    if missing:
        raise FingerprintError("cannot fingerprint the build environment: unknown " + ", ".join(missing))
    return Fingerprint(
        variant=variant,
        version=version.split("+", 1)[0],
        **facts,
        archs=tuple(sorted(profile.archs)),
        profile=profile.label(),
    )


# -- the request and the rule ------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    """What a wheel must serve: the target's facts and what it must have compiled.

    ``head_dims`` / ``dtypes`` / ``disabled`` None: the request names none (any profile will do);
    ``disabled`` is the FA3 features the request does without. ``gpus`` are (label, sm) pairs; an sm of
    None is a GPU of unknown capability."""

    variant: str
    torch: str | None  # "2.11"; None: no torch
    cuda: str | None  # torch's CUDA major; None: a torch without CUDA
    cxx11abi: bool | None
    python_abi: str | None
    platform: str | None
    glibc: str | None
    gpus: tuple[tuple[str, int | None], ...] = ()
    versions: SpecifierSet | None = None
    head_dims: tuple[int, ...] | None = None
    dtypes: tuple[str, ...] | None = None
    disabled: tuple[str, ...] | None = None
    id: str | None = None  # the fingerprint id of the build asked for, when there is one

    @classmethod
    def for_environment(
        cls,
        env: Environment,
        variant: str,
        *,
        versions: SpecifierSet | None = None,
        archs: Iterable[int] | None = None,
        head_dims: Iterable[int] | None = None,
        dtypes: Iterable[str] | None = None,
        disabled: Iterable[str] | None = None,
    ) -> Request:
        """What ``install`` asks for: the visible GPUs (or ``archs``), and the head dims / dtypes / FA3
        features done without that are named."""
        gpus: tuple[tuple[str, int | None], ...]
        if archs is not None:
            gpus = tuple((f"sm_{a}", int(a)) for a in sorted(set(archs)))
        else:
            gpus = tuple((g.label, g.sm) for g in env.gpus)
        return cls(
            variant=variant,
            **environment_facts(env),
            gpus=gpus,
            versions=versions,
            head_dims=None if head_dims is None else tuple(sorted(set(head_dims))),
            dtypes=None if dtypes is None else tuple(dtypes),
            disabled=None if disabled is None else tuple(disabled),
        )

    @classmethod
    def for_build(cls, wanted: Fingerprint) -> Request:
        """What ``build`` asks for: the profile it would compile, in the environment it would compile it."""
        info = parse_label(wanted.profile)
        head_dims: tuple[int, ...] | None = None
        dtypes: tuple[str, ...] | None = None
        disabled: tuple[str, ...] | None = None
        if info is not None:
            bv: BuildVariant = "fa3" if wanted.variant == "fa3" else "fa2"
            head_dims = info.head_dims or head_dim_kernels(bv, wanted.version)
            dtypes = info.dtypes or DTYPES
            disabled = info.disabled
        return cls(
            variant=wanted.variant,
            torch=wanted.torch,
            cuda=wanted.cuda,
            cxx11abi=wanted.cxx11abi,
            python_abi=wanted.python_abi,
            platform=wanted.platform,
            glibc=wanted.glibc,
            gpus=tuple((f"sm_{a}", a) for a in wanted.archs),
            versions=SpecifierSet(f"=={wanted.version}") if wanted.version else None,
            head_dims=head_dims,
            dtypes=dtypes,
            disabled=disabled,
            id=wanted.id,
        )


def serves(fp: Fingerprint, req: Request) -> list[str]:
    """Why the build ``fp`` does not serve ``req`` (empty: it serves). Pure. The rule: module docstring."""
    why: list[str] = []
    if fp.variant != req.variant:
        return [f"built for {fp.variant}, not {req.variant}"]
    if req.versions is not None and not req.versions.contains(fp.version, prereleases=True):
        why.append(f"is {fp.variant} {fp.version}, not {req.versions}")
    if req.torch is None:
        why.append("this environment has no torch")
    elif fp.torch != req.torch:
        why.append(
            f"built against torch {fp.torch}, this torch is {req.torch} (a local build is matched on its exact torch minor)"
        )
    if fp.cuda != req.cuda:
        why.append(
            f"built for CUDA {fp.cuda or 'none'}, this torch has CUDA {req.cuda or 'none'} (the major must match)"
        )
    if fp.cxx11abi is None:
        why.append("its CXX11 ABI was not recorded (unknown matches nothing)")
    elif req.cxx11abi is None:
        why.append("this torch's CXX11 ABI is unknown (unknown matches nothing)")
    elif fp.cxx11abi != req.cxx11abi:
        why.append(f"built with CXX11 ABI {fp.cxx11abi}, this torch uses {req.cxx11abi}")
    if fp.python_abi != req.python_abi:
        why.append(f"built for {fp.python_abi}, this Python is {req.python_abi or 'unknown'}")
    if fp.platform != req.platform:
        why.append(f"built for {fp.platform}, this is {req.platform or 'unknown'}")
    bg, eg = major_minor(fp.glibc), major_minor(req.glibc)
    if bg is not None and (eg is None or bg > eg):
        why.append(f"built on glibc {fp.glibc}, this system has {req.glibc or 'no known glibc'}")
    archs = [f"sm_{a}" for a in fp.archs]
    for label, sm in req.gpus:
        if sm is None:
            why.append(f"cannot tell whether it has code for {label} (compute capability unknown)")
        elif runs_on(archs, sm) == "no":
            why.append(f"has no code for {label} (built for {', '.join(archs) or 'nothing'})")
    why.extend(_profile_gaps(fp, req))
    return why


def _profile_gaps(fp: Fingerprint, req: Request) -> list[str]:
    """What the request names that the build's profile did not compile."""
    if req.head_dims is None and req.dtypes is None and req.disabled is None:
        return []
    if parse_label(fp.profile) is None:
        return [
            f"its profile {fp.profile or '(none)'} cannot be read, so it cannot be shown to cover the request"
        ]
    cov = build_coverage(fp.variant, f"{fp.version}+{fp.profile}")
    if cov is None:  # a variant that is not built (FA4): nothing narrowed
        return []
    gaps: list[str] = []
    if req.head_dims is not None and cov.head_dims is not None:
        for d in req.head_dims:
            bucket = next((k for k in cov.kernels if d <= k), None)
            if bucket not in cov.head_dims:
                gaps.append(f"head dim {d}")
    if req.dtypes is not None and cov.dtypes is not None:
        gaps += [t for t in req.dtypes if t not in cov.dtypes]
    if req.disabled is not None:
        gaps += [f"--no-{f} was not asked" for f in cov.disabled if f not in req.disabled]
    return [f"its profile {fp.profile} lacks {', '.join(gaps)}"] if gaps else []


# -- built wheels ------------------------------------------------------------------------------------
def _read_manifest(path: Path) -> BuiltWheel | None:
    try:
        m = json.loads(read_bounded(path, MANIFEST_MAX).decode("utf-8"))
        if not isinstance(m, dict) or m.get("schema") != SCHEMA or not isinstance(m.get("fingerprint"), dict):
            return None
        fp = Fingerprint.from_json(m["fingerprint"])
        whl = path.parent / str(m["wheel"])
        if whl.parent != path.parent:  # "wheel": "../elsewhere.whl"
            return None
        name, _v, _b, _t = parse_wheel_filename(whl.name)
    except (OSError, ValueError, KeyError, TypeError, InvalidWheelFilename):
        return None
    if fp.variant not in VARIANT_DIST or canonicalize_name(name) != VARIANT_DIST[fp.variant]:
        return None
    if not whl.is_file():
        return None
    sha = m.get("sha256")
    return BuiltWheel(whl, fp, sha if isinstance(sha, str) else "", m)


def recorded_build(wheel: Path) -> BuiltWheel | None:
    """The build whose build.json sits beside ``wheel`` and names it (a wheel `flashdoctor build` stored),
    else None."""
    bw = _read_manifest(wheel.parent / MANIFEST)
    return bw if bw is not None and bw.path.name == wheel.name else None


class Wheelhouse:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def find(self, filename: str) -> Path | None:
        """The wheel of that exact name, if present (its sha256 is checked by the caller: fetch)."""
        p = self.root / filename
        return p if p.is_file() else None

    def builds(self, variant: Variant | None = None) -> Iterator[BuiltWheel]:
        """Every complete flashdoctor-built wheel here (of ``variant``); unreadable entries skipped."""
        if not self.root.is_dir():
            return
        for mpath in sorted(self.root.glob(f"*/{MANIFEST}")):
            bw = _read_manifest(mpath)
            if bw is not None and (variant is None or bw.fingerprint.variant == variant):
                yield bw

    def add(self, src: Path, filename: str) -> Path | None:
        """Copy a verified wheel in (a new temporary file, then a rename). Returns None when the directory
        cannot be written (a read-only shared wheelhouse is not an error)."""
        dst = self.root / filename
        if dst.is_file():
            return dst
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp, _sha = copy_new(src, self.root, mode=0o644)
        except OSError:
            return None
        try:
            os.replace(tmp, dst)
        except OSError:
            tmp.unlink(missing_ok=True)
            return None
        fsync_dir(self.root)
        return dst


def scan(wheelhouse: Path) -> Iterator[BuiltWheel]:
    """Every complete built wheel in ``wheelhouse`` (unreadable or partial entries are skipped)."""
    return Wheelhouse(wheelhouse).builds()


def rank(bw: BuiltWheel, req: Request) -> tuple[bool, Version, tuple[int, int, int, int]]:
    """Sort key among the builds that serve ``req``: same id, newest version, widest profile."""
    try:
        v = Version(bw.fingerprint.version)
    except InvalidVersion:
        v = Version("0")
    fp = bw.fingerprint
    info = parse_label(fp.profile)
    cov = build_coverage(fp.variant, f"{fp.version}+{fp.profile}") if info is not None else None
    if info is None:
        width = (0, 0, 0, 0)
    elif cov is None:
        width = (1, 1000, 1000, 0)
    else:
        width = (
            1,
            len(cov.head_dims if cov.head_dims is not None else cov.kernels),
            len(cov.dtypes) if cov.dtypes is not None else 1000,
            -len(cov.disabled),
        )
    return (req.id is not None and fp.id == req.id, v, width)


def best(
    wheelhouses: Iterable[Wheelhouse | Path], req: Request
) -> tuple[BuiltWheel | None, list[tuple[BuiltWheel, list[str]]]]:
    """The build that serves ``req`` best (see :func:`rank`), and every other build of the
    variant with why it does not serve."""
    fits: list[BuiltWheel] = []
    rejected: list[tuple[BuiltWheel, list[str]]] = []
    for wh in wheelhouses:
        house = wh if isinstance(wh, Wheelhouse) else Wheelhouse(wh)
        for bw in house.builds(req.variant):  # type: ignore[arg-type]
            why = serves(bw.fingerprint, req)
            if why:
                rejected.append((bw, why))
            else:
                fits.append(bw)
    fits.sort(key=lambda bw: rank(bw, req), reverse=True)
    for bw in fits:  # the best first; its bytes are read only now, and only until one is whole
        why = _not_recorded(bw)
        if not why:
            return bw, rejected
        rejected.append((bw, why))
    return None, rejected


def _not_recorded(bw: BuiltWheel) -> list[str]:
    """Why the wheel's bytes are not the ones its build.json records (empty: they are, or it records no
    digest): a copy cut short or changed since is not served."""
    if not bw.sha256:
        return []
    try:
        digest = sha256_file(bw.path)
    except OSError as exc:
        return [f"its wheel {bw.filename} cannot be read: {exc.strerror or exc}"]
    if digest == bw.sha256.lower():
        return []
    return [
        f"its wheel {bw.filename} is not the one build.json records (sha256 {bw.sha256[:16]}…): "
        "cut short or changed since"
    ]


def find(wheelhouses: Iterable[Path], wanted: Fingerprint) -> BuiltWheel | None:
    """The built wheel that serves a build of ``wanted`` (``flashdoctor build`` reuses it)."""
    return best(wheelhouses, Request.for_build(wanted))[0]


def store(wheelhouse: Path, wheel: Path, fp: Fingerprint, build_info: dict[str, Any]) -> BuiltWheel:
    """Copy ``wheel`` into ``wheelhouse/<id>/`` with its manifest. A manifest always describes the wheel
    beside it: an earlier one goes before its wheel is replaced, the new one is written last, and the
    wheel goes again when its manifest cannot be written (a full disk). ``<id>`` that is a link or not a
    directory is never written through. Raises OSError."""
    dest_dir = wheelhouse / fp.id
    dest_dir.mkdir(parents=True, exist_ok=True)
    if not stat.S_ISDIR(os.lstat(dest_dir).st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "a link in the wheelhouse, not its directory", str(dest_dir))
    dest = dest_dir / wheel.name
    (dest_dir / MANIFEST).unlink(missing_ok=True)
    tmp, digest = copy_new(wheel, dest_dir, mode=0o644)
    try:
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(dest_dir)
    manifest = {
        "schema": SCHEMA,
        "wheel": dest.name,
        "sha256": digest,
        "fingerprint": fp.to_json(),
        "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "flashdoctor": __version__,
        **build_info,
    }
    try:
        atomic_write_bytes(dest_dir / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return BuiltWheel(dest, fp, digest, manifest)
