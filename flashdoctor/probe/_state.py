# mypy: ignore-errors
# (a script run by the target interpreter, like probe/_interp.py; not a module of the package)
# Runs inside the *target* interpreter as `python _state.py DIST [DIST...]`. Standard library only,
# Python >= 3.8; it imports nothing of the packages it describes. Prints one JSON object: where the
# environment installs things, whether it has pip / is uv-managed, every installed distribution with its
# version, the marker environment (to evaluate Requires-Dist for *this* interpreter), and for each DIST
# named on the command line the files its RECORD lists (what a rollback must restore).
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

described = {}
for want in sys.argv[1:]:
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
