#!/usr/bin/env bash
# GPU proof of the smoke and bench parts of issue 16 with a real FA3 minimal build, in ONE command under
# 10 minutes, with no network:
#
#   bash scripts/gpu_smoke_fa3.sh OUTDIR [SOURCE]
#
# SOURCE is a flash-attention checkout with hopper/ (and csrc/cutlass/include), or a .tar.gz of one
# (default: the first .carry/flash-attention-hopper-*.tar.gz, carried in the ignored .carry/ folder).
# FD_FA3_WHEEL=path/to/flash_attn_3-*.whl skips the build; FD_FA2_WHEEL=... installs an FA2 (minimal)
# wheel too, so that both are smoke-tested together. From the repository root, with PYTHONPATH=. (the
# GPU machine's python3 has flashdoctor's dependencies; flashdoctor itself need not be installed):
#
#   1. flashdoctor build --fa3 for sm90, head dim 128, bf16 and every --no-* switch (~150 s on an H100)
#   2. pip install --no-deps --no-index the wheel into python3's environment (a fresh machine: no harm)
#   3. flashdoctor check --require fa3 --json                          -> OUTDIR/check.json
#   4. flashdoctor smoke --json, timed (cold, then warm)               -> OUTDIR/smoke.json, smoke-warm.json
#      and the same report rendered at 80 and 200 columns           -> OUTDIR/smoke-80.txt, smoke-200.txt
#   5. a smoke that is NOT told the build's profile (as if it were an upstream wheel): FA3 is called with
#      fp16, which this build lacks; the crash must stay in that case   -> OUTDIR/smoke-unprofiled.json
#   6. flashdoctor bench B8 N4096 H16 D128 bf16, then --causal          -> OUTDIR/bench*.json, bench*-80.txt
#   7. the runtime's choice for bf16 and fp16 calls (informative)       -> OUTDIR/runtime.txt
#   8. scripts/check_fa3_smoke.py OUTDIR: every check, one line each   -> OUTDIR/checks.txt
#
# Exit status: that of the checks (0 all passed, 1 one failed, 2 a step could not run).
set -uo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: $0 OUTDIR [SOURCE]" >&2
    exit 2
fi
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
SOURCE=${2:-}
cd "$(dirname "$0")/.." || exit 2
PY=${PYTHON:-python3}
WORK=${FD_WORK:-/tmp/fd-gpu-fa3}
rm -rf "$WORK" && mkdir -p "$WORK"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export FLASHDOCTOR_CACHE_DIR="$WORK/cache"
export PYTHONUNBUFFERED=1
T0=$(date +%s)
elapsed() { echo $(( $(date +%s) - T0 )); }
now() { date +%s%N; }
since() {  # seconds since a now() stamp, e.g. 13.204
    local ms=$(( ($(now) - $1) / 1000000 ))
    printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
}
: > "$OUT/timings.txt"
{
    echo "date: $(date -Is)"
    nvidia-smi --query-gpu=name,compute_cap,driver_version,clocks.max.sm --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
    "$PY" -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)'
    "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" --version 2>/dev/null | tail -1
    echo "flashdoctor: $(git rev-parse --short HEAD 2>/dev/null)"
} 2>&1 | tee "$OUT/env.txt"

# -- 1. the wheel ------------------------------------------------------------------------------------
WHEEL=${FD_FA3_WHEEL:-}
if [[ -z "$WHEEL" ]]; then
    if [[ -z "$SOURCE" ]]; then
        SOURCE=$(find .carry -maxdepth 1 -name "flash-attention-hopper-*.tar.gz" 2>/dev/null | sort | head -1)
    fi
    if [[ -z "$SOURCE" || ! -e "$SOURCE" ]]; then
        echo "no FA3 source: give a flash-attention checkout (or its .tar.gz), or FD_FA3_WHEEL" >&2
        exit 2
    fi
    if [[ -f "$SOURCE" ]]; then
        tar xzf "$SOURCE" -C "$WORK" || exit 2
        SOURCE=$(dirname "$(find "$WORK" -mindepth 2 -maxdepth 2 -type d -name hopper | head -1)")
    fi
    echo "== 1. build FA3 (sm90, head dim 128, bf16, every --no-* switch) from $SOURCE ($(elapsed) s)"
    t0=$(now)
    timeout 420 "$PY" -m flashdoctor build --fa3 --source "$SOURCE" --arch 90 --head-dims 128 --dtypes bf16 \
        --no-split --no-paged-kv --no-append-kv --no-local --no-softcap --no-pack-gqa --no-fp8 --no-cluster \
        --ignore-preflight --wheelhouse "$WORK/wheelhouse" --log "$OUT/build.log" > "$OUT/build.txt" 2>&1
    rc=$?
    echo "build_wall_s $(since "$t0")" >> "$OUT/timings.txt"
    tail -5 "$OUT/build.txt"
    WHEEL=$(find "$WORK/wheelhouse" -name 'flash_attn_3-*.whl' | head -1)
    if [[ $rc -ne 0 || -z "$WHEEL" ]]; then
        echo "the FA3 build failed (exit $rc): see build.txt / build.log" >&2
        exit 2
    fi
fi
echo "wheel: $(basename "$WHEEL")" | tee -a "$OUT/env.txt"

# -- 2. install ------------------------------------------------------------------------------------------
echo "== 2. install ($(elapsed) s)"
for w in "$WHEEL" ${FD_FA2_WHEEL:-}; do
    "$PY" -m pip install --no-deps --no-index --force-reinstall -q "$w" > "$OUT/pip.txt" 2>&1 || {
        cat "$OUT/pip.txt"
        exit 2
    }
done

# -- 3. check --------------------------------------------------------------------------------------------
echo "== 3. check --require fa3 ($(elapsed) s)"
"$PY" -m flashdoctor check --require fa3 --json > "$OUT/check.json" 2> "$OUT/check.stderr"
echo "check_rc $?" >> "$OUT/timings.txt"

# -- 4. smoke --------------------------------------------------------------------------------------------
for name in smoke smoke-warm; do
    echo "== 4. flashdoctor smoke --json ($name, $(elapsed) s)"
    t0=$(now)
    timeout 200 "$PY" -m flashdoctor smoke --json > "$OUT/$name.json" 2> "$OUT/$name.stderr"
    echo "${name//-/_}_rc $?" >> "$OUT/timings.txt"
    echo "${name//-/_}_wall_s $(since "$t0")" >> "$OUT/timings.txt"
done
timeout 200 "$PY" - "$OUT" <<'EOF'
import io, json, os, sys
from flashdoctor.actions.smoke import run_smoke
from flashdoctor.render.console import make_console
from flashdoctor.render.smoke import render_smoke

out = sys.argv[1]
report = run_smoke(sys.executable, os.environ)
for width in (80, 200):
    buf = io.StringIO()
    console = make_console(file=buf)
    console.width = width
    render_smoke(report, console)
    with open(os.path.join(out, f"smoke-{width}.txt"), "w") as fh:
        fh.write(buf.getvalue())
print(open(os.path.join(out, "smoke-80.txt")).read())
EOF

# -- 5. the crash, confined ------------------------------------------------------------------------
echo "== 5. smoke without the build's profile: fp16 reaches FA3 ($(elapsed) s)"
timeout 200 "$PY" - "$OUT" <<'EOF'
import json, os, sys
from flashdoctor.actions.smoke import run_smoke

# versions: the build taken for an upstream one (no local label), so nothing is skipped ahead.
report = run_smoke(sys.executable, os.environ, variants=["fa3"], versions={"fa3": "3.0.0"}, input_checks=False)
with open(os.path.join(sys.argv[1], "smoke-unprofiled.json"), "w") as fh:
    json.dump(report.to_json(), fh, indent=1)
for r in report.results:
    if r.backend == "fa3":
        print(f"  {r.case.name:12} {r.status.value:8} {r.reason or r.kernel or ''}")
print(f"  runner processes: {report.runs}")
EOF

# -- 6. bench --------------------------------------------------------------------------------------------
LONG=(--batch 8 --seqlen 4096 --heads 16 --head-dim 128 --dtype bf16)
for name in bench bench-causal; do
    extra=()
    [[ $name == bench-causal ]] && extra=(--causal)
    echo "== 6. flashdoctor bench ${LONG[*]} ${extra[*]} ($(elapsed) s)"
    t0=$(now)
    timeout 150 "$PY" -m flashdoctor bench "${LONG[@]}" "${extra[@]}" -o "$OUT/$name.json" > "$OUT/$name.txt" 2>&1
    echo "${name//-/_}_rc $?" >> "$OUT/timings.txt"
    echo "${name//-/_}_wall_s $(since "$t0")" >> "$OUT/timings.txt"
    cat "$OUT/$name.txt"
done

# -- 7. the runtime (informative) ------------------------------------------------------------------
echo "== 7. the runtime's choice ($(elapsed) s)"
timeout 120 "$PY" - > "$OUT/runtime.txt" 2>&1 <<'EOF'
import logging, torch
logging.basicConfig(level=logging.INFO, format="log: %(message)s")
from flashdoctor import attention as A
for s in A.available_backends("cuda"):
    print(f"{s.name:12} usable={s.usable} dtypes={'/'.join(s.dtypes)} version={s.version} why_not={s.why_not}")
for dtype in (torch.bfloat16, torch.float16):
    q, k, v = (torch.randn(2, 1024, 16, 128, device="cuda", dtype=dtype) for _ in range(3))
    A.backend_usage(reset=True)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        A.flash_attention(q, k, v, causal=True)
        torch.cuda.synchronize()
    kernels = sorted({e.name[:90] for e in prof.events() if "flash" in e.name.lower() or "fmha" in e.name.lower() or "cudnn" in e.name.lower()})
    print(f"{dtype}: ran {A.backend_usage()} kernels {kernels[:3]}")
EOF
cat "$OUT/runtime.txt"

# -- 8. the checks ---------------------------------------------------------------------------------------
echo "== 8. checks ($(elapsed) s)"
"$PY" scripts/check_fa3_smoke.py "$OUT" | tee "$OUT/checks.txt"
exit "${PIPESTATUS[0]}"
