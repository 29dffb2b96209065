"""The install lock belongs to the target environment (issue "Hostile inputs", row 3).

Two installs into one environment must run one after the other whoever starts them: two users, two
shells with different FLASHDOCTOR_CACHE_DIR, a CI job and a person. A lock in flashdoctor's cache would
serialise only the installs that share that cache, so the lock lives with the environment:

    <prefix>/.flashdoctor-install.lock        sys.prefix of the target interpreter (the venv or conda
                                              env directory), created group-writable (0664) so that
                                              the users who may write the environment may also lock it

Where the prefix cannot hold it (read-only, e.g. /usr for a system Python: pip then installs into the
user's site, so only that user's installs can meet), the lock falls back to a private directory of the
user in the temporary directory, named after the prefix:

    $TMPDIR/flashdoctor-<uid>/env-<sha256 of the prefix's real path, 16 hex>.lock

A lock of a process that died is free again (filelock: an OS lock on an open file). The lock is held
from before the target's state is trusted until the install is verified or restored.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from filelock import FileLock

from flashdoctor.actions.cache import LOCK_TIMEOUT, acquire
from flashdoctor.errors import InstallError

LOCK_NAME = ".flashdoctor-install.lock"


def fallback_lock_path(prefix: str) -> Path:
    """The per-user lock of an environment whose prefix cannot hold one (see the module docstring)."""
    key = hashlib.sha256(os.path.realpath(prefix).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"flashdoctor-{os.geteuid()}" / f"env-{key}.lock"


def _private_dir(d: Path) -> None:
    """Create ``d`` for this user only; refuse one that is a link, another's, or writable by others."""
    with contextlib.suppress(FileExistsError):
        d.mkdir(mode=0o700)
    st = os.lstat(d)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise InstallError(
            f"cannot lock the environment: {d} is not a private directory of this user",
            hint="remove it (it may have been planted), or set TMPDIR to a directory of your own",
        )


def lock_candidates(prefix: str) -> list[Path]:
    return [Path(prefix) / LOCK_NAME, fallback_lock_path(prefix)]


def _file_lock(path: Path) -> FileLock:
    return FileLock(str(path), mode=0o664)


def install_running(prefix: str) -> bool:
    """Whether an install into the environment at ``prefix`` holds its lock now, for a reader that takes
    none (``check``): the one answer on any host that shares the environment, whatever the install's pid.
    Asked without waiting, only of a lock file that exists (none is created); one that cannot be opened
    (another's, a read-only prefix) says nothing."""
    for path in lock_candidates(prefix):
        if not path.is_file():
            continue
        lk = _file_lock(path)
        try:
            took = acquire(lk, 0)
        except OSError:
            continue
        if not took:
            return True
        lk.release()
    return False


@contextlib.contextmanager
def environment_lock(
    prefix: str, on_wait: Callable[[], None] | None = None, timeout: float = LOCK_TIMEOUT
) -> Iterator[Path]:
    """Hold the install lock of the environment at ``prefix``; yields the lock file's path.
    ``on_wait`` is called once if another install holds it."""
    last: OSError | None = None
    for path in lock_candidates(prefix):
        if path.parent != Path(prefix):
            try:
                _private_dir(path.parent)
            except OSError as exc:
                last = exc
                continue
        lk = _file_lock(path)
        try:
            took = acquire(lk, timeout, on_wait)
        except OSError as exc:  # read-only prefix, not a directory: the next candidate
            last = exc
            continue
        if not took:
            raise InstallError(
                f"another flashdoctor install has held {path} for {timeout:.0f}s",
                hint="wait for it to finish, or end it; a lock of a dead process frees itself",
            )
        try:
            yield path
        finally:
            lk.release()
        return
    raise InstallError(
        f"cannot lock the environment {prefix}: {getattr(last, 'strerror', None) or last}",
        hint="check the permissions of the environment and of the temporary directory (TMPDIR)",
    )
