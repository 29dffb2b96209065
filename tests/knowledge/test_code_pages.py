"""data/code_pages.json: valid against its schema, every code page one Python can encode and decode, and
each family's own (explain reads a log of a machine in its family's code pages only)."""

from __future__ import annotations

import codecs

from flashdoctor.knowledge.code_pages import code_page_families
from flashdoctor.knowledge.data import load_data
from flashdoctor.knowledge.schemas import schema_validator


def test_the_data_is_valid_and_every_code_page_is_a_python_codec_of_one_family() -> None:
    assert list(schema_validator("code-pages.schema.json").iter_errors(load_data("code_pages"))) == []
    seen: dict[str, str] = {}
    for family in code_page_families():
        assert family.codecs[0] == family.ansi and len(set(family.codecs)) == len(family.codecs), family
        for codec in family.codecs:
            name = codecs.lookup(codec).name  # raises LookupError for a name Python does not know
            assert seen.setdefault(name, family.family) == family.family, (codec, seen[name], family)
