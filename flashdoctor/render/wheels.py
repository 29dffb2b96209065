"""Human output for the wheel commands: the install plan, the candidate list, the coverage table.

A machine that no wheel fits (no torch: every one of thousands of wheels misses for the same reason)
gets the rejections summarised, one line per reason with its count, and only the nearest misses listed;
``wheels --all`` still lists every wheel.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from flashdoctor.decide.wheels.coverage import Cell as CoverageCell
from flashdoctor.decide.wheels.origin import evidence_reason, wheel_origin
from flashdoctor.decide.wheels.select import Selection, reason_text
from flashdoctor.knowledge import variant_info
from flashdoctor.knowledge.codes import summary
from flashdoctor.model.plan import Plan, Rejection
from flashdoctor.render.console import Cell, Col, print_markup, print_table

if TYPE_CHECKING:
    from flashdoctor.actions.wheel_index import RefreshResult

ACTION_STYLE = {"wheel": "cyan", "build": "yellow", "none": "bold green", "unsupported": "red"}
NEAREST = 5  # nearest misses listed without --all (the install plan's too)
PER_KIND = 2  # at most this many of them with the same reasons


# -- the rejections, summarised ---------------------------------------------------------------------------
def rejection_summary(sel: Selection) -> list[tuple[str, int, str]]:
    """(code, wheels, sentence) per rejection reason, most wheels first: the sentence every such wheel
    shares ("torch is not installed; ..."), else the code's meaning from the registry."""
    counts: Counter[str] = Counter()
    first: dict[str, str | None] = {}
    for e, codes in sel.unsorted_misses:
        for c in codes:
            counts[c] += 1
            if first.get(c, "") is None:
                continue  # already known to differ between wheels
            text = reason_text(c, e, sel.target, sel.spec).removeprefix(f"{c}: ")
            first[c] = text if first.setdefault(c, text) == text else None
    order = sorted(counts, key=lambda c: (-counts[c], c))
    return [(c, counts[c], first.get(c) or summary("rejection", c)) for c in order]


def candidates_to_json(sel: Selection, limit: int | None, source: str, index: str) -> dict[str, Any]:
    """`wheels --json` (schema wheels.schema.json, before the envelope)."""
    return {
        "variant": sel.variant,
        "source": source,
        "index": index,
        "total": len(sel.fits) + len(sel.misses),
        "fits": [e.ref().to_json() for e in (sel.fits if limit is None else sel.fits[:limit])],
        "rejected": [r.to_json() for r in sel.rejections(limit, None if limit is None else 3)],
        "rejected_by_reason": [
            {"code": c, "wheels": n, "reason": text} for c, n, text in rejection_summary(sel)
        ],
    }


def coverage_to_json(cov: Mapping[str, Sequence[CoverageCell]], variant: str) -> dict[str, Any]:
    """`wheels --coverage --json` (schema coverage.schema.json, before the envelope)."""
    return {"variant": variant, "platforms": {p: [c.to_json() for c in cells] for p, cells in cov.items()}}


def _print_miss(console: Console, label: str, source: str | None, reasons: Sequence[str]) -> None:
    where = f" [dim]({escape(source)})[/]" if source else ""
    print_markup(console, f" [red]✗[/] {escape(label)}{where}", hang=3)
    for r in reasons:
        print_markup(console, f"     [dim]-[/] {escape(r)}", hang=7)


# -- install --dry-run ----------------------------------------------------------------------------------
def render_plan(
    plan: Plan,
    console: Console,
    source: str = "probe",
    dry_run: bool = True,
    verbose: bool = False,
    restored: Sequence[str] = (),
) -> None:
    """The install plan; ``dry_run`` False when `install` stopped at a plan with no wheel to install.
    The wheel's source is one plain line; the index's evidence for it only with ``verbose`` (-v).
    ``restored``: what `install` put back of an interrupted install before it planned (then the plan
    ends with that, not "nothing was changed")."""
    info = variant_info(plan.variant)
    src = "" if source == "probe" else f" [dim]({escape(source)})[/]"
    style = ACTION_STYLE[plan.action]
    command = f"flashdoctor install --{plan.variant}" + (" --dry-run" if dry_run else "")
    print_markup(console, f"[bold]{command}[/]{src}: {info.title} ({info.dist})", hang=2)
    print_markup(
        console,
        f"plan: [{style}]{plan.action}[/]" + (f"  {escape(plan.wheel.filename)}" if plan.wheel else ""),
        hang=6,
    )
    hidden: set[str] = set()
    if plan.wheel:
        w = plan.wheel
        origin = plan.origin or wheel_origin(w)
        digest = escape(w.sha256) if w.sha256 else f"[dim]{escape(origin.digest_text)}[/]"
        print_markup(console, f"  source: {escape(origin.text)}", hang=10)
        print_markup(console, f"  url:    {escape(w.url)}", hang=10)
        print_markup(console, f"  sha256: {digest}", hang=10)
        if origin.evidence is not None:
            if verbose:
                print_markup(console, f"  [dim]evidence: {escape(origin.evidence)}[/]", hang=12)
            hidden.add(evidence_reason(w.source, origin.evidence))
        if origin.digest == "none":
            hidden.add(f"sha256: {origin.digest_text}")
    for r in plan.reasons:
        if r not in hidden:
            print_markup(console, f"  - {escape(r)}", hang=4)
    if plan.blockers:
        print_markup(console, f"  blockers: {escape(', '.join(plan.blockers))}", hang=4)
    if plan.alternatives:
        console.print("[dim]alternatives:[/]")
        for w in plan.alternatives:
            print_markup(console, f"  {escape(w.filename)} [dim]({escape(w.source)})[/]", hang=4)
    if plan.rejected:
        shown: list[Rejection] = list(plan.rejected[:NEAREST])
        more = len(plan.rejected) - len(shown)
        console.print(f"[dim]nearest misses ({len(shown)} of {len(plan.rejected)}):[/]")
        for rej in shown:
            _print_miss(console, rej.filename, None, rej.reasons)
        if more:
            print_markup(
                console,
                f"  [dim]{more} more in --json; flashdoctor wheels --{plan.variant} summarises every "
                "rejection[/]",
                hang=2,
            )
    if restored:
        print_markup(console, f"{escape('; '.join(restored))}; nothing else was changed", hang=2)
    else:
        console.print("[dim]nothing was changed" + (" (dry run)" if dry_run else "") + "[/]")


# -- wheels -----------------------------------------------------------------------------------------------
SUMMARY_COLS = (
    Col("wheels"),
    Col("reason", "left"),
    Col("", "left", wrap=1, floor=20, overflow=True),
)


def render_candidates(sel: Selection, console: Console, limit: int | None, source: str = "probe") -> None:
    """``limit``: fitting wheels shown (None: --all, every wheel and every miss with its reasons)."""
    info = variant_info(sel.variant)
    src = "" if source == "probe" else f" [dim]({escape(source)})[/]"
    total = len(sel.fits) + len(sel.misses)
    print_markup(
        console,
        f"[bold]flashdoctor wheels --{sel.variant}[/]{src}: {total} {info.dist} wheels in the index, "
        f"{len(sel.fits)} fit this machine",
        hang=2,
    )
    fits = sel.fits if limit is None else sel.fits[:limit]
    for i, e in enumerate(fits):
        mark = "[green]✓[/]" if i else "[bold green]★[/]"
        print_markup(console, f" {mark} {escape(e.label)} [dim]({escape(e.source)})[/]", hang=3)
    if len(fits) < len(sel.fits):
        print_markup(
            console, f"   [dim]… {len(sel.fits) - len(fits)} more that fit (--all lists them)[/]", hang=3
        )
    if sel.misses:
        if sel.fits:
            console.print()
        print_markup(
            console,
            f"[bold]{len(sel.misses)} rejected[/], by reason (a wheel can have several):",
            hang=2,
        )
        rows: list[list[Cell]] = [
            [(str(n), ""), (code, "red"), (text, "")] for code, n, text in rejection_summary(sel)
        ]
        print_table(console, SUMMARY_COLS, rows, header=False, indent=2)
        misses = sel.nearest_misses(
            None if limit is None else min(limit, NEAREST), None if limit is None else PER_KIND
        )
        title = (
            "every rejected wheel"
            if limit is None
            else f"the nearest misses ({len(misses)} of {len(sel.misses)})"
        )
        console.print(f"[bold]{title}[/]:")
        for e, codes in misses:
            reasons = [reason_text(c, e, sel.target, sel.spec) for c in codes]
            _print_miss(console, e.label, e.source, reasons)
    hidden = (0 if limit is None else max(0, len(sel.fits) - limit)) + (
        0 if limit is None else len(sel.misses) - len(sel.nearest_misses(min(limit, NEAREST), PER_KIND))
    )
    if hidden:
        print_markup(console, f"[dim]{hidden} more not shown (--all shows every wheel)[/]", hang=2)
    if sel.best is not None:
        print_markup(console, f"★ = what `flashdoctor install --{sel.variant}` would choose", hang=4)


def render_coverage(cov: Mapping[str, Sequence[CoverageCell]], console: Console, variant: str) -> None:
    print_markup(
        console,
        f"[bold]flashdoctor wheels --{variant} --coverage[/]: per platform, torch × CUDA (rows) × Python "
        "(columns). [green]O[/] official wheel · [yellow]c[/] community only · [dim]·[/] none",
        hang=2,
    )
    for platform, cells in cov.items():
        pythons = sorted({c.python for c in cells}, key=lambda s: tuple(map(int, s.split("."))))
        cols = (Col("torch", "left"), Col("CUDA", "left"), *(Col(py, "center") for py in pythons))
        by_row: dict[tuple[str, str], dict[str, CoverageCell]] = {}
        for c in cells:
            by_row.setdefault((c.torch, c.cuda), {})[c.python] = c
        rows: list[list[Cell]] = []
        for (torch, cuda), by_py in by_row.items():
            row: list[Cell] = [(torch, ""), (cuda, "")]
            for py in pythons:
                cell = by_py.get(py)
                if cell is None:
                    row.append(("", ""))
                elif cell.has_official:
                    row.append(("O", "green"))
                else:
                    row.append(("c", "yellow") if cell.has_any else ("·", "dim"))
            rows.append(row)
        console.print(f"[bold]{escape(platform)}[/]")
        print_table(console, cols, rows, indent=1)
        n_off = sum(c.has_official for c in cells)
        n_any = sum(c.has_any for c in cells)
        print_markup(
            console,
            f"[dim]{escape(platform)}: {n_off}/{len(cells)} cells with an official wheel, {n_any} with any[/]",
            hang=2,
        )


# -- wheels --refresh ---------------------------------------------------------------------------------------
def render_refresh(result: RefreshResult, console: Console) -> None:
    """What a refresh read per source, the new index's date and size, and which index later runs use."""
    print_markup(
        console,
        f"[bold]flashdoctor wheels --refresh[/]: read {len(result.sources)} source(s) live",
        hang=2,
    )
    for name in result.sources:
        if name in result.unlisted:
            print_markup(
                console,
                f" [yellow]![/] {escape(name)}: listed no wheel file; its {result.unlisted[name]} entries of the "
                "index it was refreshed from are kept (an emptied or broken listing does not erase them)",
                hang=5,
            )
            continue
        records = [i for i in result.inputs if name in (i.get("sources") or ())]
        total = sum(int(i.get("entries") or 0) for i in records)
        read = str(records[0].get("name")) if len(records) == 1 else f"{len(records)} listings"
        print_markup(
            console,
            f" [green]✓[/] {escape(name)}: {total} wheel file(s) listed [dim]({escape(read)})[/]",
            hang=5,
        )
    print_markup(
        console,
        f"index of {escape(result.generated)}: {result.entries} wheels, {result.with_sha256} with a sha256, "
        f"written to {escape(str(result.path))}",
        hang=2,
    )
    counts = " · ".join(f"{escape(s)} {n}" for s, n in result.by_source.items())
    print_markup(console, f"  [dim]by source: {counts}[/]", hang=4)
    if result.carried_from:
        print_markup(
            console,
            f"  [dim]kept from {escape(result.carried_from)}: the sources not read, and the digests and "
            "build facts the publishers do not give[/]",
            hang=4,
        )
    if result.in_use is not None:
        used = result.in_use.path == result.path
        style = "green" if used else "yellow"
        print_markup(console, f"[{style}]in use from now on:[/] {escape(result.in_use.describe())}", hang=2)
