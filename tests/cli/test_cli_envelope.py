"""The result envelope (model/envelope.py, render/json.py): every command's real --json output carries
schema, command, status and exit_code, and validates against the JSON Schema its id names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from flashdoctor.cli import cli
from flashdoctor.knowledge.schemas import load_schema, schema_validator
from flashdoctor.model.envelope import SCHEMA_FILES, envelope
from tests.support.paths import DATA, ROOT, TARGETS

SAMPLES = DATA / "explain"
A100_WHEEL = "flash_attn-2.8.3.post1+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"


def target(name: str) -> str:
    return str(TARGETS / f"{name}.json")


def run(*args: str) -> tuple[int, dict[str, Any]]:
    r = CliRunner().invoke(cli, list(args), catch_exceptions=False, standalone_mode=False)
    return r.return_value, json.loads(r.stdout)


def check_document(doc: dict[str, Any], schema: str, command: str, exit_code: int) -> None:
    """The envelope, then the document's own schema (the one its id names)."""
    assert (doc["schema"], doc["exit_code"]) == (schema, exit_code)
    assert isinstance(doc["status"], str) and doc["status"]
    if schema != "flashdoctor/build/1":  # the build document's "command" is its build command line
        assert doc["command"] == command
        schema_validator("envelope.schema.json").validate(doc)
    schema_validator(SCHEMA_FILES[schema]).validate(doc)


def test_every_schema_file_is_a_valid_schema_and_every_id_has_one() -> None:
    import jsonschema

    for name in {*SCHEMA_FILES.values(), "envelope.schema.json"}:
        jsonschema.Draft202012Validator.check_schema(load_schema(name))
    for schema_id, name in SCHEMA_FILES.items():
        props = load_schema(name)["properties"]
        assert props["schema"].get("const") == schema_id, name


def test_envelope_adds_and_never_replaces() -> None:
    doc = envelope({"action": "none"}, command="install", exit_code=0, schema="flashdoctor/plan/1")
    assert list(doc) == ["schema", "command", "status", "action", "exit_code"]
    assert doc["status"] == "ok"
    built = envelope(
        {"schema": "flashdoctor/build/1", "command": ["pip"], "status": "built"}, command="build", exit_code=0
    )
    assert built["command"] == ["pip"] and built["status"] == "built"  # the document's own fields stay
    with pytest.raises(ValueError, match="no known schema id"):
        envelope({}, command="x", exit_code=0)


def test_check_and_plan_and_wheels_documents() -> None:
    code, doc = run("check", "--target", target("old-driver"), "--json")
    check_document(doc, "flashdoctor/check/1", "check", 1)
    assert doc["status"] == "failed" and code == 1
    code, doc = run("install", "--dry-run", "--json", "--target", target("a100"))
    check_document(doc, "flashdoctor/plan/1", "install", 0)
    assert doc["wheel"]["filename"] == A100_WHEEL
    code, doc = run("install", "--dry-run", "--json", "--target", target("t4"))
    check_document(doc, "flashdoctor/plan/1", "install", 1)
    assert doc["action"] == "unsupported" and code == 1
    code, doc = run("wheels", "--json", "--target", target("a100"), "--limit", "2")
    check_document(doc, "flashdoctor/wheels/1", "wheels", 0)
    code, doc = run("wheels", "--coverage", "--json", "--fa3")
    check_document(doc, "flashdoctor/coverage/1", "wheels", 0)


def test_build_explain_and_lock_documents(tmp_path: Path) -> None:
    code, doc = run("build", "--dry-run", "--json", "--target", target("h100"), "--arch", "90")
    check_document(doc, "flashdoctor/build/1", "build", code)
    assert doc["status"] == "planned" and isinstance(doc["command"], list)
    code, doc = run("install", "--from-source", "--dry-run", "--json", "--target", target("h100"))
    check_document(doc, "flashdoctor/build/1", "install", code)
    code, doc = run("explain", str(SAMPLES / "build-killed-docker.log"), "--no-probe", "--json")
    check_document(doc, "flashdoctor/explain/1", "explain", 0)
    assert doc["status"] == "recognised"
    code, doc = run("explain", str(SAMPLES / "unknown-error.log"), "--no-probe", "--json")
    check_document(doc, "flashdoctor/explain/1", "explain", 1)
    assert doc["status"] == "unrecognised"
    # lock: a plan with a digest and no mirror is locked without a download
    plan = json.loads(
        CliRunner().invoke(cli, ["install", "--dry-run", "--json", "--target", target("a100")]).stdout
    )
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))  # a plan in its envelope reads back as the plan
    code, doc = run("lock", "--plan", str(plan_file), "--target", target("a100"), "--json")
    check_document(doc, "flashdoctor/lock/1", "lock", 0)
    assert doc["entries"][0]["filename"] == A100_WHEEL and doc["entries"][0]["sha256_from"] == "index"


@pytest.mark.system
@pytest.mark.slow
def test_smoke_bench_and_check_smoke_documents_from_real_processes(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))

    def fd(*args: str) -> tuple[int, dict[str, Any]]:
        p = subprocess.run(
            [sys.executable, "-m", "flashdoctor", *args], capture_output=True, text=True, env=env, timeout=300
        )
        return p.returncode, json.loads(p.stdout)

    out = tmp_path / "smoke.json"
    code, doc = fd("smoke", "--device", "cpu", "--variant", "sdpa-math", "--json", "-o", str(out))
    check_document(doc, "flashdoctor/smoke/1", "smoke", code)
    assert json.loads(out.read_text()) == doc  # -o writes the same document
    code, doc = fd(
        "bench", "--device", "cpu", "--backend", "sdpa-math", "--batch", "1", "--seqlen", "16", "--json"
    )
    check_document(doc, "flashdoctor/bench/1", "bench", code)
    code, doc = fd("check", "--smoke", "--json")
    check_document(doc, "flashdoctor/check/1", "check", code)
    schema_validator("smoke-report.schema.json").validate(doc["smoke"])
