#!/usr/bin/env bash
# The smoke test and the bench on the GPU machine, in one command, no network, a few minutes:
#
#   bash scripts/gpu_smoke_bench.sh OUTDIR          # on the GPU machine (python3 = the target interpreter)
#   bash scripts/gpu_smoke_bench.sh OUTDIR --cpu    # here: the same steps in the hidden CPU mode, toy shapes
#
# It runs, from the repository root with PYTHONPATH=. (flashdoctor need not be installed):
#   1. flashdoctor smoke --json                      -> OUTDIR/smoke.json (its wall time against the 20 s goal)
#   2. flashdoctor smoke -v                          -> OUTDIR/smoke.txt (the tables; a second timing)
#   3. flashdoctor bench B8 N4096 H16 D128 bf16      -> OUTDIR/bench-long.{json,txt,png}
#   4. the same, --causal                            -> OUTDIR/bench-long-causal.{json,txt,png}
#   5. flashdoctor bench at the seed shape           -> OUTDIR/bench-seed.{json,txt,png}
#   6. scripts/compare_bench.py OUTDIR               -> OUTDIR/summary.txt: measured vs the H100 reference
#                                                       figures (facts.md), ratio and ±10% flag
# Every step has a time limit (worst case about 9 minutes; about 2 minutes expected on an H100).
# FA4 JIT-compiles each kernel configuration on first use (tens of seconds each, in every new process):
# with FA4 installed, raise the limits, e.g. SMOKE_TIMEOUT=280 BENCH_TIMEOUT=120 SMOKE_TWICE=0.
# Exit status: the worst of the flashdoctor commands' (0 ok, 1 a failure found, 2 usage, 3 a bug).
set -uo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: $0 OUTDIR [--cpu]" >&2
    exit 2
fi
OUT=$1
MODE=${2:-gpu}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
PY=${PYTHON:-python3}
SMOKE_TIMEOUT=${SMOKE_TIMEOUT:-150}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-90}
SMOKE_TWICE=${SMOKE_TWICE:-1}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if ! "$PY" -c "import click, rich, packaging" 2>/dev/null; then
    echo "$0: $PY lacks flashdoctor's dependencies (click, rich, packaging)" >&2
    exit 2
fi

if [[ "$MODE" == "--cpu" ]]; then
    DEV=(--device cpu)
    LONG=(--batch 1 --seqlen 256 --heads 2 --head-dim 128)
    SEED=(--batch 2 --seqlen 49 --heads 4 --head-dim 64)
else
    DEV=()
    LONG=(--batch 8 --seqlen 4096 --heads 16 --head-dim 128)
    SEED=(--batch 32 --seqlen 196 --heads 16 --head-dim 64)
fi
PLOT=0
"$PY" -c "import matplotlib" 2>/dev/null && PLOT=1

worst=0
note_rc() {
    local rc=$1 what=$2
    echo "[$what: exit $rc]"
    if (( rc > worst )); then worst=$rc; fi
}
now() { date +%s%N; }
since() {  # seconds since a now() stamp, e.g. 13.204 (bash arithmetic: no bc needed)
    local ms=$(( ($(now) - $1) / 1000000 ))
    printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
}
: > "$OUT/timings.txt"

{
    echo "date: $(date -Is)"
    echo "host: $(hostname)"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=index,name,driver_version,memory.total,clocks.max.sm --format=csv
    echo "python: $("$PY" -c 'import sys; print(sys.version.split()[0], sys.executable)')"
    echo "flashdoctor: $(git rev-parse --short HEAD 2>/dev/null) $(git status --porcelain 2>/dev/null | wc -l) uncommitted"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

echo "== 1. flashdoctor smoke --json"
t0=$(now)
"$PY" -m flashdoctor smoke --json --timeout "$SMOKE_TIMEOUT" "${DEV[@]}" > "$OUT/smoke.json" 2> "$OUT/smoke.stderr"
rc=$?
wall=$(since "$t0")
echo "smoke_json_wall_s $wall" >> "$OUT/timings.txt"
printf 'smoke --json: %.1f s wall (goal <= 20 s on the H100, cold torch import included)\n' "$wall"
note_rc $rc "smoke --json"

if [[ "$SMOKE_TWICE" != 0 ]]; then
    echo "== 2. flashdoctor smoke -v (tables)"
    t0=$(now)
    "$PY" -m flashdoctor smoke -v --timeout "$SMOKE_TIMEOUT" "${DEV[@]}" 2>&1 | tee "$OUT/smoke.txt"
    rc=${PIPESTATUS[0]}
    wall=$(since "$t0")
    echo "smoke_human_wall_s $wall" >> "$OUT/timings.txt"
    printf 'smoke (second run): %.1f s wall\n' "$wall"
    note_rc $rc "smoke"
fi

bench() {
    local name=$1
    shift
    echo "== flashdoctor bench $* ($name)"
    local plot=()
    (( PLOT )) && plot=(--plot "$OUT/$name.png")
    local t0 wall rc
    t0=$(now)
    "$PY" -m flashdoctor bench "$@" --timeout "$BENCH_TIMEOUT" "${DEV[@]}" "${plot[@]}" -o "$OUT/$name.json" 2>&1 | tee "$OUT/$name.txt"
    rc=${PIPESTATUS[0]}
    wall=$(since "$t0")
    echo "${name//-/_}_wall_s $wall" >> "$OUT/timings.txt"
    note_rc $rc "bench $name"
}
bench bench-long "${LONG[@]}" --dtype bf16
bench bench-long-causal "${LONG[@]}" --dtype bf16 --causal
bench bench-seed "${SEED[@]}" --dtype bf16

echo "== 6. measured vs the reference figures"
"$PY" scripts/compare_bench.py "$OUT" | tee "$OUT/summary.txt"
echo "results in $OUT: $(cd "$OUT" && ls | tr '\n' ' ')"
exit $worst
