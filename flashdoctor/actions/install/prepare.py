"""Between the plan and the executor: plan files, what is already here, the smoke hook.

Install resolution prefers what is already here (issue 16): before anything is downloaded — in the dry
run and for real — a plan whose wheel is already in a wheelhouse or the download cache is kept and says
so, and otherwise a build in a wheelhouse (--wheelhouse, or the default one `flashdoctor build` stores
into) that serves this machine (flashdoctor.actions.wheelhouse.serves: same fingerprint, a profile that
covers the request) replaces a download or a new build, with the reason in the plan's ``reasons``.

Pure except for reading the files it is pointed at.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet

from flashdoctor.actions.cache import WheelCache
from flashdoctor.actions.wheelhouse import BuiltWheel, Request, Wheelhouse, best
from flashdoctor.decide.wheels.origin import NO_DIGEST, evidence_reason
from flashdoctor.decide.wheels.parse import WheelNameError, parse_wheel_name
from flashdoctor.decide.wheels.plan import selection_json
from flashdoctor.decide.wheels.select import parse_version_spec
from flashdoctor.errors import UsageError
from flashdoctor.knowledge.profiles import parse_archs, parse_dtypes, parse_head_dims
from flashdoctor.knowledge.schemas import error_expect, error_key, first_error, missing_property
from flashdoctor.knowledge.variants import Variant
from flashdoctor.model.environment import Environment
from flashdoctor.model.install import SmokeHook, SmokeOutcome
from flashdoctor.model.plan import Plan, WheelRef


def load_plan(path: str) -> Plan:
    """A plan as printed by `flashdoctor install --dry-run --json` (README "Install plan"): review it,
    then install exactly that with `flashdoctor install --plan FILE`. Read with bounds (actions.inputs)."""
    from flashdoctor.actions.inputs import PLAN_MAX_BYTES, read_json

    return plan_from_json(read_json(path, "plan", PLAN_MAX_BYTES), where=f"plan {path}")


PLAN_SCHEMA = "plan.schema.json"
PLAN_INPUT = "/$defs/input"  # what a plan file must hold: the one statement of the rules


def _plan_error(error: Any, where: str) -> str:
    key = error_key(error)
    missing = missing_property(error)
    if missing is not None:
        why = error_expect(error, "x-why")
        name = f"{key}.{missing}" if key else missing
        return f"{where}: {name!r} is missing" + (f": {why}" if why else "")
    expect = error_expect(error)
    if not key:
        return f"{where}: must be {expect or 'a JSON object'}"
    if error.validator == "enum":
        got = repr(error.instance)[:80]
        return f"{where}: {key!r} must be one of {', '.join(map(str, error.validator_value))} (got {got})"
    if expect is not None:
        return f"{where}: {key!r} must be {expect}"
    return f"{where}: {key!r}: {error.message[:200]}"


# A plan file's reasons are printed back, one line each: a line break in one (anyone can write a plan file)
# would print lines that pass for flashdoctor's own, e.g. a forged "verified against a published digest".
# Every run of white space goes too: a wide one pushed the text after it onto a wrapped line of its own.
_LINE_BREAKS = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def plan_from_json(doc: Any, where: str = "plan") -> Plan:
    """A plan file's plan: validated by plan.schema.json#/$defs/input, then its wheel's file name must be
    a FlashAttention wheel's name of the plan's variant (it names files in wheelhouses and the cache)."""
    try:
        error = first_error(PLAN_SCHEMA, doc, PLAN_INPUT)
    except RecursionError:
        raise UsageError(f"{where}: nested too deeply to be a plan") from None
    if error is not None:
        raise UsageError(_plan_error(error, where))
    variant: Variant = doc["variant"]
    wheel = None
    raw = doc.get("wheel")
    if raw is not None:
        try:
            named = parse_wheel_name(raw["filename"]).variant
        except WheelNameError as exc:
            raise UsageError(f"{where}: 'wheel.filename': {exc}") from None
        if named is not None and named != variant:
            raise UsageError(f"{where}: 'wheel.filename' is a {named} wheel, and the plan is for {variant}")
        for key in ("url", "source", "version"):  # printed in the plan: a line break would forge a line
            if isinstance(raw.get(key), str) and _CONTROL.search(raw[key]):
                raise UsageError(f"{where}: 'wheel.{key}' has a control character or line break")
        sha = raw.get("sha256")
        wheel = WheelRef(
            filename=raw["filename"],
            url=raw["url"],
            sha256=sha.lower() if sha else None,
            source=raw.get("source") or "plan",
            version=raw["version"],
        )
    installed = doc.get("installed")  # a "none" plan's: what replay_premise checks here (and prints)
    extra: dict[str, Any] = {}
    if installed is not None:
        extra["installed"] = {k: _LINE_BREAKS.sub(" ", v).strip() for k, v in installed.items()}
    selection = doc.get("selection")  # what it was made with: what a replay selects with (replay_selection)
    if selection is not None:
        try:
            spec = parse_version_spec(selection.get("version"))
        except UsageError as exc:
            raise UsageError(
                f"{where}: 'selection.version': {exc.message.removeprefix('--version ')}"
            ) from None
        # printed back with the plan: in the shape flashdoctor writes it (plan.schema.json), not as given
        extra["selection"] = selection_json(
            spec, selection.get("allow_community") is True, selection.get("index")
        )
    return Plan(
        action=doc["action"],
        variant=variant,
        wheel=wheel,
        reasons=tuple(_LINE_BREAKS.sub(" ", r).strip() for r in doc.get("reasons") or ()),
        extra=extra,
    )


def _already_here(ref: WheelRef, wheelhouses: list[Wheelhouse], cache: WheelCache | None) -> str | None:
    for wh in wheelhouses:
        if wh.find(ref.filename) is not None:
            return f"the wheelhouse {wh.root}"
    if cache is not None and cache.has(ref.sha256, ref.url, ref.filename):
        return "the download cache"
    return None


def _rejections(rejected: list[tuple[BuiltWheel, list[str]]]) -> list[str]:
    return [
        f"{bw.filename} in {bw.path.parent.parent} does not fit: {'; '.join(why)}" for bw, why in rejected
    ]


def _local_reason(bw: BuiltWheel, what: str) -> str:
    return (
        f"a matching local build is already here ({what}): {bw.path} "
        f"(profile {bw.fingerprint.profile or 'unknown'}); nothing to download"
    )


def resolve_local(
    plan: Plan,
    env: Environment,
    wheelhouses: list[Wheelhouse],
    cache: WheelCache | None = None,
    versions: SpecifierSet | None = None,
    reviewed: bool = False,
) -> tuple[Plan, list[str]]:
    """Prefer what is already here (module docstring). A ``reviewed`` plan (install --plan FILE, lock)
    keeps its wheel; only its action "build" may become a local build. Returns the plan and notes on the
    local builds that do not serve this machine (why)."""
    notes: list[str] = []
    if plan.action not in ("wheel", "build"):
        return plan, notes
    if plan.action == "wheel":
        if reviewed or plan.wheel is None:
            return plan, notes
        where = _already_here(plan.wheel, wheelhouses, cache)
        if where is not None:
            reason = f"already here: {plan.wheel.filename} is in {where}; nothing to download"
            return replace(plan, reasons=(*plan.reasons, reason)), notes
    found, rejected = best(wheelhouses, Request.for_environment(env, plan.variant, versions=versions))
    notes.extend(_rejections(rejected))
    if found is None:
        return plan, notes
    instead = "instead of a download" if plan.action == "wheel" else "instead of a build"
    alternatives = (plan.wheel, *plan.alternatives) if plan.wheel is not None else plan.alternatives
    # the replaced index wheel's provenance (its source's evidence, "no published digest") is not the local
    # build's: dropped with its origin; the rest says why that wheel fit and what came instead of it
    theirs = set()
    if plan.origin is not None and plan.wheel is not None:
        theirs = {evidence_reason(plan.wheel.source, plan.origin.evidence or ""), f"sha256: {NO_DIGEST}"}
    return replace(
        plan,
        action="wheel",
        wheel=found.ref(),
        origin=None,  # the selector's was the index wheel's: its release, its digest's source
        alternatives=alternatives,
        reasons=(*(r for r in plan.reasons if r not in theirs), _local_reason(found, instead)),
    ), notes


def with_local_build(plan: Plan, env: Environment, wheelhouses: list[Wheelhouse]) -> tuple[Plan, list[str]]:
    """When a reviewed plan says "build" (no index wheel fits) but a wheelhouse holds a build that serves
    ``env``, install that instead of building (resolve_local with ``reviewed``)."""
    return resolve_local(plan, env, wheelhouses, reviewed=True)


def local_build_for_source(
    env: Environment,
    variant: Variant,
    wheelhouses: list[Wheelhouse],
    arch: str | None = None,
    head_dims: str | None = None,
    dtypes: str | None = None,
    disable: Sequence[str] = (),
) -> tuple[Plan | None, list[str]]:
    """`install --from-source`: a build already here that covers the request (--arch, else the GPUs;
    --head-dims and --dtypes when given) is installed instead of planning a new build. Returns its plan
    (None: build) and notes on the builds that do not cover it."""
    req = Request.for_environment(
        env,
        variant,
        archs=parse_archs(arch) if arch else None,
        head_dims=parse_head_dims(head_dims) if head_dims else None,
        dtypes=parse_dtypes(dtypes) if dtypes else None,
        disabled=tuple(dict.fromkeys(disable)) if disable else None,
    )
    found, rejected = best(wheelhouses, req)
    notes = _rejections(rejected)
    if found is None:
        return None, notes
    reason = _local_reason(found, "no new build; `flashdoctor build --rebuild` builds again")
    return Plan(action="wheel", variant=variant, wheel=found.ref(), reasons=(reason,)), notes


def smoke_hook() -> SmokeHook:
    """The smoke test of issue 5 (``flashdoctor.actions.smoke.run_smoke``), limited to the variant just
    installed, as the executor's hook."""

    def hook(python: str, environ: Mapping[str, str], variant: Variant) -> SmokeOutcome:
        from flashdoctor.actions.smoke import run_smoke

        return smoke_outcome(run_smoke(python, environ, gpu=None, variants=[variant]), variant)

    return hook


def smoke_outcome(report: Any, variant: Variant) -> SmokeOutcome:
    """SmokeReport -> SmokeOutcome: the install stands when nothing failed and the variant did not fail.

    A smoke test that was skipped as a whole (torch sees no GPU, although the driver does) does not
    fail the install, but says so."""
    from flashdoctor.model.findings import Status

    failed = [f for f in report.findings if f.status is Status.FAIL]
    vok = report.variant_ok(variant)
    ok = report.exit_code() == 0 and vok is not False
    if not ok:
        summary = "; ".join(f.message for f in failed[:3]) or f"{variant} failed"
    elif report.skipped:
        summary = f"skipped: {report.skipped_reason}"
    else:
        passed = sum(1 for r in report.results if r.backend == variant and r.status.value == "pass")
        summary = f"{variant} passed {passed} case(s) against the fp32 reference in {report.elapsed_s:.1f}s"
    return SmokeOutcome(ok=ok, summary=summary, details={"report": report.to_json()})


def wheelhouse_paths(values: tuple[str, ...]) -> list[Wheelhouse]:
    out = []
    for v in values:
        p = Path(v).expanduser()
        if p.exists() and not p.is_dir():
            raise UsageError(f"--wheelhouse {v}: not a directory")
        out.append(Wheelhouse(p))
    return out
