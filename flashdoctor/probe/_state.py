# mypy: ignore-errors
# (a script run by the target interpreter, like probe/_interp.py; not a module of the package)
# Runs inside the *target* interpreter as `python _state.py [--owners FILE] DIST [DIST...]`. Standard
# library only, Python >= 3.8; it imports nothing of the packages it describes. Prints one JSON object:
# where the environment installs things, whether it has pip / is uv-managed, every installed distribution
# with its version, the marker environment (to evaluate Requires-Dist for *this* interpreter), for each
# DIST named on the command line the files its RECORD lists (what a rollback must restore), and with
# --owners FILE (a JSON list of absolute paths) which installed distributions' RECORDs list each of those
# paths ("owners": {path: [dist, ...]}, only paths someone owns). Every read is bounded.
import json
import os
import platform
import re
import sys
import sysconfig

try:
    import importlib.metadata as md
except ImportError:  # pragma: no cover - Python < 3.8
    md = None  # type: ignore[assignment]
import importlib.util


def canon(name):
    return re.sub(r"[-_.]+", "-", name).lower()


_paths = sysconfig.get_paths()


def _stamp(path):
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


# Taken before anything is listed: an install or uninstall adds or removes a *.dist-info directory there,
# which changes the directory's mtime, so a reader can tell later whether this state is still current.
stamp = [[p, _stamp(p)] for p in sorted({_paths["purelib"], _paths["platlib"]})]
out = {
    "executable": sys.executable,
    "prefix": sys.prefix,
    "purelib": _paths["purelib"],
    "platlib": _paths["platlib"],
    "scripts": _paths["scripts"],
    "has_pip": importlib.util.find_spec("pip") is not None,
    "stamp": stamp,
}
manager = "pip"
cfg = os.path.join(sys.prefix, "pyvenv.cfg")
if os.path.isdir(os.path.join(sys.prefix, "conda-meta")):
    manager = "conda"
elif os.path.isfile(cfg):
    try:
        with open(cfg, encoding="utf-8", errors="replace") as fh:
            if re.search(r"^uv\s*=", fh.read(), re.M):
                manager = "uv"
    except OSError:
        pass
out["env_manager"] = manager

impl = sys.implementation.name
out["markers"] = {
    "implementation_name": impl,
    "implementation_version": ".".join(str(x) for x in sys.implementation.version[:3]),
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": "{}.{}".format(*sys.version_info[:2]),
    "sys_platform": sys.platform,
}

dists = {}
if md is not None:
    for d in md.distributions():
        try:
            name = d.metadata["Name"]
        except Exception:
            continue
        if name:
            dists.setdefault(canon(name), d.version)
out["dists"] = dists
out["torch"] = dists.get("torch")

args = sys.argv[1:]
owners_file = None
if args[:1] == ["--owners"]:
    owners_file, args = args[1], args[2:]

MAX_QUERY = 200000  # paths asked about (a wheel's file list)
MAX_RECORD = 1000000  # RECORD entries read per distribution


def _real(path, cache):
    """realpath of a file, resolving its directory once (cheap for the thousands of files torch has)."""
    head, tail = os.path.split(os.path.normpath(path))
    d = cache.get(head)
    if d is None:
        d = cache[head] = os.path.realpath(head)
    return os.path.join(d, tail)


if owners_file is not None:
    with open(owners_file, encoding="utf-8") as fh:
        query = json.loads(fh.read(64 * 1024 * 1024))[:MAX_QUERY]
    dirs = {}
    wanted = {_real(p, dirs): p for p in query if isinstance(p, str)}
    owners = {}
    if md is not None and wanted:
        for d in md.distributions():
            try:
                name = canon(d.metadata["Name"] or "")
                files = d.files or []
            except Exception:
                continue
            for i, f in enumerate(files):
                if i >= MAX_RECORD:
                    break
                asked = wanted.get(_real(str(d.locate_file(f)), dirs))
                if asked is not None and name not in owners.setdefault(asked, []):
                    owners[asked].append(name)
    out["owners"] = owners

described = {}
for want in args:
    entry = {"installed": False}
    if md is not None:
        try:
            d = md.distribution(want)
        except Exception:
            d = None
        if d is not None:
            entry["installed"] = True
            entry["version"] = d.version
            try:
                entry["installer"] = (d.read_text("INSTALLER") or "").strip() or None
            except Exception:
                entry["installer"] = None
            files = d.files
            entry["record"] = files is not None
            paths = []
            for f in files or []:
                p = os.path.normpath(str(d.locate_file(f)))
                if os.path.isfile(p):
                    paths.append(p)
            entry["files"] = paths
    described[canon(want)] = entry
out["described"] = described
print(json.dumps(out))
