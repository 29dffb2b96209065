#!/usr/bin/env bash
# On the GPU machine: flashdoctor's FA2 build for Jetson Thor (sm_110), an arch FA2's setup.py has no switch
# for (docs/build.md "Targeting"). No GPU there runs sm_110 code, so this proves the compile, not a run: the
# plan, the build for LIMIT seconds (the full one takes longer), the -gencode flags in the build.ninja that
# setup.py and torch's cpp_extension wrote, and the architectures of the objects compiled by then.
#   bash scripts/gpu_build_sm110.sh OUT [LIMIT]      # the sdist carried in .carry/ (PyPI's file)
# FD_WHEELHOUSE: where the wheel is kept (default: a scratch folder).
set -u
OUT=${1:?usage: gpu_build_sm110.sh OUTDIR [LIMIT_SECONDS]}
LIMIT=${2:-270}
PY=${PYTHON:-python3}
SDIST=${FD_SDIST:-.carry/flash_attn-2.8.3.post2.tar.gz}
SHA256=d0f9f0b08a986cdeadbffcf5ec8b3a8f514366c68ad1853d3ab061bc83cc340b
WORK=$(mktemp -d)
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" FLASHDOCTOR_CACHE_DIR="$WORK/cache" PYTHONUNBUFFERED=1
echo "$SHA256  $SDIST" | sha256sum -c - || { echo "the carried sdist is not PyPI's file" >&2; exit 2; }
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
"${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" --version | tail -1

ARGS=(build --fa2 --source "$SDIST" --arch 110 --head-dims 128 --dtypes bf16 --max-jobs 8
      --work-dir "$WORK/work" --wheelhouse "${FD_WHEELHOUSE:-$WORK/wheelhouse}" --log "$OUT/build.log")
"$PY" -m flashdoctor "${ARGS[@]}" --dry-run > "$OUT/plan.txt" 2>&1
echo "dry-run exit $?"
grep -E "FLASH_ATTN_CUDA_ARCHS|TORCH_CUDA_ARCH_LIST|sm_110" "$OUT/plan.txt"

S0=$(date +%s)
timeout --signal=INT --kill-after=15 "$LIMIT" "$PY" -m flashdoctor "${ARGS[@]}" > "$OUT/outcome.txt" 2>&1
echo "build exit $? after $(( $(date +%s) - S0 )) s (124: stopped at the limit)"
tail -5 "$OUT/outcome.txt"

NINJA=$(find "$WORK/work" -name build.ninja | head -1)
echo "== -gencode flags in ${NINJA#"$WORK"/}"
grep -o -- "-gencode[= ][^ ]*" "$NINJA" | sort | uniq -c | tee "$OUT/gencode.txt"
echo "== compiled objects and the architectures they carry"
find "$WORK/work" -name "*.o" | sort | while read -r o; do
    echo "${o##*/}: $("${CUDA_HOME:-/usr/local/cuda}/bin/cuobjdump" --list-elf "$o" 2>&1 | grep -o "sm_[0-9a-z]*" | sort -u | tr '\n' ' ')"
done | tee "$OUT/objects.txt"
