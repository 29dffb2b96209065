"""Machine resources and platform: memory and disk for a build or an install, the OS, glibc for the
official wheels, and each variant's Python minimum."""

from __future__ import annotations

from flashdoctor import knowledge
from flashdoctor.decide.checks.common import (
    BUILD_DISK_GB,
    BUILD_GB_PER_JOB,
    INSTALL_DISK_GB,
    OFFICIAL_WHEEL_GLIBC,
    build_jobs,
    finding,
)
from flashdoctor.knowledge.variants import VARIANTS
from flashdoctor.knowledge.versions import major_minor, parse_version
from flashdoctor.model.environment import Environment
from flashdoctor.model.findings import Finding, Status


def check_resources(env: Environment) -> list[Finding]:
    out = []
    if env.known("memory_gb") and env.memory_gb is not None:
        jobs = build_jobs(env.memory_gb, env.cpus)
        if env.memory_gb < BUILD_GB_PER_JOB:
            out.append(
                finding(
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
                finding(
                    "build-memory-low",
                    Status.WARN,
                    f"{env.memory_gb:.0f} GB available allows only {jobs} parallel nvcc job(s): a full build takes many hours",
                    fix=f"Build only what you need: flashdoctor build --arch <your GPU> --head-dims <yours> (MAX_JOBS={jobs}).",
                )
            )
    if env.known("disk_free_gb") and env.disk_free_gb is not None:
        if env.disk_free_gb < INSTALL_DISK_GB:
            out.append(
                finding(
                    "disk-low",
                    Status.FAIL,
                    f"{env.disk_free_gb:.1f} GB free: not even a wheel install fits",
                    fix="Free disk space (pip cache: pip cache purge) or set TMPDIR to a larger disk.",
                )
            )
        elif env.disk_free_gb < BUILD_DISK_GB:
            out.append(
                finding(
                    "disk-low",
                    Status.WARN,
                    f"{env.disk_free_gb:.1f} GB free: enough for a wheel, not for a source build (~{BUILD_DISK_GB:.0f} GB)",
                    fix="Set TMPDIR to a disk with more space before building.",
                )
            )
    if not out and env.memory_gb is not None and env.disk_free_gb is not None:
        out.append(
            finding(
                "resources-ok",
                Status.OK,
                f"{env.cpus or '?'} CPUs, {env.memory_gb:.0f} GB memory available, {env.disk_free_gb:.0f} GB disk free",
            )
        )
    return out


# Windows platforms (Python's platform tag) without CUDA, and why.
_NO_CUDA_WINDOWS = {
    "win_arm64": "Windows on ARM64 has no CUDA (NVIDIA ships none for it, and PyTorch's win_arm64 builds are "
    "CPU-only)",
    "win32": "32-bit Windows has no CUDA (NVIDIA's CUDA 12 and later ship no 32-bit toolkit, and PyTorch "
    "publishes no win32 builds)",
}


def check_platform(env: Environment) -> list[Finding]:
    out = []
    if env.os == "macos":
        out.append(
            finding(
                "platform-unsupported",
                Status.FAIL,
                "macOS has no CUDA: FlashAttention cannot run here",
                fix="Use PyTorch SDPA on MPS, or a Linux CUDA machine.",
            )
        )
    if env.platform in _NO_CUDA_WINDOWS:
        out.append(
            finding(
                "platform-unsupported",
                Status.FAIL,
                f"{_NO_CUDA_WINDOWS[env.platform]}: FlashAttention cannot run here",
                fix="Use PyTorch SDPA, or a Linux or Windows x86_64 CUDA machine.",
            )
        )
    if env.musl:
        out.append(
            finding(
                "libc-musl",
                Status.FAIL,
                "this Linux has musl libc, not glibc (Alpine): no compiled FlashAttention wheel loads here, and a source "
                "build fails: NVIDIA ships no CUDA toolkit (nvcc, the CUDA runtime) for musl, nor PyPI a CUDA torch",
                evidence=f"platform {env.platform}" + ("" if env.glibc else ", no glibc"),
                fix="Use a glibc-based image (Debian, Ubuntu: e.g. nvidia/cuda:12.8.1-cudnn-devel-ubuntu22.04 "
                "or pytorch/pytorch), then flashdoctor install.",
            )
        )
    if env.os == "linux" and env.known("glibc") and env.glibc:
        g = parse_version(env.glibc)
        if g is not None and g < parse_version(OFFICIAL_WHEEL_GLIBC):  # type: ignore[operator]
            out.append(
                finding(
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
                    finding(
                        "python-too-old",
                        Status.FAIL,
                        f"Python {env.python} < {info.python_min[0]}.{info.python_min[1]}, {info.title}'s minimum",
                        variant=variant,
                        fix=f"Use Python ≥ {info.python_min[0]}.{info.python_min[1]}.",
                    )
                )
    return out
