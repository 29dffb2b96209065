"""Decisions of the smoke test, as pure functions of the runner's events.

The runner (``_runner.py``, in the target interpreter) only measures: errors against the reference,
exception texts, kernel names, times. Here those events become case results (pass / fail / skip / ...),
findings with stable codes and a ``SmokeReport``. Nothing here touches the system, so every rule is
tested on literal event lists; the CPU-mode tests run the same code on a real runner's events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flashdoctor.decide.smoke.classify import (
    classify_error,
    covered_dtypes,
    crash_evidence,
    crash_reason,
    proof_kernel,
    tolerance_for,
    version_label,
)
from flashdoctor.decide.smoke.events import EventLog, RunInfo, parse_events, phase_times
from flashdoctor.knowledge import codes as code_registry
from flashdoctor.model.cases import (
    FALLBACK,
    VARIANT_BACKENDS,
    Case,
    applicable,
    backend_kind,
    backend_title,
)
from flashdoctor.model.environment import GPU, TARGET_KEYS, Environment
from flashdoctor.model.findings import Finding, Status
from flashdoctor.model.smoke import (
    BackendInfo,
    CaseResult,
    CaseStatus,
    GpuInfo,
    InputCheck,
    SmokeReport,
    TensorError,
)

__all__ = [
    "SMOKE_CODES",
    "backend_infos",
    "classify_error",
    "judge_smoke",
    "parse_events",
    "phase_times",
    "proof_kernel",
    "tolerance_for",
]

# code -> one line for the README table. Public interface: never rename one.
SMOKE_CODES: Mapping[str, str] = code_registry.codes("smoke")  # public interface: data/codes.json


# -- results ----------------------------------------------------------------------------------------
def _fmt(x: float) -> str:
    return f"{x:.1e}"


def _case_result(
    log: EventLog,
    gpu: GpuInfo,
    backend: str,
    case: Case,
) -> CaseResult | None:
    key = (gpu.index, backend, case.name)
    tol = tolerance_for(case.dtype)
    chk = log.checks.get(key)
    crashes = log.crashes.get((gpu.index, backend), [])
    mine = next((c for c in crashes if c.get("case") == case.name), None)
    if chk is None:
        if (gpu.index, case.name) in log.ref_failed:
            return CaseResult(
                gpu.index,
                backend,
                case,
                CaseStatus.SKIP,
                f"the fp32 reference failed: {log.ref_failed[(gpu.index, case.name)][:200]}",
                "reference",
            )
        if mine is not None and mine.get("phase") == "check":
            status = CaseStatus.CRASH if mine["event"] == "crash" else CaseStatus.TIMEOUT
            return CaseResult(
                gpu.index,
                backend,
                case,
                status,
                crash_reason(mine),
                mine["event"],
                error=crash_evidence(mine),
            )
        if crashes:
            # The backend was left out after its crashes (a hang, a crash outside a case, or too many).
            last = crashes[-1]
            return CaseResult(
                gpu.index,
                backend,
                case,
                CaseStatus.NOT_RUN,
                f"not run: {backend} {last['event']}ed earlier ({last.get('case') or last.get('phase')})",
            )
        elsewhere = [c for (g, b), cs in log.crashes.items() if b == backend and g != gpu.index for c in cs]
        if elsewhere:
            same = next((c for c in elsewhere if c.get("case") == case.name), None)
            first = same or elsewhere[0]
            where = log.gpus[first["gpu"]].label if first.get("gpu") in log.gpus else "another GPU"
            return CaseResult(
                gpu.index,
                backend,
                case,
                CaseStatus.NOT_RUN,
                f"not run: {backend} {first['event']}ed"
                + (" in this case" if same is not None else "")
                + f" on {where}",
            )
        return CaseResult(gpu.index, backend, case, CaseStatus.NOT_RUN, "not run")
    if not chk.get("ok"):
        if chk.get("not_compiled"):
            # Read from the build's profile before the call: the kernel was never called.
            return CaseResult(
                gpu.index, backend, case, CaseStatus.SKIP, str(chk.get("error")), "not_compiled"
            )
        if chk.get("not_applicable"):
            return CaseResult(
                gpu.index, backend, case, CaseStatus.SKIP, str(chk.get("error")), "not_applicable"
            )
        err = str(chk.get("error"))
        c = classify_error(err, backend, case, gpu, chk.get("warnings") or ())
        return CaseResult(gpu.index, backend, case, c.status, c.reason, c.category, error=err)
    errors = {
        name: TensorError(
            max_abs=None if v.get("max_abs") is None else float(v["max_abs"]),
            ref_max=float(v["ref_max"]),
            finite=bool(v.get("finite", True)),
        )
        for name, v in chk.get("errors", {}).items()
    }
    bad = []
    out_dtype = chk.get("out_dtype")
    if out_dtype is not None and out_dtype != case.dtype:
        bad.append(f"out is {out_dtype}, not {case.dtype} like its inputs")
    for name, te in errors.items():
        limit = tol.out if name == "out" else tol.grad
        if not te.finite:
            bad.append(f"{name} has inf/nan")
        elif te.rel > limit:
            bad.append(f"{name} error {_fmt(te.rel)} > {_fmt(limit)}")
    names = log.kernels.get(key)
    own = None if names is None else proof_kernel(backend, names)
    proof = None if names is None else own is not None
    t = log.timings.get(key, {})
    status = CaseStatus.FAIL if bad else CaseStatus.PASS
    reason = f"{'; '.join(bad)} ({case.dtype} tolerance)" if bad else None
    if t.get("error"):
        note = f"timing failed: {str(t['error'])[:200]}"
        reason = f"{reason}; {note}" if reason else note
    elif mine is not None:
        note = f"{mine['event']} while timing ({crash_reason(mine)})"
        reason = f"{reason}; {note}" if reason else note
        status = CaseStatus.CRASH if mine["event"] == "crash" else CaseStatus.TIMEOUT
    return CaseResult(
        gpu.index,
        backend,
        case,
        status,
        reason,
        "numerics" if bad else None,
        errors=errors,
        tolerance=tol,
        kernels=tuple(names or ()),
        kernel=own,
        kernel_proof=proof,
        fwd_ms=t.get("fwd_ms"),
        fwd_bwd_ms=t.get("fwd_bwd_ms"),
        peak_mib=t.get("peak_mib"),
    )


def _with_speedups(results: list[CaseResult]) -> list[CaseResult]:
    import dataclasses

    base = {(r.gpu, r.case.name): r for r in results if r.backend == FALLBACK}
    out = []
    for r in results:
        b = base.get((r.gpu, r.case.name))
        sf = b.fwd_ms / r.fwd_ms if b and b.fwd_ms and r.fwd_ms else None
        sb = b.fwd_bwd_ms / r.fwd_bwd_ms if b and b.fwd_bwd_ms and r.fwd_bwd_ms else None
        out.append(dataclasses.replace(r, speedup_fwd=sf, speedup_fwd_bwd=sb))
    return out


# -- findings ---------------------------------------------------------------------------------------
_CATEGORY_FINDING: dict[str, tuple[str, Status, Status]] = {
    # category -> (code, status for a variant, status for an SDPA backend)
    "numerics": ("smoke-numerics", Status.FAIL, Status.FAIL),
    "error": ("smoke-error", Status.FAIL, Status.WARN),
    "crash": ("smoke-crash", Status.FAIL, Status.FAIL),
    "timeout": ("smoke-timeout", Status.FAIL, Status.FAIL),
    "not_compiled": ("smoke-not-compiled", Status.WARN, Status.WARN),
    "unsupported_gpu": ("smoke-unsupported-gpu", Status.WARN, Status.WARN),
    "no_kernel_image": ("smoke-arch-missing", Status.FAIL, Status.FAIL),
    "unsupported_input": ("smoke-unsupported-input", Status.SKIP, Status.SKIP),
    "no_kernel": ("smoke-sdpa-unavailable", Status.SKIP, Status.SKIP),
    "oom": ("smoke-oom", Status.WARN, Status.WARN),
}

_FIX = {
    "smoke-numerics": "Reinstall the variant from a wheel built for this torch (flashdoctor install), or rebuild it; report the case if it persists.",
    "smoke-error": "Run `flashdoctor explain` on the error; reinstall the variant for this torch.",
    "smoke-crash": "Reinstall the variant built for this torch/CUDA/GPU (flashdoctor install); `flashdoctor check` shows the mismatch.",
    "smoke-timeout": "Re-run with a longer --timeout (FA4 JIT-compiles its kernels on first use).",
    "smoke-not-compiled": "Rebuild with the head dims and dtypes your model uses, or use a full wheel.",
    "smoke-arch-missing": "Rebuild for this GPU's architecture, or install a wheel that includes it.",
    "smoke-unsupported-gpu": "Use PyTorch SDPA (flash/cuDNN/efficient) on this GPU.",
    "smoke-oom": "Free GPU memory or run the smoke on an idle GPU (--gpu N).",
}


def _this_machine(log: EventLog, python: str) -> Environment:
    """What the smoke knows of the machine it ran on: the interpreter, its torch and the GPUs it used; the
    rest unknown (nothing here probes)."""
    known: dict[str, Any] = {"python_executable": python}
    if log.torch is not None:
        known["torch"] = log.torch.get("version")
        known["torch_cuda"] = log.torch.get("cuda")
        known["torch_hip"] = log.torch.get("hip")
    gpus = [g for g in log.gpus.values() if g.index is not None]
    if gpus:
        known["gpus"] = tuple(GPU(g.index, g.name, g.capability, g.memory_gb) for g in gpus)
    return Environment(**known, unknown=frozenset(k for k in TARGET_KEYS if k not in known))


def _explained_fix(error: str | None, default: str | None, machine: Environment) -> str | None:
    """The failure-log engine's reading of an error (what `flashdoctor explain` says), else ``default``.
    The error is this machine's own (``machine``: what the smoke knows of it)."""
    if not error:
        return default
    from flashdoctor.decide.explain import explain_text

    diags = explain_text(error, machine, here=True)
    if not diags:
        return default
    return f"[{diags[0].code}] {diags[0].message}. {diags[0].fix}"


def _variant_of(backend: str) -> Any:
    return backend if backend in VARIANT_BACKENDS else None


def _subject(backend: str, gpu: GpuInfo | None) -> str:
    return backend if gpu is None else f"{backend} @ {gpu.label}"


def _backend_findings(
    backend: str,
    info: BackendInfo,
    gpu: GpuInfo,
    rows: list[CaseResult],
    profiled: bool,
    machine: Environment,
) -> list[Finding]:
    findings: list[Finding] = []
    label, _ = version_label(backend, info.version)
    title = info.title + (f" {label}" if label else "")
    kind = backend_kind(backend)
    groups: dict[str, list[CaseResult]] = {}
    for r in rows:
        if r.status is CaseStatus.PASS:
            continue
        cat = r.category or r.status.value
        if r.status in (CaseStatus.CRASH, CaseStatus.TIMEOUT):
            cat = r.status.value
        if r.status is CaseStatus.NOT_RUN or cat in ("not_applicable", "reference"):
            continue
        groups.setdefault(cat, []).append(r)
    for cat, rs in groups.items():
        code, st_var, st_sdpa = _CATEGORY_FINDING.get(cat, ("smoke-error", Status.FAIL, Status.WARN))
        status = st_var if kind == "variant" else st_sdpa
        first = rs[0]
        by_reason: dict[str | None, list[str]] = {}
        for r in rs:
            # What a build left out is said per reason ("fp16", "head dim 64"); other categories by their
            # first case's reason (numerics differ by case).
            by_reason.setdefault(r.reason if cat == "not_compiled" else first.reason, []).append(r.case.name)
        msg = f"{title} on {gpu.label}: " + "; ".join(
            f"{reason} [{', '.join(names)}]" for reason, names in by_reason.items()
        )
        findings.append(
            Finding(
                code,
                status,
                msg,
                evidence=first.error,
                fix=_explained_fix(first.error, _FIX.get(code), machine)
                if code in ("smoke-error", "smoke-crash")
                else _FIX.get(code),
                variant=_variant_of(backend),
                subject=_subject(backend, gpu),
            )
        )
    passed = [r for r in rows if r.status is CaseStatus.PASS]
    if passed and not any(f.status is Status.FAIL for f in findings):
        speed = [r for r in passed if r.speedup_fwd_bwd]
        tail = ""
        if speed and backend != FALLBACK:
            best = max(speed, key=lambda r: r.speedup_fwd_bwd or 0.0)
            tail = f"; up to {best.speedup_fwd_bwd:.1f}× the fallback (fwd+bwd, {best.case.name})"
        ran = [r for r in rows if r.status is not CaseStatus.NOT_RUN]
        kernels = sorted({k for r in passed for k in r.kernels[:2]})[:4]
        findings.append(
            Finding(
                "smoke-ok",
                Status.OK,
                f"{title} on {gpu.label}: {len(passed)}/{len(ran)} cases agree with the fp32 reference{tail}",
                evidence=("kernels: " + ", ".join(k[:80] for k in kernels)) if kernels else None,
                variant=_variant_of(backend),
                subject=_subject(backend, gpu),
            )
        )
    if profiled and passed and backend != FALLBACK and not any(r.kernel_proof for r in passed):
        seen = sorted({k for r in passed for k in r.kernels[:3]})[:5]
        findings.append(
            Finding(
                "smoke-no-kernel-proof",
                Status.WARN,
                f"{title} on {gpu.label}: the profiler showed none of its own kernels during its calls",
                evidence="kernels seen: " + (", ".join(k[:80] for k in seen) or "none"),
                fix="Check that the call reaches the variant's extension (not a Python fallback).",
                variant=_variant_of(backend),
                subject=_subject(backend, gpu),
            )
        )
    return findings


def _crash_finding(
    log: EventLog, infos: Mapping[str, BackendInfo], gpu_index: Any, b: str, crash: dict[str, Any]
) -> Finding:
    """A crash or timeout outside any case's row (input checks, between cases, the reference)."""
    g = log.gpus.get(gpu_index)
    where = g.label if g is not None else "this device"
    during = str(crash.get("case") or crash.get("phase") or "start-up")
    code = "smoke-crash" if crash["event"] == "crash" else "smoke-timeout"
    title = infos[b].title if b in infos else "the fp32 reference"
    status, note = Status.FAIL, ""
    if during.startswith("input:") and b in infos and covered_dtypes(b, infos[b].version) is not None:
        # A minimal build fed what it must refuse (its own head dim, fp32; or head dim 512) and died
        # instead of raising: worth knowing, but no valid call reaches that path — the runtime sends a
        # build only the head dims and dtypes it has — so it does not fail the build's smoke test.
        status = Status.WARN
        note = " (a minimal build crashing on input it must refuse; flashdoctor's runtime never sends it such input)"
    return Finding(
        code,
        status,
        f"{title} on {where}: {crash_reason(crash)} during {during}{note}",
        evidence=crash_evidence(crash),
        fix=_FIX.get(code),
        variant=_variant_of(b),
        subject=_subject(b, g),
    )


def _input_check_findings(
    log: EventLog, backends: dict[str, BackendInfo]
) -> tuple[list[InputCheck], list[Finding]]:
    checks: list[InputCheck] = []
    findings: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    what = {"fp32": "fp32 tensors", "head_dim_512": "head dim 512"}
    for e in log.input_checks:
        if e.get("skipped"):
            b = str(e["backend"])
            info = backends.get(b)
            findings.append(
                Finding(
                    "smoke-input-check",
                    Status.SKIP,
                    f"{info.title if info else b}: not fed fp32 tensors or head dim 512 — a minimal build of "
                    "this variant has no branch that refuses them (it dies); flashdoctor's runtime never "
                    "sends it such input",
                    variant=_variant_of(b),
                    subject=b,
                )
            )
            continue
        ic = InputCheck(
            e.get("gpu"), str(e["backend"]), str(e["check"]), bool(e.get("raised")), e.get("error")
        )
        checks.append(ic)
        if (ic.backend, ic.check) in seen:
            continue
        seen.add((ic.backend, ic.check))
        title = backends[ic.backend].title if ic.backend in backends else ic.backend
        fed = what.get(ic.check, ic.check)
        findings.append(
            Finding(
                "smoke-input-check",
                Status.OK if ic.raised else Status.SKIP,
                f"{title} refuses {fed} with a clear error: {str(ic.error)[:200]}"
                if ic.raised
                else f"{title} accepted {fed} without an error",
                variant=_variant_of(ic.backend),
                subject=ic.backend,
            )
        )
    return checks, findings


def backend_infos(log: EventLog, run: RunInfo) -> dict[str, BackendInfo]:
    """What the runner found of each backend it was told to run, and whether the user asked for it."""
    req = set(run.requested or ())
    out: dict[str, BackendInfo] = {}
    for b in run.backends:
        kind = backend_kind(b)
        if kind == "sdpa":
            out[b] = BackendInfo(b, kind, backend_title(b), requested=b in req)
            continue
        v = log.variants.get(b)
        if b in log.import_crashes:
            out[b] = BackendInfo(
                b,
                kind,
                backend_title(b),
                installed=True,
                import_ok=False,
                import_error=crash_reason(log.import_crashes[b]),
                requested=b in req,
            )
        elif v is None:
            out[b] = BackendInfo(b, kind, backend_title(b), installed=None, requested=b in req)
        else:
            out[b] = BackendInfo(
                b,
                kind,
                backend_title(b),
                installed=bool(v.get("installed")),
                version=v.get("version"),
                import_ok=v.get("import_ok"),
                import_error=v.get("error"),
                module=v.get("module"),
                requested=b in req,
            )
    return out


def judge_smoke(events: Sequence[dict[str, Any]], run: RunInfo, *, cases: Sequence[Case]) -> SmokeReport:
    """The smoke report from the runner's events (and the orchestrator's crash/timeout events)."""
    log = parse_events(events)
    python, backends = run.python, run.backends
    infos = backend_infos(log, run)
    findings: list[Finding] = []
    skipped: str | None = None
    torch_version = None if log.torch is None else log.torch.get("version")
    import_s = None if log.torch is None else log.torch.get("import_s")
    not_run = log.not_run(python)
    machine = _this_machine(log, python)
    if not_run is not None and not_run[0] == "torch-failed":  # a failure, not a skip
        findings.append(
            Finding(
                "smoke-torch-import-error",
                Status.FAIL,
                not_run[1],
                fix="Run `flashdoctor check` for the cause.",
            )
        )
    elif not_run is not None:
        skipped = not_run[1]
    if log.runner_failed is not None:
        rf = log.runner_failed
        w = rf.get("where") or {}
        during = (
            f" on GPU {w['gpu']}"
            if w.get("gpu") is not None
            else (" during start-up" if not log.gpus else "")
        )
        findings.append(
            Finding(
                "smoke-runner-failed",
                Status.FAIL,
                f"the smoke runner died{during} outside any backend's call ({rf.get('why')})",
                evidence=crash_evidence(rf),
                fix="Run `flashdoctor check` for the cause; the evidence holds the runner's last output.",
            )
        )
    if skipped:
        findings.append(Finding("smoke-skipped", Status.SKIP, f"smoke test skipped: {skipped}"))
    # variants: import errors, import crashes, requested but missing
    for b, info in infos.items():
        if info.kind != "variant":
            continue
        if info.installed and info.import_ok is False:
            findings.append(
                Finding(
                    "smoke-import-error",
                    Status.FAIL,
                    f"{info.title} {info.version or ''} is installed but does not import: {str(info.import_error)[:300]}".replace(
                        "  ", " "
                    ),
                    evidence=info.import_error,
                    fix=_explained_fix(
                        info.import_error,
                        "Run `flashdoctor explain` on the error, or `flashdoctor check` for the mismatch.",
                        machine,
                    ),
                    variant=_variant_of(b),
                    subject=b,
                )
            )
        elif info.requested and info.installed is False and not skipped:
            findings.append(
                Finding(
                    "smoke-not-installed",
                    Status.FAIL,
                    f"{info.title} was asked for but is not installed in {python}",
                    fix=f"flashdoctor install --{b}",
                    variant=_variant_of(b),
                    subject=b,
                )
            )
    results: list[CaseResult] = []
    for gpu in log.gpus.values():
        for b in backends:
            info = infos[b]
            if info.kind == "variant" and not (info.installed and info.import_ok):
                continue
            for case in cases:
                if not applicable(b, case):
                    continue
                r = _case_result(log, gpu, b, case)
                if r is not None:
                    results.append(r)
    results = _with_speedups(results)
    for gpu in log.gpus.values():
        for b in backends:
            rows = [r for r in results if r.gpu == gpu.index and r.backend == b]
            if rows:
                profiled = any((gpu.index, b, r.case.name) in log.kernels for r in rows)
                findings.extend(_backend_findings(b, infos[b], gpu, rows, profiled, machine))
    for (gpu_index, b), crashes in log.crashes.items():
        for crash in crashes:
            if any(
                r.gpu == gpu_index
                and r.backend == b
                and r.case.name == crash.get("case")
                and r.status in (CaseStatus.CRASH, CaseStatus.TIMEOUT)
                for r in results
            ):
                continue  # already a finding through its case
            findings.append(_crash_finding(log, infos, gpu_index, b, crash))
    checks, check_findings = _input_check_findings(log, infos)
    findings.extend(check_findings)
    if log.fatal:
        findings.append(Finding("smoke-runner-failed", Status.FAIL, log.fatal))
    order = {Status.FAIL: 0, Status.WARN: 1, Status.OK: 2, Status.SKIP: 3}
    findings.sort(key=lambda f: order[f.status])
    return SmokeReport(
        python=python,
        device=run.device,
        torch=torch_version,
        skipped_reason=skipped,
        gpus=tuple(log.gpus.values()),
        backends=tuple(infos.values()),
        cases=tuple(cases),
        results=tuple(results),
        input_checks=tuple(checks),
        findings=tuple(findings),
        elapsed_s=run.elapsed_s,
        torch_import_s=import_s,
        runs=max(log.runs, 1),
        notes=tuple(dict.fromkeys(log.notes)),
        phases=phase_times(events),
    )
