"""Hostile inputs and unlucky timing (issue "Hostile inputs", rows 2, 3, 7, 9, 12, 13), against real venvs,
real pip, real processes and real signals. Each test failed on the code before the fix (see its docstring)."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flashdoctor.actions.cache import WheelCache
from flashdoctor.actions.fetch import FetchOptions, obtain
from flashdoctor.actions.install.envlock import LOCK_NAME, environment_lock, fallback_lock_path
from flashdoctor.actions.wheelhouse import Wheelhouse
from flashdoctor.model.plan import WheelRef
from tests.actions.install.test_install_e2e import (
    BAD_IMPORT,
    V_GOOD,
    V_NEXT,
    V_OLD,
    can_import,
    context,
    norm,
    pip_list,
    plan_for,
    site_packages,
    tree_digest,
)
from tests.support.install_helpers import FaultServer, make_wheel, sha256_of
from tests.support.venvs import child_env, reset_flash


def init_py(version: str, extra: str = "") -> str:
    """A flash_attn/__init__.py that passes the import check (flashdoctor.probe.IMPORT_STATEMENTS)."""
    return f'__version__ = "{version}"\ndef flash_attn_func(q, k, v, *a, **kw):\n    return q\n{extra}'


def fd_install(plan: Path, py: Path, cache_dir: Path, **popen_kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flashdoctor",
            "install",
            "--plan",
            str(plan),
            "--python",
            str(py),
            "--yes",
            "--json",
            "--no-smoke",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(FLASHDOCTOR_CACHE_DIR=str(cache_dir), NO_PROXY="127.0.0.1,localhost"),
        stdin=subprocess.DEVNULL,
        **popen_kw,  # type: ignore[arg-type]
    )


def write_plan(path: Path, wheel: Path, version: str) -> Path:
    path.write_text(json.dumps(plan_for(wheel.resolve().as_uri(), wheel, version).to_json()))
    return path


# -- row 2: a shared wheelhouse whose file is swapped between its check and pip ---------------------------
@pytest.mark.system
def test_a_wheel_swapped_after_its_check_is_not_what_pip_installs(
    fresh_venv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another user of a shared --wheelhouse replaces the wheel after flashdoctor checked its sha256 and
    before pip runs (here: while the torch guard runs). The old code handed pip the shared path and
    installed the swapped wheel, reporting the legitimate hash; now pip gets the private copy that was
    checked."""
    import flashdoctor.actions.install.executor as executor

    house = tmp_path / "shared-wheelhouse"
    good = make_wheel(house, version=V_GOOD)
    evil = make_wheel(
        tmp_path / "evil",
        version=V_GOOD,
        files={"flash_attn/__init__.py": init_py(V_GOOD, "EVIL = True\n")},
    ).read_bytes()
    real_guard = executor.dependency_problems  # the guard that runs between the check and pip
    swaps = []

    def swap_then_guard(*args: object, **kw: object) -> list[str]:
        tmp = house / "swap.tmp"
        tmp.write_bytes(evil)
        os.replace(tmp, good)  # the attacker's atomic swap
        swaps.append(sha256_of(good))
        return real_guard(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(executor, "dependency_problems", swap_then_guard)
    plan = plan_for("https://github.com/never/contacted/" + good.name, good, V_GOOD)
    legit = plan.wheel.sha256  # type: ignore[union-attr]
    res = executor.execute(plan, context(fresh_venv, tmp_path, wheelhouse=Wheelhouse(house)))
    assert swaps and swaps[0] != legit  # the swap happened after the check
    assert res.status == "installed" and res.sha256 == legit, res
    assert can_import(fresh_venv, "import flash_attn; print(getattr(flash_attn, 'EVIL', False))") == (
        True,
        "False",
    )
    installed = (site_packages(fresh_venv) / "flash_attn" / "__init__.py").read_text()
    assert "EVIL" not in installed


def test_the_bytes_checked_are_the_private_copy(tmp_path: Path) -> None:
    """With a stage directory the fetch copies first and checks the copy (hashed as it is written, mode
    0600): what pip gets is what was checked; a copy that does not match is refused and removed."""
    from flashdoctor.actions.fetch import ChecksumError

    w = make_wheel(tmp_path / "src", version=V_GOOD)
    ref = WheelRef(w.name, w.resolve().as_uri(), sha256_of(w), "official", V_GOOD)
    stage = tmp_path / "stage"
    stage.mkdir(mode=0o700)
    art = obtain(ref, FetchOptions(cache=WheelCache(tmp_path / "c")), {}, "flash-attn", stage=stage)
    assert art.path == stage / w.name and art.path.read_bytes() == w.read_bytes()
    assert (art.path.stat().st_mode & 0o777) == 0o600 and art.sha256 == sha256_of(w)
    other = make_wheel(tmp_path / "other", version=V_GOOD, files={"flash_attn/__init__.py": "x = 1\n"})
    w.write_bytes(other.read_bytes())
    stage2 = tmp_path / "stage2"
    stage2.mkdir(mode=0o700)
    with pytest.raises(ChecksumError, match="sha256 mismatch"):
        obtain(ref, FetchOptions(cache=WheelCache(tmp_path / "c")), {}, "flash-attn", stage=stage2)
    assert list(stage2.iterdir()) == []


# -- row 3: the lock belongs to the environment, not to the cache ------------------------------------------
@pytest.mark.system
@pytest.mark.slow
def test_two_installs_with_different_caches_serialise(fresh_venv: Path, tmp_path: Path) -> None:
    """A (a wheel whose import fails slowly) and B (a good wheel) install into one environment with
    different FLASHDOCTOR_CACHE_DIR. The old lock lived in the cache: B installed and verified while A
    checked its import, then A rolled back and uninstalled B's flash-attn — the environment ended with
    none (3 of 3 runs: one run shows the race). Serialised, it ends with B's good install."""
    bad = make_wheel(
        tmp_path / "bad",
        version=V_OLD,
        # long enough for B to start and reach the lock while A checks its import, on a loaded machine too
        files={"flash_attn/__init__.py": "import time\ntime.sleep(6)\n" + BAD_IMPORT},
    )
    good = make_wheel(tmp_path / "good", version=V_GOOD)
    plan_a = write_plan(tmp_path / "a.json", bad, V_OLD)
    plan_b = write_plan(tmp_path / "b.json", good, V_GOOD)
    site = site_packages(fresh_venv)
    reset_flash(fresh_venv)
    a = fd_install(plan_a, fresh_venv, tmp_path / "cache-a")
    deadline = time.monotonic() + 60
    while not any(site.glob(f"flash_attn-{V_OLD}.dist-info")) and a.poll() is None:
        assert time.monotonic() < deadline, "A never installed its wheel"
        time.sleep(0.02)
    b = fd_install(plan_b, fresh_venv, tmp_path / "cache-b")
    out_a, err_a = a.communicate(timeout=120)
    out_b, err_b = b.communicate(timeout=120)
    final = pip_list(fresh_venv).get("flash-attn")
    assert final == norm(V_GOOD), f"flash-attn {final}; A: {out_a[-600:]}; B: {out_b[-300:]}"
    assert can_import(fresh_venv) == (True, V_GOOD)
    assert a.returncode == 5 and json.loads(out_a)["status"] == "rolled-back", (out_a, err_a)
    assert b.returncode == 0, (out_b, err_b)
    assert "another flashdoctor install into this environment is running" in err_b, err_b
    assert (fresh_venv.parent.parent / LOCK_NAME).is_file()  # the lock is the environment's


def test_the_lock_falls_back_when_the_prefix_cannot_hold_it(tmp_path: Path) -> None:
    """A prefix that cannot hold the lock (here: not a directory, as a read-only one fails the same
    way for a user who is not root) locks in the user's private directory in TMPDIR instead."""
    prefix = tmp_path / "not-a-dir"
    prefix.write_text("")
    with environment_lock(str(prefix)) as where:
        assert where == fallback_lock_path(str(prefix)) and where.is_file()
        assert (where.parent.stat().st_mode & 0o777) == 0o700
    with environment_lock(str(tmp_path)) as where:
        assert where == tmp_path / LOCK_NAME


# -- row 7: the cache's partial download: a planted link is never followed --------------------------------
@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
@pytest.mark.system
def test_a_planted_partial_download_is_not_resumed_through(
    server: FaultServer, tmp_path: Path, kind: str
) -> None:
    """tmp/<sha>.part planted as a link to the victim's file, with a record that makes it look
    resumable. The old code hashed the victim and appended the rest of the wheel to it."""
    w = make_wheel(tmp_path / "w", version=V_GOOD, pad_bytes=200_000)
    url = server.add("/w.whl", w.read_bytes())
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"precious " * 100)
    before = victim.read_bytes()
    root = tmp_path / "c"
    part = root / "tmp" / f"{sha256_of(w)}.part"
    part.parent.mkdir(parents=True)
    (os.symlink if kind == "symlink" else os.link)(victim, part)
    part.with_name(part.name + ".json").write_text(json.dumps({"url": url, "validators": {"etag": '"v1"'}}))
    ref = WheelRef(w.name, url, sha256_of(w), "official", V_GOOD)
    art = obtain(ref, FetchOptions(cache=WheelCache(root)), {}, "flash-attn")
    assert victim.read_bytes() == before
    assert art.path.read_bytes() == w.read_bytes() and not art.resumed
    assert [h.get("range") for p, h in server.requests if p == "/w.whl"] == [None]


@pytest.mark.system
def test_abandoned_partial_downloads_are_removed(server: FaultServer, tmp_path: Path) -> None:
    """clean_stale_tmp existed but nothing called it: a week-old tmp/*.part stayed forever."""
    w = make_wheel(tmp_path / "w", version=V_GOOD)
    url = server.add("/w.whl", w.read_bytes())
    tmp = tmp_path / "c" / "tmp"
    tmp.mkdir(parents=True)
    old, recent = tmp / ("a" * 64 + ".part"), tmp / ("b" * 64 + ".part")
    for p in (old, recent):
        p.write_bytes(b"partial")
    week = time.time() - 8 * 86400
    os.utime(old, (week, week))
    obtain(
        WheelRef(w.name, url, sha256_of(w), "official", V_GOOD),
        FetchOptions(cache=WheelCache(tmp_path / "c")),
        {},
        "flash-attn",
    )
    assert not old.exists() and recent.exists()


# -- row 9: a wheel that ships files other distributions own ----------------------------------------------
def _torch_file(py: Path) -> Path:
    return site_packages(py) / "torch" / "version.py"


@pytest.mark.system
def test_a_wheel_that_overwrites_torch_files_is_refused_before_anything_changes(
    fresh_venv: Path, tmp_path: Path
) -> None:
    """It passed the torch guard (metadata only): the old code installed it, torch's version.py was
    replaced, and uninstalling flash-attn later deleted it."""
    torch_file = _torch_file(fresh_venv)
    before = hashlib.sha256(torch_file.read_bytes()).hexdigest()
    w = make_wheel(
        tmp_path / "w",
        version=V_GOOD,
        files={
            "flash_attn/__init__.py": init_py(V_GOOD),
            "torch/version.py": "__version__ = 'pwned'\n",
        },
    )
    from flashdoctor.actions.install.executor import execute

    res = execute(plan_for(w.resolve().as_uri(), w, V_GOOD), context(fresh_venv, tmp_path))
    assert res.status == "refused" and res.exit_code == 5, res
    assert (
        "torch/version.py (owned by torch)" in res.message and [s.name for s in res.steps][-1] == "file guard"
    )
    assert hashlib.sha256(torch_file.read_bytes()).hexdigest() == before
    assert "flash-attn" not in pip_list(fresh_venv)


@pytest.mark.system
@pytest.mark.slow
def test_the_known_fa4_overlap_is_backed_up_and_restored(fresh_venv: Path, tmp_path: Path) -> None:
    """flash-attn 2.8.3 ships flash_attn/cute/, which flash-attn-4 owns: allowed (the rule's known
    overlap), and a failed install puts FA4's files back byte for byte."""
    from flashdoctor.actions.install.executor import execute

    fa4 = make_wheel(
        tmp_path / "fa4",
        dist="flash_attn_4",
        version="4.0.0b1",
        tag="py3-none-any",
        files={"flash_attn/cute/__init__.py": "", "flash_attn/cute/interface.py": "FA4 = True\n"},
        requires=(),
    )
    r = subprocess.run(
        [str(fresh_venv), "-m", "pip", "install", "-q", "--no-deps", str(fa4)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    try:
        sp = site_packages(fresh_venv)
        before = tree_digest(sp, ("flash_attn",))
        files = {"flash_attn/__init__.py": BAD_IMPORT, "flash_attn/cute/interface.py": "FA2_COPY = True\n"}
        bad = make_wheel(tmp_path / "bad", version=V_GOOD, files=files)
        res = execute(plan_for(bad.resolve().as_uri(), bad, V_GOOD), context(fresh_venv, tmp_path))
        assert res.status == "rolled-back", res  # not refused: the overlap is known
        assert tree_digest(sp, ("flash_attn",)) == before
        good = make_wheel(
            tmp_path / "good",
            version=V_NEXT,
            files={**files, "flash_attn/__init__.py": init_py(V_NEXT)},
        )
        res = execute(plan_for(good.resolve().as_uri(), good, V_NEXT), context(fresh_venv, tmp_path))
        assert res.status == "installed", res
    finally:
        subprocess.run(
            [str(fresh_venv), "-m", "pip", "uninstall", "-y", "-q", "flash-attn-4"], capture_output=True
        )


# -- rows 12 and 13: the backup on a full disk, and backups killed half-way --------------------------------
@pytest.mark.system
@pytest.mark.slow
def test_disk_full_during_the_backup(fresh_venv: Path, tmp_path: Path) -> None:
    """RLIMIT_FSIZE (as in test_install_faults) makes the backup's copy of a 300 kB file fail. The old
    code died with an internal error (exit 3) and left a partial backup; now: a clear refusal, nothing
    changed, nothing left."""
    from flashdoctor.actions.install.executor import execute

    cache_dir = tmp_path / "fdc"
    old = make_wheel(tmp_path / "old", version=V_OLD, pad_bytes=300_000)
    assert (
        execute(plan_for(old.resolve().as_uri(), old, V_OLD), context(fresh_venv, tmp_path)).status
        == "installed"
    )
    before = tree_digest(site_packages(fresh_venv))
    new = make_wheel(tmp_path / "new", version=V_GOOD)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    p = fd_install(write_plan(tmp_path / "plan.json", new, V_GOOD), fresh_venv, cache_dir, preexec_fn=limit)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 5 and "Traceback" not in err, (out, err)
    doc = json.loads(out)
    assert doc["status"] == "refused" and "cannot back up flash-attn" in doc["message"], doc
    assert "File too large" in doc["message"] and "nothing was changed" in doc["message"]
    assert tree_digest(site_packages(fresh_venv)) == before
    assert list((cache_dir / "wheels" / "backups").iterdir()) == []


@pytest.mark.system
@pytest.mark.slow
def test_a_backup_killed_half_way_is_removed_by_the_next_install(fresh_venv: Path, tmp_path: Path) -> None:
    """SIGKILL while the backup is being written (nothing changed yet): the old code left that
    directory forever (find_interrupted skips backups without a manifest). The next install into the
    environment removes it, under the environment's lock."""
    from flashdoctor.actions.install.executor import execute

    cache_dir = tmp_path / "fdc"
    many = {f"flash_attn/m{i:03d}.py": f"X = {i}\n" for i in range(300)}  # each backup copy is fsync'ed
    many["flash_attn/__init__.py"] = init_py(V_OLD)
    old = make_wheel(tmp_path / "old", version=V_OLD, files=many)
    ctx_cache = {"cache_root": cache_dir / "wheels"}
    assert (
        execute(
            plan_for(old.resolve().as_uri(), old, V_OLD), context(fresh_venv, tmp_path, **ctx_cache)
        ).status
        == "installed"
    )
    new = make_wheel(tmp_path / "new", version=V_GOOD)
    p = fd_install(
        write_plan(tmp_path / "plan.json", new, V_GOOD), fresh_venv, cache_dir, start_new_session=True
    )
    backups = cache_dir / "wheels" / "backups"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and p.poll() is None:
            if any(
                any((d / "files").glob("*")) and not (d / "manifest.json").exists() for d in backups.glob("*")
            ):
                break
            time.sleep(0.005)
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
    left = [d for d in backups.iterdir() if not (d / "manifest.json").exists()]
    assert len(left) == 1, "the install was not killed while backing up"
    assert pip_list(fresh_venv)["flash-attn"] == norm(V_OLD)  # nothing had changed
    other_env = backups / "20260101-000000-99999"  # another environment's backup in progress: kept
    (other_env / "files").mkdir(parents=True)
    (other_env / "owner.json").write_text(json.dumps({"environment": "/elsewhere", "pid": 99999}))
    res = execute(plan_for(new.resolve().as_uri(), new, V_GOOD), context(fresh_venv, tmp_path, **ctx_cache))
    assert res.status == "installed", res
    assert not left[0].exists() and other_env.exists()
