"""The checks: pure functions of an Environment that return Findings, and the per-variant verdicts.

Nothing here touches the system. Each check is small and independent; ``run_checks`` runs them all.
Finding codes are public interface, listed in ``CODES`` (data/codes.json): never rename one.

gpu            GPUs, which variants run there and in which dtypes
torch_driver   torch (CUDA / CPU / ROCm build) and the driver's CUDA; the torch install commands
toolchain      nvcc, CUDA_HOME, host compiler, ninja (source builds)
resources      memory, disk, platform, glibc, Python minimums
installed      the installed FlashAttention builds
verdicts       ready / installable / buildable / unsupported, and advice consistent with them
"""

from __future__ import annotations

from collections.abc import Callable

from flashdoctor.decide.checks.common import (
    BUILD_DISK_GB,
    BUILD_GB_PER_JOB,
    CODES,
    INSTALL_DISK_GB,
    OFFICIAL_WHEEL_GLIBC,
    SDPA,
    build_jobs,
    gpu_groups,
)
from flashdoctor.decide.checks.gpu import check_gpu_support, check_gpus, gpu_dtypes, gpu_support
from flashdoctor.decide.checks.installed import ImportDiagnoser, check_installed
from flashdoctor.decide.checks.resources import check_platform, check_resources
from flashdoctor.decide.checks.toolchain import check_cuda_home, check_host_compiler, check_ninja, check_nvcc
from flashdoctor.decide.checks.torch_driver import check_driver, check_torch, pip_install, pytorch_cuda_index
from flashdoctor.decide.checks.verdicts import (
    BUILD_BLOCKERS,
    WheelFinder,
    consistent_advice,
    verdict_for,
)
from flashdoctor.knowledge.variants import VARIANTS
from flashdoctor.model.environment import Environment
from flashdoctor.model.findings import CheckReport, Finding

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
    return CheckReport(
        environment=env,
        source=source,
        findings=consistent_advice(frozen, verdicts),
        verdicts=verdicts,
        # which variants run on each GPU, in which dtypes (check --json "gpu_support"; additive)
        extra={"gpu_support": gpu_dtypes(env)},
    )


__all__ = [
    "ALL_CHECKS",
    "BUILD_BLOCKERS",
    "BUILD_DISK_GB",
    "BUILD_GB_PER_JOB",
    "CODES",
    "INSTALL_DISK_GB",
    "OFFICIAL_WHEEL_GLIBC",
    "SDPA",
    "ImportDiagnoser",
    "WheelFinder",
    "build_jobs",
    "check_cuda_home",
    "check_driver",
    "check_gpu_support",
    "check_gpus",
    "check_host_compiler",
    "check_installed",
    "check_ninja",
    "check_nvcc",
    "check_platform",
    "check_resources",
    "check_torch",
    "gpu_dtypes",
    "gpu_groups",
    "gpu_support",
    "pip_install",
    "pytorch_cuda_index",
    "run_checks",
    "verdict_for",
]
