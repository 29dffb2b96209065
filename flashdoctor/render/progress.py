"""Drawing a source build's progress events (flashdoctor.model.build.BuildProgress): a rich bar on a
terminal, plain ``[N/M]`` lines with an ETA otherwise (a log, a pipe, CI). The build emits the events;
only this module draws them. Unit names come from the build's output: control characters are made
visible (render.text.clean), as everywhere else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from flashdoctor.render.text import clean


def eta_seconds(done: int, total: int, elapsed: float) -> float | None:
    """Remaining time at the observed pace; None before the first step finished."""
    if done <= 0 or total <= 0 or elapsed <= 0:
        return None
    return max(0.0, elapsed / done * (total - done))


def _fmt(sec: float | None) -> str:
    if sec is None:
        return "?"
    sec = int(sec)
    return f"{sec // 60}:{sec % 60:02d}"


class LineProgress:
    """Plain lines, one per ninja step: ``[3/7]  42%  elapsed 1:05  eta 1:30  flash_fwd_...cu``."""

    def __init__(self, write: Callable[[str], Any]) -> None:
        self.write = write

    def started(self, total: int | None) -> None:
        pass

    def step(self, done: int, total: int, unit: str | None, elapsed: float) -> None:
        pct = 100 * done // total if total else 0
        eta = eta_seconds(done, total, elapsed)
        name = clean(unit or "")
        tail = f"  {name}" if name else ""
        self.write(f"[{done}/{total}] {pct:3d}%  elapsed {_fmt(elapsed)}  eta {_fmt(eta)}{tail}")

    def finished(self, ok: bool, elapsed: float) -> None:
        pass


class RichProgress:
    """A rich progress bar on a terminal; shown from ``started`` to ``finished``."""

    def __init__(self, console: Console, description: str) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[unit]}", style="dim", markup=False),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task(description, total=None, unit="", start=False)
        self.running = False

    def started(self, total: int | None) -> None:
        self.progress.update(self.task, total=total)
        self.progress.start_task(self.task)
        self.progress.start()
        self.running = True

    def step(self, done: int, total: int, unit: str | None, elapsed: float) -> None:
        self.progress.update(self.task, completed=done, total=total, unit=clean(unit or ""))

    def finished(self, ok: bool, elapsed: float) -> None:
        if self.running:
            self.progress.stop()
            self.running = False
