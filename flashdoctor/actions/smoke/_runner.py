# mypy: ignore-errors
# (like probe/_interp.py, this file is a script for the target interpreter, not part of the typed package)
# Runs inside the *target* interpreter as `python _runner.py CONFIG.json`; it imports torch (seconds)
# and the installed FlashAttention variants. flashdoctor's own process never imports torch: it starts
# this script, reads the events it appends to config["out"] (one JSON object a line, flushed after each,
# so a crash or a timeout loses nothing that was already measured) and judges them.
#
# Standard library + torch only, Python >= 3.8: flashdoctor need not be installed in the target.
# It measures and reports; it decides nothing (tolerances, error classification and which cases a
# minimal build covers live in flashdoctor, which passes the last as config["not_compiled"]). What it
# knows of the variants (distributions, modules) comes from flashdoctor's registry in config["variants"].
#
# Its parts are the sibling files _flashdoctor_smoke_*.py (long names: this directory is on sys.path
# while they are imported, and is taken off it before anything of the user's is imported).
import importlib
import json
import os
import sys
import threading
import time
import traceback

if __package__:  # imported as part of flashdoctor (its tests)
    from . import _flashdoctor_smoke_common as shared
    from . import _flashdoctor_smoke_loop as loop
    from . import _flashdoctor_smoke_measure as measure
else:  # run as a script
    import _flashdoctor_smoke_common as shared
    import _flashdoctor_smoke_loop as loop
    import _flashdoctor_smoke_measure as measure

    _here = os.path.dirname(os.path.abspath(__file__))
    # The runner's own directory must not shadow a user's module (it holds flashdoctor's run.py).
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

try:
    import importlib.metadata as _md
except ImportError:  # pragma: no cover - Python < 3.8
    _md = None

Events, err_text = shared.Events, shared.err_text
Runner, CudnnWarmup = loop.Runner, loop.CudnnWarmup
T0 = shared.T0


# -- variants ---------------------------------------------------------------------------------------
def _dist_version(names):
    if _md is None:
        return None
    for n in names:
        try:
            return _md.version(n)
        except Exception:
            continue
    return None


def _missing_itself(exc, modname):
    """True when ModuleNotFoundError is about the module (or a parent) itself, not a dependency."""
    name = getattr(exc, "name", None)
    return (
        isinstance(exc, ModuleNotFoundError)
        and name is not None
        and (modname == name or modname.startswith(name + "."))
    )


def detect_variant(spec):
    """Import a variant as flashdoctor's registry describes it (config["variants"][name]: dists,
    modules, function, needs_dist)."""
    version = _dist_version(spec["dists"])
    if spec.get("needs_dist") and version is None:
        return {"installed": False}
    function = spec.get("function") or "flash_attn_func"
    error = None
    for modname in spec["modules"]:
        try:
            mod = importlib.import_module(modname)
        except Exception as exc:
            if _missing_itself(exc, modname):
                continue
            error = err_text(exc)
            continue
        fn = getattr(mod, function, None)
        if fn is None:
            if error is None and version is not None:
                error = f"{modname} has no {function}"
            continue
        return {
            "installed": True,
            "version": version or getattr(mod, "__version__", None),
            "import_ok": True,
            "module": modname,
            "func": fn,
            "varlen": getattr(mod, "flash_attn_varlen_func", None),
        }
    if version is None and error is None:
        return {"installed": False}
    return {
        "installed": True,
        "version": version,
        "import_ok": False,
        "error": error or "no importable module",
    }


def _preimport(ev, module):
    t = time.perf_counter()
    error = None
    try:
        importlib.import_module(module)
    except Exception as exc:  # the variant's own call will meet the same error and report it
        error = err_text(exc)
    ev.emit("preimport_done", module=module, elapsed_s=round(time.perf_counter() - t, 3), error=error)


def main(argv):
    import faulthandler

    faulthandler.enable()  # a segfault leaves the Python stack on stderr: the crash finding's evidence
    with open(argv[1], encoding="utf-8") as fh:
        cfg = json.load(fh)
    ev = Events(cfg.get("out"))
    ev.emit("start", python=sys.version.split()[0], executable=sys.executable, pid=os.getpid())
    t = time.perf_counter()
    try:
        import torch
    except ModuleNotFoundError as exc:
        if getattr(exc, "name", None) == "torch":
            ev.emit("no_torch", error=err_text(exc))
            return 0
        ev.emit("torch_import_failed", error=err_text(exc), traceback=traceback.format_exc()[-3000:])
        return 0
    except Exception as exc:
        ev.emit("torch_import_failed", error=err_text(exc), traceback=traceback.format_exc()[-3000:])
        return 0
    import_s = time.perf_counter() - t
    cuda_ok = bool(torch.cuda.is_available())
    count = torch.cuda.device_count() if cuda_ok else 0
    ev.emit(
        "torch",
        version=torch.__version__,
        cuda=getattr(torch.version, "cuda", None),
        hip=getattr(torch.version, "hip", None),
        import_s=round(import_s, 3),
        cuda_available=cuda_ok,
        device_count=count,
    )
    torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 reference must be fp32
    if cfg["device"] == "cpu":
        torch.set_num_threads(1)  # toy shapes; steadier times on a shared CI machine
    if cfg["device"] == "cuda":
        if not cuda_ok:
            if getattr(torch.version, "cuda", None) is None and getattr(torch.version, "hip", None) is None:
                why = f"torch {torch.__version__} is a CPU-only build"
            else:
                why = (
                    f"torch {torch.__version__} sees no GPU (driver, CUDA_VISIBLE_DEVICES or the GPU itself)"
                )
            ev.emit("no_gpu", reason=why)
            return 0
        gpus = list(range(count))
        if cfg.get("gpu") is not None:
            if not 0 <= int(cfg["gpu"]) < count:
                ev.emit(
                    "fatal",
                    kind="usage",
                    message=f"--gpu {cfg['gpu']}: torch sees {count} GPU(s), numbered 0..{count - 1}",
                )
                return 0
            gpus = [int(cfg["gpu"])]
    else:
        gpus = [None]
    if cfg.get("matmul_peak"):
        # First, on a quiet device: no variant imported yet, no background thread (measure.matmul_peak).
        for gpu in gpus:
            dev = torch.device("cpu") if gpu is None else torch.device("cuda", gpu)
            if gpu is not None:
                torch.cuda.set_device(dev)
            measure.matmul_peak(torch, dev, gpu, ev)
    variants = {}
    for name, spec in (cfg.get("variants") or {}).items():
        if name not in cfg["backends"] or name in cfg.get("skip_variants", []):
            continue
        ev.emit("variant_import", backend=name)
        t = time.perf_counter()
        info = detect_variant(spec)
        variants[name] = info
        ev.emit(
            "variant",
            backend=name,
            installed=info["installed"],
            version=info.get("version"),
            import_ok=info.get("import_ok"),
            error=info.get("error"),
            module=info.get("module"),
            varlen=info.get("varlen") is not None,
            import_s=round(time.perf_counter() - t, 3),
        )
    cases = cfg["cases"]
    preimport = None
    if (
        cfg["device"] == "cuda"
        and cfg.get("preimport", True)
        and any(v.get("import_ok") for v in variants.values())
        and "torch._dynamo" not in sys.modules
    ):
        # The first call of any torch.library.custom_op (FA2 >= 2.6 and FA3 define theirs that way) runs
        # `import torch._dynamo`, which brings in TorchInductor: 2-4 s on an H100 host, in the middle of
        # the variant's checks. Done here in the background, it overlaps the set-up, where the main
        # thread mostly waits on the CUDA driver; the first timing waits for it (see time_cases).
        preimport = threading.Thread(target=_preimport, args=(ev, "torch._dynamo"), daemon=True)
        preimport.start()
    for gpu in gpus:
        runner = Runner(cfg, ev, torch)
        runner.preimport = preimport
        runner.gpu = gpu
        if gpu is None:
            runner.dev = torch.device("cpu")
        else:
            runner.dev = torch.device("cuda", gpu)
            torch.cuda.set_device(runner.dev)
        runner.run_gpu(variants, cfg["backends"], cases)
    if preimport is not None:
        preimport.join(60.0)
    # Compilers that a profiler or an API can drag in for seconds; the smoke needs neither (unless a
    # variant's custom ops do, when it is imported on purpose, above).
    heavy = [m for m in ("torch._inductor", "torch._dynamo") if m in sys.modules] if preimport is None else []
    ev.emit("done", elapsed_s=round(time.perf_counter() - T0, 3), heavy_imports=heavy)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
