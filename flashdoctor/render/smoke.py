"""Human output of the smoke test and the bench: tables, then the findings, then one summary line.

Tables are laid out here rather than by rich's own column collapse (which can cut words): every column
is as wide as its longest line, and when the console is too narrow only the prose columns (reasons,
backend labels) are re-wrapped, at word boundaries; kernel names are shortened to what the width
allows. Nothing is wrapped mid-word and no line ends in padding, at 80 columns as at 200.
"""

from __future__ import annotations

import textwrap

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from flashdoctor.decide.smoke.bench import FLOP_FORMULA, BenchReport
from flashdoctor.decide.smoke.classify import kernel_label, version_label
from flashdoctor.model.cases import FALLBACK, backend_short
from flashdoctor.model.findings import Status
from flashdoctor.model.smoke import CaseResult, CaseStatus, SmokeReport
from flashdoctor.render.console import GAP, Cell, Col, fit_widths, print_finding, print_table, say

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
LONGEST_WORD = 24  # a longer word in a reason is shortened ("…") so that it cannot force a column wide
REASON_CHARS = 72  # a table's reason is cut there (at a word); the findings hold the whole text


def _short_words(text: str, limit: int = LONGEST_WORD) -> str:
    return " ".join(w if len(w) <= limit else w[: limit - 1] + "…" for w in text.split(" "))


# -- cells ------------------------------------------------------------------------------------------
def _ms(x: float | None) -> str:
    if x is None:
        return ""
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def _err(x: float | None) -> str:
    if x is None:
        return ""
    if x == float("inf"):
        return "inf/nan"
    mant, exp = f"{x:.1e}".split("e")
    return f"{mant}e{int(exp)}"  # 2.3e-3, not 2.3e-03


def _x(x: float | None) -> str:
    return "" if x is None else f"{x:.1f}×"


def _note(r: CaseResult, limit: int) -> str:
    if r.status is CaseStatus.PASS and r.kernels:
        if r.kernel:
            return kernel_label(r.kernel, limit)
        return "not its own kernel: " + kernel_label(r.kernels[0], max(8, limit - 20))
    reason = _short_words(r.reason or "")
    # An exception's whole text is in the findings below: the table keeps its start.
    return reason if len(reason) <= REASON_CHARS else textwrap.shorten(reason, REASON_CHARS, placeholder=" …")


# -- smoke ------------------------------------------------------------------------------------------
SMOKE_COLS = (
    Col("case", "left"),
    Col("status", "left"),
    Col("out\nerr"),
    Col("grad\nerr"),
    Col("fwd\nms"),
    Col("fwd+bwd\nms"),
    Col(f"vs\n{backend_short(FALLBACK).split()[-1].lower()}"),
    Col("kernel / reason", "left", wrap=1, floor=16),
)


def render_smoke(report: SmokeReport, console: Console, verbose: bool = False) -> None:
    head = f"torch {report.torch or '?'} · {report.python}"
    console.print(f"[bold]flashdoctor smoke[/]: {escape(head)}", soft_wrap=True)
    if report.skipped:
        say(console, f" - smoke test skipped: {report.skipped_reason} (exit 0)")
        _render_findings(report, console, verbose, skip_codes=frozenset({"smoke-skipped"}))
        return
    ran = {r.case.name for r in report.results}
    say(console, "cases: " + "; ".join(f"{c.name} = {c.label}" for c in report.cases if c.name in ran), "dim")
    for gpu in report.gpus:
        console.print()
        console.print(Text(gpu.label, style="bold"), soft_wrap=True)
        _smoke_table(report, [r for r in report.results if r.gpu == gpu.index], console, verbose)
    tol = sorted({(r.case.dtype, r.tolerance.out, r.tolerance.grad) for r in report.results if r.tolerance})
    if tol:
        say(
            console,
            "errors: max|x - ref| / max|ref| against SDPA math in fp32; tolerance (out / grads): "
            + ", ".join(f"{d} {o:g} / {g:g}" for d, o, g in tol),
            "dim",
        )
    _render_findings(report, console, verbose)
    verdict = {"passed": "[bold green]passed[/]", "failed": "[bold red]failed[/]", "skipped": "skipped"}[
        report.status
    ]
    imp = f"torch import {report.torch_import_s:.1f} s; " if report.torch_import_s is not None else ""
    runs = f"{report.runs} runner process" + ("es" if report.runs != 1 else "")
    console.print(f"smoke {verdict} in {report.elapsed_s:.1f} s ({imp}{runs})", soft_wrap=True)
    parts = [
        f"{_phase_label(k)} {v:.1f} s"
        for k, v in report.phases.items()
        if k not in ("torch_import_s", "runner_s")
    ]
    if parts:
        say(console, "time: " + ", ".join(parts), "dim")


def _smoke_table(report: SmokeReport, rows: list[CaseResult], console: Console, verbose: bool) -> None:
    """One block per backend: a heading line (name, version, build profile), then its cases."""
    shown = [
        r for r in rows if verbose or not (r.status is CaseStatus.SKIP and r.category in QUIET_CATEGORIES)
    ]
    hidden = len(rows) - len(shown)
    cells: dict[int, list[Cell]] = {
        id(r): [
            (r.case.name, ""),
            (r.status.value, CASE_STYLE.get(r.status.value, "")),
            (_err(r.out_rel), ""),
            (_err(r.grad_rel), ""),
            (_ms(r.fwd_ms), ""),
            (_ms(r.fwd_bwd_ms), ""),
            (_x(r.speedup_fwd_bwd), ""),
        ]
        for r in shown
    }
    # What the other columns take decides how much of a kernel's name fits.
    used = sum(fit_widths(SMOKE_COLS[:-1], list(cells.values()), 10_000)) + GAP * (len(SMOKE_COLS) - 1)
    limit = max(16, min(70, console.width - used))
    for r in shown:
        cells[id(r)].append((_note(r, limit), "" if r.status is CaseStatus.PASS else "dim"))
    widths = fit_widths(SMOKE_COLS, list(cells.values()), console.width)
    first = True
    for name in dict.fromkeys(r.backend for r in shown):
        group = [r for r in shown if r.backend == name]
        info = report.backend(name)
        version = info.version if info else None
        label, profile = version_label(name, version)
        if profile:  # a minimal build: its public version and what it has (the full label with -v)
            label = version if verbose and version else label.split()[0]
        heading = f"{backend_short(name)} {label}".strip()
        console.print(
            Text(heading, style="bold") + Text(f" · {profile}" if profile else "", style="dim"),
            soft_wrap=True,
        )
        print_table(console, SMOKE_COLS, [cells[id(r)] for r in group], widths, header=first)
        first = False
    if hidden:
        say(
            console,
            f"  ({hidden} {'row' if hidden == 1 else 'rows'} of backends without a kernel for the input"
            " hidden; -v shows them)",
            "dim",
        )


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
        evidence = None
        if f.evidence and (verbose or f.status is Status.FAIL):
            evidence = "\n".join(f.evidence.strip().splitlines()[-6:])
        fix = f.fix if f.fix and f.status in (Status.WARN, Status.FAIL) else None
        print_finding(
            console, f.status.value, f.message, f.code, details=(("evidence", evidence), ("fix", fix))
        )


# -- bench ------------------------------------------------------------------------------------------
BENCH_COLS = (
    Col("backend", "left", wrap=1, floor=10),
    Col("fwd\nms"),
    Col("fwd\nTFLOP/s"),
    Col("fwd\n% peak"),
    Col("fwd+bwd\nms"),
    Col("fwd+bwd\nTFLOP/s"),
    Col("fwd+bwd\n% peak"),
    Col("peak\nMiB"),
    Col("vs\nmath"),
)


OTHER_COLS = (Col("", "left"), Col("", "left"), Col("", "left", wrap=1, floor=16, overflow=True))


def render_bench(report: BenchReport, console: Console, verbose: bool = False) -> None:
    case = report.case
    if report.skipped_reason:
        console.print(f"[bold]flashdoctor bench[/]: {escape(case.label)}", soft_wrap=True)
        say(console, f" - bench skipped: {report.skipped_reason} (exit 0)")
        return
    where = report.gpu.label if report.gpu else "?"
    peak = ""
    if report.matmul_peak_tflops:
        peak = f" · bf16 matmul peak {_tf(report.matmul_peak_tflops)} TFLOP/s (measured"
        peak += ", disturbed: not used)" if report.matmul_peak_reliable is False else ")"
    say(console, f"flashdoctor bench: {case.label} on {where} · torch {report.torch or '?'}{peak}", "bold")
    ok = [r for r in report.rows if r.status == "ok"]
    others = [r for r in report.rows if r.status != "ok" and (verbose or r.status != "not-installed")]
    profiles: dict[str, str] = {}
    rows = []
    for r in ok:
        label, profile = version_label(r.backend, r.version)
        if profile:
            profiles[f"{backend_short(r.backend)} {r.version}"] = profile
        star = "bold green"
        rows.append(
            [
                (f"{backend_short(r.backend)} {label}".strip(), ""),
                (_ms(r.fwd_ms) + (" ★" if r.fastest_fwd else ""), star if r.fastest_fwd else ""),
                (_tf(r.fwd_tflops), ""),
                (_pct(r.fwd_pct_peak), ""),
                (_ms(r.fwd_bwd_ms) + (" ★" if r.fastest_fwd_bwd else ""), star if r.fastest_fwd_bwd else ""),
                (_tf(r.fwd_bwd_tflops), ""),
                (_pct(r.fwd_bwd_pct_peak), ""),
                ("" if r.peak_mib is None else f"{r.peak_mib:.0f}", ""),
                (_x(r.speedup_fwd_bwd if r.speedup_fwd_bwd is not None else r.speedup_fwd), ""),
            ]
        )
    if rows:
        print_table(console, BENCH_COLS, rows)
    if others:
        other_rows: list[list[Cell]] = []
        for r in others:
            label, _ = version_label(r.backend, r.version)
            style = "yellow" if r.status in ("skip", "not-installed") else "red"
            other_rows.append(
                [
                    (f"{backend_short(r.backend)} {label}".rstrip(), ""),
                    (r.status, style),
                    (r.reason or "", ""),
                ]
            )
        print_table(console, OTHER_COLS, other_rows, header=False, indent=2)
    for name, profile in profiles.items():
        say(console, f"{name}: {profile}" if verbose else f"{name.split('+')[0]}: {profile}", "dim")
    say(console, f"★ fastest. TFLOP/s: {FLOP_FORMULA}", "dim")
    if report.recommendation:
        say(console, f"→ {report.recommendation}", hang=2)
    for n in report.notes:
        say(console, f"note: {n}", "dim", hang=6)
    imp = f"torch import {report.torch_import_s:.1f} s; " if report.torch_import_s is not None else ""
    console.print(
        f"bench took {report.elapsed_s:.1f} s ({imp}{report.runs} runner process{'es' if report.runs != 1 else ''})",
        soft_wrap=True,
    )


def _tf(x: float | None) -> str:
    if x is None:
        return ""
    return f"{x:.0f}" if x >= 10 else f"{x:.2f}"


def _pct(x: float | None) -> str:
    return "" if x is None else f"{x:.0f}%"
