"""Between the plan and the executor: plan files, local builds from a wheelhouse, the smoke hook.

Pure except for reading the files it is pointed at.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from flashdoctor.actions.install.executor import SmokeHook, SmokeOutcome
from flashdoctor.actions.wheelhouse import Wheelhouse
from flashdoctor.errors import UsageError
from flashdoctor.knowledge.variants import VARIANTS, Variant
from flashdoctor.model.environment import Environment
from flashdoctor.model.plan import Plan, WheelRef


def load_plan(path: str) -> Plan:
    """A plan as printed by `flashdoctor install --dry-run --json` (README "Install plan"): review it,
    then install exactly that with `flashdoctor install --plan FILE`. Read with bounds (actions.inputs)."""
    from flashdoctor.actions.inputs import PLAN_MAX_BYTES, read_json

    return plan_from_json(read_json(path, "plan", PLAN_MAX_BYTES), where=f"plan {path}")


def plan_from_json(doc: Any, where: str = "plan") -> Plan:
    if not isinstance(doc, dict):
        raise UsageError(f"{where}: must be a JSON object")
    action = doc.get("action")
    if action not in ("wheel", "build", "none", "unsupported"):
        raise UsageError(f"{where}: 'action' must be one of wheel, build, none, unsupported (got {action!r})")
    variant = doc.get("variant")
    if variant not in VARIANTS:
        raise UsageError(f"{where}: 'variant' must be one of {', '.join(VARIANTS)} (got {variant!r})")
    wheel = None
    raw = doc.get("wheel")
    if raw is not None:
        if not isinstance(raw, dict):
            raise UsageError(f"{where}: 'wheel' must be an object")
        for key in ("filename", "url", "version"):
            if not isinstance(raw.get(key), str) or not raw[key]:
                raise UsageError(f"{where}: 'wheel.{key}' must be a non-empty string")
        sha = raw.get("sha256")
        if sha is not None and (
            not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdefABCDEF" for c in sha)
        ):
            raise UsageError(f"{where}: 'wheel.sha256' must be 64 hex digits or null")
        wheel = WheelRef(
            filename=raw["filename"],
            url=raw["url"],
            sha256=sha.lower() if sha else None,
            source=str(raw.get("source") or "plan"),
            version=raw["version"],
        )
    if action == "wheel" and wheel is None:
        raise UsageError(f"{where}: action 'wheel' needs a 'wheel'")
    return Plan(
        action=action, variant=variant, wheel=wheel, reasons=tuple(str(r) for r in doc.get("reasons") or ())
    )


def with_local_build(plan: Plan, env: Environment, wheelhouses: list[Wheelhouse]) -> tuple[Plan, list[str]]:
    """When no index wheel fits (action "build") but a wheelhouse holds a flashdoctor-built wheel whose
    fingerprint fits ``env``, install that instead of building. Returns the plan and notes on the local
    builds that did not fit (why)."""
    notes: list[str] = []
    if plan.action != "build":
        return plan, notes
    for wh in wheelhouses:
        best, rejected = wh.best_build(env, plan.variant)
        for name, why in rejected:
            notes.append(f"{name} in {wh.root} does not fit: {'; '.join(why)}")
        if best is not None:
            reason = f"a matching local build is in the wheelhouse: {best.path} (profile {best.fingerprint.get('profile')})"
            return replace(plan, action="wheel", wheel=best.ref(), reasons=(*plan.reasons, reason)), notes
    return plan, notes


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
