"""Back up what an install will replace, and put it back exactly.

Before anything changes, every file that the installed distribution's RECORD lists, plus every existing
file that the new wheel would overwrite (FA2 2.8.3 ships ``flash_attn/cute/``, which is also FA4's), is
copied to a backup directory with its sha256 and a ``manifest.json``. If flashdoctor itself is killed
before it restores or discards the backup, the next install into that environment finds it
(``find_interrupted``) and restores it first. Restoring means: uninstall the new distribution (and any dependency the
install added), delete what the new wheel created where nothing was before, copy the saved files back
(each through a temporary name and a rename; a copy that fails part-way, on a full disk, is removed), remove the directories a pip killed or interrupted mid-way
left next to the saved ones (its ``~lash_attn`` stash, ``pip_stashes``), and check every restored file's sha256 and the
distribution's version in the target interpreter.

A file-level backup restores the previous state even when its wheel is nowhere to be found (a source
build, a wheel installed from a since-deleted URL), which "reinstall the old wheel from the cache" cannot.

A backup directory holds ``owner.json`` (the environment, the pid) from its first moment and
``manifest.json`` from its last: a backup that fails (a full disk) is removed at once and reported; one
without a manifest that a killed install left behind is removed by the next install into that
environment (``clean_incomplete``, under the environment's lock, so none of its installs is running).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from packaging.version import InvalidVersion, Version

from flashdoctor.actions.cache import atomic_write_bytes, copy_new, read_bounded, sha256_file
from flashdoctor.actions.install.pip import Installer, run_installer
from flashdoctor.actions.wheelfile import WheelInfo
from flashdoctor.errors import InstallError
from flashdoctor.probe.state import TargetState, read_state

OWNER = "owner.json"
# pip moves a directory it uninstalls aside under a name next to it, "~" and these characters in place of
# the name's first ones (pip's AdjacentTempDirectory.LEADING_CHARS: "flash_attn" -> "~lash_attn"), and
# deletes it once the install is done; a pip killed (or interrupted by Ctrl-C) in between leaves it there.
PIP_STASH_LEAD = "-~.=%0123456789"
UNOWNED_STALE_S = 86400.0  # an incomplete backup that names no environment (an older flashdoctor's)


class BackupError(InstallError):
    """The backup could not be made (a full disk); nothing was changed and nothing is left behind."""


@dataclass(frozen=True)
class SavedFile:
    path: str  # where it lives in the target
    stored: str  # its copy, relative to the backup root
    sha256: str
    mode: int


@dataclass(frozen=True)
class Backup:
    dist: str
    version: str | None  # None: the distribution was not installed
    root: Path
    files: tuple[SavedFile, ...]
    new_paths: tuple[str, ...]  # files the new wheel creates where there were none
    new_dirs: tuple[str, ...]  # top-level directories the new wheel creates where there were none

    # Who made it, for the recovery of an install that was killed before it could restore or discard
    # this backup (see find_interrupted): the environment (its directory), and what was installed then.
    environment: str | None = None
    dists_before: tuple[str, ...] = ()
    pid: int | None = None
    installing: str | None = None  # the version the install was putting in place

    def to_json(self) -> dict[str, object]:
        return {
            "dist": self.dist,
            "version": self.version,
            "files": [f.__dict__ for f in self.files],
            "new_paths": list(self.new_paths),
            "new_dirs": list(self.new_dirs),
            "environment": self.environment,
            "dists_before": list(self.dists_before),
            "pid": self.pid,
            "installing": self.installing,
        }

    @classmethod
    def from_manifest(cls, root: Path) -> Backup:
        """Raises ValueError for a manifest that cannot be read."""
        try:
            d = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
            return cls(
                dist=str(d["dist"]),
                version=d.get("version"),
                root=root,
                files=tuple(
                    SavedFile(str(f["path"]), str(f["stored"]), str(f["sha256"]), int(f["mode"]))
                    for f in d["files"]
                ),
                new_paths=tuple(str(p) for p in d.get("new_paths", ())),
                new_dirs=tuple(str(p) for p in d.get("new_dirs", ())),
                environment=d.get("environment"),
                dists_before=tuple(str(x) for x in d.get("dists_before", ())),
                pid=d.get("pid"),
                installing=d.get("installing"),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"unreadable backup manifest in {root}: {exc}") from None


@dataclass(frozen=True)
class RestoreResult:
    ok: bool
    version: str | None  # what is installed after the restore
    problems: tuple[str, ...] = ()
    log: tuple[str, ...] = field(default_factory=tuple)


def wheel_target_paths(wheel: WheelInfo, state: TargetState) -> list[str]:
    """Where the wheel's files land in the target (purelib for root files, scripts dir for scripts, the
    prefix for data files)."""
    out = [os.path.normpath(os.path.join(state.purelib, f)) for f in wheel.root_files]
    out += [os.path.normpath(os.path.join(state.scripts, f)) for f in wheel.script_files]
    out += [os.path.normpath(os.path.join(state.prefix, f)) for f in wheel.data_files]
    return out


def make_backup(
    state: TargetState, dist: str, wheel: WheelInfo | None, root: Path, environment: str | None = None
) -> Backup:
    """Copy what the install will replace into ``root`` (a new directory). Raises BackupError, with
    ``root`` removed, when that fails."""
    try:
        atomic_write_bytes(
            root / OWNER, json.dumps({"environment": environment, "pid": os.getpid()}).encode()
        )
        return _make_backup(state, dist, wheel, root, environment)
    except OSError as exc:
        shutil.rmtree(root, ignore_errors=True)
        installed = state.dist(dist)
        what = f"{dist} {installed.version}" if installed else f"the files {dist} would replace"
        raise BackupError(
            f"cannot back up {what} before replacing it: {exc.strerror or exc}; nothing was changed",
            hint=f"free disk space where flashdoctor keeps backups ({root.parent}), or point "
            "FLASHDOCTOR_CACHE_DIR at a disk with room",
        ) from None


def _make_backup(
    state: TargetState, dist: str, wheel: WheelInfo | None, root: Path, environment: str | None
) -> Backup:
    installed = state.dist(dist)
    paths: list[str] = list(installed.files) if installed else []
    new_paths: list[str] = []
    new_dirs: set[str] = set()
    if wheel is not None:
        for p in wheel_target_paths(wheel, state):
            if os.path.isfile(p):
                paths.append(p)
            else:
                new_paths.append(p)
        for f in wheel.root_files:
            top = os.path.normpath(os.path.join(state.purelib, f.split("/", 1)[0]))
            if "/" in f and not os.path.exists(top):
                new_dirs.add(top)
    (root / "files").mkdir(parents=True, exist_ok=True)
    saved = []
    for i, p in enumerate(dict.fromkeys(paths)):
        stored = f"files/{i:06d}"
        copy, sha = copy_new(Path(p), root / "files", f"{i:06d}", mode=0o600)
        shutil.copystat(p, copy)
        saved.append(SavedFile(path=p, stored=stored, sha256=sha, mode=os.stat(p).st_mode & 0o7777))
    b = Backup(
        dist=dist,
        version=installed.version if installed else None,
        root=root,
        files=tuple(saved),
        new_paths=tuple(new_paths),
        new_dirs=tuple(sorted(new_dirs)),
        environment=environment,
        dists_before=tuple(sorted(state.dists)),
        pid=os.getpid(),
        installing=wheel.version if wheel is not None else None,
    )
    # Written last, through a temporary name: a manifest exists only for a complete backup.
    atomic_write_bytes(root / "manifest.json", json.dumps(b.to_json(), indent=1).encode("utf-8"))
    return b


def find_interrupted(backups: Path, environment: str) -> list[Backup]:
    """Complete backups of ``environment`` left by installs that never finished (killed between their
    backup and their restore or discard), oldest first. Call it holding the environment's lock: then
    no install into it is running, and every backup found is an orphan."""
    found = []
    try:
        dirs = sorted(p for p in backups.iterdir() if p.is_dir())
    except OSError:
        return []
    for d in dirs:
        if not (d / "manifest.json").is_file():
            continue  # incomplete (killed while backing up: nothing had changed yet) or another's
        try:
            b = Backup.from_manifest(d)
        except ValueError:
            continue
        if same_environment(b.environment, environment):
            found.append(b)
    return found


def same_environment(recorded: object, environment: str) -> bool:
    """Whether a backup's recorded environment is ``environment``: one directory, whatever path reached it
    (sys.prefix keeps the path the interpreter was started by, so a venv reached through a symlink once
    and by its real path the next time names itself twice; its lock file is one, <prefix>/LOCK_NAME)."""
    if not isinstance(recorded, str) or not recorded:
        return False
    return recorded == environment or os.path.realpath(recorded) == os.path.realpath(environment)


def clean_incomplete(backups: Path, environment: str, now: float | None = None) -> list[str]:
    """Remove the backups without a manifest that an install into ``environment`` left behind when it
    was killed while backing up (nothing had changed yet), and those that name no environment and are
    older than a day. Call it holding the environment's lock. Returns the names removed."""
    removed: list[str] = []
    now = time.time() if now is None else now
    try:
        dirs = sorted(p for p in backups.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return removed
    for d in dirs:
        if (d / "manifest.json").exists():
            continue
        try:
            owner = json.loads(read_bounded(d / OWNER, 1 << 16).decode("utf-8")).get("environment")
        except (OSError, ValueError, AttributeError):
            owner = None
            try:
                if now - os.lstat(d).st_mtime < UNOWNED_STALE_S:
                    continue
            except OSError:
                continue
        else:
            if not same_environment(owner, environment):
                continue  # another environment's, perhaps being written right now
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d.name)
    return removed


def _sha(path: str) -> str | None:
    try:
        return sha256_file(Path(path))
    except OSError:
        return None


def restore(
    backup: Backup,
    installer: Installer,
    environ: Mapping[str, str],
    added: tuple[str, ...] = (),
    log: Path | None = None,
) -> RestoreResult:
    problems: list[str] = []
    notes: list[str] = []
    rc, out = run_installer(installer.uninstall_cmd([backup.dist, *added]), environ, log)
    if rc != 0:
        notes.append(f"uninstall exited {rc}: {out[-300:]}")
    # What the new wheel created where nothing was: gone, whatever the uninstall managed.
    for p in backup.new_paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)
    for d in backup.new_dirs:
        shutil.rmtree(d, ignore_errors=True)
    for f in backup.files:
        dst = Path(f.path)
        tmp = dst.with_name(f".{dst.name}.fd-restore")
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(backup.root / f.stored, tmp)
            os.chmod(tmp, f.mode)
            os.replace(tmp, dst)
        except OSError as exc:
            problems.append(f"cannot restore {f.path}: {exc.strerror or exc}")
            with contextlib.suppress(OSError):
                tmp.unlink()  # a copy cut short (a full disk) is not left in the target
            continue
        if _sha(f.path) != f.sha256:
            problems.append(f"{f.path} does not match its backup after the restore")
    for stash in pip_stashes(backup):
        shutil.rmtree(stash, ignore_errors=True)
        notes.append(f"removed {stash}, left by a pip that was interrupted")
    state = read_state(installer.python, environ, (backup.dist,))
    now = state.dist(backup.dist)
    version = now.version if now else None
    if not same_version(version, backup.version):
        problems.append(
            f"{backup.dist} is {version or 'not installed'} after the restore, expected {backup.version or 'not installed'}"
        )
    for p in backup.new_paths:
        if os.path.exists(p):
            problems.append(f"{p} is still there after the restore")
    for a in added:
        if a in state.dists:
            problems.append(f"{a}, added by the install, is still installed")
    return RestoreResult(ok=not problems, version=version, problems=tuple(problems), log=tuple(notes))


def _is_stash_name(stash: str, name: str) -> bool:
    """Whether ``stash`` is a name pip gives ``name`` while it uninstalls it (see PIP_STASH_LEAD)."""
    if not stash.startswith("~") or stash == name:
        return False
    for k in range(1, len(stash)):
        head, tail = stash[1:k], stash[k:]
        if all(c in PIP_STASH_LEAD for c in head) and (
            tail == name or (len(stash) == len(name) and name.endswith(tail))
        ):
            return True
    return False


def pip_stashes(backup: Backup) -> list[str]:
    """The directories an interrupted pip left next to the backed-up ones: named as pip names a stash of
    one of them, and holding nothing but files the backup holds (at their stashed place), or nothing at
    all, so that none of another's is ever removed."""
    saved = {f.path for f in backup.files}
    if len(saved) < 2:
        return []
    top = os.path.commonpath(list(saved))
    dirs: set[str] = set()
    for p in saved:
        d = os.path.dirname(p)
        while len(d) > len(top) and d.startswith(top):
            dirs.add(d)
            d = os.path.dirname(d)
    found = []
    for d in sorted(dirs):
        parent, name = os.path.split(d)
        try:
            entries = [e for e in os.scandir(parent) if _is_stash_name(e.name, name)]
        except OSError:
            continue
        for e in entries:
            if not e.is_dir(follow_symlinks=False):
                continue
            held = [
                os.path.join(d, os.path.relpath(os.path.join(w, f), e.path))
                for w, _dirs, files in os.walk(e.path)
                if "__pycache__" not in Path(w).relative_to(e.path).parts
                for f in files
            ]
            # empty (files aside that Python writes, in __pycache__): pip made it, then was stopped before
            # it renamed the old directory into it
            if all(h in saved for h in held):
                found.append(e.path)
    return found


def same_version(a: str | None, b: str | None) -> bool:
    """Equal versions (PEP 440, so 2.8.3 == 2.8.3.0); None ("not installed") equals only None."""
    if a is None or b is None:
        return a is b
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def discard(backup: Backup) -> None:
    """Remove ``backup``: its manifest first, so that a discard killed part-way leaves an incomplete
    backup (``clean_incomplete`` removes it), never a manifest over missing files (an interrupted install,
    restored from what is left)."""
    with contextlib.suppress(OSError):
        (backup.root / "manifest.json").unlink()
    shutil.rmtree(backup.root, ignore_errors=True)
