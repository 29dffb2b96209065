"""docs/commands.md and docs/codes.md are generated (scripts/gen_docs.py): stale committed pages fail."""

from __future__ import annotations

import re
from pathlib import Path
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


def _slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _pages() -> list[Path]:
    return [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_relative_link_in_the_docs_names_a_file_and_heading_that_exist() -> None:
    broken = []
    for page in _pages():
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue  # https://, mailto:
            path, _, anchor = target.partition("#")
            linked = page.parent / path if path else page
            if not linked.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and linked.suffix == ".md":
                headings = re.findall(r"^#+ (.*)$", linked.read_text(encoding="utf-8"), re.M)
                if anchor not in {_slug(h) for h in headings}:
                    broken.append(f"{page.name}: {target} (no such heading)")
    assert broken == []


def test_every_docs_page_the_docs_and_the_data_cite_exists() -> None:
    """A knowledge entry's `source` or a page that sends the reader to docs/X.md names a page that is there
    (CHANGELOG.md is history: it may name a page that went)."""
    pages = [p for p in _pages() if p.name != "CHANGELOG.md"]
    cited = [*pages, ROOT / "action.yml", *sorted((ROOT / "flashdoctor" / "data").glob("*.json"))]
    missing = sorted(
        f"{path.name}: {ref}"
        for path in cited
        for ref in set(re.findall(r"\bdocs/[\w./-]+\.(?:md|yml)\b", path.read_text(encoding="utf-8")))
        if not (ROOT / ref).exists()
    )
    assert missing == []


def test_every_flashdoctor_command_the_docs_and_the_data_name_has_options_that_exist() -> None:
    """A fix or a page that tells the user to run ``flashdoctor CMD --opt`` names an option CMD has: explain's
    fixes said ``install --{variant} --wheel FILE``, which install refuses (No such option: --wheel)."""
    from flashdoctor.cli import cli

    opts = {
        name: {"--help"} | {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
        for name, cmd in cli.commands.items()
    }
    # the command's own tokens: up to a bracket, a pipe, `&&`, a comma, a semicolon, a comment or a quote
    command = re.compile(r"\bflashdoctor ([a-z][\w-]*)([^`\n\"'()|;&,#]*)")
    texts = [
        *_pages(),
        ROOT / "action.yml",
        *sorted((ROOT / "flashdoctor" / "data").glob("*.json")),
        *sorted((ROOT / "flashdoctor").rglob("*.py")),
    ]
    unknown = sorted(
        f"{path.relative_to(ROOT)}: flashdoctor {m[1]} {opt}"
        for path in texts
        if path.name != "CHANGELOG.md"
        for m in command.finditer(path.read_text(encoding="utf-8"))
        if m[1] in opts
        for opt in re.findall(r"(?<![\w-])--[a-z{][\w{}-]*", m[2])
        if "{" not in (named := opt.replace("{variant}", "fa2"))
        and named not in opts[m[1]]  # f-string: skipped
    )
    assert unknown == []
