"""A real HTTP server on 127.0.0.1 for tests: routes map a path (with query) to a list of canned
responses, served in order (the last one repeats), and every request is recorded with its headers;
``require(authorization)`` answers 401 to a request without that Authorization header.
``serve(tls=context)`` serves HTTPS instead (tests/support/tls.py makes a self-signed CA for it)."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Response:
    status: int = 200
    body: bytes | str | Any = b""
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, self.headers.get("Content-Type", "application/octet-stream")
        if isinstance(self.body, str):
            return self.body.encode(), self.headers.get("Content-Type", "text/html; charset=utf-8")
        return json.dumps(self.body).encode(), self.headers.get("Content-Type", "application/json")


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]


class Server:
    def __init__(self) -> None:
        self.routes: dict[str, list[Response]] = {}
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self.base = ""
        self.authorization: str | None = None  # set: any other Authorization header gets 401

    def require(self, authorization: str) -> None:
        """Answer 401 to every request whose Authorization header is not ``authorization``."""
        self.authorization = authorization

    def route(self, path: str, *responses: Response) -> None:
        self.routes[path] = list(responses)

    def json(self, path: str, body: Any, **headers: str) -> None:
        self.route(path, Response(200, body, dict(headers)))

    def hits(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    def _next(self, path: str) -> Response:
        with self._lock:
            queue = self.routes.get(path)
            if not queue:
                return Response(404, "not found", {"Content-Type": "text/plain"})
            return queue.pop(0) if len(queue) > 1 else queue[0]


@contextmanager
def serve(tls: ssl.SSLContext | None = None) -> Iterator[Server]:
    state = Server()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(Recorded(self.path, dict(self.headers.items())))
            if state.authorization is not None and self.headers.get("Authorization") != state.authorization:
                resp = Response(401, "unauthorized", {"Content-Type": "text/plain"})
            else:
                resp = state._next(self.path)
            body, ctype = resp.payload()
            self.send_response(resp.status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in resp.headers.items():
                if k != "Content-Type":
                    self.send_header(k, v.replace("{base}", state.base))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    state.base = f"{'https' if tls else 'http'}://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
