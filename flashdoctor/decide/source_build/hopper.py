"""What a flash-attention checkout's hopper/setup.py does, read from its text (never executed)."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Fa3SetupFacts:
    """What hopper/setup.py of this checkout does, read from its text (never executed)."""

    offline_switch: bool
    toolchain_download: bool  # downloads nvcc/ptxas unless nvcc is exactly 12.8
    switches: frozenset[str]


def fa3_setup_facts(text: str) -> Fa3SetupFacts:
    """The facts of a hopper/setup.py, from its text (never executed)."""
    return Fa3SetupFacts(
        offline_switch="FLASH_ATTENTION_OFFLINE_BUILD" in text,
        toolchain_download=bool(re.search(r"bare_metal_version\s*!=\s*Version\(\"12\.8\"\)", text))
        and "download_and_copy" in text,
        switches=frozenset(re.findall(r"FLASH_ATTENTION_DISABLE_[A-Z0-9]+", text)),
    )
