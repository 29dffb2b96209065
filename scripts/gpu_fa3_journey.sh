#!/usr/bin/env bash
# Issue 16's journey as a user runs it, on the H100 (torch 2.11+cu130, nvcc 13.0, no network), in ONE
# command under 10 minutes:
#
#   bash scripts/gpu_fa3_journey.sh OUTDIR
#
# Carried in the ignored .carry/ folder: flash-attention-hopper-*.tar.gz (a flash-attention checkout with
# hopper/ and its CUTLASS headers) and deps/ (flashdoctor's own dependencies as wheels, used only if the
# machine's python3 lacks one). flashdoctor runs from this checkout (PYTHONPATH) with the machine's python3;
# each install goes into a FRESH venv that sees the machine's torch through a .pth file, so the three
# installs cannot see each other.
#
#  1. install --fa3 --from-source (sm90, head dim 128, bf16, every --no-* switch) into venv A: preflight,
#     4 units, build, install, import check, smoke — the result's steps with their times
#  2. install --fa3 into venv B with the same wheelhouse: no build, no download
#  3. install --fa3 into venv C from a loopback PEP 503 index laid out like download.pytorch.org, serving
#     that wheel with a #sha256= fragment: the digest is read from the page and checked
#  4. check --require fa3 (venv A) -> ready; bench at B8 N4096 H16 D128 bf16, plain and --causal
#  5. the runtime (scripts/gpu_runtime_fa3.py in venv A): FA3 for bf16/128 causal, a fallback for fp16
# The built wheel is copied to OUTDIR/fa3-wheel.tar for a later run (its name has a '+').
# FD_JOURNEY_CORE=1: steps 1, 4 and 5 only (the user's journey: install from source, check, bench, the runtime),
# for a session with little device time left.
set -uo pipefail
# shellcheck source=scripts/gpu_common.sh
source "$(dirname "$0")/gpu_common.sh" "$@"
FD=("$PY" -m flashdoctor)

step "machine"
{
    nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader 2>/dev/null
    "$PY" -c 'import sys, torch; print("python", sys.version.split()[0], sys.prefix, "torch", torch.__version__)'
    "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" --version | tail -1
    echo "cores $(nproc); flashdoctor $(git rev-parse --short HEAD 2>/dev/null)"
} 2>&1 | tee "$OUT/machine.txt"
use_carried_deps
SRC_TAR=$(find .carry -maxdepth 1 -name 'flash-attention-hopper-*.tar.gz' | sort | head -1)
mkdir -p "$WORK/src" && tar -xzf "$SRC_TAR" -C "$WORK/src"
SRC=$(find "$WORK/src" -maxdepth 2 -type d -name hopper | head -1)
SRC=${SRC%/hopper}
WH="$WORK/wheelhouse"
NO=(--no-split --no-paged-kv --no-append-kv --no-local --no-softcap --no-pack-gqa --no-fp8 --no-cluster)

step "1. install --fa3 --from-source into a fresh venv A"
fresh_venv "$WORK/A"
timed "install-from-source" "${FD[@]}" install --fa3 --from-source --source "$SRC" --head-dims 128 --dtypes bf16 \
    "${NO[@]}" --wheelhouse "$WH" --python "$WORK/A/bin/python" --yes --json \
    > "$OUT/install-A.json" 2> "$OUT/install-A.log"
echo "exit $?"; tail -n 25 "$OUT/install-A.log"
"$PY" - "$OUT/install-A.json" <<'PY' | tee "$OUT/install-A.txt"
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except ValueError as e:
    sys.exit(f"no JSON result: {e}")
print("status:", d.get("status"), "exit", d.get("exit_code"), "|", d.get("installed") or d.get("version"))
for s in d.get("steps", []):
    print(f"  {s['name']:<14} {'ok ' if s['ok'] else 'FAIL'} {s['seconds']:8.2f} s  {s['detail'][:150]}")
sm = d.get("smoke") or {}
print("smoke:", json.dumps(sm)[:1500])
PY
WHEEL=$(find "$WH" -name 'flash_attn_3-*.whl' | head -1)
echo "wheel: $WHEEL"
[[ -n "$WHEEL" ]] && tar -C "$(dirname "$WHEEL")" -cf "$OUT/fa3-wheel.tar" .

core() { [[ "${FD_JOURNEY_CORE:-0}" == 1 ]]; }
if ! core; then
step "2. install --fa3 into a fresh venv B from the same wheelhouse"
fresh_venv "$WORK/B"
timed "install-from-wheelhouse" "${FD[@]}" install --fa3 --wheelhouse "$WH" --python "$WORK/B/bin/python" --yes \
    --no-smoke > "$OUT/install-B.txt" 2>&1
echo "exit $?"; cat "$OUT/install-B.txt" | tail -n 20

step "3. install --fa3 into a fresh venv C from a loopback PEP 503 index (download.pytorch.org layout)"
if [[ -n "$WHEEL" ]]; then
    fresh_venv "$WORK/C"
    "$PY" - "$WHEEL" "$WORK" "$ROOT/wheels_index.json" <<'PY'
import hashlib, json, os, shutil, sys
wheel, work, bundled = sys.argv[1:]
name = os.path.basename(wheel)
pub = os.path.join(work, "index", "whl", "cu130")
os.makedirs(os.path.join(pub, "flash-attn-3"), exist_ok=True)
shutil.copy(wheel, pub)
digest = hashlib.sha256(open(wheel, "rb").read()).hexdigest()
with open(os.path.join(pub, "flash-attn-3", "index.html"), "w") as fh:
    fh.write(f'<!DOCTYPE html><html><body><a href="../{name}#sha256={digest}">{name}</a></body></html>\n')
doc = json.load(open(bundled))
fa3 = next(w for w in doc["wheels"] if w["source"] == "pytorch-index")
entry = {**fa3, "filename": name, "sha256": None, "cuda": "13.0", "evidence": "this run's own build, served by a loopback index",
         "url": "https://download.pytorch.org/whl/cu130/" + name.replace("+", "%2B")}
doc["wheels"] = [entry]
json.dump(doc, open(os.path.join(work, "index-fa3.json"), "w"), indent=1)
print("page digest", digest)
PY
    "$PY" -m http.server --bind 127.0.0.1 8631 --directory "$WORK/index" > "$WORK/http.log" 2>&1 &
    HTTP=$!
    sleep 1
    FLASHDOCTOR_CACHE_DIR="$WORK/cache-C" timed "install-from-index" "${FD[@]}" install --fa3 \
        --index "$WORK/index-fa3.json" --index-url http://127.0.0.1:8631/whl/cu130 \
        --python "$WORK/C/bin/python" --yes --no-smoke --json > "$OUT/install-C.json" 2> "$OUT/install-C.log"
    echo "exit $?"
    kill $HTTP 2>/dev/null
    "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print("status:", d.get("status"), "| sha256_check:", d.get("sha256_check"), "| verification:", json.dumps(d.get("verification")))' "$OUT/install-C.json" | tee "$OUT/install-C.txt"
    grep -c "flash-attn-3" "$WORK/http.log" | sed 's/^/index page and wheel requests: /'
fi
fi  # core

step "4. check --require fa3; bench plain and causal (venv A)"
timed "check-require-fa3" "${FD[@]}" check --python "$WORK/A/bin/python" --require fa3 > "$OUT/check.txt" 2>&1
echo "exit $?"; grep -E "fa3|FA3|flash" "$OUT/check.txt" | head -12
for c in "" "--causal"; do
    timed "bench$c" "${FD[@]}" bench --python "$WORK/A/bin/python" --batch 8 --seqlen 4096 --heads 16 --head-dim 128 \
        --dtype bf16 --repeats 5 $c > "$OUT/bench$c.txt" 2>&1
    echo "exit $?"; cat "$OUT/bench$c.txt"
done

step "5. the runtime in venv A"
timed "runtime" "$WORK/A/bin/python" scripts/gpu_runtime_fa3.py --json "$OUT/runtime.json" > "$OUT/runtime.txt" 2>&1
echo "exit $?"; tail -n 30 "$OUT/runtime.txt"
step "6. smoke with FA2 (minimal) and FA3 (minimal) together, empty CUDA kernel cache"
FA2_WHEEL=$(find .carry/fa2wheel -name 'flash_attn-*.whl' 2>/dev/null | head -1)
if ! core && [[ -n "$FA2_WHEEL" && $(elapsed) -lt 470 ]]; then
    "$WORK/A/bin/python" -m pip install -q --no-deps --no-index "$FA2_WHEEL" 2>&1 | tail -2
    CUDA_CACHE_PATH="$WORK/cuda-cache-empty" timed "smoke-fa2-fa3" "${FD[@]}" smoke --python "$WORK/A/bin/python" \
        > "$OUT/smoke-both.txt" 2>&1
    echo "exit $?"; tail -n 40 "$OUT/smoke-both.txt"
fi

step "7. the README's set-up commands, verbatim (offline: pip reads .carry/deps), and check vs collect_env"
if ! core && [[ $(elapsed) -lt 520 ]]; then
    export PIP_FIND_LINKS="$ROOT/.carry/deps"
    ( cd /tmp && rm -rf flashdoctor-clone ~/.flashdoctor && git clone -q "$ROOT" flashdoctor-clone 2>/dev/null \
        || cp -r "$ROOT" flashdoctor-clone; cd flashdoctor-clone && env -u PYTHONPATH bash -c \
        'python3 -m venv ~/.flashdoctor && ~/.flashdoctor/bin/pip install . > /tmp/readme-pip.log 2>&1; echo "pip exit $?"; tail -2 /tmp/readme-pip.log
         ~/.flashdoctor/bin/flashdoctor check; echo "check exit $?"' ) > "$OUT/readme.txt" 2>&1
    head -n 40 "$OUT/readme.txt"
    timed "bench_check" "$PY" scripts/bench_check.py --repeats 2 > "$OUT/bench_check.txt" 2>&1
    tail -n 8 "$OUT/bench_check.txt"
fi
step "done"; cat "$OUT/times.txt"
