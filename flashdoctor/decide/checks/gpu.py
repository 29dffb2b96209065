"""GPU checks: what is visible, which variants run on it (data/variants.json), and in which dtypes."""

from __future__ import annotations

from typing import Any

from flashdoctor import knowledge
from flashdoctor.decide.checks.common import finding, gpu_groups
from flashdoctor.knowledge.variants import VARIANTS, Variant
from flashdoctor.model.environment import GPU, Environment
from flashdoctor.model.findings import Finding, Status

_FIT_STATUS = {"supported": Status.OK, "experimental": Status.WARN, "unsupported": Status.FAIL}


def check_gpus(env: Environment) -> list[Finding]:
    if not env.known("gpus"):
        return [
            finding(
                "gpu-found", Status.SKIP, "GPUs unknown (not in the target spec, or NVML could not list them)"
            )
        ]
    if not env.gpus:
        why = "no NVIDIA driver" if env.known("driver") and env.driver is None else "no GPU visible"
        return [
            finding(
                "no-gpu",
                Status.WARN,
                f"No NVIDIA GPU ({why}): FlashAttention cannot run here; verdicts are for this machine.",
                evidence=f"driver={env.driver or 'none'}",
                fix="Run on a GPU machine, or plan for one: flashdoctor check --target FILE "
                "(a JSON description of that machine; docs/target-spec.md).",
            )
        ]
    out = []
    for g, label, n in gpu_groups(env.gpus):
        mem = f", {g.memory_gb:.0f} GB" if g.memory_gb else ""
        count = f"{n} × " if n > 1 else ""
        out.append(
            finding(
                "gpu-found",
                Status.OK,
                f"{count}{g.name or 'GPU'} compute capability {g.capability or '?'}{mem}",
                subject=label,
            )
        )
        if g.bf16 is False:
            out.append(
                finding(
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
    return _FIT_STATUS[knowledge.variant_info(variant).gpu_fit(cc)]


def check_gpu_support(env: Environment) -> list[Finding]:
    if not env.known("gpus") or not env.gpus:
        return []
    out = []
    for variant in VARIANTS:
        info = knowledge.variant_info(variant)
        for g, label, _n in gpu_groups(env.gpus):
            st = gpu_support(variant, g)
            if st is Status.FAIL:
                advice = info.gpu_advice(g.cc)
                out.append(
                    finding(
                        "gpu-unsupported",
                        Status.FAIL,
                        f"{g.name} (sm_{g.sm}): {advice.why}",
                        variant=variant,
                        subject=label,
                        fix=advice.fix,
                    )
                )
            elif st is Status.WARN:
                out.append(
                    finding(
                        "gpu-experimental",
                        Status.WARN,
                        f"{g.name} (sm_{g.sm}) is not {info.title}'s target GPU",
                        evidence=info.experimental_note,
                        variant=variant,
                        subject=label,
                        fix=info.experimental_fix,
                    )
                )
    return out


def gpu_dtypes(env: Environment) -> list[dict[str, Any]]:
    """Per group of identical GPUs, how each variant stands there and which dtypes it runs
    ("fp8-forward": FA3's forward-only fp8 on sm90). The check report's ``gpu_support`` field; empty
    when the GPUs are unknown or there are none."""
    if not env.known("gpus"):
        return []
    out: list[dict[str, Any]] = []
    for g, label, n in gpu_groups(env.gpus):
        cc = g.cc
        variants: dict[str, dict[str, Any]] = {}
        for variant in VARIANTS:
            info = knowledge.variant_info(variant)
            fit = info.gpu_fit(cc) if cc is not None else None
            variants[variant] = {
                "fit": fit,
                "dtypes": list(info.dtypes_on(cc)) if cc is not None else [],
            }
        out.append(
            {"subject": label, "name": g.name, "capability": g.capability, "count": n, "variants": variants}
        )
    return out
