"""A small stand-in for the GitHub Actions runner: it runs action.yml's composite steps the way the runner
does (bash with -e -o pipefail, the GITHUB_OUTPUT / GITHUB_ENV / GITHUB_PATH / GITHUB_STEP_SUMMARY files,
`${{ inputs.* }}`, `${{ github.action_path }}`, `${{ steps.<id>.outputs.* }}`, `if: inputs.x == 'y'`), so
the Action is proven by running it, not by reading it.

Only the expression forms action.yml uses are understood; anything else fails loudly.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from tests.support.paths import ROOT

_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


@dataclass
class ActionRun:
    outputs: dict[str, str]
    steps: list[dict[str, Any]] = field(default_factory=list)  # name, exit code, stdout, stderr
    summary: str = ""
    failed: bool = False

    @property
    def stdout(self) -> str:
        return "".join(s["stdout"] for s in self.steps)

    @property
    def stderr(self) -> str:
        return "".join(s["stderr"] for s in self.steps)


def load_action() -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load((ROOT / "action.yml").read_text(encoding="utf-8"))
    return data


def parse_file_commands(text: str) -> dict[str, str]:
    """GITHUB_OUTPUT / GITHUB_ENV syntax: `name=value` lines and `name<<DELIM` … `DELIM` blocks."""
    out: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            body = []
            i += 1
            while i < len(lines) and lines[i] != delim:
                body.append(lines[i])
                i += 1
            if i >= len(lines):
                raise AssertionError(f"unterminated {name}<<{delim} block")
            out[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            out[name] = value
        elif line.strip():
            raise AssertionError(f"not a file command: {line!r}")
        i += 1
    return out


# The runner's registered workflow commands (actions/runner, ActionCommandManager.cs: its command
# extensions plus stop-commands).
REGISTERED = frozenset(
    [
        "set-env",
        "set-output",
        "save-state",
        "add-mask",
        "add-path",
        "add-matcher",
        "remove-matcher",
        "debug",
        "warning",
        "error",
        "notice",
        "group",
        "endgroup",
        "echo",
        "stop-commands",
    ]
)


def _parse_command(line: str, names: set[str]) -> tuple[str, str, str] | None:
    """(name, properties, data) when the runner reads ``line`` as a workflow command (actions/runner,
    ActionCommand.cs): `::name[ props]::data` after leading blanks (TryParseV2), else
    `##[name[ props]]data` anywhere in the line (TryParse, the legacy form). Nothing is unescaped."""
    text = line.lstrip()
    if text.startswith("::") and (end := text.find("::", 2)) >= 0:
        name, _, props = text[2:end].partition(" ")
        if name in names:
            return name, props, text[end + 2 :]
    if (start := line.find("##[")) >= 0 and (end := line.find("]", start)) >= 0:
        name, _, props = line[start + 3 : end].partition(" ")
        if name in names:
            return name, props, line[end + 1 :]
    return None


def workflow_commands(output: str) -> list[tuple[str, str, str]]:
    """The workflow commands the runner runs from a step's output, in order, as (name, properties,
    data); ::stop-commands::TOKEN (listed) pauses the others until ::TOKEN:: (ActionCommandManager.cs).
    The runner pauses both streams at once; they are read here one at a time."""
    names, stop, out = set(REGISTERED), None, []
    for line in output.splitlines():
        parsed = _parse_command(line, names)
        if parsed is None:
            continue
        if stop is not None:
            if parsed[0] == stop:
                names.discard(stop)
                stop = None
        else:
            out.append(parsed)
            if parsed[0] == "stop-commands":
                stop = parsed[2]
                names.add(stop)
    return out


def _evaluate(expr: str, ctx: dict[str, Any]) -> str:
    if m := re.fullmatch(r"inputs\.([\w-]+)", expr):
        return str(ctx["inputs"][m.group(1)])
    if expr == "github.action_path":
        return str(ctx["action_path"])
    if m := re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expr):
        return str(ctx["steps"].get(m.group(1), {}).get(m.group(2), ""))
    raise AssertionError(f"expression not understood by the test runner: {expr}")


def _substitute(text: str, ctx: dict[str, Any]) -> str:
    return _EXPR.sub(lambda m: _evaluate(m.group(1), ctx), text)


def _condition(cond: str | None, ctx: dict[str, Any]) -> bool:
    if cond is None:
        return True
    cond = _EXPR.sub(lambda m: m.group(1), str(cond)).strip()
    m = re.fullmatch(r"inputs\.([\w-]+)\s*==\s*'([^']*)'", cond)
    if not m:
        raise AssertionError(f"condition not understood by the test runner: {cond}")
    return str(ctx["inputs"][m.group(1)]) == m.group(2)


def run_action(
    inputs: dict[str, str], workdir: Path, environ: dict[str, str], timeout: float = 300
) -> ActionRun:
    action = load_action()
    declared = action["inputs"]
    unknown = set(inputs) - set(declared)
    assert not unknown, f"inputs the action does not declare: {unknown}"
    values = {k: str(v.get("default", "")) for k, v in declared.items()}
    values.update(inputs)
    temp = workdir / "runner-temp"
    temp.mkdir(parents=True, exist_ok=True)
    files = {
        n: workdir / f"{n.lower()}.txt"
        for n in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STEP_SUMMARY")
    }
    for f in files.values():
        f.write_text("")
    env = {
        **environ,
        "GITHUB_ACTIONS": "true",
        "CI": "true",
        "RUNNER_TEMP": str(temp),
        "GITHUB_WORKSPACE": str(workdir),
        "GITHUB_ACTION_PATH": str(ROOT),
        **{n: str(p) for n, p in files.items()},
    }
    ctx: dict[str, Any] = {"inputs": values, "action_path": ROOT, "steps": {}}
    run = ActionRun(outputs={})
    for step in action["runs"]["steps"]:
        if not _condition(step.get("if"), ctx):
            continue
        assert step.get("shell") == "bash", "every step of the composite action runs in bash"
        step_env = {**env, **{k: _substitute(str(v), ctx) for k, v in (step.get("env") or {}).items()}}
        files["GITHUB_OUTPUT"].write_text("")
        script = _substitute(step["run"], ctx)
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c", script],
            cwd=workdir,
            env=step_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        run.steps.append(
            {"name": step["name"], "code": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}
        )
        if step.get("id"):
            ctx["steps"][step["id"]] = parse_file_commands(files["GITHUB_OUTPUT"].read_text())
        env.update(parse_file_commands(files["GITHUB_ENV"].read_text()))
        for extra in files["GITHUB_PATH"].read_text().splitlines():
            env["PATH"] = extra + os.pathsep + env["PATH"]
        if proc.returncode != 0:
            run.failed = True
            break
    run.outputs = {name: _substitute(str(o["value"]), ctx) for name, o in action["outputs"].items()}
    run.summary = files["GITHUB_STEP_SUMMARY"].read_text()
    return run
