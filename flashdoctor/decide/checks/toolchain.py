"""The build toolchain: nvcc (and its agreement with torch's CUDA and each variant's minimum), CUDA_HOME,
the host compiler nvcc accepts, ninja. They matter for source builds only; prebuilt wheels need none."""

from __future__ import annotations

from flashdoctor import knowledge
from flashdoctor.decide.checks.common import finding, gpu_groups
from flashdoctor.knowledge.fa2_build import fa2_build_arch
from flashdoctor.knowledge.variants import VARIANTS
from flashdoctor.knowledge.versions import major_minor, parse_version
from flashdoctor.model.environment import Environment
from flashdoctor.model.findings import Finding, Status


def check_nvcc(env: Environment) -> list[Finding]:
    if not env.known("nvcc"):
        return [
            finding(
                "nvcc-ok",
                Status.SKIP,
                "nvcc unknown (not in the target spec, or its version could not be read)",
            )
        ]
    if env.nvcc is None:
        return [
            finding(
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
            finding(
                "nvcc-torch-mismatch",
                Status.WARN,
                f"nvcc {env.nvcc} but torch uses CUDA {env.torch_cuda}: torch refuses to build extensions across CUDA majors",
                evidence=f"nvcc at {env.nvcc_path or env.cuda_home or '?'}",
                fix=f"Install CUDA toolkit {tc[0]}.x and point CUDA_HOME at it, or use a torch built for CUDA {nv[0]}.",
            )
        )
    for variant in VARIANTS:
        info = knowledge.variant_info(variant)
        if not info.needs_nvcc:
            continue
        inst = env.installed_variant(variant)
        minimum = info.nvcc_min(inst.version if inst else None)
        min_mm = major_minor(minimum)
        if min_mm is not None and nv is not None and nv < min_mm:
            out.append(
                finding(
                    "nvcc-too-old",
                    Status.WARN,
                    f"nvcc {env.nvcc} is older than {info.title}'s minimum {minimum}",
                    variant=variant,
                    fix=f"Install CUDA toolkit ≥ {info.nvcc_recommended or minimum} and set CUDA_HOME.",
                )
            )
    out.extend(_fa2_arch_nvcc(env, nv))
    if not out:
        out.append(
            finding(
                "nvcc-ok", Status.OK, f"nvcc {env.nvcc}" + (f" at {env.nvcc_path}" if env.nvcc_path else "")
            )
        )
    return out


def _fa2_arch_nvcc(env: Environment, nv: tuple[int, int] | None) -> list[Finding]:
    """A GPU whose FA2 code this nvcc cannot compile (sm_100/sm_120 need 12.8, Thor's sm_110 13.0): the
    build plan's rule (knowledge.fa2_build), so check does not call a build 'buildable' that build refuses."""
    if nv is None or not env.known("gpus"):
        return []
    out = []
    for g, label, _n in gpu_groups(env.gpus):
        found = fa2_build_arch(g.sm) if g.sm is not None else None
        need = major_minor(found.nvcc) if found is not None else None
        if found is not None and need is not None and nv < need:
            out.append(
                finding(
                    "nvcc-too-old",
                    Status.WARN,
                    f"nvcc {env.nvcc} cannot compile FA2's sm_{found.arch} code for {g.name} (sm_{g.sm}): "
                    f"it needs nvcc ≥ {found.nvcc}",
                    variant="fa2",
                    subject=label,
                    fix=f"Install CUDA toolkit ≥ {found.nvcc} and set CUDA_HOME, or install a prebuilt wheel.",
                )
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
            finding(
                "cuda-home-mismatch",
                Status.WARN,
                f"A build would take CUDA_HOME={env.cuda_home}, which has no include/cuda_runtime.h",
                evidence="torch.utils.cpp_extension uses CUDA_HOME, CUDA_PATH, then the parent of `nvcc` on PATH",
                fix=f"export CUDA_HOME={good[-1] if good else '<your CUDA toolkit>'}",
            )
        )
    if env.cuda_home and env.nvcc_path and not env.nvcc_path.startswith(env.cuda_home.rstrip("/\\")):
        out.append(
            finding(
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
            finding(
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
            finding(
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
            finding(
                "host-compiler-unsupported",
                Status.WARN,
                f"gcc {env.gcc} is newer than nvcc {env.nvcc} accepts (gcc ≤ {mx})",
                evidence="nvcc: 'unsupported GNU version! gcc versions later than N are not supported'",
                fix=f"Install gcc-{mx}/g++-{mx} and export CC=gcc-{mx} CXX=g++-{mx} NVCC_CCBIN=g++-{mx}",
            )
        ]
    if g.major < knowledge.gcc_min():
        return [
            finding(
                "host-compiler-unsupported",
                Status.WARN,
                f"gcc {env.gcc} is too old for torch C++ extensions (need ≥ {knowledge.gcc_min()})",
                fix=f"Install a newer gcc (≤ {mx}) and export CC/CXX to it.",
            )
        ]
    return [finding("host-compiler-ok", Status.OK, f"gcc {env.gcc} (nvcc {env.nvcc} accepts ≤ {mx})")]


def check_ninja(env: Environment) -> list[Finding]:
    if not env.known("ninja") or env.ninja is None:
        return []
    if env.ninja:
        return [finding("ninja-ok", Status.OK, "ninja found")]
    return [
        finding(
            "ninja-missing",
            Status.WARN,
            "ninja not found: a source build would compile one file at a time",
            fix="python -m pip install ninja",
        )
    ]
