#!/usr/bin/env python3
"""Eval (inference) after replace_with_flash_attention: torch's fused path or the flash kernel?

nn.TransformerEncoderLayer has a fused inference path (torch._transformer_encoder_layer_fwd, with
nested tensors for padded batches in nn.TransformerEncoder) that reads the attention weights and never
calls the attention module; standalone nn.MultiheadAttention has one too
(torch._native_multi_head_attention). This script runs, side by side in one process and at several
shapes, eval without grad of:

  encoder  nn.TransformerEncoder as built (torch's fused path)
           replaced, native_fast_path=True  (torch's fused path kept: flashdoctor does not run)
           replaced, native_fast_path=False (the default: flashdoctor's kernel choice runs)
  mha      nn.MultiheadAttention (torch's fast path) against FlashAttention taking over its weights

and says for each what ran (the fused op in the profile or not; flashdoctor's backend_usage()), the
median time, and the ratio to torch's fused path, with and without padding.

  python3 scripts/bench_eval_path.py                      # CPU: fp32, CPU-sized shapes
  python3 scripts/bench_eval_path.py --device cuda        # GPU: bf16, the guide's shape and longer ones
  python3 scripts/bench_eval_path.py --quick --json out.json

Exit status: 0 when each variant ran the path it should (timings are reported, never judged).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "scripts"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
    import torch

from bench_attention import timed_together  # noqa: E402
from torch import nn  # noqa: E402

from flashdoctor import __version__  # noqa: E402
from flashdoctor.attention import FlashAttention, backend_usage, replace_with_flash_attention  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
# (batch, seq, embed, heads): CPU-sized, and on a GPU the guide's shape (B32 N196 E1024 H16) and longer ones.
CPU_SHAPES = ((8, 128, 256, 4), (4, 512, 256, 4), (2, 1024, 512, 8), (4, 196, 1024, 16))
GPU_SHAPES = ((32, 196, 1024, 16), (8, 1024, 1024, 16), (2, 4096, 1024, 8), (1, 8192, 2048, 16))
QUICK_SHAPES = ((2, 24, 64, 4),)
FUSED_OPS = ("_transformer_encoder_layer_fwd", "_native_multi_head_attention")


def what_ran(fn: Callable[[], object], device: torch.device) -> dict[str, Any]:
    """One call under the profiler: torch's fused ops seen, attention kernels (GPU), flashdoctor's usage."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    backend_usage(reset=True)
    with profile(activities=activities) as prof:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    used = backend_usage(reset=True)
    names = {e.name for e in prof.events()}
    fused = sorted(op for op in FUSED_OPS if any(op in n for n in names))
    kernels = sorted(
        n[:120]
        for e in prof.events()
        if str(getattr(e, "device_type", "")).endswith("CUDA")
        and any(s in (n := e.name).lower() for s in ("flash", "fmha", "cudnn", "sdpa", "attention"))
    )
    return {"fused_ops": fused, "flashdoctor": used, "attention_kernels": sorted(set(kernels))}


def encoder(e: int, h: int, layers: int, device: torch.device, dtype: torch.dtype) -> nn.TransformerEncoder:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(e, h, dim_feedforward=4 * e, dropout=0.0, batch_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=True).to(device, dtype).eval()


def padding_mask(b: int, n: int, device: torch.device) -> torch.Tensor:
    # Lengths spread from n/2 to n (right-aligned padding, as tokenizers pad): True = padding.
    lengths = torch.linspace(n // 2, n, b).round().long()
    return (torch.arange(n).unsqueeze(0) >= lengths.unsqueeze(1)).to(device)


def bench_shape(
    shape: tuple[int, int, int, int], args: argparse.Namespace, device: torch.device, dtype: torch.dtype
) -> list[dict[str, Any]]:
    b, n, e, h = shape
    base = encoder(e, h, args.layers, device, dtype)
    variants: dict[str, nn.Module] = {
        "torch fused (nn as built)": base,
        "replaced, native_fast_path=True": replace_with_flash_attention(
            copy.deepcopy(base), native_fast_path=True
        )[0],
        "replaced, native_fast_path=False": replace_with_flash_attention(
            copy.deepcopy(base), native_fast_path=False
        )[0],
    }
    mha = nn.MultiheadAttention(e, h, batch_first=True, device=device, dtype=dtype).eval()
    flash_mha = FlashAttention.from_multihead_attention(mha)
    x = torch.randn(b, n, e, device=device, dtype=dtype)
    rows = []
    for padded in (False, True):
        kpm = padding_mask(b, n, device) if padded else None
        for kind, group in (
            ("encoder", variants),
            ("mha", {"nn.MultiheadAttention": mha, "FlashAttention": flash_mha}),
        ):
            fns = [_forward(kind, module, x, kpm) for module in group.values()]
            ran = [what_ran(fn, device) for fn in fns]
            times = timed_together(fns, device, args.warmup, args.iters)
            base_ms = statistics.median(times[0])
            for label, ms_runs, what in zip(group, times, ran):
                rows.append(_row(kind, shape, padded, label, statistics.median(ms_runs), base_ms, what))
    return rows


def _forward(kind: str, module: nn.Module, x: torch.Tensor, kpm: torch.Tensor | None) -> Callable[[], object]:
    def forward() -> object:
        with torch.no_grad():
            if kind == "encoder":
                return module(x, src_key_padding_mask=kpm)
            return module(x, x, x, key_padding_mask=kpm, need_weights=False)

    return forward


def _row(
    kind: str,
    shape: tuple[int, int, int, int],
    padded: bool,
    label: str,
    ms: float,
    base_ms: float,
    ran: dict[str, Any],
) -> dict[str, Any]:
    return {
        "kind": kind,
        "shape": dict(zip(("batch", "seq", "embed", "heads"), shape)),
        "padded": padded,
        "variant": label,
        "ms": ms,
        "ratio_to_torch": ms / base_ms,
        **ran,
    }


def path_checks(rows: list[dict[str, Any]], layers: int) -> list[dict[str, Any]]:
    """Each variant ran the path it should: torch's fused op and no flashdoctor call, or the reverse."""
    checks = []
    for r in rows:
        name = (
            f"{r['kind']} {tuple(r['shape'].values())} {'padded' if r['padded'] else 'dense'}: {r['variant']}"
        )
        flash = r["variant"] in ("replaced, native_fast_path=False", "FlashAttention")
        if flash and r["padded"]:
            # A key_padding_mask goes to nn.MultiheadAttention's own code (masks are standard attention).
            want: dict[str, int] = {}
        elif flash:
            want = {next(iter(r["flashdoctor"]), "?"): layers if r["kind"] == "encoder" else 1}
        else:
            want = {}
        ok = r["flashdoctor"] == want and (flash or bool(r["fused_ops"]))
        if flash and not r["padded"]:
            ok = ok and not r["fused_ops"]
        checks.append(
            {"check": name, "ok": ok, "value": {"fused_ops": r["fused_ops"], "ran": r["flashdoctor"]}}
        )
    return checks


def print_report(result: dict[str, Any]) -> None:
    env = result["environment"]
    print(
        f"flashdoctor {env['flashdoctor']}  torch {env['torch']}  device {env['device_name']}  "
        f"{result['dtype']}, {result['layers']} layers, median of {result['iters']}"
    )
    head = f"{'':<8}{'shape (B,N,E,H)':<22}{'pad':<5}{'variant':<34}{'ms':>10}{'x torch':>9}  what ran"
    print(head)
    for r in result["rows"]:
        shape = ",".join(str(v) for v in r["shape"].values())
        ran = ", ".join(f"{k} x{v}" for k, v in r["flashdoctor"].items()) or "-"
        fused = "+".join(r["fused_ops"]) or "-"
        print(
            f"{r['kind']:<8}{shape:<22}{'yes' if r['padded'] else 'no':<5}{r['variant']:<34}"
            f"{r['ms']:>10.3f}{r['ratio_to_torch']:>9.2f}  fused: {fused}; flashdoctor: {ran}"
        )
    failed = [c for c in result["checks"] if not c["ok"]]
    print(f"checks: {len(result['checks']) - len(failed)} of {len(result['checks'])} passed")
    for c in failed:
        print(f"  FAILED {c['check']}: {json.dumps(c['value'])}")


def parse_shape(text: str) -> tuple[int, int, int, int]:
    parts = tuple(int(p) for p in text.split(","))
    if len(parts) != 4 or min(parts) < 1 or parts[2] % parts[3]:
        raise argparse.ArgumentTypeError(f"{text!r}: give B,N,E,H with E a multiple of H")
    return parts  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=sorted(DTYPES), help="default: bf16 on CUDA, fp32 on CPU")
    ap.add_argument("--shape", action="append", type=parse_shape, help="B,N,E,H (repeatable)")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=21)
    ap.add_argument("--quick", action="store_true", help="one small shape, few iterations (tests the script)")
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no CUDA device here", file=sys.stderr)
        return 2
    shapes = args.shape or (GPU_SHAPES if device.type == "cuda" else CPU_SHAPES)
    if args.quick:
        shapes, args.warmup, args.iters = args.shape or QUICK_SHAPES, 1, 3
    dtype_key = args.dtype or ("bf16" if device.type == "cuda" else "fp32")
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with warnings.catch_warnings():
        # torch's nested-tensor path (padded batches) warns that nested tensors are a prototype.
        warnings.filterwarnings("ignore", message="The PyTorch API of nested tensors")
        for shape in shapes:
            rows += bench_shape(shape, args, device, DTYPES[dtype_key])
    result = {
        "schema": "flashdoctor/bench-eval-path/1",
        "environment": {
            "flashdoctor": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else (platform.processor() or "cpu") + f", {torch.get_num_threads()} threads",
        },
        "dtype": dtype_key,
        "layers": args.layers,
        "iters": args.iters,
        "rows": rows,
        "checks": path_checks(rows, args.layers),
    }
    result["ok"] = all(c["ok"] for c in result["checks"])
    result["seconds"] = time.perf_counter() - t0
    print_report(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
