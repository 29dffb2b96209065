# Shared by the GPU-machine journey scripts (scripts/gpu_fa3_journey.sh, scripts/gpu_fa3_proof.sh); sourced,
# not run. Expects OUT (the output folder) and WORK (a scratch folder) set; sets T0 and the helpers below,
# and the environment every step runs in (no network: pip reads carried wheels only).
export PYTHONUNBUFFERED=1 PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1
export FLASHDOCTOR_CACHE_DIR="$WORK/cache"
T0=$(date +%s)
elapsed() { echo $(( $(date +%s) - T0 )); }
step() { echo; echo "== $* ($(elapsed) s)"; }
timed() {  # timed NAME CMD...: runs CMD, records its wall time and exit code in OUT/times.txt
    local name=$1; shift
    local s; s=$(date +%s%N)
    "$@"; local rc=$?
    printf '%-28s %7.2f s  exit %d\n' "$name" "$(( ($(date +%s%N) - s) / 1000000 ))e-3" "$rc" >> "$OUT/times.txt"
    return $rc
}
: > "$OUT/times.txt"
