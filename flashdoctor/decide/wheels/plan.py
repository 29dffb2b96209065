"""The install plan: what ``flashdoctor install --<variant>`` would do here (nothing, a wheel, a source
build, or nothing because the machine rules the variant out), and what would make a wheel fit."""

from __future__ import annotations

from collections.abc import Iterable

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from flashdoctor import knowledge
from flashdoctor.decide.checks import SDPA, run_checks
from flashdoctor.decide.wheels.index import IndexEntry, WheelIndex
from flashdoctor.decide.wheels.reasons import assumption_notes, entry_notes, fit_summary, hint
from flashdoctor.decide.wheels.select import Selection, parse_version_spec, preference_key, select_wheels
from flashdoctor.decide.wheels.target import target_of
from flashdoctor.knowledge.variants import Variant
from flashdoctor.knowledge.versions import parse_version
from flashdoctor.model.environment import Environment
from flashdoctor.model.findings import Verdict
from flashdoctor.model.plan import Plan, WheelRef
from flashdoctor.model.target import ABI_NOTE, abi_inferred

MAX_ALTERNATIVES = 5


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
    notes = assumption_notes(t)
    if t.os == "linux" and abi_inferred(env):
        notes.append(next(n for n in env.notes if n.startswith(ABI_NOTE)))
    blockers = tuple(c for c in vv.blockers if c in ("driver-too-old",))
    if sel.best is not None:
        best = sel.best
        reasons = [
            f"{best.label} fits: {fit_summary(best, t)}",
            f"source: {best.source}; evidence: {best.evidence}",
            *entry_notes(best, variant),
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
            example = min(group, key=lambda e: preference_key(e, t)).label
            out.append(hint(code, who, group, example, t, sel.spec))
    return out
