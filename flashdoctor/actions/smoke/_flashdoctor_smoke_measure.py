# mypy: ignore-errors
# A module of the smoke runner (_runner.py), which runs inside the *target* interpreter: standard
# library + torch only, Python >= 3.8, no flashdoctor there (see _flashdoctor_smoke_common.py).
# The measurements of one backend on one case: inputs, the call, the fp32 reference, the check against
# it, the timings, the deliberate wrong inputs, the profiler's kernel names, and the matmul peak.
import math
import statistics
import time
import warnings
from contextlib import contextmanager

try:
    from . import _flashdoctor_smoke_common as shared
except ImportError:  # run as a script: the runner's directory is on sys.path
    import _flashdoctor_smoke_common as shared

err_text, finite, null = shared.err_text, shared.finite, shared.null


class Measure:
    """Measurements on one device (``self.dev``); the loops are in _flashdoctor_smoke_loop."""

    def __init__(self, cfg, ev, torch):
        self.cfg = cfg
        self.ev = ev
        self.torch = torch
        self.F = torch.nn.functional
        self.cuda = cfg["device"] == "cuda"
        self.dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
        self.skip = {(s[0], s[1]) for s in cfg.get("skip", [])}
        self.skip_cases = {(s[0], s[1], s[2]) for s in cfg.get("skip_cases", [])}
        # Cases a variant's build does not cover (flashdoctor read its profile from the version label):
        # reported, never called. {backend: {case: reason}}
        self.not_compiled = cfg.get("not_compiled") or {}
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

    def case_skipped(self, backend, case):
        """One case left out by flashdoctor: it crashed the runner in an earlier run."""
        return (self.gpu, backend, case) in self.skip_cases or ("*", backend, case) in self.skip_cases

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
        if backend in self.cfg.get("sdpa_names", {}):
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

            call.ctx = null
            return call
        fn = info["func"]

        def call(q, k, v):
            r = fn(q, k, v, causal=causal)
            return r[0] if isinstance(r, (tuple, list)) else r

        call.ctx = null
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
            ctx = self.sdpa_kernel([self.SDPBackend.MATH]) if self.sdpa_kernel else null()
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
        """One forward + backward; the max abs error and the reference's max of out, dq, dk, dv, and the
        output's dtype (bf16, fp16, fp32, or torch's name)."""
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
                    "error": err_text(exc),
                    "warnings": [str(w.message)[:300] for w in caught][:4],
                }
        errors = {}
        ref_out, ref_grads = ref
        names = {v: k for k, v in self.dtypes.items()}
        out_dtype = names.get(out.dtype, str(out.dtype).replace("torch.", ""))
        for name, got, want in zip(("out", "dq", "dk", "dv"), [out, *grads], [ref_out, *ref_grads]):
            got = self.common(kind, got).float()
            all_finite = bool(torch.isfinite(got).all().item())
            max_abs = float((got - want).abs().max().item()) if all_finite else None
            errors[name] = {
                "max_abs": finite(max_abs),
                "ref_max": float(want.abs().max().item()),
                "finite": all_finite,
            }
        return {"ok": True, "errors": errors, "out_dtype": out_dtype}

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
                    error=err_text(exc),
                    error_type=type(exc).__name__,
                    phase="backward" if "fwd_ms" in res else "forward",
                )
                res["warnings"] = [str(w.message)[:300] for w in caught][:4]
        return res

    def input_checks(self, backend, info):
        """Feed a variant what it must refuse: fp32 tensors and head dim 512. A clear exception is the
        expected answer; a crash is caught by flashdoctor's crash isolation."""
        torch = self.torch
        if backend in self.cfg.get("input_skip", ()):
            # A minimal build that dies on such input instead of refusing it (flashdoctor's registry says
            # which): not called; the runtime never sends it such input.
            self.ev.emit("input_check", gpu=self.gpu, backend=backend, check="all", skipped=True)
            return
        # A half dtype the build has (a minimal build must not be called with one it left out).
        covered = self.cfg.get("input_dtypes", {}).get(backend) or ["bf16", "fp16"]
        half = [d for d in (["bf16", "fp16"] if self._bf16_ok() else ["fp16"]) if d in covered]
        # ... and a head dim it has: only the dtype is wrong in the fp32 check
        checks = [("fp32", torch.float32, self.cfg.get("input_head_dims", {}).get(backend) or 64)]
        if half:
            checks.append(("head_dim_512", self.dtypes[half[0]], 512))
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
                    error=err_text(exc),
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
            self.ev.emit("note", message=f"profiler unavailable: {err_text(exc)}")
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
            self.ev.emit("note", message=f"profiler events unavailable: {err_text(exc)}")
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

    # -- the device -----------------------------------------------------------------------------------
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

    @contextmanager
    def label(self, prof, name):
        if prof is None:
            yield
            return
        from torch.autograd.profiler import record_function

        with record_function(name):
            yield

    def free(self):
        if self.cuda:
            self.torch.cuda.empty_cache()


def matmul_peak(torch, dev, gpu, ev, warmup_s=0.5, repeats=10, min_batch_ms=25.0):
    """The device's bf16 dense matmul throughput (TFLOP/s), the bench's "% peak" denominator.

    Measured first in the process, before any variant is imported and before any background thread
    starts (the torch._dynamo pre-import holds the GIL for seconds and starves the launches), on a GPU
    nothing else of flashdoctor uses: about ``warmup_s`` of back-to-back matmuls first so that the
    clocks ramp up and cuBLAS settles on its kernel, then ``repeats`` batches, each between CUDA events
    and long enough (``min_batch_ms``) that launch gaps do not count. The peak is the best batch, not
    the median: whatever disturbs a batch (clocks still ramping, another process on the GPU, a thread
    holding the GIL) can only make it slower, so the fastest batch is the closest to what the hardware
    does; the median and the slowest are reported too, as evidence of how steady it was.
    """
    cuda = dev.type == "cuda"
    n = 8192 if cuda else 512
    if not cuda:
        warmup_s, repeats, min_batch_ms = min(warmup_s, 0.05), min(repeats, 5), min(min_batch_ms, 2.0)
    flop = 2.0 * n**3
    try:
        a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
        b = torch.randn(n, n, device=dev, dtype=torch.bfloat16)

        def sync():
            if cuda:
                torch.cuda.synchronize(dev)

        sync()
        t0 = time.perf_counter()
        calls = 0
        while True:
            for _ in range(4):
                torch.matmul(a, b)
            calls += 4
            sync()
            if time.perf_counter() - t0 >= warmup_s or calls >= 4000:
                break
        t = time.perf_counter()
        for _ in range(4):
            torch.matmul(a, b)
        sync()
        one_ms = max((time.perf_counter() - t) * 1000.0 / 4, 1e-3)
        inner = int(max(1, min(500, math.ceil(min_batch_ms / one_ms))))
        rates = []
        for _ in range(repeats):
            if cuda:
                s = torch.cuda.Event(enable_timing=True)
                e = torch.cuda.Event(enable_timing=True)
                s.record()
                for _ in range(inner):
                    torch.matmul(a, b)
                e.record()
                e.synchronize()
                ms = s.elapsed_time(e) / inner
            else:
                t = time.perf_counter()
                for _ in range(inner):
                    torch.matmul(a, b)
                ms = (time.perf_counter() - t) * 1000.0 / inner
            rates.append(flop / (ms * 1e-3) / 1e12)
        best = max(rates)
        ev.emit(
            "matmul_peak",
            gpu=gpu,
            n=n,
            dtype="bf16",
            ms=flop / (best * 1e12) * 1e3,
            tflops=best,
            median_tflops=statistics.median(rates),
            min_tflops=min(rates),
            repeats=repeats,
            inner=inner,
            warmup_s=round(time.perf_counter() - t0, 3),
            method="max",
        )
    except Exception as exc:
        ev.emit("matmul_peak", gpu=gpu, n=n, dtype="bf16", error=err_text(exc))
