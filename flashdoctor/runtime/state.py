"""The runtime's process-wide state: what it logged, which backends failed, which ran.

No torch here. Every runtime module logs on the one logger ``flashdoctor.attention`` (the name users
configure), each message once per process. Models run attention from several threads (data loaders,
serving workers), so every change to this state happens under one lock, and readers take copies.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

from flashdoctor.runtime.dispatch import AttentionCall

#: The logger every runtime message goes to (documented; users configure it by this name).
LOGGER_NAME = "flashdoctor.attention"
logger = logging.getLogger(LOGGER_NAME)

#: The guide's two messages.
NOT_AVAILABLE_MESSAGE = "FlashAttention not available, using standard attention"
REPLACED_MESSAGE = "Replaced {name} with FlashAttention"

_LOCK = threading.Lock()
LOGGED: set[str] = set()
#: kind of call -> the backends that raised at runtime for it: not tried again for that kind.
FAILED: dict[AttentionCall, frozenset[str]] = {}
USAGE: Counter[str] = Counter()


def log_once(level: int, message: str) -> None:
    with _LOCK:
        first = message not in LOGGED
        LOGGED.add(message)
    if first:
        logger.log(level, message)


def record_failure(backend: str, kind: AttentionCall) -> None:
    """`backend` raised at runtime for this kind of call: later calls of that kind skip it."""
    with _LOCK:
        FAILED[kind] = FAILED.get(kind, frozenset()) | {backend}


def failed_for(kind: AttentionCall) -> frozenset[str]:
    """The backends that raised for this kind of call (an immutable snapshot)."""
    with _LOCK:
        return FAILED.get(kind, frozenset())


def count_use(backend: str) -> None:
    with _LOCK:
        USAGE[backend] += 1


def backend_usage(reset: bool = False) -> dict[str, int]:
    """How many calls each backend ran in this process (what actually ran, after any fallback).

    Only calls that went through flashdoctor's dispatch count: where torch's fused
    ``nn.TransformerEncoderLayer`` inference path runs instead (``replace_with_flash_attention(...,
    native_fast_path=True)``), nothing is counted (docs/runtime.md)."""
    with _LOCK:
        out = dict(USAGE)
        if reset:
            USAGE.clear()
    return out
