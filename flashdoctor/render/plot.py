"""``bench --plot FILE.png``: the bench as a bar chart. matplotlib is the optional ``plot`` extra."""

from __future__ import annotations

import os
from typing import Any

from flashdoctor.decide.smoke.bench import BenchReport
from flashdoctor.errors import UsageError, own_pip_install


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed; never opens a window
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError(
            "--plot needs matplotlib, which is not installed",
            hint=own_pip_install("matplotlib"),
        ) from None
    return plt


def check_plot_path(path: str) -> None:
    """Before the bench runs: matplotlib is installed and ``path`` ends in an image format it writes
    (it infers the format from the extension: another one raised ValueError, a missing one made it
    write PATH.png while the output named PATH). Raises UsageError otherwise."""
    _pyplot()
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    ext = os.path.splitext(path)[1][1:].lower()
    if ext not in formats:
        what = f".{ext} is not an image format matplotlib writes" if ext else "the file name has no extension"
        raise UsageError(
            f"--plot {path}: {what}", hint=f"end it in one of: {', '.join('.' + f for f in sorted(formats))}"
        )


def plot_bench(report: BenchReport, path: str) -> None:
    """Two panels, forward and forward+backward: time per backend, TFLOP/s on each bar, the fastest
    in green. Raises UsageError when matplotlib is missing or the file cannot be written."""
    plt = _pyplot()
    rows = [r for r in report.rows if r.status == "ok"]
    if not rows:
        raise UsageError("--plot: no backend ran, nothing to draw")
    panels = [("forward", "fwd_ms", "fwd_tflops", "fastest_fwd")]
    if any(r.fwd_bwd_ms for r in rows):
        panels.append(("forward + backward", "fwd_bwd_ms", "fwd_bwd_tflops", "fastest_fwd_bwd"))
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 0.6 * len(rows) + 1.8), squeeze=False)
    for ax, (title, ms_key, tf_key, fast_key) in zip(axes[0], panels):
        shown = [r for r in rows if getattr(r, ms_key)]
        names = [r.title + (f" {r.version}" if r.version else "") for r in shown]
        times = [getattr(r, ms_key) for r in shown]
        colors = ["#2a9d3f" if getattr(r, fast_key) else "#7f8c9a" for r in shown]
        bars = ax.barh(names, times, color=colors)
        ax.invert_yaxis()
        ax.set_xlabel("ms (lower is better)")
        ax.set_title(title)
        for bar, r in zip(bars, shown):
            tf = getattr(r, tf_key)
            if tf is not None:
                ax.text(
                    bar.get_width(),
                    bar.get_y() + bar.get_height() / 2,
                    f" {tf:.0f} TFLOP/s" if tf >= 10 else f" {tf:.2f} TFLOP/s",
                    va="center",
                    fontsize=8,
                )
        ax.set_xlim(0, max(times) * 1.35)
    where = report.gpu.name if report.gpu is not None else "?"
    fig.suptitle(f"flashdoctor bench: {report.case.label} on {where} (torch {report.torch})", fontsize=10)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=120)
    except OSError as exc:
        raise UsageError(f"--plot: cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
