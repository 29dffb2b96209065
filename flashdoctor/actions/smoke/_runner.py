# mypy: ignore-errors
# (like probe/_interp.py, this file is a script for the target interpreter, not part of the typed package)
# Runs inside the *target* interpreter as `python _runner.py CONFIG.json`; it imports torch (seconds)
# and the installed FlashAttention variants. flashdoctor's own process never imports torch: it starts
# this script, reads the events it appends to config["out"] (one JSON object a line, flushed after each,
# so a crash or a timeout loses nothing that was already measured) and judges them.
#
# Standard library + torch only, Python >= 3.8: flashdoctor need not be installed in the target.
# It measures and reports; it decides nothing (tolerances and error classification live in flashdoctor).
import importlib
import json
import math
import os
import statistics
import sys
import threading
import time
import traceback
import warnings
from contextlib import contextmanager

T0 = time.perf_counter()

try:
    import importlib.metadata as _md
except ImportError:  # pragma: no cover - Python < 3.8
    _md = None


class Events:
    def __init__(self, path):
        self.fh = open(path, "a", encoding="utf-8") if path else sys.stdout  # noqa: SIM115 - open for the whole run
        self.lock = threading.Lock()  # the cuDNN warm-up threads emit too

    def emit(self, event, **data):
        data["event"] = event
        data["t"] = round(time.perf_counter() - T0, 4)
        line = json.dumps(data, default=str, allow_nan=False) + "\n"
        with self.lock:
            self.fh.write(line)
            self.fh.flush()


def _err_text(exc):
    return f"{type(exc).__name__}: {exc}".strip()[:2000]


def _finite(x):
    return x if x is not None and math.isfinite(x) else None


FALLBACK = "sdpa-math"  # the speed-up baseline (flashdoctor.model.cases.FALLBACK)


# -- variants ---------------------------------------------------------------------------------------
# Which distribution claims each variant, and where its flash_attn_func lives. FA4's flash_attn.cute
# also ships inside flash-attn 2.8.3, so FA4 counts only with its own distribution installed.
VARIANTS = {
    "fa2": {"dists": ("flash-attn", "flash_attn"), "modules": ("flash_attn",), "need_dist": False},
    "fa3": {
        "dists": ("flash-attn-3", "flash_attn_3"),
        "modules": ("flash_attn_interface", "flash_attn_3.flash_attn_interface", "flash_attn_3"),
        "need_dist": False,
    },
    "fa4": {"dists": ("flash-attn-4",), "modules": ("flash_attn.cute",), "need_dist": True},
}


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


def detect_variant(name):
    spec = VARIANTS[name]
    version = _dist_version(spec["dists"])
    if spec["need_dist"] and version is None:
        return {"installed": False}
    error = None
    for modname in spec["modules"]:
        try:
            mod = importlib.import_module(modname)
        except Exception as exc:
            if _missing_itself(exc, modname):
                continue
            error = _err_text(exc)
            continue
        fn = getattr(mod, "flash_attn_func", None)
        if fn is None:
            if error is None and version is not None:
                error = f"{modname} has no flash_attn_func"
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


# -- the runner -------------------------------------------------------------------------------------
class Runner:
    def __init__(self, cfg, ev, torch):
        self.cfg = cfg
        self.ev = ev
        self.torch = torch
        self.F = torch.nn.functional
        self.cuda = cfg["device"] == "cuda"
        self.dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
        self.skip = {(s[0], s[1]) for s in cfg.get("skip", [])}
        self.sdpa_kernel, self.SDPBackend = self._sdpa_api()
        self.preimport = None  # a background import thread, joined before anything is timed

    def _sdpa_api(self):
        try:
            from torch.nn.attention import SDPBackend, sdpa_kernel  # torch >= 2.3

            return sdpa_kernel, SDPBackend
        except ImportError:
            return None, None

    # -- helpers ------------------------------------------------------------------------------------
    def skipped(self, backend):
        """Left out by flashdoctor: done in an earlier run, or crashed ("*": on every GPU)."""
        return (self.gpu, backend) in self.skip or ("*", backend) in self.skip

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize(self.dev)

    def time_ms(self, fn, repeats, min_batch_ms):
        """Median time of one call: warm-up, then `repeats` batches of back-to-back calls, each batch
        timed with CUDA events (perf_counter on CPU) and long enough (min_batch_ms) that launch gaps
        and event resolution do not dominate sub-0.1 ms calls."""
        torch = self.torch
        fn()
        self.sync()
        t = time.perf_counter()
        fn()
        self.sync()
        est = max((time.perf_counter() - t) * 1000.0, 1e-3)
        inner = int(max(1, min(200, math.ceil(min_batch_ms / est))))
        for _ in range(min(inner, 20)):
            fn()
        self.sync()
        times = []
        for _ in range(repeats):
            if self.cuda:
                s = torch.cuda.Event(enable_timing=True)
                e = torch.cuda.Event(enable_timing=True)
                s.record()
                for _ in range(inner):
                    fn()
                e.record()
                e.synchronize()
                times.append(s.elapsed_time(e) / inner)
            else:
                t = time.perf_counter()
                for _ in range(inner):
                    fn()
                times.append((time.perf_counter() - t) * 1000.0 / inner)
        return statistics.median(times), inner

    def peak_mib(self, fn):
        if not self.cuda:
            return None
        torch = self.torch
        self.sync()
        torch.cuda.reset_peak_memory_stats(self.dev)
        base = torch.cuda.memory_allocated(self.dev)
        fn()
        self.sync()
        return round((torch.cuda.max_memory_allocated(self.dev) - base) / 2**20, 1)

    # -- inputs -------------------------------------------------------------------------------------
    def base_inputs(self, case):
        """fp32 q, k, v, dout in the FlashAttention layout: (B, N, H, D), or packed (total, H, D)."""
        torch = self.torch
        g = torch.Generator(device=self.dev)
        g.manual_seed(int(self.cfg.get("seed", 0)))
        if case["varlen"]:
            total = sum(case["varlen"])
            shape_q = (total, case["heads"], case["head_dim"])
            shape_kv = (total, case["kv_heads"], case["head_dim"])
        else:
            shape_q = (case["batch"], case["seqlen"], case["heads"], case["head_dim"])
            shape_kv = (case["batch"], case["seqlen"], case["kv_heads"], case["head_dim"])
        q = torch.randn(shape_q, generator=g, device=self.dev)
        k = torch.randn(shape_kv, generator=g, device=self.dev)
        v = torch.randn(shape_kv, generator=g, device=self.dev)
        dout = torch.randn(shape_q, generator=g, device=self.dev)
        return q, k, v, dout

    def cu_seqlens(self, case):
        torch = self.torch
        offs = [0]
        for n in case["varlen"]:
            offs.append(offs[-1] + n)
        return torch.tensor(offs, dtype=torch.int32, device=self.dev), max(case["varlen"])

    def native(self, kind, x, dtype):
        """The backend's own layout: SDPA takes (B, H, N, D) contiguous, FlashAttention (B, N, H, D)."""
        y = x.to(dtype)
        if kind == "sdpa":
            y = y.transpose(1, 2)
        return y.contiguous()

    def common(self, kind, x):
        return x.transpose(1, 2) if kind == "sdpa" else x

    # -- calls --------------------------------------------------------------------------------------
    def make_call(self, backend, case, variants):
        """A function (q, k, v) -> out in the backend's layout, or raise LookupError(reason) when the
        backend has no entry point for this case (recorded as not applicable)."""
        causal = bool(case["causal"])
        gqa = case["kv_heads"] != case["heads"]
        if backend.startswith("sdpa-"):
            name = self.cfg["sdpa_names"][backend]
            F = self.F
            if self.sdpa_kernel is None:
                raise LookupError(
                    f"torch {self.torch.__version__} has no torch.nn.attention.sdpa_kernel (torch >= 2.3)"
                )
            enum = getattr(self.SDPBackend, name, None)
            if enum is None:
                raise LookupError(f"torch {self.torch.__version__} has no SDPBackend.{name}")
            kw = {"is_causal": causal}
            if gqa:
                kw["enable_gqa"] = True
            sdpa_kernel = self.sdpa_kernel

            def call(q, k, v):
                return F.scaled_dot_product_attention(q, k, v, **kw)

            # The backend is forced around whole batches of calls, not inside each one: entering the
            # context costs microseconds, which would show in 0.04 ms timings.
            call.ctx = lambda: sdpa_kernel([enum])
            return call
        info = variants[backend]
        if case["varlen"]:
            fn = info.get("varlen")
            if fn is None:
                raise LookupError(f"{info['module']} has no flash_attn_varlen_func")
            cu, maxlen = self.cu_seqlens(case)

            def call(q, k, v):
                r = fn(
                    q,
                    k,
                    v,
                    cu_seqlens_q=cu,
                    cu_seqlens_k=cu,
                    max_seqlen_q=maxlen,
                    max_seqlen_k=maxlen,
                    causal=causal,
                )
                # FA3 returned (out, lse) in some versions, FA4 always does: take out.
                return r[0] if isinstance(r, (tuple, list)) else r

            call.ctx = _null
            return call
        fn = info["func"]

        def call(q, k, v):
            r = fn(q, k, v, causal=causal)
            return r[0] if isinstance(r, (tuple, list)) else r

        call.ctx = _null
        return call

    def reference(self, case, base):
        """fp32 SDPA math from the same rounded inputs: out and grads in the FlashAttention layout."""
        torch = self.torch
        dtype = self.dtypes[case["dtype"]]
        q, k, v = [x.to(dtype).float().requires_grad_() for x in base[:3]]
        dout = base[3].to(dtype).float()
        groups = case["heads"] // case["kv_heads"]
        F = self.F

        def attend(q, k, v):  # (B, N, H, D) fp32
            if groups > 1:
                k = k.repeat_interleave(groups, dim=2)
                v = v.repeat_interleave(groups, dim=2)
            ctx = self.sdpa_kernel([self.SDPBackend.MATH]) if self.sdpa_kernel else _null()
            with ctx:
                o = F.scaled_dot_product_attention(
                    q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=bool(case["causal"])
                )
            return o.transpose(1, 2)

        if case["varlen"]:
            outs = []
            start = 0
            for n in case["varlen"]:
                sl = slice(start, start + n)
                outs.append(attend(q[sl].unsqueeze(0), k[sl].unsqueeze(0), v[sl].unsqueeze(0)).squeeze(0))
                start += n
            out = torch.cat(outs, 0)
        else:
            out = attend(q, k, v)
        grads = torch.autograd.grad(out, (q, k, v), dout)
        return out.detach(), [g.detach() for g in grads]

    def check(self, backend, kind, case, call, base, ref):
        """One forward + backward; the max abs error and the reference's max of out, dq, dk, dv."""
        torch = self.torch
        dtype = self.dtypes[case["dtype"]]
        q, k, v = [self.native(kind, x, dtype).requires_grad_() for x in base[:3]]
        dout = self.native(kind, base[3], dtype)
        phase = "forward"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                with call.ctx():
                    out = call(q, k, v)
                    phase = "backward"
                    grads = torch.autograd.grad(out, (q, k, v), dout)
                self.sync()
            except Exception as exc:
                return {
                    "ok": False,
                    "phase": phase,
                    "error_type": type(exc).__name__,
                    "error": _err_text(exc),
                    "warnings": [str(w.message)[:300] for w in caught][:4],
                }
        errors = {}
        ref_out, ref_grads = ref
        for name, got, want in zip(("out", "dq", "dk", "dv"), [out, *grads], [ref_out, *ref_grads]):
            got = self.common(kind, got).float()
            finite = bool(torch.isfinite(got).all().item())
            max_abs = float((got - want).abs().max().item()) if finite else None
            errors[name] = {
                "max_abs": _finite(max_abs),
                "ref_max": float(want.abs().max().item()),
                "finite": finite,
            }
        return {"ok": True, "errors": errors}

    def time_case(self, kind, case, call, base):
        torch = self.torch
        dtype = self.dtypes[case["dtype"]]
        repeats = int(self.cfg.get("repeats", 5))
        min_batch = float(self.cfg.get("min_batch_ms", 1.0))
        qn, kn, vn = [self.native(kind, x, dtype) for x in base[:3]]
        q, k, v = [x.clone().requires_grad_() for x in (qn, kn, vn)]
        dout = self.native(kind, base[3], dtype)

        def fwd():
            return call(qn, kn, vn)

        def fwd_bwd():
            return torch.autograd.grad(call(q, k, v), (q, k, v), dout)

        res = {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                with call.ctx():
                    with torch.no_grad():  # forward = inference: no autograd graph, no saved tensors
                        res["fwd_ms"], res["fwd_inner"] = self.time_ms(fwd, repeats, min_batch)
                        res["fwd_peak_mib"] = self.peak_mib(fwd)
                    if self.cfg.get("backward", True):
                        res["fwd_bwd_ms"], res["fwd_bwd_inner"] = self.time_ms(fwd_bwd, repeats, min_batch)
                        res["peak_mib"] = self.peak_mib(fwd_bwd)
            except Exception as exc:
                res.update(
                    error=_err_text(exc),
                    error_type=type(exc).__name__,
                    phase="backward" if "fwd_ms" in res else "forward",
                )
                res["warnings"] = [str(w.message)[:300] for w in caught][:4]
        return res

    def input_checks(self, backend, info):
        """Feed a variant what it must refuse: fp32 tensors and head dim 512. A clear exception is the
        expected answer; a crash is caught by flashdoctor's crash isolation."""
        torch = self.torch
        checks = (
            ("fp32", torch.float32, 64),
            ("head_dim_512", self.dtypes["fp16"] if not self._bf16_ok() else torch.bfloat16, 512),
        )
        for check, dtype, d in checks:
            self.ev.emit("case_start", gpu=self.gpu, backend=backend, case="input:" + check, phase="input")
            q = torch.randn(1, 64, 2, d, device=self.dev, dtype=dtype)
            try:
                info["func"](q, q, q, causal=False)
                self.sync()
                self.ev.emit("input_check", gpu=self.gpu, backend=backend, check=check, raised=False)
            except Exception as exc:
                self.ev.emit(
                    "input_check",
                    gpu=self.gpu,
                    backend=backend,
                    check=check,
                    raised=True,
                    error_type=type(exc).__name__,
                    error=_err_text(exc),
                )

    def _bf16_ok(self):
        if not self.cuda:
            return True
        return self.torch.cuda.get_device_capability(self.dev) >= (8, 0)

    # -- profiler -----------------------------------------------------------------------------------
    def profiler(self):
        """The autograd profiler (Kineto), CPU + CUDA activities.

        Not torch.profiler.profile: its start checks hasattr(torch, "_inductor"), which imports
        TorchInductor (1-5 s, a quarter of the smoke's budget) only to read a CUDA-graphs setting.
        """
        if not self.cfg.get("profile", True):
            return None
        try:
            from torch.autograd import profiler as autograd_profiler

            kw = {"use_kineto": True}
            try:
                return autograd_profiler.profile(use_device="cuda" if self.cuda else None, **kw)
            except TypeError:  # torch < 2.1 names it use_cuda
                return autograd_profiler.profile(use_cuda=self.cuda, **kw)
        except Exception as exc:  # no kineto in this build
            self.ev.emit("note", message=f"profiler unavailable: {_err_text(exc)}")
            return None

    def kernel_names(self, prof, label_prefix):
        """Kernel (CUDA) or operator (CPU) names inside each labelled window, longest total time first.

        Each labelled call is synchronised at both ends, so whatever ran between the window's start and
        end belongs to it; the autograd engine runs backward on its own thread, which a time window
        catches where a parent-child walk from the label would not.
        """
        torch = self.torch
        try:
            events = list(prof.function_events)
        except Exception as exc:
            self.ev.emit("note", message=f"profiler events unavailable: {_err_text(exc)}")
            return {}
        cpu = torch.autograd.DeviceType.CPU
        windows = [
            (e.name[len(label_prefix) :], e.time_range.start, e.time_range.end)
            for e in events
            if e.name.startswith(label_prefix)
        ]
        found = {}
        for case, start, end in windows:
            totals = {}
            for e in events:
                if e.name.startswith(label_prefix):
                    continue
                is_device = e.device_type != cpu
                if self.cuda != is_device:
                    continue
                if start <= e.time_range.start <= end:
                    totals[e.name] = totals.get(e.name, 0.0) + (e.time_range.end - e.time_range.start)
            names = sorted(totals, key=lambda n: -totals[n])
            found[case] = [n[:300] for n in names[:40]]
        return found

    # -- main loops ---------------------------------------------------------------------------------
    def gpu_info(self):
        torch = self.torch
        if not self.cuda:
            return {"gpu": None, "name": "cpu", "capability": None, "memory_gb": None}
        p = torch.cuda.get_device_properties(self.dev)
        return {
            "gpu": self.gpu,
            "name": p.name,
            "capability": f"{p.major}.{p.minor}",
            "memory_gb": round(p.total_memory / 2**30, 1),
        }

    def matmul_peak(self):
        torch = self.torch
        n = 8192 if self.cuda else 512
        dtype = torch.bfloat16
        try:
            a = torch.randn(n, n, device=self.dev, dtype=dtype)
            b = torch.randn(n, n, device=self.dev, dtype=dtype)
            ms, _ = self.time_ms(lambda: torch.matmul(a, b), 5, 5.0)
            self.ev.emit(
                "matmul_peak", gpu=self.gpu, n=n, dtype="bf16", ms=ms, tflops=2.0 * n**3 / (ms * 1e-3) / 1e12
            )
        except Exception as exc:
            self.ev.emit("matmul_peak", gpu=self.gpu, n=n, dtype="bf16", error=_err_text(exc))

    def run_gpu(self, variants, backends, cases):
        cfg = self.cfg
        ev = self.ev
        ev.emit("gpu", **self.gpu_info())
        if cfg.get("matmul_peak"):
            self.matmul_peak()
        warmup = None
        prewarm = "sdpa-cudnn" in cfg.get("prewarm", []) and "sdpa-cudnn" in backends
        if self.cuda and prewarm and not self.skipped("sdpa-cudnn"):
            warmup = CudnnWarmup(self, cases)
            if not warmup.start():
                warmup = None
        refs = {}
        bases = {}
        check = cfg.get("check", True)
        for case in cases:
            if all(self.skipped(b) for b in backends):
                break
            ev.emit("case_start", gpu=self.gpu, backend="reference", case=case["name"], phase="reference")
            try:
                bases[case["name"]] = self.base_inputs(case)
                if check:
                    refs[case["name"]] = self.reference(case, bases[case["name"]])
            except Exception as exc:
                ev.emit("reference", gpu=self.gpu, case=case["name"], ok=False, error=_err_text(exc))
                bases.pop(case["name"], None)
                self._free()
        for backend in backends:
            if self.skipped(backend):
                continue
            kind = "sdpa" if backend.startswith("sdpa-") else "variant"
            if kind == "variant":
                info = variants.get(backend)
                if not info or not info.get("installed") or not info.get("import_ok"):
                    continue
            ev.emit("backend_start", gpu=self.gpu, backend=backend)
            calls = {}
            for case in cases:
                if case["name"] not in bases:
                    continue
                if case["varlen"] and kind == "sdpa":
                    continue
                try:
                    calls[case["name"]] = self.make_call(backend, case, variants)
                except LookupError as exc:
                    ev.emit(
                        "result",
                        gpu=self.gpu,
                        backend=backend,
                        case=case["name"],
                        ok=False,
                        not_applicable=True,
                        error=str(exc),
                    )
            timed = {}
            if warmup is not None and check and backend == FALLBACK:
                # While cuDNN compiles in the background, time the fallback (unprofiled work); its checks
                # wait: the profiler sees every stream, and the warm-up's kernels must not show up as
                # kernels of the calls checked. Its timings are reported after its checks, as always.
                timed = self.time_cases(backend, kind, [c for c in cases if c["name"] in calls], calls, bases)
            if warmup is not None and (backend == "sdpa-cudnn" or check):
                warmup.wait()
                warmup = None
            if check:
                passed = self.check_cases(backend, kind, cases, calls, bases, refs)
            else:
                passed = [c for c in cases if c["name"] in calls]
            for case in passed:
                res = timed.get(case["name"])
                if res is None:
                    res = self.time_cases(backend, kind, [case], calls, bases)[case["name"]]
                ev.emit("timing", gpu=self.gpu, backend=backend, case=case["name"], **res)
            if kind == "variant" and cfg.get("input_checks", False):
                self.input_checks(backend, variants[backend])
            self._free()
            ev.emit("backend_done", gpu=self.gpu, backend=backend)
        if warmup is not None:  # cuDNN was never reached (left out after a crash): no thread outlives the run
            warmup.wait()

    def check_cases(self, backend, kind, cases, calls, bases, refs):
        """Forward + backward of each case under the profiler; returns the cases that ran."""
        ev = self.ev
        passed = []
        prof = self.profiler()
        label = "flashdoctor:"
        try:
            with prof if prof is not None else _null():
                for case in cases:
                    call = calls.get(case["name"])
                    if call is None:
                        continue
                    ev.emit("case_start", gpu=self.gpu, backend=backend, case=case["name"], phase="check")
                    with self._label(prof, label + case["name"]):
                        self.sync()
                        res = self.check(backend, kind, case, call, bases[case["name"]], refs[case["name"]])
                        self.sync()
                    ev.emit("result", gpu=self.gpu, backend=backend, case=case["name"], **res)
                    if res["ok"]:
                        passed.append(case)
                    else:
                        self._free()
        finally:
            if prof is not None:
                for name, names in self.kernel_names(prof, label).items():
                    ev.emit("kernels", gpu=self.gpu, backend=backend, case=name, names=names)
        return passed

    def time_cases(self, backend, kind, cases, calls, bases):
        if self.preimport is not None:
            # An import holds the GIL for seconds: timings of launch-bound calls must not share it.
            self.preimport.join(60.0)
            self.preimport = None
        out = {}
        for case in cases:
            self.ev.emit("case_start", gpu=self.gpu, backend=backend, case=case["name"], phase="time")
            out[case["name"]] = res = self.time_case(kind, case, calls[case["name"]], bases[case["name"]])
            if "error" in res:
                self._free()
        return out

    @contextmanager
    def _label(self, prof, name):
        if prof is None:
            yield
            return
        from torch.autograd.profiler import record_function

        with record_function(name):
            yield

    def _free(self):
        if self.cuda:
            self.torch.cuda.empty_cache()


class CudnnWarmup:
    """Compile cuDNN's SDPA kernels in background threads while the main thread does other work.

    On a machine whose CUDA kernel cache (~/.nv/ComputeCache) is cold, cuDNN's first call for each
    shape/causal/dtype builds and JIT-compiles its graphs: about 0.6-0.9 s per graph and three graphs a
    case (training forward, backward, inference forward), half the smoke's time on a fresh H100. Each
    thread here builds one case's graphs through the ATen ops directly (not through sdpa_kernel, whose
    backend switch is global and would change what the main thread runs, nor through autograd, whose
    one worker thread per GPU would make the main thread's backward calls wait), on its own stream.
    torch keeps cuDNN graphs per thread, so the main thread still builds its own later, but the
    compiled kernels are then found in the driver's cache: about 0.1 s a graph instead of 0.7 s.
    Best effort: an error here is reported as a note and changes nothing else.
    """

    def __init__(self, runner, cases):
        self.runner = runner
        self.cases = [
            c for c in cases if not c["varlen"] and c["kv_heads"] == c["heads"] and c["dtype"] != "fp32"
        ]
        self.threads = []
        self.errors = []
        self.left = len(self.cases)
        self.lock = threading.Lock()
        self.t0 = None

    def start(self):
        torch = self.runner.torch
        fwd = getattr(torch, "_scaled_dot_product_cudnn_attention", None)
        bwd = getattr(
            getattr(torch.ops.aten, "_scaled_dot_product_cudnn_attention_backward", None), "default", None
        )
        if not self.cases or fwd is None or bwd is None:
            return False
        if getattr(torch.version, "hip", None) or not torch.backends.cudnn.is_available():
            return False  # no cuDNN (ROCm, or a build without it): the backend reports why on its own
        self.t0 = time.perf_counter()
        self.runner.ev.emit(
            "prewarm_start", gpu=self.runner.gpu, backend="sdpa-cudnn", cases=[c["name"] for c in self.cases]
        )
        for case in self.cases:
            th = threading.Thread(target=self._one, args=(case, fwd, bwd), name="cudnn-warmup", daemon=True)
            self.threads.append(th)
            th.start()
        return True

    def _one(self, case, fwd, bwd):
        r = self.runner
        torch = r.torch
        try:
            with torch.cuda.device(r.dev), torch.cuda.stream(torch.cuda.Stream(r.dev)), torch.no_grad():
                dtype = r.dtypes[case["dtype"]]
                q, k, v, dout = [r.native("sdpa", x, dtype) for x in r.base_inputs(case)]
                causal = bool(case["causal"])
                o = fwd(q, k, v, None, True, 0.0, causal, False)
                bwd(dout, q, k, v, o[0], o[1], o[6], o[7], None, o[2], o[3], o[4], o[5], 0.0, causal)
                fwd(q, k, v, None, False, 0.0, causal, False)
                torch.cuda.current_stream(r.dev).synchronize()
        except Exception as exc:
            with self.lock:
                self.errors.append(f"{case['name']}: {_err_text(exc)[:300]}")
        finally:
            with self.lock:
                self.left -= 1
                last = self.left == 0
            if last:
                r.ev.emit(
                    "prewarm_done",
                    gpu=r.gpu,
                    backend="sdpa-cudnn",
                    elapsed_s=round(time.perf_counter() - self.t0, 3),
                    errors=self.errors,
                )

    def wait(self, timeout=120.0):
        """Wait (bounded) for the threads; a thread still compiling after that is left to finish."""
        deadline = time.perf_counter() + timeout
        for th in self.threads:
            th.join(max(0.0, deadline - time.perf_counter()))
        self.threads = []


@contextmanager
def _null():
    yield


def _preimport(ev, module):
    t = time.perf_counter()
    error = None
    try:
        importlib.import_module(module)
    except Exception as exc:  # the variant's own call will meet the same error and report it
        error = _err_text(exc)
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
            ev.emit("no_torch", error=_err_text(exc))
            return 0
        ev.emit("torch_import_failed", error=_err_text(exc), traceback=traceback.format_exc()[-3000:])
        return 0
    except Exception as exc:
        ev.emit("torch_import_failed", error=_err_text(exc), traceback=traceback.format_exc()[-3000:])
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
    variants = {}
    for name in VARIANTS:
        if name not in cfg["backends"] or name in cfg.get("skip_variants", []):
            continue
        ev.emit("variant_import", backend=name)
        t = time.perf_counter()
        info = detect_variant(name)
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
