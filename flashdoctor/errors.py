"""User-facing errors and exit codes (README "Exit codes": public interface, never renumber)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # a failing check, an unmet --require, a failed smoke test
EXIT_USAGE = 2  # bad options or input (an unreadable --target, a --python that is no Python)
EXIT_INTERNAL = 3  # a bug in flashdoctor: the traceback is saved to a log file
EXIT_NETWORK = 4  # a download failed (after retries)
EXIT_INSTALL = 5  # an install or build failed; the environment was restored
EXIT_INTERRUPTED = 130


class FlashdoctorError(Exception):
    """An error the user can act on: printed as one message, no traceback."""

    return_code = EXIT_FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(FlashdoctorError):
    return_code = EXIT_USAGE


class NetworkError(FlashdoctorError):
    return_code = EXIT_NETWORK


class InstallError(FlashdoctorError):
    return_code = EXIT_INSTALL
