#!/usr/bin/env bash
# On the GPU machine: a failed install leaves the environment as it was, with a real kernel failure and
# nothing mocked (tests/actions/install/test_install_e2e.py mocks the smoke test; this runs it). One command,
# under 10 minutes, no network:
#
#   bash scripts/gpu_wrong_arch_install.sh OUTDIR
#
# Carried in .carry/: PyPI's flash_attn-2.8.3.post2.tar.gz and deps/ (flashdoctor's dependencies and einops
# as wheels). Steps:
#  1. flashdoctor in its own venv, installed with pip from this checkout (as the README has it)
#  2. scripts/gpu_build_sm110.sh: an FA2 wheel for Jetson Thor (sm_110 SASS only); it imports on the H100,
#     and none of its kernels can run there
#  3. a fresh venv V that sees the machine's torch, with einops; a plan (install --plan) naming a copy of that
#     wheel outside the wheelhouse (no build.json beside it: judged by its name only, which fits) by a
#     file:// URL and its sha256, as a colleague's wheel from a Thor sent by itself would be; and plan-recorded
#     naming the wheelhouse's own file, whose build.json says sm_110
#  4. install --plan --yes into V, human output then --json: expected rolled-back (exit 5), the smoke test
#     named; then plan-recorded: expected refused before the install (exit 1, "by its build.json"); V's files
#     and `pip list` compared with those before after each
#  5. check --python V (fa2 not installed) and explain on the install's output
set -uo pipefail
# shellcheck source=scripts/gpu_common.sh
source "$(dirname "$0")/gpu_common.sh" "$@"
export PIP_FIND_LINKS="$ROOT/.carry/deps"

step "1. flashdoctor in its own venv"
"$PY" -m venv "$WORK/fd" && "$WORK/fd/bin/pip" install -q "$ROOT" > "$WORK/fd-pip.log" 2>&1 \
    || { echo "cannot install flashdoctor"; tail -5 "$WORK/fd-pip.log"; exit 2; }
FD=("$WORK/fd/bin/flashdoctor")

step "2. the sm_110 wheel"
FD_WHEELHOUSE="$WORK/wheelhouse" PYTHON="$PY" timed "build-sm110" bash scripts/gpu_build_sm110.sh "$OUT/build" 420 \
    > "$OUT/build.txt" 2>&1
tail -n 12 "$OUT/build.txt"
WHEEL=$(find "$WORK/wheelhouse" -name 'flash_attn-*.whl' | head -1)
[[ -n "$WHEEL" ]] || { echo "no wheel was built"; exit 1; }

step "3. venv V and the plan"
fresh_venv "$WORK/V"
V="$WORK/V/bin/python"
"$V" -m pip install -q einops 2>&1 | tail -2
mkdir -p "$WORK/loose" && cp "$WHEEL" "$WORK/loose/"
write_plan() {  # write_plan WHEEL PLAN
"$PY" - "$1" "$2" <<'PY'
import hashlib, json, pathlib, sys
from packaging.utils import parse_wheel_filename
w = pathlib.Path(sys.argv[1])
plan = {"schema": "flashdoctor/plan/1", "action": "wheel", "variant": "fa2",
        "wheel": {"filename": w.name, "url": w.resolve().as_uri(), "source": "plan",
                  "sha256": hashlib.sha256(w.read_bytes()).hexdigest(),
                  "version": str(parse_wheel_filename(w.name)[1])},
        "reasons": ["a plan from a Jetson Thor: FA2 built for sm_110 only"]}
pathlib.Path(sys.argv[2]).write_text(json.dumps(plan, indent=1))
print(sys.argv[2], plan["wheel"]["url"], plan["wheel"]["sha256"][:16])
PY
}
write_plan "$WORK/loose/$(basename "$WHEEL")" "$WORK/plan.json"
write_plan "$WHEEL" "$WORK/plan-recorded.json"
state() {  # every file of V with its digest, and pip's view; the install lock stays by design (docs/wheelhouse.md)
    (cd "$WORK/V" && find . -type f ! -name '*.pyc' ! -path ./.flashdoctor-install.lock -print0 | sort -z \
        | xargs -0 sha256sum) > "$1.files"
    "$V" -m pip list --format=freeze > "$1.pip" 2>/dev/null
}
state "$WORK/before"

step "4. install --plan into V"
timed "install-human" "${FD[@]}" install --plan "$WORK/plan.json" --python "$V" --yes > "$OUT/install.txt" 2>&1
echo "exit $?"; cat "$OUT/install.txt" | tail -n 30
state "$WORK/after-human"
timed "install-json" "${FD[@]}" install --plan "$WORK/plan.json" --python "$V" --yes --json > "$OUT/install.json" 2> "$OUT/install-json.err"
echo "exit $?"
"$PY" - "$OUT/install.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print("status:", d.get("status"), "exit", d.get("exit_code"), "|", d.get("message"))
for s in d.get("steps", []):
    print(f"  {s['name']:<14} {'ok ' if s['ok'] else 'FAIL'} {s['seconds']:8.2f} s  {s['detail'][:200]}")
PY
state "$WORK/after-json"
timed "install-recorded" "${FD[@]}" install --plan "$WORK/plan-recorded.json" --python "$V" --yes > "$OUT/install-recorded.txt" 2>&1
echo "exit $? (expected 1: refused by its build.json)"; cat "$OUT/install-recorded.txt"
state "$WORK/after-recorded"
for s in after-human after-json after-recorded; do
    if cmp -s "$WORK/before.files" "$WORK/$s.files" && cmp -s "$WORK/before.pip" "$WORK/$s.pip"; then
        echo "$s: V's $(wc -l < "$WORK/before.files") files and pip list are as before"
    else
        echo "$s: V CHANGED"; diff "$WORK/before.files" "$WORK/$s.files" | head; diff "$WORK/before.pip" "$WORK/$s.pip"
    fi
done | tee "$OUT/unchanged.txt"

step "5. check and explain"
timed "check" "${FD[@]}" check --python "$V" > "$OUT/check.txt" 2>&1
echo "exit $?"; grep -iE "fa2|flash" "$OUT/check.txt" | head -12
timed "explain" "${FD[@]}" explain "$OUT/install.txt" > "$OUT/explain.txt" 2>&1
echo "exit $?"; head -n 20 "$OUT/explain.txt"
cat "$OUT/times.txt"
