"""docs/commands.md and docs/codes.md are generated (scripts/gen_docs.py): stale committed pages fail."""

from __future__ import annotations

from types import ModuleType

from tests.support.paths import ROOT, load_script


def gen_docs() -> ModuleType:
    return load_script("gen_docs")


def test_committed_pages_are_what_the_generator_writes() -> None:
    mod = gen_docs()
    for name, make in mod.PAGES.items():
        committed = (ROOT / "docs" / name).read_text(encoding="utf-8")
        assert committed == make(), f"docs/{name} is stale: run python scripts/gen_docs.py"


def test_the_pages_cover_every_command_option_and_code() -> None:
    from flashdoctor.cli import cli
    from flashdoctor.knowledge.codes import registry

    mod = gen_docs()
    commands, codes = mod.commands_md(), mod.codes_md()
    assert "_FLASHDOCTOR_COMPLETE=bash_source flashdoctor" in commands  # shell completion
    for name, cmd in cli.commands.items():
        assert f"## `flashdoctor {name}`" in commands
        for p in cmd.params:
            if not getattr(p, "hidden", False) and getattr(p, "opts", None) and p.param_type_name == "option":
                assert f"`{p.opts[0]}" in commands or f", {p.opts[0]}" in commands, (name, p.opts)
        assert "**Examples**" in commands
    for kind_codes in registry().values():
        for code in kind_codes:
            assert f"| `{code}` |" in codes
