# mypy: ignore-errors
# A module of the smoke runner (_runner.py), which runs inside the *target* interpreter: standard
# library + torch only, Python >= 3.8, no flashdoctor there (see _flashdoctor_smoke_common.py).
# The loops over one device: the references, then each backend's cases (checked under the profiler,
# then timed), and the background cuDNN compile that overlaps them.
import threading
import time

try:
    from . import _flashdoctor_smoke_common as shared
    from . import _flashdoctor_smoke_measure as measure
except ImportError:  # run as a script: the runner's directory is on sys.path
    import _flashdoctor_smoke_common as shared
    import _flashdoctor_smoke_measure as measure

err_text, null = shared.err_text, shared.null


class Runner(measure.Measure):
    """One device's run: ``run_gpu`` emits every event of every backend on it."""

    def run_gpu(self, variants, backends, cases):
        cfg = self.cfg
        ev = self.ev
        ev.emit("gpu", **self.gpu_info())
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
                ev.emit("reference", gpu=self.gpu, case=case["name"], ok=False, error=err_text(exc))
                bases.pop(case["name"], None)
                self.free()
        for backend in backends:
            if self.skipped(backend):
                continue
            kind = "sdpa" if backend in cfg["sdpa_names"] else "variant"
            if kind == "variant":
                info = variants.get(backend)
                if not info or not info.get("installed") or not info.get("import_ok"):
                    continue
            ev.emit("backend_start", gpu=self.gpu, backend=backend)
            calls = {}
            not_compiled = self.not_compiled.get(backend) or {}
            for case in cases:
                if case["name"] not in bases or self.case_skipped(backend, case["name"]):
                    continue
                if case["varlen"] and kind == "sdpa":
                    continue
                if case["name"] in not_compiled:  # never call into a kernel the build left out
                    self.not_run(backend, case, not_compiled=True, error=str(not_compiled[case["name"]]))
                    continue
                try:
                    calls[case["name"]] = self.make_call(backend, case, variants)
                except LookupError as exc:
                    self.not_run(backend, case, not_applicable=True, error=str(exc))
            timed = {}
            if warmup is not None and check and backend == cfg.get("fallback"):
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
            self.free()
            ev.emit("backend_done", gpu=self.gpu, backend=backend)
        if warmup is not None:  # cuDNN was never reached (left out after a crash): no thread outlives the run
            warmup.wait()

    def not_run(self, backend, case, **why):
        """A case that is not called, as its result: why (not_compiled, not_applicable) and an error text."""
        self.ev.emit("result", gpu=self.gpu, backend=backend, case=case["name"], ok=False, **why)

    def check_cases(self, backend, kind, cases, calls, bases, refs):
        """Forward + backward of each case under the profiler; returns the cases that ran."""
        ev = self.ev
        passed = []
        prof = self.profiler()
        label = "flashdoctor:"
        try:
            with prof if prof is not None else null():
                for case in cases:
                    call = calls.get(case["name"])
                    if call is None:
                        continue
                    ev.emit("case_start", gpu=self.gpu, backend=backend, case=case["name"], phase="check")
                    with self.label(prof, label + case["name"]):
                        self.sync()
                        res = self.check(backend, kind, case, call, bases[case["name"]], refs[case["name"]])
                        self.sync()
                    ev.emit("result", gpu=self.gpu, backend=backend, case=case["name"], **res)
                    if res["ok"]:
                        passed.append(case)
                    else:
                        self.free()
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
                self.free()
        return out


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
                self.errors.append(f"{case['name']}: {err_text(exc)[:300]}")
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
