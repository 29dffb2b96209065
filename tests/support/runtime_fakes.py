"""A stand-in for an installed FA3 minimal build, for the runtime's CPU tests.

A real module (``flash_attn_interface``, FA3's import path and calling convention, returning
(out, lse), recording the calls and their keyword arguments) and its real dist-info (``flash_attn_3-3.0.0+fd.sm90.hd128.bf16...``: the profile label the
dispatcher reads) on sys.path. It computes attention with torch ops under the kernel name the profiler
shows for FA3's forward on an H100. For a dtype or head dim the build lacks, the real build crashes the
process (issue 16: fp16 on a bf16-only build segfaulted); the stand-in raises ``Segfault``, a
BaseException that flash_attention (which falls back on any Exception a kernel raises) does not catch, so
a test that calls into a missing kernel fails.

Only what cannot exist here is faked: the GPU in the call's description and torch's SDPA flags (cuDNN has
no CPU kernel, so it is reported off).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from flashdoctor.runtime import availability, dispatch
from flashdoctor.runtime import call as runtime_call

FA3_MINIMAL = (
    "3.0.0+fd.sm90.hd128.bf16.nosplit.nopagedkv.noappendkv.nolocal.nosoftcap.nopackgqa.nofp8.nocluster"
)
FA3_LABEL = FA3_MINIMAL.split("+", 1)[1]
FA3_FWD_KERNEL = "cutlass::device_kernel<flash::enable_sm90<flash::FlashAttnFwdSm90<fake>>>"

FAKE_FA3 = f"""
import torch
from torch.profiler import record_function

calls = []
kwargs = []  # the keyword arguments of each call past softmax_scale and causal (deterministic=, ...)


class Segfault(BaseException):  # what the real build does there: no exception handler sees it
    pass


def flash_attn_func(q, k, v, softmax_scale=None, causal=False, **kw):
    if q.dtype != torch.bfloat16 or q.shape[-1] > 128 or q.shape[-1] <= 96:
        raise Segfault("segfault: no kernel for %s head dim %d in this build" % (q.dtype, q.shape[-1]))
    calls.append((q.dtype, q.shape[-1], causal))
    kwargs.append(dict(kw))
    with record_function({FA3_FWD_KERNEL!r}):
        out = torch.nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=causal, scale=softmax_scale,
            enable_gqa=True,
        ).transpose(1, 2)
    return out, None
"""


def describe_as_h100(monkeypatch: pytest.MonkeyPatch) -> None:
    """CPU calls described as an H100's (sm_90): the one thing that cannot exist here is the GPU."""
    real = runtime_call.describe_call

    def as_gpu(*args: object, **kwargs: object) -> dispatch.AttentionCall:
        import dataclasses

        return dataclasses.replace(real(*args, **kwargs), device="cuda", capability=(9, 0))  # type: ignore[arg-type]

    monkeypatch.setattr(runtime_call, "describe_call", as_gpu)


def pretend_h100(monkeypatch: pytest.MonkeyPatch, cudnn: str | None = None) -> None:
    """An H100 with only torch (no flash-attn): SDPA's forced kernels run on torch's CPU kernels. ``cudnn``:
    why SDPA's cuDNN backend is off (None: reported on)."""
    describe_as_h100(monkeypatch)
    off = dict.fromkeys(("fa3", "fa2", "fa4"), "not installed")
    monkeypatch.setattr(
        availability, "availability", lambda device_type: {**off, "sdpa-cudnn": cudnn, "sdpa-flash": None}
    )


@contextlib.contextmanager
def installed_on_h100(site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An H100 with torch and the flash-attn builds installed in `site` (a site directory: put on sys.path,
    imported afresh, forgotten after): CPU calls described as an H100's, SDPA flash on, SDPA cuDNN off (it
    has no CPU kernel)."""
    monkeypatch.syspath_prepend(str(site))
    availability.import_backend.cache_clear()
    describe_as_h100(monkeypatch)

    def found(device_type: str) -> dict[str, str | None]:
        out = {name: availability.import_backend(name)[1] for name in ("fa3", "fa2", "fa4")}
        return {
            **out,
            "sdpa-cudnn": "disabled (torch.backends.cuda.enable_cudnn_sdp(False))",
            "sdpa-flash": None,
        }

    monkeypatch.setattr(availability, "availability", found)
    try:
        yield
    finally:
        availability.import_backend.cache_clear()
        tops = {p.name.removesuffix(".py") for p in site.iterdir() if not p.name.endswith(".dist-info")}
        for name in [m for m in sys.modules if m.split(".")[0] in tops]:
            del sys.modules[name]


@pytest.fixture(name="fa3_minimal_build")
def fa3_minimal_build_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """An H100 with torch and an installed FA3 minimal build (head dim 128, bf16): the stand-in on
    sys.path, CPU calls described as an H100's; yields the imported module (its ``calls`` list)."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "flash_attn_interface.py").write_text(FAKE_FA3)
    dist = root / f"flash_attn_3-{FA3_MINIMAL}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: flash_attn_3\nVersion: {FA3_MINIMAL}\n")
    with installed_on_h100(root, monkeypatch):
        assert availability.import_backend("fa3")[1:] == (None, FA3_MINIMAL)
        yield sys.modules["flash_attn_interface"]
