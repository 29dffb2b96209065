"""Human output for the wheel commands: the install plan, the candidate list, the coverage table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flashdoctor.decide.wheels.coverage import Cell
from flashdoctor.decide.wheels.select import Selection, reason_text
from flashdoctor.knowledge import variant_info
from flashdoctor.model.plan import Plan

ACTION_STYLE = {"wheel": "cyan", "build": "yellow", "none": "bold green", "unsupported": "red"}


def render_plan(plan: Plan, console: Console, source: str = "probe", dry_run: bool = True) -> None:
    """The install plan; ``dry_run`` False when `install` stopped at a plan with no wheel to install."""
    info = variant_info(plan.variant)
    src = "" if source == "probe" else f" [dim]({escape(source)})[/]"
    style = ACTION_STYLE[plan.action]
    command = f"flashdoctor install --{plan.variant}" + (" --dry-run" if dry_run else "")
    console.print(f"[bold]{command}[/]{src}: {info.title} ({info.dist})")
    console.print(
        f"plan: [{style}]{plan.action}[/]" + (f"  {escape(plan.wheel.filename)}" if plan.wheel else "")
    )
    if plan.wheel:
        console.print(f"  url:    {escape(plan.wheel.url)}")
        console.print(f"  sha256: {escape(plan.wheel.sha256) if plan.wheel.sha256 else '[dim]unknown[/]'}")
        console.print(f"  source: {escape(plan.wheel.source)}, version {escape(plan.wheel.version)}")
    for r in plan.reasons:
        console.print(f"  - {escape(r)}")
    if plan.blockers:
        console.print(f"  blockers: {escape(', '.join(plan.blockers))}")
    if plan.alternatives:
        console.print("[dim]alternatives:[/]")
        for w in plan.alternatives:
            console.print(f"  {escape(w.filename)} [dim]({escape(w.source)})[/]")
    if plan.rejected:
        console.print(f"[dim]nearest misses ({len(plan.rejected)}):[/]")
        for rej in plan.rejected:
            console.print(f"  {escape(rej.filename)}")
            for reason in rej.reasons:
                console.print(f"    [dim]✗ {escape(reason)}[/]")
    console.print("[dim]nothing was changed" + (" (dry run)" if dry_run else "") + "[/]")


def candidates_to_json(sel: Selection, limit: int | None, source: str, index: str) -> dict[str, Any]:
    """`wheels --json` (schema wheels.schema.json, before the envelope)."""
    return {
        "variant": sel.variant,
        "source": source,
        "index": index,
        "total": len(sel.fits) + len(sel.misses),
        "fits": [e.ref().to_json() for e in (sel.fits if limit is None else sel.fits[:limit])],
        "rejected": [r.to_json() for r in sel.rejections(limit, None if limit is None else 3)],
    }


def coverage_to_json(cov: Mapping[str, Sequence[Cell]], variant: str) -> dict[str, Any]:
    """`wheels --coverage --json` (schema coverage.schema.json, before the envelope)."""
    return {"variant": variant, "platforms": {p: [c.to_json() for c in cells] for p, cells in cov.items()}}


def render_candidates(sel: Selection, console: Console, limit: int | None, source: str = "probe") -> None:
    info = variant_info(sel.variant)
    src = "" if source == "probe" else f" [dim]({escape(source)})[/]"
    total = len(sel.fits) + len(sel.misses)
    console.print(
        f"[bold]flashdoctor wheels --{sel.variant}[/]{src}: {total} {info.dist} wheels in the index, "
        f"{len(sel.fits)} fit this machine"
    )
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("")
    table.add_column("wheel", overflow="fold")
    table.add_column("source")
    table.add_column("why not", overflow="fold")
    for i, e in enumerate(sel.fits):
        if limit is not None and i >= limit:
            break
        table.add_row("[green]✓[/]" if i else "[bold green]★[/]", escape(e.label), escape(e.source), "")
    misses = sel.nearest_misses(limit, None if limit is None else 3)
    for e, codes in misses:
        why = "; ".join(reason_text(c, e, sel.target, sel.spec) for c in codes)
        table.add_row("[red]✗[/]", escape(e.label), escape(e.source), escape(why))
    console.print(table)
    hidden = (0 if limit is None else max(0, len(sel.fits) - limit)) + len(sel.misses) - len(misses)
    if hidden:
        console.print(
            f"[dim]{hidden} more not shown: the nearest misses come first, at most 3 alike (--all shows every wheel)[/]"
        )
    if sel.best is not None:
        console.print(f"★ = what `flashdoctor install --{sel.variant}` would choose")


def render_coverage(cov: Mapping[str, Sequence[Cell]], console: Console, variant: str) -> None:
    console.print(
        f"[bold]flashdoctor wheels --{variant} --coverage[/]: per platform, torch × CUDA (rows) × Python "
        "(columns). [green]O[/] official wheel · [yellow]c[/] community only · [dim]·[/] none"
    )
    for platform, cells in cov.items():
        pythons = sorted({c.python for c in cells}, key=lambda s: tuple(map(int, s.split("."))))
        table = Table(
            title=escape(platform), title_justify="left", show_header=True, header_style="bold", box=None
        )
        table.add_column("torch")
        table.add_column("CUDA")
        for py in pythons:
            table.add_column(escape(py), justify="center")
        rows: dict[tuple[str, str], dict[str, Cell]] = {}
        for c in cells:
            rows.setdefault((c.torch, c.cuda), {})[c.python] = c
        for (torch, cuda), by_py in rows.items():
            marks = []
            for py in pythons:
                cell = by_py.get(py)
                if cell is None:
                    marks.append("")
                elif cell.has_official:
                    marks.append("[green]O[/]")
                else:
                    marks.append("[yellow]c[/]" if cell.has_any else "[dim]·[/]")
            table.add_row(escape(torch), escape(cuda), *marks)
        console.print(table)
        n_off = sum(c.has_official for c in cells)
        n_any = sum(c.has_any for c in cells)
        console.print(
            f"[dim]{escape(platform)}: {n_off}/{len(cells)} cells with an official wheel, {n_any} with any[/]"
        )
