"""A bad day: kills at every phase, broken caches and odd environments, against real venvs and real pip."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flashdoctor.actions.install.executor import execute
from flashdoctor.actions.install.rollback import make_backup
from flashdoctor.actions.wheelfile import inspect_wheel
from flashdoctor.knowledge.schemas import schema_validator
from flashdoctor.model.install import InstallResult
from flashdoctor.probe.state import read_state
from tests.actions.install.test_install_e2e import (
    BAD_IMPORT,
    V_GOOD,
    V_NEXT,
    V_OLD,
    context,
    norm,
    pip_list,
    plan_for,
    site_packages,
    tree_digest,
)
from tests.actions.install.test_install_hostile import fd_install, init_py, write_plan
from tests.support.install_helpers import H100_V, lock_h100_cmd, make_wheel, sha256_of
from tests.support.venvs import child_env

pytestmark = [pytest.mark.system, pytest.mark.slow]


def _install(py: Path, wheel: Path, version: str, tmp: Path, **kw: object) -> InstallResult:
    return execute(plan_for(wheel.resolve().as_uri(), wheel, version), context(py, tmp, **kw))


def test_a_restore_killed_after_its_uninstall_is_finished_by_the_next_install(
    fresh_venv: Path, tmp_path: Path
) -> None:
    """An install failed and its restore was killed right after it uninstalled the new wheel (or pip was
    killed between uninstalling the old version and writing the new one): flash-attn is not installed
    at all. That is a state the interrupted install passes through, not a change by hand."""
    cache = tmp_path / "cache"
    old = make_wheel(tmp_path / "old", version=V_OLD, files={"flash_attn/__init__.py": init_py(V_OLD)})
    assert _install(fresh_venv, old, V_OLD, tmp_path, cache_root=cache).status == "installed"
    before = tree_digest(site_packages(fresh_venv))
    good = make_wheel(tmp_path / "good", version=V_GOOD)
    state = read_state(str(fresh_venv), dict(os.environ), ("flash-attn",))
    root = cache / "backups" / "20260101-000000-1"
    root.mkdir(parents=True)
    make_backup(state, "flash-attn", inspect_wheel(good), root, environment=state.prefix)
    for cmd in (["install", "--no-deps", "--force-reinstall", str(good)], ["uninstall", "-y", "flash-attn"]):
        r = subprocess.run([str(fresh_venv), "-m", "pip", "-q", *cmd], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    assert "flash-attn" not in pip_list(fresh_venv)
    bad = make_wheel(tmp_path / "bad", version=V_NEXT, files={"flash_attn/__init__.py": BAD_IMPORT})
    res = _install(fresh_venv, bad, V_NEXT, tmp_path, cache_root=cache)
    assert [s.name for s in res.steps][:1] == ["recover"], (res.warnings, res.previous)
    assert any("interrupted after its backup" in w for w in res.warnings), res.warnings
    assert res.status == "rolled-back" and res.previous == V_OLD, res
    assert pip_list(fresh_venv)["flash-attn"] == norm(V_OLD)
    assert tree_digest(site_packages(fresh_venv)) == before
    assert not root.exists()


def _signal_pip_half_way(
    py: Path, tmp: Path, cache_dir: Path, sig: signal.Signals, *, group: bool = True
) -> tuple[dict[str, str], list[str], subprocess.Popen[str], str]:
    """Install V_OLD, then start `flashdoctor install` of a big V_GOOD and send ``sig`` to its process
    group (what a terminal's Ctrl-C or hang-up reaches; pip runs in a session of its own, which flashdoctor
    stops; for SIGKILL, which flashdoctor cannot handle, pip's session too: both killed at once) or, not
    ``group``, to flashdoctor alone (as `timeout` and `docker stop` do) once pip has moved the old version
    aside. Returns the tree digest and the names in site-packages before, the process (ended) and its
    stderr."""
    old = make_wheel(tmp / "old", version=V_OLD, files={"flash_attn/__init__.py": init_py(V_OLD)})
    assert _install(py, old, V_OLD, tmp, cache_root=cache_dir / "wheels").status == "installed"
    site = site_packages(py)
    before, names = tree_digest(site), sorted(p.name for p in site.iterdir())
    new = make_wheel(tmp / "new", version=V_GOOD, pad_bytes=40_000_000)  # pip takes a while to write it
    p = fd_install(write_plan(tmp / "plan.json", new, V_GOOD), py, cache_dir, start_new_session=True)
    old_info = site / f"flash_attn-{V_OLD}.dist-info"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and p.poll() is None and old_info.exists():
            time.sleep(0.002)
        if group:
            children = Path(f"/proc/{p.pid}/task/{p.pid}/children")
            pips = [int(c) for c in children.read_text().split()] if children.exists() else []
            os.killpg(p.pid, sig)
            for pip in pips if sig == signal.SIGKILL else ():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pip, sig)
        else:
            p.send_signal(sig)
        _out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
    return before, names, p, err


def test_pip_killed_half_way_through_the_install_is_undone_by_the_next_install(
    fresh_venv: Path, tmp_path: Path
) -> None:
    """SIGKILL flashdoctor and its pip after pip moved the old flash-attn aside (its ``~lash_attn``
    stash) and before the new one's metadata is in place: nothing is installed. The old code took that
    for a change by hand and deleted the backup, so the old version was gone for good (here: the next
    install fails its import check and rolls back to "not installed"). Now it is restored first."""
    cache_dir = tmp_path / "fdc"
    ctx_cache = {"cache_root": cache_dir / "wheels"}
    site = site_packages(fresh_venv)
    before, _names, _p, _out = _signal_pip_half_way(fresh_venv, tmp_path, cache_dir, signal.SIGKILL)
    try:
        assert not (site / f"flash_attn-{V_OLD}.dist-info").exists(), "pip never began the install"
        assert "flash-attn" not in pip_list(fresh_venv)  # killed between the old version and the new
        again = make_wheel(tmp_path / "again", version=V_NEXT, files={"flash_attn/__init__.py": BAD_IMPORT})
        res = _install(fresh_venv, again, V_NEXT, tmp_path, **ctx_cache)
        assert [s.name for s in res.steps][:1] == ["recover"], res.warnings
        assert res.status == "rolled-back" and res.previous == V_OLD, (res.warnings, res.previous)
        assert pip_list(fresh_venv)["flash-attn"] == norm(V_OLD)
        assert tree_digest(site) == before
        assert not list(site.glob("~lash_attn*"))  # pip's stash of the old version, removed by the restore
        assert not list((cache_dir / "wheels" / "backups").iterdir())
    finally:
        for stash in site.glob("~lash_attn*"):
            shutil.rmtree(stash, ignore_errors=True)


def _kill_in_its_import_check(
    py: Path, site: Path, tmp: Path, cache_dir: Path, while_: Path | None = None
) -> None:
    """Start `flashdoctor install` of a V_GOOD whose import hangs through ``py`` (``while_``: while that
    file exists) and SIGKILL it (and its process group) in the import check: V_GOOD is in place,
    unverified, and its backup an orphan."""
    hang = "import time\ntime.sleep(120)\n"
    if while_ is not None:
        while_.touch()
        hang = f"import os, time\nwhile os.path.exists({str(while_)!r}):\n    time.sleep(0.05)\n"
    hangs = make_wheel(tmp / "hangs", version=V_GOOD, files={"flash_attn/__init__.py": init_py(V_GOOD, hang)})
    p = fd_install(write_plan(tmp / "plan.json", hangs, V_GOOD), py, cache_dir, start_new_session=True)
    new_info = site / f"flash_attn-{V_GOOD}.dist-info" / "RECORD"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and p.poll() is None and not new_info.exists():
            time.sleep(0.05)
        time.sleep(0.5)  # into the import check, which hangs
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()


def test_an_install_killed_through_a_linked_path_is_recovered_through_the_real_one(
    fresh_venv: Path, tmp_path: Path
) -> None:
    """The same environment reached by two paths (a symlink to the venv: ``--python`` through it once,
    the activated venv's real path the next time) is one environment, with one lock. Its interrupted
    install's backup named the path it was reached by; the next install, through the other path, did not
    recognise it: the unverified wheel stayed, was backed up as "the previous version", and the real
    previous version's backup was left behind for ever."""
    cache_dir = tmp_path / "fdc"
    ctx_cache = {"cache_root": cache_dir / "wheels"}
    linked = tmp_path / "linked-env"
    linked.symlink_to(fresh_venv.parent.parent, target_is_directory=True)
    linked_py = linked / "bin" / fresh_venv.name
    old = make_wheel(tmp_path / "old", version=V_OLD, files={"flash_attn/__init__.py": init_py(V_OLD)})
    assert _install(fresh_venv, old, V_OLD, tmp_path, **ctx_cache).status == "installed"
    before = tree_digest(site_packages(fresh_venv))
    _kill_in_its_import_check(linked_py, site_packages(fresh_venv), tmp_path, cache_dir)
    assert pip_list(fresh_venv)["flash-attn"] == norm(V_GOOD)  # unverified, unrestored
    bad = make_wheel(tmp_path / "bad", version=V_NEXT, files={"flash_attn/__init__.py": BAD_IMPORT})
    res = _install(fresh_venv, bad, V_NEXT, tmp_path, **ctx_cache)
    assert [s.name for s in res.steps][:1] == ["recover"], res.warnings
    assert res.status == "rolled-back" and res.previous == V_OLD, (res.status, res.previous)
    assert tree_digest(site_packages(fresh_venv)) == before
    assert not list((cache_dir / "wheels" / "backups").iterdir())


def test_a_lock_that_cannot_be_written_whole_leaves_the_previous_one(tmp_path: Path) -> None:
    """`flashdoctor lock -o FILE` over last week's lock, on a disk that fills up (RLIMIT_FSIZE, as in
    test_disk_full_during_the_backup) half-way through the new text: the old code truncated FILE first,
    so it reported the failure and left a lock cut short (its head only: `pip install --require-hashes -r`
    then installs nothing and succeeds) where a good one was. Now the file is replaced whole, or not at all."""
    w = make_wheel(tmp_path / "w", version=H100_V, tag="py3-none-any", requires=())  # fits h100.json
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(plan_for("https://example.invalid/" + w.name, w, H100_V).to_json()))
    out = tmp_path / "flash.lock.txt"
    previous = "flash-attn @ https://example.invalid/old.whl \\\n    --hash=sha256:" + "0" * 64 + "\n"
    out.write_text(previous)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))  # the lock's text is longer

    cmd = lock_h100_cmd(plan)
    r = subprocess.run(
        [*cmd, "-o", str(out)], capture_output=True, text=True, env=child_env(), preexec_fn=limit
    )
    assert r.returncode == 2 and "cannot write" in r.stderr and "Traceback" not in r.stderr, (
        r.stdout,
        r.stderr,
    )
    assert out.read_text() == previous
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".flash.lock")] == []  # no temporary left
    r = subprocess.run([*cmd, "-o", str(out)], capture_output=True, text=True, env=child_env())
    assert r.returncode == 0, r.stderr
    assert sha256_of(w) in out.read_text()


def test_lock_format_all_on_a_full_disk_replaces_none_of_the_set(tmp_path: Path) -> None:
    """`lock --format all -o BASE` wrote BASE.txt, BASE.pyproject.toml and BASE.Dockerfile one after
    another: a disk that filled up (RLIMIT_FSIZE) at the second left the first replaced and the others as
    they were, a set that no longer matches. Now every file is written beside itself first, and they are
    renamed only when all are complete: on a failure the previous set stays whole and no temporary is left."""
    w = make_wheel(tmp_path / "w", version=H100_V, tag="py3-none-any", requires=())  # fits h100.json
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(plan_for("https://example.invalid/" + w.name, w, H100_V).to_json()))
    cmd = [*lock_h100_cmd(plan), "--format", "all"]
    exports = json.loads(subprocess.run([*cmd, "--json"], capture_output=True, text=True,
                                        env=child_env(), check=True).stdout)["exports"]  # fmt: skip
    limit = len(exports["requirements"].encode())  # the first fits, a longer one does not
    assert max(len(t.encode()) for t in exports.values()) > limit
    out = tmp_path / "out"
    out.mkdir()
    previous = {s: f"# last week's {s}\n" for s in (".txt", ".pyproject.toml", ".Dockerfile")}
    for suffix, text in previous.items():
        (out / ("flash" + suffix)).write_text(text)

    def full_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    r = subprocess.run([*cmd, "-o", str(out / "flash")], capture_output=True, text=True, env=child_env(),
                       preexec_fn=full_disk)  # fmt: skip
    assert r.returncode == 2 and "cannot write" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert {p.name: p.read_text() for p in out.iterdir()} == {"flash" + s: t for s, t in previous.items()}
    r = subprocess.run([*cmd, "-o", str(out / "flash")], capture_output=True, text=True, env=child_env())
    assert r.returncode == 0, r.stderr
    assert (out / "flash.txt").read_text() == exports["requirements"]
    assert (out / "flash.Dockerfile").read_text() == exports["dockerfile"]


@pytest.mark.parametrize(
    ("sig", "group", "code"),
    [(signal.SIGINT, True, 130), (signal.SIGTERM, False, 143), (signal.SIGHUP, True, 129)],
    ids=["ctrl-c", "sigterm", "sighup"],
)
def test_ctrl_c_while_pip_replaces_the_old_version_restores_it_and_exits_130(
    fresh_venv: Path, tmp_path: Path, sig: signal.Signals, group: bool, code: int
) -> None:
    """Ctrl-C in the terminal (SIGINT to the whole process group) while pip is half-way through
    replacing the old flash-attn: flashdoctor restored the old version and exited 130, but pip's stash of
    it (``~lash_attn/``, ``~lash_attn-<old>.dist-info/``) stayed in site-packages, and every later pip
    warned "Ignoring invalid distribution ~lash-attn". The restore removes it now. SIGTERM to flashdoctor
    alone (`timeout`, `docker stop`: pip gets no signal of its own) stops pip, restores the same and
    exits 143. A terminal's hang-up (SIGHUP to the group: a closed ssh session) ended flashdoctor at once,
    with no restore, and pip, in a session of its own, went on; it is cleaned up as SIGTERM is, exit 129."""
    cache_dir = tmp_path / "fdc"
    site = site_packages(fresh_venv)
    before, names, p, err = _signal_pip_half_way(fresh_venv, tmp_path, cache_dir, sig, group=group)
    try:
        assert p.returncode == code and "Traceback" not in err, (p.returncode, err[-2000:])
        assert pip_list(fresh_venv)["flash-attn"] == norm(V_OLD)
        assert tree_digest(site) == before
        assert sorted(p.name for p in site.iterdir()) == names  # no stash of pip's left behind
        assert not list((cache_dir / "wheels" / "backups").iterdir())
    finally:
        for stash in site.glob("~lash_attn*"):
            shutil.rmtree(stash, ignore_errors=True)


def test_a_restore_on_a_full_disk_leaves_no_temporary_in_site_packages(
    fresh_venv: Path, tmp_path: Path
) -> None:
    """An interrupted install's recovery on a disk that fills up (RLIMIT_FSIZE, as in
    test_disk_full_during_the_backup) while it copies a 300 kB file of the old version back: the copy
    failed part-way and its temporary ``.<name>.fd-restore`` stayed in site-packages, where a user who
    repairs by hand keeps it. Now the temporary is removed with the failure; the backup is kept, and the
    next install (with room) restores the old version whole."""
    cache = tmp_path / "fdc" / "wheels"
    old = make_wheel(
        tmp_path / "old", version=V_OLD, files={"flash_attn/__init__.py": init_py(V_OLD)}, pad_bytes=300_000
    )
    assert _install(fresh_venv, old, V_OLD, tmp_path, cache_root=cache).status == "installed"
    site = site_packages(fresh_venv)
    good = make_wheel(tmp_path / "good", version=V_GOOD)
    state = read_state(str(fresh_venv), dict(os.environ), ("flash-attn",))
    root = cache / "backups" / "20260101-000000-1"
    root.mkdir(parents=True)
    make_backup(state, "flash-attn", inspect_wheel(good), root, environment=state.prefix)
    r = subprocess.run([str(fresh_venv), "-m", "pip", "-q", "install", "--no-deps", "--force-reinstall",
                        str(good)], capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stderr  # and killed before its import check: the backup is an orphan

    def full_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    plan = write_plan(tmp_path / "plan.json", good, V_GOOD)
    p = fd_install(plan, fresh_venv, cache.parent, preexec_fn=full_disk)
    out, err = p.communicate(timeout=120)
    assert "Traceback" not in err, err
    doc = json.loads(out)
    assert doc["status"] == "restore-failed" and "File too large" in doc["message"], doc
    assert [x.name for x in site.rglob("*.fd-restore")] == []  # the partial copy is not left behind
    assert root.is_dir()  # kept for the next try
    p = fd_install(plan, fresh_venv, cache.parent)
    out, err = p.communicate(timeout=120)
    doc = json.loads(out)
    assert [(s["name"], s["ok"]) for s in doc["steps"]][:1] == [("recover", True)], doc
    assert doc["status"] == "installed" and doc["previous"] == V_OLD, doc
    assert [x.name for x in site.rglob("*.fd-restore")] == []
    assert not root.exists()


def test_check_reports_an_install_that_was_killed(fresh_venv: Path, tmp_path: Path) -> None:
    """SIGKILL an install in its import check: the new, unverified flash-attn stays in place until the
    next `install` restores the previous version, and `flashdoctor check` said nothing of it (a user who
    never ran `install` again kept it). Now check reports ``install-interrupted`` (a warning) with the fix,
    in its JSON too; with the backup restored and gone, the finding is gone."""
    cache_dir = tmp_path / "fdc"
    old = make_wheel(tmp_path / "old", version=V_OLD, files={"flash_attn/__init__.py": init_py(V_OLD)})
    assert _install(fresh_venv, old, V_OLD, tmp_path, cache_root=cache_dir / "wheels").status == "installed"
    check = [sys.executable, "-m", "flashdoctor", "check", "--json", "--no-import-test", "--python",
             str(fresh_venv)]  # fmt: skip
    env = child_env(FLASHDOCTOR_CACHE_DIR=str(cache_dir))
    r = subprocess.run(check, capture_output=True, text=True, env=env, timeout=120)
    assert "install-interrupted" not in [f["code"] for f in json.loads(r.stdout)["findings"]], r.stderr
    _kill_in_its_import_check(fresh_venv, site_packages(fresh_venv), tmp_path, cache_dir)
    assert pip_list(fresh_venv)["flash-attn"] == norm(V_GOOD)  # unverified, unrestored
    r = subprocess.run(check, capture_output=True, text=True, env=env, timeout=120)
    doc = json.loads(r.stdout)
    schema_validator("check-report.schema.json").validate(doc)
    found = [f for f in doc["findings"] if f["code"] == "install-interrupted"]
    assert len(found) == 1 and found[0]["status"] == "warn", doc["findings"]
    assert V_GOOD in found[0]["message"] and V_OLD in found[0]["message"], found
    assert found[0]["fix"].startswith("flashdoctor install --fa2"), found
    assert "restores" in found[0]["fix"], found
    human = subprocess.run(check[:4] + check[5:], capture_output=True, text=True, env=env, timeout=120)
    assert "killed before it was verified" in human.stdout, human.stdout
    bad = make_wheel(tmp_path / "bad", version=V_NEXT, files={"flash_attn/__init__.py": BAD_IMPORT})
    res = _install(fresh_venv, bad, V_NEXT, tmp_path, cache_root=cache_dir / "wheels")
    assert [s.name for s in res.steps][:1] == ["recover"] and res.previous == V_OLD, res
    r = subprocess.run(check, capture_output=True, text=True, env=env, timeout=120)
    assert "install-interrupted" not in [f["code"] for f in json.loads(r.stdout)["findings"]]


@pytest.mark.parametrize("as_json", [False, True], ids=["human", "json"])
def test_install_as_check_advises_restores_a_killed_install_even_with_nothing_to_install(
    fresh_venv: Path, tmp_path: Path, as_json: bool
) -> None:
    """check's ``install-interrupted`` advises `flashdoctor install --fa2`, which "restores the previous
    version first"; but only an install of a wheel restored it (under its lock, in the executor). A plan
    that installs nothing (the unverified version imports: "none"; or, as here on a CPU, "unsupported")
    returned with the plan: the backup stayed and check warned for ever. Now install restores it first,
    says so, and plans for what is back. The plan it then prints ended "nothing was changed" (and its
    JSON said nothing of the restore) although the restore had just changed the environment: it says what
    was restored now (``restored`` in the JSON)."""
    cache_dir = tmp_path / "fdc"
    old = make_wheel(tmp_path / "old", version=V_OLD, files={"flash_attn/__init__.py": init_py(V_OLD)})
    assert _install(fresh_venv, old, V_OLD, tmp_path, cache_root=cache_dir / "wheels").status == "installed"
    before = tree_digest(site_packages(fresh_venv))
    hangs = tmp_path / "hangs-while"
    _kill_in_its_import_check(fresh_venv, site_packages(fresh_venv), tmp_path, cache_dir, while_=hangs)
    hangs.unlink()  # V_GOOD imports now
    assert pip_list(fresh_venv)["flash-attn"] == norm(V_GOOD)  # unverified, unrestored
    env = child_env(FLASHDOCTOR_CACHE_DIR=str(cache_dir))
    fd = [sys.executable, "-m", "flashdoctor"]
    json_flag = ["--json"] if as_json else []
    r = subprocess.run([*fd, "install", "--fa2", "--yes", *json_flag, "--python", str(fresh_venv)],
                       capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)  # fmt: skip
    assert "Traceback" not in r.stderr, r.stderr
    assert "what it replaced was restored first" in r.stderr, (r.stdout, r.stderr)
    restored = f"flash-attn {V_OLD} restored"
    if as_json:
        doc = json.loads(r.stdout)
        schema_validator("plan.schema.json").validate(doc)
        assert doc["action"] == "unsupported" and len(doc["restored"]) == 1, doc
        assert doc["restored"][0].startswith(restored), doc["restored"]
    else:
        text = " ".join(r.stdout.split())  # wrapped to the terminal's width
        assert "nothing was changed" not in text, r.stdout
        assert text.endswith("nothing else was changed") and f"{restored} from" in text, r.stdout
    assert pip_list(fresh_venv)["flash-attn"] == norm(V_OLD)
    assert tree_digest(site_packages(fresh_venv)) == before
    assert not list((cache_dir / "wheels" / "backups").iterdir())
    check = [*fd, "check", "--json", "--no-import-test", "--python", str(fresh_venv)]
    r = subprocess.run(check, capture_output=True, text=True, env=env, timeout=120)
    assert "install-interrupted" not in [f["code"] for f in json.loads(r.stdout)["findings"]], r.stdout


def test_a_replayed_plan_refused_for_an_interrupted_installs_leftover_still_restores_it(
    fresh_venv: Path, tmp_path: Path
) -> None:
    """`install --plan FILE` of a `none` plan judges what is installed here: an install killed before it was
    verified left its version in place, so the plan was refused for the leftover, before the recovery that
    every other install runs (review, stop 42). The leftover is restored first now, and the plan judged
    by what is back (on this CPU machine it still does not hold: its own plan is `unsupported`)."""
    cache_dir = tmp_path / "fdc"
    old = make_wheel(tmp_path / "old", version=V_OLD, files={"flash_attn/__init__.py": init_py(V_OLD)})
    assert _install(fresh_venv, old, V_OLD, tmp_path, cache_root=cache_dir / "wheels").status == "installed"
    hangs = tmp_path / "hangs-while"
    _kill_in_its_import_check(fresh_venv, site_packages(fresh_venv), tmp_path, cache_dir, while_=hangs)
    hangs.unlink()
    assert pip_list(fresh_venv)["flash-attn"] == norm(V_GOOD)  # unverified, unrestored
    env = child_env(FLASHDOCTOR_CACHE_DIR=str(cache_dir))
    fd = [sys.executable, "-m", "flashdoctor"]
    r = subprocess.run([*fd, "install", "--fa2", "--dry-run", "--json", "--python", str(fresh_venv)],
                       capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    plan = json.loads(r.stdout)
    plan.update(action="none", wheel=None, installed={"dist": "flash-attn", "version": V_OLD}, blockers=[])
    (tmp_path / "none.json").write_text(json.dumps(plan))
    r = subprocess.run([*fd, "install", "--fa2", "--plan", str(tmp_path / "none.json"), "--yes", "--python",
                        str(fresh_venv)], capture_output=True, text=True, env=env, timeout=120,
                       stdin=subprocess.DEVNULL)  # fmt: skip
    assert "Traceback" not in r.stderr, r.stderr
    assert "what it replaced was restored first" in r.stderr, (r.stdout, r.stderr)
    assert r.returncode == 1 and "the plan does not hold on this machine" in r.stderr, r.stderr
    assert pip_list(fresh_venv)["flash-attn"] == norm(V_OLD)
    assert not list((cache_dir / "wheels" / "backups").iterdir())
