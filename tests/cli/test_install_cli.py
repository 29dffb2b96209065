"""`flashdoctor install` / `lock` as real processes: exit codes, --yes / --dry-run, faults that kill or
starve the process, two installs at once, locked requirements replayed by a bare pip."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from packaging.version import Version

from flashdoctor.knowledge.schemas import schema_validator
from tests.support.install_helpers import H100_BUILD, FaultServer, make_wheel, sha256_of, write_manifest
from tests.support.paths import TARGETS
from tests.support.venvs import child_env, reset_flash

pytestmark = pytest.mark.system

V = "2.8.3+cu12torch2.13cxx11abiTRUE"


def fd(*args: str, timeout: float = 120, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flashdoctor", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(NO_PROXY="127.0.0.1,localhost"),
        stdin=subprocess.DEVNULL,
        **kw,  # type: ignore[arg-type]
    )


def fd_popen(*args: str, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "flashdoctor", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(NO_PROXY="127.0.0.1,localhost"),
        stdin=subprocess.DEVNULL,
        **kw,  # type: ignore[arg-type]
    )


def pip_list(py: Path) -> dict[str, str]:
    out = subprocess.run(
        [str(py), "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True
    ).stdout
    return {d["name"].lower(): str(Version(d["version"])) for d in json.loads(out)}


def write_plan(tmp: Path, url: str, wheel: Path, sha: bool = True, action: str = "wheel") -> str:
    doc = {
        "action": action,
        "variant": "fa2",
        "wheel": None
        if action != "wheel"
        else {
            "filename": wheel.name,
            "url": url,
            "sha256": sha256_of(wheel) if sha else None,
            "source": "official",
            "version": V,
        },
        "reasons": [],
    }
    p = tmp / "plan.json"
    p.write_text(json.dumps(doc))
    return str(p)


def cache_root() -> Path:
    return Path(os.environ["XDG_CACHE_HOME"]) / "flashdoctor" / "wheels"


def final_files() -> list[Path]:
    d = cache_root() / "sha256"
    return [p for p in d.rglob("*") if p.is_file()] if d.is_dir() else []


@pytest.mark.slow
def test_install_and_json_result(fresh_venv: Path, server: FaultServer, tmp_path: Path) -> None:
    w = make_wheel(tmp_path / "w", version=V)
    plan = write_plan(tmp_path, server.add("/w.whl", w.read_bytes()), w)
    r = fd("install", "--plan", plan, "--python", str(fresh_venv), "--yes", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "installed" and doc["exit_code"] == 0 and doc["sha256_from"] == "index"
    assert doc["sha256_check"] == "sha256 matches the published digest"
    schema_validator("install-result.schema.json").validate(doc)  # in the result envelope
    assert (doc["schema"], doc["command"]) == ("flashdoctor/install/1", "install")
    assert pip_list(fresh_venv)["flash-attn"] == str(Version(V))
    assert final_files() and final_files()[0].name == w.name  # in the user cache (here: the test's XDG dir)


def test_without_yes_and_without_a_terminal_nothing_happens(
    fresh_venv: Path, server: FaultServer, tmp_path: Path
) -> None:
    w = make_wheel(tmp_path / "w", version=V)
    plan = write_plan(tmp_path, server.add("/w.whl", w.read_bytes()), w)
    r = fd("install", "--plan", plan, "--python", str(fresh_venv))
    assert r.returncode == 2 and "pass --yes" in r.stderr and "Traceback" not in r.stderr
    assert "flash-attn" not in pip_list(fresh_venv) and server.hits("/w.whl") == 0


def test_dry_run_changes_nothing(fresh_venv: Path, server: FaultServer, tmp_path: Path) -> None:
    w = make_wheel(tmp_path / "w", version=V)
    plan = write_plan(tmp_path, server.add("/w.whl", w.read_bytes()), w)
    before = pip_list(fresh_venv)
    r = fd("install", "--plan", plan, "--python", str(fresh_venv), "--dry-run", "--yes", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["wheel"]["filename"] == w.name
    assert pip_list(fresh_venv) == before and server.hits("/w.whl") == 0 and not final_files()


@pytest.mark.slow
def test_failed_import_exits_5_with_a_diagnosis(
    fresh_venv: Path, server: FaultServer, tmp_path: Path
) -> None:
    w = make_wheel(
        tmp_path / "w",
        version=V,
        files={
            "flash_attn/__init__.py": "raise ImportError('libcudart.so.12: cannot open shared object file: No such file or directory')\n"
        },
    )
    plan = write_plan(tmp_path, server.add("/w.whl", w.read_bytes()), w)
    r = fd("install", "--plan", plan, "--python", str(fresh_venv), "--yes")
    assert r.returncode == 5, r.stdout + r.stderr
    assert "rolled-back" in r.stdout and "cuda-runtime-mismatch" in r.stdout and "Traceback" not in r.stderr
    assert "flash-attn" not in pip_list(fresh_venv)


def test_404_exits_4(fresh_venv: Path, server: FaultServer, tmp_path: Path) -> None:
    w = make_wheel(tmp_path / "w", version=V)
    plan = write_plan(tmp_path, server.url("/gone.whl"), w)
    r = fd("install", "--plan", plan, "--python", str(fresh_venv), "--yes")
    assert r.returncode == 4 and "HTTP 404" in r.stdout
    assert "flash-attn" not in pip_list(fresh_venv)


def test_bad_plan_file_is_a_usage_error(tmp_path: Path) -> None:
    p = tmp_path / "plan.json"
    p.write_text('{"action": "wheel", "variant": "fa9"}')
    r = fd("install", "--plan", str(p), "--yes")
    assert r.returncode == 2 and "'variant' must be one of" in r.stderr and "Traceback" not in r.stderr


def test_plain_http_elsewhere_needs_allow_http(tmp_path: Path) -> None:
    r = fd("install", "--index-url", "http://mirror.example.invalid/simple", "--dry-run", "--plan", "x.json")
    assert r.returncode == 2 and "refusing plain http" in r.stderr and "--allow-http" in r.stderr


@pytest.mark.slow
def test_sigkill_mid_download_leaves_env_and_cache_clean(
    fresh_venv: Path, tmp_path: Path, no_proxy: None
) -> None:
    w = make_wheel(tmp_path / "w", version=V, pad_bytes=400_000)
    s = FaultServer()
    tmp_dir = cache_root() / "tmp"

    def part_started() -> bool:
        for f in tmp_dir.glob("*.part"):
            try:
                if f.stat().st_size:
                    return True
            except FileNotFoundError:  # gone between the listing and the look (CI saw it once)
                continue
        return False

    p = None
    try:
        plan = write_plan(tmp_path, s.add("/w.whl", w.read_bytes(), delay_per_chunk=0.4), w)
        before = pip_list(fresh_venv)
        p = fd_popen("install", "--plan", plan, "--python", str(fresh_venv), "--yes")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not part_started():
            time.sleep(0.05)
        assert any(tmp_dir.glob("*.part")), "the download never started"
        p.send_signal(signal.SIGKILL)
        p.communicate(timeout=10)
        assert p.returncode == -signal.SIGKILL
        assert final_files() == []  # nothing under a final name
        assert pip_list(fresh_venv) == before  # environment unchanged
        s.routes["/w.whl"].delay_per_chunk = 0
        r = fd("install", "--plan", plan, "--python", str(fresh_venv), "--yes", "--json")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "(resumed)" in json.loads(r.stdout)["steps"][0]["detail"]
        assert not any(tmp_dir.glob("*.part"))
    finally:
        if p is not None and p.poll() is None:  # a failed assertion must not leave it running
            p.kill()
            p.communicate(timeout=10)
        s.close()


def test_disk_full_during_the_download(fresh_venv: Path, server: FaultServer, tmp_path: Path) -> None:
    """RLIMIT_FSIZE (see test_install_faults) on the whole flashdoctor process."""
    w = make_wheel(tmp_path / "w", version=V, pad_bytes=300_000)
    plan = write_plan(tmp_path, server.add("/w.whl", w.read_bytes()), w)
    before = pip_list(fresh_venv)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    r = fd("install", "--plan", plan, "--python", str(fresh_venv), "--yes", preexec_fn=limit)
    assert r.returncode == 4 and "cannot write" in r.stdout and "Traceback" not in r.stderr, (
        r.stdout + r.stderr
    )
    assert pip_list(fresh_venv) == before and final_files() == []
    assert not any((cache_root() / "tmp").glob("*"))


@pytest.mark.slow
def test_two_installs_at_once(fresh_venv: Path, server: FaultServer, tmp_path: Path) -> None:
    w = make_wheel(tmp_path / "w", version=V, pad_bytes=200_000)
    plan = write_plan(tmp_path, server.add("/w.whl", w.read_bytes(), delay_per_chunk=0.1), w)
    procs = [
        fd_popen("install", "--plan", plan, "--python", str(fresh_venv), "--yes", "--json") for _ in range(2)
    ]
    outs = [p.communicate(timeout=180) for p in procs]
    docs = [json.loads(o[0]) for o in outs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sorted(d["origin"] for d in docs) == ["cache", "download"]
    assert server.hits("/w.whl") == 1
    assert pip_list(fresh_venv)["flash-attn"] == str(Version(V))
    r = subprocess.run([str(fresh_venv), "-c", "import flash_attn"], capture_output=True)
    assert r.returncode == 0
    assert len(final_files()) == 1


@pytest.mark.slow
def test_lock_replays_with_a_bare_pip_require_hashes(
    fresh_venv: Path, server: FaultServer, tmp_path: Path
) -> None:
    # a dependency besides torch, as flash-attn has einops: the command the file names ran pip with
    # dependencies, which --require-hashes refuses unpinned ("all requirements must have their versions
    # pinned with ==") or cannot find (here: no index)
    w = make_wheel(tmp_path / "w", version=V, requires=("torch", "fdtestdep"))
    url = server.add("/" + w.name, w.read_bytes())  # pip takes the wheel's name from the URL
    plan = write_plan(tmp_path, url, w, sha=False)  # the index has no sha256: computed from the download
    out = tmp_path / "flash.lock"
    r = fd("lock", "--plan", plan, "--python", str(fresh_venv), "-o", str(out))
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert f"flash-attn @ {url}" in text and f"--hash=sha256:{sha256_of(w)}" in text
    assert "sha256 recorded (no published digest)" in text and "publishes no sha256" in text
    assert "verified" not in text
    assert "(sha256 recorded (no published digest))" in r.stdout
    said = next(line for line in text.splitlines() if "Reproduce without flashdoctor:" in line)
    command = said.partition("pip ")[2].replace("THIS_FILE", str(out)).split()
    p = subprocess.run(
        [str(fresh_venv), "-m", "pip", *command],
        capture_output=True,
        text=True,
        env={**os.environ, "PIP_NO_INDEX": "1"},
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert pip_list(fresh_venv)["flash-attn"] == str(Version(V))
    # and the hash is enforced: other bytes at that URL are refused by pip itself
    reset_flash(fresh_venv)
    server.routes["/" + w.name].body = make_wheel(
        tmp_path / "evil", version=V, files={"flash_attn/__init__.py": "evil = 1\n"}
    ).read_bytes()
    p = subprocess.run(
        [str(fresh_venv), "-m", "pip", "install", "--require-hashes", "-r", str(out)],
        capture_output=True,
        text=True,
    )
    assert p.returncode != 0 and "THESE PACKAGES DO NOT MATCH THE HASHES" in p.stdout + p.stderr
    assert "flash-attn" not in pip_list(fresh_venv)


@pytest.mark.slow
def test_offline_install_of_a_local_build_from_the_wheelhouse(fresh_venv: Path, tmp_path: Path) -> None:
    """The GPU-machine path on CPU: the plan says "build" (no index wheel), the wheelhouse holds a
    flashdoctor-built wheel (local label, build.json in the wip-build layout) whose fingerprint fits;
    install takes it without any network. A second build for another torch is rejected with a reason."""
    from flashdoctor.probe import probe_environment

    env = probe_environment(python=str(fresh_venv), import_tests=False)
    wh = tmp_path / "wh"
    local_v = "2.8.3.post2+fd.cpu.hd128.bf16"

    def add_build(fid: str, torch: str) -> Path:
        w = make_wheel(wh / fid, version=local_v, tag=f"{env.python_abi}-{env.python_abi}-{env.platform}")
        fp = {
            "variant": "fa2",
            "version": "2.8.3.post2",
            "torch": torch,
            "cuda": None,
            "cxx11abi": env.cxx11abi,
            "python_abi": env.python_abi,
            "platform": env.platform,
            "glibc": env.glibc,
            "archs": [],
            "profile": "fd.cpu.hd128.bf16",
        }
        write_manifest(w, fp)
        return w

    add_build("aaaaaaaaaaaaaaaa", "2.11")
    good = add_build("bbbbbbbbbbbbbbbb", ".".join(env.torch.split(".")[:2]))  # type: ignore[union-attr]
    plan = write_plan(tmp_path, "", good, action="build")
    r = fd(
        "install", "--plan", plan, "--python", str(fresh_venv), "--wheelhouse", str(wh), "--dry-run", "--json"
    )
    doc = json.loads(r.stdout)
    assert doc["action"] == "wheel" and doc["wheel"]["source"] == "wheelhouse"
    assert any("built against torch 2.11" in n for n in doc["wheelhouse_notes"])
    # the local build stands in for the reviewed "build" only within the replay's --version (review, stop 42)
    r = fd("install", "--plan", plan, "--python", str(fresh_venv), "--wheelhouse", str(wh), "--version",
           "==2.7.4", "--dry-run", "--json")  # fmt: skip
    assert r.returncode == 1 and "does not hold" in r.stderr and not r.stdout, r.stdout + r.stderr
    r = fd("install", "--plan", plan, "--python", str(fresh_venv), "--wheelhouse", str(wh), "--yes", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "installed" and doc["origin"] == "local" and doc["sha256_from"] == "index"
    assert pip_list(fresh_venv)["flash-attn"] == str(Version(local_v))
    # Checked against the digest its build recorded, and said so: nobody published it (H100 run, 2026-12-05:
    # the wheelhouse install printed "sha256 matches the published digest").
    assert doc["sha256_check"] == "sha256 matches flashdoctor's record of the build"
    assert doc["verification"]["digest_from"] == "build-record"
    assert "no publisher's digest" in doc["verification"]["text"]


@pytest.mark.slow
def test_gpu_machine_plan_with_the_real_selector_uses_the_local_build(tmp_path: Path) -> None:
    """The H100 of the GPU machine (tests/targets/h100.json: torch 2.11, no official wheel of its own): the
    selector plans the official torch 2.10 wheel (it loads on 2.11, measured), and a fingerprinted local build
    for this very torch in --wheelhouse comes before any download: an offline wheel install."""
    targets = TARGETS
    wh = tmp_path / "wh" / "5f1c0ffee0ddba11"
    w = make_wheel(wh, version="2.8.3.post2+fd.sm90.hd128.bf16", tag="cp312-cp312-linux_x86_64")
    write_manifest(w, H100_BUILD)
    base = ["install", "--fa2", "--target", str(targets / "h100.json"), "--dry-run", "--json"]
    r = fd(*base)
    assert r.returncode == 0 and json.loads(r.stdout)["wheel"]["filename"].endswith(
        "+cu13torch2.10cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"
    )
    r = fd(*base, "--wheelhouse", str(tmp_path / "wh"))
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["action"] == "wheel", r.stdout + r.stderr
    assert (
        doc["wheel"]["filename"] == w.name
        and doc["wheel"]["source"] == "wheelhouse"
        and doc["wheel"]["sha256"] == sha256_of(w)
    )
    # The selector's origin was the index wheel's ("GitHub release v2.8.3 of Dao-AILab/flash-attention
    # (official)", digest "from flashdoctor's wheel index"), and it was printed for the local build.
    assert "origin" not in doc, doc["origin"]
    human = fd(*base[:-1], "--wheelhouse", str(tmp_path / "wh")).stdout
    assert "GitHub release" not in human and "source: wheelhouse" in human, human
    assert "source: official" not in human and "evidence:" not in human, human
    r = fd(
        "install",
        "--fa2",
        "--target",
        str(targets / "a100.json"),
        "--wheelhouse",
        str(tmp_path / "wh"),
        "--dry-run",
        "--json",
    )
    assert (
        json.loads(r.stdout)["action"] != "wheel" or json.loads(r.stdout)["wheel"]["source"] != "wheelhouse"
    )
    # `flashdoctor build` without --wheelhouse stores into the cache's wheelhouse: found without the option
    default = cache_root().parent / "wheelhouse"
    default.parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "wh").rename(default)
    doc = json.loads(fd(*base).stdout)
    assert doc["action"] == "wheel" and doc["wheel"]["filename"] == w.name


def _fa3_build(wh: Path) -> Path:
    """The FA3 build of issue 16 (H100, torch 2.11+cu130, head dim 128, bf16) in a wheelhouse."""
    d = wh / "3fa3c0ffee0ddba1"
    w = make_wheel(d, dist="flash_attn_3", version="3.0.0+fd.sm90.hd128.bf16", tag="cp312-cp312-linux_x86_64")
    fp = {**H100_BUILD, "variant": "fa3", "version": "3.0.0", "profile": "fd.sm90.hd128.bf16"}
    write_manifest(w, fp)
    return w


@pytest.mark.slow
def test_install_prefers_a_covering_local_build_to_a_download(tmp_path: Path) -> None:
    """Issue 16: `install --fa3 --wheelhouse DIR` (DIR holding a fresh build for this machine) planned the
    remote PyTorch-index wheel and, offline, failed after retrying DNS. The plan now takes the build that
    is already here, in the dry run (and so for real: one resolution), and says why."""
    h100 = str(TARGETS / "h100.json")
    base = ["install", "--fa3", "--target", h100, "--dry-run"]
    remote = json.loads(fd(*base, "--json").stdout)
    assert remote["action"] == "wheel" and remote["wheel"]["source"] == "pytorch-index"
    w = _fa3_build(tmp_path / "wh")
    r = fd(*base, "--json", "--wheelhouse", str(tmp_path / "wh"))
    doc = json.loads(r.stdout)
    assert (
        r.returncode == 0 and doc["wheel"]["filename"] == w.name and doc["wheel"]["source"] == "wheelhouse"
    ), doc
    assert doc["alternatives"][0]["filename"] == remote["wheel"]["filename"]
    assert "already here" in doc["reasons"][-1] and "fd.sm90.hd128.bf16" in doc["reasons"][-1]
    human = fd(*base, "--wheelhouse", str(tmp_path / "wh")).stdout
    assert "already here" in " ".join(human.split()), human
    # --from-source with a covering build: offered instead of a new build plan
    r = fd(
        *base,
        "--json",
        "--from-source",
        "--head-dims",
        "128",
        "--dtypes",
        "bf16",
        "--wheelhouse",
        str(tmp_path / "wh"),
    )
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["action"] == "wheel" and doc["wheel"]["filename"] == w.name, (
        r.stdout + r.stderr
    )
    assert "no new build" in doc["reasons"][0]
    # a head dim the build lacks: a new build is planned, as before
    r = fd(*base, "--json", "--from-source", "--head-dims", "64", "--wheelhouse", str(tmp_path / "wh"))
    assert json.loads(r.stdout)["status"] == "planned", r.stdout
