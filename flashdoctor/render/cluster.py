"""Human cluster report: one table row per rank, then drift, then what failed."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flashdoctor.decide.cluster import ClusterReport, RankStatus
from flashdoctor.knowledge.variants import VARIANTS
from flashdoctor.model.findings import Status
from flashdoctor.render.console import STATUS_MARK, VERDICT_STYLE

RANK_STYLE = {
    RankStatus.OK: "green",
    RankStatus.FAILED: "bold red",
    RankStatus.ERROR: "bold red",
    RankStatus.UNFINISHED: "bold red",
    RankStatus.MISSING: "bold red",
}


def _env(entry_check: dict | None, key: str) -> str:  # type: ignore[type-arg]
    env = (entry_check or {}).get("environment") or {}
    if key not in env:
        return "?"
    return str(env[key]) if env[key] is not None else "none"


def render_cluster(
    report: ClusterReport, console: Console, strict: bool = False, verbose: bool = False
) -> None:
    hosts = report.hosts
    console.print(
        f"[bold]flashdoctor cluster check[/]: {report.world_size} rank{'s' if report.world_size != 1 else ''} "
        f"on {len(hosts)} host{'s' if len(hosts) != 1 else ''} "
        f"[dim]({escape(report.launcher)}, rendezvous {escape(report.rendezvous)}, results over {report.transport})[/]"
    )
    drift_cells = {(r, d.field) for d in report.drift for r in (d.odd if d.majority is not None else ())}
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for col in ("rank", "host", "GPU", "python", "torch", *VARIANTS):
        table.add_column(col, overflow="fold")
    if report.smoke:
        table.add_column("smoke")
    table.add_column("result")
    for e in report.ranks:
        check = e.result.check if e.result else None

        def cell(text: str, field: str, rank: int = e.rank) -> str:
            return f"[bold yellow]{escape(text)}[/]" if (rank, field) in drift_cells else escape(text)

        verdicts = e.verdicts
        row = [
            str(e.rank),
            escape(e.host or "?"),
            cell(e.gpu or "-", "gpu"),
            cell(_env(check, "python") if check else "-", "python"),
            cell(_env(check, "torch") if check else "-", "torch"),
        ]
        for v in VARIANTS:
            vv = verdicts.get(v)
            row.append(f"[{VERDICT_STYLE.get(vv, 'white')}]{vv}[/]" if vv else "-")
        if report.smoke:
            sp = e.result.smoke_passed if e.result else None
            ran = e.result is not None and e.result.smoke is not None
            row.append(
                "[green]passed[/]"
                if sp
                else "[bold red]failed[/]"
                if sp is False
                else "[dim]skipped[/]"
                if ran
                else "-"
            )
        status = e.status.value
        if e.status is RankStatus.FAILED and e.result is not None:
            status += f" (exit {e.result.exit_code})"
        row.append(f"[{RANK_STYLE[e.status]}]{status}[/]")
        table.add_row(*row)
    console.print()
    console.print(table)
    if report.drift:
        console.print()
        console.print(
            "[bold]drift[/] (fields that differ across ranks; the odd ones out are highlighted above):"
        )
        for d in report.drift:
            mark, style = STATUS_MARK[d.status.value]
            if d.majority is not None:
                odd = ", ".join(f"rank {r} {d.value_of(r)}" for r in d.odd)
                text = f"{d.label}: {d.majority} on {len(d.groups[0][1])} of {sum(len(g[1]) for g in d.groups)}; odd one(s) out: {odd}"
            else:
                text = f"{d.label}: no majority — " + "; ".join(
                    f"{v} on rank{'s' if len(rs) > 1 else ''} {','.join(map(str, rs))}" for v, rs in d.groups
                )
            console.print(f" [{style}]{mark}[/] {escape(text)}")
            if verbose:
                console.print(f"     [dim]why it matters: {escape(d.why)}[/]")
    problems = [
        f for f in report.findings if f.status in (Status.FAIL, Status.WARN) and f.code != "cluster-drift"
    ]
    if problems:
        console.print()
        for f in problems:
            mark, style = STATUS_MARK[f.status.value]
            console.print(f" [{style}]{mark}[/] {escape(f.message)} [dim]\\[{f.code}][/]")
            if verbose and f.evidence:
                console.print(f"     [dim]evidence:[/] {escape(f.evidence)}")
            if f.fix:
                console.print(f"     [dim]fix:[/] {escape(f.fix)}")
    if verbose:
        for e in report.ranks:
            if e.result is None or e.result.check is None:
                continue
            console.print()
            console.print(f"[bold]{escape(e.label())}[/] [dim]{escape(e.result.source or '')}[/]")
            for f in e.result.check.get("findings") or []:
                if f.get("status") == "skip":
                    continue
                mark, style = STATUS_MARK.get(str(f.get("status")), ("?", "white"))
                console.print(
                    f"   [{style}]{mark}[/] {escape(str(f.get('message')))} [dim]\\[{escape(str(f.get('code')))}][/]"
                )
    code = report.exit_code(strict=strict)
    counts = report.counts()
    parts = [f"{n} {s}" for s, n in counts.items() if n and s != "ok"]
    if report.drift:
        parts.append(f"{len(report.drift)} field{'s' if len(report.drift) != 1 else ''} drift")
    console.print()
    if code == 0:
        extra = f" ({', '.join(parts)})" if parts else ""
        console.print(f"[bold green]cluster: passed[/]{escape(extra)} — exit 0 on every rank")
    else:
        console.print(
            f"[bold red]cluster: FAILED[/] — {escape(', '.join(parts) or 'warnings under --strict')}; exit {code} on every rank"
        )
