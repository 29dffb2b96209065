"""The checks: pure functions of an Environment that return Findings, and the per-variant verdicts.

Nothing here touches the system. Each check is small and independent; ``run_checks`` runs them all.
Finding codes are public interface, listed in ``CODES`` and in the README: never rename one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from flashdoctor import knowledge
from flashdoctor.knowledge import codes as code_registry
from flashdoctor.knowledge.archs import runs_on, sort_archs
from flashdoctor.knowledge.variants import VARIANTS, Variant
from flashdoctor.knowledge.versions import major_minor, parse_version
from flashdoctor.model.environment import GPU, Environment, FlashInstall
from flashdoctor.model.findings import CheckReport, Finding, Status, VariantVerdict, Verdict

# code -> one line for the README table. Codes ending in "-ok"/"-found" are the passing form of a check.
CODES: Mapping[str, str] = code_registry.codes("finding")  # public interface: data/codes.json

# BF16 needs sm80; build jobs of FA2's kernels need this much memory each. FA2's own setup.py assumes
# ~9 GB per job when MAX_JOBS is unset (facts.md: min(cpus/2, free GB/9)).
BUILD_GB_PER_JOB = 9.0
BUILD_DISK_GB = 10.0  # sdist + CUTLASS headers + objects for a targeted build
INSTALL_DISK_GB = 1.5  # a wheel download plus its unpacked copy
OFFICIAL_WHEEL_GLIBC = "2.35"  # official FA2 wheels from 2.8.0.post1 were built on Ubuntu 22.04


def _f(code: str, status: Status, message: str, **kw: object) -> Finding:
    assert code in CODES, f"undocumented finding code {code}"
    return Finding(code=code, status=status, message=message, **kw)  # type: ignore[arg-type]


def _cc(g: GPU) -> str:
    return g.capability or "?"


def gpu_groups(gpus: Iterable[GPU]) -> list[tuple[GPU, str, int]]:
    """Identical GPUs grouped (an 8-GPU node gives one finding, not eight): (first GPU, label, count)."""
    groups: dict[tuple[str | None, str | None], list[GPU]] = {}
    for g in gpus:
        groups.setdefault((g.name, g.capability), []).append(g)
    out = []
    for members in groups.values():
        g = members[0]
        if len(members) == 1:
            out.append((g, g.label, 1))
        else:
            idx = ",".join("?" if m.index is None else str(m.index) for m in members)
            out.append((g, f"GPUs {idx}: {len(members)} × {g.name or 'unknown'} (sm_{g.sm})", len(members)))
    return out


def _has_gpu(env: Environment) -> bool | None:
    if not env.known("gpus"):
        return None
    return bool(env.gpus)


def pytorch_cuda_index(driver_cuda: str | None) -> str:
    """The newest PyTorch wheel index a driver can run (for fix commands)."""
    tags = knowledge.load_data("cuda_drivers")["pytorch_indexes"]
    dc = major_minor(driver_cuda)
    best = tags[-1]
    if dc is not None:
        fitting = [t for t in tags if (m := major_minor(t["cuda"])) is not None and m <= dc]
        best = fitting[-1] if fitting else tags[0]
    return f"pip install torch --index-url https://download.pytorch.org/whl/{best['tag']}"


# -- GPU ------------------------------------------------------------------------------------------
def check_gpus(env: Environment) -> list[Finding]:
    if not env.known("gpus"):
        return [_f("gpu-found", Status.SKIP, "GPUs unknown (not in the target spec)")]
    if not env.gpus:
        why = "no NVIDIA driver" if env.known("driver") and env.driver is None else "no GPU visible"
        return [
            _f(
                "no-gpu",
                Status.WARN,
                f"No NVIDIA GPU ({why}): FlashAttention cannot run here; verdicts are for this machine.",
                evidence=f"driver={env.driver or 'none'}",
                fix="Run on a GPU machine, or plan for one with --target FILE (see README 'Target spec').",
            )
        ]
    out = []
    for g, label, n in gpu_groups(env.gpus):
        mem = f", {g.memory_gb:.0f} GB" if g.memory_gb else ""
        count = f"{n} × " if n > 1 else ""
        out.append(
            _f(
                "gpu-found",
                Status.OK,
                f"{count}{g.name or 'GPU'} compute capability {_cc(g)}{mem}",
                subject=label,
            )
        )
        if g.bf16 is False:
            out.append(
                _f(
                    "bf16-unsupported",
                    Status.WARN,
                    f"{g.name} (sm_{g.sm}) has no bf16: use fp16, and FlashAttention needs sm80+ anyway",
                    subject=label,
                    fix="Use dtype=torch.float16 with PyTorch SDPA on this GPU.",
                )
            )
    return out


def gpu_support(variant: Variant, g: GPU) -> Status:
    cc = g.cc
    if cc is None:
        return Status.SKIP
    fit = knowledge.variant_info(variant).gpu_fit(cc)
    return {"supported": Status.OK, "experimental": Status.WARN, "unsupported": Status.FAIL}[fit]


def check_gpu_support(env: Environment) -> list[Finding]:
    if not env.known("gpus") or not env.gpus:
        return []
    out = []
    for variant in VARIANTS:
        info = knowledge.variant_info(variant)
        for g, label, _n in gpu_groups(env.gpus):
            st = gpu_support(variant, g)
            if st is Status.FAIL:
                if variant == "fa2":
                    why = "FA2 needs an Ampere or newer GPU (sm80+)"
                    fix = "Use PyTorch SDPA (torch.nn.functional.scaled_dot_product_attention) on this GPU."
                elif variant == "fa3":
                    why = "FA3 targets Hopper (sm90)" + (
                        "; main's hopper/ also has SM8x kernels" if g.cc and g.cc >= (8, 0) else ""
                    )
                    fix = "Use FA2 or PyTorch SDPA" if g.cc and g.cc >= (8, 0) else "Use PyTorch SDPA"
                    if g.cc and g.cc[0] >= 10:
                        why, fix = (
                            "FA3 has no Blackwell kernels",
                            "Use FA4 (flashdoctor install --fa4) or FA2 2.7.3+",
                        )
                else:
                    why = "FA4 targets Hopper and Blackwell (sm90/sm100)"
                    fix = "Use FA2 or PyTorch SDPA" if g.cc and g.cc >= (8, 0) else "Use PyTorch SDPA"
                out.append(
                    _f(
                        "gpu-unsupported",
                        Status.FAIL,
                        f"{g.name} (sm_{g.sm}): {why}",
                        variant=variant,
                        subject=label,
                        fix=fix + ".",
                    )
                )
            elif st is Status.WARN:
                out.append(
                    _f(
                        "gpu-experimental",
                        Status.WARN,
                        f"{g.name} (sm_{g.sm}) is not {info.title}'s target GPU",
                        evidence=info.experimental_note,
                        variant=variant,
                        subject=label,
                        fix="Prefer FA2 on this GPU." if variant != "fa2" else None,
                    )
                )
    return out


# -- driver ---------------------------------------------------------------------------------------
def check_driver(env: Environment) -> list[Finding]:
    if not env.known("driver") or env.driver is None:
        return []  # no-gpu covers a missing driver
    if not env.known("torch_cuda") or env.torch_cuda is None:
        return [_f("driver-ok", Status.OK, f"NVIDIA driver {env.driver} (CUDA {env.driver_cuda or '?'})")]
    tc = env.torch_cuda_mm
    dc = major_minor(env.driver_cuda)
    if tc is None or dc is None:
        return [_f("driver-ok", Status.SKIP, f"driver {env.driver}: its CUDA level is unknown")]
    need = knowledge.driver_min_for_cuda(env.torch_cuda)
    evidence = (
        f"driver {env.driver} supports CUDA ≤ {env.driver_cuda}; torch {env.torch} uses CUDA {env.torch_cuda}"
    )
    if dc[0] < tc[0]:
        return [
            _f(
                "driver-too-old",
                Status.FAIL,
                f"Driver {env.driver} supports CUDA {env.driver_cuda}, torch needs CUDA {env.torch_cuda}",
                evidence=evidence,
                fix=f"Upgrade the NVIDIA driver to ≥ {need}, or install a torch built for CUDA {dc[0]}.x: "
                + pytorch_cuda_index(env.driver_cuda),
            )
        ]
    if dc < tc:
        return [
            _f(
                "driver-too-old",
                Status.WARN,
                f"Driver {env.driver} (CUDA {env.driver_cuda}) runs torch's CUDA {env.torch_cuda} only through "
                "minor-version compatibility: PTX JIT fails",
                evidence=evidence,
                fix=f"Upgrade the NVIDIA driver to ≥ {need}.",
            )
        ]
    return [
        _f(
            "driver-ok",
            Status.OK,
            f"NVIDIA driver {env.driver} supports CUDA ≤ {env.driver_cuda}",
            evidence=evidence,
        )
    ]


# -- torch ----------------------------------------------------------------------------------------
def check_torch(env: Environment) -> list[Finding]:
    if not env.known("torch"):
        return [_f("torch-ok", Status.SKIP, "torch unknown (not in the target spec)")]
    gpu = _has_gpu(env)
    serious = Status.WARN if gpu is False else Status.FAIL
    if env.torch is None:
        return [
            _f(
                "torch-missing",
                serious,
                "torch is not installed in the target interpreter (flashdoctor never installs it)",
                evidence=f"python {env.python_executable or env.python or '?'}",
                fix=pytorch_cuda_index(env.driver_cuda),
            )
        ]
    abi = {True: "CXX11 ABI", False: "pre-CXX11 ABI", None: "ABI unknown"}[env.cxx11abi]
    if env.torch_hip:
        return [
            _f(
                "torch-rocm",
                Status.WARN,
                f"torch {env.torch} is a ROCm build (HIP {env.torch_hip}): only FA2's ROCm build applies",
                evidence=knowledge.variant_info("fa2").raw["rocm_note"],
                fix="Build FA2 for ROCm from source (see flash-attention's README, AMD ROCm section).",
            )
        ]
    if env.known("torch_cuda") and env.torch_cuda is None:
        return [
            _f(
                "torch-cpu-only",
                serious,
                f"torch {env.torch} is a CPU-only build: FlashAttention needs a CUDA build of torch",
                fix=pytorch_cuda_index(env.driver_cuda),
            )
        ]
    return [_f("torch-ok", Status.OK, f"torch {env.torch} (CUDA {env.torch_cuda or '?'}, {abi})")]


# -- toolkit --------------------------------------------------------------------------------------
def check_nvcc(env: Environment) -> list[Finding]:
    if not env.known("nvcc"):
        return [_f("nvcc-ok", Status.SKIP, "nvcc unknown (not in the target spec)")]
    if env.nvcc is None:
        return [
            _f(
                "nvcc-missing",
                Status.WARN,
                "No nvcc found: a source build is impossible (prebuilt wheels still work)",
                evidence="searched PATH, CUDA_HOME, CUDA_PATH, /usr/local/cuda*",
                fix=f"Install the CUDA toolkit {env.torch_cuda or ''} (matching torch's CUDA) and set CUDA_HOME.".replace(
                    "  ", " "
                ),
            )
        ]
    out: list[Finding] = []
    tc = env.torch_cuda_mm
    nv = env.nvcc_mm
    if tc is not None and nv is not None and tc[0] != nv[0]:
        out.append(
            _f(
                "nvcc-torch-mismatch",
                Status.WARN,
                f"nvcc {env.nvcc} but torch uses CUDA {env.torch_cuda}: torch refuses to build extensions across CUDA majors",
                evidence=f"nvcc at {env.nvcc_path or env.cuda_home or '?'}",
                fix=f"Install CUDA toolkit {tc[0]}.x and point CUDA_HOME at it, or use a torch built for CUDA {nv[0]}.",
            )
        )
    build_variants: tuple[Variant, ...] = ("fa2", "fa3")
    for variant in build_variants:
        info = knowledge.variant_info(variant)
        inst = env.installed_variant(variant)
        minimum = info.nvcc_min(inst.version if inst else None)
        min_mm = major_minor(minimum)
        if min_mm is not None and nv is not None and nv < min_mm:
            out.append(
                _f(
                    "nvcc-too-old",
                    Status.WARN,
                    f"nvcc {env.nvcc} is older than {info.title}'s minimum {minimum}",
                    variant=variant,
                    fix=f"Install CUDA toolkit ≥ {info.nvcc_recommended or minimum} and set CUDA_HOME.",
                )
            )
    if not out:
        out.append(
            _f("nvcc-ok", Status.OK, f"nvcc {env.nvcc}" + (f" at {env.nvcc_path}" if env.nvcc_path else ""))
        )
    return out


def check_cuda_home(env: Environment) -> list[Finding]:
    if not env.known("nvccs") or not env.nvccs:
        return []
    out = []
    versions = {n.version for n in env.nvccs if n.version}
    if env.cuda_home and env.cuda_home_headers is False:
        roots = [n.path.rsplit("/bin/", 1)[0] for n in env.nvccs if "/bin/" in n.path]
        good = [r for r in roots if r != env.cuda_home.rstrip("/")]
        out.append(
            _f(
                "cuda-home-mismatch",
                Status.WARN,
                f"A build would take CUDA_HOME={env.cuda_home}, which has no include/cuda_runtime.h",
                evidence="torch.utils.cpp_extension uses CUDA_HOME, CUDA_PATH, then the parent of `nvcc` on PATH",
                fix=f"export CUDA_HOME={good[-1] if good else '<your CUDA toolkit>'}",
            )
        )
    if env.cuda_home and env.nvcc_path and not env.nvcc_path.startswith(env.cuda_home.rstrip("/\\")):
        out.append(
            _f(
                "cuda-home-mismatch",
                Status.WARN,
                f"CUDA_HOME={env.cuda_home} but the nvcc used is {env.nvcc_path}",
                fix=f"export CUDA_HOME={env.nvcc_path.rsplit('/bin/', 1)[0]}",
            )
        )
    path_nvcc = env.nvccs[0]
    if (
        env.nvcc_path
        and path_nvcc.path != env.nvcc_path
        and path_nvcc.version
        and env.nvcc
        and path_nvcc.version != env.nvcc
    ):
        out.append(
            _f(
                "cuda-home-mismatch",
                Status.WARN,
                f"A build would use nvcc {env.nvcc} ({env.nvcc_path}) but `nvcc` on PATH is {path_nvcc.version} "
                f"({path_nvcc.path})",
                evidence="found: " + ", ".join(f"{n.version} at {n.path}" for n in env.nvccs),
                fix="Make CUDA_HOME and PATH name the same toolkit: export CUDA_HOME=<toolkit>; "
                "export PATH=$CUDA_HOME/bin:$PATH",
            )
        )
    elif len(versions) > 1 and not out:
        out.append(
            _f(
                "cuda-home-mismatch",
                Status.OK,
                f"{len(env.nvccs)} CUDA toolkits found; a build uses {env.nvcc} ({env.nvcc_path})",
                evidence=", ".join(f"{n.version} at {n.path}" for n in env.nvccs),
            )
        )
    return out


def check_host_compiler(env: Environment) -> list[Finding]:
    if not env.known("gcc") or env.gcc is None or env.nvcc is None or not env.known("nvcc"):
        return []
    g = parse_version(env.gcc)
    mx = knowledge.gcc_max_for_nvcc(env.nvcc)
    if g is None:
        return []
    if mx is not None and g.major > mx:
        return [
            _f(
                "host-compiler-unsupported",
                Status.WARN,
                f"gcc {env.gcc} is newer than nvcc {env.nvcc} accepts (gcc ≤ {mx})",
                evidence="nvcc: 'unsupported GNU version! gcc versions later than N are not supported'",
                fix=f"Install gcc-{mx}/g++-{mx} and export CC=gcc-{mx} CXX=g++-{mx} NVCC_CCBIN=g++-{mx}",
            )
        ]
    if g.major < knowledge.gcc_min():
        return [
            _f(
                "host-compiler-unsupported",
                Status.WARN,
                f"gcc {env.gcc} is too old for torch C++ extensions (need ≥ {knowledge.gcc_min()})",
                fix=f"Install a newer gcc (≤ {mx}) and export CC/CXX to it.",
            )
        ]
    return [_f("host-compiler-ok", Status.OK, f"gcc {env.gcc} (nvcc {env.nvcc} accepts ≤ {mx})")]


def check_ninja(env: Environment) -> list[Finding]:
    if not env.known("ninja") or env.ninja is None:
        return []
    if env.ninja:
        return [_f("ninja-ok", Status.OK, "ninja found")]
    return [
        _f(
            "ninja-missing",
            Status.WARN,
            "ninja not found: a source build would compile one file at a time",
            fix="python -m pip install ninja",
        )
    ]


def build_jobs(memory_gb: float | None, cpus: int | None) -> int | None:
    """Parallel nvcc jobs a machine affords (FA2's own rule when MAX_JOBS is unset)."""
    if memory_gb is None or cpus is None:
        return None
    return max(0, min(max(1, cpus // 2), int(memory_gb // BUILD_GB_PER_JOB)))


def check_resources(env: Environment) -> list[Finding]:
    out = []
    if env.known("memory_gb") and env.memory_gb is not None:
        jobs = build_jobs(env.memory_gb, env.cpus)
        if env.memory_gb < BUILD_GB_PER_JOB:
            out.append(
                _f(
                    "build-memory-low",
                    Status.WARN,
                    f"{env.memory_gb:.1f} GB available: a source build (~{BUILD_GB_PER_JOB:.0f} GB per nvcc job) "
                    "would be OOM-killed",
                    fix="Use a prebuilt wheel, or build on a machine with more memory and share the wheel "
                    "(flashdoctor build --wheelhouse DIR).",
                )
            )
        elif jobs is not None and jobs < 4 and env.cpus is not None and jobs < max(1, env.cpus // 2):
            out.append(
                _f(
                    "build-memory-low",
                    Status.WARN,
                    f"{env.memory_gb:.0f} GB available allows only {jobs} parallel nvcc job(s): a full build takes many hours",
                    fix=f"Build only what you need: flashdoctor build --arch <your GPU> --head-dims <yours> (MAX_JOBS={jobs}).",
                )
            )
    if env.known("disk_free_gb") and env.disk_free_gb is not None:
        if env.disk_free_gb < INSTALL_DISK_GB:
            out.append(
                _f(
                    "disk-low",
                    Status.FAIL,
                    f"{env.disk_free_gb:.1f} GB free: not even a wheel install fits",
                    fix="Free disk space (pip cache: pip cache purge) or set TMPDIR to a larger disk.",
                )
            )
        elif env.disk_free_gb < BUILD_DISK_GB:
            out.append(
                _f(
                    "disk-low",
                    Status.WARN,
                    f"{env.disk_free_gb:.1f} GB free: enough for a wheel, not for a source build (~{BUILD_DISK_GB:.0f} GB)",
                    fix="Set TMPDIR to a disk with more space before building.",
                )
            )
    if not out and env.memory_gb is not None and env.disk_free_gb is not None:
        out.append(
            _f(
                "resources-ok",
                Status.OK,
                f"{env.cpus or '?'} CPUs, {env.memory_gb:.0f} GB memory available, {env.disk_free_gb:.0f} GB disk free",
            )
        )
    return out


def check_platform(env: Environment) -> list[Finding]:
    out = []
    if env.os == "macos":
        out.append(
            _f(
                "platform-unsupported",
                Status.FAIL,
                "macOS has no CUDA: FlashAttention cannot run here",
                fix="Use PyTorch SDPA on MPS, or a Linux CUDA machine.",
            )
        )
    if env.os == "linux" and env.known("glibc") and env.glibc:
        g = parse_version(env.glibc)
        if g is not None and g < parse_version(OFFICIAL_WHEEL_GLIBC):  # type: ignore[operator]
            out.append(
                _f(
                    "glibc-too-old",
                    Status.WARN,
                    f"glibc {env.glibc}: official FA2 wheels from 2.8.0.post1 need glibc {OFFICIAL_WHEEL_GLIBC} "
                    "('GLIBC_2.32 not found' at import)",
                    fix="Use an FA2 wheel ≤ 2.8.0 (built on Ubuntu 20.04), build from source, or use a newer OS image.",
                )
            )
    if env.python:
        pv = major_minor(env.python)
        for variant in VARIANTS:
            info = knowledge.variant_info(variant)
            if pv is not None and pv < info.python_min:
                out.append(
                    _f(
                        "python-too-old",
                        Status.FAIL,
                        f"Python {env.python} < {info.python_min[0]}.{info.python_min[1]}, {info.title}'s minimum",
                        variant=variant,
                        fix=f"Use Python ≥ {info.python_min[0]}.{info.python_min[1]}.",
                    )
                )
    return out


# -- installed FlashAttention ----------------------------------------------------------------------
ImportDiagnoser = Callable[[str, Environment], "tuple[str, str] | None"]


def check_installed(env: Environment, diagnose: ImportDiagnoser | None = None) -> list[Finding]:
    if not env.known("installed"):
        return []
    out: list[Finding] = []
    for variant in VARIANTS:
        info = knowledge.variant_info(variant)
        inst = env.installed_variant(variant)
        if inst is None:
            out.append(
                _f(
                    "flash-attn-missing",
                    Status.WARN,
                    f"{info.title} ({info.dist}) is not installed",
                    variant=variant,
                    fix=f"flashdoctor install --{variant}",
                )
            )
            continue
        out.extend(_check_one_install(env, inst, diagnose))
    fa2, fa4 = env.installed_variant("fa2"), env.installed_variant("fa4")
    if fa2 and fa4 and fa2.version and fa2.version.startswith("2.8.3"):
        out.append(
            _f(
                "flash-attn-conflict",
                Status.WARN,
                f"flash-attn {fa2.version} ships a flash_attn/cute folder that collides with flash-attn-4's files",
                variant="fa4",
                fix="pip uninstall -y flash-attn-4 flash-attn; then reinstall flash-attn first and flash-attn-4 last.",
            )
        )
    return out


def _check_one_install(
    env: Environment, inst: FlashInstall, diagnose: ImportDiagnoser | None
) -> list[Finding]:
    variant = inst.variant
    label = f"{inst.dist} {inst.version or '?'}"
    if inst.local_label and inst.local_label.startswith("fd."):
        label += f" (flashdoctor build profile {inst.local_label[3:]})"
    out: list[Finding] = []
    if inst.import_ok is False:
        err = (inst.import_error or "").strip()
        last = err.splitlines()[-1] if err else "no output"
        cause = diagnose(err, env) if err and diagnose else None
        msg = f"{label} is installed but does not import"
        if inst.import_crashed:
            msg = f"{label} crashed the interpreter on import"
        fix = None
        if cause:
            msg += f": {cause[0]}"
            fix = cause[1]
        out.append(
            _f(
                "flash-attn-import-error",
                Status.FAIL,
                msg,
                evidence=last,
                variant=variant,
                fix=fix or f"flashdoctor install --{variant} (reinstall a build that matches this torch)",
            )
        )
        return out
    if inst.archs is not None and env.known("gpus"):
        for g, glabel, _n in gpu_groups(env.gpus):
            if g.sm is None:
                continue
            r = runs_on(inst.archs, g.sm)
            have = ", ".join(sort_archs(inst.archs)) or "none"
            if r == "no":
                out.append(
                    _f(
                        "flash-attn-arch-missing",
                        Status.FAIL,
                        f"{label} has no code for {g.name} (sm_{g.sm})",
                        evidence=f"compiled for: {have}",
                        variant=variant,
                        subject=glabel,
                        fix=f"flashdoctor install --{variant} --from-source --arch {g.sm}",
                    )
                )
            elif r == "ptx-jit":
                out.append(
                    _f(
                        "flash-attn-ptx-jit",
                        Status.WARN,
                        f"{label} runs on {g.name} (sm_{g.sm}) only by JIT-compiling PTX (slow first call)",
                        evidence=f"compiled for: {have}",
                        variant=variant,
                        subject=glabel,
                        fix=f"flashdoctor install --{variant} --from-source --arch {g.sm}",
                    )
                )
    if not out:
        how = "imports" if inst.import_ok else "import not tested"
        archs = f"; code for {', '.join(sort_archs(inst.archs))}" if inst.archs else ""
        out.append(
            _f(
                "flash-attn-ok",
                Status.OK,
                f"{label} {how}{archs}",
                variant=variant,
                evidence=inst.extension_path,
            )
        )
    return out


ALL_CHECKS: tuple[Callable[[Environment], list[Finding]], ...] = (
    check_platform,
    check_gpus,
    check_gpu_support,
    check_driver,
    check_torch,
    check_nvcc,
    check_cuda_home,
    check_host_compiler,
    check_ninja,
    check_resources,
)


# -- verdicts -------------------------------------------------------------------------------------
WheelFinder = Callable[[Environment, Variant], "str | None"]

# Findings that make a source build fail before it starts (they are fixable: the verdict stays
# "buildable" and lists them as blockers).
# ninja-missing only slows a build, and build-memory-low blocks it only when not even one nvcc job
# fits (checked in verdict_for).
BUILD_BLOCKERS = {
    "nvcc-missing",
    "nvcc-too-old",
    "nvcc-torch-mismatch",
    "host-compiler-unsupported",
    "cuda-home-mismatch",
    "disk-low",
}


@dataclass(frozen=True)
class _Ctx:
    env: Environment
    findings: tuple[Finding, ...]

    def bad(
        self,
        variant: Variant,
        codes: Iterable[str] | None = None,
        statuses: tuple[Status, ...] = (Status.FAIL,),
    ) -> list[Finding]:
        return [
            f
            for f in self.findings
            if f.status in statuses
            and (f.variant is None or f.variant == variant)
            and (codes is None or f.code in codes)
        ]


def verdict_for(
    variant: Variant, env: Environment, findings: tuple[Finding, ...], wheel_finder: WheelFinder | None
) -> VariantVerdict:
    ctx = _Ctx(env, findings)
    info = knowledge.variant_info(variant)
    inst = env.installed_variant(variant)
    installed = inst.version if inst else None

    # Machine-level reasons the variant cannot work at all.
    hard: list[str] = []
    if _has_gpu(env) is False:
        hard.append("no NVIDIA GPU is visible")
    for f in ctx.bad(variant, {"platform-unsupported", "python-too-old"}):
        hard.append(f.message)
    if env.gpus and all(gpu_support(variant, g) is Status.FAIL for g in env.gpus):
        hard.append(next(f.message for f in ctx.bad(variant, {"gpu-unsupported"})))
    if env.torch_hip and not info.rocm:
        hard.append(f"{info.title} has no ROCm support")
    if hard:
        alt = "PyTorch SDPA (torch.nn.functional.scaled_dot_product_attention)"
        return VariantVerdict(
            variant,
            Verdict.UNSUPPORTED,
            tuple(hard),
            blockers=tuple(sorted({f.code for f in ctx.bad(variant)})),
            fix=f"Use {alt}" + ("" if variant == "fa2" else " or another variant") + ".",
            installed=installed,
        )

    torch_blockers = [f for f in ctx.bad(variant, {"torch-missing", "torch-cpu-only", "driver-too-old"})]
    if inst is not None and inst.import_ok is not False:
        own = ctx.bad(variant, {"flash-attn-arch-missing", "flash-attn-import-error"})
        if not own and not torch_blockers:
            ready = (
                f"{inst.dist} {inst.version} installed",
                "imports" if inst.import_ok else "import not tested (target spec)",
            )
            return VariantVerdict(variant, Verdict.READY, ready, installed=installed)

    reasons: list[str] = []
    if inst is not None:
        bad_install = ctx.bad(variant, {"flash-attn-import-error", "flash-attn-arch-missing"})
        reasons.extend(f.message for f in bad_install)
    blockers = [f.code for f in torch_blockers]
    reasons.extend(f.message for f in torch_blockers)

    if env.torch_hip:
        return VariantVerdict(
            variant,
            Verdict.BUILDABLE,
            (*reasons, "ROCm: no prebuilt wheels; build flash-attn for ROCm from source"),
            blockers=tuple(blockers),
            fix="See flash-attention's README, AMD ROCm section.",
            installed=installed,
        )

    wheel = wheel_finder(env, variant) if wheel_finder else None
    if wheel:
        return VariantVerdict(
            variant,
            Verdict.INSTALLABLE,
            (*reasons, f"prebuilt wheel fits: {wheel}"),
            blockers=tuple(blockers),
            fix=f"flashdoctor install --{variant}",
            installed=installed,
            wheel=wheel,
        )
    if not info.needs_nvcc:
        # FA4 is pure Python: installable whenever the machine is supported.
        return VariantVerdict(
            variant,
            Verdict.INSTALLABLE,
            (*reasons, f"{info.dist} is pure Python (kernels JIT-compiled at first use)"),
            blockers=tuple(blockers),
            fix=f"flashdoctor install --{variant}",
            installed=installed,
        )
    blocking = set(BUILD_BLOCKERS)
    if env.memory_gb is not None and env.memory_gb < BUILD_GB_PER_JOB:
        blocking.add("build-memory-low")
    build_bad = ctx.bad(variant, blocking, (Status.FAIL, Status.WARN))
    reasons.append("no prebuilt wheel fits" if wheel_finder else "no wheel index consulted")
    reasons.extend(f.message for f in build_bad)
    return VariantVerdict(
        variant,
        Verdict.BUILDABLE,
        tuple(reasons),
        blockers=tuple(dict.fromkeys([*blockers, *(f.code for f in build_bad)])),
        fix=f"flashdoctor install --{variant} --from-source",
        installed=installed,
    )


def run_checks(
    env: Environment,
    source: str = "probe",
    wheel_finder: WheelFinder | None = None,
    diagnose: ImportDiagnoser | None = None,
) -> CheckReport:
    findings: list[Finding] = []
    for check in ALL_CHECKS:
        findings.extend(check(env))
    # A failed import is explained by ``diagnose`` (the failure-log engine: decide.explain.import_diagnoser).
    findings.extend(check_installed(env, diagnose))
    frozen = tuple(findings)
    verdicts = {v: verdict_for(v, env, frozen, wheel_finder) for v in VARIANTS}
    return CheckReport(environment=env, source=source, findings=frozen, verdicts=verdicts)
