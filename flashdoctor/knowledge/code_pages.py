"""The code pages a Windows machine writes text in besides UTF-8, by locale family
(flashdoctor/data/code_pages.json): its console's (OEM) and its ANSI one. explain reads a non-ASCII
directory of this machine in a log saved in them, or decoded with the wrong one of them (mojibake)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from flashdoctor.knowledge.data import load_data


@dataclass(frozen=True)
class CodePageFamily:
    family: str
    oem: tuple[str, ...]
    ansi: str

    @property
    def codecs(self) -> tuple[str, ...]:
        """Its code pages, each once (the East Asian ones are OEM and ANSI both)."""
        return tuple(dict.fromkeys((self.ansi, *self.oem)))


@cache
def code_page_families() -> tuple[CodePageFamily, ...]:
    return tuple(
        CodePageFamily(x["family"], tuple(x["oem"]), x["ansi"]) for x in load_data("code_pages")["families"]
    )
