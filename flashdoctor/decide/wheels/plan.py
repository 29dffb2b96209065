"""The install plan: what ``flashdoctor install --<variant>`` would do here (nothing, a wheel, a source
build, or nothing because the machine rules the variant out), and what would make a wheel fit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from flashdoctor import knowledge
from flashdoctor.decide.checks import SDPA, run_checks
from flashdoctor.decide.checks.verdicts import ROCM_BUILD
from flashdoctor.decide.wheels.index import IndexEntry, WheelIndex, entry_for
from flashdoctor.decide.wheels.origin import NO_DIGEST, evidence_reason, wheel_origin
from flashdoctor.decide.wheels.reasons import (
    assumption_notes,
    build_allowed,
    entry_notes,
    fit_summary,
    hint,
    required_passed_over,
    torch_api_passed_over,
)
from flashdoctor.decide.wheels.rules import machine_codes
from flashdoctor.decide.wheels.select import (
    Selection,
    parse_version_spec,
    preference_key,
    reason_text,
    select_wheels,
)
from flashdoctor.decide.wheels.target import target_of
from flashdoctor.knowledge.variants import Variant
from flashdoctor.knowledge.versions import parse_version
from flashdoctor.model.environment import Environment
from flashdoctor.model.findings import CheckReport, VariantVerdict, Verdict
from flashdoctor.model.plan import Plan, WheelRef
from flashdoctor.model.requirements import required_text, ruled_out
from flashdoctor.model.target import ABI_NOTE, CUDA_NOTE, abi_inferred, cuda_inferred

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

    # Only Python is below the variant's minimum (today's releases'): older releases may have shipped
    # wheels for it (FA2 2.5.x-2.7.0 had cp38 wheels), so the index is asked before saying unsupported.
    python_floor = vv.verdict is Verdict.UNSUPPORTED and _only_python_too_old(report, variant, vv.reasons)
    if vv.verdict is Verdict.UNSUPPORTED and not python_floor:
        return _unsupported(vv, variant)
    t = target_of(env)
    outside = ruled_out(t.required, info.dist, inst.version) if inst is not None else ()
    if vv.verdict is Verdict.READY and inst is not None and not outside:
        v = parse_version(inst.version)
        if spec is None or (v is not None and spec.contains(Version(v.public), prereleases=True)):
            installed = {"dist": inst.dist, "version": inst.version}  # what a replay checks (replay_premise)
            return Plan(
                "none", variant, reasons=(*vv.reasons, "nothing to do"), extra={"installed": installed}
            )
    if t.torch_state in ("missing", "cpu", "xpu"):
        fix = next(
            (f.fix for f in report.findings if f.code in ("torch-missing", "torch-cpu-only") and f.fix), None
        )
        why = {
            "missing": "torch is not installed",
            "cpu": f"torch {env.torch} is a CPU-only build",
            "xpu": f"torch {env.torch} is an Intel XPU build (no CUDA)",
        }[t.torch_state]
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
        # The buildable verdict of a ROCm torch says already that there are no wheels (verdicts.py).
        rocm = () if vv.verdict is Verdict.BUILDABLE else (ROCM_BUILD,)
        return Plan("build", variant, reasons=(*rocm, *vv.reasons), blockers=vv.blockers)

    sel = select_wheels(env, variant, index, spec, allow_community)
    if python_floor and sel.best is None:
        return _python_floor_unsupported(vv, variant, index, sel)
    notes = assumption_notes(t)
    if t.musl:
        notes.insert(0, MUSL_NOTE)
    # Mixed GPUs, one of which the variant never runs on (otherwise it is unsupported above): say so.
    notes.extend(
        f"{f.message}; {info.short} runs on the other GPUs only"
        for f in report.findings
        if f.code == "gpu-unsupported" and f.variant == variant
    )
    if inst is not None and outside:
        notes.append(f"{inst.dist} {inst.version} is installed, but {required_text(outside)}: it is replaced")
    if t.os == "linux" and abi_inferred(env):
        notes.append(next(n for n in env.notes if n.startswith(ABI_NOTE)))
    if cuda_inferred(env):
        notes.append(next(n for n in env.notes if n.startswith(CUDA_NOTE)))
    blockers = wheel_blockers(vv)
    if sel.best is not None:
        best = sel.best
        siblings = python_siblings(sel.fits, best) if t.python is None else []
        origin = wheel_origin(best.ref(), best.evidence)
        reasons = [
            f"{best.label} fits: {fit_summary(best, t)}",
            evidence_reason(best.source, best.evidence),
            *([f"sha256: {NO_DIGEST}"] if origin.digest == "none" else []),
            *entry_notes(best, variant, t),
            *filter(
                None,
                [
                    torch_api_passed_over(best, sel.fits, t),
                    required_passed_over(best, sel.unsorted_misses, t),
                ],
            ),
            *([python_floor_note(env, variant, best)] if python_floor else []),
            *([siblings_note(best, siblings)] if siblings else []),
            *notes,
        ]
        if len(sel.fits) > 1:
            reasons.append(f"{len(sel.fits) - 1} other wheel(s) fit; the best are listed as alternatives")
        return Plan(
            "wheel",
            variant,
            wheel=best.ref(),
            alternatives=_distinct_refs([*siblings, *sel.fits[1:]], best.ref()),
            rejected=sel.rejections(),
            reasons=tuple(reasons),
            blockers=blockers,
            origin=origin,
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
    tb = t.torch_build
    if tb is not None and not tb.is_release and info.needs_nvcc:
        hints.insert(
            0,
            f"torch {tb.text} is {tb.kind_words}: release wheels are compiled against PyTorch's releases "
            "and do not load on it (maintainers: build against it from source, Dao-AILab/flash-attention "
            "#836, #709); only a wheel built against this very build would fit, and the index has none",
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
            *(
                [f"{required_text(mine)}: {build_allowed(variant)}"]
                if (mine := t.required_of(info.dist))
                else []
            ),
            *(f"fix before building: {m}" for m in dict.fromkeys(build_msgs)),
            *notes,
        ),
        blockers=build_blockers,
    )


def wheel_blockers(vv: VariantVerdict) -> tuple[str, ...]:
    """The check codes that keep a wheel plan from installing: a driver too old for torch's own CUDA (the
    wheel named is the one that fits after the upgrade)."""
    return tuple(c for c in vv.blockers if c in ("driver-too-old",))


def refit_plan(env: Environment, plan: Plan, index: WheelIndex) -> tuple[Plan, tuple[str, ...]]:
    """A reviewed wheel plan (install --plan FILE, perhaps made on another machine) for this machine: the
    plan with this machine's blockers (make_plan's for a wheel plan; the file's own are not trusted), and
    why its wheel does not fit here, each as the selector words a rejection ("code: sentence"; empty: it
    fits). Only what the wheel was built for is weighed (rules.machine_codes, on its index entry, else on
    what its name says): its version, source or yanked state were the reviewer's choice, and where torch is
    no CUDA build there is no torch CUDA to compare (the install's import check decides)."""
    assert plan.wheel is not None
    report = run_checks(env, source="plan", wheel_finder=lambda _e, _v: None)
    entry, t = entry_for(index, plan.wheel), target_of(env)
    misses = tuple(reason_text(c, entry, t) for c in machine_codes(entry, t) if c != "no-cuda-torch")
    return replace(plan, blockers=wheel_blockers(report.verdicts[plan.variant])), misses


def replay_premise(
    env: Environment,
    plan: Plan,
    index: WheelIndex,
    machine: str = "this machine",
    version_spec: SpecifierSet | None = None,
    allow_community: bool = False,
) -> tuple[Plan, tuple[str, ...]]:
    """A reviewed plan that installs nothing (none, build, unsupported: install/lock --plan FILE, perhaps
    made on another machine), as refit_plan judges a wheel plan: its premise holds when make_plan decides
    the same action for ``env`` and, for ``none``, the version the plan found installed (its
    ``installed``) is the one installed here. Returns the plan, its reasons led by one saying that they
    are the plan file's and that the premise holds on ``machine``, and what does not hold (empty: it
    holds), each naming what the plan assumed and what ``machine`` has. ``version_spec`` and
    ``allow_community`` select as the plan was made (replay_selection: the plan's recorded ones, unless
    the replay gives its own)."""
    here = make_plan(env, plan.variant, index, version_spec=version_spec, allow_community=allow_community)
    dist = knowledge.variant_info(plan.variant).dist
    inst = env.installed_variant(plan.variant)
    have = f"{dist} {inst.version} is installed" if inst is not None else f"{dist} is not installed"
    planned = plan.extra.get("installed") or {}
    assumed = (
        f"{dist} {planned['version']} installed"
        if planned.get("version")
        else (plan.reasons[0] if plan.reasons else "")
    )
    was = f"it is {plan.action!r}" + (f" because {assumed}" if assumed else "")
    if here.action != plan.action:
        state = f"{have}, and " if "none" in (plan.action, here.action) else ""
        why = f" ({here.reasons[0]})" if here.reasons else ""
        return plan, (f"{was}; on {machine} {state}the plan is {here.action!r}{why}",)
    if (
        plan.action == "none"
        and planned.get("version")
        and (inst is None or inst.version != planned["version"])
    ):
        return plan, (f"{was}; on {machine} {have}",)
    holds = (
        f"{have} on {machine}, as the plan says"
        if plan.action == "none"
        else (f"the plan for {machine} is {plan.action!r} too")
    )
    return replace(plan, reasons=(f"{holds}; the other reasons are the plan file's", *plan.reasons)), ()


def selection_json(
    version_spec: SpecifierSet | None, allow_community: bool, index: str | None
) -> dict[str, Any]:
    """A plan's ``selection``: the options that shaped it (--version, --allow-community, and the user's
    wheel index, --index or $FLASHDOCTOR_WHEELS_INDEX, as named; None: flashdoctor's own), which a replay
    of the plan selects with (replay_selection)."""
    return {
        "version": str(version_spec) if version_spec is not None else None,
        "allow_community": allow_community,
        "index": index,
    }


def replay_selection(
    recorded: Mapping[str, Any], version_spec: SpecifierSet | None, allow_community: bool, index: str | None
) -> tuple[SpecifierSet | None, bool, tuple[str, ...]]:
    """The --version and --allow-community a reviewed plan (install/lock --plan FILE) is replayed with:
    those it records (its ``selection``, selection_json; a plan written before it recorded them: none)
    where the replay gives none; where it gives one, that one, with a note saying the plan was made with
    another. The plan's index is never read (it names a file of the machine the plan was made on, or
    whatever its author wrote): the replay selects from its own (``index``), with a note when that is not
    the one the plan names. Returns the version spec, allow_community and the notes."""
    notes: list[str] = []
    spec = version_spec
    if "version" in recorded:
        made = parse_version_spec(recorded["version"])
        if version_spec is None:
            spec = made
        elif made != version_spec:
            was = f"with --version {made}" if made is not None else "without --version"
            notes.append(f"the plan was made {was}; --version {version_spec} given here selects instead")
    if allow_community and recorded.get("allow_community") is False:
        notes.append("the plan was made without --allow-community; --allow-community given here selects too")
    if "index" in recorded and recorded["index"] != index:
        own = "flashdoctor's own index"
        here = f"the wheel index {index}" if index else own
        if recorded["index"]:
            notes.append(
                f"the plan was made with the wheel index {recorded['index']}; this replay selects from "
                f"{here} (a plan's index is never read: give it with --index)"
            )
        else:
            notes.append(f"the plan was made with {own}; this replay selects from {here}")
    return spec, allow_community or recorded.get("allow_community") is True, tuple(notes)


def _python_floor_unsupported(
    vv: VariantVerdict, variant: Variant, index: WheelIndex, sel: Selection
) -> Plan:
    """Python is below today's minimum and no older release's wheel fits: say which release was the
    last for this Python, what its wheels missed by, and the ways out."""
    t = sel.target
    info = knowledge.variant_info(variant)
    older = [e for e in index.for_variant(variant) if t.pairs is not None and e.name.pythons & t.pairs]
    last = max((e.version for e in older), default=None)
    reasons = list(vv.reasons)
    if last is not None:
        reasons.append(
            f"{info.dist} {last} is the last release with wheels for Python {t.python}, and none of its "
            "or earlier releases' wheels fits this torch (the nearest misses are listed)"
        )
        reasons.extend(what_would_fit(sel))
        # The release to build: the last that shipped wheels for this torch minor (its sources build with
        # it), else the last for this Python.
        same_torch = [e.version for e in older if e.name.torch is not None and e.name.torch == t.torch_mm]
        build = max(same_torch, default=last)
        reasons.append(
            f"ways out: a Python ≥ {info.python_min[0]}.{info.python_min[1]} environment; or build {info.dist} "
            f"{build} from source yourself (pip install '{info.dist}=={build}' --no-build-isolation: "
            "flashdoctor builds only releases for supported Pythons)"
        )
    reasons.append(vv.fix or f"Use {SDPA}.")
    return Plan(
        "unsupported", variant, rejected=sel.rejections(), reasons=tuple(reasons), blockers=vv.blockers
    )


def _unsupported(vv: VariantVerdict, variant: Variant) -> Plan:
    # the verdict's fix names the working alternative (PyTorch SDPA, or another variant)
    alt = vv.fix or f"Use {SDPA}."
    return Plan("unsupported", variant, reasons=(*vv.reasons, alt), blockers=vv.blockers)


def _only_python_too_old(report: CheckReport, variant: Variant, reasons: Iterable[str]) -> bool:
    """Whether the only reasons the variant cannot run are "Python below its minimum"."""
    python = {
        f.message for f in report.findings if f.code == "python-too-old" and f.variant in (None, variant)
    }
    rs = set(reasons)
    return bool(python) and bool(rs) and rs <= python


def python_floor_note(env: Environment, variant: Variant, best: IndexEntry) -> str:
    info = knowledge.variant_info(variant)
    low = f"{info.python_min[0]}.{info.python_min[1]}"
    return (
        f"Python {env.python} is below {info.title}'s minimum today ({low}), but {info.dist} "
        f"{best.version} shipped wheels for it: pin that release (newer releases need Python ≥ {low})"
    )


def python_siblings(fits: Iterable[IndexEntry], best: IndexEntry) -> list[IndexEntry]:
    """The same build of ``best`` for other Pythons (its twins that differ only in the Python tag)."""
    key = _without_python(best)
    return [e for e in fits if e is not best and e.source == best.source and _without_python(e) == key]


def _without_python(e: IndexEntry) -> tuple[object, ...]:
    n = e.name
    return (n.dist, str(n.version), n.platforms, e.tag, e.cuda)


def siblings_note(best: IndexEntry, siblings: list[IndexEntry]) -> str:
    tags = sorted({i for e in (best, *siblings) for i, _a in e.name.pythons}, key=lambda s: (len(s), s))
    return (
        f"Python unknown: this build exists for {', '.join(tags)}; {best.filename} is one of them "
        "(the others are the first alternatives): give the target's Python to choose"
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


MUSL_NOTE = (
    "this Linux has musl libc, not glibc (Alpine): every FlashAttention wheel is built for glibc and does "
    "not load here, and a source build needs a CUDA toolkit, which NVIDIA ships for glibc only (libc-musl); "
    "use a glibc-based image (Debian, Ubuntu)"
)
_HINT_ORDER = (
    "version-excluded",
    "required-by-installed",
    "torch-build-mismatch",
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
