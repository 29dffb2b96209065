"""Human cluster report: one table row per rank, then drift, then what failed."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from flashdoctor.decide.cluster import ClusterReport, RankStatus
from flashdoctor.knowledge.variants import VARIANTS
from flashdoctor.model.findings import Status
from flashdoctor.render.console import VERDICT_STYLE, Cell, Col, print_finding, print_markup, print_table

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
    print_markup(
        console,
        f"[bold]flashdoctor cluster check[/]: {report.world_size} rank{'s' if report.world_size != 1 else ''} "
        f"on {len(hosts)} host{'s' if len(hosts) != 1 else ''} "
        f"[dim]({escape(report.launcher)}, rendezvous {escape(report.rendezvous)}, results over {report.transport})[/]",
    )
    drift_cells = {(r, d.field) for d in report.drift for r in (d.odd if d.majority is not None else ())}
    cols = [
        Col("rank", "left"),
        Col("host", "left", wrap=3, floor=8),
        Col("GPU", "left", wrap=2, floor=10),
        Col("python", "left"),
        Col("torch", "left"),
        *(Col(v, "left") for v in VARIANTS),
    ]
    if report.smoke:
        cols.append(Col("smoke", "left"))
    cols.append(Col("result", "left", wrap=1, floor=8))
    rows: list[list[Cell]] = []
    for e in report.ranks:
        check = e.result.check if e.result else None

        def cell(text: str, field: str, rank: int = e.rank) -> Cell:
            return (text, "bold yellow" if (rank, field) in drift_cells else "")

        verdicts = e.verdicts
        row: list[Cell] = [
            (str(e.rank), ""),
            (e.host or "?", ""),
            cell(e.gpu or "-", "gpu"),
            cell(_env(check, "python") if check else "-", "python"),
            cell(_env(check, "torch") if check else "-", "torch"),
        ]
        for v in VARIANTS:
            vv = verdicts.get(v)
            row.append((vv, VERDICT_STYLE.get(vv, "white")) if vv else ("-", ""))
        if report.smoke:
            sp = e.result.smoke_passed if e.result else None
            ran = e.result is not None and e.result.smoke is not None
            row.append(
                ("passed", "green")
                if sp
                else ("failed", "bold red")
                if sp is False
                else ("skipped", "dim")
                if ran
                else ("-", "")
            )
        status = e.status.value
        if e.status is RankStatus.FAILED and e.result is not None:
            status += f" (exit {e.result.exit_code})"
        row.append((status, RANK_STYLE[e.status]))
        rows.append(row)
    console.print()
    print_table(console, cols, rows)
    if report.drift:
        console.print()
        print_markup(
            console,
            "[bold]drift[/] (fields that differ across ranks; the odd ones out are highlighted above):",
        )
        for d in report.drift:
            if d.majority is not None:
                odd = ", ".join(f"rank {r} {d.value_of(r)}" for r in d.odd)
                text = f"{d.label}: {d.majority} on {len(d.groups[0][1])} of {sum(len(g[1]) for g in d.groups)}; odd one(s) out: {odd}"
            else:
                text = f"{d.label}: no majority — " + "; ".join(
                    f"{v} on rank{'s' if len(rs) > 1 else ''} {','.join(map(str, rs))}" for v, rs in d.groups
                )
            why = d.why if verbose else None
            print_finding(console, d.status.value, text, details=(("why it matters", why),))
    problems = [
        f for f in report.findings if f.status in (Status.FAIL, Status.WARN) and f.code != "cluster-drift"
    ]
    if problems:
        console.print()
        for f in problems:
            evidence = f.evidence if verbose and f.evidence else None
            print_finding(
                console, f.status.value, f.message, f.code, details=(("evidence", evidence), ("fix", f.fix))
            )
    if verbose:
        for e in report.ranks:
            if e.result is None or e.result.check is None:
                continue
            console.print()
            print_markup(console, f"[bold]{escape(e.label())}[/] [dim]{escape(e.result.source or '')}[/]")
            for f in e.result.check.get("findings") or []:
                if f.get("status") == "skip":
                    continue
                status = str(f.get("status"))
                print_finding(
                    console,
                    status if status in ("ok", "warn", "fail") else "skip",
                    "  " + str(f.get("message")),
                    str(f.get("code")),
                )
    code = report.exit_code(strict=strict)
    counts = report.counts()
    parts = [f"{n} {s}" for s, n in counts.items() if n and s != "ok"]
    if report.drift:
        parts.append(f"{len(report.drift)} field{'s' if len(report.drift) != 1 else ''} drift")
    console.print()
    if code == 0:
        extra = f" ({', '.join(parts)})" if parts else ""
        print_markup(console, f"[bold green]cluster: passed[/]{escape(extra)} — exit 0 on every rank")
    else:
        # No rank and no drift failed: a finding about the cluster did (two ranks on one GPU), else a warning.
        blamed = parts or sorted({f.code for f in report.findings if f.status is Status.FAIL})
        print_markup(
            console,
            f"[bold red]cluster: FAILED[/] — {escape(', '.join(blamed) or 'warnings under --strict')}; exit {code} on every rank",
        )
