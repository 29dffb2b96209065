"""User-facing errors and exit codes (README "Exit codes": public interface, never renumber)."""

from __future__ import annotations

import sys

EXIT_OK = 0
EXIT_FAILED = 1  # a failing check, an unmet --require, a failed smoke test
EXIT_USAGE = 2  # bad options or input (an unreadable --target, a --python that is no Python)
EXIT_INTERNAL = 3  # a bug in flashdoctor: the traceback is saved to a log file
EXIT_NETWORK = 4  # a download failed (after retries)
EXIT_INSTALL = 5  # an install or build failed; the environment was restored
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM: `timeout`, `docker stop`, a CI job cancelled
EXIT_HUNG_UP = 129  # 128 + SIGHUP: the terminal went away (a closed ssh session)


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP), raised where the program is, as Ctrl-C is: everything that cleans up after
    Ctrl-C (an install's rollback, a build's process group, a probe's child in its own session, install's
    pip in its own) does so after it."""

    def __init__(self, signame: str = "SIGTERM") -> None:
        super().__init__(signame)
        self.signame = signame


class FlashdoctorError(Exception):
    """An error the user can act on: printed as one message, no traceback."""

    return_code = EXIT_FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def text(self) -> str:
        """How the command line prints it: the message, then the hint on its own line."""
        return f"flashdoctor: error: {self.message}" + (f"\n  hint: {self.hint}" if self.hint else "")


class PlanDoesNotHold(FlashdoctorError):
    """`install --plan FILE` / `lock --plan FILE`: the reviewed plan does not hold on the machine it is
    replayed on (its wheel does not fit, or what it found is not what is there); exit 1."""


class UsageError(FlashdoctorError):
    return_code = EXIT_USAGE


class NetworkError(FlashdoctorError):
    return_code = EXIT_NETWORK


class InstallError(FlashdoctorError):
    return_code = EXIT_INSTALL


# The import names of the dependencies in pyproject.toml (a test keeps the two equal). One that cannot be
# imported is a broken install of flashdoctor (`pip install --no-deps`, a checkout on PYTHONPATH), not a bug.
DEPENDENCY_MODULES = {
    "click": "click",
    "packaging": "packaging",
    "pynvml": "nvidia-ml-py",
    "requests": "requests",
    "urllib3": "urllib3",
    "rich": "rich",
    "jsonschema": "jsonschema",
    "platformdirs": "platformdirs",
    "filelock": "filelock",
}


def own_pip_install(dist: str) -> str:
    """The command that installs ``dist`` where flashdoctor runs: its own interpreter's pip, not the first
    ``pip`` on PATH (flashdoctor usually lives in an environment of its own: README, "Set-up")."""
    return f"{sys.executable} -m pip install {dist}"


def missing_dependency(exc: BaseException) -> UsageError | None:
    """The error to print when ``exc`` is the import of one of flashdoctor's dependencies failing."""
    name = exc.name if isinstance(exc, ModuleNotFoundError) else None
    dist = DEPENDENCY_MODULES.get((name or "").partition(".")[0])
    if dist is None:
        return None
    return UsageError(
        f"flashdoctor's dependency {dist} is not installed in {sys.executable}",
        hint=f"{own_pip_install(dist)} (or reinstall flashdoctor without --no-deps)",
    )
