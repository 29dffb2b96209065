#!/usr/bin/env bash
# The short GPU proof of issue 16 (and issue 17's set-up commands) with wheels already built, in ONE
# command of about 3 minutes on a freshly started H100 (no network):
#
#   bash scripts/gpu_fa3_proof.sh OUTDIR
#
# Carried in .carry/: fa3wheel/ and fa2wheel/ (a minimal FA3 and FA2 build, each with its build.json, as
# `flashdoctor build` stores them: e.g. from scripts/gpu_fa3_journey.sh and scripts/gpu_build_fa2.sh) and
# deps/ (flashdoctor's dependencies as wheels, for the README's pip install without a network).
#  1. FIRST, while the machine is fresh: smoke with the FA2 and FA3 minimal builds installed together
#  2. install --fa3 --from-source (the same profile) into a fresh venv: the covering build in the wheelhouse
#     is used (no new build), installed, import-checked, smoke-tested
#  3. check --require fa3; bench B8 N4096 H16 D128 bf16 plain and causal; the runtime's dispatch
#  4. the README's two set-up commands verbatim, and check vs collect_env
set -uo pipefail
# shellcheck source=scripts/gpu_common.sh
source "$(dirname "$0")/gpu_common.sh" "$@"
# flashdoctor in its own venv with its declared dependencies (from .carry/deps: no network), as a user has it
"$PY" -m venv "$WORK/fd" && "$WORK/fd/bin/pip" install -q --no-index --find-links "$ROOT/.carry/deps" "$ROOT" \
    > "$WORK/fd-pip.log" 2>&1 || { echo "cannot install flashdoctor into $WORK/fd"; tail -5 "$WORK/fd-pip.log"; }
FD=("$WORK/fd/bin/flashdoctor")
uptime > "$OUT/uptime.txt"
FA2=$(find .carry/fa2wheel -name 'flash_attn-*.whl' | head -1)
FA3=$(find .carry/fa3wheel -name 'flash_attn_3-*.whl' | head -1)
WH="$WORK/wheelhouse"
ID=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["fingerprint"]["id"])' .carry/fa3wheel/build.json)
mkdir -p "$WH/$ID" && cp .carry/fa3wheel/* "$WH/$ID/"

step "1. smoke with FA2 and FA3 minimal builds together, on the freshly started machine"
fresh_venv "$WORK/S"
# shellcheck disable=SC2046  # the builds carried (FA2's may be absent: then FA3 alone)
"$WORK/S/bin/python" -m pip install -q --no-deps --no-index $(printf '%s ' "$FA2" "$FA3") 2>&1 | tail -2
timed "smoke-fa2-fa3" "${FD[@]}" smoke --python "$WORK/S/bin/python" > "$OUT/smoke-both.txt" 2>&1
echo "exit $?"; cat "$OUT/smoke-both.txt"

step "2. install --fa3 --from-source into a fresh venv A (the covering build is in the wheelhouse)"
fresh_venv "$WORK/A"
timed "install-from-source" "${FD[@]}" install --fa3 --from-source --head-dims 128 --dtypes bf16 \
    --no-split --no-paged-kv --no-append-kv --no-local --no-softcap --no-pack-gqa --no-fp8 --no-cluster \
    --wheelhouse "$WH" --python "$WORK/A/bin/python" --yes > "$OUT/install-A.txt" 2>&1
echo "exit $?"; cat "$OUT/install-A.txt"

step "3. check --require fa3, bench, runtime (venv A)"
timed "check-require-fa3" "${FD[@]}" check --python "$WORK/A/bin/python" --require fa3 > "$OUT/check.txt" 2>&1
echo "exit $?"; cat "$OUT/check.txt"
for c in "" "--causal"; do
    timed "bench$c" "${FD[@]}" bench --python "$WORK/A/bin/python" --batch 8 --seqlen 4096 --heads 16 --head-dim 128 \
        --dtype bf16 --repeats 5 $c > "$OUT/bench$c.txt" 2>&1
    echo "exit $?"; cat "$OUT/bench$c.txt"
done
timed "runtime" "$WORK/A/bin/python" scripts/gpu_runtime_fa3.py --json "$OUT/runtime.json" > "$OUT/runtime.txt" 2>&1
echo "exit $?"; cat "$OUT/runtime.txt"

step "4. the README's set-up commands, verbatim, in a fresh clone (pip reads .carry/deps: no network)"
if [[ $(elapsed) -lt 420 ]]; then
    export PIP_FIND_LINKS="$ROOT/.carry/deps"
    rm -rf /tmp/flashdoctor-clone ~/.flashdoctor
    # a copy of this tree as it is (a clone would take the repository's HEAD, which need not be this tree)
    cp -r "$ROOT" /tmp/flashdoctor-clone && rm -rf /tmp/flashdoctor-clone/.carry /tmp/flashdoctor-clone/.venv
    echo "python3 on PATH: $(command -v python3); VIRTUAL_ENV=${VIRTUAL_ENV:-}" > "$OUT/readme.txt"
    ( cd /tmp/flashdoctor-clone && env -u PYTHONPATH bash -c \
        'python3 -m venv ~/.flashdoctor && ~/.flashdoctor/bin/pip install . > /tmp/readme-pip.log 2>&1; echo "[pip install exit $?]"; tail -1 /tmp/readme-pip.log
         ~/.flashdoctor/bin/flashdoctor check; echo "[check exit $?]"' ) >> "$OUT/readme.txt" 2>&1
    cat "$OUT/readme.txt"
    if [[ -z ${SKIP_BENCH_CHECK:-} ]]; then  # scripts/gpu_check_speed.sh measures it on its own
        timed "bench_check" "$PY" scripts/bench_check.py --repeats 9 --flashdoctor "$WORK/fd/bin/flashdoctor" > "$OUT/bench_check.txt" 2>&1
        cat "$OUT/bench_check.txt"
    fi
fi
step "done"; cat "$OUT/times.txt"
