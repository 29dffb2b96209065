#!/usr/bin/env python3
"""Proof on an H100 that the runtime runs FA3 where it can and skips what an FA3 build lacks.

With FA3 installed (``flash_attn_interface``: a flashdoctor minimal build such as
``3.0.0+fd.sm90.hd128.bf16.nosplit...`` or an upstream wheel) and torch on an sm_90 GPU:

1. ``available_backends()`` lists fa3 as usable, with the build's profile (dtypes, head dims).
2. ``flash_attention(q, k, v, causal=True)`` on bf16, head dim 128: the dispatcher picks fa3, the
   profiler shows FA3's forward kernel (``FlashAttnFwdSm90``; ``FlashAttnBwdSm90`` for the backward)
   and no other attention kernel, ``backend_usage()`` is ``{"fa3": 1}``, and output and gradients
   match fp32 attention.
3. The same call in fp16, and in bf16 at head dim 64: where the build's label says the kernel is not
   compiled, the call runs on the next backend, without a crash, without an FA3 kernel in the profile,
   with exactly one line on the ``flashdoctor.attention`` log over three calls ("... skipped fa3: fp16
   not compiled in this build (...)"), and matches fp32 attention. Where the build has the kernel, it
   runs on fa3 as in 2.

  python3 scripts/gpu_runtime_fa3.py --json runtime_fa3.json

Exit status: 0 when every check passed, 1 when one failed, 2 when there is no CUDA GPU or no FA3.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "scripts"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
    import torch

import torch.nn.functional as F  # noqa: E402
from bench_attention import rel_err  # noqa: E402

from flashdoctor import __version__  # noqa: E402
from flashdoctor.attention import (  # noqa: E402
    available_backends,
    backend_usage,
    flash_attention,
    select_backend,
)
from flashdoctor.knowledge.profiles import build_coverage  # noqa: E402

LOGGER = "flashdoctor.attention"
FA3_KERNELS = ("FlashAttnFwdSm90", "FlashAttnBwdSm90", "FlashAttnFwdSm80", "FlashAttnBwdSm80")
# Other attention kernels: torch's flash (pytorch_flash::), cuDNN's SDPA, memory-efficient, FA2's flash_fwd.
OTHER_ATTENTION = (
    "cudnn",
    "pytorch_flash",
    "fmha",
    "cutlass_f",
    "flash_fwd_kernel",
    "flash_bwd",
    "efficient",
)
SHAPE = (2, 1024, 16)  # batch, seq, heads


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def kernels(device: torch.device, fn: Any) -> list[str]:
    """The names the profiler saw: GPU kernels on CUDA, every event elsewhere (the CPU tests' stand-in)."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    with profile(activities=[ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]) as prof:
        fn()
        if cuda:
            torch.cuda.synchronize(device)
    return sorted(
        {e.name for e in prof.events() if not cuda or str(getattr(e, "device_type", "")).endswith("CUDA")}
    )


def one_case(
    device: torch.device, dtype: torch.dtype, head_dim: int, expect_fa3: bool, lines: Lines
) -> dict[str, Any]:
    """Three causal calls (the first with backward under the profiler) against fp32 attention."""
    b, n, h = SHAPE
    g = torch.Generator(device=device).manual_seed(0)
    q, k, v = (
        torch.randn(b, n, h, head_dim, device=device, dtype=dtype, generator=g).requires_grad_(True)
        for _ in range(3)
    )
    decision = select_backend(q, k, v, causal=True)
    lines.lines.clear()
    backend_usage(reset=True)
    out: dict[str, torch.Tensor] = {}

    def step() -> None:
        o = flash_attention(q, k, v, causal=True)
        o.float().square().sum().backward()
        out["o"] = o

    seen = kernels(device, step)
    with torch.no_grad():
        flash_attention(q, k, v, causal=True)
        flash_attention(q, k, v, causal=True)
    used = backend_usage(reset=True)
    qr, kr, vr = (t.detach().float().requires_grad_(True) for t in (q, k, v))
    ref = F.scaled_dot_product_attention(
        qr.transpose(1, 2), kr.transpose(1, 2), vr.transpose(1, 2), is_causal=True
    ).transpose(1, 2)
    ref.square().sum().backward()
    errs = {
        "out": rel_err(out["o"], ref),
        "dq": rel_err(q.grad, qr.grad),  # type: ignore[arg-type]
        "dk": rel_err(k.grad, kr.grad),  # type: ignore[arg-type]
        "dv": rel_err(v.grad, vr.grad),  # type: ignore[arg-type]
    }
    fa3_seen = [s for s in seen if any(f in s for f in FA3_KERNELS)]
    other_seen = [s for s in seen if any(o in s.lower() for o in OTHER_ATTENTION) and s not in fa3_seen]
    name = f"{str(dtype).replace('torch.', '')} head dim {head_dim} causal"
    checks = []
    if expect_fa3:
        checks += [
            (f"{name}: the dispatcher picks fa3", decision.backend == "fa3", decision.reason),
            (f"{name}: every call ran on fa3", used == {"fa3": 3}, used),
            (f"{name}: the profile shows FA3's kernels", bool(fa3_seen), fa3_seen),
            (f"{name}: the profile shows no other attention kernel", not other_seen, other_seen),
        ]
    else:
        why = dict(decision.rejected).get("fa3", "")
        checks += [
            (
                f"{name}: fa3 is skipped as not compiled in this build",
                "not compiled in this build" in why,
                why,
            ),
            (f"{name}: no call ran on fa3", "fa3" not in used and sum(used.values()) == 3, used),
            (f"{name}: no FA3 kernel in the profile", not fa3_seen, fa3_seen),
            (f"{name}: exactly one log line over three calls", len(lines.lines) == 1, lines.lines),
            (
                f"{name}: the line says why",
                len(lines.lines) == 1 and f"skipped fa3: {why}" in lines.lines[0],
                lines.lines,
            ),
        ]
    checks.append((f"{name}: output and gradients match fp32 attention", max(errs.values()) <= 3e-2, errs))
    return {
        "case": name,
        "decision": {"backend": decision.backend, "reason": decision.reason},
        "ran": used,
        "fa3_kernels": fa3_seen,
        "other_attention_kernels": other_seen,
        "log": list(lines.lines),
        "rel_err": errs,
        "checks": [{"check": c, "ok": bool(ok), "value": v} for c, ok, v in checks],
    }


def run_checks(device: torch.device) -> dict[str, Any]:
    statuses = {s.name: s for s in available_backends(device)}
    fa3 = statuses["fa3"]
    coverage = build_coverage("fa3", fa3.version)
    lines = Lines()
    log = logging.getLogger(LOGGER)
    log.addHandler(lines)
    old_level = log.level
    log.setLevel(logging.INFO)
    try:
        cases = [
            one_case(device, dtype, hd, coverage is None or coverage.missing(hd, dt) is None, lines)
            for dtype, dt, hd in (
                (torch.bfloat16, "bf16", 128),
                (torch.float16, "fp16", 128),
                (torch.bfloat16, "bf16", 64),
            )
        ]
    finally:
        log.removeHandler(lines)
        log.setLevel(old_level)
    checks = [
        {"check": "fa3 is usable on this GPU", "ok": fa3.usable, "value": fa3.why_not},
        *[c for case in cases for c in case["checks"]],
    ]
    return {
        "schema": "flashdoctor/gpu-runtime-fa3/1",
        "backends": [s.to_json() for s in statuses.values()],
        "fa3_build": None if coverage is None else coverage.describe(),
        "cases": cases,
        "checks": checks,
        "ok": all(c["ok"] for c in checks),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", metavar="PATH", help="write the full result here")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA GPU here: this proof runs on an H100 with FA3 installed", file=sys.stderr)
        return 2
    device = torch.device("cuda", torch.cuda.current_device())
    fa3 = {s.name: s for s in available_backends(device)}["fa3"]
    if not fa3.usable:
        print(f"fa3 is not usable here: {fa3.why_not}", file=sys.stderr)
        return 2
    result = run_checks(device)
    result["environment"] = {
        "flashdoctor": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device_name": torch.cuda.get_device_name(device),
        "capability": list(torch.cuda.get_device_capability(device)),
    }
    print(f"{result['environment']['device_name']}  torch {torch.__version__}  fa3 {fa3.version}")
    print(f"fa3 build: {result['fa3_build'] or 'no flashdoctor profile label (every kernel)'}")
    for case in result["cases"]:
        print(
            f"\n{case['case']}: ran {case['ran']}; {case['decision']['backend']}: {case['decision']['reason']}"
        )
        print(f"  FA3 kernels: {', '.join(k[:90] for k in case['fa3_kernels']) or '-'}")
        for line in case["log"]:
            print(f"  log: {line}")
    failed = [c for c in result["checks"] if not c["ok"]]
    print(f"\nchecks: {len(result['checks']) - len(failed)} of {len(result['checks'])} passed")
    for c in failed:
        print(f"  FAILED {c['check']}: {json.dumps(c['value'], default=str)[:300]}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
