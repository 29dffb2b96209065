"""A real HTTP CONNECT proxy on 127.0.0.1 for the deadline tests: it tunnels to loopback ports only, and
with ``tls`` it is an https:// proxy (the client speaks TLS to the proxy, then TLS to the server inside
it: what urllib3 does for HTTPS_PROXY=https://...). With ``socks`` it is a SOCKS5 proxy instead (no
authentication, CONNECT only: what requests speaks with PySocks for ALL_PROXY=socks5h://...)."""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Proxy:
    url: str
    tunnels: list[str] = field(default_factory=list)  # host:port of each CONNECT


@contextmanager
def connect_proxy(
    tls: ssl.SSLContext | None = None, dribble: float | None = None, socks: bool = False
) -> Iterator[Proxy]:
    """``dribble``: answer each CONNECT with a status line, then header lines a byte every that many seconds
    that never end (a stuck proxy); a SOCKS5 one with the start of its reply, then the longest address
    there is, a byte at a time."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    scheme = "socks5h" if socks else "https" if tls else "http"
    proxy = Proxy(f"{scheme}://127.0.0.1:{listener.getsockname()[1]}")
    stop = threading.Event()
    open_socks: list[socket.socket] = []

    def tunnel(client: socket.socket) -> None:
        open_socks.append(client)
        with contextlib.suppress(OSError, ValueError):
            if tls is not None:
                client.settimeout(5)
                client = tls.wrap_socket(client, server_side=True)
                open_socks.append(client)
            target = _socks5_request(client) if socks else _connect_request(client)
            host, _, port = (target or "").rpartition(":")
            if host not in ("127.0.0.1", "localhost"):
                client.sendall(_SOCKS5_REFUSED if socks else _CONNECT_REFUSED)
                return
            proxy.tunnels.append(target)
            if dribble is not None:
                client.sendall(_SOCKS5_ENDLESS if socks else b"HTTP/1.1 200 Connection established\r\n")
                while not stop.wait(dribble):
                    client.sendall(b"X")
                return
            upstream = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
            open_socks.append(upstream)
            client.sendall(_SOCKS5_GRANTED if socks else b"HTTP/1.1 200 Connection established\r\n\r\n")
            client.settimeout(None)
            other = {client: upstream, upstream: client}
            while not stop.is_set():
                # TLS may hold decrypted bytes that select cannot see
                ready = [s for s in (client,) if isinstance(s, ssl.SSLSocket) and s.pending()]
                if not ready:
                    ready, _, _ = select.select([client, upstream], [], [], 0.1)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    other[s].sendall(data)

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=tunnel, args=(client,), daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield proxy
    finally:
        stop.set()
        acceptor.join(timeout=5)
        listener.close()
        for s in open_socks:
            with contextlib.suppress(OSError):
                s.close()


_CONNECT_REFUSED = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
# SOCKS5 replies (RFC 1928): version, status, reserved, address type, address, port
_SOCKS5_GRANTED = b"\x05\x00\x00\x01" + bytes(6)
_SOCKS5_REFUSED = b"\x05\x02\x00\x01" + bytes(6)  # not allowed by the rule set
_SOCKS5_ENDLESS = b"\x05\x00\x00\x03\xff"  # a domain-name address of 255 bytes, to follow


def _connect_request(client: socket.socket) -> str | None:
    """host:port of an HTTP CONNECT request, None for another method."""
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 65536:
        data = client.recv(4096)
        if not data:
            raise ConnectionError("the client left")
        head += data
    method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
    return target if method == "CONNECT" else None


def _socks5_request(client: socket.socket) -> str | None:
    """host:port of a SOCKS5 CONNECT request (after the greeting, answered with "no authentication"),
    None for another command."""

    def read(n: int) -> bytes:
        data = b""
        while len(data) < n:
            more = client.recv(n - len(data))
            if not more:
                raise ConnectionError("the client left")
            data += more
        return data

    _, methods = read(2)
    read(methods)
    client.sendall(b"\x05\x00")
    _, command, _, kind = read(4)
    if kind == 1:
        host = socket.inet_ntop(socket.AF_INET, read(4))
    elif kind == 4:
        host = socket.inet_ntop(socket.AF_INET6, read(16))
    else:
        host = read(read(1)[0]).decode("idna")
    port = int.from_bytes(read(2), "big")
    return f"{host}:{port}" if command == 1 else None
