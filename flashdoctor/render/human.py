"""Human report: a compact ✓ / ! / ✗ list, then one line per variant. -v adds evidence."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flashdoctor.knowledge import variant_info
from flashdoctor.model.findings import CheckReport, Status
from flashdoctor.render.console import VERDICT_STYLE, print_finding


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


def render_check(report: CheckReport, console: Console, verbose: bool = False) -> None:
    src = "" if report.source == "probe" else f" [dim]({escape(report.source)})[/]"
    console.print(f"[bold]flashdoctor check[/]{src}: {escape(_machine_line(report))}")
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
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("variant")
    table.add_column("verdict")
    table.add_column("why / next step", overflow="fold")
    for v, vv in report.verdicts.items():
        style = VERDICT_STYLE[vv.verdict.value]
        why = "; ".join(vv.reasons[:3] if not verbose else vv.reasons)
        if vv.fix and vv.verdict.value != "ready":
            why += f" → {vv.fix}"
        table.add_row(f"{v} ({variant_info(v).dist})", f"[{style}]{escape(vv.verdict.value)}[/]", escape(why))
    console.print()
    console.print(table)
    if verbose and report.environment.notes:
        console.print("[dim]probe notes:[/]")
        for n in report.environment.notes:
            console.print(f"  [dim]- {escape(n)}[/]")
