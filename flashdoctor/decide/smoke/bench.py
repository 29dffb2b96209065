"""The bench: every available backend on one user shape, timed, in TFLOP/s and % of the measured peak.

Pure functions of the runner's events (``bench`` mode), like the smoke's judge. The FLOP count is the
convention of FlashAttention's own benchmarks, so figures compare with theirs (README "Bench").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flashdoctor import __version__
from flashdoctor.decide.smoke.classify import classify_error, crash_reason
from flashdoctor.decide.smoke.events import RunInfo, parse_events
from flashdoctor.decide.smoke.judge import backend_infos
from flashdoctor.model.cases import DTYPES, FALLBACK, Case, backend_info, backend_kind
from flashdoctor.model.fields import FieldsJson
from flashdoctor.model.smoke import GpuInfo

BENCH_SCHEMA_ID = "flashdoctor/bench/1"

FLOP_FORMULA = (
    "forward = 4·B·H·N²·D (QKᵀ and PV: 2·N²·D each per head), halved when causal; "
    "backward = 2.5 × forward (S recomputed, dV, dP, dQ, dK: 5 matmuls); forward+backward = 3.5 × forward. "
    "H counts query heads (GQA does not change it); varlen sums N² over the sequences. "
    "The convention of FlashAttention's benchmarks/benchmark_flash_attention.py."
)


def attention_flops(case: Case, mode: str = "fwd") -> float:
    """Nominal FLOPs of one attention call (see FLOP_FORMULA). ``mode``: fwd, bwd or fwd_bwd."""
    if case.varlen is not None:
        n2 = sum(n * n for n in case.varlen)
    else:
        n2 = case.batch * case.seqlen * case.seqlen
    fwd = 4.0 * n2 * case.heads * case.head_dim
    if case.causal:
        fwd /= 2.0
    factor = {"fwd": 1.0, "bwd": 2.5, "fwd_bwd": 3.5}[mode]
    return fwd * factor


def tflops(case: Case, mode: str, ms: float | None) -> float | None:
    if not ms or ms <= 0:
        return None
    return attention_flops(case, mode) / (ms * 1e-3) / 1e12


# The largest shape bench runs: its inputs alone (q, k, v) within 4 TiB. No GPU holds that (the largest
# have 288 GB; 1 TB is announced), so nothing a GPU could run is refused, and a shape beyond it (--seqlen
# 2**40) is a usage error instead of a row that torch refused inside the runner.
TiB = 1 << 40
MAX_INPUT_BYTES = 4 * TiB
_ELEMENT_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}


def validate_shape(
    batch: int, seqlen: int, heads: int, kv_heads: int | None, head_dim: int, dtype: str
) -> str | None:
    """None when the shape can be run; otherwise a sentence saying what is wrong (a usage error)."""
    for name, val in (("--batch", batch), ("--seqlen", seqlen), ("--heads", heads), ("--head-dim", head_dim)):
        if val < 1:
            return f"{name} must be a positive integer, not {val}"
    if kv_heads is not None:
        if kv_heads < 1:
            return f"--kv-heads must be a positive integer, not {kv_heads}"
        if heads % kv_heads:
            return f"--heads {heads} must be a multiple of --kv-heads {kv_heads} (grouped-query attention)"
    if dtype not in DTYPES:
        return f"--dtype must be bf16, fp16 or fp32, not {dtype}"
    kv = heads if kv_heads is None else kv_heads
    size = batch * seqlen * (heads + 2 * kv) * head_dim * _ELEMENT_BYTES[dtype]
    if size > MAX_INPUT_BYTES:
        kv_flag = "" if kv_heads is None else f" --kv-heads {kv_heads}"
        return (
            f"--batch {batch} --seqlen {seqlen} --heads {heads}{kv_flag} --head-dim {head_dim} --dtype {dtype}: "
            f"the inputs alone (q, k and v) would take {size / TiB:,.0f} TiB; "
            f"no GPU holds more than {MAX_INPUT_BYTES // TiB} TiB"
        )
    return None


@dataclass(frozen=True)
class BenchRow(FieldsJson):
    backend: str
    title: str
    status: str  # ok | skip | error | crash | timeout | not-installed | import-error
    reason: str | None = None
    version: str | None = None
    fwd_ms: float | None = None
    fwd_bwd_ms: float | None = None
    fwd_tflops: float | None = None
    fwd_bwd_tflops: float | None = None
    fwd_pct_peak: float | None = None
    fwd_bwd_pct_peak: float | None = None
    fwd_peak_mib: float | None = None
    peak_mib: float | None = None
    speedup_fwd: float | None = None  # vs the fallback (SDPA math)
    speedup_fwd_bwd: float | None = None
    fastest_fwd: bool = False
    fastest_fwd_bwd: bool = False


@dataclass(frozen=True)
class BenchReport:
    python: str
    device: str
    torch: str | None
    case: Case
    gpu: GpuInfo | None
    matmul_peak_tflops: float | None
    rows: tuple[BenchRow, ...]
    recommendation: str | None
    skipped_reason: str | None
    elapsed_s: float
    torch_import_s: float | None = None
    runs: int = 1
    notes: tuple[str, ...] = ()
    # False when a backend beat the measured matmul peak: the measurement was disturbed and the
    # "% peak" figures are withheld (None: no peak measured).
    matmul_peak_reliable: bool | None = None
    matmul_peak: dict[str, Any] | None = None  # how it was measured: best/median/slowest batch, method

    def exit_code(self) -> int:
        """1 when an installed variant crashed, timed out, errored or does not import; else 0."""
        bad = {"crash", "timeout", "error", "import-error"}
        return 1 if any(r.status in bad and backend_kind(r.backend) == "variant" for r in self.rows) else 0

    def fastest(self, mode: str = "fwd_bwd") -> BenchRow | None:
        for r in self.rows:
            if r.fastest_fwd_bwd if mode == "fwd_bwd" else r.fastest_fwd:
                return r
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": BENCH_SCHEMA_ID,
            "flashdoctor": __version__,
            "status": "skipped" if self.skipped_reason else ("failed" if self.exit_code() else "ok"),
            "exit_code": self.exit_code(),
            "skipped_reason": self.skipped_reason,
            "python": self.python,
            "device": self.device,
            "torch": self.torch,
            "gpu": None if self.gpu is None else self.gpu.to_json(),
            "shape": self.case.to_json() | {"label": self.case.label},
            "flops": {
                "formula": FLOP_FORMULA,
                "fwd": attention_flops(self.case, "fwd"),
                "fwd_bwd": attention_flops(self.case, "fwd_bwd"),
            },
            "matmul_peak_tflops": self.matmul_peak_tflops,
            "matmul_peak_reliable": self.matmul_peak_reliable,
            "matmul_peak": self.matmul_peak,
            "rows": [r.to_json() for r in self.rows],
            "recommendation": self.recommendation,
            "elapsed_s": round(self.elapsed_s, 3),
            "torch_import_s": self.torch_import_s,
            "runs": self.runs,
            "notes": list(self.notes),
        }


def _pct(tf: float | None, peak: float | None) -> float | None:
    return None if tf is None or not peak else 100.0 * tf / peak


def recommend(rows: Sequence[BenchRow], gpu: GpuInfo | None, case: Case) -> str | None:
    """One line: the backend to use at this shape, measured, with the margin over the runner-up."""
    ok = [r for r in rows if r.status == "ok" and r.fwd_ms]
    if not ok:
        return None
    both = all(r.fwd_bwd_ms for r in ok)

    def key(r: BenchRow) -> float:
        return float((r.fwd_bwd_ms if both else r.fwd_ms) or 0.0)

    ranked = sorted(ok, key=key)
    best = ranked[0]
    where = f"this {gpu.name}" if gpu is not None and gpu.index is not None else "this CPU"
    mode = "forward+backward" if both else "forward"
    times = f"{best.fwd_ms:.3g} ms forward" + (
        f", {best.fwd_bwd_ms:.3g} ms forward+backward" if best.fwd_bwd_ms else ""
    )
    line = f"On {where} at {case.label}, use {best.title}: {times}"
    if len(ranked) > 1:
        ratio = key(ranked[1]) / key(best)
        line += f", {ratio:.2f}× faster ({mode}) than {ranked[1].title}"
    usage = backend_info(best.backend).get("usage")
    if usage:
        line += f" — {usage}"
    fwd_best = min(ok, key=lambda r: r.fwd_ms or float("inf"))
    if both and fwd_best.backend != best.backend:
        line += f". Forward only (inference): {fwd_best.title} ({fwd_best.fwd_ms:.3g} ms)"
    return line + "."


def judge_bench(events: Sequence[dict[str, Any]], run: RunInfo, *, case: Case) -> BenchReport:
    log = parse_events(events)
    backends = run.backends
    infos = backend_infos(log, run)
    not_run = log.not_run(run.python)
    skipped = None if not_run is None else not_run[1]
    if skipped is None and log.runner_failed is not None and not log.gpus:
        skipped = f"the bench runner died before it could run ({log.runner_failed.get('why')})"
    gpu = next(iter(log.gpus.values()), None)
    peak_ev = log.matmul.get(gpu.index if gpu else None) if gpu else None
    peak = float(peak_ev["tflops"]) if peak_ev and peak_ev.get("tflops") else None
    rows: list[BenchRow] = []
    if gpu is not None:
        base = log.timings.get((gpu.index, FALLBACK, case.name), {})
        for b in backends:
            info = infos[b]
            title = info.title
            if info.kind == "variant":
                if info.installed is False or info.installed is None:
                    rows.append(BenchRow(b, title, "not-installed", "not installed"))
                    continue
                if not info.import_ok:
                    rows.append(
                        BenchRow(b, title, "import-error", str(info.import_error)[:300], info.version)
                    )
                    continue
            key = (gpu.index, b, case.name)
            t = log.timings.get(key)
            chk = log.checks.get(key)
            crashes = log.crashes.get((gpu.index, b)) or []
            crash = crashes[-1] if crashes else None
            if t is None or t.get("error"):
                if chk is not None and (chk.get("not_applicable") or chk.get("not_compiled")):
                    rows.append(BenchRow(b, title, "skip", str(chk.get("error")), info.version))
                elif t is not None:
                    c = classify_error(str(t["error"]), b, case, gpu, t.get("warnings") or ())
                    status = "skip" if c.status.value == "skip" else "error"
                    rows.append(BenchRow(b, title, status, c.reason, info.version))
                elif crash is not None:
                    rows.append(BenchRow(b, title, crash["event"], crash_reason(crash), info.version))
                elif (failed := log.ref_failed.get((gpu.index, case.name))) is not None:
                    # the runner could not even make the inputs (out of memory, a size torch refuses)
                    first = (failed.strip().splitlines() or [""])[0][:200]
                    reason = f"the inputs of this shape could not be created: {first}"
                    rows.append(BenchRow(b, title, "skip", reason, info.version))
                elif ref_crashes := log.crashes.get((gpu.index, "reference")):
                    # ... or died making them (the OOM killer's SIGKILL, a segfault, a hang)
                    reason = f"the inputs of this shape could not be created: {crash_reason(ref_crashes[-1])}"
                    rows.append(BenchRow(b, title, "skip", reason, info.version))
                else:
                    rows.append(BenchRow(b, title, "skip", "not run", info.version))
                continue
            fwd, fb = t.get("fwd_ms"), t.get("fwd_bwd_ms")
            tf_f, tf_b = tflops(case, "fwd", fwd), tflops(case, "fwd_bwd", fb)
            rows.append(
                BenchRow(
                    b,
                    title,
                    "ok",
                    None,
                    info.version,
                    fwd_ms=fwd,
                    fwd_bwd_ms=fb,
                    fwd_tflops=tf_f,
                    fwd_bwd_tflops=tf_b,
                    fwd_pct_peak=_pct(tf_f, peak),
                    fwd_bwd_pct_peak=_pct(tf_b, peak),
                    fwd_peak_mib=t.get("fwd_peak_mib"),
                    peak_mib=t.get("peak_mib"),
                    speedup_fwd=(base["fwd_ms"] / fwd) if base.get("fwd_ms") and fwd else None,
                    speedup_fwd_bwd=(base["fwd_bwd_ms"] / fb) if base.get("fwd_bwd_ms") and fb else None,
                )
            )
        rows = _mark_fastest(rows)
    reliable = None if peak is None else True
    over = [r for r in rows if max(r.fwd_pct_peak or 0.0, r.fwd_bwd_pct_peak or 0.0) > 100.0]
    if peak is not None and over:
        # Attention cannot beat a dense matmul of the same dtype on the same GPU: a "% peak" above 100
        # means the peak measurement was disturbed (clocks, another process, a busy CPU), not that the
        # kernel is faster than the hardware. Withhold every % rather than print 248%.
        reliable = False
        best = max(over, key=lambda r: max(r.fwd_tflops or 0.0, r.fwd_bwd_tflops or 0.0))
        top = max(best.fwd_tflops or 0.0, best.fwd_bwd_tflops or 0.0)
        log.notes.append(
            f"% peak not shown: {best.title} reached {top:.0f} TFLOP/s, above the measured bf16 matmul "
            f"peak of {peak:.0f} TFLOP/s, so that measurement was disturbed (another process on the GPU, "
            "clocks not ramped up) and is not the GPU's peak; run the bench again on an idle GPU"
        )
        rows = [dataclasses.replace(r, fwd_pct_peak=None, fwd_bwd_pct_peak=None) for r in rows]
    detail = None
    if peak_ev is not None and peak is not None:
        keys = (
            "n",
            "dtype",
            "tflops",
            "median_tflops",
            "min_tflops",
            "repeats",
            "inner",
            "warmup_s",
            "method",
        )
        detail = {k: peak_ev.get(k) for k in keys if k in peak_ev}
    return BenchReport(
        python=run.python,
        device=run.device,
        torch=None if log.torch is None else log.torch.get("version"),
        case=case,
        gpu=gpu,
        matmul_peak_tflops=peak,
        rows=tuple(rows),
        recommendation=recommend(rows, gpu, case),
        skipped_reason=skipped,
        elapsed_s=run.elapsed_s,
        torch_import_s=None if log.torch is None else log.torch.get("import_s"),
        runs=max(log.runs, 1),
        notes=tuple(dict.fromkeys(log.notes + ([str(log.fatal)] if log.fatal else []))),
        matmul_peak_reliable=reliable,
        matmul_peak=detail,
    )


def _mark_fastest(rows: list[BenchRow]) -> list[BenchRow]:
    ok = [r for r in rows if r.status == "ok"]
    f = min((r for r in ok if r.fwd_ms), key=lambda r: r.fwd_ms or 0.0, default=None)
    b = min((r for r in ok if r.fwd_bwd_ms), key=lambda r: r.fwd_bwd_ms or 0.0, default=None)
    return [
        dataclasses.replace(r, fastest_fwd=r is f, fastest_fwd_bwd=r is b) if r.status == "ok" else r
        for r in rows
    ]
