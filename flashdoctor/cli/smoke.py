"""`flashdoctor smoke` and `flashdoctor bench` (flashdoctor/actions/smoke/)."""

from __future__ import annotations

import os
from typing import Any

import click

from flashdoctor.cli.options import (
    backend_option,
    document,
    examples,
    gpu_options,
    json_option,
    machine,
    output_option,
    python_option,
    timeout_option,
    verbose_option,
)
from flashdoctor.errors import UsageError
from flashdoctor.render.text import echo

_REPORT_FILE = "Also write the JSON report to FILE."


def _finish(report: Any, command: str, opts: dict[str, Any]) -> dict[str, Any]:
    """The report's document in its envelope; written to -o FILE when asked."""
    from flashdoctor.actions.inputs import write_json

    doc = document(report.to_json(), command=command, exit_code=report.exit_code())
    if opts["output"]:
        write_json(opts["output"], doc)
    return doc


@click.command(
    epilog=examples(
        "flashdoctor smoke                       # every installed variant and SDPA backend on this GPU",
        "flashdoctor smoke --variant fa2 --gpu 1 -v",
        "flashdoctor smoke --json -o smoke.json",
    )
)
@python_option
@gpu_options
@backend_option(
    "--variant",
    "variants",
    help="Only this backend (repeatable): fa2, fa3, fa4 or an SDPA backend. A variant named here must be installed.",
)
@json_option("Print the versioned JSON report.")
@output_option(_REPORT_FILE)
@timeout_option(300.0, "Limit for the whole test, in seconds.")
@verbose_option("Show every row and the evidence.")
def smoke(**opts: Any) -> int:
    """Run every installed FlashAttention variant and PyTorch's SDPA backends on this GPU, forward and
    backward, against an fp32 reference; prove the kernel ran and time it. Exit 1 on a failure."""
    from flashdoctor.actions.check import target_python
    from flashdoctor.actions.smoke import run_smoke

    report = run_smoke(
        target_python(machine(opts["python"], None, err=opts["as_json"])),
        os.environ,
        gpu=opts["gpu"],
        variants=opts["variants"] or None,
        device=opts["device"],
        timeout=opts["timeout"],
    )
    doc = _finish(report, "smoke", opts)
    if opts["as_json"]:
        from flashdoctor.render.json import emit

        emit(doc)
    else:
        from flashdoctor.render.console import make_console
        from flashdoctor.render.smoke import render_smoke

        render_smoke(report, make_console(), verbose=opts["verbose"])
    return report.exit_code()


@click.command(
    epilog=examples(
        "flashdoctor bench                                  # the default shape: ViT-L-like, bf16",
        "flashdoctor bench --seqlen 4096 --head-dim 128 --causal --kv-heads 4",
        "flashdoctor bench --backend fa2 --backend sdpa-flash --json -o bench.json --plot bench.png",
    )
)
@python_option
@gpu_options
@click.option("--batch", type=int, default=32, show_default=True, help="Batch size.")
@click.option(
    "--seqlen", type=int, default=196, show_default=True, help="Sequence length (queries and keys)."
)
@click.option("--heads", type=int, default=16, show_default=True, help="Query heads.")
@click.option("--kv-heads", type=int, default=None, help="Key/value heads for GQA/MQA  [default: --heads]")
@click.option("--head-dim", type=int, default=64, show_default=True, help="Head dimension.")
@click.option(
    "--dtype",
    type=click.Choice(["bf16", "fp16", "fp32"]),
    default="bf16",
    show_default=True,
    help="Element type.",
)
@click.option("--causal", is_flag=True, help="Causal (autoregressive) mask.")
@backend_option(
    "--backend", "backends", help="Only this backend (repeatable; SDPA math always runs as the baseline)."
)
@click.option(
    "--repeats",
    type=click.IntRange(min=1, max=1000),
    default=10,
    show_default=True,
    help="Timed batches; the median is reported.",
)
@click.option("--forward-only", is_flag=True, help="Skip the forward+backward timing.")
@json_option("Print the versioned JSON report.")
@output_option(_REPORT_FILE)
@click.option("--plot", metavar="FILE.png", help="Draw the comparison (needs matplotlib: the 'plot' extra).")
@timeout_option(600.0, "Limit for the whole benchmark, in seconds.")
@verbose_option("Also list backends that are not installed.")
def bench(**opts: Any) -> int:
    """Time every available attention backend at one shape: forward and forward+backward, TFLOP/s,
    % of the GPU's measured bf16 matmul peak, peak memory; the fastest is marked and recommended."""
    from flashdoctor.actions.check import target_python
    from flashdoctor.actions.smoke import Case, run_bench
    from flashdoctor.decide.smoke.bench import validate_shape

    shape = (opts["batch"], opts["seqlen"], opts["heads"], opts["kv_heads"], opts["head_dim"], opts["dtype"])
    problem = validate_shape(*shape)
    if problem:
        raise UsageError(problem)
    plot = opts["plot"]
    if plot:
        from flashdoctor.render.plot import check_plot_path

        check_plot_path(plot)  # before the bench: it takes minutes on a GPU
    batch, seqlen, heads, kv_heads, head_dim, dtype = shape
    case = Case(
        "bench", batch, seqlen, heads, head_dim, dtype=dtype, causal=opts["causal"], kv_heads=kv_heads
    )
    report = run_bench(
        target_python(machine(opts["python"], None, err=opts["as_json"])),
        os.environ,
        case,
        gpu=opts["gpu"],
        backends=opts["backends"] or None,
        device=opts["device"],
        timeout=opts["timeout"],
        repeats=opts["repeats"],
        backward=not opts["forward_only"],
    )
    doc = _finish(report, "bench", opts)
    if plot and not report.skipped_reason:
        from flashdoctor.render.plot import plot_bench

        plot_bench(report, plot)
    if opts["as_json"]:
        from flashdoctor.render.json import emit

        emit(doc)
    else:
        from flashdoctor.render.console import make_console
        from flashdoctor.render.smoke import render_bench

        render_bench(report, make_console(), verbose=opts["verbose"])
        if plot and not report.skipped_reason:
            echo(f"plot written to {plot}")
    return report.exit_code()
