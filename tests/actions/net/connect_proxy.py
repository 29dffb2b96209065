"""A real HTTP CONNECT proxy on 127.0.0.1 for the deadline tests: it tunnels to loopback ports only, and
with ``tls`` it is an https:// proxy (the client speaks TLS to the proxy, then TLS to the server inside
it: what urllib3 does for HTTPS_PROXY=https://...)."""

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
def connect_proxy(tls: ssl.SSLContext | None = None, dribble: float | None = None) -> Iterator[Proxy]:
    """``dribble``: answer each CONNECT with a status line, then header lines a byte every that many seconds
    that never end (a stuck proxy)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    proxy = Proxy(f"{'https' if tls else 'http'}://127.0.0.1:{listener.getsockname()[1]}")
    stop = threading.Event()
    open_socks: list[socket.socket] = []

    def tunnel(client: socket.socket) -> None:
        open_socks.append(client)
        with contextlib.suppress(OSError, ValueError):
            if tls is not None:
                client.settimeout(5)
                client = tls.wrap_socket(client, server_side=True)
                open_socks.append(client)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                data = client.recv(4096)
                if not data:
                    return
                head += data
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            host, _, port = target.rpartition(":")
            if method != "CONNECT" or host not in ("127.0.0.1", "localhost"):
                client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            proxy.tunnels.append(target)
            if dribble is not None:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n")
                while not stop.wait(dribble):
                    client.sendall(b"X")
                return
            upstream = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
            open_socks.append(upstream)
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
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
