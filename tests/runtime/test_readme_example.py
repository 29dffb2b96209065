"""README's "In model code" block runs as written (on CPU torch it falls back to SDPA): the names it
binds are what the runtime returns, e.g. replace_with_flash_attention's (model, replaced) pair."""

from __future__ import annotations

import re
import warnings

with warnings.catch_warnings():
    # The development venv has no numpy; torch warns about it once, at import (CI installs numpy).
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy", category=UserWarning)
    import torch

from torch import nn

from flashdoctor.attention import FlashAttention
from tests.support.paths import ROOT


def readme_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"## In model code\n+```python\n(.*?)```", text, re.S)
    assert m is not None, "README.md: no python block under '## In model code'"
    return m.group(1)


def test_the_readme_model_code_runs_as_written() -> None:
    q, k, v = (torch.randn(2, 16, 4, 8) for _ in range(3))
    model = nn.Sequential(nn.MultiheadAttention(32, 4, batch_first=True))
    names = {"q": q, "k": k, "v": v, "model": model}
    exec(compile(readme_block(), "README.md", "exec"), names)
    assert isinstance(names["out"], torch.Tensor) and names["out"].shape == q.shape
    assert isinstance(names["model"], nn.Module) and isinstance(names["model"][0], FlashAttention)
    assert names.get("replaced", ["0"]) == ["0"]
