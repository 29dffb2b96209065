"""Fake FlashAttention installs for the CPU-mode smoke tests.

Each fake is a real package in a temporary directory, put on the runner's PYTHONPATH, with the real
import path and calling convention of its variant: FA2 ``flash_attn.flash_attn_func`` (returns out),
FA3 ``flash_attn_interface.flash_attn_func`` (returns (out, lse), as FA3 did for a while), FA4
``flash_attn.cute.flash_attn_func`` (returns (out, lse)) with its ``flash-attn-4`` distribution
metadata. They compute attention with torch ops, so the real runner, profiler and reference run on
them; the faults (a wrong scale, a segfault, an abort at import, a hang) are real faults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.support.paths import ROOT as REPO

CORE = '''
import ctypes
import json
import os

import torch
from torch.profiler import record_function

HEAD_DIMS = None  # a "minimal build": only these head dims were compiled (None = all)
SCALE_POWER = -0.5  # softmax scale = head_dim ** SCALE_POWER; a wrong build uses -1
# What a real minimal build does with what it left out: it crashes the interpreter (FA3 given fp16 on
# the H100). {"dtypes": [...], "max_head_dim": N, "causal": false}: a call outside it segfaults.
CRASH_OUTSIDE = None
VARIANT = None  # which fake this is (in the call log)
DTYPE_NAMES = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}


def _log(q, causal):
    path = os.environ.get("FAKE_FLASH_CALLS")
    if path:  # every call this fake took, for the tests to read
        with open(path, "a") as fh:
            fh.write(json.dumps({"variant": VARIANT, "dtype": DTYPE_NAMES.get(q.dtype), "head_dim": q.shape[-1], "causal": causal}) + "\\n")


def _crash_outside(q, causal):
    c = CRASH_OUTSIDE
    if c is None:
        return
    if (
        DTYPE_NAMES.get(q.dtype) not in c.get("dtypes", ["fp16", "bf16"])
        or q.shape[-1] > c.get("max_head_dim", 256)
        or (causal and c.get("causal", True) is False)
    ):
        ctypes.string_at(0)  # SIGSEGV, as a kernel reading what was never compiled


def _crash_before_dtype(q):
    # {"head_dims": [...]}: a head dim outside the build's kernels segfaults even before the dtype is
    # looked at (an FA3 minimal build called with fp32 at head dim 64 on the H100)
    # {"fp32": "crash"}: fp32 segfaults too, at any head dim (the same FA3 minimal build, at head dim 128)
    c = CRASH_OUTSIDE
    if c is not None and "head_dims" in c and q.shape[-1] not in c["head_dims"]:
        ctypes.string_at(0)
    if c is not None and c.get("fp32") == "crash" and DTYPE_NAMES.get(q.dtype) == "fp32":
        ctypes.string_at(0)


def attend(q, k, v, causal):
    """(B, N, H, D) attention in fp32, FlashAttention's conventions: GQA by head groups."""
    _log(q, causal)
    d = q.shape[-1]
    if d > 256:
        raise RuntimeError("FlashAttention forward only supports head dimension at most 256")
    _crash_before_dtype(q)
    if q.dtype not in (torch.float16, torch.bfloat16):
        raise RuntimeError("FlashAttention only support fp16 and bf16 data type")
    _crash_outside(q, causal)
    if HEAD_DIMS is not None and d not in HEAD_DIMS:
        raise RuntimeError("this build has no kernel for head dim %d (built with head dims %s)" % (d, sorted(HEAD_DIMS)))
    with record_function("flash_fwd_kernel_fake"):
        g = q.shape[2] // k.shape[2]
        k = k.repeat_interleave(g, dim=2)
        v = v.repeat_interleave(g, dim=2)
        s = torch.einsum("bqhd,bkhd->bhqk", q.float(), k.float()) * (d ** SCALE_POWER)
        if causal:
            n, m = s.shape[-2], s.shape[-1]
            mask = torch.ones(n, m, dtype=torch.bool, device=s.device).tril(m - n)
            s = s.masked_fill(~mask, float("-inf"))
        lse = torch.logsumexp(s, -1)
        o = torch.einsum("bhqk,bkhd->bqhd", s.softmax(-1), v.float())
    return o.to(q.dtype), lse


def varlen(q, k, v, cu, causal):
    offs = cu.tolist()
    outs, lses = [], []
    for a, b in zip(offs[:-1], offs[1:]):
        o, lse = attend(q[a:b].unsqueeze(0), k[a:b].unsqueeze(0), v[a:b].unsqueeze(0), causal)
        outs.append(o[0])
        lses.append(lse[0])
    return torch.cat(outs, 0), torch.cat(lses, -1)
'''

FA2 = """
__version__ = "2.8.3+fake"
from _fake_core import attend, varlen


def flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, **kw):
    {body}
    return attend(q, k, v, causal)[0]


def flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, dropout_p=0.0, softmax_scale=None, causal=False, **kw):
    return varlen(q, k, v, cu_seqlens_q, causal)[0]
"""

FA3 = """
__version__ = "3.0.0+fake"
from _fake_core import attend, varlen


def flash_attn_func(q, k, v, softmax_scale=None, causal=False, **kw):
    return attend(q, k, v, causal)  # (out, lse), as FA3 returned for a while


def flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, seqused_q=None, seqused_k=None, softmax_scale=None, causal=False, **kw):
    return varlen(q, k, v, cu_seqlens_q, causal)
"""

FA4 = """
from _fake_core import attend, varlen


def flash_attn_func(q, k, v, softmax_scale=None, causal=False, **kw):
    return attend(q, k, v, causal)  # FA4 always returns (out, lse)


def flash_attn_varlen_func(q, k, v, cu_seqlens_q=None, cu_seqlens_k=None, max_seqlen_q=None, max_seqlen_k=None, softmax_scale=None, causal=False, **kw):
    return varlen(q, k, v, cu_seqlens_q, causal)
"""

BODIES = {
    "good": "pass",
    "segfault": "import ctypes; ctypes.string_at(0)",
    # FAKE_HANG_PID=FILE: the hung runner's pid is written there
    "hang": "import os, time; p = os.environ.get('FAKE_HANG_PID'); p and open(p, 'w').write(str(os.getpid())); time.sleep(600)",
    "fp32-out": "return attend(q, k, v, causal)[0].float()",  # right values, the wrong dtype
}


def write_fakes(
    root: Path,
    fa2: str | None = "good",
    fa3: str | None = None,
    fa4: str | None = None,
    head_dims: set[int] | None = None,
    scale_power: float = -0.5,
    crash_outside: dict[str, Any] | None = None,
) -> Path:
    """Write fake variants under ``root``; returns the directory to put on PYTHONPATH.

    ``fa2``: "good" | "segfault" | "hang" | "fp32-out" | None. ``fa3``: "good" | "abort-on-import" | None.
    ``fa4``: "good" | None. ``head_dims``: the head dims the fake "build" has (others raise).
    ``crash_outside``: what the fake "build" has ({"dtypes", "max_head_dim", "causal"}); any other call
    segfaults, as a real minimal build can.
    """
    root.mkdir(parents=True, exist_ok=True)
    core = (
        CORE.replace("HEAD_DIMS = None", f"HEAD_DIMS = {head_dims!r}")
        .replace("SCALE_POWER = -0.5", f"SCALE_POWER = {scale_power!r}")
        .replace("CRASH_OUTSIDE = None", f"CRASH_OUTSIDE = {crash_outside!r}")
    )
    (root / "_fake_core.py").write_text(core)
    pkg = root / "flash_attn"
    if fa2 is not None or fa4 is not None:
        pkg.mkdir(exist_ok=True)
        body = BODIES[fa2] if fa2 is not None else "raise RuntimeError('no FA2 here')"
        (pkg / "__init__.py").write_text(FA2.replace("{body}", body) if fa2 is not None else "")
    if fa3 == "good":
        (root / "flash_attn_interface.py").write_text(FA3)
    elif fa3 == "abort-on-import":
        (root / "flash_attn_interface.py").write_text("import os\nos.abort()\n")
    if fa4 == "good":
        (pkg / "cute").mkdir(exist_ok=True)
        (pkg / "cute" / "__init__.py").write_text(FA4)
        dist = root / "flash_attn_4-4.0.0b1.dist-info"
        dist.mkdir(exist_ok=True)
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: flash-attn-4\nVersion: 4.0.0b1\n")
    return root


def runner_env(*paths: Path) -> dict[str, str]:
    """The environment for a runner (or a flashdoctor CLI process) that sees the fakes and this repo."""
    env = dict(os.environ)
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([*(str(p) for p in paths), str(REPO), *inherited])
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


def _core(variant: str, crash_outside: dict[str, Any] | None) -> str:
    return CORE.replace("CRASH_OUTSIDE = None", f"CRASH_OUTSIDE = {crash_outside!r}").replace(
        "VARIANT = None", f"VARIANT = {variant!r}"
    )


def write_site(
    root: Path,
    *,
    fa2_version: str | None = None,
    fa3_version: str | None = None,
    crash_outside: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """Installed fakes, as pip leaves them: a site directory with each variant's package and its
    ``*.dist-info`` (METADATA, RECORD), whose version may carry a flashdoctor build profile
    (``3.0.0+fd.sm90.hd64.bf16``). FA3 is laid out as upstream main builds it: the package
    ``flash_attn_3`` with ``flash_attn_3/flash_attn_interface.py`` (no top-level module), so that it is
    found only through the registry's module list. ``crash_outside`` (variant -> what its "build" has)
    makes any other call segfault. Returns the directory to put on PYTHONPATH."""
    root.mkdir(parents=True, exist_ok=True)
    crash_outside = crash_outside or {}

    def dist(name: str, version: str, files: list[str]) -> None:
        info = root / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\n"
        )
        (info / "RECORD").write_text("".join(f"{f},,\n" for f in [*files, f"{info.name}/METADATA"]))

    if fa2_version is not None:
        pkg = root / "flash_attn"
        pkg.mkdir()
        (pkg / "_fake_core.py").write_text(_core("fa2", crash_outside.get("fa2")))
        body = FA2.replace("{body}", "pass").replace("from _fake_core", "from flash_attn._fake_core")
        (pkg / "__init__.py").write_text(body.replace('__version__ = "2.8.3+fake"', ""))
        dist("flash_attn", fa2_version, ["flash_attn/__init__.py", "flash_attn/_fake_core.py"])
    if fa3_version is not None:
        pkg = root / "flash_attn_3"
        pkg.mkdir()
        (pkg / "__init__.py").write_text("")
        (pkg / "_fake_core.py").write_text(_core("fa3", crash_outside.get("fa3")))
        body = FA3.replace("from _fake_core", "from flash_attn_3._fake_core")
        (pkg / "flash_attn_interface.py").write_text(body.replace('__version__ = "3.0.0+fake"', ""))
        dist(
            "flash_attn_3",
            fa3_version,
            [
                "flash_attn_3/__init__.py",
                "flash_attn_3/_fake_core.py",
                "flash_attn_3/flash_attn_interface.py",
            ],
        )
    return root


# A stand-in for _runner.py (run as `python FAKE CONFIG`), for tests of the orchestration alone: what
# follows this head emits events as the real runner would and dies or hangs where the test needs it.
FAKE_RUNNER_HEAD = """
import json, os, signal, sys, time
cfg = json.load(open(sys.argv[2]))
out = open(cfg["out"], "a")
def emit(event, **kw):
    kw["event"] = event
    kw["t"] = 0.0
    out.write(json.dumps(kw) + "\\n")
    out.flush()
emit("start")
emit("torch", version="2.13.0", import_s=0.1, cuda_available=True, device_count=1)
"""
