#!/usr/bin/env python3
"""flashdoctor install vs a bare `pip install URL` of the same wheel from the same loopback server.

    python scripts/bench_install.py [--size-mb 50] [--reps 3] [--python PY]

Builds a wheel with the real FA2 naming scheme (pure Python, padded with --size-mb of incompressible data
so that the download is part of the cost), serves it from http.server on 127.0.0.1, and alternates, in one
venv with the CPU torch (created here unless --python is given):

    baseline:     <venv>/bin/python -m pip install <URL>           (pip cache: a fresh, empty dir each time)
    flashdoctor:  flashdoctor install --plan <plan> --python <venv> --yes --json   (cache: fresh each time)

After each run the wheel is uninstalled, so both always install into the same state. Prints each run, the
medians, the ratio (goal <= 1.3) and flashdoctor's own step times, which say what dominates.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VERSION = "2.8.3+cu12torch2.13cxx11abiTRUE"


def make_wheel(out: Path, size_mb: float, tag: str) -> Path:
    def rh(b: bytes) -> str:
        return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b"=").decode()

    di = f"flash_attn-{VERSION}.dist-info"
    members = {
        "flash_attn/__init__.py": f'__version__ = "{VERSION}"\nfrom flash_attn.flash_attn_interface import flash_attn_func\n'.encode(),
        "flash_attn/flash_attn_interface.py": b"def flash_attn_func(q, k, v, *a, **kw):\n    return q\n",
        "flash_attn/_payload.bin": os.urandom(int(size_mb * 1024 * 1024)),
        f"{di}/METADATA": f"Metadata-Version: 2.1\nName: flash-attn\nVersion: {VERSION}\nRequires-Dist: torch\n".encode(),
        f"{di}/WHEEL": f"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: false\nTag: {tag}\n".encode(),
    }
    record = "".join(f"{k},{rh(v)},{len(v)}\n" for k, v in members.items()) + f"{di}/RECORD,,\n"
    members[f"{di}/RECORD"] = record.encode()
    path = out / f"flash_attn-{VERSION}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for k, v in members.items():
            zf.writestr(k, v)
    return path


def serve(directory: Path) -> tuple[ThreadingHTTPServer, int]:
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(directory)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, httpd.server_address[1]


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return dt, p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=float, default=50.0, help="padding in the wheel (default 50)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument(
        "--python", help="an existing venv's python with torch (default: make one with torch==2.13.0)"
    )
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-install-"))
    try:
        py = args.python
        if not py:
            print("creating a venv with torch==2.13.0 ...", flush=True)
            subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True)
            py = str(work / "venv" / "bin" / "python")
            subprocess.run(
                [
                    py,
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "--no-compile",
                    "--disable-pip-version-check",
                    "torch==2.13.0",
                ],
                check=True,
            )
        tag = subprocess.run(
            [
                py,
                "-c",
                "import sys,sysconfig;v='cp%d%d'%sys.version_info[:2];print(v+'-'+v+'-'+sysconfig.get_platform().replace('-','_').replace('.','_'))",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        (work / "www").mkdir()
        wheel = make_wheel(work / "www", args.size_mb, tag)
        httpd, port = serve(work / "www")
        url = f"http://127.0.0.1:{port}/{wheel.name}"
        sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
        plan = work / "plan.json"
        plan.write_text(
            json.dumps(
                {
                    "action": "wheel",
                    "variant": "fa2",
                    "wheel": {
                        "filename": wheel.name,
                        "url": url,
                        "sha256": sha,
                        "source": "official",
                        "version": VERSION,
                    },
                }
            )
        )
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["NO_PROXY"] = "127.0.0.1,localhost"
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        uninstall = [py, "-m", "pip", "uninstall", "-y", "-q", "flash-attn"]
        base_t: list[float] = []
        fd_t: list[float] = []
        steps: list[dict[str, float]] = []
        print(f"wheel {wheel.name} ({wheel.stat().st_size / 1e6:.1f} MB) from {url}")
        print(f"{'rep':>3}  {'pip install URL':>16}  {'flashdoctor install':>20}")
        for rep in range(args.reps):
            e = dict(env, PIP_CACHE_DIR=str(work / f"pipcache-b{rep}"))
            dt, _ = timed([py, "-m", "pip", "install", url], e)
            base_t.append(dt)
            timed(uninstall, env)
            e = dict(
                env,
                FLASHDOCTOR_CACHE_DIR=str(work / f"fdcache-{rep}"),
                PIP_CACHE_DIR=str(work / f"pipcache-f{rep}"),
            )
            dt, p = timed(
                [
                    sys.executable,
                    "-m",
                    "flashdoctor",
                    "install",
                    "--plan",
                    str(plan),
                    "--python",
                    py,
                    "--yes",
                    "--json",
                ],
                e,
            )
            fd_t.append(dt)
            doc = json.loads(p.stdout)
            assert doc["status"] == "installed", doc
            steps.append({s["name"]: s["seconds"] for s in doc["steps"]})
            timed(uninstall, env)
            print(f"{rep:>3}  {base_t[-1]:>15.2f}s  {fd_t[-1]:>19.2f}s", flush=True)
        httpd.shutdown()
        mb, mf = statistics.median(base_t), statistics.median(fd_t)
        print(
            f"\nmedian: pip install URL {mb:.2f} s, flashdoctor install {mf:.2f} s -> ratio {mf / mb:.2f} (goal <= 1.3)"
        )
        names = list(steps[0])
        med = {n: statistics.median(s.get(n, 0.0) for s in steps) for n in names}
        inside = sum(med.values())
        print("flashdoctor's steps (median s): " + ", ".join(f"{n} {v:.2f}" for n, v in med.items()))
        print(f"outside the steps (interpreter start, imports, probe of the machine): {mf - inside:.2f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
