"""torch.compile's helpers on every torch the runtime supports.

``torch.compiler.is_compiling`` is new in torch 2.3 and ``torch.compiler`` itself in 2.1: on an older torch
the call path would raise AttributeError after its kernel ran (or fail to import). There,
`is_compiling` is dynamo's own older function (or always False without dynamo), and
`assume_constant_result` leaves the function as it is (nothing compiles it into a graph as a constant).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])


def _identity(fn: F) -> F:
    return fn


def _never() -> bool:
    return False


_compiler = getattr(torch, "compiler", None)


def _older_is_compiling() -> Callable[[], bool]:
    # Only on a torch without torch.compiler.is_compiling: torch._dynamo is a heavy import otherwise.
    try:
        import torch._dynamo as dynamo
    except Exception:  # a torch without dynamo, or one whose dynamo does not import here
        return _never
    return getattr(dynamo, "is_compiling", _never)


#: True while torch.compile traces the caller (then no Python of the call path runs per call).
is_compiling: Callable[[], bool] = getattr(_compiler, "is_compiling", None) or _older_is_compiling()
#: torch.compiler.assume_constant_result where it exists; else the function unchanged.
assume_constant_result: Callable[[F], F] = getattr(_compiler, "assume_constant_result", None) or _identity
