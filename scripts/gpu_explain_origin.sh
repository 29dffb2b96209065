#!/usr/bin/env bash
# On the GPU machine: explain decides from the GPUs it probes (NVML, torch) whether a log comes from this
# machine, and the build preflight judges an sm_110 build with the real nvcc. Both are decisions tested on the
# development machine with --target; this runs them with nothing described, as a user would. No network:
#
#   bash scripts/gpu_explain_origin.sh OUTDIR
#
# Carried in .carry/: PyPI's flash_attn-2.8.3.post2.tar.gz (the dry-run build reads its setup.py) and deps/.
# Each log is flashdoctor's or torch's own wording with this machine's GPU name put in (the failure itself
# cannot happen here without a wheel built for another GPU; gpu_wrong_arch_install.sh makes one):
#  1. "no code for GPU 0 <this GPU> (sm_XY)" with this machine's torch: the log is this machine's
#  2. the same with an RTX 5090 (sm_120): another machine's; the fix names sm_120, not this GPU's arch
#  3. torch's "<GPU> with CUDA capability sm_XY is not compatible" naming this GPU but another torch: another
#     machine's (the torch differs), and the GPU alone does not make it this one
#  4. build --fa2 --arch 110 --dry-run: the preflight finds nvcc 13.0 new enough for sm_110 (no build-arch-nvcc)
set -uo pipefail
# shellcheck source=scripts/gpu_common.sh
source "$(dirname "$0")/gpu_common.sh" "$@"
use_carried_deps

read -r GPU_NAME SM TORCH <<<"$("$PY" -c 'import torch
p = torch.cuda.get_device_properties(0)
print(p.name.replace(" ", "_"), f"{p.major}{p.minor}", torch.__version__)')"
GPU_NAME=${GPU_NAME//_/ }
echo "GPU 0: $GPU_NAME (sm_$SM), torch $TORCH"

explain() {  # explain NAME TEXT: flashdoctor explain --json on TEXT, kept in OUT/NAME.{log,json}
    printf '%s\n' "$2" > "$OUT/$1.log"
    timed "explain-$1" "$PY" -m flashdoctor explain "$OUT/$1.log" --json > "$OUT/$1.json" 2> "$OUT/$1.err"
    echo "explain $1: exit $?"
}

step "1. this machine's GPU and torch"
explain here "flashdoctor smoke: torch $TORCH
RuntimeError: FlashAttention's kernel failed: the binary has no code for GPU 0 $GPU_NAME (sm_$SM)"

step "2. an RTX 5090's log"
explain rtx5090 "flashdoctor smoke: torch $TORCH
RuntimeError: FlashAttention's kernel failed: the binary has no code for GPU 0 NVIDIA GeForce RTX 5090 (sm_120)"

step "3. this GPU, another torch"
explain other-torch "/usr/lib/python3.10/site-packages/torch/cuda/__init__.py:230: UserWarning:
$GPU_NAME with CUDA capability sm_$SM is not compatible with the current PyTorch installation.
The current PyTorch install supports CUDA capabilities sm_50 sm_60 sm_70 sm_75.
torch 1.13.1+cu117"

step "4. the sm_110 build's preflight"
timed "build-dry-run-110" "$PY" -m flashdoctor build --fa2 --arch 110 --head-dims 128 --dtypes bf16 \
    --source "$ROOT/.carry/flash_attn-2.8.3.post2.tar.gz" --dry-run --json > "$OUT/build-110.json" 2> "$OUT/build-110.err"
echo "build --dry-run: exit $?"

step "verdicts"
"$PY" - "$OUT" "$SM" <<'PY'
import json, pathlib, sys
out, sm = pathlib.Path(sys.argv[1]), sys.argv[2]
bad = 0
def verdict(name, ok, what):
    global bad
    bad += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {what}")
def load(name):
    return json.loads((out / f"{name}.json").read_text())
for name, use in (("here", True), ("rtx5090", False), ("other-torch", False)):
    d = load(name)
    code = d["diagnoses"][0]["code"] if d.get("diagnoses") else None
    verdict(name, code == "gpu-unsupported" and d["machine"]["use_machine"] is use, f"{code}; {d['machine']}")
fix = load("rtx5090")["diagnoses"][0]["fix"]
verdict("rtx5090 fix", "ARCHS=120" in fix and f"sm_{sm}" not in fix and f"ARCHS={sm}" not in fix, fix)
b = load("build-110")
failed = [f["code"] for f in b["findings"] if f["status"] == "fail"]
verdict("build --arch 110 preflight", b["exit_code"] == 0 and not failed and b["plan"] is not None,
        f"status {b['status']}, exit {b['exit_code']}, failed findings {failed}")
sys.exit(1 if bad else 0)
PY
rc=$?
echo "total $(elapsed) s"
exit $rc
