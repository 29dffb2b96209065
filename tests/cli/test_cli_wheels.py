"""`flashdoctor install --dry-run`, `flashdoctor wheels` and check's installable verdicts, through click's
runner (target specs: nothing probed) and as real processes for the error paths."""

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
from tests.support.paths import ROOT, TARGETS

A100_WHEEL = "flash_attn-2.8.3.post1+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"


def run(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    # standalone_mode=False: the command's return value (its exit code, as main() uses it) is kept
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False, standalone_mode=False)


def target(name: str) -> str:
    return str(TARGETS / f"{name}.json")


def spec_file(tmp_path: Path, **spec: Any) -> str:
    p = tmp_path / "target.json"
    p.write_text(json.dumps(spec), encoding="utf-8")
    return str(p)


def process(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    child = dict(os.environ if env is None else env, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "flashdoctor", *args],
        capture_output=True,
        text=True,
        env=child,
        timeout=120,
        check=False,
    )


# -- install --dry-run --------------------------------------------------------------------------------
def test_dry_run_json_plan_for_a_target() -> None:
    r = run("install", "--dry-run", "--json", "--target", target("a100"))
    assert r.return_value == 0
    doc = json.loads(r.stdout)
    plan_fields = {"action", "variant", "wheel", "alternatives", "rejected", "reasons", "blockers", "origin"}
    plan_fields.add("selection")  # what the plan was made with (docs/json.md, "Install plan")
    envelope = {"schema", "command", "status", "exit_code", "interpreter"}
    assert set(doc) == plan_fields | envelope  # + the result envelope
    assert doc["selection"] == {"version": None, "allow_community": False, "index": None}
    assert (doc["schema"], doc["command"], doc["status"], doc["exit_code"]) == (
        "flashdoctor/plan/1",
        "install",
        "ok",
        0,
    )
    assert (doc["action"], doc["variant"]) == ("wheel", "fa2")
    assert doc["wheel"]["filename"] == A100_WHEEL
    assert doc["wheel"]["url"] == (
        "https://github.com/Dao-AILab/flash-attention/releases/download/v2.8.3.post1/"
        "flash_attn-2.8.3.post1%2Bcu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"
    )
    assert doc["wheel"]["source"] == "official" and doc["wheel"]["version"] == "2.8.3.post1"
    assert len(doc["wheel"]["sha256"]) == 64


def test_dry_run_human_plan() -> None:
    r = run("install", "--fa2", "--dry-run", "--target", target("a100"))
    assert r.return_value == 0
    assert f"plan: wheel {A100_WHEEL}" in " ".join(r.output.split())  # wrapped at words to the width
    assert "alternatives:" in r.output and "nearest misses" in r.output
    assert "nothing was changed (dry run)" in r.output


def test_variant_flags() -> None:
    fa3 = json.loads(run("install", "--fa3", "--dry-run", "--json", "--target", target("h100")).stdout)
    assert fa3["variant"] == "fa3"
    assert fa3["wheel"]["url"] == (
        "https://download.pytorch.org/whl/cu130/flash_attn_3-3.0.0-cp39-abi3-manylinux_2_28_x86_64.whl"
    )
    fa4 = json.loads(run("install", "--fa4", "--dry-run", "--json", "--target", target("h100")).stdout)
    assert fa4["variant"] == "fa4" and fa4["wheel"]["source"] == "pypi"


def test_unsupported_exits_1_and_names_sdpa() -> None:
    r = run("install", "--dry-run", "--target", target("t4"))
    assert r.return_value == 1
    assert "plan: unsupported" in r.output
    assert "PyTorch SDPA" in r.output and "blockers: gpu-unsupported" in r.output


def test_allow_community_and_version(tmp_path: Path) -> None:
    h100 = target("h100-torch213")  # torch 2.13 + CUDA 13: no official FA2 wheel loads
    assert json.loads(run("install", "--dry-run", "--json", "--target", h100).stdout)["action"] == "build"
    doc = json.loads(run("install", "--dry-run", "--json", "--allow-community", "--target", h100).stdout)
    assert doc["wheel"]["source"].startswith("community:")
    doc = json.loads(
        run("install", "--dry-run", "--json", "--version", "<2.8", "--target", target("a100")).stdout
    )
    assert (
        doc["wheel"]["filename"] == "flash_attn-2.7.3+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"
    )


def test_index_option(tmp_path: Path) -> None:
    small = {
        "schema": "flashdoctor/wheels-index/1",
        "sources": {"official": {"kind": "github-releases", "rank": 0, "community": False,
                                 "url": "https://example.invalid/{tag}/{filename_quoted}"}},
        "wheels": [{"filename": "flash_attn-2.8.1+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl",
                    "source": "official", "evidence": "test", "sha256": None, "tag": "v2.8.1"}],
    }  # fmt: skip
    path = tmp_path / "index.json"
    path.write_text(json.dumps(small), encoding="utf-8")
    doc = json.loads(
        run("install", "--dry-run", "--json", "--index", str(path), "--target", target("a100")).stdout
    )
    assert doc["wheel"]["url"] == (
        "https://example.invalid/v2.8.1/flash_attn-2.8.1%2Bcu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"
    )


@pytest.mark.system
def test_bad_index_is_a_clear_usage_error(tmp_path: Path) -> None:
    bad = json.loads((ROOT / "wheels_index.json").read_text())
    bad["wheels"] = bad["wheels"][:3]
    bad["wheels"][2]["sha256"] = "not-a-digest"
    name = bad["wheels"][2]["filename"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad), encoding="utf-8")
    r = process("install", "--dry-run", "--index", str(path), "--target", target("a100"))
    assert r.returncode == 2
    assert f"entry 2 ({name}), field 'sha256'" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.system
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("install", "--target", "T"), "--target describes another machine"),
        (
            ("install", "--dry-run", "--version", "two", "--target", "T"),
            "--version 'two' is not a version specifier",
        ),
        (
            ("install", "--dry-run", "--target", "T", "--python", sys.executable),
            "--target and --python exclude",
        ),
        (("wheels", "--coverage", "--target", "T"), "--coverage describes every"),
    ],
)
def test_usage_errors(args: tuple[str, ...], message: str) -> None:
    r = process(*(target("a100") if a == "T" else a for a in args))
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.system
def test_dry_run_probes_this_interpreter() -> None:
    r = process("install", "--dry-run", "--json", "--python", sys.executable)
    doc = json.loads(r.stdout)
    assert doc["variant"] == "fa2"
    assert r.returncode == (1 if doc["action"] == "unsupported" else 0), r.stderr
    if doc["action"] == "unsupported":  # the CPU test machines: no GPU, or torch without CUDA
        assert any("no NVIDIA GPU" in x or "CPU-only" in x for x in doc["reasons"]), doc["reasons"]


# -- wheels ---------------------------------------------------------------------------------------------
def test_wheels_lists_fits_and_misses() -> None:
    r = run("wheels", "--json", "--target", target("a100"), "--limit", "5")
    doc = json.loads(r.stdout)
    assert doc["variant"] == "fa2" and doc["total"] > 5000
    assert doc["fits"][0]["filename"] == A100_WHEEL
    assert len(doc["fits"]) == 5 and len(doc["rejected"]) == 5
    assert all(rej["reasons"] for rej in doc["rejected"])
    human = run("wheels", "--target", target("a100"), "--limit", "3").output
    assert "★" in human and "what `flashdoctor install --fa2` would choose" in human
    assert "more not shown" in human


def test_wheels_all() -> None:
    doc = json.loads(run("wheels", "--fa3", "--all", "--json", "--target", target("h100")).stdout)
    assert len(doc["fits"]) + len(doc["rejected"]) == doc["total"]


def test_coverage() -> None:
    doc = json.loads(run("wheels", "--coverage", "--json").stdout)
    assert set(doc["platforms"]) == {"linux_x86_64", "linux_aarch64", "win_amd64"}

    def cell(platform: str, torch: str, cuda: str, python: str) -> dict[str, Any]:
        found = [
            c
            for c in doc["platforms"][platform]
            if (c["torch"], c["cuda"], c["python"]) == (torch, cuda, python)
        ]
        assert len(found) == 1
        return found[0]

    c = cell("linux_x86_64", "2.8", "12.8", "3.12")
    assert c["official"] and c["best_official"] == A100_WHEEL
    # official wheels stop at torch 2.10, whose wheels load on 2.11 and 2.12 (measured), not on 2.13
    assert cell("linux_x86_64", "2.11", "13.0", "3.12")["best_official"].endswith(
        "+cu13torch2.10cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"
    )
    assert not cell("linux_x86_64", "2.13", "13.0", "3.12")["official"]
    assert cell("linux_x86_64", "2.13", "13.0", "3.12")["any"]
    assert not cell("linux_aarch64", "2.11", "13.0", "3.12")["official"]  # measured on x86_64 only
    assert cell("linux_aarch64", "2.8", "12.8", "3.12")["official"]
    assert not cell("linux_aarch64", "2.8", "12.8", "3.11")[
        "official"
    ]  # the aarch64 additions are cp312 only
    win = cell("win_amd64", "2.8", "12.8", "3.12")
    assert not win["official"] and win["any"]  # no official Windows wheels; community ones exist
    assert not cell("linux_x86_64", "2.10", "12.8", "3.11")["official"]  # torch 2.10: cp312 only
    human = run("wheels", "--coverage").output
    assert "linux_x86_64" in human and "cells with an official wheel" in human


# -- check's verdicts -----------------------------------------------------------------------------------
def test_check_says_installable_with_the_wheel() -> None:
    doc = json.loads(run("check", "--json", "--target", target("a100")).stdout)
    fa2 = doc["verdicts"]["fa2"]
    assert fa2["verdict"] == "installable"
    assert fa2["wheel"] == A100_WHEEL
    h100 = json.loads(run("check", "--json", "--target", target("h100")).stdout)["verdicts"]
    # torch 2.11: no FA2 wheel of its own; the official torch 2.10 one loads there (measured)
    assert h100["fa2"]["verdict"] == "installable"
    assert h100["fa2"]["wheel"] == "flash_attn-2.8.3+cu13torch2.10cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"
    assert h100["fa3"]["wheel"] == "flash_attn_3-3.0.0-cp39-abi3-manylinux_2_28_x86_64.whl"
    newer = json.loads(run("check", "--json", "--target", target("h100-torch213")).stdout)["verdicts"]
    assert newer["fa2"]["verdict"] == "buildable"  # torch 2.13: none loads


def test_check_uses_the_index_named_by_the_environment(tmp_path: Path) -> None:
    empty = {"schema": "flashdoctor/wheels-index/1", "sources": {"official": {"kind": "github-releases",
             "rank": 0, "community": False}}, "wheels": []}  # fmt: skip
    path = tmp_path / "empty.json"
    path.write_text(json.dumps(empty), encoding="utf-8")
    doc = json.loads(
        run("check", "--json", "--target", target("a100"), env={"FLASHDOCTOR_WHEELS_INDEX": str(path)}).stdout
    )
    assert doc["verdicts"]["fa2"]["verdict"] == "buildable"
