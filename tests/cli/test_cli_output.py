"""What the commands print first and what their JSON says about the machine (issue 17), through click's
runner: every command that probes or installs names its interpreter (or --target) on its first line —
on standard error when standard output is a document — and its JSON carries ``interpreter``; `wheels`
without torch summarises; `explain` says whose machine its fixes are for, and --here changes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner, Result

from flashdoctor.cli import cli
from flashdoctor.knowledge.schemas import load_schema, schema_validator
from tests.support.paths import DATA, ROOT, TARGETS

LOG = DATA / "explain" / "import-undefined-symbol.log"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "80"}, catch_exceptions=False)


def target(name: str) -> str:
    return str(TARGETS / f"{name}.json")


def _plan(tmp_path: Path) -> str:
    doc = run("install", "--dry-run", "--json", "--target", target("a100")).stdout
    path = tmp_path / "plan.json"
    path.write_text(doc)
    return str(path)


COMMANDS = {
    "check": ("check",),
    "install": ("install", "--dry-run"),
    "wheels": ("wheels",),
    "build": ("build", "--dry-run"),
    "explain": ("explain", str(LOG)),
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_first_line_names_the_target_and_the_json_carries_it(name: str) -> None:
    spec = target("a100")
    human = run(*COMMANDS[name], "--target", spec)
    assert " ".join(human.stdout.split("\n", 2)[:2]).split()[:2] == ["target:", spec], human.stdout
    doc = run(*COMMANDS[name], "--target", spec, "--json")
    parsed = json.loads(doc.stdout)  # the line is not on the document's stream...
    assert " ".join(doc.stderr.split()).startswith(f"target: {spec}")  # ...but on standard error
    assert parsed["interpreter"] == {
        "path": None,
        "reason": "--target",
        "why": f"the machine described in {spec}",
        "target": spec,
    }
    schema_validator("envelope.schema.json").validate(parsed)


def test_lock_to_standard_output_keeps_the_line_off_the_file(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    r = run("lock", "--plan", plan, "--target", target("a100"))
    assert r.stdout.startswith("# Written by flashdoctor") and r.stderr.startswith(
        "target:"
    )  # a long path wraps to the next line
    r = run("lock", "--plan", plan, "--target", target("a100"), "--format", "uv")
    assert r.stdout.splitlines()[-3:-1] == ["dependencies = [", r.stdout.splitlines()[-2]]


@pytest.mark.slow  # selection over the whole index for every variant: 5-8 s
def test_wheels_without_torch_summarises_the_rejections() -> None:
    r = run("wheels", "--target", target("no-torch"))
    lines = r.stdout.splitlines()
    assert len(lines) < 60, r.stdout  # was ~200 lines repeating one reason
    text = " ".join(r.stdout.split())
    doc = json.loads(run("wheels", "--target", target("no-torch"), "--json").stdout)
    total = doc["total"]
    by_reason = {x["code"]: x for x in doc["rejected_by_reason"]}
    assert by_reason["no-cuda-torch"]["wheels"] == total  # every wheel misses for it: one line says so
    assert f"{total} no-cuda-torch torch is not installed; this wheel needs a CUDA build of torch" in text
    assert text.count("no-cuda-torch") <= 1 + 5  # the summary line and the nearest misses
    assert f"the nearest misses (5 of {total})" in text
    counts = [x["wheels"] for x in doc["rejected_by_reason"]]
    assert counts == sorted(counts, reverse=True)
    every = run("wheels", "--target", target("no-torch"), "--all")
    assert sum(ln.startswith(" ✗") for ln in every.stdout.splitlines()) == total  # --all lists every wheel


def _explain(*args: str) -> dict[str, object]:
    doc = json.loads(run("explain", str(LOG), "--target", target("h100"), "--json", *args).stdout)
    jsonschema.validate(doc, load_schema("explain-report.schema.json"))
    return doc


def test_explain_says_whose_machine_the_fixes_are_for_and_here_changes_it() -> None:
    plain = run("explain", str(LOG), "--target", target("h100"))
    text = " ".join(plain.stdout.split())
    assert (
        "fixes for the machine in this log (cp312, Linux); pass --here if it is from the machine in" in text
    )
    assert _explain()["machine"] == {
        "use_machine": False,
        "reason": "unknown: the log does not show that it comes from this machine",
        "fixes_for": "the machine in this log (cp312, Linux)",
    }
    here = run("explain", str(LOG), "--target", target("h100"), "--here")
    assert f"fixes for the machine in {target('h100')} (--here)" in " ".join(here.stdout.split())
    assert _explain("--here")["machine"] == {
        "use_machine": True,
        "reason": "here",
        "fixes_for": "this machine",
    }
    generic = run("explain", str(LOG), "--no-probe")
    assert "(--no-probe: this machine was not looked at)" in " ".join(generic.stdout.split())
    assert not generic.stdout.startswith("python:")  # nothing was probed: no interpreter to name


def test_here_excludes_no_probe(capsys: pytest.CaptureFixture[str]) -> None:
    from flashdoctor.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["explain", str(LOG), "--no-probe", "--here"])
    assert exc.value.code == 2
    assert "--no-probe excludes --python, --target and --here" in capsys.readouterr().err


@pytest.mark.system
@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_an_output_that_cannot_encode_the_marks_is_not_a_crash(encoding: str) -> None:
    """With an ASCII or Latin-1 standard output, the first "·" or "✓" raised UnicodeEncodeError: every
    command ended with exit 3 and "an unexpected error has occurred"."""
    env = {**os.environ, "PYTHONIOENCODING": encoding}
    for args in (
        ("check", "--target", target("h100")),
        ("install", "--dry-run", "--target", target("h100")),
        ("explain", "--no-probe", str(LOG)),
        ("explain", "--no-probe", "--json", str(LOG)),
    ):
        p = subprocess.run(
            [sys.executable, "-m", "flashdoctor", *args],
            capture_output=True,
            env=env,
            cwd=ROOT,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        err = p.stderr.decode(encoding, "replace")
        assert p.returncode in (0, 1) and "unexpected error" not in err, (args, p.returncode, err)
        if "--json" in args:
            json.loads(p.stdout)  # still a document (click writes UTF-8 where it finds ASCII)
