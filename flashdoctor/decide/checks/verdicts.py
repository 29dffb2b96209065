"""The per-variant verdicts (ready / installable / buildable / unsupported) and the consistency of the
advice: a variant that cannot run here gets no install or build fix anywhere in the report."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from flashdoctor import knowledge
from flashdoctor.decide.checks.common import BUILD_GB_PER_JOB, SDPA, has_gpu
from flashdoctor.decide.checks.gpu import gpu_support
from flashdoctor.knowledge.variants import VARIANTS, Variant
from flashdoctor.model.environment import Environment
from flashdoctor.model.findings import Finding, Status, VariantVerdict, Verdict
from flashdoctor.model.requirements import of_dist, required_of, required_text

WheelFinder = Callable[[Environment, Variant], "str | None"]

# What a ROCm torch is told (its verdict, and the plan install --dry-run shows).
ROCM_BUILD = "ROCm: no prebuilt wheels; build flash-attn for ROCm from source"

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
    "libc-musl",
}
# Variant findings whose fix installs or builds that variant: pointless where the variant cannot run.
INSTALL_FIX_CODES = frozenset(
    {
        "flash-attn-missing",
        "flash-attn-import-error",
        "flash-attn-arch-missing",
        "flash-attn-ptx-jit",
        "nvcc-too-old",
    }
)


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


def _hard_reasons(variant: Variant, ctx: _Ctx) -> list[str]:
    """Machine-level reasons the variant cannot work at all (empty: it can)."""
    env = ctx.env
    hard: list[str] = []
    if has_gpu(env) is False:
        hard.append("no NVIDIA GPU is visible")
    for f in ctx.bad(variant, {"platform-unsupported", "python-too-old"}):
        hard.append(f.message)
    if env.gpus and all(gpu_support(variant, g) is Status.FAIL for g in env.gpus):
        hard.append(next(f.message for f in ctx.bad(variant, {"gpu-unsupported"})))
    if env.torch_hip and not knowledge.variant_info(variant).rocm:
        hard.append(f"{knowledge.variant_info(variant).title} has no ROCm support")
    if env.musl and (glibc_only := knowledge.variant_info(variant).glibc_only):
        dist = knowledge.variant_info(variant).dist
        hard.append(
            f"this Linux has musl libc, not glibc: {dist} {glibc_only}, so it cannot be installed here"
        )
    return hard


def verdict_for(
    variant: Variant, env: Environment, findings: tuple[Finding, ...], wheel_finder: WheelFinder | None
) -> VariantVerdict:
    ctx = _Ctx(env, findings)
    info = knowledge.variant_info(variant)
    inst = env.installed_variant(variant)
    installed = inst.version if inst else None
    flag = info.cli_flag

    hard = _hard_reasons(variant, ctx)
    if hard:
        # On musl no variant is an alternative: FA2/FA3 are "buildable" there only with libc-musl as blocker.
        others = [v for v in VARIANTS if v != variant and not _hard_reasons(v, ctx) and not env.musl]
        alt = f" or {'/'.join(knowledge.variant_info(v).short for v in others)}" if others else ""
        return VariantVerdict(
            variant,
            Verdict.UNSUPPORTED,
            tuple(hard),
            blockers=tuple(sorted({f.code for f in ctx.bad(variant)})),
            fix=f"Use {SDPA}{alt}.",
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
    # flashdoctor never installs torch: where a CUDA torch is missing, its install command comes first
    torch_fix = next(
        (f.fix for f in torch_blockers if f.code in ("torch-missing", "torch-cpu-only") and f.fix), None
    )
    first = f"{torch_fix}; then " if torch_fix else ""
    reasons.extend(f.message for f in torch_blockers)

    if env.torch_hip:
        return VariantVerdict(
            variant,
            Verdict.BUILDABLE,
            (*reasons, ROCM_BUILD),
            blockers=tuple(blockers),
            fix="See flash-attention's README, AMD ROCm section.",
            installed=installed,
        )

    wheel = wheel_finder(env, variant) if wheel_finder else None
    if wheel or not info.needs_nvcc:
        # A wheel fits; or the variant is pure Python (FA4): installable whenever the machine is supported.
        why = (
            f"prebuilt wheel fits: {wheel}"
            if wheel
            else f"{info.dist} is pure Python (kernels JIT-compiled at first use)"
        )
        return VariantVerdict(
            variant,
            Verdict.INSTALLABLE,
            (*reasons, why),
            blockers=tuple(blockers),
            fix=first + f"flashdoctor install {flag}",
            installed=installed,
            wheel=wheel,
        )
    blocking = set(BUILD_BLOCKERS)
    if env.memory_gb is not None and env.memory_gb < BUILD_GB_PER_JOB:
        blocking.add("build-memory-low")
    build_bad = ctx.bad(variant, blocking, (Status.FAIL, Status.WARN))
    reasons.append("no prebuilt wheel fits" if wheel_finder else "no wheel index consulted")
    limits = of_dist(required_of(env), info.dist) if wheel_finder else ()
    if limits:
        reasons.append(f"installed packages limit its version: {required_text(limits)}")
    reasons.extend(f.message for f in build_bad)
    return VariantVerdict(
        variant,
        Verdict.BUILDABLE,
        tuple(reasons),
        blockers=tuple(dict.fromkeys([*blockers, *(f.code for f in build_bad)])),
        fix=first + f"flashdoctor install {flag} --from-source",
        installed=installed,
    )


def consistent_advice(
    findings: Iterable[Finding], verdicts: Mapping[Variant, VariantVerdict]
) -> tuple[Finding, ...]:
    """The findings with no install/build fix for a variant whose verdict is unsupported: their fix
    becomes the verdict's (the working alternative). A GPU-less box no longer says "fix: flashdoctor
    install --fa2" under a verdict that says FA2 cannot run there."""
    out = []
    for f in findings:
        vv = verdicts.get(f.variant) if f.variant is not None else None
        if vv is not None and vv.verdict is Verdict.UNSUPPORTED and f.code in INSTALL_FIX_CODES and f.fix:
            alt = vv.fix or f"Use {SDPA}."
            short = knowledge.variant_info(vv.variant).short
            f = dataclasses.replace(f, fix=f"{short} cannot run here; {alt[0].lower()}{alt[1:]}")
        out.append(f)
    return tuple(out)
