"""The runtime under torch.compile, on the real CPU torch: the call path compiles into one graph.

``fullgraph=True`` turns any graph break into an error, so each test fails where the call path does
something dynamo cannot trace (a lock, logging, a data-file read); the outputs are compared with the
uncompiled call's, over the shape changes that make dynamo recompile with dynamic shapes.
"""

from __future__ import annotations

import importlib
import logging
import warnings
from collections.abc import Iterator

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy", category=UserWarning)
    import torch

from torch import nn

from flashdoctor.attention import (
    NOT_AVAILABLE_MESSAGE,
    FlashAttention,
    backend_usage,
    flash_attention,
    replace_with_flash_attention,
)
from tests.support.runtime_fakes import fa3_minimal_build_fixture, pretend_h100  # noqa: F401 (a fixture)

SHAPES = [(2, 16), (2, 16), (3, 16), (2, 24), (2, 40)]  # (batch, seq): the same, then new ones


@pytest.fixture(autouse=True)
def _fresh_dynamo() -> Iterator[None]:
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


class _Causal(nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return flash_attention(q, k, v, causal=True) * 2


def test_compiled_flash_attention_is_one_graph_logs_once_and_computes_the_same(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = _Causal()
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    with caplog.at_level(logging.INFO, logger="flashdoctor.attention"):
        for batch, seq in SHAPES:
            q, k, v = (torch.randn(batch, seq, 4, 8) for _ in range(3))
            torch.testing.assert_close(compiled(q, k, v), model(q, k, v))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(NOT_AVAILABLE_MESSAGE)]
    assert len(lines) == 1, lines
    # Only the uncompiled calls are counted: a compiled graph runs no Python to count with.
    assert backend_usage() == {"sdpa": len(SHAPES)}


def test_compiled_flash_attention_in_deterministic_mode_is_one_graph() -> None:
    """torch.use_deterministic_algorithms(True) makes the call read warn_only, which dynamo cannot trace."""
    model = _Causal()
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    was = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        for batch, seq in SHAPES[:3]:
            q, k, v = (torch.randn(batch, seq, 4, 8) for _ in range(3))
            torch.testing.assert_close(compiled(q, k, v), model(q, k, v))
    finally:
        torch.use_deterministic_algorithms(was[0], warn_only=was[1])


def test_uncompiled_calls_decide_without_the_trace_time_route(monkeypatch: pytest.MonkeyPatch) -> None:
    """The constant-result route (plain values, a rebuilt AttentionCall: ~2x the decision's cost) is for
    tracing only; an uncompiled call takes decide() and log_decision() directly."""
    from flashdoctor.runtime import call

    def traced_only(*args: object) -> None:
        raise AssertionError("_decide_and_log ran outside torch.compile")

    monkeypatch.setattr(call, "_decide_and_log", traced_only)
    q = torch.randn(1, 4, 2, 8)
    flash_attention(q, q, q)
    assert backend_usage() == {"sdpa": 1}


@pytest.mark.slow
def test_compiled_flash_attention_module_and_replaced_encoder_are_one_graph_each() -> None:
    layer = nn.TransformerEncoderLayer(32, 4, dropout=0.0, batch_first=True)
    encoder, replaced = replace_with_flash_attention(
        nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    )
    assert replaced == ["layers.0.self_attn", "layers.1.self_attn"]
    for model in (FlashAttention(32, 4), encoder.eval()):
        torch._dynamo.reset()
        compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
        for batch, seq in SHAPES:
            x = torch.randn(batch, seq, 32)
            with torch.no_grad():
                torch.testing.assert_close(compiled(x), model(x))


@pytest.mark.parametrize("dynamo_too", [False, True], ids=["torch-2.1", "no-dynamo-helper"])
def test_the_call_path_works_on_a_torch_without_the_newer_compiler_helpers(
    monkeypatch: pytest.MonkeyPatch, dynamo_too: bool
) -> None:
    """torch.compiler.is_compiling is new in 2.3 (and torch.compiler in 2.1): without them the runtime
    imports and a call returns its result, instead of an AttributeError after the kernel ran."""
    from flashdoctor.runtime import call, compat, kernels

    def reload_runtime() -> None:
        for module in (compat, kernels, call):
            importlib.reload(module)

    monkeypatch.delattr(torch.compiler, "is_compiling", raising=False)
    monkeypatch.delattr(torch.compiler, "assume_constant_result", raising=False)
    older = []  # torch 2.1/2.2's own torch._dynamo.is_compiling (2.13's calls the one deleted above)
    if dynamo_too:
        monkeypatch.delattr(torch._dynamo, "is_compiling", raising=False)
    else:
        monkeypatch.setattr(torch._dynamo, "is_compiling", lambda: bool(older.append(1)))
    try:
        reload_runtime()
        assert compat.is_compiling() is False
        q, k, v = (torch.randn(2, 8, 4, 16) for _ in range(3))
        expected = torch.nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
        ).transpose(1, 2)
        torch.testing.assert_close(call.flash_attention(q, k, v, causal=True), expected)
        torch.testing.assert_close(flash_attention(q, k, v, causal=True), expected)
        assert backend_usage() == {"sdpa": 2}
        assert bool(older) is not dynamo_too  # the older function answered
    finally:
        monkeypatch.undo()
        reload_runtime()


@pytest.mark.parametrize(("backend", "head_dim"), [("sdpa-flash", 8), ("fa3", 128)])
def test_compiled_call_on_a_gpu_kernel_is_one_graph(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, backend: str, head_dim: int
) -> None:
    """The GPU paths, compiled with fullgraph: an H100 without flash-attn runs SDPA's flash kernel, forced
    (sdpa_kernel, the warnings torch gives for refusing it caught), here on torch's CPU kernels; one with
    an FA3 build runs its function, found by import_backend (the stand-in build)."""
    if backend == "fa3":
        request.getfixturevalue("fa3_minimal_build")
    else:
        pretend_h100(monkeypatch, cudnn="disabled")
    model = _Causal()
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    for batch, seq in SHAPES[:3]:
        q, k, v = (torch.randn(batch, seq, 4, head_dim, dtype=torch.bfloat16) for _ in range(3))
        torch.testing.assert_close(compiled(q, k, v), model(q, k, v))
    assert backend_usage() == {backend: 3}
