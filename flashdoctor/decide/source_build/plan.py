"""The build plan: a pure function of the Environment and the user's request.

Decides the architectures (mapped to what the variant's own switch understands), the kernel units
a profile compiles, MAX_JOBS / NVCC_THREADS, the environment variables and the command. Nothing here
touches the system; ``flashdoctor build --dry-run`` prints this value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from flashdoctor.decide.source_build.hopper import Fa3SetupFacts, SourceList
from flashdoctor.errors import UsageError
from flashdoctor.knowledge import load_data
from flashdoctor.knowledge.fa2_build import Fa2Arch, fa2_build_arch
from flashdoctor.knowledge.profiles import FA3_FEATURES, BuildVariant, Profile, head_dim_buckets
from flashdoctor.knowledge.versions import major_minor, parse_version
from flashdoctor.model.build import ArchTarget, BuildPlan, BuildRequest, Jobs
from flashdoctor.model.environment import Environment

# The values live in flashdoctor.model.build; named here too for the callers that plan.
__all__ = ["ArchTarget", "BuildPlan", "BuildRequest", "Jobs", "build_command", "make_plan", "plan_jobs"]


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


def fa3_units_estimate(
    disabled: Iterable[str],
    head_dims: Sequence[int],
    dtypes: Sequence[str],
    sm80: bool,
    hdimdiff: Iterable[int] = (64, 192),
) -> int:
    """FA3 compile units where no checkout's hopper/setup.py could be read: the formula of its source list at
    upstream main (2026-08; 293 units for a full build). ``hdimdiff``: the head dims whose "diff" forward
    units (64 with v 256/512, 192 with v 128) are compiled. Only an estimate: other revisions differ
    (2.8.3's has 133), and the plan says so."""
    off = set(disabled)
    half = 1 + ("fp16" in dtypes)  # bf16 always
    dt90 = half + ("fp8" not in off)
    split = 1 + ("split" not in off)
    paged = 1 + ("paged-kv" not in off)
    softcap = 1 + ("softcap" not in off)
    combos = split * paged + ("pack-gqa" not in off)  # pack-gqa only without split and paged-kv
    diffs = set(hdimdiff)
    n = len(head_dims)
    fwd90 = (n * dt90 + (2 * half if 64 in diffs else 0) + (dt90 if 192 in diffs else 0)) * combos * softcap
    bwd90 = n * half
    fwd80 = n * half * split * paged if sm80 else 0
    bwd80 = n * half * softcap if sm80 else 0
    if "backward" in off:
        bwd90 = bwd80 = 0
    extra = 1 + (split > 1) + 1  # flash_api(_stable).cpp, flash_fwd_combine.cu, flash_prepare_scheduler.cu
    return fwd90 + bwd90 + fwd80 + bwd80 + extra


def _via_torch(sm: int, found: Fa2Arch, nvcc: str | None, torch: str | None, subject: str) -> ArchTarget:
    """An FA2 arch setup.py has no switch for, compiled by torch's cpp_extension instead."""
    for tool, version, need in (("nvcc", nvcc, found.nvcc), ("torch", torch, found.torch)):
        have, want = major_minor(version), major_minor(need)
        if have is not None and want is not None and have < want:
            return ArchTarget(
                sm,
                None,
                "no",
                f"sm_{sm} is named only by {tool} ≥ {need} ({tool} {version} here): FA2's setup.py has "
                "no switch for it and torch's cpp_extension compiles it",
                subject,
            )
    return ArchTarget(
        sm,
        sm,
        "native",
        f"sm_{sm} SASS, native: FA2's setup.py has no switch for it, so torch's cpp_extension compiles it "
        "(TORCH_CUDA_ARCH_LIST)",
        subject,
    )


# -- architectures ----------------------------------------------------------------------------------
def map_arch(
    variant: BuildVariant, sm: int, nvcc: str | None, subject: str, torch: str | None = None
) -> ArchTarget:
    """Which of the variant's build archs serves compute capability ``sm``, and why.

    FA2's setup.py emits ``-gencode arch=compute_XX,code=sm_XX`` for XX in 80/90/100/120 only: SASS,
    no PTX. SASS for sm_XY runs natively on the same major with minor >= Y (flashdoctor.knowledge.archs), so
    8.6/8.7/8.9 run the sm_80 code, 10.3 the sm_100 code, 12.1 the sm_120 code. With no PTX there is
    no JIT fallback: a GPU none of them covers (pre-Ampere) gets no kernel at all. sm_110 (Jetson Thor)
    has no switch in setup.py but is compiled by torch's cpp_extension when setup.py passes no -gencode
    (``archs_via_torch`` in data/build.json; needs nvcc 13.0 and torch 2.9, which know the name).
    FA3 compiles sm_90a (arch-specific: exactly 9.0) plus, on newer main, sm_80 for 8.x.
    """
    if variant == "fa2":
        found = fa2_build_arch(sm)
        if found is None:
            why = "FA2 needs sm80 or newer" if sm < 80 else "no FA2 arch covers it"
            return ArchTarget(
                sm,
                None,
                "no",
                f"no FA2 code runs on sm_{sm}: {why}, and FA2 emits no PTX to JIT",
                subject,
            )
        if found.via_torch:
            return _via_torch(sm, found, nvcc, torch, subject)
        a = found.arch
        nv, need = major_minor(nvcc), major_minor(found.nvcc)
        if nv is not None and need is not None and nv < need:
            return ArchTarget(
                sm,
                None,
                "no",
                f"sm_{a} code needs nvcc ≥ {found.nvcc} (setup.py drops the arch silently with nvcc {nvcc})",
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
def _build_archs(variant: BuildVariant, targets: Sequence[ArchTarget], subject: str) -> tuple[int, ...]:
    bad = [t for t in targets if t.build_arch is None]
    if bad:
        lines = "; ".join(f"{t.subject}: {t.note}" for t in bad)
        raise UsageError(f"cannot build {variant.upper()} for {lines}", hint=f"drop it from {subject}")
    return tuple(sorted({t.build_arch for t in targets if t.build_arch is not None}))


def make_plan(
    env: Environment, request: BuildRequest, version: str, hopper: Fa3SetupFacts | None = None
) -> BuildPlan:
    """The whole build plan. Raises UsageError for a request that cannot be built as asked
    (an arch no code runs on, a narrowed FA2 build of a version flashdoctor does not know).
    ``hopper``: for FA3, what the checkout's own hopper/setup.py does (None: no checkout was read)."""
    data = build_data()
    req = requested_archs(env, request.archs)
    notes: list[str] = []
    if req:
        targets = tuple(map_arch(request.variant, sm, env.nvcc, subj, env.torch) for sm, subj in req)
        archs = _build_archs(
            request.variant, targets, "--arch" if request.archs else "the GPUs (or pass --arch)"
        )
    else:
        targets = ()
        archs = tuple(int(a) for a in data["fa2"]["archs"]) if request.variant == "fa2" else (90,)
        notes.append(
            f"no GPU visible and no --arch: building upstream's default archs {', '.join(map(str, archs))}"
        )

    planning = _Planning(env, request, version, archs, targets, notes)
    if request.variant == "fa2":
        return _plan_fa2(planning)
    return _plan_fa3(planning, hopper)


@dataclass(frozen=True)
class _Planning:
    """What the planner of each build system starts from, and the fields every plan takes from it."""

    env: Environment
    request: BuildRequest
    version: str
    archs: tuple[int, ...]  # what to compile for
    targets: tuple[ArchTarget, ...]  # the GPUs / --arch values they serve
    notes: list[str]  # what the plan says; each planner adds its own

    def plan(self, **fields: Any) -> BuildPlan:
        """The plan, with the system's own ``fields`` (profile, units, counts, jobs, env, ...)."""
        return BuildPlan(
            variant=self.request.variant,
            version=self.version,
            targets=self.targets,
            notes=tuple(self.notes),
            **fields,
        )


def _common_env(env: Environment, jobs: Jobs | None, label: str, archs: Sequence[int]) -> dict[str, str]:
    """The variables of every build (``jobs`` None: without MAX_JOBS / NVCC_THREADS)."""
    out = {
        # Never download a guessed prebuilt wheel instead of building (setup.py CachedWheelsCommand).
        "FLASH_ATTENTION_FORCE_BUILD": "TRUE",
        "MAX_JOBS": "" if jobs is None else str(jobs.max_jobs),
        "NVCC_THREADS": "" if jobs is None else str(jobs.nvcc_threads),
        "FLASH_ATTN_LOCAL_VERSION": label,
        # setup.py passes its own -gencode flags and torch then ignores this; it compiles these archs when
        # setup.py passes none (FA2's archs_via_torch, data/build.json).
        "TORCH_CUDA_ARCH_LIST": ";".join(f"{a // 10}.{a % 10}" for a in archs),
        "BUILD_TARGET": "cuda",
        "PYTHONUNBUFFERED": "1",
    }
    if jobs is None:
        del out["MAX_JOBS"], out["NVCC_THREADS"]
    home = env.cuda_home
    if home:
        out["CUDA_HOME"] = home
    return out


def _plan_fa2(p: _Planning) -> BuildPlan:
    env, request, version, archs, notes = p.env, p.request, p.version, p.archs, p.notes
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
    by_torch = [a for a in archs if str(a) in data["archs_via_torch"]]
    if by_torch:
        if v is not None and v < Version(data["arch_switch_since"]):
            raise UsageError(
                f"flash-attn {version} predates FLASH_ATTN_CUDA_ARCHS ({data['arch_switch_since']}): it always "
                f"passes sm_80 code to nvcc, so torch never compiles sm_{by_torch[0]}",
                hint=f"build flash-attn {data['arch_switch_since']} or later",
            )
        # Name only archs setup.py has no switch for: it then passes no -gencode at all, and torch's
        # cpp_extension compiles every arch of TORCH_CUDA_ARCH_LIST (data/build.json archs_via_torch).
        envvars[data["arch_switch"]] = ";".join(map(str, by_torch))
        notes.append(
            f"sm_{', sm_'.join(map(str, by_torch))}: FA2's setup.py has no switch for it; "
            f"{data['arch_switch']}={envvars[data['arch_switch']]} makes setup.py pass no -gencode, and torch's "
            f"cpp_extension compiles TORCH_CUDA_ARCH_LIST={envvars['TORCH_CUDA_ARCH_LIST']} instead"
        )
    return p.plan(
        profile=profile,
        units=units,
        unit_count=len(units) * len(archs),
        default_unit_count=all_units * n_default,
        arch_only_unit_count=all_units * len(archs),
        edges=len(units) + 1 if units else 0,
        jobs=jobs,
        env=envvars,
        edit_sources=layout is not None,
        units_from="table" if layout is not None else "unknown",
    )


def _plan_fa3(p: _Planning, hopper: Fa3SetupFacts | None) -> BuildPlan:
    env, request, archs, notes = p.env, p.request, p.archs, p.notes
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
    # What the profile leaves out: a switch this checkout must read (preflight: fa3-switch-unknown).
    flags = {switches[f] for f in disabled}
    if dtypes is not None and "fp16" not in dtypes:
        flags.add(switches["fp16"])
    for hd in all_hd:
        if head_dims is not None and hd not in head_dims:
            flags.add(switches[f"hdim{hd}"])
    # Units the profile never calls: set where the checkout reads the switch (without it they are compiled).
    sm80 = 80 in archs
    spare = set() if sm80 else {switches["sm80"]}
    for name, hd in data["hdimdiff"].items():
        if head_dims is not None and hd not in head_dims:
            spare.add(switches[name])
    flags |= {f for f in spare if hopper is None or f in hopper.switches}
    hds = head_dims or all_hd
    dts = dtypes or ("fp16", "bf16")
    diffs = [hd for name, hd in data["hdimdiff"].items() if switches[name] not in flags]
    estimate = fa3_units_estimate(disabled, hds, dts, sm80, diffs)
    setup_vars = {data["offline_env"]: "1", **{f: "TRUE" for f in sorted(flags)}}
    base = {**_common_env(env, None, profile.label(), archs), data["offline_env"]: "1"}
    listed = hopper.source_list({**base, **setup_vars}, env.torch, env.nvcc) if hopper is not None else None
    if isinstance(listed, SourceList):
        assert hopper is not None
        upstream = base  # no FLASH_ATTENTION_DISABLE_* at all
        arch_only = {**base, **{k: v for k, v in setup_vars.items() if k == switches["sm80"]}}
        units: tuple[str, ...] = listed.units
        count = len(units)
        full = _count(hopper, upstream, env, fa3_units_estimate((), all_hd, ("fp16", "bf16"), True))
        arch_full = _count(hopper, arch_only, env, full)
        units_from = "checkout"
        notes.append(
            f"compile units: the checkout's own hopper/setup.py source list for this profile"
            f" (torch {env.torch or '?'}, nvcc {env.nvcc or '?'}): ninja runs one step per unit"
        )
        if listed.unknown_names:
            notes.append(
                f"{listed.unknown_names} unit name(s) depend on what is not known here (the torch version):"
                " the count does not"
            )
    else:
        units, count, units_from = (), estimate, "estimate"
        full = fa3_units_estimate((), all_hd, ("fp16", "bf16"), True)
        arch_full = fa3_units_estimate((), all_hd, ("fp16", "bf16"), sm80)
        why = (
            "no checkout was read (--source DIR names one)"
            if hopper is None
            else f"cannot read this revision's source list ({listed})"
        )
        notes.append(f"{why}: the unit count is an estimate (hopper/setup.py of upstream main, 2026-08)")
    if hopper is not None:
        notes += _toolchain_notes(hopper, env.nvcc)
    jobs = plan_jobs(
        count, 1, env.cpus, env.memory_gb, float(data["gb_per_job"]), request.max_jobs, request.nvcc_threads
    )
    envvars = {**_common_env(env, jobs, profile.label(), archs), **setup_vars}
    return p.plan(
        profile=profile,
        units=units,
        unit_count=count,
        default_unit_count=full,
        arch_only_unit_count=arch_full,
        edges=count,
        jobs=jobs,
        env=envvars,
        edit_sources=False,
        extra={"fa3_setup": None if hopper is None else fa3_setup_json(hopper)},
        units_from=units_from,
    )


def _count(hopper: Fa3SetupFacts, environ: Mapping[str, str], env: Environment, fallback: int) -> int:
    listed = hopper.source_list(environ, env.torch, env.nvcc)
    return len(listed.units) if isinstance(listed, SourceList) else fallback


def _toolchain_notes(hopper: Fa3SetupFacts, nvcc: str | None) -> list[str]:
    """What the checkout's hopper/setup.py does with this nvcc (a download is a preflight finding)."""
    out = []
    what = " / ".join(hopper.toolchain) or "nvcc / ptxas"
    if hopper.download_when == "":
        out.append("toolchain: this hopper/setup.py never downloads one: it uses the system nvcc")
    elif hopper.downloads_for(nvcc) is False:
        out.append(
            f"toolchain: nvcc {nvcc} is used as is (this hopper/setup.py downloads {what} only for nvcc"
            f" {hopper.download_when})"
        )
    release = major_minor(nvcc)
    if hopper.cccl_from and release is not None and release >= (major_minor(hopper.cccl_from) or (99, 0)):
        out.append(
            f"nvcc ≥ {hopper.cccl_from}: hopper/setup.py adds $CUDA_HOME/include/cccl to the include path"
        )
    return out


def fa3_setup_json(hopper: Fa3SetupFacts) -> dict[str, Any]:
    """The facts read from the checkout's hopper/setup.py (plan JSON ``fa3_setup``)."""
    return {
        "offline_switch": hopper.offline_switch,
        "download_when": hopper.download_when,
        "download_problem": hopper.download_problem,
        "toolchain": list(hopper.toolchain),
        "nvcc_min": hopper.nvcc_min,
        "cccl_from": hopper.cccl_from,
        "switches": sorted(hopper.switches),
        "source_problem": hopper.source_problem,
    }


def build_command(python: str, setup_dir: str, dist_dir: str) -> list[str]:
    """pip builds the wheel in the target interpreter: --no-build-isolation so setup.py sees the
    installed torch, --no-index/--no-deps so nothing is downloaded, -v so ninja's lines are printed."""
    return [
        python, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--no-index",
        "-v", "-w", dist_dir, setup_dir,
    ]  # fmt: skip
