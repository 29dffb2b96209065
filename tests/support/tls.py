"""Fixtures for the network tests: a self-signed CA and a TLS server on 127.0.0.1 that it vouches for
(openssl makes both; nothing leaves loopback)."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.loopback import Server, serve


@dataclass(frozen=True)
class CA:
    bundle: Path  # the CA certificate: point REQUESTS_CA_BUNDLE here
    cert: Path  # the server's certificate (CN/SAN 127.0.0.1, localhost)
    key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def tls_ca(tmp_path_factory: pytest.TempPathFactory) -> CA:
    d = tmp_path_factory.mktemp("tls")
    try:
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=flashdoctor test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=d,
        )  # fmt: skip
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
            "-subj", "/CN=127.0.0.1", cwd=d,
        )  # fmt: skip
        (d / "ext.cnf").write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
            "extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
            "authorityKeyIdentifier=keyid,issuer\nsubjectKeyIdentifier=hash\n"
        )
        _openssl(
            "x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "srv.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"openssl cannot make a test CA here: {exc}")
    return CA(d / "ca.pem", d / "srv.pem", d / "srv.key")


@pytest.fixture
def tls_server(tls_ca: CA, monkeypatch: pytest.MonkeyPatch, no_proxy: None) -> Iterator[Server]:
    """An HTTPS server on 127.0.0.1 that requests (in this process) trusts; no proxy in the way."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_ca.bundle))
    with serve(tls=tls_ca.server_context()) as s:
        yield s


@pytest.fixture
def mirror(no_proxy: None) -> Iterator[Server]:
    """A plain-http loopback server for the publishers' APIs (tests/support/loopback.py)."""
    with serve() as s:
        yield s
