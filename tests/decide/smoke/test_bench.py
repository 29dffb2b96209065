"""The bench's arithmetic and decisions, from literal events: FLOPs, TFLOP/s, fastest, recommendation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flashdoctor.decide.smoke.bench import attention_flops, judge_bench, recommend, tflops, validate_shape
from flashdoctor.decide.smoke.events import RunInfo
from flashdoctor.knowledge.schemas import schema_validator
from flashdoctor.model.cases import Case

LONG8 = Case("bench", 8, 4096, 16, 128)  # the B8 N4096 H16 D128 bf16
SEED = Case("bench", 32, 196, 16, 64)


# The figures (one H100, torch 2.11, forward): the FLOP formula must turn the times into the
# quoted TFLOP/s. Causal figures from facts.md (the minimal FA2 build measured beside SDPA).
@pytest.mark.parametrize(
    ("case", "ms", "quoted"),
    [
        (LONG8, 1.70, 649),  # SDPA cuDNN
        (LONG8, 3.12, 353),  # SDPA flash
        (LONG8, 6.1, 180),  # SDPA efficient
        (LONG8, 30.9, 36),  # SDPA math
        (LONG8, 2.85, 385),  # FA2 minimal build
        (Case("bench", 8, 4096, 16, 128, causal=True), 1.59, 345),
        (Case("bench", 8, 4096, 16, 128, causal=True), 1.74, 316),
        (Case("bench", 8, 4096, 16, 128, causal=True), 0.92, 598),
    ],
)
def test_flop_formula_reproduces_the_quoted_figures(case: Case, ms: float, quoted: float) -> None:
    assert tflops(case, "fwd", ms) == pytest.approx(quoted, rel=0.02)


def test_flop_formula_parts() -> None:
    fwd = attention_flops(LONG8)
    assert fwd == 4 * 8 * 16 * 4096**2 * 128
    assert attention_flops(LONG8, "bwd") == 2.5 * fwd
    assert attention_flops(LONG8, "fwd_bwd") == 3.5 * fwd
    assert attention_flops(Case("b", 8, 4096, 16, 128, causal=True)) == fwd / 2
    assert attention_flops(Case("b", 8, 4096, 16, 128, kv_heads=2)) == fwd  # GQA: same query-side work
    assert attention_flops(Case("v", 2, 100, 4, 64, varlen=(100, 50))) == 4 * (100**2 + 50**2) * 4 * 64
    assert tflops(LONG8, "fwd", None) is None and tflops(LONG8, "fwd", 0.0) is None


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ((32, 196, 16, None, 64, "bf16"), None),
        ((8, 4096, 32, 8, 128, "fp16"), None),
        ((0, 196, 16, None, 64, "bf16"), "--batch must be a positive integer, not 0"),
        (
            (32, 196, 16, 3, 64, "bf16"),
            "--heads 16 must be a multiple of --kv-heads 3 (grouped-query attention)",
        ),
        ((32, 196, 16, 0, 64, "bf16"), "--kv-heads must be a positive integer, not 0"),
        ((32, 196, 16, None, 64, "int8"), "--dtype must be bf16, fp16 or fp32, not int8"),
        # A million tokens of a 70B model's attention (GQA 64/8, D128): 21 GB of inputs, run as asked...
        ((1, 2**20, 64, 8, 128, "bf16"), None),
        # ... and so is one whose q, k and v fill a 192 GiB GPU (4M tokens × 64 heads × 3 × 128 × 2 bytes),
        ((1, 2**22, 64, None, 128, "bf16"), None),
        # and one of exactly 4 TiB of inputs (2**32 tokens × (2 + 2 × 1) heads × 128 × 2 bytes)
        ((1, 2**32, 2, 1, 128, "bf16"), None),
        (
            (2, 2**32, 2, 1, 128, "bf16"),
            "--batch 2 --seqlen 4294967296 --heads 2 --kv-heads 1 --head-dim 128 --dtype bf16: the inputs "
            "alone (q, k and v) would take 8 TiB; no GPU holds more than 4 TiB",
        ),
        # Before: torch refused such shapes inside the runner, a skip row and exit 0
        (
            (1, 2**40, 16, None, 64, "bf16"),
            "--batch 1 --seqlen 1099511627776 --heads 16 --head-dim 64 --dtype bf16: the inputs alone (q, k "
            "and v) would take 6,144 TiB; no GPU holds more than 4 TiB",
        ),
        (
            (2**20, 2**20, 2**20, 1, 2**20, "fp32"),
            "--batch 1048576 --seqlen 1048576 --heads 1048576 --kv-heads 1 --head-dim 1048576 --dtype fp32: "
            "the inputs alone (q, k and v) would take 4,398,054,899,712 TiB; no GPU holds more than 4 TiB",
        ),
    ],
)
def test_validate_shape(args: tuple[Any, ...], problem: str | None) -> None:
    assert validate_shape(*args) == problem


def events_h100(
    timings: dict[str, tuple[float, float] | str], variants: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    ev: list[dict[str, Any]] = [
        {"event": "torch", "version": "2.11.0+cu130", "import_s": 6.4},
    ]
    for name in ("fa2", "fa3", "fa4"):
        ev.append({"event": "variant", "backend": name, **(variants or {}).get(name, {"installed": False})})
    ev.append(
        {"event": "gpu", "gpu": 0, "name": "NVIDIA H100 80GB HBM3", "capability": "9.0", "memory_gb": 79.1}
    )
    ev.append({"event": "matmul_peak", "gpu": 0, "n": 8192, "dtype": "bf16", "ms": 1.39, "tflops": 790.0})
    for b, t in timings.items():
        k = {"gpu": 0, "backend": b, "case": "bench"}
        if isinstance(t, str):
            ev.append({"event": "timing", **k, "error": t, "warnings": []})
        else:
            ev.append(
                {
                    "event": "timing",
                    **k,
                    "fwd_ms": t[0],
                    "fwd_bwd_ms": t[1],
                    "peak_mib": 1024.0,
                    "fwd_peak_mib": 512.0,
                }
            )
    ev.append({"event": "done"})
    return ev


FA2 = {"installed": True, "version": "2.8.3", "import_ok": True, "module": "flash_attn"}
FACTS = {  # facts.md, H100: forward / forward+backward ms at B8 N4096 H16 D128 bf16
    "sdpa-math": (30.9, 61.4),
    "sdpa-flash": (3.12, 12.6),
    "sdpa-cudnn": (1.70, 7.2),
    "sdpa-efficient": (6.1, 25.9),
}


def test_bench_rows_fastest_and_recommendation() -> None:
    r = judge_bench(
        events_h100({**FACTS, "fa2": (2.85, 11.0)}, {"fa2": FA2}), RunInfo("python3", "cuda"), case=LONG8
    )
    rows = {x.backend: x for x in r.rows}
    cudnn = rows["sdpa-cudnn"]
    assert cudnn.fastest_fwd and cudnn.fastest_fwd_bwd
    assert sum(x.fastest_fwd for x in r.rows) == 1
    assert cudnn.fwd_tflops == pytest.approx(646.8, rel=1e-3)
    assert cudnn.fwd_pct_peak == pytest.approx(100 * 646.8 / 790, rel=1e-3)
    assert cudnn.fwd_bwd_tflops == pytest.approx(3.5 * 1.0995e12 / 7.2e-3 / 1e12, rel=1e-3)
    assert cudnn.speedup_fwd == pytest.approx(30.9 / 1.70)
    assert rows["fa3"].status == "not-installed" and rows["fa4"].status == "not-installed"
    assert r.recommendation == (
        "On this NVIDIA H100 80GB HBM3 at B8 N4096 H16 D128 bf16, use SDPA cuDNN: 1.7 ms forward, 7.2 ms forward+backward, "
        "1.53× faster (forward+backward) than FA2 flash_attn — F.scaled_dot_product_attention under "
        "torch.nn.attention.sdpa_kernel(SDPBackend.CUDNN_ATTENTION)."
    )
    assert r.exit_code() == 0 and r.matmul_peak_tflops == 790.0
    doc = json.loads(json.dumps(r.to_json()))
    schema_validator("bench-report.schema.json").validate(doc)
    assert doc["flops"]["fwd"] == 4 * 8 * 16 * 4096**2 * 128


def test_inputs_that_cannot_be_created_are_the_reason_of_every_row() -> None:
    """A shape too large for the device (or for torch: --batch 99999999999999999999) failed in the
    runner's input set-up; every row said "skip: not run", with the error nowhere in the output."""
    ev = events_h100({}, {"fa2": FA2})
    oom = "OutOfMemoryError: CUDA out of memory. Tried to allocate 2048.00 GiB"
    ev.insert(-1, {"event": "reference", "gpu": 0, "case": "bench", "ok": False, "error": oom})
    r = judge_bench(ev, RunInfo("p", "cuda"), case=Case("bench", 100_000, 65_536, 16, 128))
    rows = {x.backend: x for x in r.rows}
    for b in ("sdpa-math", "sdpa-flash", "sdpa-cudnn", "sdpa-efficient", "fa2"):
        assert rows[b].status == "skip", b
        assert rows[b].reason == f"the inputs of this shape could not be created: {oom}", b
    assert r.recommendation is None and r.exit_code() == 0  # no backend is at fault
    schema_validator("bench-report.schema.json").validate(json.loads(json.dumps(r.to_json())))


def test_a_runner_killed_while_creating_the_inputs_is_the_reason_of_every_row() -> None:
    """The OOM killer's SIGKILL (or a segfault) while the runner made the inputs of a large shape: the
    orchestrator records a crash of "reference", and every row said "skip: not run", the signal nowhere."""
    ev = events_h100({}, {"fa2": FA2})[:-1]  # no "done": the runner died
    ev.append(
        {"event": "case_start", "gpu": 0, "backend": "reference", "case": "bench", "phase": "reference"}
    )
    ev.append({"event": "run", "attempt": 0, "returncode": -9, "signal": "SIGKILL", "timed_out": False})
    ev.append(
        {
            "event": "crash",
            "gpu": 0,
            "backend": "reference",
            "case": "bench",
            "phase": "reference",
            "returncode": -9,
            "rc": -9,
            "signal": "SIGKILL",
            "stderr_tail": "",
        }
    )
    r = judge_bench(ev, RunInfo("p", "cuda"), case=Case("bench", 64, 65_536, 64, 256))
    for row in r.rows:
        if row.status != "not-installed":
            assert (row.status, row.reason) == (
                "skip",
                "the inputs of this shape could not be created: the interpreter died (SIGKILL)",
            ), row.backend
    assert r.exit_code() == 0  # no backend is at fault
    schema_validator("bench-report.schema.json").validate(json.loads(json.dumps(r.to_json())))


def test_recommendation_names_a_different_inference_winner() -> None:
    r = judge_bench(
        events_h100({"sdpa-math": (1.0, 2.0), "sdpa-flash": (0.05, 0.30), "sdpa-cudnn": (0.036, 0.40)}),
        RunInfo("p", "cuda"),
        case=SEED,
    )
    assert r.fastest("fwd_bwd").backend == "sdpa-flash"  # type: ignore[union-attr]
    assert r.fastest("fwd").backend == "sdpa-cudnn"  # type: ignore[union-attr]
    assert r.recommendation is not None
    assert r.recommendation.startswith(
        "On this NVIDIA H100 80GB HBM3 at B32 N196 H16 D64 bf16, use SDPA flash"
    )
    assert r.recommendation.endswith("Forward only (inference): SDPA cuDNN (0.036 ms).")


def test_skips_and_errors_in_the_bench() -> None:
    fp32 = Case("bench", 2, 256, 4, 64, dtype="fp32")
    ev = events_h100(
        {
            "sdpa-math": (1.0, 2.0),
            "sdpa-cudnn": "RuntimeError: No available kernel. Aborting execution.",
            "fa2": "RuntimeError: FlashAttention only support fp16 and bf16 data type",
            "fa3": "RuntimeError: CUDA error: an illegal memory access was encountered",
        },
        {
            "fa2": FA2,
            "fa3": {
                "installed": True,
                "version": "3.0.0",
                "import_ok": True,
                "module": "flash_attn_interface",
            },
        },
    )
    r = judge_bench(ev, RunInfo("p", "cuda", ("sdpa-math", "sdpa-cudnn", "fa2", "fa3")), case=fp32)
    rows = {x.backend: x for x in r.rows}
    assert (rows["sdpa-cudnn"].status, rows["fa2"].status, rows["fa3"].status) == ("skip", "skip", "error")
    assert rows["fa2"].reason == "takes fp16/bf16 only, not fp32"
    assert r.exit_code() == 1  # an installed variant raising on a shape it should take


def test_bench_skipped_without_gpu() -> None:
    r = judge_bench(
        [
            {"event": "torch", "version": "2.13.0+cpu"},
            {"event": "no_gpu", "reason": "torch 2.13.0+cpu is a CPU-only build"},
        ],
        RunInfo("p", "cuda"),
        case=SEED,
    )
    assert r.skipped_reason == "no CUDA GPU visible: torch 2.13.0+cpu is a CPU-only build"
    assert r.rows == () and r.recommendation is None and r.exit_code() == 0


def test_recommend_needs_a_result() -> None:
    assert recommend([], None, SEED) is None
