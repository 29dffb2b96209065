"""What the target interpreter offers a source build (probed by flashdoctor.probe.buildtools)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class BuildTools:
    """``modules``: name -> version (None = not importable). ``torch_ok`` None = not probed."""

    modules: Mapping[str, str | None] = field(default_factory=dict)
    torch_ok: bool | None = None
    torch_error: str | None = None
    torch_version: str | None = None
    torch_cuda: str | None = None
    cxx11abi: bool | None = None
