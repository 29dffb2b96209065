"""Write flashdoctor/data/torch_symbols.json: which PyTorch releases export each C++ symbol that an
extension built against another torch reports missing (``undefined symbol: _ZN3c10...``).

Maintainer tooling, run by hand (it needs PyTorch's wheels, ~0.5-1 GB each; nothing here runs in CI):

    pip download torch==2.9.1 --no-deps --only-binary=:all: --python-version 3.11 \
        --platform manylinux_2_28_x86_64 -d wheels/2.9.1          # one folder per release
    python scripts/measure_torch_symbols.py --wheels wheels [--syms syms] [--logs tests/data/explain_eval]

It reads the exported symbols of libc10, libc10_cuda, libtorch_cpu, libtorch_cuda and libtorch_python of
each release (``nm -D --defined-only``; ``--syms DIR`` takes them already listed, DIR/<version>/<lib>.syms)
and records, for every symbol of libc10 and libc10_cuda that not every release exports, and every torch
symbol named in an ``undefined symbol`` line of the tuning logs, the releases that export it. Symbols that
spell a std::string (``__cxx11`` or ``Ss``) are left out: which releases export them depends on the C++ ABI
of the build, which the cxx11-abi signatures read from the name itself.

``--across-minors SRC`` measures instead whether a FlashAttention 2 extension built against one torch
release loads on the later ones (data/torch_builds.json ``abi_across_minors``, written by hand from its
table): SRC is an unpacked flash-attn sdist (its csrc/flash_attn/flash_api.cpp, the host unit) and
``--wheels`` the torch wheels as above (their headers are used too; a C++17 g++ and CUDA's headers at
$CUDA_HOME/include are needed). The unit is compiled against each release's headers (the CUDAExtension
defines, the CXX11 ABI), and the torch symbols it imports (nm -u; libstdc++'s std:: symbols left out) are
looked up in every later release's exports; the table says, per pair, "ok" or the symbols gone. The
kernel units import only what their launch templates' C10_CUDA_CHECK does; compile one with nvcc and
pass its object with ``--extra-object VERSION=FILE`` to add its imports to that release's.

    python scripts/measure_torch_symbols.py --wheels wheels --across-minors flash_attn-2.8.3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sysconfig
import tempfile
import zipfile
from pathlib import Path

LIBS = ("c10", "c10_cuda", "torch_cpu", "torch_cuda", "torch_python")
SMALL = ("c10", "c10_cuda")
TORCH_SYMBOL = re.compile(r"undefined symbol:?\s*(_Z\w*?(?:3c10|2at|5torch)\w*)")
ABI_DEPENDENT = re.compile(r"__cxx11|(?:E|K|P|R)Ss(?![a-z])")
OUT = Path(__file__).resolve().parent.parent / "flashdoctor" / "data" / "torch_symbols.json"


def version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def nm_exports(lib: Path) -> set[str]:
    out = subprocess.run(["nm", "-D", "--defined-only", str(lib)], capture_output=True, text=True, check=True)
    return {line.split()[-1] for line in out.stdout.splitlines() if line.strip()}


def from_wheel(wheel: Path, libs: tuple[str, ...] = LIBS) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as zf:
        for lib in libs:
            name = f"torch/lib/lib{lib}.so"
            if name in zf.namelist():
                found[lib] = nm_exports(Path(zf.extract(name, tmp)))
    return found


def from_syms(folder: Path) -> dict[str, set[str]]:
    return {
        lib: set((folder / f"{lib}.syms").read_text().split())
        for lib in LIBS
        if (folder / f"{lib}.syms").exists()
    }


def ranges(versions: list[str], measured: list[str]) -> list[str]:
    """["2.1.0-2.2.2", "2.4.0"]: runs of consecutive measured releases."""
    out: list[list[str]] = []
    for v in versions:
        if out and measured.index(v) == measured.index(out[-1][-1]) + 1:
            out[-1].append(v)
        else:
            out.append([v])
    return [run[0] if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in out]


def logged_symbols(folder: Path) -> set[str]:
    found: set[str] = set()
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("holdout"):
            continue  # never read the held-out logs
        for case in json.loads(path.read_text(encoding="utf-8"))["cases"]:
            found |= set(TORCH_SYMBOL.findall(case["log"]))
    return found


STD = ("_ZNSt", "_ZNKSt", "_ZSt", "_ZTVSt", "_ZTISt", "_ZTSSt", "_ZNSs", "_ZNKSs")  # libstdc++'s


def host_unit_imports(src: Path, wheel: Path, tmp: Path) -> set[str]:
    """The undefined symbols of flash-attn's host unit compiled against ``wheel``'s torch headers."""
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            if name.startswith("torch/include/"):
                zf.extract(name, tmp)
    inc = tmp / "torch" / "include"
    py_inc = sysconfig.get_paths()["include"]
    cuda = Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "include"
    obj = tmp / "flash_api.o"
    defines = [
        "-D_GLIBCXX_USE_CXX11_ABI=1",
        "-DTORCH_API_INCLUDE_EXTENSION_H",
        "-DTORCH_EXTENSION_NAME=flash_attn_2_cuda",
        '-DPYBIND11_COMPILER_TYPE="_gcc"',
        '-DPYBIND11_STDLIB="_libstdcpp"',
        '-DPYBIND11_BUILD_ABI="_cxxabi1018"',
    ]
    includes = ["csrc/flash_attn", "csrc/flash_attn/src", "csrc/cutlass/include"]
    includes += [str(inc), str(inc / "torch/csrc/api/include"), str(cuda), py_inc]
    cmd = ["g++", "-c", "-O1", "-std=c++17", "-fPIC", "-w", *defines, *(f"-I{i}" for i in includes)]
    subprocess.run([*cmd, "csrc/flash_attn/flash_api.cpp", "-o", str(obj)], cwd=src, check=True)
    return undefined(obj)


def undefined(obj: Path) -> set[str]:
    out = subprocess.run(
        ["nm", "-u", "--format=just-symbols", str(obj)], capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


def across_minors(src: Path, wheels: dict[str, Path], extra: dict[str, Path]) -> None:
    """Print, per release built against, which later releases export every torch symbol it imports."""
    versions = sorted(wheels, key=version_key)
    every = {v: set().union(*from_wheel(wheels[v], (*LIBS, "torch")).values()) for v in versions}
    known = set().union(*every.values())
    for i, built in enumerate(versions):
        with tempfile.TemporaryDirectory() as tmp:
            imports = host_unit_imports(src, wheels[built], Path(tmp))
        if built in extra:
            imports |= undefined(extra[built])
        torch_syms = {s for s in imports if s in known and not s.startswith(STD)}
        row = []
        for on in versions[i:]:
            gone = sorted(torch_syms - every[on])
            demangled = subprocess.run(
                ["c++filt"], input="\n".join(gone), capture_output=True, text=True
            ).stdout
            row.append(f"{on}: " + ("ok" if not gone else "; ".join(demangled.split("\n")[:3])))
        print(f"built against {built} ({len(torch_syms)} torch symbols): " + " | ".join(row))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheels", type=Path, help="folders <version>/torch-*.whl")
    ap.add_argument("--syms", type=Path, help="folders <version>/<lib>.syms (nm -D --defined-only names)")
    ap.add_argument("--logs", type=Path, default=Path("tests/data/explain_eval"))
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument(
        "--across-minors", type=Path, metavar="SRC", help="an unpacked flash-attn sdist (see above)"
    )
    ap.add_argument("--extra-object", action="append", default=[], metavar="VERSION=FILE")
    args = ap.parse_args()
    if args.across_minors is not None:
        if args.wheels is None:
            ap.error("--across-minors needs --wheels (the torch wheels to compile against and check)")
        found = {p.name: sorted(p.glob("torch-*.whl")) for p in sorted(args.wheels.iterdir()) if p.is_dir()}
        torch_wheels = {v: w[0] for v, w in found.items() if w and "+cpu" not in w[0].name}
        extra = dict((v, Path(f)) for v, f in (e.split("=", 1) for e in args.extra_object))
        across_minors(args.across_minors, torch_wheels, extra)
        return
    exports: dict[str, dict[str, set[str]]] = {}
    if args.syms is not None:
        for folder in sorted(p for p in args.syms.iterdir() if p.is_dir()):
            exports[folder.name] = from_syms(folder)
    if args.wheels is not None:
        for folder in sorted(p for p in args.wheels.iterdir() if p.is_dir()):
            wheels = sorted(folder.glob("torch-*.whl"))
            if wheels and "+cpu" not in wheels[0].name:  # a CPU build has no libc10_cuda
                exports[folder.name] = from_wheel(wheels[0])
    measured = sorted(exports, key=version_key)
    every = {v: set().union(*exports[v].values()) for v in measured}
    small = {v: set().union(*(exports[v].get(lib, set()) for lib in SMALL)) for v in measured}
    candidates = set().union(*small.values()) - set.intersection(*small.values())
    candidates |= logged_symbols(args.logs)
    symbols = {}
    for sym in sorted(candidates):
        if not sym.startswith("_Z") or ABI_DEPENDENT.search(sym):
            continue
        have = [v for v in measured if sym in every[v]]
        if have and len(have) < len(measured):
            symbols[sym] = ranges(have, measured)
    data = {
        "schema": "flashdoctor/torch-symbols/1",
        "about": (
            "Which PyTorch releases export a C++ symbol an extension may report missing: every symbol of "
            "libc10/libc10_cuda that not every measured release exports, and the torch symbols of the explain "
            "tuning logs' 'undefined symbol' lines (std::string symbols left out: their ABI flavour decides). "
            "Read by explain to say which torch an extension was built against. Written by "
            "scripts/measure_torch_symbols.py."
        ),
        "source": (
            "nm -D --defined-only of libc10, libc10_cuda, libtorch_cpu, libtorch_cuda and libtorch_python in "
            "PyPI's default Linux x86_64 cp311 torch wheels (CUDA builds; pre-CXX11 ABI before 2.7), measured "
            "2026-12-06"
        ),
        "measured": measured,
        "symbols": symbols,
    }
    args.out.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print(
        f"wrote {args.out}: {len(symbols)} symbols, {len(measured)} releases ({measured[0]} .. {measured[-1]})"
    )


if __name__ == "__main__":
    main()
