"""Test helpers for the installer: small real wheels, and a real HTTP server on 127.0.0.1 that
misbehaves on purpose."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import ssl
import sys
import threading
import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


# -- wheels ------------------------------------------------------------------------------------------
def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(
    out_dir: Path,
    dist: str = "flash_attn",
    version: str = "2.8.3+cu12torch2.13cxx11abiTRUE",
    tag: str = "cp311-cp311-linux_x86_64",
    files: dict[str, str | bytes] | None = None,
    requires: Iterable[str] = ("torch",),
    extra_dist_info: dict[str, str] | None = None,
    pad_bytes: int = 0,
) -> Path:
    """A real wheel with the real naming scheme: dist-info METADATA / WHEEL / RECORD with hashes.
    ``pad_bytes`` adds an incompressible data file (to make downloads take a while)."""
    if files is None:
        files = {
            "flash_attn/__init__.py": f'__version__ = "{version}"\nfrom flash_attn.flash_attn_interface import flash_attn_func\n',
            "flash_attn/flash_attn_interface.py": "def flash_attn_func(q, k, v, *a, **kw):\n    return q\n",
        }
    files = dict(files)
    if pad_bytes:
        import os

        files[f"{dist}/_pad.bin"] = os.urandom(pad_bytes)
    di = f"{dist}-{version}.dist-info"
    name = dist.replace("_", "-")
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    for r in requires:
        meta += f"Requires-Dist: {r}\n"
    wheel_txt = f"Wheel-Version: 1.0\nGenerator: flashdoctor-tests\nRoot-Is-Purelib: false\nTag: {tag}\n"
    members: dict[str, bytes] = {k: v.encode() if isinstance(v, str) else v for k, v in files.items()}
    members[f"{di}/METADATA"] = meta.encode()
    members[f"{di}/WHEEL"] = wheel_txt.encode()
    members[f"{di}/top_level.txt"] = (dist + "\n").encode()
    for k, v in (extra_dist_info or {}).items():
        members[f"{di}/{k}"] = v.encode()
    record = "".join(f"{k},{_record_hash(v)},{len(v)}\n" for k, v in members.items()) + f"{di}/RECORD,,\n"
    members[f"{di}/RECORD"] = record.encode()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{dist}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for k, v in members.items():
            zf.writestr(k, v)
    return path


# A wheel that fits tests/targets/h100.json (torch 2.11 + CUDA 13.0, Python 3.12): `lock --plan` for it
# judges the plan's wheel against that target (make_wheel(dir, version=H100_V, tag=H100_TAG)).
H100_V = "2.8.3+cu13torch2.11cxx11abiTRUE"
H100_TAG = "cp312-cp312-linux_x86_64"


def lock_h100_cmd(plan: Path) -> list[str]:
    """`flashdoctor lock --plan PLAN --target h100.json` in a child interpreter (add -o, --format ...); the
    plan's wheel must fit h100.json (H100_V, H100_TAG, or a py3-none-any wheel of H100_V)."""
    from tests.support.paths import TARGETS

    return [
        sys.executable,
        "-m",
        "flashdoctor",
        "lock",
        "--plan",
        str(plan),
        "--target",
        str(TARGETS / "h100.json"),
    ]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- a misbehaving server ------------------------------------------------------------------------------
@dataclass
class Route:
    """What the server does for one path. Behaviours apply per request, in order of ``script``
    (each entry one request; the last one repeats):
      "ok"            serve the body (206 for a Range request when ``ranges``)
      "drop:N"        send the headers and N bytes, then cut the connection
      "truncate:N"    announce the full Content-Length, send N bytes, close cleanly
      "stall:N"       send headers and N bytes, then stop sending (until the server is closed)
      "trickle:S"     send headers, then one byte every S seconds (until the server is closed)
      "headers-trickle:S"  send the status line, then one header byte every S seconds
      "status:CODE"   answer CODE with a short text body
      "html"          answer 200 with an HTML error page (Content-Type text/html)
      "html-octet"    the same page labelled application/octet-stream
      "redirect:PATH" 302 to PATH (absolute "http://..." allowed)
      "redirect-endless:PATH"  302 to PATH with a body that does not end (64 KiB blocks, ``delay_per_chunk``
                      apart, up to 1 GiB, no Content-Length)
    """

    body: bytes = b""
    script: list[str] = field(default_factory=lambda: ["ok"])
    ranges: bool = True
    etag: str | None = '"v1"'
    delay_per_chunk: float = 0.0  # seconds between 64 KiB chunks (a slow server)
    hits: int = 0


HTML_PAGE = b"<!DOCTYPE html><html><head><title>Error</title></head><body><h1>Sign in to continue</h1></body></html>\n"


class FaultServer:
    """``tls`` (a server context, tests/support/tls.py) serves HTTPS instead."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._stop = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                outer._handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def add(self, path: str, body: bytes = b"", script: list[str] | None = None, **kw: object) -> str:
        self.routes[path] = Route(body=body, script=list(script or ["ok"]), **kw)  # type: ignore[arg-type]
        return self.url(path)

    def hits(self, path: str) -> int:
        return sum(1 for p, _h in self.requests if p == path)

    def close(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- request handling --------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?", 1)[0]
        self.requests.append((path, {k.lower(): v for k, v in h.headers.items()}))
        route = self.routes.get(path)
        if route is None:
            self._simple(h, 404, b"not found\n")
            return
        action = route.script[min(route.hits, len(route.script) - 1)]
        route.hits += 1
        kind, _, arg = action.partition(":")
        if kind == "status":
            self._simple(h, int(arg), f"status {arg}\n".encode())
            return
        if kind == "redirect":
            h.send_response(302)
            h.send_header("Location", arg)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if kind == "redirect-endless":
            h.send_response(302)
            h.send_header("Location", arg)
            h.end_headers()
            h.close_connection = True
            with contextlib.suppress(OSError):  # the client hangs up: what the test wants
                for _ in range(1 << 14):
                    if self._stop.wait(route.delay_per_chunk):
                        return
                    h.wfile.write(bytes(65536))
            return
        if kind in ("html", "html-octet"):
            ctype = "text/html; charset=utf-8" if kind == "html" else "application/octet-stream"
            self._simple(h, 200, HTML_PAGE, ctype)
            return
        if kind == "endless":  # a zip header, then zeros with no Content-Length, up to ARG MiB (a bound)
            self._endless(h, int(arg) << 20)
            return
        if kind == "huge-length":  # announces ARG bytes, sends the body
            h.send_response(200)
            h.send_header("Content-Type", "application/octet-stream")
            h.send_header("Content-Length", arg)
            h.end_headers()
            with contextlib.suppress(OSError):
                h.wfile.write(route.body)
            return
        if kind == "headers-trickle":
            self._trickle(h, b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * 100000, float(arg), raw=True)
            return
        body = route.body
        start = 0
        rng = h.headers.get("Range")
        if_range = h.headers.get("If-Range")
        status = 200
        if rng and route.ranges and rng.startswith("bytes=") and (if_range is None or if_range == route.etag):
            start = int(rng[6:].split("-", 1)[0])
            if start >= len(body):
                self._simple(h, 416, b"range not satisfiable\n")
                return
            status = 206
        h.send_response(status)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(body) - start))
        if route.etag:
            h.send_header("ETag", route.etag)
        if route.ranges:
            h.send_header("Accept-Ranges", "bytes")
        if status == 206:
            h.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        h.end_headers()
        payload = body[start:]
        if kind == "trickle":
            self._trickle(h, payload, float(arg))
            return
        limit = int(arg) if kind in ("drop", "truncate", "stall") else len(payload)
        try:
            sent = 0
            while sent < min(limit, len(payload)):
                chunk = payload[sent : min(sent + 65536, limit)]
                h.wfile.write(chunk)
                h.wfile.flush()
                sent += len(chunk)
                if route.delay_per_chunk:
                    time.sleep(route.delay_per_chunk)
            if kind == "drop":
                h.connection.shutdown(socket.SHUT_RDWR)
                h.close_connection = True
            elif kind == "stall":
                self._stop.wait(60)
            elif kind == "truncate":
                h.close_connection = True
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass

    def _endless(self, h: BaseHTTPRequestHandler, limit: int) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.end_headers()
        h.close_connection = True
        sent, block = 0, b"PK\x03\x04" + bytes(65532)
        with contextlib.suppress(OSError):  # the client hangs up: what the test wants
            while sent < limit and not self._stop.is_set():
                h.wfile.write(block)
                sent += len(block)

    def _trickle(self, h: BaseHTTPRequestHandler, payload: bytes, every: float, raw: bool = False) -> None:
        """One byte every ``every`` seconds until the payload ends or the server closes."""
        try:
            if raw:
                h.wfile.write(payload[:17])
                payload = payload[17:]
            for i in range(len(payload)):
                if self._stop.wait(every):
                    return
                h.wfile.write(payload[i : i + 1])
                h.wfile.flush()
        except OSError:
            pass

    @staticmethod
    def _simple(h: BaseHTTPRequestHandler, code: int, body: bytes, ctype: str = "text/plain") -> None:
        h.send_response(code)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        with contextlib.suppress(OSError):
            h.wfile.write(body)


# The fingerprint `flashdoctor build` writes into a wheelhouse's build.json for the minimal H100 build
# (flashdoctor/actions/wheelhouse.py).
H100_BUILD = {
    "variant": "fa2",
    "version": "2.8.3.post2",
    "torch": "2.11",
    "cuda": "13",
    "cxx11abi": True,
    "python_abi": "cp312",
    "platform": "linux_x86_64",
    "glibc": "2.39",
    "archs": [90],
    "profile": "fd.sm90.hd128.bf16",
}


def write_manifest(wheel: Path, fingerprint: dict[str, object]) -> Path:
    """The build.json `flashdoctor build` writes next to a built wheel (schema flashdoctor/built-wheel/1)."""
    import json

    m = wheel.parent / "build.json"
    m.write_text(
        json.dumps(
            {
                "schema": "flashdoctor/built-wheel/1",
                "wheel": wheel.name,
                "sha256": sha256_of(wheel),
                "fingerprint": fingerprint,
            }
        )
    )
    return m
