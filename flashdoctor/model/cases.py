"""The attention problems the smoke test and the bench run, and the backends they run them on.

A ``Case`` is one attention call: shapes, dtype, causal or not, GQA, variable length. The smoke's sets
are chosen to cover what users hit (the seed guide's ViT shape, a long-context shape, causal, GQA,
varlen, both half-precision dtypes) while fitting the 20 s budget on an H100 (README "Smoke test").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from flashdoctor.knowledge.backends import SMOKE_BACKENDS, SMOKE_FALLBACK, backend, smoke_facts

Dtype = Literal["bf16", "fp16", "fp32"]
DTYPES: tuple[Dtype, ...] = ("bf16", "fp16", "fp32")

# Run order (knowledge.backends, the one vocabulary): the fallback first (its times are the speed-up
# baseline), then PyTorch's fused kernels, then the FlashAttention variants.
BACKENDS: tuple[str, ...] = SMOKE_BACKENDS
FALLBACK = SMOKE_FALLBACK
VARIANT_BACKENDS: tuple[str, ...] = tuple(b for b in BACKENDS if backend(b).kind == "variant")


@dataclass(frozen=True)
class Case:
    """One attention call. ``varlen`` holds the sequence lengths of a packed (varlen) batch."""

    name: str
    batch: int
    seqlen: int
    heads: int
    head_dim: int
    dtype: Dtype = "bf16"
    causal: bool = False
    kv_heads: int | None = None  # None = heads (no GQA)
    varlen: tuple[int, ...] | None = None

    @property
    def kv(self) -> int:
        return self.heads if self.kv_heads is None else self.kv_heads

    @property
    def gqa(self) -> bool:
        return self.kv != self.heads

    @property
    def label(self) -> str:
        """A compact shape label: 'B32 N196 H16 D64 bf16', '... causal', 'KV4', 'varlen 1+77+512'."""
        if self.varlen is not None:
            dims = f"varlen {'+'.join(map(str, self.varlen))} H{self.heads}"
        else:
            dims = f"B{self.batch} N{self.seqlen} H{self.heads}"
        if self.gqa:
            dims += f" KV{self.kv}"
        dims += f" D{self.head_dim} {self.dtype}"
        if self.causal:
            dims += " causal"
        return dims

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "batch": self.batch,
            "seqlen": self.seqlen,
            "heads": self.heads,
            "kv_heads": self.kv,
            "head_dim": self.head_dim,
            "dtype": self.dtype,
            "causal": self.causal,
            "varlen": None if self.varlen is None else list(self.varlen),
        }


def _varlen(
    name: str, lens: tuple[int, ...], heads: int, head_dim: int, dtype: Dtype = "bf16", causal: bool = True
) -> Case:
    return Case(
        name,
        batch=len(lens),
        seqlen=max(lens),
        heads=heads,
        head_dim=head_dim,
        dtype=dtype,
        causal=causal,
        varlen=lens,
    )


Shape = tuple[int, int, int, int]  # batch, seqlen, heads, head dim


def _smoke_structure(
    seed: Shape,
    long: Shape,
    gqa: Shape,
    kv_heads: int,
    varlen: tuple[int, ...],
    varlen_heads: int,
    varlen_hd: int,
) -> tuple[Case, ...]:
    """The smoke's cases, one structure at any size: a seed shape, causal and in fp16 too; a long-context
    shape, causal and not; a causal GQA call with ``kv_heads``; a packed varlen batch."""
    return (
        Case("seed", *seed),
        Case("seed-causal", *seed, causal=True),
        Case("seed-fp16", *seed, dtype="fp16"),
        Case("long", *long),
        Case("long-causal", *long, causal=True),
        Case("gqa", *gqa, causal=True, kv_heads=kv_heads),
        _varlen("varlen", varlen, heads=varlen_heads, head_dim=varlen_hd),
    )


# The seed guide's shape (ViT-L/16 at 224 px: 196 tokens, 16 heads of 64), a long-context shape at head
# dim 128, GQA 16/4 and a packed varlen batch (a sequence of 1 token included).
SMOKE_CASES_CUDA = _smoke_structure(
    (32, 196, 16, 64), (1, 4096, 16, 128), (2, 1024, 16, 128), 4, (1, 77, 512, 1000), 16, 128
)

# The same structure at toy sizes, for the hidden --device cpu mode that CI runs through a real
# subprocess with real (CPU) torch. Head dims 16 and 32 let a fake "minimal build" leave one out.
SMOKE_CASES_CPU = _smoke_structure((2, 33, 4, 16), (1, 128, 2, 32), (2, 40, 4, 16), 2, (1, 7, 33), 2, 16)


def smoke_cases(device: str) -> tuple[Case, ...]:
    return SMOKE_CASES_CPU if device == "cpu" else SMOKE_CASES_CUDA


def applicable(backend: str, case: Case) -> bool:
    """SDPA has no packed-varlen entry point; every other combination is tried (and may skip)."""
    return not (case.varlen is not None and backend_kind(backend) == "sdpa")


# -- backend knowledge: the vocabulary and the smoke's own facts (knowledge.backends) -----------------
def backend_info(name: str) -> dict[str, Any]:
    """What the smoke knows about a backend: how it is called and how its kernels are recognised
    (knowledge.backends.smoke_facts), with its kind, title, short label and forced SDPBackend from the
    vocabulary."""
    word = backend(name)
    info: dict[str, Any] = {
        **smoke_facts(name),
        "kind": word.kind,
        "title": word.title,
        "short": word.short,
        "sdpa": word.sdpa_backend,
    }
    return info


def backend_kind(name: str) -> str:
    return backend(name).kind


def backend_title(name: str) -> str:
    return backend(name).title


def backend_short(name: str) -> str:
    return backend(name).short


def normalise_backends(names: Iterable[str] | None) -> tuple[str, ...]:
    """The requested backends in run order, the fallback always included (it is the speed-up baseline).

    Raises ValueError naming an unknown backend.
    """
    if names is None:
        return BACKENDS
    wanted = set()
    for n in names:
        key = n.strip().lower()
        if key not in BACKENDS:
            raise ValueError(f"unknown backend {n!r}; known: {', '.join(BACKENDS)}")
        wanted.add(key)
    wanted.add(FALLBACK)
    return tuple(b for b in BACKENDS if b in wanted)
