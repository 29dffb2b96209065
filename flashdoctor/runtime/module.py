"""The drop-in module and the model rewrite: ``FlashAttention`` and ``replace_with_flash_attention``.

``FlashAttention`` is an ``nn.MultiheadAttention`` whose kernel-able calls go to
`flashdoctor.runtime.call.flash_attention`; everything else is ``nn.MultiheadAttention``'s own code.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flashdoctor.runtime import availability, call, dispatch, state
from flashdoctor.runtime.dispatch import AttentionCall

FUSED_KEPT_MESSAGE = (
    "replace_with_flash_attention(native_fast_path=True): nn.TransformerEncoderLayer keeps torch's fused "
    "inference path, so in eval without grad torch's own attention runs there, not FlashAttention"
)


# -- the module ------------------------------------------------------------------------------------
class FlashAttention(nn.MultiheadAttention):
    """A drop-in ``nn.MultiheadAttention`` that runs ``flash_attention``.

    Same constructor (plus ``backend``; ``batch_first`` defaults to True as in the guide), same
    parameters and state dict (loads both ways), same call
    ``(query, key, value, key_padding_mask, need_weights, attn_mask, average_attn_weights, is_causal)``
    and same outputs within floating-point tolerance.

    - Calls without attention weights and without masks (``is_causal=True`` with its causal
      ``attn_mask`` counts as mask-free, as in ``nn.MultiheadAttention``) run ``flash_attention``.
    - ``need_weights=True`` (nn.MultiheadAttention's default), a ``key_padding_mask`` or a
      non-causal ``attn_mask`` run ``nn.MultiheadAttention.forward`` itself: the exact same result.
    - ``module(x)`` is self-attention and returns only the output tensor (the guide's call);
      ``is_causal=True`` needs no ``attn_mask`` there.
    - Dropout on the attention weights applies in training only, as in nn.MultiheadAttention.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        backend: str | Sequence[str] | None = None,
    ) -> None:
        super().__init__(
            embed_dim,
            num_heads,
            dropout=dropout,
            bias=bias,
            add_bias_kv=add_bias_kv,
            add_zero_attn=add_zero_attn,
            kdim=kdim,
            vdim=vdim,
            batch_first=batch_first,
            device=device,
            dtype=dtype,
        )
        self.backend = dispatch.parse_order(backend) if backend is not None else None

    #: Made by replace_with_flash_attention: a later call's backend= applies to it (not to one the model
    #: built itself with its own backend).
    _replaced: bool = False

    @classmethod
    def from_multihead_attention(
        cls, mha: nn.MultiheadAttention, backend: str | Sequence[str] | None = None
    ) -> FlashAttention:
        """A FlashAttention that takes over `mha`'s parameters (the same tensors: optimizers and
        tied weights keep working), its configuration and its train/eval mode."""
        new = cls(
            mha.embed_dim,
            mha.num_heads,
            dropout=mha.dropout,
            bias=mha.in_proj_bias is not None,
            add_bias_kv=mha.bias_k is not None,
            add_zero_attn=mha.add_zero_attn,
            kdim=mha.kdim,
            vdim=mha.vdim,
            batch_first=mha.batch_first,
            device="meta",  # no memory: every parameter is replaced by mha's own just below
            backend=backend,
        )
        for pname in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias"):
            param = getattr(mha, pname)
            if param is None:
                new.register_parameter(pname, None)
            else:
                setattr(new, pname, param)
        new.bias_k, new.bias_v = mha.bias_k, mha.bias_v
        new.out_proj = mha.out_proj
        new.train(mha.training)
        return new

    def extra_repr(self) -> str:
        order = ",".join(self.backend) if self.backend else "auto"
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}, backend={order}"

    def forward(  # type: ignore[override,unused-ignore]
        self,
        query: Tensor,
        key: Tensor | None = None,
        value: Tensor | None = None,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> Any:
        self_call = key is None and value is None
        if self_call:
            key = value = query
            need_weights = False
        elif key is None or value is None:
            raise TypeError("FlashAttention: pass both key and value, or neither (self-attention: module(x))")
        assert key is not None and value is not None
        if query.is_nested or key.is_nested or value.is_nested:
            raise ValueError(
                "FlashAttention takes padded tensors with a key_padding_mask, not nested tensors "
                "(replace_with_flash_attention turns nested tensors off in nn.TransformerEncoder)"
            )
        kernel = not need_weights and key_padding_mask is None and (attn_mask is None or is_causal)
        if kernel:
            out = self._kernel_forward(query, key, value, causal=is_causal)
            return out if self_call else (out, None)
        if need_weights:
            state.log_once(
                logging.INFO,
                "FlashAttention: need_weights=True returns attention weights, which only standard "
                "attention computes; pass need_weights=False to run a flash kernel",
            )
        if is_causal and attn_mask is None:
            attn_mask = self._causal_mask(query, key, key_padding_mask)
        out, weights = super().forward(
            query,
            key,
            value,
            key_padding_mask=key_padding_mask,
            need_weights=need_weights,
            attn_mask=attn_mask,
            average_attn_weights=average_attn_weights,
            is_causal=is_causal,
        )
        return out if self_call else (out, weights)

    def _causal_mask(self, query: Tensor, key: Tensor, key_padding_mask: Tensor | None) -> Tensor:
        # nn.MultiheadAttention needs the mask that is_causal hints at once a padding mask is there.
        seq_dim = 1 if (query.dim() == 3 and self.batch_first) else 0
        lq, lk = query.shape[seq_dim], key.shape[seq_dim]
        upper = torch.ones(lq, lk, dtype=torch.bool, device=query.device).triu(1)
        if key_padding_mask is None or key_padding_mask.dtype == torch.bool:
            return upper
        return torch.zeros(lq, lk, dtype=query.dtype, device=query.device).masked_fill(upper, float("-inf"))

    def _project(
        self, query: Tensor, key: Tensor, value: Tensor, same: bool, kv_same: bool
    ) -> tuple[Tensor, ...]:
        e = self.embed_dim
        b = self.in_proj_bias
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            if same:
                return tuple(F.linear(query, w, b).split(e, dim=-1))  # type: ignore[no-untyped-call,unused-ignore]
            w_q, w_kv = w.split([e, 2 * e])  # type: ignore[no-untyped-call,unused-ignore]
            b_q, b_kv = b.split([e, 2 * e]) if b is not None else (None, None)  # type: ignore[no-untyped-call,unused-ignore]
            q = F.linear(query, w_q, b_q)
            if kv_same:
                k, v = F.linear(key, w_kv, b_kv).split(e, dim=-1)  # type: ignore[no-untyped-call,unused-ignore]
            else:
                w_k, w_v = w_kv.split(e)
                b_k, b_v = b_kv.split(e) if b_kv is not None else (None, None)
                k, v = F.linear(key, w_k, b_k), F.linear(value, w_v, b_v)
            return q, k, v
        b_q, b_k, b_v = b.chunk(3) if b is not None else (None, None, None)
        return (
            F.linear(query, self.q_proj_weight, b_q),
            F.linear(key, self.k_proj_weight, b_k),
            F.linear(value, self.v_proj_weight, b_v),
        )

    def _kernel_forward(self, query: Tensor, key: Tensor, value: Tensor, causal: bool) -> Tensor:
        same = query is key and key is value
        kv_same = key is value
        batched = query.dim() == 3
        if not batched:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
        elif not self.batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        bsz, tgt_len, _ = query.shape
        q, k, v = self._project(query, key, value, same, kv_same)
        if self.bias_k is not None and self.bias_v is not None:
            k = torch.cat([k, self.bias_k.expand(bsz, 1, -1)], dim=1)
            v = torch.cat([v, self.bias_v.expand(bsz, 1, -1)], dim=1)
        heads = (self.num_heads, self.head_dim)
        q, k, v = (t.unflatten(-1, heads) for t in (q, k, v))  # type: ignore[no-untyped-call,unused-ignore]
        if self.add_zero_attn:
            zeros = k.new_zeros(bsz, 1, *heads)
            k, v = torch.cat([k, zeros], dim=1), torch.cat([v, zeros], dim=1)
        out = call.flash_attention(
            q,
            k,
            v,
            causal=causal,
            dropout_p=self.dropout if self.training else 0.0,
            backend=self.backend,
        )
        out = F.linear(out.reshape(bsz, tgt_len, self.embed_dim), self.out_proj.weight, self.out_proj.bias)
        if not batched:
            return out.squeeze(0)
        return out if self.batch_first else out.transpose(0, 1)


# -- the model rewrite -----------------------------------------------------------------------------
_TAKEN_OVER = (
    "in_proj_weight",
    "q_proj_weight",
    "k_proj_weight",
    "v_proj_weight",
    "in_proj_bias",
    "bias_k",
    "bias_v",
)


def _plain_mha(module: nn.Module) -> bool:
    # Subclasses with their own forward keep it: replacing them would drop their behaviour.
    return (
        isinstance(module, nn.MultiheadAttention)
        and not isinstance(module, FlashAttention)
        and type(module).forward is nn.MultiheadAttention.forward
    )


def _why_kept(module: nn.MultiheadAttention) -> str | None:
    """Why a plain nn.MultiheadAttention cannot be taken over without dropping behaviour (None: it can).

    A new module shares only parameters: a weight computed from others (torch.nn.utils.parametrize,
    torch.nn.utils.prune) is not one, and hooks or a forward set on the instance (offloading wrappers
    do that) are calls the new module would never make."""
    for name in _TAKEN_OVER:
        if getattr(module, name, None) is not None and name not in module._parameters:
            return f"{name} is computed (parametrized or pruned), not a parameter FlashAttention can share"
    if "forward" in vars(module):
        return "its forward is replaced on the instance (a wrapper FlashAttention would not call)"
    hooks = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    if any(getattr(module, h, None) for h in hooks):
        return "it has forward or backward hooks, which FlashAttention would not call"
    return None


def _kept(name: str, module: nn.Module) -> bool:
    """True (and logged) when `module` is a plain nn.MultiheadAttention that is left as it is."""
    assert isinstance(module, nn.MultiheadAttention)
    why = _why_kept(module)
    if why is not None:
        state.logger.info("replace_with_flash_attention: kept %s (nn.MultiheadAttention): %s", name, why)
    return why is not None


def replace_with_flash_attention(
    model: nn.Module,
    *,
    backend: str | Sequence[str] | None = None,
    native_fast_path: bool = False,
) -> tuple[nn.Module, list[str]]:
    """Replace every ``nn.MultiheadAttention`` in `model` by a ``FlashAttention``, in place.

    The new modules take over the old ones' parameters (same tensors, so device, dtype, tied
    weights and optimizer state are kept) and train/eval mode. Returns the model (a new module only
    when `model` itself is an nn.MultiheadAttention) and the qualified names replaced; each is
    logged as "Replaced <name> with FlashAttention". A module that cannot be taken over without
    dropping behaviour is left as it is: a subclass with its own forward, and (logged with the
    reason) a parametrized or pruned weight, hooks, or a forward set on the instance.
    A module that is already a ``FlashAttention`` (a second call) is not replaced again: ``backend``,
    when given, becomes its backend; without it, it is left as it is. A ``FlashAttention`` the model
    built itself (not made by this function) keeps its own backend. Each is logged.

    Eval runs the flash kernel too (the default, ``native_fast_path=False``).
    ``nn.TransformerEncoderLayer`` has a fused inference path (``torch._transformer_encoder_layer_fwd``)
    that reads ``self_attn``'s weights and never calls it, so for replaced layers that path is turned
    off (``activation_relu_or_gelu = 0``, the flag torch itself uses for custom activations) and
    ``nn.TransformerEncoder``'s nested-tensor path, which would hand nested tensors to the layers, is
    turned off (``use_nested_tensor = False``). Then eval without grad runs flashdoctor's kernel choice
    (FA3 on an H100 where it is installed), ``backend_usage()`` counts it, and training and eval run
    the same kernel.

    ``native_fast_path=True`` keeps torch's fused path for eval without grad: it fuses the whole
    layer and can be faster where attention is a small part of the layer (short sequences; on an
    H100 at B32 N196 E1024 H16 bf16, 6 layers, its forward took 2.1-3.0 ms against 2.9-4.9 ms), and it
    skips padded tokens through nested tensors. But there flashdoctor's kernel does not run (torch
    picks its own SDPA kernel; FA2/FA3/FA4 are never used) and ``backend_usage()`` stays ``{}``; this
    is logged once. docs/runtime.md has the measurements.
    """
    order = dispatch.parse_order(backend) if backend is not None else None
    if _plain_mha(model):
        assert isinstance(model, nn.MultiheadAttention)
        if _kept("model", model):
            return model, []
        new = _replacement(model, order)
        _log_replacement("model", new)
        return new, ["model"]
    replaced: list[str] = []
    done: dict[int, FlashAttention] = {}  # a module used in two places stays one module
    kept: set[int] = set()  # modules left as they are (_why_kept), logged once each
    for parent_name, parent in list(model.named_modules(remove_duplicate=False)):
        # _modules, not named_children(): a module registered twice (tied) must be swapped twice.
        for child_name, child in list(parent._modules.items()):
            if child is None:
                continue
            if id(child) in done:
                setattr(parent, child_name, done[id(child)])
                continue
            if not _plain_mha(child):
                continue
            assert isinstance(child, nn.MultiheadAttention)
            name = f"{parent_name}.{child_name}" if parent_name else child_name
            if id(child) in kept or _kept(name, child):
                kept.add(id(child))
                continue
            new = _replacement(child, order)
            done[id(child)] = new
            setattr(parent, child_name, new)
            replaced.append(name)
            _log_replacement(name, new)
    for module in () if native_fast_path else model.modules():
        if isinstance(module, nn.TransformerEncoderLayer) and isinstance(module.self_attn, FlashAttention):
            module.activation_relu_or_gelu = 0
        if isinstance(module, nn.TransformerEncoder) and any(
            isinstance(getattr(layer, "self_attn", None), FlashAttention) for layer in module.layers
        ):
            module.use_nested_tensor = False
    new_ids = {id(m) for m in done.values()}
    already = [
        (name or "model", m)
        for name, m in model.named_modules()
        if isinstance(m, FlashAttention) and id(m) not in new_ids
    ]
    for name, module in already:
        _update_replaced(name, module, order)
    if not replaced and not kept and not already:
        state.logger.info(
            "replace_with_flash_attention: no nn.MultiheadAttention found in %s", type(model).__name__
        )
    elif native_fast_path and any(
        isinstance(m, nn.TransformerEncoderLayer) and isinstance(m.self_attn, FlashAttention)
        for m in model.modules()
    ):
        state.log_once(logging.INFO, FUSED_KEPT_MESSAGE)
    return model, replaced


def _replacement(mha: nn.MultiheadAttention, order: tuple[str, ...] | None) -> FlashAttention:
    new = FlashAttention.from_multihead_attention(mha, backend=order)
    new._replaced = True
    return new


def _update_replaced(name: str, module: FlashAttention, order: tuple[str, ...] | None) -> None:
    """A module replaced earlier (a second replace_with_flash_attention): `order`, when given, is its
    backend from now on; without it, it is left as it is. A FlashAttention the model built itself keeps
    its own backend. Each is logged."""
    if not module._replaced:
        state.logger.info(
            "replace_with_flash_attention: %s is a FlashAttention the model built (backend %s); left as it is",
            name,
            ",".join(module.backend) if module.backend else "auto",
        )
        return
    if order is None:
        state.logger.info(
            "replace_with_flash_attention: %s is already a FlashAttention (nothing to replace; "
            "pass backend= to change its backend)",
            name,
        )
        return
    module.backend = order
    state.logger.info(
        "replace_with_flash_attention: %s is already a FlashAttention; its backend is now %s",
        name,
        ",".join(order),
    )
    _log_plan(module)


def _log_replacement(name: str, module: FlashAttention) -> None:
    state.logger.info(state.REPLACED_MESSAGE.format(name=name))
    _log_plan(module)


def _log_plan(module: FlashAttention) -> None:
    # Say up front what the module will run on its own device and dtype (a plain self-attention call).
    weight = module.in_proj_weight if module.in_proj_weight is not None else module.q_proj_weight
    if weight is None or weight.device.type == "meta":
        return
    plain = AttentionCall(
        device=weight.device.type,
        capability=availability.device_capability(weight.device),
        dtype=availability.dtype_name(weight.dtype),
        head_dim=module.head_dim,
        rocm=availability.is_rocm() and weight.device.type == "cuda",
    )
    call.log_decision(plain, call.decide(plain, module.backend))
