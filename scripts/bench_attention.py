#!/usr/bin/env python3
"""The guide's benchmark, side by side in one run: nn.TransformerEncoder before and after
replace_with_flash_attention, against nn.MultiheadAttention and a naive attention.

Default shape (the guide's): batch 32, 196 tokens, embed 1024, 16 heads (head dim 64), bf16, 6 layers.
For every variant: forward time (eval, no grad), forward+backward time (train mode, dropout 0),
peak memory above the resident model, output and gradient error against an fp32 reference, and
the attention kernels the profiler saw. Then flash_attention() runs on every usable backend for
real (fp16/bf16, several head dims, GQA, causal, forward and backward) against an fp32 reference.

  python3 scripts/bench_attention.py --json bench_attention.json          # on the GPU machine
  python3 scripts/bench_attention.py --device cpu --quick --json out.json  # tests the script itself

Exit status: 0 when every correctness check passed, 1 otherwise (timings are reported, never judged).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
    import torch

import torch.nn.functional as F  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from flashdoctor import __version__  # noqa: E402
from flashdoctor.attention import (  # noqa: E402
    available_backends,
    backend_usage,
    flash_attention,
    replace_with_flash_attention,
    select_backend,
)
from flashdoctor.runtime import dispatch  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
# Substrings of kernel names that belong to attention, by family (profiler names, lower-cased).
# Each kernel counts for the first family that matches.
KERNEL_FAMILIES = (
    ("flash", ("flash",)),  # FA2/FA3/FA4 and torch's flash kernels; cuDNN's fused SDPA names say flash too
    ("cudnn", ("cudnn", "sdpa")),
    ("mem-efficient", ("cutlassf", "cutlassb", "efficient")),  # torch's fmha_cutlassF/B kernels
    ("fmha", ("fmha",)),  # other fused multi-head attention kernels (cuDNN/cuBLASLt naming)
    ("softmax", ("softmax",)),
)


def kernel_family(name: str) -> str | None:
    low = name.lower()
    return next((fam for fam, subs in KERNEL_FAMILIES if any(s in low for s in subs)), None)


# -- models ----------------------------------------------------------------------------------------
class NaiveAttention(nn.MultiheadAttention):
    """Explicit softmax(q·kᵀ/√d)·v, materialising the full score matrix: the "standard attention"
    of tutorials. Same parameters as nn.MultiheadAttention; self-attention without masks only."""

    def forward(  # type: ignore[override]
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = False,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, None]:
        if key_padding_mask is not None or attn_mask is not None or query is not key:
            raise NotImplementedError("the naive baseline is self-attention without masks")
        x = query if self.batch_first else query.transpose(0, 1)
        b, n, e = x.shape
        h, d = self.num_heads, self.head_dim
        q, k, v = (
            F.linear(x, self.in_proj_weight, self.in_proj_bias).view(b, n, 3, h, d).permute(2, 0, 3, 1, 4)
        )
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d))
        weights = F.dropout(scores.softmax(dim=-1), self.dropout, self.training)
        out = (weights @ v).transpose(1, 2).reshape(b, n, e)
        out = self.out_proj(out)
        return (out if self.batch_first else out.transpose(0, 1)), None


def make_naive(model: nn.TransformerEncoder) -> nn.TransformerEncoder:
    for layer in model.layers:
        old = layer.self_attn
        new = NaiveAttention(old.embed_dim, old.num_heads, batch_first=old.batch_first, device="meta")
        new.in_proj_weight, new.in_proj_bias, new.out_proj = (
            old.in_proj_weight,
            old.in_proj_bias,
            old.out_proj,
        )
        layer.self_attn = new
        layer.activation_relu_or_gelu = 0  # keep torch's fused layer from bypassing it in eval
    model.use_nested_tensor = False
    return model


def build_model(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> nn.TransformerEncoder:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(
        args.embed, args.heads, dim_feedforward=4 * args.embed, dropout=0.0, batch_first=True
    )
    model = nn.TransformerEncoder(layer, args.layers, enable_nested_tensor=False)
    return model.to(device=device, dtype=dtype)


# -- measuring -----------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_together(
    fns: list[Callable[[], object]], device: torch.device, warmup: int, iters: int
) -> list[list[float]]:
    """Milliseconds per call of each function, run in turn (A, B, C, A, B, C, ...) so that drift in
    the machine's speed falls on all of them alike: CUDA events on a GPU, perf_counter on a CPU."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    sync(device)
    out: list[list[float]] = [[] for _ in fns]
    for _ in range(iters):
        for fn, times in zip(fns, out):
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
    return out


def timed(fn: Callable[[], object], device: torch.device, warmup: int, iters: int) -> list[float]:
    """Milliseconds per call: CUDA events on a GPU, perf_counter on a CPU."""
    return timed_together([fn], device, warmup, iters)[0]


def peak_mib(fn: Callable[[], object], device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    sync(device)
    return (torch.cuda.max_memory_allocated(device) - base) / 2**20


def attention_kernels(fn: Callable[[], object], device: torch.device) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CUDA] if device.type == "cuda" else [ProfilerActivity.CPU]
    with profile(activities=activities) as prof:
        fn()
        sync(device)
    names: dict[str, int] = {}
    for evt in prof.events():
        is_kernel = device.type != "cuda" or str(getattr(evt, "device_type", "")).endswith("CUDA")
        if not is_kernel:
            continue
        name = evt.name
        low = name.lower()
        if device.type != "cuda" and not low.startswith("aten::"):
            continue
        if kernel_family(name) or "attention" in low:
            names[name] = names.get(name, 0) + 1
    families = sorted({fam for n in names if (fam := kernel_family(n))})
    return {"kernels": dict(sorted(names.items(), key=lambda kv: -kv[1])), "families": families}


def rel_err(x: Tensor, ref: Tensor) -> float:
    x, ref = x.detach().float(), ref.detach().float()
    return float((x - ref).norm() / ref.norm().clamp_min(1e-12))


def step(model: nn.Module, x: Tensor, grad_out: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Forward+backward; returns (output, input grad, first layer's in_proj_weight grad)."""
    model.zero_grad(set_to_none=True)
    xi = x.detach().clone().requires_grad_(True)
    out = model(xi)
    out.backward(grad_out)
    first = model.layers[0].self_attn.in_proj_weight.grad
    assert xi.grad is not None and first is not None
    return out.detach(), xi.grad.detach(), first.detach().clone()


# -- the model benchmark -----------------------------------------------------------------------------
def bench_models(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    base = build_model(args, device, dtype)
    x = torch.randn(args.batch, args.seq, args.embed, device=device, dtype=dtype)
    grad_out = torch.randn_like(x)
    reference = copy.deepcopy(base).float()
    ref_out, ref_dx, ref_dw = step(reference.train(), x.float(), grad_out.float())
    del reference

    variants: dict[str, nn.TransformerEncoder] = {
        "naive attention": make_naive(copy.deepcopy(base)),
        "nn.MultiheadAttention": base,
    }
    auto, names = replace_with_flash_attention(copy.deepcopy(base))
    variants["flashdoctor (auto)"] = auto  # type: ignore[assignment]
    # The same with torch's fused encoder-layer inference path kept (native_fast_path=True): eval without
    # grad runs torch's fused layer, not flashdoctor's kernel (scripts/bench_eval_path.py compares them).
    fused, _ = replace_with_flash_attention(copy.deepcopy(base), native_fast_path=True)
    variants["flashdoctor (fused eval)"] = fused  # type: ignore[assignment]
    usable = [
        s.name
        for s in available_backends(device)
        if s.usable and s.name != dispatch.FALLBACK and (args.backends is None or s.name in args.backends)
    ]
    if not args.quick:
        for name in usable:
            forced, _ = replace_with_flash_attention(copy.deepcopy(base), backend=name)
            variants[f"flashdoctor [{name}]"] = forced  # type: ignore[assignment]

    head_dim = args.embed // args.heads
    q = torch.empty(args.batch, args.seq, args.heads, head_dim, device=device, dtype=dtype)
    decision = select_backend(q, q, q)
    rows = []
    for label, model in variants.items():
        backend_usage(reset=True)
        model.eval()

        def forward(model: nn.Module = model) -> Tensor:
            with torch.no_grad():
                return model(x)  # type: ignore[no-any-return]

        fwd = timed(forward, device, args.warmup, args.iters)
        fwd_mem = peak_mib(forward, device)
        with torch.no_grad():
            eval_out = forward()
        model.train()
        train = lambda model=model: step(model, x, grad_out)  # noqa: E731
        fb = timed(train, device, args.warmup, args.iters)
        fb_mem = peak_mib(train, device)
        out, dx, dw = step(model, x, grad_out)
        kernels = attention_kernels(train, device)
        used = backend_usage(reset=True)
        rows.append(
            {
                "variant": label,
                "forward_ms": statistics.median(fwd),
                "forward_backward_ms": statistics.median(fb),
                "forward_ms_runs": fwd,
                "forward_backward_ms_runs": fb,
                "forward_peak_mib": fwd_mem,
                "forward_backward_peak_mib": fb_mem,
                "rel_err_out": rel_err(out, ref_out),
                "rel_err_eval_out": rel_err(eval_out, ref_out),
                "rel_err_input_grad": rel_err(dx, ref_dx),
                "rel_err_weight_grad": rel_err(dw, ref_dw),
                "backends_used": used,
                "attention_kernels": kernels,
            }
        )
        del model
    by = {r["variant"]: r for r in rows}
    mha = by["nn.MultiheadAttention"]
    naive = by["naive attention"]
    checks = []
    for r in rows:
        r["speedup_forward_vs_mha"] = mha["forward_ms"] / r["forward_ms"]
        r["speedup_forward_backward_vs_mha"] = mha["forward_backward_ms"] / r["forward_backward_ms"]
        r["speedup_forward_vs_naive"] = naive["forward_ms"] / r["forward_ms"]
        r["speedup_forward_backward_vs_naive"] = naive["forward_backward_ms"] / r["forward_backward_ms"]
        if not r["variant"].startswith("flashdoctor"):
            continue
        # Equal within tolerance: no further from the fp32 reference than nn.MultiheadAttention in
        # the same dtype is (twice its error, plus a floor for fp32 runs where both are ~1e-7).
        for key in ("rel_err_out", "rel_err_eval_out", "rel_err_input_grad", "rel_err_weight_grad"):
            limit = 2 * mha[key] + 2e-3
            checks.append(
                {
                    "check": f"{r['variant']}: {key} <= {limit:.2e}",
                    "ok": r[key] <= limit,
                    "value": r[key],
                }
            )
        if device.type == "cuda":
            fams = r["attention_kernels"]["families"]
            checks.append(
                {
                    "check": f"{r['variant']}: the profiler shows flash, cuDNN or fmha attention kernels",
                    "ok": bool({"flash", "cudnn", "fmha"} & set(fams)),
                    "value": fams,
                }
            )
        # The modules ran (also in eval, where torch's fused layer would have bypassed them, unless it was
        # kept on purpose), and on the backend that was chosen or forced, not on a fallback after a refusal.
        ran = r["backends_used"]
        expected = r["variant"][len("flashdoctor [") : -1] if r["variant"].endswith("]") else decision.backend
        if r["variant"].endswith("]"):
            # forced: the forced backend, unless the dispatcher rightly skips it (a minimal build
            # without this head dim or dtype): then what it chose instead
            forced = select_backend(q, q, q, backend=expected)
            if forced.backend != expected and "this build" in dict(forced.rejected).get(expected, ""):
                expected = forced.backend
        checks.append(
            {
                "check": f"{r['variant']}: every attention call ran on {expected}",
                "ok": set(ran) == {expected},
                "value": ran,
            }
        )
    return {
        "replaced": names,
        "decision": {
            "backend": decision.backend,
            "reason": decision.reason,
            "candidates": decision.candidates,
        },
        "order_source": dispatch.order_source(decision_capability(device)),
        "rows": rows,
        "checks": checks,
    }


def decision_capability(device: torch.device) -> tuple[int, int] | None:
    if device.type != "cuda":
        return None
    major, minor = torch.cuda.get_device_capability(device)
    return int(major), int(minor)


def padding_checks(
    args: argparse.Namespace, device: torch.device, dtype: torch.dtype
) -> list[dict[str, Any]]:
    """The replaced encoder with src_key_padding_mask, train and eval, against the original."""
    small = argparse.Namespace(**{**vars(args), "layers": 2})
    base = build_model(small, device, dtype)
    replaced, _ = replace_with_flash_attention(copy.deepcopy(base))
    b, n = min(args.batch, 4), args.seq
    x = torch.randn(b, n, args.embed, device=device, dtype=dtype)
    kpm = torch.zeros(b, n, dtype=torch.bool, device=device)
    kpm[0, n // 2 :] = True
    keep = ~kpm
    out = []
    for mode in ("train", "eval"):
        base.train(mode == "train")
        replaced.train(mode == "train")
        with torch.no_grad():
            want = base(x, src_key_padding_mask=kpm)
            got = replaced(x, src_key_padding_mask=kpm)
        err = rel_err(got[keep], want[keep])
        out.append(
            {
                "check": f"padded batch ({mode}): output rel err {err:.2e} <= 2e-2",
                "ok": err <= 2e-2,
                "value": err,
            }
        )
    return out


# -- flash_attention on every backend ------------------------------------------------------------------
def kernel_checks(device: torch.device, quick: bool, only: tuple[str, ...] | None) -> list[dict[str, Any]]:
    """Each usable backend, forced, for real: output and gradients against fp32 math attention."""
    statuses = [s for s in available_backends(device) if s.usable and (only is None or s.name in only)]
    dtypes = ["bf16"] if quick else ["bf16", "fp16"]
    dims = [64] if quick else [64, 128, 100]  # 100: not a multiple of 8, padded internally
    cases = [("plain", 16, False, 0.0), ("gqa 16/4", 4, False, 0.0), ("causal", 16, True, 0.0)]
    if device.type != "cuda":
        dtypes = ["fp32"]
    out = []
    g = torch.Generator(device=device).manual_seed(0)
    for status in statuses:
        for dt in dtypes:
            if status.name != dispatch.FALLBACK and dt not in status.dtypes:
                continue
            for d in dims:
                if status.max_head_dim is not None and d > status.max_head_dim:
                    continue
                for label, kv_heads, causal, p in cases:
                    dtype = DTYPES[dt]
                    q = torch.randn(2, 256, 16, d, device=device, dtype=dtype, generator=g)
                    k = torch.randn(2, 256, kv_heads, d, device=device, dtype=dtype, generator=g)
                    v = torch.randn(2, 256, kv_heads, d, device=device, dtype=dtype, generator=g)
                    q.requires_grad_(True)
                    k.requires_grad_(True)
                    v.requires_grad_(True)
                    # A flashdoctor minimal build (fd.sm90.hd128.bf16) has no kernel for other head dims
                    # or dtypes: the dispatcher skips it, which is a skip here, not a failure.
                    why = dict(select_backend(q, k, v, causal, p, backend=status.name).rejected).get(
                        status.name
                    )
                    if why and "this build" in why:
                        out.append(
                            {
                                "check": f"flash_attention[{status.name}] {dt} d{d} {label}",
                                "ok": True,
                                "skipped": why,
                            }
                        )
                        continue
                    backend_usage(reset=True)
                    err = None
                    try:
                        o = flash_attention(q, k, v, causal=causal, dropout_p=p, backend=status.name)
                        o.float().square().sum().backward()
                        qr, kr, vr = (t.detach().float().requires_grad_(True) for t in (q, k, v))
                        rep = 16 // kv_heads
                        ref = F.scaled_dot_product_attention(
                            qr.transpose(1, 2),
                            kr.repeat_interleave(rep, 2).transpose(1, 2),
                            vr.repeat_interleave(rep, 2).transpose(1, 2),
                            is_causal=causal,
                        ).transpose(1, 2)
                        ref.square().sum().backward()
                        errs = {
                            "out": rel_err(o, ref),
                            "dq": rel_err(q.grad, qr.grad),  # type: ignore[arg-type]
                            "dk": rel_err(k.grad, kr.grad),  # type: ignore[arg-type]
                            "dv": rel_err(v.grad, vr.grad),  # type: ignore[arg-type]
                        }
                    except Exception as exc:  # a failing backend is a result to report, not a crash
                        errs, err = (
                            {},
                            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                        )
                    used = backend_usage(reset=True)
                    limit = 3e-2 if dt in ("bf16", "fp16") else 1e-5
                    ok = err is None and used == {status.name: 1} and all(e <= limit for e in errs.values())
                    out.append(
                        {
                            "check": f"flash_attention[{status.name}] {dt} d{d} {label}",
                            "ok": ok,
                            "value": {"rel_err": errs, "ran": used, "error": err, "limit": limit},
                        }
                    )
    # Dropout runs on the backends that take it. Its result is random, so only that it computed is
    # checked; torch may refuse a backend (cuDNN 9.11-9.13 have no SDPA dropout), and then the
    # fallback must take the call: what ran is reported.
    for status in statuses:
        if not status.dropout or status.name == dispatch.FALLBACK or device.type != "cuda":
            continue
        q = torch.randn(2, 128, 8, 64, device=device, dtype=torch.bfloat16)
        backend_usage(reset=True)
        o = flash_attention(q, q, q, dropout_p=0.1, backend=status.name)
        used = backend_usage(reset=True)
        out.append(
            {
                "check": f"flash_attention[{status.name}] bf16 dropout 0.1 runs",
                "ok": sum(used.values()) == 1 and bool(torch.isfinite(o).all()),
                "value": {"ran": used},
            }
        )
    return out


# -- report ----------------------------------------------------------------------------------------
def fmt(v: float | None, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def print_report(result: dict[str, Any]) -> None:
    env = result["environment"]
    print(f"flashdoctor {env['flashdoctor']}  torch {env['torch']}  device {env['device_name']}")
    shape = result["shape"]
    print(
        f"shape: batch {shape['batch']}, seq {shape['seq']}, embed {shape['embed']}, heads {shape['heads']} "
        f"(head dim {shape['embed'] // shape['heads']}), {shape['dtype']}, {shape['layers']} layers; "
        f"median of {shape['iters']} after {shape['warmup']} warm-up"
    )
    print("\nbackends on this device:")
    for s in result["backends"]:
        state = "usable" if s["usable"] else f"no: {s['why_not']}"
        print(f"  {s['name']:<11} {state}  dtypes {'/'.join(s['dtypes'])}  max head dim {s['max_head_dim']}")
    m = result["models"]
    print(f"\ndecision for the model's attention: {m['decision']['backend']} ({m['decision']['reason']})")
    head = (
        f"{'variant':<28}{'fwd ms':>9}{'fwd+bwd ms':>12}{'fwd MiB':>10}{'f+b MiB':>10}"
        f"{'x MHA f':>9}{'x MHA fb':>10}{'x naive f':>11}{'x naive fb':>12}{'err out':>10}{'err dx':>10}  attention kernels"
    )
    print("\n" + head)
    for r in m["rows"]:
        fams = ",".join(r["attention_kernels"]["families"]) or "-"
        print(
            f"{r['variant']:<28}{fmt(r['forward_ms']):>9}{fmt(r['forward_backward_ms']):>12}"
            f"{fmt(r['forward_peak_mib'], '.0f'):>10}{fmt(r['forward_backward_peak_mib'], '.0f'):>10}"
            f"{fmt(r['speedup_forward_vs_mha'], '.2f'):>9}{fmt(r['speedup_forward_backward_vs_mha'], '.2f'):>10}"
            f"{fmt(r['speedup_forward_vs_naive'], '.2f'):>11}{fmt(r['speedup_forward_backward_vs_naive'], '.2f'):>12}"
            f"{r['rel_err_out']:>10.1e}{r['rel_err_input_grad']:>10.1e}  {fams}"
            + (f"  (ran: {', '.join(r['backends_used'])})" if r["backends_used"] else "")
        )
    auto = next(r for r in m["rows"] if r["variant"] == "flashdoctor (auto)")
    print(
        "\nthe guide expects ~1.8x forward and ~2.1x forward+backward over standard attention; measured for "
        f"flashdoctor (auto): vs naive {auto['speedup_forward_vs_naive']:.2f}x / "
        f"{auto['speedup_forward_backward_vs_naive']:.2f}x, vs nn.MultiheadAttention "
        f"{auto['speedup_forward_vs_mha']:.2f}x / {auto['speedup_forward_backward_vs_mha']:.2f}x"
    )
    print("\nkernels after replacement (flashdoctor auto, forward+backward):")
    for name, count in list(auto["attention_kernels"]["kernels"].items())[:8]:
        print(f"  {count:>4} × {name[:150]}")
    forced = [r for r in m["rows"] if r["variant"].startswith("flashdoctor [")]
    if forced:
        best = min(forced, key=lambda r: r["forward_backward_ms"])
        print(
            f"\nfastest forced backend (fwd+bwd): {best['variant']}; the data's order picks "
            f"{m['decision']['backend']} first (source: {m['order_source'][:160]}...)"
        )
    failed = [c for c in result["checks"] if not c["ok"]]
    print(f"\nchecks: {len(result['checks']) - len(failed)} of {len(result['checks'])} passed")
    for c in failed:
        print(f"  FAILED {c['check']}: {json.dumps(c['value'], default=str)[:300]}")
    print(f"total {result['seconds']:.1f} s")


def backend_list(text: str) -> tuple[str, ...]:
    try:
        return dispatch.parse_order(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument(
        "--dtype", choices=sorted(DTYPES), default=None, help="default: bf16 on CUDA, fp32 on CPU"
    )
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=196)
    ap.add_argument("--embed", type=int, default=1024)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--quick", action="store_true", help="a small model, few iterations, no forced backends")
    ap.add_argument(
        "--backends",
        metavar="LIST",
        type=backend_list,
        help="time and check only these backends (e.g. sdpa-cudnn,sdpa-flash,sdpa); default: every usable one",
    )
    ap.add_argument("--json", metavar="PATH", help="write the full result here")
    ap.add_argument("-v", "--verbose", action="store_true", help="show flashdoctor.attention's log")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="  log: %(message)s")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no CUDA device here; use --device cpu --quick", file=sys.stderr)
        return 2
    if args.quick:
        args.batch, args.seq, args.embed, args.heads, args.layers = 2, 24, 64, 4, 2
        args.warmup, args.iters = 1, 3
    dtype_key = args.dtype or ("bf16" if device.type == "cuda" else "fp32")
    dtype = DTYPES[dtype_key]
    t0 = time.perf_counter()
    result: dict[str, Any] = {
        "schema": "flashdoctor/bench-attention/1",
        "environment": {
            "flashdoctor": __version__,
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "python": platform.python_version(),
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else platform.processor() or "cpu",
            "capability": decision_capability(device),
            "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
        },
        "shape": {
            "batch": args.batch,
            "seq": args.seq,
            "embed": args.embed,
            "heads": args.heads,
            "layers": args.layers,
            "dtype": dtype_key,
            "warmup": args.warmup,
            "iters": args.iters,
        },
        "backends": [s.to_json() for s in available_backends(device)],
    }
    result["models"] = bench_models(args, device, dtype)
    checks = list(result["models"]["checks"])
    checks += padding_checks(args, device, dtype)
    checks += kernel_checks(device, args.quick, args.backends)
    result["checks"] = checks
    result["ok"] = all(c["ok"] for c in checks)
    result["seconds"] = time.perf_counter() - t0
    print_report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
