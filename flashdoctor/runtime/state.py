"""The runtime's process-wide state: what it logged, which backends failed, which ran.

No torch here. Every runtime module logs on the one logger ``flashdoctor.attention`` (the name users
configure), each message once per process.
"""

from __future__ import annotations

import logging
from collections import Counter

from flashdoctor.runtime.dispatch import AttentionCall

#: The logger every runtime message goes to (documented; users configure it by this name).
LOGGER_NAME = "flashdoctor.attention"
logger = logging.getLogger(LOGGER_NAME)

#: The guide's two messages.
NOT_AVAILABLE_MESSAGE = "FlashAttention not available, using standard attention"
REPLACED_MESSAGE = "Replaced {name} with FlashAttention"

LOGGED: set[str] = set()
#: (backend, kind of call) pairs where the backend raised at runtime: not tried again for that kind.
FAILED: set[tuple[str, AttentionCall]] = set()
USAGE: Counter[str] = Counter()


def log_once(level: int, message: str) -> None:
    if message not in LOGGED:
        LOGGED.add(message)
        logger.log(level, message)


def backend_usage(reset: bool = False) -> dict[str, int]:
    """How many calls each backend ran in this process (what actually ran, after any fallback).

    Only calls that went through flashdoctor's dispatch count: where torch's fused
    ``nn.TransformerEncoderLayer`` inference path runs instead (``replace_with_flash_attention(...,
    native_fast_path=True)``), nothing is counted (docs/runtime.md)."""
    out = dict(USAGE)
    if reset:
        USAGE.clear()
    return out
