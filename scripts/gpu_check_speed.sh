#!/usr/bin/env bash
# Issue 17's speed goal on the GPU machine, in one short command (no network):
#
#   bash scripts/gpu_check_speed.sh OUTDIR [REPEATS]
#
# flashdoctor in its own venv (dependencies from .carry/deps, as the README installs it), then
# scripts/bench_check.py: `flashdoctor check` against `python -m torch.utils.collect_env`, side by side,
# REPEATS runs each (default 11); then where check's time goes (cProfile and -X importtime of one run).
# BASELINE_SRC=DIR (another checkout, e.g. `git archive` of an earlier commit unpacked under .carry/):
# installed into a venv of its own and timed in the same rounds (bench_check.py --baseline).
set -uo pipefail
[[ $# -ge 1 ]] || { echo "usage: $0 OUTDIR [REPEATS]" >&2; exit 2; }
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
REPEATS=${2:-11}
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
PY=$(command -v "${PYTHON:-python3}")
# shellcheck source=scripts/gpu_common.sh
source "$ROOT/scripts/gpu_common.sh"  # sets WORK (emptied), step, ... and PYTHONPATH=the checkout:
unset PYTHONPATH  # ... which would make every console script below import ./flashdoctor, not its venv's copy
"$PY" -m venv "$WORK/fd" && "$WORK/fd/bin/pip" install -q --no-index --find-links "$ROOT/.carry/deps" "$ROOT" \
    > "$WORK/fd-pip.log" 2>&1 || { echo "cannot install flashdoctor into $WORK/fd"; tail -5 "$WORK/fd-pip.log"; exit 1; }
BASELINE=
if [[ -n "${BASELINE_SRC:-}" ]]; then
    "$PY" -m venv "$WORK/base" && "$WORK/base/bin/pip" install -q --no-index --find-links "$ROOT/.carry/deps" \
        "$BASELINE_SRC" > "$WORK/base-pip.log" 2>&1 \
        || { echo "cannot install the baseline $BASELINE_SRC"; tail -5 "$WORK/base-pip.log"; exit 1; }
    BASELINE="$WORK/base/bin/flashdoctor"
fi
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$OUT/machine.txt" 2>&1
uptime >> "$OUT/machine.txt"
for venv in "$WORK/fd" ${BASELINE:+"$WORK/base"}; do  # each must run its own installed, compiled copy
    (cd "$WORK" && "$venv/bin/python" -c 'import sys, flashdoctor; print(sys.argv[1], "imports", flashdoctor.__file__)' \
        "$venv") | tee -a "$OUT/machine.txt"
    grep -q "^$venv imports $venv/lib/" "$OUT/machine.txt" || { echo "$venv does not import its own flashdoctor"; exit 1; }
done
step "bench_check: check vs collect_env, $REPEATS runs each"
"$PY" scripts/bench_check.py --repeats "$REPEATS" --flashdoctor "$WORK/fd/bin/flashdoctor" --python "$PY" ${BASELINE:+--baseline "$BASELINE"} \
    | tee "$OUT/bench_check.txt"
step "where check's time goes (one run each)"
cd "$WORK" || exit 2  # not the checkout: `-m flashdoctor` must find the installed package, not ./flashdoctor
"$WORK/fd/bin/python" -X importtime -m flashdoctor check --python "$PY" > /dev/null 2> "$OUT/importtime.txt"
"$WORK/fd/bin/python" -m cProfile -o "$WORK/check.prof" -m flashdoctor check --python "$PY" > /dev/null
"$WORK/fd/bin/python" -c "import pstats, sys; p = pstats.Stats(sys.argv[1], stream=sys.stdout); \
p.sort_stats('cumtime').print_stats(40); p.sort_stats('tottime').print_stats(25)" "$WORK/check.prof" > "$OUT/profile.txt"
head -12 "$OUT/profile.txt" | tail -4
step "done"
