# mypy: ignore-errors
# A module of the smoke runner (_runner.py), which runs inside the *target* interpreter: standard
# library + torch only, Python >= 3.8, no flashdoctor there. Its name is long on purpose: the runner's
# directory is on the target's sys.path while it starts, and a short name could shadow a user module.
# What every part of the runner shares: the event stream and small helpers.
import json
import math
import sys
import threading
import time
from contextlib import contextmanager

T0 = time.perf_counter()


class Events:
    """One JSON object a line, appended and flushed after each (a crash loses nothing written)."""

    def __init__(self, path):
        self.fh = open(path, "a", encoding="utf-8") if path else sys.stdout  # noqa: SIM115 - open for the whole run
        self.lock = threading.Lock()  # the cuDNN warm-up threads emit too

    def emit(self, event, **data):
        data["event"] = event
        data["t"] = round(time.perf_counter() - T0, 4)
        line = json.dumps(data, default=str, allow_nan=False) + "\n"
        with self.lock:
            self.fh.write(line)
            self.fh.flush()


def err_text(exc):
    return f"{type(exc).__name__}: {exc}".strip()[:2000]


def finite(x):
    return x if x is not None and math.isfinite(x) else None


@contextmanager
def null():
    yield
