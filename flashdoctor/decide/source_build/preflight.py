"""Preflight: everything that would make a source build fail, found before it starts.

Pure: a function of the Environment (the check engine's findings, reused), the build plan, what the
target interpreter can import (probe.buildtools) and, for FA3, what hopper/setup.py does. Each
problem is a Finding with a fix. In a build, the check engine's warnings that doom a build
(nvcc/torch CUDA major mismatch, unsupported host compiler, no ninja, ...) become failures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from flashdoctor import knowledge
from flashdoctor.decide import checks
from flashdoctor.decide.source_build.hopper import Fa3SetupFacts
from flashdoctor.decide.source_build.plan import BuildPlan, build_data
from flashdoctor.knowledge import codes as code_registry
from flashdoctor.knowledge.fa2_build import fa2_build_arch
from flashdoctor.knowledge.versions import major_minor
from flashdoctor.model.environment import Environment
from flashdoctor.model.findings import Finding, Status
from flashdoctor.model.tools import BuildTools

# Codes this module adds (README "Build preflight codes"); public interface, never rename.
BUILD_CODES: Mapping[str, str] = code_registry.codes("build")  # public interface: data/codes.json

# Check-engine codes that make a build fail outright (warnings in `check`, failures here).
_FATAL = {
    "torch-missing",
    "torch-cpu-only",
    "torch-rocm",
    "nvcc-missing",
    "nvcc-torch-mismatch",
    "cuda-home-mismatch",
    "host-compiler-unsupported",
    "ninja-missing",
    "disk-low",
}


def _fatal(f: Finding) -> Finding:
    if f.code in _FATAL and f.status is Status.WARN:
        return replace(f, status=Status.FAIL)
    return f


def _nvcc_findings(env: Environment, plan: BuildPlan) -> list[Finding]:
    if not env.known("nvcc") or env.nvcc is None:
        return []
    info = knowledge.variant_info(plan.variant)
    out: list[Finding] = []
    minimum = info.nvcc_min(plan.version)
    nv = env.nvcc_mm
    if minimum and nv is not None and nv < (major_minor(minimum) or (0, 0)):
        out.append(
            Finding(
                "nvcc-too-old",
                Status.FAIL,
                f"nvcc {env.nvcc} is older than {info.title} {plan.version}'s minimum {minimum}",
                evidence=f"nvcc at {env.nvcc_path or env.cuda_home or '?'}",
                fix=f"Install CUDA toolkit ≥ {info.nvcc_recommended or minimum} (major {env.torch_cuda_mm[0] if env.torch_cuda_mm else '?'}, torch's) and set CUDA_HOME.",
                variant=plan.variant,
            )
        )
    if plan.variant == "fa2":
        for a in plan.profile.archs:
            found = fa2_build_arch(a)  # a build arch serves itself
            need = found.nvcc if found is not None else None
            if found is not None and need and nv is not None and nv < (major_minor(need) or (0, 0)):
                out.append(
                    Finding(
                        "build-arch-nvcc",
                        Status.FAIL,
                        f"sm_{a} needs nvcc ≥ {need}; with nvcc {env.nvcc} "
                        + (
                            "torch's cpp_extension cannot compile it"
                            if found.via_torch
                            else "FA2's setup.py drops it silently"
                        ),
                        fix=f"Install CUDA toolkit ≥ {need}, or build without --arch {a}.",
                        variant="fa2",
                    )
                )
    if not out:
        out.append(
            Finding(
                "nvcc-ok",
                Status.OK,
                f"nvcc {env.nvcc} fits {info.title} {plan.version}",
                variant=plan.variant,
            )
        )
    return out


def _tools_findings(plan: BuildPlan, tools: BuildTools) -> list[Finding]:
    out: list[Finding] = []
    if tools.torch_ok:
        out.append(
            Finding(
                "build-torch-ok",
                Status.OK,
                f"torch {tools.torch_version} imports (CUDA {tools.torch_cuda or 'none'})",
            )
        )
    elif tools.torch_ok is False:
        last = (tools.torch_error or "").strip().splitlines()[-1:] or ["?"]
        out.append(
            Finding(
                "build-torch-import",
                Status.FAIL,
                "torch does not import in the target interpreter: setup.py imports it (--no-build-isolation)",
                evidence=last[0],
                fix="Fix the torch installation first: flashdoctor check explains the import error.",
            )
        )
    # setup.py imports setuptools and packaging; pip runs the build; wheel's bdist_wheel and
    # setup_requires (packaging, psutil, ninja) matter only where flashdoctor did not edit setup.py.
    needed = ["setuptools", "packaging", "pip"]
    if not plan.edit_sources:
        needed += ["wheel", "psutil", "ninja"] if plan.variant == "fa2" else ["wheel"]
    for name in needed:
        if tools.modules and tools.modules.get(name) is None:
            out.append(
                Finding(
                    "build-module-missing",
                    Status.FAIL,
                    f"the Python package {name} is missing in the target interpreter",
                    evidence="setup.py imports it"
                    if name != "pip"
                    else "the build runs `python -m pip wheel`",
                    fix=f"python -m pip install {name}",
                )
            )
    return out


def fa3_preflight(env: Environment, plan: BuildPlan, facts: Fa3SetupFacts) -> list[Finding]:
    """What the checkout's own hopper/setup.py does with this nvcc and this plan's switches."""
    out: list[Finding] = []
    data = build_data()["fa3"]
    offline = data["offline_env"]
    what = " / ".join(facts.toolchain) or "nvcc / ptxas"
    downloads = facts.downloads_for(env.nvcc)
    if downloads and not facts.offline_switch:
        out.append(
            Finding(
                "fa3-offline-switch-missing",
                Status.FAIL,
                f"this hopper/setup.py has no {offline} switch and downloads {what} for nvcc"
                f" {facts.download_when} (here {env.nvcc})",
                fix="Use a newer flash-attention checkout (it has the offline switch), or a CUDA toolkit"
                " outside that range (CUDA_HOME).",
                variant="fa3",
            )
        )
    elif downloads:
        out.append(
            Finding(
                "fa3-toolchain-download",
                Status.FAIL,
                f"hopper/setup.py swaps nvcc {env.nvcc} for a downloaded {what} for nvcc {facts.download_when};"
                f" flashdoctor sets {offline}=1 so nothing is downloaded, and then setup.py stops"
                " (third_party/nvidia/backend/bin/nvcc does not exist)",
                evidence=f"the condition around download_and_copy(...) in this checkout's hopper/setup.py: nvcc {facts.download_when}",
                fix="Point CUDA_HOME at a CUDA toolkit outside that range, or use a checkout whose hopper/setup.py"
                " uses the system nvcc for this release.",
                variant="fa3",
            )
        )
    elif downloads is None:
        why = (
            f"nvcc is unknown here and this hopper/setup.py downloads {what} for nvcc {facts.download_when}"
            if facts.download_when
            else f"cannot read when this hopper/setup.py downloads {what}: {facts.download_problem or '?'}"
        )
        out.append(
            Finding(
                "fa3-toolchain-download",
                Status.WARN,
                f"{why}; if it does, the offline build ({offline}=1) stops",
                evidence=data["toolchain_download_source"],
                fix="Read the download condition in hopper/setup.py; use a CUDA toolkit it does not replace.",
                variant="fa3",
            )
        )
    missing = sorted(
        k
        for k, v in plan.env.items()
        if k.startswith("FLASH_ATTENTION_DISABLE_") and v == "TRUE" and k not in facts.switches
    )
    if missing:
        out.append(
            Finding(
                "fa3-switch-unknown",
                Status.FAIL,
                f"this hopper/setup.py does not read {', '.join(missing)}: the build would not match the profile",
                fix="Drop the matching --no-*/--head-dims/--dtypes option, or use a newer checkout.",
                variant="fa3",
            )
        )
    return out


def preflight(
    env: Environment,
    plan: BuildPlan,
    tools: BuildTools | None = None,
    fa3_facts: Fa3SetupFacts | None = None,
) -> tuple[Finding, ...]:
    """Every finding that bears on this build; the build may start only if none is FAIL."""
    out: list[Finding] = []
    out += checks.check_torch(env)
    out += [f for f in checks.check_nvcc(env) if f.code not in ("nvcc-too-old", "nvcc-ok")]
    out += _nvcc_findings(env, plan)
    out += checks.check_cuda_home(env)
    out += checks.check_host_compiler(env)
    out += checks.check_ninja(env)
    out += checks.check_resources(env)
    if tools is not None:
        out += _tools_findings(plan, tools)
    if fa3_facts is not None:
        out += fa3_preflight(env, plan, fa3_facts)
    return tuple(_fatal(f) for f in out)


def blocking(findings: tuple[Finding, ...]) -> tuple[Finding, ...]:
    return tuple(f for f in findings if f.status is Status.FAIL)
