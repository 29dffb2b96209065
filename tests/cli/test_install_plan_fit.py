"""`install --plan FILE` on a machine the plan was not made on: the plan's wheel is judged again with this
machine's facts (the selector's rules) and refused, before anything is downloaded, when it does not fit; the
plan's blockers are worked out here, not read from the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_install_cli import fd, pip_list
from tests.support.install_helpers import H100_BUILD, FaultServer, make_wheel, sha256_of, write_manifest
from tests.support.paths import ROOT, TARGETS

pytestmark = pytest.mark.system


def write_plan(tmp: Path, filename: str, url: str, sha256: str | None = None) -> str:
    wheel = {"filename": filename, "url": url, "sha256": sha256, "source": "official", "version": "2.8.3"}
    doc = {"action": "wheel", "variant": "fa2", "wheel": wheel, "reasons": [], "blockers": []}
    p = tmp / "plan.json"
    p.write_text(json.dumps(doc))
    return str(p)


def test_a_plan_for_another_torch_is_refused_naming_each_mismatch(tmp_path: Path) -> None:
    # made on a torch 2.8 + CUDA 12 machine; tests/targets/h100.json runs torch 2.11 + CUDA 13.0
    name = "flash_attn-2.8.3+cu12torch2.8cxx11abiTRUE-cp311-cp311-linux_x86_64.whl"
    plan = write_plan(tmp_path, name, "https://example.invalid/" + name)
    r = fd("install", "--plan", plan, "--target", str(TARGETS / "h100.json"), "--dry-run", "--json")
    assert r.returncode == 1 and r.stdout == "", r.stdout + r.stderr
    assert f"{name} does not fit the machine of --target {TARGETS / 'h100.json'}" in r.stderr
    for why in ("python-mismatch: built for cp311-cp311, this is Python 3.12",
                "torch-mismatch: built for torch 2.8, this is torch 2.11",
                "cuda-mismatch: built for CUDA 12, torch uses CUDA 13.0"):  # fmt: skip
        assert why in r.stderr
    assert "Traceback" not in r.stderr


def test_a_plans_blockers_are_those_of_this_machine(tmp_path: Path) -> None:
    # the file says nothing blocks it; here the driver (CUDA 11.4) is too old for torch's own CUDA 12.8
    name = "flash_attn-2.8.3+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"
    plan = write_plan(tmp_path, name, "https://example.invalid/" + name)
    r = fd("install", "--plan", plan, "--target", str(TARGETS / "old-driver.json"), "--dry-run", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["wheel"]["filename"] == name and doc["blockers"] == ["driver-too-old"]


@pytest.mark.slow
def test_a_wheel_for_another_python_is_refused_before_the_download(
    fresh_venv: Path, server: FaultServer, tmp_path: Path
) -> None:
    w = make_wheel(tmp_path / "w", version="2.8.3+cu12torch2.13cxx11abiTRUE", tag="cp39-cp39-linux_x86_64")
    url = server.add("/" + w.name, w.read_bytes())
    plan = write_plan(tmp_path, w.name, url, sha256_of(w))
    r = fd("install", "--plan", plan, "--python", str(fresh_venv), "--yes")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "python-mismatch: built for cp39-cp39" in r.stderr and "nothing was downloaded" in r.stderr
    assert server.hits("/" + w.name) == 0
    assert "flash-attn" not in pip_list(fresh_venv)


# -- lock --plan: judged against the machine it locks for ---------------------------------------------------
H100_FIT = "2.8.3+cu13torch2.11cxx11abiTRUE"  # tests/targets/h100.json: torch 2.11 + CUDA 13.0, Python 3.12


@pytest.mark.slow
def test_lock_refuses_a_wheel_that_does_not_fit_this_machine_before_the_download(
    server: FaultServer, tmp_path: Path
) -> None:
    """No --target: the lock is for this machine (the interpreter that runs flashdoctor, Python 3.11 and
    a CPU torch here); a wheel for Python 3.9 is refused as install refuses it, nothing fetched or written."""
    w = make_wheel(tmp_path / "w", version="2.8.3+cu12torch2.13cxx11abiTRUE", tag="cp39-cp39-linux_x86_64")
    url = server.add("/" + w.name, w.read_bytes())
    plan = write_plan(tmp_path, w.name, url)  # no digest: the lock would download it to hash it
    out = tmp_path / "flash.lock"
    r = fd("lock", "--plan", plan, "-o", str(out))
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"{w.name} does not fit this machine" in r.stderr and "nothing was downloaded" in r.stderr
    assert "python-mismatch: built for cp39-cp39" in r.stderr and "--target" in r.stderr
    assert server.hits("/" + w.name) == 0 and not out.exists()
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_lock_for_another_machine_judges_the_wheel_against_its_target(
    server: FaultServer, tmp_path: Path
) -> None:
    """A Docker build host locks for the GPU machine it builds for: with --target its spec decides, not the
    build host (Python 3.11, CPU torch here). Its wheel is locked; this machine's wheel is refused for it."""
    h100 = str(TARGETS / "h100.json")
    there = make_wheel(tmp_path / "there", version=H100_FIT, tag="cp312-cp312-linux_x86_64")
    url = server.add("/" + there.name, there.read_bytes())
    r = fd("lock", "--plan", write_plan(tmp_path, there.name, url), "--target", h100, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["entries"][0]["sha256"] == sha256_of(there)
    here = make_wheel(tmp_path / "here", version="2.8.3+cu12torch2.13cxx11abiTRUE")  # cp311: this machine's
    url = server.add("/" + here.name, here.read_bytes())
    r = fd("lock", "--plan", write_plan(tmp_path, here.name, url), "--target", h100, "--json")
    assert r.returncode == 1 and r.stdout == "", r.stdout + r.stderr
    for why in ("python-mismatch: built for cp311-cp311, this is Python 3.12",
                "torch-mismatch: built for torch 2.13, this is torch 2.11",
                "cuda-mismatch: built for CUDA 12, torch uses CUDA 13.0"):  # fmt: skip
        assert why in r.stderr
    assert server.hits("/" + here.name) == 0


# -- a local build: judged by what its build.json records, not by its name ---------------------------------
LOCAL = "2.8.3.post2+fd.sm110.hd128.bf16"  # a local label: the name says nothing of torch, CUDA or GPUs


def local_plan(tmp_path: Path, fingerprint: dict[str, object], tag: str) -> tuple[str, Path]:
    """A plan naming a build `flashdoctor build` stored in a wheelhouse (its file:// URL, build.json beside
    it), as a colleague's `install --dry-run --json` on the machine it was built for prints it."""
    w = make_wheel(tmp_path / "wh" / "0123456789abcdef", version=LOCAL, tag=tag)
    write_manifest(w, fingerprint)
    wheel = {"filename": w.name, "url": w.resolve().as_uri(), "sha256": sha256_of(w), "source": "wheelhouse",
             "version": "2.8.3.post2"}  # fmt: skip
    p = tmp_path / "plan.json"
    p.write_text(json.dumps({"action": "wheel", "variant": "fa2", "wheel": wheel, "reasons": []}))
    return str(p), w


def test_a_local_build_for_other_gpus_is_refused_by_its_build_record(tmp_path: Path) -> None:
    """A Jetson Thor build (sm_110 only) planned on an H100: its name fits (cp312, linux_x86_64), its
    build.json says it has no code for the H100. It was installed and rolled back after the smoke test."""
    thor = {**H100_BUILD, "archs": [110], "profile": "fd.sm110.hd128.bf16"}
    plan, w = local_plan(tmp_path, thor, "cp312-cp312-linux_x86_64")
    for cmd in ("install", "lock"):
        extra = ("--dry-run",) if cmd == "install" else ()
        r = fd(cmd, "--plan", plan, "--target", str(TARGETS / "h100.json"), *extra, "--json")
        assert r.returncode == 1 and r.stdout == "", (cmd, r.stdout + r.stderr)
        assert (
            f"{w.name} does not fit the machine of --target {TARGETS / 'h100.json'} (by its build.json)"
            in (r.stderr)
        ), r.stderr
        assert "has no code for GPU 0 NVIDIA H100 80GB HBM3 (sm_90) (built for sm_110)" in r.stderr
    # the same build on the GPUs it was built for is planned as before
    thor_target = {**json.loads((TARGETS / "h100.json").read_text()), "gpus": [
        {"name": "NVIDIA Jetson AGX Thor", "capability": "11.0"}]}  # fmt: skip
    (tmp_path / "thor.json").write_text(json.dumps(thor_target))
    r = fd("install", "--plan", plan, "--target", str(tmp_path / "thor.json"), "--dry-run", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["wheel"]["filename"] == w.name, r.stdout + r.stderr


@pytest.mark.slow
def test_a_local_build_for_another_torch_is_refused_before_the_install(
    fresh_venv: Path, tmp_path: Path
) -> None:
    """Without a GPU nothing rolled it back: a build for torch 2.12 (which its name does not say) installed
    into this torch 2.13 and stayed. Its build.json says so, and nothing is installed."""
    from flashdoctor.actions.wheelhouse import environment_facts
    from flashdoctor.probe import probe_environment

    env = probe_environment(python=str(fresh_venv), import_tests=False)
    facts = {**environment_facts(env), "torch": "2.12"}
    fp = {
        "variant": "fa2",
        "version": "2.8.3.post2",
        **facts,
        "archs": [110],
        "profile": "fd.sm110.hd128.bf16",
    }
    plan, w = local_plan(tmp_path, fp, f"{env.python_abi}-{env.python_abi}-{env.platform}")
    before = pip_list(fresh_venv)
    r = fd("install", "--plan", plan, "--python", str(fresh_venv), "--yes")
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"built against torch 2.12, this torch is {environment_facts(env)['torch']}" in r.stderr, r.stderr
    assert f"{w.name} does not fit this machine (by its build.json)" in r.stderr
    assert "nothing was downloaded or installed" in r.stderr
    assert pip_list(fresh_venv) == before and "flash-attn" not in before


# -- a plan that installs nothing: what it found must hold where it is replayed -----------------------------
def none_plan(tmp_path: Path) -> tuple[str, str]:
    """`install --dry-run --json` on a machine (tests/targets/h100.json) with flash-attn 2.7.4.post1: plan
    'none'. Returns the plan file and that machine's target spec."""
    spec = {**json.loads((TARGETS / "h100.json").read_text()), "installed": {"flash-attn": "2.7.4.post1"}}
    there = tmp_path / "there.json"
    there.write_text(json.dumps(spec))
    r = fd("install", "--target", str(there), "--dry-run", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["action"] == "none", r.stdout + r.stderr
    (tmp_path / "plan.json").write_text(r.stdout)
    return str(tmp_path / "plan.json"), str(there)


def test_a_none_plan_replayed_where_flash_attn_is_missing_is_refused(tmp_path: Path) -> None:
    """It printed the other machine's "flash-attn 2.7.4.post1 installed" as if true here, and exit 0."""
    plan, _there = none_plan(tmp_path)
    h100 = str(TARGETS / "h100.json")
    for cmd, extra in (("install", ("--dry-run",)), ("lock", ())):
        r = fd(cmd, "--plan", plan, "--target", h100, *extra, "--json")
        assert r.returncode == 1 and r.stdout == "", (cmd, r.stdout + r.stderr)
        assert (
            f"the plan does not hold on the machine of --target {h100}: it is 'none' because flash-attn "
            f"2.7.4.post1 installed; on the machine of --target {h100} flash-attn is not installed"
            in r.stderr
        ), r.stderr
        assert "nothing to lock" not in r.stderr and "Traceback" not in r.stderr


def test_a_none_plan_replayed_where_it_holds_says_whose_reasons_they_are(tmp_path: Path) -> None:
    plan, there = none_plan(tmp_path)
    r = fd("install", "--plan", plan, "--target", there, "--dry-run", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["action"] == "none" and doc["reasons"][:2] == [
        f"flash-attn 2.7.4.post1 is installed on the machine of --target {there}, as the plan says; the other "
        "reasons are the plan file's",
        "flash-attn 2.7.4.post1 installed",
    ]


def test_a_build_plan_is_refused_where_a_wheel_fits(tmp_path: Path) -> None:
    """`lock --plan` of a build plan said "nothing to lock" with the other machine's reasons as its hint."""
    r = fd("install", "--target", str(TARGETS / "h100-torch213.json"), "--dry-run", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["action"] == "build", r.stdout + r.stderr
    (tmp_path / "plan.json").write_text(r.stdout)
    a100 = str(TARGETS / "a100.json")
    r = fd("lock", "--plan", str(tmp_path / "plan.json"), "--target", a100)
    assert r.returncode == 1, r.stdout + r.stderr
    assert (
        f"it is 'build' because no prebuilt wheel fits this machine; on the machine of --target {a100} the "
        "plan is 'wheel' (flash_attn-" in r.stderr
    ), r.stderr


def test_a_build_plan_made_with_a_version_is_judged_with_that_version(tmp_path: Path) -> None:
    """A plan made with `--version '>=2.9'` (no wheel of it: build) was judged on replay by a plan made
    without it, where a wheel fits, and refused on the very machine it was made for (review, stop 42)."""
    a100 = str(TARGETS / "a100.json")
    r = fd("install", "--fa2", "--target", a100, "--version", ">=2.9", "--dry-run", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["action"] == "build", r.stdout + r.stderr
    (tmp_path / "plan.json").write_text(r.stdout)
    args = ["--plan", str(tmp_path / "plan.json"), "--target", a100, "--version", ">=2.9", "--dry-run"]
    r = fd("install", "--fa2", *args)
    assert "does not hold" not in r.stderr, r.stderr
    said = " ".join(r.stdout.split())
    assert f"the plan for the machine of --target {a100} is 'build' too" in said, r.stdout


# -- the selection a plan was made with: recorded in it, and replayed with it (stop 43) ---------------------
def versioned_build_plan(tmp_path: Path) -> tuple[str, str]:
    """`install --version '>=2.9' --dry-run --json` for the A100 of tests/targets/a100.json: no wheel of
    it, so 'build' (without --version a wheel fits there). Returns the plan file and the target."""
    a100 = str(TARGETS / "a100.json")
    r = fd("install", "--fa2", "--target", a100, "--version", ">=2.9", "--dry-run", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["action"] == "build", r.stdout + r.stderr
    (tmp_path / "plan.json").write_text(r.stdout)
    return str(tmp_path / "plan.json"), a100


def test_a_plan_records_its_selection_and_a_replay_uses_it(tmp_path: Path) -> None:
    """A plan file did not record its --version: replayed without it, on the very machine it was made for,
    the plan was judged by the newest release (a wheel fits) and refused, and the hint asked for the
    options again."""
    plan, a100 = versioned_build_plan(tmp_path)
    assert json.loads(Path(plan).read_text())["selection"] == {
        "version": ">=2.9",
        "allow_community": False,
        "index": None,
    }
    r = fd("install", "--fa2", "--plan", plan, "--target", a100, "--dry-run", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["reasons"][0].startswith(f"the plan for the machine of --target {a100} is 'build' too")
    assert doc["selection"]["version"] == ">=2.9"
    r = fd("lock", "--plan", plan, "--target", a100)
    assert "does not hold" not in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_an_option_given_on_replay_wins_and_the_report_names_the_plans(tmp_path: Path) -> None:
    plan, a100 = versioned_build_plan(tmp_path)
    # a --version given here selects: a wheel below 2.9 fits, so the plan is refused, saying so
    r = fd("install", "--fa2", "--plan", plan, "--target", a100, "--version", "<2.9", "--dry-run")
    assert r.returncode == 1, r.stdout + r.stderr
    said = " ".join(r.stderr.split())
    assert "the plan is 'wheel'" in said, said
    assert "the plan was made with --version >=2.9; --version <2.9 given here selects instead" in said
    assert "Traceback" not in said
    # one that agrees with the plan's holds, with the same note among its reasons
    r = fd("install", "--fa2", "--plan", plan, "--target", a100, "--version", ">=3", "--dry-run", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    reasons = json.loads(r.stdout)["reasons"]
    assert "the plan was made with --version >=2.9; --version >=3 given here selects instead" in reasons
    # --allow-community given to a plan made without it (torch 2.13: a community wheel fits, no official one)
    h100 = str(TARGETS / "h100-torch213.json")
    r = fd("install", "--target", h100, "--dry-run", "--json")
    assert json.loads(r.stdout)["action"] == "build", r.stdout + r.stderr
    (tmp_path / "h100.json").write_text(r.stdout)
    r = fd(
        "install", "--plan", str(tmp_path / "h100.json"), "--target", h100, "--allow-community", "--dry-run"
    )
    assert r.returncode == 1, r.stdout + r.stderr
    said = " ".join(r.stderr.split())
    assert "the plan was made without --allow-community; --allow-community given here selects too" in said


def test_a_plans_index_is_recorded_and_never_read_on_replay(server: FaultServer, tmp_path: Path) -> None:
    """The index a plan names may be a file of another machine, or anything a plan's author wrote: the
    replay selects from its own index (--index, else flashdoctor's), says that it differs, and reads
    nothing the plan names."""
    index = tmp_path / "index.json"
    index.write_bytes((ROOT / "wheels_index.json").read_bytes())
    a100 = str(TARGETS / "a100.json")
    r = fd("install", "--target", a100, "--index", str(index), "--version", ">=2.9", "--dry-run", "--json")
    doc = json.loads(r.stdout)
    assert doc["action"] == "build" and doc["selection"]["index"] == str(index), r.stdout + r.stderr
    doc["selection"]["index"] = url = server.add("/index.json", b"{}")
    (tmp_path / "plan.json").write_text(json.dumps(doc))
    r = fd("install", "--plan", str(tmp_path / "plan.json"), "--target", a100, "--dry-run", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    reasons = json.loads(r.stdout)["reasons"]
    assert (
        f"the plan was made with the wheel index {url}; this replay selects from flashdoctor's own index "
        "(a plan's index is never read: give it with --index)" in reasons
    ), reasons
    assert server.hits("/index.json") == 0


@pytest.mark.parametrize(
    ("selection", "said"),
    [
        ("2.8", "'selection' must be an object with version, allow_community and index"),
        ({"version": "not a spec"}, "'selection.version': 'not a spec' is not a version specifier"),
        ({"version": 2.8}, "'selection.version' must be a version specifier or null"),
        ({"allow_community": "yes"}, "'selection.allow_community' must be true or false"),
        ({"index": ["a"]}, "'selection.index' must be a file name (at most 4096 characters, no control"),
        ({"index": "/x\nflashdoctor: ok"}, "'selection.index' must be a file name (at most 4096"),
    ],
)
def test_a_bad_selection_is_a_usage_error_naming_the_field(
    tmp_path: Path, selection: object, said: str
) -> None:
    (tmp_path / "plan.json").write_text(
        json.dumps({"action": "build", "variant": "fa2", "selection": selection})
    )
    r = fd(
        "install", "--plan", str(tmp_path / "plan.json"), "--target", str(TARGETS / "a100.json"), "--dry-run"
    )
    assert r.returncode == 2 and said in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_wheel_plans_selection_is_printed_back_and_not_used(tmp_path: Path) -> None:
    """A wheel plan's wheel is the reviewer's choice: a --version given on replay does not rewrite the
    selection it was made with (the wheel is not selected again)."""
    name = "flash_attn-2.8.3+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"
    plan = write_plan(tmp_path, name, "https://example.invalid/" + name)
    made = {"version": "==2.8.3", "allow_community": False, "index": None}
    doc = json.loads(Path(plan).read_text())
    Path(plan).write_text(json.dumps({**doc, "selection": made}))
    old_driver = str(TARGETS / "old-driver.json")
    r = fd("install", "--plan", plan, "--target", old_driver, "--version", "<2.8", "--dry-run", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["wheel"]["filename"] == name and doc["selection"] == made


def test_a_plan_is_not_silently_passed_over_by_from_source(tmp_path: Path) -> None:
    """`install --plan FILE --from-source` did not read the plan: it planned (with --yes: built and
    installed) a new source build instead of the reviewed plan, exit 0."""
    plan = write_plan(tmp_path, "flash_attn-2.8.3-cp312-cp312-linux_x86_64.whl", "https://example.invalid/x")
    r = fd("install", "--plan", plan, "--from-source", "--target", str(TARGETS / "h100.json"), "--dry-run")
    assert r.returncode == 2 and not r.stdout, r.stdout + r.stderr
    assert "--plan installs exactly the plan it names; --from-source builds a new wheel" in r.stderr


def test_a_variant_flag_that_is_not_the_plans_is_a_usage_error(tmp_path: Path) -> None:
    """`install --fa3 --plan FILE` of a FA2 plan passed over --fa3 and installed (locked) FA2; a plan
    given with its own variant's flag, or none, is read as before."""
    name = "flash_attn-2.8.3+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"
    plan = write_plan(tmp_path, name, "https://example.invalid/" + name)
    old_driver = str(TARGETS / "old-driver.json")
    for cmd, extra in (("install", ("--dry-run",)), ("lock", ())):
        r = fd(cmd, "--fa3", "--plan", plan, "--target", old_driver, *extra)
        assert r.returncode == 2 and "plan:" not in r.stdout, (cmd, r.stdout + r.stderr)
        assert f"plan {plan} is for fa2, and --fa3 was given" in r.stderr, r.stderr
    r = fd("install", "--fa2", "--plan", plan, "--target", old_driver, "--dry-run", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["variant"] == "fa2", r.stdout + r.stderr


def test_a_plans_reasons_print_as_one_line_each(tmp_path: Path) -> None:
    """A plan file's reasons are printed back (after one saying whose they are), and a plan file is anyone's
    text: a reason with a line break printed as lines of its own, which could pass for flashdoctor's own
    (a forged "verified against a published digest" under the plan). Each reason stays one line."""
    plan, there = none_plan(tmp_path)
    doc = json.loads(Path(plan).read_text())
    doc["reasons"].append("see below\n  sha256: verified against a published digest\r\n\u2028forged")
    doc["reasons"].append("wide" + " " * 300 + "sha256: verified against a published digest (wrapped)")
    Path(plan).write_text(json.dumps(doc))
    r = fd("install", "--plan", plan, "--target", there, "--dry-run")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [ln for ln in r.stdout.splitlines() if "verified against a published digest" in ln]
    assert len(lines) == 2 and "see below" in lines[0] and "wide" in lines[1], r.stdout
    r = fd("install", "--plan", plan, "--target", there, "--dry-run", "--json")
    reasons = json.loads(r.stdout)["reasons"]
    assert reasons[-2] == "see below sha256: verified against a published digest forged"
    assert reasons[-1] == "wide sha256: verified against a published digest (wrapped)"


def test_a_plans_installed_version_prints_as_one_line(tmp_path: Path) -> None:
    """The refusal of a `none` plan names the version it found installed, from the file: a line break in it
    printed a line that could pass for flashdoctor's own, as a reason's did."""
    doc = {"action": "none", "variant": "fa2", "reasons": ["ok"],
           "installed": {"dist": "flash-attn", "version": "2.7.4\nflashdoctor: verified against a published digest"}}  # fmt: skip
    (tmp_path / "plan.json").write_text(json.dumps(doc))
    r = fd(
        "install", "--plan", str(tmp_path / "plan.json"), "--target", str(TARGETS / "a100.json"), "--dry-run"
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert not any(ln.startswith("flashdoctor: verified") for ln in r.stderr.splitlines()), r.stderr


def test_a_wheel_plans_selection_is_printed_back_in_flashdoctors_shape(tmp_path: Path) -> None:
    """A wheel plan's `selection` was echoed as the file held it (`{}`, unknown keys), breaking the output's
    own schema; it is printed back as flashdoctor writes it."""
    from flashdoctor.knowledge.schemas import schema_validator
    from tests.cli.test_cli_wheels import A100_WHEEL

    plan = json.loads(
        Path(write_plan(tmp_path, A100_WHEEL, "https://example.invalid/" + A100_WHEEL)).read_text()
    )
    plan["selection"] = {"extra": 1}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    r = fd("install", "--plan", str(tmp_path / "plan.json"), "--target", str(TARGETS / "a100.json"),
           "--dry-run", "--json")  # fmt: skip
    out = json.loads(r.stdout)
    assert out["selection"] == {"version": None, "allow_community": False, "index": None}, out["selection"]
    assert not list(schema_validator("plan.schema.json").iter_errors(out))


def test_a_plans_wheel_fields_with_a_line_break_are_refused(tmp_path: Path) -> None:
    """The plan prints its wheel's url, source and version: a line break in one forged a line under it."""
    plan = json.loads(Path(write_plan(tmp_path, "flash_attn-2.8.3+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl",
                                      "https://example.invalid/x.whl\n  sha256: verified against a published digest")).read_text())  # fmt: skip
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    r = fd(
        "install", "--plan", str(tmp_path / "plan.json"), "--target", str(TARGETS / "a100.json"), "--dry-run"
    )
    assert r.returncode == 2 and "'wheel.url' has a control character or line break" in r.stderr, r.stderr
