"""What a test may touch, enforced (tests/conftest.py installs these).

- No test reaches past loopback: every socket address and every name lookup that is not 127.0.0.0/8, ::1
  or ``localhost`` raises ``Refused`` (an AssertionError, so that no code under test mistakes it for a
  network failure and passes). The one exception is ``network_allowed()``, used by the fixtures that need
  PyPI (tests/support/sdist.py); the tests that use them carry the ``network`` marker (set by conftest).
- A unit test (not marked ``system``) may not start a process (subprocess, fork, spawn, exec, os.system)
  nor listen on a socket (a server, even on loopback, is the system).

The guard sees this process only: a subprocess of a ``system`` test is bounded by what it is told (loopback
URLs, ``--no-index``), not by this module.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest


class Refused(AssertionError):
    """A test tried what its markers do not allow."""


_state = threading.local()


def _network_allowed() -> bool:
    return bool(getattr(_state, "network", 0))


@contextlib.contextmanager
def network_allowed() -> Iterator[None]:
    """Let this thread reach past loopback for the duration (a fixture that fetches from PyPI)."""
    _state.network = getattr(_state, "network", 0) + 1
    try:
        yield
    finally:
        _state.network -= 1


def is_loopback_host(host: object) -> bool:
    if host is None:  # getaddrinfo(None, port): the local wildcard, no lookup
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.strip("[]").split("%", 1)[0].rstrip(".").lower()
    if name in ("localhost", "", "ip6-localhost"):
        return name != ""  # "" is INADDR_ANY: binding to every interface is not loopback
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a name: looking it up would ask a resolver


def _is_local_address(family: int, address: object) -> bool:
    if family == getattr(socket, "AF_UNIX", object()):
        return True  # a path on this machine
    if isinstance(address, tuple) and address:
        return is_loopback_host(address[0])
    return False


def _check(family: int, address: object, what: str) -> None:
    if not _network_allowed() and not _is_local_address(family, address):
        raise Refused(f"tests stay on loopback: {what} {address!r} refused (tests/support/guards.py)")


def install_loopback_guard() -> None:
    """For the whole session, in this process: nothing past loopback (see the module's docstring)."""
    cls = socket.socket
    if getattr(cls, "_fd_guarded", False):
        return
    real_connect, real_connect_ex, real_bind, real_sendto = cls.connect, cls.connect_ex, cls.bind, cls.sendto
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        _check(self.family, address, "connect to")
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _check(self.family, address, "connect to")
        return real_connect_ex(self, address)

    def bind(self: socket.socket, address: Any) -> None:
        _check(self.family, address, "bind to")
        return real_bind(self, address)

    def sendto(self: socket.socket, data: Any, *args: Any) -> int:
        _check(self.family, args[-1], "send to")
        return real_sendto(self, data, *args)  # type: ignore[arg-type]

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _network_allowed() and not is_loopback_host(host):
            raise Refused(
                f"tests stay on loopback: name lookup of {host!r} refused (tests/support/guards.py)"
            )
        return real_getaddrinfo(host, *args, **kwargs)

    cls.connect = connect  # type: ignore[method-assign]
    cls.connect_ex = connect_ex  # type: ignore[method-assign]
    cls.bind = bind  # type: ignore[method-assign]
    cls.sendto = sendto  # type: ignore[method-assign,assignment]
    socket.getaddrinfo = getaddrinfo
    cls._fd_guarded = True  # type: ignore[attr-defined]


def refuse_system(monkeypatch: pytest.MonkeyPatch) -> None:
    """For one unit test: no processes, no servers."""

    def refuse(*args: object, **kwargs: object) -> Any:
        raise Refused("unit tests must not start processes; mark the test @pytest.mark.system")

    def refuse_listen(*args: object, **kwargs: object) -> Any:
        raise Refused(
            "unit tests must not start servers, even on loopback; mark the test @pytest.mark.system"
        )

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system", "execv", "execve", "spawnv"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, refuse)
    with contextlib.suppress(ImportError):  # multiprocessing's spawn starts its child through this
        import _posixsubprocess

        monkeypatch.setattr(_posixsubprocess, "fork_exec", refuse)
    monkeypatch.setattr(socket.socket, "listen", refuse_listen)
