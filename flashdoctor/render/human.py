"""Human report: a compact ✓ / ! / ✗ list, then one line per variant. -v adds evidence."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from flashdoctor.knowledge import variant_info
from flashdoctor.model.findings import CheckReport, Status
from flashdoctor.render.console import (
    VERDICT_STYLE,
    Cell,
    Col,
    fits,
    print_finding,
    print_markup,
    print_table,
)

VERDICT_COLS = (
    Col("variant", "left"),
    Col("verdict", "left"),
    Col("why / next step", "left", wrap=1, floor=20, overflow=True),
)


def _machine_line(report: CheckReport) -> str:
    env = report.environment

    def k(key: str, text: str | None) -> str:
        return "?" if not env.known(key) else (text or "none")

    parts = [
        f"Python {k('python', env.python)} ({k('platform', env.platform)})",
        f"torch {k('torch', env.torch)}",
        f"driver {k('driver', env.driver)}",
        f"nvcc {k('nvcc', env.nvcc)}",
    ]
    return " · ".join(parts)


def _dtype_line(report: CheckReport, subject: str | None) -> str | None:
    """Which variants run on this GPU, in which dtypes (the report's ``gpu_support``): shown under each
    GPU line, also when every check passes."""
    for group in report.extra.get("gpu_support", ()):
        if group.get("subject") != subject:
            continue
        parts = []
        for variant, fit in group["variants"].items():
            if not fit["dtypes"]:
                continue
            dtypes = ", ".join(d.replace("-forward", " (forward only)") for d in fit["dtypes"])
            parts.append(f"{variant} {dtypes}" + (" (experimental)" if fit["fit"] == "experimental" else ""))
        return " · ".join(parts) if parts else "no FlashAttention variant (use PyTorch SDPA)"
    return None


def _arch_line(report: CheckReport, verbose: bool) -> str | None:
    """torch's CUDA arch list: read from libtorch_cuda.so's fat binary only when the output needs it
    (-v, --json, --save-target, --deep: probe_environment(torch_archs=...)), so the human `check` says
    that it was not read rather than spend the walk on every run."""
    env = report.environment
    if report.source == "probe" and env.torch_cuda and not env.known("torch_arch_list"):
        return "torch arch list: not read (use -v)"
    if verbose and env.torch_cuda and env.known("torch_arch_list"):
        archs = env.torch_arch_list
        return "torch arch list: " + (" ".join(archs) if archs else "unreadable")
    return None


def render_check(report: CheckReport, console: Console, verbose: bool = False) -> None:
    src = "" if report.source == "probe" else f" [dim]({escape(report.source)})[/]"
    print_markup(console, f"[bold]flashdoctor check[/]{src}: {escape(_machine_line(report))}", hang=2)
    arch = _arch_line(report, verbose)
    if arch:
        print_markup(console, f"  [dim]{escape(arch)}[/]", hang=4)
    for f in report.findings:
        if f.status is Status.SKIP and not verbose:
            continue
        evidence = f.evidence if verbose and f.evidence else None
        fix = f.fix if f.fix and f.status in (Status.WARN, Status.FAIL) else None
        runs = _dtype_line(report, f.subject) if f.code == "gpu-found" else None
        print_finding(
            console,
            f.status.value,
            f.message,
            f.code,
            scope=f.variant,
            details=(("runs", runs), ("evidence", evidence), ("fix", fix)),
        )

    def rows(full: bool) -> list[list[Cell]]:
        out: list[list[Cell]] = []
        for v, vv in report.verdicts.items():
            why = "; ".join(vv.reasons[:3] if not verbose else vv.reasons)
            if vv.fix and vv.verdict.value != "ready":
                why += f" → {vv.fix}"
            label = f"{v} ({variant_info(v).dist})" if full else v
            out.append([(label, ""), (vv.verdict.value, VERDICT_STYLE[vv.verdict.value]), (why, "")])
        return out

    # The package names go when they would leave the reasons too little room (the findings name them).
    table = rows(full=True)
    if not fits(VERDICT_COLS, table, console.width):
        table = rows(full=False)
    console.print()
    print_table(console, VERDICT_COLS, table)
    index = report.extra.get("index")
    if verbose and index:
        days = index.get("age_days")
        age = (
            "" if days is None else f", {days} days old" if days >= 0 else f", dated {-days} days after today"
        )
        print_markup(
            console,
            f"[dim]wheel index: {escape(str(index['source']))}, data of {escape(str(index.get('date')))}"
            f"{age} ({escape(str(index['path']))})[/]",
            hang=2,
        )
    if verbose and report.environment.notes:
        console.print("[dim]probe notes:[/]")
        for n in report.environment.notes:
            print_markup(console, f"  [dim]- {escape(n)}[/]", hang=4)
