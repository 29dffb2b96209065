# Runs inside the *target* interpreter as `python _interp.py CONFIG_JSON`. Standard library only,
# Python >= 3.8. It must never import torch or flash_attn (that costs seconds and can crash): it reads
# files instead. CONFIG_JSON is {"variants": {name: {"dists", "modules", "needs_dist", "extensions"}}}:
# where each FlashAttention variant lives, from flashdoctor's registry (knowledge.backends), so that no
# table of names is kept here. Prints one JSON object on stdout. The file must parse in Python 2: there
# it says only which Python it is (flashdoctor refuses it) and stops before anything Python 3 needs.
import json
import os
import platform
import re
import sys
import sysconfig

if sys.version_info[0] < 3:
    print(json.dumps({"python": "%d.%d" % tuple(sys.version_info[:2]), "python_executable": sys.executable}))
    sys.exit(0)

try:
    import importlib.metadata as md
except ImportError:  # pragma: no cover - Python < 3.8
    md = None  # type: ignore[assignment]
import importlib.util

out = {"notes": []}


def note(msg):
    out["notes"].append(msg)


out["python"] = "%d.%d" % sys.version_info[:2]
out["python_full"] = platform.python_version()
out["python_executable"] = sys.executable
impl = {"cpython": "cp", "pypy": "pp"}.get(sys.implementation.name, sys.implementation.name)
gil_disabled = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
out["python_abi"] = "%s%d%d%s" % (impl, sys.version_info[0], sys.version_info[1], "t" if gil_disabled else "")
out["platform"] = sysconfig.get_platform().replace("-", "_").replace(".", "_")
try:
    libc, ver = platform.libc_ver()
    out["glibc"] = ver if libc == "glibc" and ver else None
except Exception as exc:  # platform.libc_ver reads the executable; it can fail on odd systems
    out["glibc"] = None
    note("glibc: %s" % exc)
if sys.platform.startswith("linux") and not out["glibc"]:
    try:
        out["glibc"] = os.confstr("CS_GNU_LIBC_VERSION").split()[1]
    except (ValueError, OSError, IndexError, AttributeError):
        pass

# -- environment manager ------------------------------------------------------------------------
prefix = sys.prefix
out["prefix"] = prefix  # names the environment (an install's lock and backups)
manager = None
cfg = os.path.join(prefix, "pyvenv.cfg")
if os.path.isdir(os.path.join(prefix, "conda-meta")):
    manager = "conda"
elif os.path.isfile(cfg):
    try:
        with open(cfg, encoding="utf-8", errors="replace") as fh:
            manager = "uv" if re.search(r"^uv\s*=", fh.read(), re.M) else "pip"
    except OSError:
        manager = "pip"
else:
    manager = "pip"
out["env_manager"] = manager
out["has_pip"] = importlib.util.find_spec("pip") is not None
out["in_venv"] = sys.prefix != getattr(sys, "base_prefix", sys.prefix)


def dist_version(name):
    if md is None:
        return None
    try:
        return md.version(name)
    except Exception:
        return None


def find_spec(name):
    try:
        return importlib.util.find_spec(name)
    except Exception as exc:  # a broken parent package can raise here
        note("find_spec(%s): %s" % (name, exc))
        return None


# -- torch, without importing it ----------------------------------------------------------------
torch = {"installed": False}
spec = find_spec("torch")
if spec is not None and spec.origin:
    tdir = os.path.dirname(spec.origin)
    torch["installed"] = True
    torch["dir"] = tdir
    vfile = os.path.join(tdir, "version.py")
    try:
        with open(vfile, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        for key, name in (
            ("version", "__version__"),
            ("cuda", "cuda"),
            ("hip", "hip"),
            ("git", "git_version"),
        ):
            m = re.search(r"^%s\s*(?::\s*[^=]+)?=\s*(.+)$" % re.escape(name), text, re.M)
            if m:
                val = m.group(1).strip()
                if val in ("None", "'None'"):
                    torch[key] = None
                else:
                    torch[key] = val.strip("'\"")
    except OSError as exc:
        note("torch/version.py: %s" % exc)
    if not torch.get("version"):
        torch["version"] = dist_version("torch")
    libdir = os.path.join(tdir, "lib")
    for cand in ("libc10.so", "libc10.dylib", "c10.dll"):
        p = os.path.join(libdir, cand)
        if os.path.exists(p):
            torch["libc10"] = p
            break
    for cand in ("libtorch_cuda.so", "torch_cuda.dll"):
        p = os.path.join(libdir, cand)
        if os.path.exists(p):
            torch["libtorch_cuda"] = p
            break
out["torch"] = torch

# -- installed FlashAttention -------------------------------------------------------------------
try:
    CONFIG = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
except ValueError as exc:
    CONFIG = {}
    note("bad config: %s" % exc)
if not CONFIG.get("variants"):
    note("no variant table was given: installed FlashAttention variants were not looked for")
EXT_SUFFIXES = (".so", ".pyd", ".dylib")


def first_version(dists):
    for name in dists:
        v = dist_version(name)
        if v is not None:
            return name, v
    return dists[0], None


def init_version(path):
    """The ``__version__ = "..."`` a package's __init__.py sets (None without one)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            m = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)", fh.read(), re.M)
    except OSError:
        return None
    return m.group(1) if m else None


def canon(name):
    return re.sub(r"[-_.]+", "-", name).lower()


flash = []
for variant, spec in sorted((CONFIG.get("variants") or {}).items()):
    mods = list(spec.get("modules") or [])
    # extension basenames: "flash_attn_3._C" is the file _C.*.so inside flash_attn_3/
    exts = [e.split(".")[-1] for e in spec.get("extensions") or []]
    dist, version = first_version(list(spec.get("dists") or [variant]))
    files = []
    location = None
    if version is not None and md is not None:
        try:
            d = md.distribution(dist)
            location = str(d.locate_file(""))
            for f in d.files or []:
                s = str(f)
                base = os.path.basename(s)
                if s.endswith(EXT_SUFFIXES) and any(base.startswith(e) for e in exts):
                    files.append(str(d.locate_file(f)))
        except Exception as exc:
            note("%s metadata: %s" % (dist, exc))
    module_path = None
    for mod in mods:
        if spec.get("needs_dist") and version is None:
            continue  # flash_attn.cute exists inside flash-attn 2.8.3 too; only the FA4 dist counts
        s = find_spec(mod.split(".")[0]) if "." in mod else find_spec(mod)
        if s is not None:
            module_path = (
                s.origin
                if s.origin and s.origin != "namespace"
                else (list(s.submodule_search_locations or []) or [None])[0]
            )
            break
    if version is None and module_path is None:
        continue
    if version is None and not (module_path or "").endswith("__init__.py"):
        # Without metadata only a regular package counts: flash-attn-4 installs flash_attn/cute into a
        # namespace package `flash_attn`, which is not an FA2 install.
        continue
    if version is None and module_path:
        # importable without metadata (a source checkout on sys.path): read __version__
        init = module_path if module_path.endswith(".py") else os.path.join(module_path, "__init__.py")
        version = init_version(init)
        if module_path and not files:
            root = os.path.dirname(os.path.dirname(init))
            try:
                for name in os.listdir(root):
                    if name.endswith(EXT_SUFFIXES) and any(name.startswith(e) for e in exts):
                        files.append(os.path.join(root, name))
            except OSError:
                pass
    # more than one metadata folder of the distribution in its directory (a half-finished upgrade or
    # uninstall: pip then reports one of them); with them, the version the package's own files say
    metadata_dirs = []
    module_version = None
    if location is not None:
        try:
            metadata_dirs = sorted(
                os.path.join(location, n)
                for n in os.listdir(location)
                if n.endswith((".dist-info", ".egg-info")) and canon(n.split("-")[0]) == canon(dist)
            )
        except OSError as exc:
            note("%s: %s" % (location, exc))
    if len(metadata_dirs) > 1 and module_path and module_path.endswith("__init__.py"):
        module_version = init_version(module_path)
    flash.append(
        {
            "variant": variant,
            "dist": (spec.get("dists") or [dist])[0],
            "version": version,
            "module_path": module_path,
            "extensions": files,
            "location": location,
            "metadata_dirs": metadata_dirs if len(metadata_dirs) > 1 else [],
            "module_version": module_version,
        }
    )
out["flash"] = flash

# -- what installed distributions require of FlashAttention -------------------------------------
# Every distribution's Requires-Dist lines that name a FlashAttention distribution, as written (markers
# included: flashdoctor evaluates them). Only the metadata headers are read (they come before the
# description), at most METADATA_CAP bytes of each; the first distribution of a name on sys.path wins, as
# for imports.
METADATA_CAP = 256 * 1024


wanted = set()
for spec in (CONFIG.get("variants") or {}).values():
    wanted.update(canon(d) for d in spec.get("dists") or ())
# libraries whose installed release is reported (flashdoctor knows ranges they check only when they load),
# each with the path prefixes whose presence in its RECORD is reported too
watch = {canon(d): list(files or ()) for d, files in (CONFIG.get("watch") or {}).items()}
watched = {}
MAX_RECORD_ROWS = 50000


def present_files(dist, prefixes):
    """Which of ``prefixes`` start a path in the distribution's RECORD (bounded)."""
    if not prefixes:
        return []
    found = set()
    try:
        for i, f in enumerate(dist.files or ()):
            if i >= MAX_RECORD_ROWS:
                break
            path = str(f)
            found.update(p for p in prefixes if path.startswith(p))
    except Exception as exc:
        note("RECORD: %s" % exc)
    return sorted(found)


def headers(dist):
    """The metadata headers of an installed distribution (its METADATA or PKG-INFO; an .egg-info may be
    that file itself), bounded."""
    base = getattr(dist, "_path", None)  # PathDistribution: the .dist-info / .egg-info path
    if base is None:
        return None
    base = str(base)
    files = (
        [base] if os.path.isfile(base) else [os.path.join(base, "METADATA"), os.path.join(base, "PKG-INFO")]
    )
    for path in files:
        data = b""
        try:
            with open(path, "rb") as fh:
                while len(data) < METADATA_CAP:  # the headers end at the first empty line
                    chunk = fh.read(4096)
                    data += chunk
                    if not chunk or b"\n\n" in data or b"\n\r\n" in data:
                        break
        except OSError:
            continue
        return re.split(r"\r?\n\r?\n", data.decode("utf-8", "replace"), maxsplit=1)[0]
    return None


dependents = []
if md is not None and wanted:
    seen = set()
    try:
        found = list(md.distributions())
    except Exception as exc:
        found = []
        note("installed distributions: %s" % exc)
    for d in found:
        text = headers(d)
        m = re.search(r"^Name:[ \t]*(\S+)", text or "", re.M | re.I)
        name = canon(m.group(1)) if m else None
        if name is None or name in seen:
            continue  # a later copy of a name on sys.path is shadowed
        seen.add(name)
        is_watched = name in watch
        if not is_watched and (name in wanted or "flash" not in text.lower()):
            continue
        v = re.search(r"^Version:[ \t]*(\S+)", text, re.M | re.I)
        version = v.group(1) if v else None
        if is_watched:
            watched[name] = {"version": version, "present": present_files(d, watch[name])}
        if name in wanted:
            continue
        for line in text.splitlines():
            key, _, val = line.partition(":")
            if key.strip().lower() == "requires-dist":
                r = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", val)
                if r and canon(r.group(1)) in wanted:
                    dependents.append({"dist": name, "version": version, "requires": val.strip()})
out["dependents"] = dependents
out["watched"] = watched

print(json.dumps(out))
