"""The build plan: a pure function of the Environment and the user's request.

Decides the architectures (mapped to what the variant's own switch understands), the kernel units
a profile compiles, MAX_JOBS / NVCC_THREADS, the environment variables and the command. Nothing here
touches the system; ``flashdoctor build --dry-run`` prints this value.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from flashdoctor.errors import UsageError
from flashdoctor.knowledge import load_data
from flashdoctor.knowledge.archs import runs_on
from flashdoctor.knowledge.profiles import FA3_FEATURES, BuildVariant, Profile, head_dim_buckets
from flashdoctor.knowledge.versions import major_minor, parse_version
from flashdoctor.model.environment import Environment


def build_data() -> dict[str, Any]:
    data: dict[str, Any] = load_data("build")
    return data


# -- FA2 versions and kernel units ------------------------------------------------------------------
@dataclass(frozen=True)
class Fa2Layout:
    """What flashdoctor knows about one FA2 version's sources (data/build.json)."""

    version: str
    head_dims: tuple[int, ...]
    dtypes: tuple[str, ...]
    static_switch_sha256: tuple[str, ...]
    source: str

    def units(
        self, head_dims: Iterable[int] | None = None, dtypes: Iterable[str] | None = None
    ) -> tuple[str, ...]:
        """Kernel units (paths as in setup.py) for a profile, in setup.py's order (kind, causal, hdim, dtype)."""
        hds = set(self.head_dims if head_dims is None else head_dims)
        dts = set(self.dtypes if dtypes is None else dtypes)
        out = []
        for kind in build_data()["fa2"]["unit_kinds"]:
            for causal in ("", "_causal"):
                for hd in self.head_dims:
                    for dt in ("fp16", "bf16"):
                        if hd in hds and dt in dts:
                            out.append(f"csrc/flash_attn/src/flash_{kind}_hdim{hd}_{dt}{causal}_sm80.cu")
        return tuple(out)


def fa2_layout(version: str) -> Fa2Layout | None:
    """The known source layout of an FA2 version, or None when flashdoctor does not know it."""
    v = parse_version(version)
    if v is None:
        return None
    for row in build_data()["fa2"]["versions"]:
        if SpecifierSet(row["versions"]).contains(v, prereleases=True):
            return Fa2Layout(
                version=str(v),
                head_dims=tuple(row["head_dims"]),
                dtypes=tuple(row["dtypes"]),
                static_switch_sha256=tuple(row["static_switch_sha256"]),
                source=row["source"],
            )
    return None


def fa2_known_versions() -> str:
    return ", ".join(row["versions"] for row in build_data()["fa2"]["versions"])


_UNIT_RE = re.compile(build_data()["fa2"]["unit_pattern"])


def parse_unit(path: str) -> tuple[str, int, str, bool] | None:
    """ "csrc/flash_attn/src/flash_bwd_hdim128_bf16_causal_sm80.cu" -> ("bwd", 128, "bf16", True)."""
    m = _UNIT_RE.match(path)
    if not m:
        return None
    return m.group("kind"), int(m.group("hdim")), m.group("dtype"), bool(m.group("causal"))


def fa3_units(disabled: Iterable[str], head_dims: Sequence[int], dtypes: Sequence[str], sm80: bool) -> int:
    """FA3 compile units, from hopper/setup.py's source-list formula (2.8.3 sdist). An estimate for
    other revisions: main has added units since (facts.md: ~293 for a full build on main)."""
    off = set(disabled)
    fp16 = "fp16" in dtypes
    dt_fwd90 = 1 + fp16 + ("fp8" not in off)
    dt_bwd = 1 + fp16
    split = [""] + (["s"] if "split" not in off else [])
    paged = [""] + (["p"] if "paged-kv" not in off else [])
    softcap = 1 + ("softcap" not in off)
    packgqa = [""] + (["g"] if "pack-gqa" not in off else [])
    fwd90_combos = sum(1 for s, p, g in itertools.product(split, paged, packgqa) if not (g and (p or s)))
    fwd90 = 2 * dt_fwd90 * fwd90_combos * softcap  # head dims "all" and "diff"
    bwd90 = len(head_dims) * dt_bwd
    fwd80 = len(head_dims) * dt_bwd * len(split) * len(paged) if sm80 else 0
    bwd80 = len(head_dims) * dt_bwd * softcap if sm80 else 0
    if "backward" in off:
        bwd90 = bwd80 = 0
    extra = 1 + ("split" not in off) + 1  # flash_api.cpp, flash_fwd_combine.cu, flash_prepare_scheduler.cu
    return fwd90 + bwd90 + fwd80 + bwd80 + extra


# -- architectures ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArchTarget:
    """One requested architecture (a GPU or an --arch value) and the code the build gives it."""

    sm: int
    build_arch: int | None  # the variant's arch that serves it; None = nothing can
    runs: str  # "native" | "no"
    note: str
    subject: str  # "GPU 0 NVIDIA H100 (sm_90)" or "--arch 86"

    def to_json(self) -> dict[str, Any]:
        return {
            "sm": self.sm,
            "build_arch": self.build_arch,
            "runs": self.runs,
            "note": self.note,
            "subject": self.subject,
        }


def map_arch(variant: BuildVariant, sm: int, nvcc: str | None, subject: str) -> ArchTarget:
    """Which of the variant's build archs serves compute capability ``sm``, and why.

    FA2's setup.py emits ``-gencode arch=compute_XX,code=sm_XX`` for XX in 80/90/100/120 only: SASS,
    no PTX. SASS for sm_XY runs natively on the same major with minor >= Y (flashdoctor.knowledge.archs), so
    8.6/8.7/8.9 run the sm_80 code, 10.3 the sm_100 code, 12.1 the sm_120 code. With no PTX there is
    no JIT fallback: a GPU none of them covers (sm_110, pre-Ampere) gets no kernel at all.
    FA3 compiles sm_90a (arch-specific: exactly 9.0) plus, on newer main, sm_80 for 8.x.
    """
    if variant == "fa2":
        data = build_data()["fa2"]
        archs = [int(a) for a in data["archs"]]
        mins = {int(k): v for k, v in data["archs_nvcc_min"].items()}
        cands = [a for a in archs if runs_on([f"sm_{a}"], sm) == "native"]
        if not cands:
            why = (
                "FA2 needs sm80 or newer"
                if sm < 80
                else "FA2 compiles SASS for 80/90/100/120 only and no PTX"
            )
            return ArchTarget(
                sm,
                None,
                "no",
                f"no FA2 code runs on sm_{sm}: {why}, so there is no PTX to JIT either",
                subject,
            )
        a = max(cands)
        nv = major_minor(nvcc)
        need = major_minor(mins.get(a))
        if nv is not None and need is not None and nv < need:
            return ArchTarget(
                sm,
                None,
                "no",
                f"sm_{a} code needs nvcc ≥ {mins.get(a)} (setup.py drops the arch silently with nvcc {nvcc})",
                subject,
            )
        if a == sm:
            note = f"sm_{a} SASS, native"
        else:
            note = f"sm_{a} SASS runs natively on sm_{sm} (same major, lower minor); no PTX JIT needed"
        return ArchTarget(sm, a, "native", note, subject)
    # FA3
    if sm == 90:
        return ArchTarget(sm, 90, "native", "sm_90a SASS (arch-specific: runs on exactly 9.0)", subject)
    if sm // 10 == 8:
        return ArchTarget(
            sm,
            80,
            "native",
            f"sm_80 kernels (newer main's hopper/ only) run natively on sm_{sm}; release FA3 is Hopper-only",
            subject,
        )
    return ArchTarget(
        sm, None, "no", f"FA3 has no code for sm_{sm} (sm_90a is arch-specific, no PTX)", subject
    )


def requested_archs(env: Environment, archs: Sequence[int] | None) -> list[tuple[int, str]]:
    """(sm, subject) pairs: --arch values, else the visible GPUs (identical GPUs once)."""
    if archs:
        return [(a, f"--arch {a}") for a in archs]
    out: dict[int, str] = {}
    for g in env.gpus:
        if g.sm is not None and g.sm not in out:
            out[g.sm] = g.label
    return sorted(out.items())


# -- resources --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Jobs:
    max_jobs: int
    nvcc_threads: int
    reasons: tuple[str, ...]


def plan_jobs(
    edges: int,
    n_archs: int,
    cpus: int | None,
    memory_gb: float | None,
    gb_per_job: float,
    max_jobs: int | None = None,
    nvcc_threads: int | None = None,
) -> Jobs:
    """MAX_JOBS (parallel nvcc processes, ninja -j) and NVCC_THREADS (threads inside one nvcc).

    - NVCC_THREADS: nvcc's --threads runs the per-architecture steps of one unit in parallel, so more
      threads than -gencode targets buy nothing: default min(archs, 4) (4 is FA2's own default).
    - MAX_JOBS: at most the units to compile, the cores divided by the threads each job uses, and the
      available memory divided by ``gb_per_job``. We assume FA2's own figure, ~9 GB per job (setup.py:
      "each JOB peak memory cost is ~8-9GB when threads = 4"), and keep it with fewer threads: the
      heaviest units (backward, head dim 256) set the peak and we have no measurement that allows less.
    """
    reasons: list[str] = []
    if nvcc_threads is None:
        threads = max(1, min(n_archs, 4))
        reasons.append(f"NVCC_THREADS={threads}: one thread per target architecture ({n_archs}), at most 4")
    else:
        threads = nvcc_threads
        reasons.append(f"NVCC_THREADS={threads} (--nvcc-threads)")
    if max_jobs is not None:
        reasons.append(f"MAX_JOBS={max_jobs} (--max-jobs)")
        if memory_gb is not None and max_jobs * gb_per_job > memory_gb:
            reasons.append(
                f"warning: {max_jobs} jobs × ~{gb_per_job:.0f} GB may exceed the {memory_gb:.0f} GB available (OOM kills)"
            )
        return Jobs(max_jobs, threads, tuple(reasons))
    limits = [(max(1, edges), f"{edges} unit(s) to compile")]
    if cpus is not None:
        limits.append((max(1, cpus // threads), f"{cpus} cores / {threads} thread(s) per job"))
    if memory_gb is not None:
        limits.append(
            (
                max(1, int(memory_gb // gb_per_job)),
                f"{memory_gb:.0f} GB available / ~{gb_per_job:.0f} GB per job",
            )
        )
    if cpus is None and memory_gb is None:
        limits.append((2, "cores and memory unknown: a cautious 2"))
    jobs, why = min(limits, key=lambda t: t[0])
    reasons.append(f"MAX_JOBS={jobs}: limited by {why}")
    if memory_gb is not None and memory_gb < gb_per_job:
        reasons.append(
            f"warning: {memory_gb:.1f} GB available is below one job's ~{gb_per_job:.0f} GB: expect OOM kills"
        )
    return Jobs(jobs, threads, tuple(reasons))


# -- the plan ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BuildRequest:
    """What the user asked for (CLI options), before any decision."""

    variant: BuildVariant = "fa2"
    archs: tuple[int, ...] | None = None
    head_dims: tuple[int, ...] | None = None
    dtypes: tuple[str, ...] | None = None
    disable: tuple[str, ...] = ()  # FA3 features (--no-backward ...)
    max_jobs: int | None = None
    nvcc_threads: int | None = None


@dataclass(frozen=True)
class BuildPlan:
    variant: BuildVariant
    version: str
    profile: Profile
    targets: tuple[ArchTarget, ...]
    units: tuple[str, ...]  # FA2 kernel units compiled (empty for FA3: see unit_count)
    unit_count: int  # kernel compile units × archs
    default_unit_count: int  # the same for upstream's default build (all units × default archs)
    arch_only_unit_count: int  # all units, this plan's archs
    edges: int  # ninja compile steps (kernel units + flash_api.cpp ...)
    jobs: Jobs
    env: dict[str, str]  # variables flashdoctor sets for the build
    edit_sources: bool  # FA2: the unpacked sources are edited (head dims / dtypes narrowed)
    notes: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.profile.label()

    @property
    def reduction(self) -> float:
        return self.default_unit_count / max(1, self.unit_count)

    def to_json(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "version": self.version,
            "profile": self.profile.to_json(),
            "label": self.label,
            "targets": [t.to_json() for t in self.targets],
            "units": list(self.units),
            "unit_count": self.unit_count,
            "arch_only_unit_count": self.arch_only_unit_count,
            "default_unit_count": self.default_unit_count,
            "edges": self.edges,
            "max_jobs": self.jobs.max_jobs,
            "nvcc_threads": self.jobs.nvcc_threads,
            "jobs_reasons": list(self.jobs.reasons),
            "env": dict(self.env),
            "edit_sources": self.edit_sources,
            "notes": list(self.notes),
            **self.extra,
        }


def _build_archs(variant: BuildVariant, targets: Sequence[ArchTarget], subject: str) -> tuple[int, ...]:
    bad = [t for t in targets if t.build_arch is None]
    if bad:
        lines = "; ".join(f"{t.subject}: {t.note}" for t in bad)
        raise UsageError(f"cannot build {variant.upper()} for {lines}", hint=f"drop it from {subject}")
    return tuple(sorted({t.build_arch for t in targets if t.build_arch is not None}))


def make_plan(env: Environment, request: BuildRequest, version: str) -> BuildPlan:
    """The whole build plan. Raises UsageError for a request that cannot be built as asked
    (an arch no code runs on, a narrowed FA2 build of a version flashdoctor does not know)."""
    data = build_data()
    req = requested_archs(env, request.archs)
    notes: list[str] = []
    if req:
        targets = tuple(map_arch(request.variant, sm, env.nvcc, subj) for sm, subj in req)
        archs = _build_archs(
            request.variant, targets, "--arch" if request.archs else "the GPUs (or pass --arch)"
        )
    else:
        targets = ()
        archs = tuple(int(a) for a in data["fa2"]["archs"]) if request.variant == "fa2" else (90,)
        notes.append(
            f"no GPU visible and no --arch: building upstream's default archs {', '.join(map(str, archs))}"
        )

    if request.variant == "fa2":
        return _plan_fa2(env, request, version, archs, targets, notes)
    return _plan_fa3(env, request, version, archs, targets, notes)


def _common_env(env: Environment, jobs: Jobs, label: str, archs: Sequence[int]) -> dict[str, str]:
    out = {
        # Never download a guessed prebuilt wheel instead of building (setup.py CachedWheelsCommand).
        "FLASH_ATTENTION_FORCE_BUILD": "TRUE",
        "MAX_JOBS": str(jobs.max_jobs),
        "NVCC_THREADS": str(jobs.nvcc_threads),
        "FLASH_ATTN_LOCAL_VERSION": label,
        # setup.py passes its own -gencode flags, so torch ignores this; set it to agree anyway.
        "TORCH_CUDA_ARCH_LIST": ";".join(f"{a // 10}.{a % 10}" for a in archs),
        "BUILD_TARGET": "cuda",
        "PYTHONUNBUFFERED": "1",
    }
    home = env.cuda_home
    if home:
        out["CUDA_HOME"] = home
    return out


def _plan_fa2(
    env: Environment,
    request: BuildRequest,
    version: str,
    archs: tuple[int, ...],
    targets: tuple[ArchTarget, ...],
    notes: list[str],
) -> BuildPlan:
    data = build_data()["fa2"]
    layout = fa2_layout(version)
    v = parse_version(version)
    if v is not None and v < Version(data["arch_switch_since"]):
        notes.append(
            f"flash-attn {version} predates FLASH_ATTN_CUDA_ARCHS ({data['arch_switch_since']}): it builds sm80+sm90 whatever --arch says"
        )
    narrowed = request.head_dims is not None or request.dtypes is not None
    if narrowed and layout is None:
        raise UsageError(
            f"flash-attn {version}: flashdoctor does not know this version's sources, so it will not narrow "
            "head dims / dtypes (it edits the sources of known versions only)",
            hint=f"known: {fa2_known_versions()}; or build every head dim and dtype (omit --head-dims/--dtypes)",
        )
    head_dims = dtypes = None
    if layout is not None and request.head_dims is not None:
        head_dims = head_dim_buckets(request.head_dims, layout.head_dims)
        served = [d for d in request.head_dims if d not in head_dims]
        if served:
            notes.append(
                "head dim(s) "
                + ", ".join(map(str, served))
                + " run on the next larger kernel: "
                + ", ".join(map(str, head_dims))
            )
        if set(head_dims) == set(layout.head_dims):
            head_dims = None
    if layout is not None and request.dtypes is not None:
        dtypes = tuple(request.dtypes)
        if set(dtypes) == set(layout.dtypes):
            dtypes = None
    if request.disable:
        raise UsageError(
            "--no-backward/--no-fp8/... are FA3 switches; FA2 has none", hint="use --fa3, or omit them"
        )
    profile = Profile("fa2", archs, head_dims, dtypes)
    if layout is not None:
        units = layout.units(head_dims, dtypes)
        all_units = len(layout.units())
    else:
        units = ()
        all_units = 0
        notes.append(
            f"flash-attn {version} is not in flashdoctor's table: unit counts unknown, sources built as they are"
        )
    n_default = len(data["archs"])
    jobs = plan_jobs(
        len(units) + 1 if units else 73,  # unknown version: assume 2.8's 72 kernels + flash_api.cpp
        len(archs),
        env.cpus,
        env.memory_gb,
        float(data["gb_per_job"]),
        request.max_jobs,
        request.nvcc_threads,
    )
    envvars = _common_env(env, jobs, profile.label(), archs)
    envvars[data["arch_switch"]] = ";".join(str(a) for a in archs)
    return BuildPlan(
        variant="fa2",
        version=version,
        profile=profile,
        targets=targets,
        units=units,
        unit_count=len(units) * len(archs),
        default_unit_count=all_units * n_default,
        arch_only_unit_count=all_units * len(archs),
        edges=len(units) + 1 if units else 0,
        jobs=jobs,
        env=envvars,
        edit_sources=layout is not None,
        notes=tuple(notes),
    )


def _plan_fa3(
    env: Environment,
    request: BuildRequest,
    version: str,
    archs: tuple[int, ...],
    targets: tuple[ArchTarget, ...],
    notes: list[str],
) -> BuildPlan:
    data = build_data()["fa3"]
    switches: Mapping[str, str] = data["switches"]
    unknown = [f for f in request.disable if f not in FA3_FEATURES]
    if unknown:
        raise UsageError(
            f"unknown FA3 feature(s): {', '.join(unknown)}", hint=f"known: {', '.join(FA3_FEATURES)}"
        )
    all_hd = tuple(data["head_dims"])
    head_dims = head_dim_buckets(request.head_dims, all_hd) if request.head_dims else None
    if head_dims is not None and set(head_dims) == set(all_hd):
        head_dims = None
    dtypes = tuple(request.dtypes) if request.dtypes else None
    if dtypes == ("fp16",):
        notes.append("FA3 always compiles bf16; --dtypes fp16 only keeps fp16 in addition")
        dtypes = ("fp16", "bf16")
    if dtypes is not None and set(dtypes) == {"fp16", "bf16"}:
        dtypes = None
    disabled = tuple(f for f in FA3_FEATURES if f in request.disable)
    profile = Profile("fa3", archs, head_dims, dtypes, disabled)
    flags = {switches[f] for f in disabled}
    if dtypes is not None and "fp16" not in dtypes:
        flags.add(switches["fp16"])
    for hd in all_hd:
        if head_dims is not None and hd not in head_dims:
            flags.add(switches[f"hdim{hd}"])
    sm80 = 80 in archs
    if not sm80:
        flags.add(switches["sm80"])
    hds = head_dims or all_hd
    dts = dtypes or ("fp16", "bf16")
    units = fa3_units(disabled, hds, dts, sm80)
    full = fa3_units((), all_hd, ("fp16", "bf16"), True)
    jobs = plan_jobs(
        units, 1, env.cpus, env.memory_gb, float(data["gb_per_job"]), request.max_jobs, request.nvcc_threads
    )
    envvars = _common_env(env, jobs, profile.label(), archs)
    envvars[data["offline_env"]] = "1"
    for f in sorted(flags):
        envvars[f] = "TRUE"
    notes.append(
        "FA3 unit counts follow hopper/setup.py's source list in the 2.8.3 sdist; other revisions differ"
    )
    return BuildPlan(
        variant="fa3",
        version=version,
        profile=profile,
        targets=targets,
        units=(),
        unit_count=units,
        default_unit_count=full,
        arch_only_unit_count=fa3_units((), all_hd, ("fp16", "bf16"), sm80),
        edges=units,
        jobs=jobs,
        env=envvars,
        edit_sources=False,
        notes=tuple(notes),
    )


def build_command(python: str, setup_dir: str, dist_dir: str) -> list[str]:
    """pip builds the wheel in the target interpreter: --no-build-isolation so setup.py sees the
    installed torch, --no-index/--no-deps so nothing is downloaded, -v so ninja's lines are printed."""
    return [
        python, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--no-index",
        "-v", "-w", dist_dir, setup_dir,
    ]  # fmt: skip
