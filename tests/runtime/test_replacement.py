"""replace_with_flash_attention on modules it cannot take over without dropping behaviour.

A pruned or parametrized weight is computed, not a parameter the new module could share; hooks and a
forward replaced on the instance (what offloading wrappers do) are calls the new module would not
make. Such modules are left as they are, with a log line, and the rest of the model is still
rewritten.
"""

from __future__ import annotations

import logging
import warnings

import pytest

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy", category=UserWarning)
    import torch

from torch import nn
from torch.nn.utils import parametrize, prune

from flashdoctor.attention import FlashAttention, replace_with_flash_attention

E, H = 16, 4


class Scaled(nn.Module):
    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * 0.5


def pruned() -> nn.MultiheadAttention:
    mha = nn.MultiheadAttention(E, H, batch_first=True)
    prune.l1_unstructured(mha, "in_proj_weight", amount=0.5)
    return mha


def parametrized() -> nn.MultiheadAttention:
    mha = nn.MultiheadAttention(E, H, batch_first=True)
    parametrize.register_parametrization(mha, "in_proj_weight", Scaled())
    return mha


def hooked() -> nn.MultiheadAttention:
    mha = nn.MultiheadAttention(E, H, batch_first=True)
    mha.register_forward_hook(lambda module, args, out: (out[0] * 2, out[1]))
    return mha


def pre_hooked() -> nn.MultiheadAttention:
    mha = nn.MultiheadAttention(E, H, batch_first=True)
    mha.register_forward_pre_hook(lambda module, args: tuple(a * 3 for a in args))
    return mha


def wrapped_forward() -> nn.MultiheadAttention:
    mha = nn.MultiheadAttention(E, H, batch_first=True)
    plain = mha.forward

    def forward(*args: object, **kwargs: object) -> object:  # an offloading hook's wrapper
        out = plain(*args, **kwargs)  # type: ignore[arg-type]
        return out[0] + 1, out[1]

    mha.forward = forward  # type: ignore[method-assign]
    return mha


KEPT = {
    "pruned": (pruned, "in_proj_weight is computed (parametrized or pruned)"),
    "parametrized": (parametrized, "in_proj_weight is computed (parametrized or pruned)"),
    "forward-hook": (hooked, "it has forward or backward hooks"),
    "forward-pre-hook": (pre_hooked, "it has forward or backward hooks"),
    "instance-forward": (wrapped_forward, "its forward is replaced on the instance"),
}


class Model(nn.Module):
    def __init__(self, odd: nn.MultiheadAttention) -> None:
        super().__init__()
        self.first = nn.MultiheadAttention(E, H, batch_first=True)
        self.odd = odd
        self.last = nn.MultiheadAttention(E, H, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for attn in (self.first, self.odd, self.last):
            x = attn(x, x, x, need_weights=False)[0]
        return x


@pytest.mark.parametrize("kind", list(KEPT))
def test_a_module_it_cannot_take_over_is_kept_with_its_behaviour_and_the_rest_is_replaced(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: a pruned or parametrized weight raised TypeError half-way through the rewrite (the
    modules before it already replaced); hooks and a wrapped forward were silently dropped."""
    make, why = KEPT[kind]
    model = Model(make())
    odd = model.odd
    x = torch.randn(2, 5, E)
    with torch.no_grad():
        want = model(x)
    caplog.set_level(logging.INFO, logger="flashdoctor.attention")
    same, names = replace_with_flash_attention(model)
    assert same is model and names == ["first", "last"]
    assert model.odd is odd and not isinstance(model.odd, FlashAttention)
    assert isinstance(model.first, FlashAttention) and isinstance(model.last, FlashAttention)
    with torch.no_grad():
        torch.testing.assert_close(model(x), want)
    kept = [r.getMessage() for r in caplog.records if "kept odd" in r.getMessage()]
    assert len(kept) == 1 and why in kept[0], kept


@pytest.mark.parametrize("kind", list(KEPT))
def test_a_bare_module_it_cannot_take_over_is_returned_as_it_is(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    make, why = KEPT[kind]
    mha = make()
    caplog.set_level(logging.INFO, logger="flashdoctor.attention")
    same, names = replace_with_flash_attention(mha)
    assert same is mha and names == []
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("replace_with_flash_attention: kept model") and why in m for m in messages)


def test_replacing_again_sets_the_backend_of_modules_already_replaced(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A second replace_with_flash_attention (say with another backend=) found no nn.MultiheadAttention,
    changed nothing and said "no nn.MultiheadAttention found": the model's modules are already
    FlashAttention. backend= now applies to them; without it, the log says they are already replaced."""
    caplog.set_level(logging.INFO, logger="flashdoctor.attention")
    model = nn.Sequential(nn.MultiheadAttention(E, H, batch_first=True), nn.Linear(E, E))
    model, names = replace_with_flash_attention(model, backend="fa2")
    assert names == ["0"] and isinstance(model[0], FlashAttention) and model[0].backend == ("fa2",)
    caplog.clear()
    model, names = replace_with_flash_attention(model, backend="sdpa")
    assert names == [] and model[0].backend == ("sdpa",)
    messages = [r.getMessage() for r in caplog.records]
    assert not any("no nn.MultiheadAttention found" in m for m in messages)
    assert "replace_with_flash_attention: 0 is already a FlashAttention; its backend is now sdpa" in messages
    caplog.clear()
    model, names = replace_with_flash_attention(model)
    assert names == [] and model[0].backend == ("sdpa",)  # no backend given: left as it is
    (line,) = [r.getMessage() for r in caplog.records]
    assert line == (
        "replace_with_flash_attention: 0 is already a FlashAttention (nothing to replace; "
        "pass backend= to change its backend)"
    )
    bare, names = replace_with_flash_attention(model[0], backend="fa3")
    assert bare is model[0] and names == [] and bare.backend == ("fa3",)


def test_replacing_again_leaves_flash_attention_the_user_built_with_its_own_backend(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """backend= of a second call is for the modules replace_with_flash_attention made; it overwrote the
    backend of every FlashAttention, also one the model builds itself with its own backend=."""
    caplog.set_level(logging.INFO, logger="flashdoctor.attention")
    model = nn.Sequential(FlashAttention(E, H, backend="fa2"), nn.MultiheadAttention(E, H, batch_first=True))
    model, names = replace_with_flash_attention(model, backend="sdpa")
    assert names == ["1"] and model[0].backend == ("fa2",) and model[1].backend == ("sdpa",)
    model, names = replace_with_flash_attention(model, backend="sdpa-flash")
    assert names == [] and model[0].backend == ("fa2",) and model[1].backend == ("sdpa-flash",)
    messages = [r.getMessage() for r in caplog.records]
    assert (
        "replace_with_flash_attention: 0 is a FlashAttention the model built (backend fa2); left as it is"
        in messages
    )
    bare, names = replace_with_flash_attention(model[0], backend="fa3")
    assert bare is model[0] and names == [] and bare.backend == ("fa2",)
