"""The attention runtime behind ``flashdoctor.attention``; it depends on ``flashdoctor.knowledge`` only.

- ``dispatch``: which backend runs a call, as a pure function of values (no torch).
- ``state``: what was logged, which backends failed, which ran (no torch).
- ``availability``: what imports and runs in this process (torch, the GPU, flash-attn imports).
- ``kernels``: running one backend on (batch, seq, heads, head_dim) tensors; the padding helpers.
- ``call``: the call path: describe, decide, log, run, fall back (``flash_attention``).
- ``module``: ``FlashAttention`` and ``replace_with_flash_attention``.

Importing this package imports nothing; the torch side comes in with ``flashdoctor.attention``.
"""
