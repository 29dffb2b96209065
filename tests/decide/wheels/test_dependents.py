"""What installed distributions require of FlashAttention keeps the plan to the versions they allow.

Transformer Engine's setup.py declared ``install_requires`` ``flash-attn>=2.0.6,<=2.4.2,!=2.0.9,!=2.1.0``
(later ``<=2.5.8``): pip installs a newer flash-attn beside it and only warns, and the installed
transformer-engine then breaks. The selector reads those Requires-Dist lines (the probe, or a target
spec's ``dependents``) and rejects the versions they rule out (``required-by-installed``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from flashdoctor.decide.wheels import find_wheel, load_index, make_plan, select_wheels
from flashdoctor.decide.wheels.index import WheelIndex
from flashdoctor.decide.wheels.target import target_of
from flashdoctor.model.environment import Dependent, Environment
from flashdoctor.model.requirements import marker_environment, required_of
from flashdoctor.model.target import TargetSpecError, environment_from_target
from flashdoctor.probe import probe_environment
from tests.support.install_helpers import make_wheel
from tests.support.paths import ROOT
from tests.support.venvs import child_env

TE_OLD = "flash-attn (!=2.0.9,!=2.1.0,<=2.4.2,>=2.0.6)"  # as pip writes it into METADATA


def spec(**over: Any) -> dict[str, Any]:
    """An A100 with the pip torch 2.1.2+cu121 on Python 3.10 (official wheels from 2.3.x to 2.7.x fit)."""
    base: dict[str, Any] = {
        "python": "3.10",
        "platform": "linux_x86_64",
        "glibc": "2.35",
        "torch": "2.1.2+cu121",
        "cxx11abi": False,
        "driver": "550.54.15",
        "gpus": [{"name": "NVIDIA A100-SXM4-80GB", "capability": "8.0"}],
        "installed": {},
    }
    base.update(over)
    return base


def te(requires: str = TE_OLD, version: str | None = "1.4.0") -> dict[str, Any]:
    return {"dist": "transformer-engine", "version": version, "requires": requires}


@pytest.fixture(scope="module")
def index() -> WheelIndex:
    return load_index(ROOT / "wheels_index.json")


def test_the_newest_release_they_allow_is_chosen_and_the_plan_says_why(index: WheelIndex) -> None:
    free = make_plan(environment_from_target(spec()), "fa2", index)
    assert free.wheel is not None and free.wheel.version.startswith("2.7.")
    plan = make_plan(environment_from_target(spec(dependents=[te()])), "fa2", index)
    assert plan.action == "wheel" and plan.wheel is not None
    assert plan.wheel.filename == "flash_attn-2.4.2+cu122torch2.1cxx11abiFALSE-cp310-cp310-linux_x86_64.whl"
    why = next(r for r in plan.reasons if r.startswith("newer releases fit this machine too"))
    assert "transformer-engine 1.4.0 (installed) requires flash-attn!=2.0.9,!=2.1.0,<=2.4.2,>=2.0.6" in why
    assert "2.4.2, the newest release they allow, comes first" in why
    assert plan.alternatives and all(Version(a.version) <= Version("2.4.2") for a in plan.alternatives)
    nearest = plan.rejected[0]
    version = nearest.filename.split("-")[1].split("+")[0]
    assert Version(version) > Version("2.4.2")
    assert nearest.reasons == (
        f"required-by-installed: version {version}, but transformer-engine 1.4.0 (installed) requires "
        "flash-attn!=2.0.9,!=2.1.0,<=2.4.2,>=2.0.6",
    )


def test_when_no_wheel_is_allowed_the_build_is_planned_with_the_version_to_build(index: WheelIndex) -> None:
    # torch 2.3 has official wheels only from 2.5.8 on: none at or below 2.4.2
    env = environment_from_target(spec(torch="2.3.1+cu121", dependents=[te()]))
    plan = make_plan(env, "fa2", index)
    assert plan.action == "build"
    assert any(
        r.startswith(
            "official wheels fit but for versions installed distributions rule out (newest 2.7.4.post1"
        )
        for r in plan.reasons
    )
    assert (
        "transformer-engine 1.4.0 (installed) requires flash-attn!=2.0.9,!=2.1.0,<=2.4.2,>=2.0.6: build a "
        "version they allow (flashdoctor build --fa2 --flash-version V)" in plan.reasons
    )
    assert find_wheel(env, "fa2", index) is None  # check's verdict: no wheel to install


@pytest.mark.parametrize(
    ("requires", "platform", "python", "applies"),
    [
        ("flash-attn<=2.4.2; extra == 'te'", "linux_x86_64", "3.10", False),  # extras are not recorded
        ("flash-attn<=2.4.2; sys_platform == 'win32'", "linux_x86_64", "3.10", False),
        ("flash-attn<=2.4.2; sys_platform == 'win32'", "win_amd64", "3.10", True),
        ("flash-attn<=2.4.2; platform_machine == 'aarch64'", "linux_aarch64", "3.10", True),
        ("flash-attn<=2.4.2; platform_machine == 'aarch64'", "linux_x86_64", "3.10", False),
        ("flash-attn<=2.4.2; python_version < '3.11'", "linux_x86_64", "3.10", True),
        ("flash-attn<=2.4.2; python_version < '3.11'", "linux_x86_64", "3.12", False),
        (
            "flash-attn<=2.4.2; platform_system == 'Linux' and os_name == 'posix'",
            "linux_x86_64",
            "3.10",
            True,
        ),
        ("flash-attn", "linux_x86_64", "3.10", False),  # no version range: any version will do
        ("flash-attn-3<=3.0.0", "linux_x86_64", "3.10", True),
    ],
)
def test_markers_are_decided_on_the_targets_facts(
    requires: str, platform: str, python: str, applies: bool
) -> None:
    env = environment_from_target(spec(platform=platform, python=python, dependents=[te(requires)]))
    assert bool(required_of(env)) is applies


def test_marker_values_come_from_the_target_not_from_this_python() -> None:
    env = environment_from_target(spec(platform="win_amd64", python="3.12"))
    m = marker_environment(env)
    assert m["sys_platform"] == "win32" and m["platform_machine"] == "AMD64" and m["os_name"] == "nt"
    assert m["python_version"] == "3.12" and m["extra"] == ""


def test_a_requirement_on_another_variant_does_not_touch_this_one(index: WheelIndex) -> None:
    env = environment_from_target(spec(dependents=[te("flash-attn-3<=3.0.0")]))
    assert (
        select_wheels(env, "fa2", index).best
        == select_wheels(environment_from_target(spec()), "fa2", index).best
    )


def test_a_requirement_the_probe_could_not_parse_is_passed_over() -> None:
    env = Environment(
        python="3.10", platform="linux_x86_64", dependents=(Dependent("x", "1", "flash-attn <<2"),)
    )
    assert required_of(env) == ()
    assert target_of(env).required == ()


def test_the_target_spec_round_trip_and_its_errors() -> None:
    env = environment_from_target(spec(dependents=[te(version=None)]))
    assert env.to_target()["dependents"] == [te(version=None)]
    assert environment_from_target(env.to_target()) == env
    bad = [
        ([{"dist": "x", "requires": "numpy<2"}], "names 'numpy', not a FlashAttention distribution"),
        (
            [{"dist": "x", "requires": "flash-attn <<2"}],
            "'dependents[0].requires' is not a PEP 508 requirement",
        ),
        ([{"dist": "x"}], "'dependents[0]' must be an object with 'dist', 'version' and 'requires'"),
        ("flash-attn<2", "'dependents' must be a list"),
    ]
    for value, message in bad:
        with pytest.raises(TargetSpecError, match=message.replace("(", r"\(").replace("[", r"\[")):
            environment_from_target(spec(dependents=value))


# -- the probe: what pip installed into a real interpreter's site-packages ------------------------------
@pytest.mark.system
def test_the_probe_reads_what_pip_installed(tmp_path: Path) -> None:
    site = tmp_path / "site"
    wheel = make_wheel(
        tmp_path / "w",
        dist="fake_te",
        version="1.4.0",
        tag="py3-none-any",
        files={"fake_te/__init__.py": ""},
        requires=(
            "torch",
            TE_OLD.replace(" (", "").replace(")", ""),
            "flash-attn>=2.5; extra == 'te'",
            "numpy",
        ),
    )
    other = make_wheel(
        tmp_path / "w",
        dist="unrelated",
        version="1.0",
        tag="py3-none-any",
        files={"unrelated/__init__.py": ""},
        requires=("numpy",),
    )
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--disable-pip-version-check",
         "--target", str(site), str(wheel), str(other)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    # a second copy of fake-te later on sys.path is shadowed by the first, as for imports: not read
    shadowed = tmp_path / "later" / "fake_te-0.9.dist-info"
    shadowed.mkdir(parents=True)
    (shadowed / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-te\nVersion: 0.9\nRequires-Dist: flash-attn<2\n"
    )
    path = os.pathsep.join([str(site), str(tmp_path / "later")])
    env = probe_environment(python=sys.executable, environ=child_env(PYTHONPATH=path), import_tests=False)
    mine = [d for d in env.dependents if d.dist in ("fake-te", "unrelated")]
    assert mine == [
        Dependent("fake-te", "1.4.0", "flash-attn!=2.0.9,!=2.1.0,<=2.4.2,>=2.0.6"),
        Dependent("fake-te", "1.4.0", "flash-attn>=2.5; extra == 'te'"),
    ]
    assert [str(r.spec) for r in required_of(env) if r.by.dist == "fake-te"] == [
        "!=2.0.9,!=2.1.0,<=2.4.2,>=2.0.6"
    ]


@pytest.mark.system
def test_the_cli_keeps_to_a_target_specs_dependents(tmp_path: Path) -> None:
    target = tmp_path / "t.json"
    target.write_text(json.dumps(spec(dependents=[te()])), encoding="utf-8")
    p = subprocess.run(
        [sys.executable, "-m", "flashdoctor", "install", "--dry-run", "--json", "--target", str(target)],
        capture_output=True, text=True, timeout=120, env=child_env(),
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["action"] == "wheel" and doc["wheel"]["version"] == "2.4.2"
    assert any("transformer-engine 1.4.0 (installed) requires" in r for r in doc["reasons"])


def test_a_plan_names_only_what_is_required_of_its_own_distribution(index: WheelIndex) -> None:
    both = [te(), te("flash-attn-3<3.0.0")]
    wheel = make_plan(environment_from_target(spec(dependents=both)), "fa2", index)
    note = next(r for r in wheel.reasons if r.startswith("newer releases fit this machine too"))
    assert "requires flash-attn!=2.0.9" in note and "flash-attn-3" not in note
    build = make_plan(environment_from_target(spec(torch="2.3.1+cu121", dependents=both)), "fa2", index)
    lines = [r for r in build.reasons if "build a version they allow" in r]
    assert len(lines) == 1 and "flash-attn-3" not in lines[0]


def test_checks_verdict_names_the_limit_where_no_wheel_fits(index: WheelIndex) -> None:
    from flashdoctor.decide.checks import run_checks

    def finder(e: Environment, v: Any) -> str | None:
        return find_wheel(e, v, index)

    limited = run_checks(
        environment_from_target(spec(torch="2.3.1+cu121", dependents=[te()])), wheel_finder=finder
    )
    vv = limited.verdicts["fa2"]
    assert vv.verdict.value == "buildable"
    assert vv.reasons[-1] == (
        "installed packages limit its version: transformer-engine 1.4.0 (installed) requires "
        "flash-attn!=2.0.9,!=2.1.0,<=2.4.2,>=2.0.6"
    )
    free = run_checks(environment_from_target(spec(torch="2.3.1+cu121")), wheel_finder=finder)
    assert free.verdicts["fa2"].verdict.value == "installable"


def test_an_installed_version_outside_them_is_a_warning_and_is_replaced(index: WheelIndex) -> None:
    from flashdoctor.decide.checks import run_checks

    outside = environment_from_target(
        spec(installed={"flash-attn": {"version": "2.5.8", "import_ok": True}}, dependents=[te()])
    )
    found = [f for f in run_checks(outside).findings if f.code == "flash-attn-outside-required"]
    assert [(f.status.value, f.message) for f in found] == [
        ("warn", "flash-attn 2.5.8 is installed, but transformer-engine 1.4.0 (installed) requires "
                 "flash-attn!=2.0.9,!=2.1.0,<=2.4.2,>=2.0.6")
    ]  # fmt: skip
    plan = make_plan(outside, "fa2", index)
    assert plan.action == "wheel" and plan.wheel is not None and plan.wheel.version.startswith("2.4.2")
    assert any(r.startswith("flash-attn 2.5.8 is installed, but transformer-engine") for r in plan.reasons)
    inside = environment_from_target(
        spec(installed={"flash-attn": {"version": "2.4.2", "import_ok": True}}, dependents=[te()])
    )
    assert not [f for f in run_checks(inside).findings if f.code == "flash-attn-outside-required"]
    assert make_plan(inside, "fa2", index).action == "none"


# -- ranges a library checks only when it loads (data/run_time_limits.json) ------------------------------
def test_a_range_checked_at_run_time_keeps_the_plan_inside_it(index: WheelIndex) -> None:
    te2 = {
        "dist": "transformer-engine",
        "version": "2.0.0",
        "requires": "flash-attn>=2.1.1,<=2.7.3",
        "checked": "run-time",
    }
    env = environment_from_target(spec(torch="2.6.0+cu124", python="3.11", dependents=[te2]))
    assert env.to_target()["dependents"] == [te2]
    plan = make_plan(env, "fa2", index)
    assert plan.wheel is not None and plan.wheel.version == "2.7.3"
    assert any(r.endswith("comes first (they refuse a newer one when they load)") for r in plan.reasons)
    assert (
        plan.rejected[0]
        .reasons[0]
        .endswith(
            "but transformer-engine 2.0.0 (installed) accepts only flash-attn<=2.7.3,>=2.1.1 (it checks when it loads)"
        )
    )
    with pytest.raises(TargetSpecError, match=re.escape("'dependents[0].checked' must be")):
        environment_from_target(spec(dependents=[{**te2, "checked": "sometimes"}]))


@pytest.mark.system
def test_the_probe_turns_an_installed_transformer_engine_into_its_run_time_range(tmp_path: Path) -> None:
    info = tmp_path / "transformer_engine-2.0.0+7f2afaa.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: transformer_engine\nVersion: 2.0.0+7f2afaa\nRequires-Dist: pydantic\n"
    )
    env = probe_environment(
        python=sys.executable, environ=child_env(PYTHONPATH=str(tmp_path)), import_tests=False
    )
    assert [d for d in env.dependents if d.dist == "transformer-engine"] == [
        Dependent("transformer-engine", "2.0.0+7f2afaa", "flash-attn>=2.1.1,<=2.7.3", "run-time")
    ]


@pytest.mark.system
def test_xformers_range_counts_only_without_its_bundled_flashattention(tmp_path: Path) -> None:
    def install(site: Path, bundled: bool) -> None:
        info = site / "xformers-0.0.31.post1.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: xformers\nVersion: 0.0.31.post1\nRequires-Dist: torch\n"
        )
        files = ["xformers/__init__.py", *(["xformers/_C_flashattention.so"] if bundled else [])]
        (info / "RECORD").write_text("".join(f"{f},,\n" for f in files))

    expected = Dependent("xformers", "0.0.31.post1", "flash-attn>=2.7.1,<2.8.1", "run-time")
    for bundled, want in ((False, [expected]), (True, [])):
        site = tmp_path / ("bundled" if bundled else "plain")
        install(site, bundled)
        env = probe_environment(
            python=sys.executable, environ=child_env(PYTHONPATH=str(site)), import_tests=False
        )
        assert [d for d in env.dependents if d.dist == "xformers"] == want
