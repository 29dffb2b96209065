"""Human output of the smoke test and the bench: rich tables, then the findings, then one summary line."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flashdoctor.decide.smoke.bench import FLOP_FORMULA, BenchReport
from flashdoctor.model.cases import backend_short
from flashdoctor.model.findings import Status
from flashdoctor.model.smoke import CaseResult, CaseStatus, SmokeReport
from flashdoctor.render.console import STATUS_MARK

CASE_STYLE = {
    "pass": "green",
    "fail": "bold red",
    "error": "red",
    "crash": "bold red",
    "timeout": "red",
    "skip": "yellow",
    "not-run": "dim",
}
QUIET_CATEGORIES = {"no_kernel", "not_applicable"}  # shown with -v; the findings summarise them


def _ms(x: float | None) -> str:
    if x is None:
        return ""
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def _err(x: float | None) -> str:
    if x is None:
        return ""
    return "inf/nan" if x == float("inf") else f"{x:.1e}"


def _x(x: float | None) -> str:
    return "" if x is None else f"{x:.1f}×"


def _note(r: CaseResult) -> str:
    if r.status is CaseStatus.PASS and r.kernels:
        k = r.kernel or f"(not its own kernel) {r.kernels[0]}"
        return k if len(k) <= 70 else k[:67] + "..."
    return r.reason or ""


def render_smoke(report: SmokeReport, console: Console, verbose: bool = False) -> None:
    head = f"torch {report.torch or '?'} · {report.python}"
    if report.skipped:
        console.print(f"[bold]flashdoctor smoke[/]: {escape(head)}")
        console.print(f" [dim]-[/] smoke test skipped: {escape(str(report.skipped_reason))} [dim](exit 0)[/]")
        _render_findings(report, console, verbose, skip_codes=frozenset({"smoke-skipped"}))
        return
    console.print(f"[bold]flashdoctor smoke[/]: {escape(head)}")
    ran = {r.case.name for r in report.results}
    console.print(
        "[dim]cases: "
        + escape("; ".join(f"{c.name} = {c.label}" for c in report.cases if c.name in ran))
        + "[/]"
    )
    for gpu in report.gpus:
        rows = [r for r in report.results if r.gpu == gpu.index]
        table = Table(
            title=escape(gpu.label), title_justify="left", header_style="bold", box=None, pad_edge=False
        )
        for col, just in (
            ("backend", "left"),
            ("case", "left"),
            ("status", "left"),
            ("out err", "right"),
            ("grad err", "right"),
            ("fwd ms", "right"),
            ("fwd+bwd ms", "right"),
            ("vs fallback", "right"),
            ("kernel / reason", "left"),
        ):
            table.add_column(col, justify=just, overflow="fold")  # type: ignore[arg-type]
        hidden = 0
        for r in rows:
            if not verbose and r.status is CaseStatus.SKIP and r.category in QUIET_CATEGORIES:
                hidden += 1
                continue
            info = report.backend(r.backend)
            name = backend_short(r.backend) + (f" {info.version}" if info and info.version else "")
            style = CASE_STYLE.get(r.status.value, "")
            table.add_row(
                escape(name),
                escape(r.case.name),
                f"[{style}]{r.status.value}[/]",
                _err(r.out_rel),
                _err(r.grad_rel),
                _ms(r.fwd_ms),
                _ms(r.fwd_bwd_ms),
                _x(r.speedup_fwd_bwd),
                escape(_note(r)),
            )
        console.print()
        console.print(table)
        if hidden:
            console.print(
                f"[dim]  ({hidden} rows of backends without a kernel for the input hidden; -v shows them)[/]"
            )
    tol = sorted({(r.case.dtype, r.tolerance.out, r.tolerance.grad) for r in report.results if r.tolerance})
    if tol:
        console.print(
            "[dim]errors: max|x - ref| / max|ref| against SDPA math in fp32; tolerance (out / grads): "
            + ", ".join(f"{d} {o:g} / {g:g}" for d, o, g in tol)
            + "[/]"
        )
    _render_findings(report, console, verbose)
    verdict = {"passed": "[bold green]passed[/]", "failed": "[bold red]failed[/]", "skipped": "skipped"}[
        report.status
    ]
    imp = f"torch import {report.torch_import_s:.1f} s; " if report.torch_import_s is not None else ""
    runs = f"{report.runs} runner process" + ("es" if report.runs != 1 else "")
    console.print(f"smoke {verdict} in {report.elapsed_s:.1f} s ({imp}{runs})")
    parts = [
        f"{_phase_label(k)} {v:.1f} s"
        for k, v in report.phases.items()
        if k not in ("torch_import_s", "runner_s")
    ]
    if parts:
        console.print("[dim]time: " + escape(", ".join(parts)) + "[/]")


def _phase_label(key: str) -> str:
    name = key[:-2] if key.endswith("_s") else key
    if name == "setup":
        return "set-up (variants, CUDA, references)"
    if name == "dynamo_import":
        return "torch._dynamo import for the variants' custom ops (overlapped)"
    if name.endswith("_prewarm"):
        return f"{_phase_label(name[: -len('_prewarm')] + '_s')} background compile (overlapped)"
    try:
        return backend_short(name)
    except KeyError:
        return name


def _render_findings(
    report: SmokeReport, console: Console, verbose: bool, skip_codes: frozenset[str] = frozenset()
) -> None:
    shown = [
        f
        for f in report.findings
        if f.code not in skip_codes
        and (verbose or f.status is not Status.SKIP or f.code == "smoke-sdpa-unavailable")
    ]
    if not shown:
        return
    console.print()
    for f in shown:
        mark, style = STATUS_MARK[f.status.value]
        console.print(f" [{style}]{mark}[/] {escape(f.message)} [dim]\\[{f.code}][/]")
        if f.evidence and (verbose or f.status is Status.FAIL):
            ev = f.evidence.strip().splitlines()
            for line in ev[-6:]:
                console.print(f"     [dim]{escape(line)}[/]")
        if f.fix and f.status in (Status.WARN, Status.FAIL):
            console.print(f"     [dim]fix:[/] {escape(f.fix)}")


def render_bench(report: BenchReport, console: Console, verbose: bool = False) -> None:
    case = report.case
    if report.skipped_reason:
        console.print(f"[bold]flashdoctor bench[/]: {escape(case.label)}")
        console.print(f" [dim]-[/] bench skipped: {escape(report.skipped_reason)} [dim](exit 0)[/]")
        return
    where = report.gpu.label if report.gpu else "?"
    peak = (
        f" · bf16 matmul peak {_tf(report.matmul_peak_tflops)} TFLOP/s (measured)"
        if report.matmul_peak_tflops
        else ""
    )
    console.print(
        f"[bold]flashdoctor bench[/]: {escape(case.label)} on {escape(where)} · torch {escape(report.torch or '?')}{peak}"
    )
    table = Table(header_style="bold", box=None, pad_edge=False)
    for col, just in (
        ("backend", "left"),
        ("fwd ms", "right"),
        ("TFLOP/s", "right"),
        ("% peak", "right"),
        ("fwd+bwd ms", "right"),
        ("TFLOP/s", "right"),
        ("% peak", "right"),
        ("peak MiB", "right"),
        ("vs math", "right"),
        ("note", "left"),
    ):
        table.add_column(col, justify=just, overflow="fold")  # type: ignore[arg-type]
    for r in report.rows:
        if r.status == "not-installed" and not verbose:
            continue
        name = backend_short(r.backend) + (f" {r.version}" if r.version else "")
        if r.status != "ok":
            style = "yellow" if r.status in ("skip", "not-installed") else "red"
            table.add_row(
                escape(name),
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                f"[{style}]{r.status}[/] {escape(r.reason or '')}",
            )
            continue

        def star(on: bool, text: str) -> str:
            return f"[bold green]{text} ★[/]" if on else text

        table.add_row(
            escape(name),
            star(r.fastest_fwd, _ms(r.fwd_ms)),
            _tf(r.fwd_tflops),
            _pct(r.fwd_pct_peak),
            star(r.fastest_fwd_bwd, _ms(r.fwd_bwd_ms)),
            _tf(r.fwd_bwd_tflops),
            _pct(r.fwd_bwd_pct_peak),
            "" if r.peak_mib is None else f"{r.peak_mib:.0f}",
            _x(r.speedup_fwd_bwd if r.speedup_fwd_bwd is not None else r.speedup_fwd),
            "",
        )
    console.print(table)
    console.print(f"[dim]★ fastest. TFLOP/s: {escape(FLOP_FORMULA)}[/]")
    if report.recommendation:
        console.print(f"[bold]→[/] {escape(report.recommendation)}")
    for n in report.notes:
        console.print(f"[dim]note: {escape(n)}[/]")
    imp = f"torch import {report.torch_import_s:.1f} s; " if report.torch_import_s is not None else ""
    console.print(
        f"bench took {report.elapsed_s:.1f} s ({imp}{report.runs} runner process{'es' if report.runs != 1 else ''})"
    )


def _tf(x: float | None) -> str:
    if x is None:
        return ""
    return f"{x:.0f}" if x >= 10 else f"{x:.2f}"


def _pct(x: float | None) -> str:
    return "" if x is None else f"{x:.0f}%"
