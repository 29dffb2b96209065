"""The rules every test runs under (tests/support/guards.py, tests/conftest.py) hold: a unit test cannot start
a process or a server, no test reaches past loopback, the markers are set from what a test uses, and
hypothesis runs derandomised."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from hypothesis import settings

from tests.support.guards import Refused, is_loopback_host, network_allowed


def test_a_unit_test_cannot_start_a_process() -> None:
    with pytest.raises(Refused, match="mark the test"):
        subprocess.run([sys.executable, "-c", "pass"], check=False)
    with pytest.raises(Refused):
        os.system("true")


def test_a_unit_test_cannot_start_a_server() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        with pytest.raises(Refused, match="servers"):
            s.listen()


@pytest.mark.system
def test_a_system_test_can_serve_on_loopback_and_run_processes() -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        with socket.create_connection(srv.getsockname(), timeout=5):
            pass
    assert subprocess.run([sys.executable, "-c", "pass"], check=False, timeout=60).returncode == 0


@pytest.mark.parametrize("address", [("192.0.2.1", 443), ("2001:db8::1", 443), ("0.0.0.0", 0)])
def test_no_test_reaches_past_loopback(address: tuple[str, int]) -> None:
    """Refused before any packet: 192.0.2.0/24 and 2001:db8::/32 are documentation ranges (RFC 5737/3849)."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        with pytest.raises(Refused, match="loopback"):
            s.connect(address) if address[1] else s.bind(address)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, pytest.raises(Refused):
        u.sendto(b"x", ("192.0.2.1", 53))


def test_no_name_is_looked_up() -> None:
    with pytest.raises(Refused, match="name lookup"):
        socket.getaddrinfo("pypi.org", 443)
    assert socket.getaddrinfo("localhost", 80)  # /etc/hosts, no resolver
    assert socket.getaddrinfo("127.0.0.1", 80)


def test_loopback_hosts() -> None:
    assert all(map(is_loopback_host, ["127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost", b"localhost"]))
    assert not any(map(is_loopback_host, ["", "0.0.0.0", "10.0.0.1", "example.com", "localhost.example", 7]))


def test_the_network_is_allowed_only_where_a_fixture_asks() -> None:
    from tests.support.guards import _check

    with network_allowed():
        _check(socket.AF_INET, ("192.0.2.1", 443), "connect to")  # allowed: nothing is sent here
    with pytest.raises(Refused):
        _check(socket.AF_INET, ("192.0.2.1", 443), "connect to")


def test_fixtures_that_fetch_mark_their_tests_network(request: pytest.FixtureRequest) -> None:
    from tests.conftest import NETWORK_FIXTURES

    for item in request.session.items:
        uses = bool(NETWORK_FIXTURES & set(getattr(item, "fixturenames", ())))
        assert uses == (item.get_closest_marker("network") is not None), item.nodeid
        if uses:  # a download and an unpacking: out of the unit tier
            assert item.get_closest_marker("slow") is not None, item.nodeid


def test_the_modules_with_a_slow_test_run_first_each_whole(request: pytest.FixtureRequest) -> None:
    """The run ends on short tests that both workers share (worksteal), not on one worker alone in a slow test
    that collection order put last; each module stays whole, so its module fixtures are made once per worker."""
    addopts = request.config.getini("addopts")
    assert "--dist" in addopts and addopts[addopts.index("--dist") + 1] == "worksteal"
    modules = [getattr(item, "module", None) for item in request.session.items]
    slow = {
        m for m, item in zip(modules, request.session.items) if item.get_closest_marker("slow") is not None
    }
    runs = [m for i, m in enumerate(modules) if i == 0 or m is not modules[i - 1]]
    assert len(runs) == len(set(runs)), "a module's tests were split"
    kinds = [m in slow for m in runs]
    assert kinds == sorted(kinds, reverse=True), "a module without a slow test ran before one with"


@pytest.mark.parametrize(
    ("markexpr", "unit_tier"),
    [
        ("not slow and not system", True),
        ("not system", True),
        ("not (system or slow)", True),
        ("", False),
        ("system", False),
        ("slow", False),
        ("not slow", False),
        ("system and not slow", False),
    ],
)
def test_the_unit_tier_runs_in_one_process(markexpr: str, unit_tier: bool) -> None:
    """-n auto (addopts) is 0 workers exactly where -m leaves the system tests out (tests/conftest.py)."""
    from tests.conftest import _leaves_system_tests_out

    assert _leaves_system_tests_out(markexpr) is unit_tier


def test_hypothesis_is_derandomised_unless_asked() -> None:
    if os.environ.get("HYPOTHESIS_PROFILE", "ci") == "ci" and not os.environ.get("FLASHDOCTOR_FUZZ_RANDOM"):
        assert settings.default.derandomize is True and settings.default.database is None
    assert settings.get_profile("ci").derandomize is True
    assert settings.get_profile("random").derandomize is False
