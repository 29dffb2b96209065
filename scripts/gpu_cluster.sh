#!/usr/bin/env bash
# Cluster preflight on a multi-GPU machine (issue 10), one command, no network.
#
#   scripts/gpu_cluster.sh OUTDIR [WHEELHOUSE]
#
# Runs `torchrun --nproc-per-node <GPUs> -m flashdoctor check --distributed --smoke` from the
# repository root:
#   1. clean   — every rank checks its own GPU (and smoke-tests it, if flashdoctor.actions.smoke is present);
#   2. drift   — the same, with the last rank told a different target on purpose (another torch and a
#                flash-attn build that does not import): drift is reported, that rank fails, every
#                rank exits 1;
#   3. flash   — only with WHEELHOUSE: the wheels in it (e.g. flash-attn-4 and its dependencies,
#                brought along) are installed with --no-deps into OUTDIR/fa-site, put on PYTHONPATH
#                for all ranks, and run 1 is repeated with a FlashAttention build present.
# Each run writes OUTDIR/<run>/{report.txt,cluster.json,stderr.txt,rc/rank-N.rc}; OUTDIR/summary.txt
# (appended to on every call) has torchrun's exit code, every rank's exit code and the report's
# verdicts per run.
#
# Environment: RUNS (default "clean drift flash": which runs, e.g. RUNS=flash for a second call),
# NPROC (default: the number of GPUs; set it to run more ranks than GPUs, e.g. on a
# one-GPU machine), PYTHON (default python3), RUN_TIMEOUT seconds per run (default 400; a rank may
# take RUN_TIMEOUT - 40 s, above the smoke test's own 300 s limit).
# NVLink multicast stays off (the GPU machine's rules): NCCL_NVLS_ENABLE=0,
# TORCH_SYMM_MEM_DISABLE_MULTICAST=1, NVSHMEM_DISABLE_NVLS=1. flashdoctor itself uses gloo, not NCCL.
set -uo pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 OUTDIR [WHEELHOUSE]" >&2
    exit 2
fi
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
WHEELHOUSE=${2:-}
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
RUN_TIMEOUT=${RUN_TIMEOUT:-400}
RUNS=" ${RUNS:-clean drift flash} "

export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
unset RANK WORLD_SIZE LOCAL_RANK MASTER_ADDR MASTER_PORT FLASHDOCTOR_TARGET

GPUS=$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | wc -l)
NPROC=${NPROC:-$GPUS}
if [ "$NPROC" -lt 1 ]; then
    echo "no GPU found (nvidia-smi) and NPROC not set" >&2
    exit 2
fi
SMOKE=()
if PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PY" -c "import flashdoctor.actions.smoke" 2>/dev/null; then
    SMOKE=(--smoke)
fi

SUMMARY="$OUT/summary.txt"
{
    echo "gpu_cluster.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
    echo "GPUs: $GPUS, ranks: $NPROC, smoke: ${SMOKE[*]:-absent (flashdoctor.actions.smoke not in this tree)}"
    nvidia-smi --query-gpu=index,name,driver_version --format=csv,noheader 2>/dev/null
    "$PY" -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)" 2>/dev/null
} >>"$SUMMARY" 2>&1

run() {  # run NAME PYTHONPATH [extra flashdoctor args...]
    local name=$1 pypath=$2
    shift 2
    local dir="$OUT/$name"
    rm -rf "$dir" && mkdir -p "$dir"
    local t0=$SECONDS
    # the caller's PYTHONPATH stays after the run's own (flashdoctor's dependencies where python3 lacks them)
    PYTHONPATH="$pypath${PYTHONPATH:+:$PYTHONPATH}" timeout "$RUN_TIMEOUT" "$PY" -m torch.distributed.run --standalone --nproc-per-node "$NPROC" \
        scripts/rank_exit.py "$dir/rc" \
        "$PY" -m flashdoctor check --distributed "${SMOKE[@]}" --rank-timeout $((RUN_TIMEOUT - 40)) \
        --output "$dir/cluster.json" "$@" \
        >"$dir/report.txt" 2>"$dir/stderr.txt"
    local rc=$?
    {
        echo
        echo "== $name: torchrun exit $rc in $((SECONDS - t0)) s; args: $*"
        for f in "$dir"/rc/rank-*.rc; do [ -f "$f" ] && echo "   $(basename "$f" .rc) exit $(cat "$f")"; done
        "$PY" - "$dir/cluster.json" <<'EOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except (OSError, ValueError) as exc:
    print("   no cluster report:", exc)
    raise SystemExit(0)
print("   cluster exit_code", d["exit_code"], "summary", d["summary"], "transport", d["transport"])
for r in d["ranks"]:
    print("   rank %s %-10s %-40s %s smoke=%s" % (r["rank"], r["status"], r["gpu"], r["verdicts"], r["smoke_passed"]))
for x in d["drift"]:
    print("   drift %s (%s): majority %r, odd ranks %s" % (x["field"], x["status"], x["majority"], x["odd_ranks"]))
for f in d["findings"]:
    if f["status"] in ("fail", "warn"):
        print("   %s %s: %s" % (f["status"], f["code"], f["message"][:300]))
EOF
    } >>"$SUMMARY"
}

# 1. clean
[[ $RUNS == *" clean "* ]] && run clean "$ROOT"

# 2. drift on purpose: the last rank checks this machine's spec with another torch and a broken flash-attn.
if [[ $RUNS == *" drift "* ]]; then
    mkdir -p "$OUT/targets"
    PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m flashdoctor check --no-import-test --save-target "$OUT/targets/node.json" >/dev/null 2>&1
    "$PY" - "$OUT/targets/node.json" "$OUT/targets/drifted.json" <<'EOF'
import json, sys
spec = json.load(open(sys.argv[1]))
spec["torch"] = "2.10.0+cu128"
spec["torch_cuda"] = "12.8"
spec["installed"] = {"flash-attn": {"version": "2.8.3+cu12torch2.10cxx11abiTRUE", "import_ok": False,
                                    "import_error": "ImportError: undefined symbol: _ZN3c104cuda9SetDeviceEi"}}
json.dump(spec, open(sys.argv[2], "w"), indent=2)
EOF
    run drift "$ROOT" --target-for-rank "$((NPROC - 1))=$OUT/targets/drifted.json"
fi

# 3. with a FlashAttention build present on every rank (optional).
if [[ $RUNS == *" flash "* ]] && [ -n "$WHEELHOUSE" ]; then
    rm -rf "$OUT/fa-site"
    mapfile -t WHEELS < <(find "$WHEELHOUSE" -name '*.whl' | sort)  # also flashdoctor build's DIR/<fingerprint>/
    if [ ${#WHEELS[@]} -gt 0 ] &&
        "$PY" -m pip install --no-index --no-deps --target "$OUT/fa-site" "${WHEELS[@]}" >"$OUT/fa-install.txt" 2>&1; then
        run flash "$OUT/fa-site:$ROOT"
    else
        echo -e "\n== flash: no wheel in $WHEELHOUSE, or pip install failed (see fa-install.txt)" >>"$SUMMARY"
    fi
fi

cat "$SUMMARY"
