"""Wheel selection: which wheels of the index fit an Environment, why every other one does not, and the
install plan. Pure functions of (Environment, WheelIndex, options); nothing here touches the system.

Matching rules (facts.md, "FA2" / "FA3" / "Wheels in the wild"; each code is public, README "Wheel
rejection codes"):

- ``torch-mismatch``: an FA2 (or torch-labelled) wheel must match torch's major.minor exactly — a wheel
  for another minor fails with ``undefined symbol: _ZN3c10...``. FA3 stable-ABI wheels (no torch in
  the name) serve torch >= 2.9 (hopper/setup.py TORCH_TARGET_VERSION).
- ``cuda-mismatch``: the wheel's CUDA major must be torch's — a cu12 wheel on a cu11 torch fails with
  ``libcudart.so.12: cannot open shared object file``.
- ``abi-mismatch``: the wheel's C++ ABI must be torch's (``torch._C._GLIBCXX_USE_CXX11_ABI``).
- ``python-mismatch`` / ``platform-mismatch``: the wheel's tags (packaging.tags) against this
  interpreter and OS/architecture; abi3 wheels serve every later CPython (not free-threaded builds).
- ``glibc-too-old``: manylinux tags, and official ``linux_*`` wheels built on Ubuntu 22.04 (from
  2.8.0.post1) need glibc 2.35.
- ``gpu-code-missing``: the wheel has no code for a visible GPU (2.7.x wheels were built with CUDA 12.4:
  no sm_100 / sm_120).
- ``driver-too-old``: the driver must support the CUDA major the wheel was built with (minor-version
  compatibility covers the minor).
- ``no-cuda-torch``: torch is missing, a CPU build or a ROCm build.
- ``community`` (needs --allow-community), ``version-excluded`` (outside --version), ``yanked``.

Preference among the wheels that fit: the newest version; then official over the PyTorch index over
community; then a certain ABI over an inferred one; then the CUDA closest to torch's (exact, older minor,
newer minor); then higher listing confidence; then a known glibc need (a manylinux copy) over an unknown
one; then, within one source, the newer release of the same file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.version import InvalidVersion, Version

from flashdoctor import knowledge
from flashdoctor.decide.wheels.index import IndexEntry, WheelIndex
from flashdoctor.decide.wheels.parse import manylinux_glibc, platform_arch
from flashdoctor.errors import UsageError
from flashdoctor.knowledge import codes as code_registry
from flashdoctor.knowledge.archs import runs_on
from flashdoctor.knowledge.variants import Variant
from flashdoctor.knowledge.versions import major_minor, parse_version
from flashdoctor.model.environment import Environment
from flashdoctor.model.plan import Plan, Rejection, WheelRef

REJECTION_CODES: Mapping[str, str] = code_registry.codes("rejection")  # public interface: data/codes.json
# How far a rejection is from fitting, to show the nearest misses first (lower is nearer).
_DISTANCE = {
    "community": 0,
    "version-excluded": 0,
    "torch-mismatch": 1,
    "python-mismatch": 1,
    "cuda-mismatch": 2,
    "abi-mismatch": 2,
    "glibc-too-old": 2,
    "driver-too-old": 2,
    "gpu-code-missing": 3,
    "no-cuda-torch": 3,
    "yanked": 5,
    "platform-mismatch": 8,
}
_CONFIDENCE = {"high": 0, None: 1, "medium": 2, "low": 3}
SDPA = "PyTorch SDPA (torch.nn.functional.scaled_dot_product_attention)"
MAX_ALTERNATIVES = 5
MAX_REJECTED = 20
PER_KIND = 3


# -- the target, precomputed once per Environment ---------------------------------------------------
@dataclass(frozen=True)
class Target:
    """What the selector needs to know about an Environment, in the form it compares fastest.
    ``None`` means unknown: a rule whose input is unknown does not reject (the plan says so)."""

    os: str | None
    arch: str | None
    glibc: tuple[int, int] | None
    python: Version | None
    pairs: frozenset[tuple[str, str]] | None  # supported (interpreter, abi)
    platforms: frozenset[str] | None  # supported platform tags, "any" included
    torch_state: str  # "cuda" | "unknown" | "missing" | "cpu" | "rocm"
    torch_mm: tuple[int, int] | None
    torch_version: Version | None  # public
    cuda: tuple[int, int] | None
    abi: bool | None
    sms: tuple[int, ...]  # distinct compute capabilities of the visible GPUs (empty: none known)
    driver_cuda: tuple[int, int] | None
    unknowns: tuple[str, ...]  # environment facts the selection had to assume


def linux_platforms(arch: str, glibc: tuple[int, int] | None) -> list[str]:
    """Platform tags a Linux system with this glibc accepts, newest first (PEP 600 manylinux_2_N and the
    legacy aliases of PEP 513/571/599). packaging computes these only for the running system, so they
    are spelled out here for a target that may be another machine. glibc unknown: any manylinux."""
    major, minor = glibc if glibc is not None else (2, 99)
    out: list[str] = []
    if major == 2:
        lowest = 5 if arch in ("x86_64", "i686") else 17
        for m in range(minor, lowest - 1, -1):
            out.append(f"manylinux_2_{m}_{arch}")
            if m == 17 and arch in ("x86_64", "i686", "aarch64", "armv7l", "ppc64", "ppc64le", "s390x"):
                out.append(f"manylinux2014_{arch}")
            if m == 12 and arch in ("x86_64", "i686"):
                out.append(f"manylinux2010_{arch}")
            if m == 5 and arch in ("x86_64", "i686"):
                out.append(f"manylinux1_{arch}")
    out.append(f"linux_{arch}")
    return out


@lru_cache(maxsize=64)
def python_pairs(py: tuple[int, int], abi: str) -> frozenset[tuple[str, str]]:
    """The (interpreter, abi) pairs packaging.tags accepts for this CPython (its own tag rules: abi3 for
    every older minor, not for free-threaded builds; py3*-none). The platform part is checked apart."""
    interp = f"cp{py[0]}{py[1]}"
    tags = [*cpython_tags(py, abis=[abi], platforms=["x"]), *compatible_tags(py, interp, ["x"])]
    return frozenset((t.interpreter, t.abi) for t in tags)


def supported_tags(env: Environment) -> frozenset[Tag]:
    """Every tag this environment accepts (for comparisons with plain tag filtering)."""
    t = target_of(env)
    py = major_minor(env.python)
    if py is None or t.platforms is None:
        return frozenset()
    abi = env.python_abi or f"cp{py[0]}{py[1]}"
    plats = sorted(t.platforms - {"any"})
    interp = f"cp{py[0]}{py[1]}"
    return frozenset([*cpython_tags(py, abis=[abi], platforms=plats), *compatible_tags(py, interp, plats)])


@lru_cache(maxsize=1024)
def target_of(env: Environment) -> Target:
    unknowns: list[str] = []
    os_, arch = env.os, env.machine
    platforms: list[str] | None
    glibc = major_minor(env.glibc) if env.glibc else None
    if env.platform is None:
        platforms = None
        unknowns.append("platform")
    elif os_ == "linux" and arch:
        if glibc is None:
            unknowns.append("glibc")
        platforms = linux_platforms(arch, glibc)
    else:
        platforms = [env.platform]
    py = major_minor(env.python) if env.python else None
    pairs: frozenset[tuple[str, str]] | None = None
    if py is None:
        unknowns.append("python")
    else:
        pairs = python_pairs(py, env.python_abi or f"cp{py[0]}{py[1]}")
    if not env.known("torch"):
        state = "unknown"
        unknowns.append("torch")
    elif env.torch is None:
        state = "missing"
    elif env.torch_hip:
        state = "rocm"
    elif env.known("torch_cuda") and env.torch_cuda is None:
        state = "cpu"
    else:
        state = "cuda"
    tv = env.torch_version
    if state == "cuda" and env.torch_cuda is None:
        unknowns.append("torch_cuda")
    if state == "cuda" and env.cxx11abi is None and os_ == "linux":
        unknowns.append("cxx11abi")
    sms = tuple(sorted({g.sm for g in env.gpus if g.sm is not None})) if env.known("gpus") else ()
    if not env.known("gpus"):
        unknowns.append("gpus")
    dc = major_minor(env.driver_cuda) if env.driver_cuda else None
    return Target(
        os=os_,
        arch=arch,
        glibc=glibc,
        python=None if py is None else Version(f"{py[0]}.{py[1]}"),
        pairs=pairs,
        platforms=None if platforms is None else frozenset([*platforms, "any"]),
        torch_state=state,
        torch_mm=env.torch_mm,
        torch_version=None if tv is None else Version(tv.public),
        cuda=env.torch_cuda_mm,
        abi=env.cxx11abi,
        sms=sms,
        driver_cuda=dc,
        unknowns=tuple(unknowns),
    )


# -- one entry against the target -------------------------------------------------------------------
@lru_cache(maxsize=4096)
def _gpu_runs(archs: tuple[str, ...], sm: int) -> bool:
    return runs_on(archs, sm) != "no"


def _fa4_driver_min() -> tuple[int, int] | None:
    raw = knowledge.variant_info("fa4").raw.get("needs_driver_cuda")
    return major_minor(raw) if raw else None


def evaluate(
    entry: IndexEntry,
    t: Target,
    spec: SpecifierSet | None = None,
    allow_community: bool = False,
) -> tuple[str, ...]:
    """The rejection codes of one entry (empty: it fits). Fast: no strings are formatted here."""
    return (*machine_codes(entry, t), *policy_codes(entry, spec, allow_community))


def machine_codes(entry: IndexEntry, t: Target) -> list[str]:
    """The codes that depend only on what the wheel was built for (its ``build_signature``)."""
    codes: list[str] = []
    n = entry.name
    # Python and platform, by tags
    tag_miss = t.pairs is not None and not (n.pythons & t.pairs)
    if tag_miss or (
        entry.requires_python is not None
        and t.python is not None
        and not entry.requires_python.contains(t.python, prereleases=True)
    ):
        codes.append("python-mismatch")
    if t.platforms is not None:
        if not (n.platforms & t.platforms):
            codes.append("glibc-too-old" if _only_glibc(n.platforms, t) else "platform-mismatch")
        elif t.glibc is not None and entry.glibc is not None and entry.glibc > t.glibc:
            codes.append("glibc-too-old")
    # torch, CUDA, ABI
    if t.torch_state in ("missing", "cpu", "rocm"):
        codes.append("no-cuda-torch")
    elif t.torch_state == "cuda":
        if n.torch is not None:
            if t.torch_mm is not None and n.torch != t.torch_mm:
                codes.append("torch-mismatch")
        elif (
            entry.torch_spec is not None
            and t.torch_version is not None
            and not entry.torch_spec.contains(t.torch_version, prereleases=True)
        ):
            codes.append("torch-mismatch")
        if entry.cuda_mm is not None and t.cuda is not None and entry.cuda_mm[0] != t.cuda[0]:
            codes.append("cuda-mismatch")
        if entry.abi is not None and t.abi is not None and t.os == "linux" and entry.abi != t.abi:
            codes.append("abi-mismatch")
    # GPU code and driver
    if entry.archs is not None and t.sms and not all(_gpu_runs(entry.archs, sm) for sm in t.sms):
        codes.append("gpu-code-missing")
    if t.driver_cuda is not None:
        need: tuple[int, int] | None
        if entry.cuda_mm is not None:
            need = (entry.cuda_mm[0], 0)
        elif n.variant == "fa4":
            need = _fa4_driver_min()
        else:
            need = None
        if need is not None and t.driver_cuda < need:
            codes.append("driver-too-old")
    return codes


def policy_codes(entry: IndexEntry, spec: SpecifierSet | None, allow_community: bool) -> list[str]:
    """The codes that depend on the publisher and the user's options, not on the machine."""
    codes = []
    if entry.yanked:
        codes.append("yanked")
    if entry.community and not allow_community:
        codes.append("community")
    if spec is not None and not spec.contains(entry.version, prereleases=True):
        codes.append("version-excluded")
    return codes


def build_signature(entry: IndexEntry) -> tuple[object, ...]:
    """Everything ``machine_codes`` reads. ~5000 FA2 wheels have ~900 signatures: selection evaluates
    each signature once."""
    n = entry.name
    return (
        n.variant,
        n.pythons,
        n.platforms,
        n.torch,
        entry.torch_spec,
        entry.cuda_mm[0] if entry.cuda_mm else None,
        entry.abi,
        entry.glibc,
        entry.archs,
        entry.requires_python,
    )


@lru_cache(maxsize=16)
def _groups(index: WheelIndex, variant: Variant) -> tuple[tuple[IndexEntry, ...], ...]:
    groups: dict[tuple[object, ...], list[IndexEntry]] = {}
    for e in index.for_variant(variant):
        groups.setdefault(build_signature(e), []).append(e)
    return tuple(tuple(es) for es in groups.values())


@lru_cache(maxsize=16)
def _version_ranks(index: WheelIndex) -> dict[Version, int]:
    """Every version and release of the index numbered in ascending order (cheap sort keys)."""
    versions = {e.version for e in index.entries} | {
        e.release for e in index.entries if e.release is not None
    }
    return {v: i for i, v in enumerate(sorted(versions))}


def _only_glibc(platforms: frozenset[str], t: Target) -> bool:
    """Whether a manylinux tag for this very architecture exists that only a newer glibc accepts."""
    if t.os != "linux" or t.glibc is None:
        return False
    for p in platforms:
        g = manylinux_glibc(p)
        if g is not None and platform_arch(p) == t.arch and g > t.glibc:
            return True
    return False


def reason_text(code: str, entry: IndexEntry, t: Target, spec: SpecifierSet | None = None) -> str:
    """One rejection as "code: sentence" (the code is public; the sentence is for people)."""
    n = entry.name
    if code == "no-cuda-torch":
        what = {
            "missing": "torch is not installed",
            "cpu": "torch is a CPU-only build",
            "rocm": "torch is a ROCm build",
        }
        msg = f"{what.get(t.torch_state, 'torch is unusable')}; this wheel needs a CUDA build of torch"
    elif code == "torch-mismatch":
        if n.torch is not None:
            msg = f"built for torch {n.torch_text}, this is torch {_mm_text(t.torch_mm)}"
        else:
            msg = f"serves torch {entry.torch_spec} (LibTorch stable ABI), this is torch {t.torch_version}"
    elif code == "cuda-mismatch":
        msg = (
            f"built for CUDA {entry.cuda_mm[0] if entry.cuda_mm else '?'}, torch uses CUDA {_mm_text(t.cuda)}"
        )
    elif code == "abi-mismatch":
        label = {True: "CXX11", False: "pre-CXX11"}
        inferred = " (inferred from how it was built)" if "abi" in entry.inferred else ""
        msg = f"built for the {label[bool(entry.abi)]} C++ ABI{inferred}, torch uses the {label[bool(t.abi)]} ABI"
    elif code == "python-mismatch":
        if entry.requires_python is not None and not (t.pairs is not None and not (n.pythons & t.pairs)):
            msg = f"requires Python {entry.requires_python}, this is Python {t.python}"
        else:
            tags = ", ".join(sorted(f"{i}-{a}" for i, a in n.pythons))
            msg = f"built for {tags}, this is Python {t.python}"
    elif code == "platform-mismatch":
        msg = f"built for {', '.join(sorted(n.platforms))}, this is {_platform_text(t)}"
    elif code == "glibc-too-old":
        need = entry.glibc or min(
            (g for p in n.platforms if (g := manylinux_glibc(p)) is not None and platform_arch(p) == t.arch),
            default=None,
        )
        why = " (built on Ubuntu 22.04)" if entry.source == "official" and need == (2, 35) else ""
        msg = f"needs glibc {_mm_text(need)}{why}, this system has glibc {_mm_text(t.glibc)}"
    elif code == "gpu-code-missing":
        missing = [sm for sm in t.sms if entry.archs is not None and not _gpu_runs(entry.archs, sm)]
        built = f" (built with CUDA {entry.cuda})" if entry.cuda else ""
        have = ", ".join(entry.archs or ())
        msg = f"has no code for sm_{', sm_'.join(map(str, missing))}: carries {have}{built}"
    elif code == "driver-too-old":
        need_major = entry.cuda_mm[0] if entry.cuda_mm else None
        if need_major is None:
            fa4 = _fa4_driver_min()
            need_txt = _mm_text(fa4)
        else:
            need_txt = f"{need_major}.x"
        drv = knowledge.driver_min_for_major(need_major) if need_major else None
        msg = (
            f"needs a driver for CUDA {need_txt}"
            + (f" (≥ {drv})" if drv else "")
            + f"; this driver supports CUDA {_mm_text(t.driver_cuda)}"
        )
    elif code == "community":
        msg = f"community build ({entry.source}); rerun with --allow-community to consider it"
    elif code == "version-excluded":
        msg = f"version {entry.version} is outside --version {spec}"
    elif code == "yanked":
        msg = "yanked by its publisher"
    else:  # pragma: no cover - every code above is handled
        msg = REJECTION_CODES.get(code, code)
    return f"{code}: {msg}"


def _mm_text(mm: tuple[int, int] | None) -> str:
    return "?" if mm is None else f"{mm[0]}.{mm[1]}"


def _platform_text(t: Target) -> str:
    if t.platforms is None:
        return "an unknown platform"
    if t.os == "linux":
        return f"linux_{t.arch}" + (f" (glibc {_mm_text(t.glibc)})" if t.glibc else "")
    return ", ".join(sorted(p for p in t.platforms if p != "any"))


# -- ranking ----------------------------------------------------------------------------------------
def _cuda_distance(entry: IndexEntry, t: Target) -> int:
    if entry.cuda_mm is None or t.cuda is None or entry.cuda_mm[1] is None:
        return 5
    diff = entry.cuda_mm[1] - t.cuda[1]
    if diff == 0:
        return 0
    return -diff if diff < 0 else 10 + diff


def preference_key(entry: IndexEntry, t: Target) -> tuple[object, ...]:
    """Sort key, best first when sorted ascending."""
    return (
        _Neg(entry.version),
        entry.rank,
        1 if "abi" in entry.inferred else 0,
        _cuda_distance(entry, t),
        _CONFIDENCE.get(entry.confidence, 1),
        # an auditwheel copy whose manylinux tag states its glibc need beats a linux_* copy of unknown need
        0 if entry.glibc is not None or t.os != "linux" else 1,
        entry.source,  # release tags of different repositories do not compare: only within one
        _Neg(entry.release or Version("0")),
        entry.filename,
        entry.url_or_template,
    )


class _Neg:
    """Reverses the order of a Version inside an ascending sort key."""

    __slots__ = ("v",)

    def __init__(self, v: Version) -> None:
        self.v = v

    def __lt__(self, other: _Neg) -> bool:
        return self.v > other.v

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Neg) and self.v == other.v

    def __hash__(self) -> int:  # pragma: no cover - keys are compared, not hashed
        return hash(self.v)


@lru_cache(maxsize=1024)
def _distance(codes: tuple[str, ...]) -> int:
    return sum(_DISTANCE.get(c, 5) for c in codes)


# -- selection --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Selection:
    """Every entry of one variant, split: those that fit (best first) and those that do not (nearest
    miss first, with their codes)."""

    variant: Variant
    target: Target
    fits: tuple[IndexEntry, ...]
    unsorted_misses: tuple[tuple[IndexEntry, tuple[str, ...]], ...]
    spec: SpecifierSet | None
    allow_community: bool
    ranks: Mapping[Version, int]

    @property
    def best(self) -> IndexEntry | None:
        return self.fits[0] if self.fits else None

    @cached_property
    def misses(self) -> tuple[tuple[IndexEntry, tuple[str, ...]], ...]:
        """Rejected entries with their codes, nearest miss first (sorted on first use only: ``check``
        needs just the best fit)."""
        ranks = self.ranks

        def key(item: tuple[IndexEntry, tuple[str, ...]]) -> tuple[object, ...]:
            e, codes = item
            return (_distance(codes), len(codes), -ranks.get(e.version, 0), e.rank, e.filename)

        return tuple(sorted(self.unsorted_misses, key=key))

    def nearest_misses(
        self, limit: int | None = MAX_REJECTED, per_kind: int | None = PER_KIND
    ) -> list[tuple[IndexEntry, tuple[str, ...]]]:
        """The nearest misses, at most ``per_kind`` with the same set of reasons (so that twenty
        community rebuilds do not hide the one wheel that misses by the torch version)."""
        out: list[tuple[IndexEntry, tuple[str, ...]]] = []
        kinds: dict[tuple[str, ...], int] = {}
        for e, codes in self.misses:
            if limit is not None and len(out) >= limit:
                break
            if per_kind is not None:
                if kinds.get(codes, 0) >= per_kind:
                    continue
                kinds[codes] = kinds.get(codes, 0) + 1
            out.append((e, codes))
        return out

    def rejections(
        self, limit: int | None = MAX_REJECTED, per_kind: int | None = PER_KIND
    ) -> tuple[Rejection, ...]:
        return tuple(
            Rejection(e.label, tuple(reason_text(c, e, self.target, self.spec) for c in codes))
            for e, codes in self.nearest_misses(limit, per_kind)
        )


def parse_version_spec(text: str | SpecifierSet | None) -> SpecifierSet | None:
    """``--version``: a PEP 440 specifier; a bare version means exactly that version."""
    if text is None or isinstance(text, SpecifierSet):
        return text
    s = text.strip()
    if not s:
        return None
    try:
        Version(s)
        s = f"=={s}"
    except InvalidVersion:
        pass
    try:
        return SpecifierSet(s)
    except InvalidSpecifier:
        raise UsageError(
            f"--version {text!r} is not a version specifier (e.g. '2.8.3', '>=2.7,<2.8')"
        ) from None


def select_wheels(
    env: Environment,
    variant: Variant,
    index: WheelIndex,
    version_spec: str | SpecifierSet | None = None,
    allow_community: bool = False,
) -> Selection:
    """Evaluate every entry of ``variant`` against ``env``."""
    t = target_of(env)
    spec = parse_version_spec(version_spec)
    fits: list[IndexEntry] = []
    misses: list[tuple[IndexEntry, tuple[str, ...]]] = []
    for group in _groups(index, variant):
        machine = machine_codes(group[0], t)
        for e in group:
            codes = (*machine, *policy_codes(e, spec, allow_community))
            if codes:
                misses.append((e, codes))
            else:
                fits.append(e)
    fits.sort(key=lambda e: preference_key(e, t))
    return Selection(variant, t, tuple(fits), tuple(misses), spec, allow_community, _version_ranks(index))


def find_wheel(
    env: Environment, variant: Variant, index: WheelIndex, allow_community: bool = False
) -> str | None:
    """The filename of the wheel ``install`` would pick, or None (checks.WheelFinder)."""
    best = select_wheels(env, variant, index, allow_community=allow_community).best
    return None if best is None else best.filename


# -- the plan ---------------------------------------------------------------------------------------
def make_plan(
    env: Environment,
    variant: Variant,
    index: WheelIndex,
    version_spec: str | SpecifierSet | None = None,
    allow_community: bool = False,
) -> Plan:
    """What ``flashdoctor install --<variant>`` would do here:

    - ``none``: the variant is installed, imports and has code for every GPU (and fits --version);
    - ``unsupported``: the machine rules the variant out (``blockers`` holds the check codes); use SDPA;
    - ``wheel``: the best prebuilt wheel, with the next best as ``alternatives``;
    - ``build``: no wheel fits; ``reasons`` say what would make one fit, and the source build is planned.
    """
    from flashdoctor.decide.checks import run_checks
    from flashdoctor.model.findings import Verdict

    spec = parse_version_spec(version_spec)
    info = knowledge.variant_info(variant)
    report = run_checks(env, source="plan", wheel_finder=lambda _e, _v: None)
    vv = report.verdicts[variant]
    inst = env.installed_variant(variant)

    if vv.verdict is Verdict.UNSUPPORTED:
        # the verdict's fix names the working alternative (PyTorch SDPA, or another variant)
        alt = vv.fix or f"Use {SDPA}."
        return Plan("unsupported", variant, reasons=(*vv.reasons, alt), blockers=vv.blockers)
    if vv.verdict is Verdict.READY and inst is not None:
        v = parse_version(inst.version)
        if spec is None or (v is not None and spec.contains(Version(v.public), prereleases=True)):
            return Plan("none", variant, reasons=(*vv.reasons, "nothing to do"))
    t = target_of(env)
    if t.torch_state in ("missing", "cpu"):
        fix = next(
            (f.fix for f in report.findings if f.code in ("torch-missing", "torch-cpu-only") and f.fix), None
        )
        why = (
            "torch is not installed"
            if t.torch_state == "missing"
            else f"torch {env.torch} is a CPU-only build"
        )
        return Plan(
            "unsupported",
            variant,
            reasons=(
                f"{why}: {info.title} needs a CUDA build of torch, and flashdoctor never installs torch",
                *([f"install one first: {fix}"] if fix else []),
            ),
            blockers=("torch-missing",) if t.torch_state == "missing" else ("torch-cpu-only",),
        )
    if t.torch_state == "rocm":
        return Plan(
            "build",
            variant,
            reasons=(
                "ROCm: there are no prebuilt wheels; build flash-attn for ROCm from source",
                *vv.reasons,
            ),
            blockers=vv.blockers,
        )

    sel = select_wheels(env, variant, index, spec, allow_community)
    notes = _assumption_notes(t)
    blockers = tuple(c for c in vv.blockers if c in ("driver-too-old",))
    if sel.best is not None:
        best = sel.best
        reasons = [
            f"{best.label} fits: {_fit_summary(best, t)}",
            f"source: {best.source}; evidence: {best.evidence}",
            *_entry_notes(best, variant),
            *notes,
        ]
        if len(sel.fits) > 1:
            reasons.append(f"{len(sel.fits) - 1} other wheel(s) fit; the best are listed as alternatives")
        return Plan(
            "wheel",
            variant,
            wheel=best.ref(),
            alternatives=_distinct_refs(sel.fits[1:], best.ref()),
            rejected=sel.rejections(),
            reasons=tuple(reasons),
            blockers=blockers,
        )
    hints = what_would_fit(sel)
    if not info.needs_nvcc:
        return Plan(
            "unsupported",
            variant,
            rejected=sel.rejections(),
            reasons=(
                f"no {info.dist} wheel in the index fits, and {info.title} has no source build",
                *hints,
                *notes,
            ),
            blockers=blockers,
        )
    build_blockers = tuple(c for c in vv.blockers)
    build_msgs = [
        f.message for f in report.findings if f.code in build_blockers and f.variant in (None, variant)
    ]
    return Plan(
        "build",
        variant,
        rejected=sel.rejections(),
        reasons=(
            "no prebuilt wheel fits this machine",
            *hints,
            f"plan: build {info.dist} from source for this torch (flashdoctor install --{variant} --from-source)",
            *(f"fix before building: {m}" for m in dict.fromkeys(build_msgs)),
            *notes,
        ),
        blockers=build_blockers,
    )


def _distinct_refs(entries: Iterable[IndexEntry], best: WheelRef) -> tuple[WheelRef, ...]:
    out: list[WheelRef] = []
    seen = {best.url}
    for e in entries:
        ref = e.ref()
        if ref.url in seen:
            continue
        seen.add(ref.url)
        out.append(ref)
        if len(out) >= MAX_ALTERNATIVES:
            break
    return tuple(out)


def _fit_summary(e: IndexEntry, t: Target) -> str:
    n = e.name
    parts = []
    if n.torch is not None and t.torch_mm is not None:
        parts.append(f"torch {n.torch_text}")
    elif e.torch_spec is not None:
        parts.append(f"torch {e.torch_spec} (stable ABI) ∋ {t.torch_version}")
    if e.cuda_mm is not None:
        parts.append(f"CUDA {e.cuda or e.cuda_mm[0]}")
    if e.abi is not None and t.os == "linux":
        parts.append(
            ("CXX11" if e.abi else "pre-CXX11") + " ABI" + (" (inferred)" if "abi" in e.inferred else "")
        )
    parts.append("/".join(sorted(f"{i}-{a}" for i, a in n.pythons)))
    parts.append(", ".join(sorted(n.platforms)))
    if e.glibc is not None and t.glibc is not None:
        parts.append(f"glibc {_mm_text(e.glibc)} ≤ {_mm_text(t.glibc)}")
    if e.archs is not None and t.sms:
        parts.append("code for " + ", ".join(f"sm_{sm}" for sm in t.sms))
    return ", ".join(parts)


def _entry_notes(e: IndexEntry, variant: Variant) -> list[str]:
    out = []
    if e.sha256 is None:
        out.append("no sha256 is known for this file: the download cannot be checked against a digest")
    if "abi" in e.inferred and e.name.abi_label is False and e.source == "official":
        out.append(
            "its 'cxx11abiFALSE' label means 'ABI not forced': built against a CXX11-ABI torch, so it is "
            "treated as a CXX11-ABI wheel (inferred from setup.py)"
        )
    if e.confidence in ("medium", "low"):
        out.append(f"listing confidence {e.confidence}: this exact file was not seen at its URL")
    if variant == "fa4" and e.version.is_prerelease:
        out.append(f"{e.name.dist} publishes only pre-releases: pip needs --pre or this exact version")
    if e.community:
        out.append("a community build: not published by the FlashAttention authors")
    return out


def _assumption_notes(t: Target) -> list[str]:
    words = {
        "glibc": "glibc unknown: assumed new enough for every wheel",
        "python": "Python unknown: the Python tag was not checked",
        "platform": "platform unknown: the platform tag was not checked",
        "torch": "torch unknown: torch version, CUDA and ABI were not checked",
        "torch_cuda": "torch's CUDA unknown: the CUDA major was not checked",
        "cxx11abi": "torch's C++ ABI unknown: the ABI was not checked",
        "gpus": "GPUs unknown: GPU code coverage was not checked",
    }
    return [words[u] for u in t.unknowns if u in words]


# -- what would make a wheel fit ---------------------------------------------------------------------
_HINT_ORDER = (
    "version-excluded",
    "torch-mismatch",
    "python-mismatch",
    "cuda-mismatch",
    "abi-mismatch",
    "glibc-too-old",
    "driver-too-old",
    "gpu-code-missing",
)


def what_would_fit(sel: Selection) -> list[str]:
    """Sentences about wheels that miss by one thing, e.g. "official wheels exist for torch 2.8 with
    this CUDA, ABI and Python". Community near misses are named when community is not allowed."""
    t = sel.target
    buckets: dict[tuple[str, bool], list[IndexEntry]] = {}
    community_fits: list[IndexEntry] = []
    for e, codes in sel.unsorted_misses:
        if codes == ("community",):
            community_fits.append(e)
            continue
        rest = [c for c in codes if c != "community"]
        if len(rest) == 1:
            buckets.setdefault((rest[0], e.community), []).append(e)
    out: list[str] = []
    if community_fits:
        best = min(community_fits, key=lambda e: preference_key(e, t))
        out.append(
            f"community wheels fit (e.g. {best.filename} from {best.source}): rerun with --allow-community"
        )
    for code in _HINT_ORDER:
        for community in (False, True):
            group = buckets.get((code, community))
            if not group:
                continue
            who = "community" if community else "official"
            if community and not sel.allow_community:
                who += " (--allow-community)"
            out.append(_hint(code, who, group, t, sel.spec))
    return out


def _hint(code: str, who: str, group: list[IndexEntry], t: Target, spec: SpecifierSet | None) -> str:
    example = min(group, key=lambda e: preference_key(e, t)).label
    if code == "torch-mismatch":
        torches = sorted({e.name.torch for e in group if e.name.torch is not None}, reverse=True)
        labels = [f"{a}.{b}" for a, b in torches] or sorted({str(e.torch_spec) for e in group})
        return f"{who} wheels exist for torch {', '.join(labels)} with this CUDA, ABI and Python (e.g. {example})"
    if code == "python-mismatch":
        pys = sorted({i for e in group for i, _a in e.name.pythons}, key=lambda s: (len(s), s), reverse=True)
        return f"{who} wheels exist for {', '.join(pys)} with this torch and CUDA (e.g. {example})"
    if code == "cuda-mismatch":
        majors = sorted({e.cuda_mm[0] for e in group if e.cuda_mm is not None}, reverse=True)
        return (
            f"{who} wheels exist for CUDA {', '.join(map(str, majors))} builds of torch {_mm_text(t.torch_mm)} "
            f"(e.g. {example})"
        )
    if code == "abi-mismatch":
        other = "CXX11" if t.abi is False else "pre-CXX11"
        return f"{who} wheels exist only for a {other}-ABI torch (e.g. {example})"
    if code == "glibc-too-old":
        return (
            f"{who} wheels need a newer glibc than {_mm_text(t.glibc)} (e.g. {example}): use a newer OS image"
        )
    if code == "driver-too-old":
        return f"{who} wheels need a newer NVIDIA driver (e.g. {example})"
    if code == "gpu-code-missing":
        return f"{who} wheels fit except that they carry no code for this GPU (e.g. {example})"
    if code == "version-excluded":
        newest = max(e.version for e in group)
        return f"{who} wheels outside --version {spec} fit (newest {newest}, e.g. {example})"
    return f"{who} wheels miss only by {code} (e.g. {example})"  # pragma: no cover
