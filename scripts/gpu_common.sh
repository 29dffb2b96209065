# Shared by the GPU-machine journey scripts (scripts/gpu_fa3_journey.sh, scripts/gpu_fa3_proof.sh); sourced,
# not run. Expects OUT (the output folder), WORK (a scratch folder), ROOT (the checkout) and PY set; sets T0 and the helpers below,
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
use_carried_deps() {  # flashdoctor's dependencies the machine's python lacks, from .carry/deps onto PYTHONPATH
    local missing
    missing=$(PYTHONPATH="$ROOT" "$PY" -c 'import importlib.util
from flashdoctor.errors import DEPENDENCY_MODULES as D
print(" ".join(d for m, d in D.items() if importlib.util.find_spec(m) is None))')
    if [[ -n "$missing" ]]; then
        echo "flashdoctor's dependencies missing here: $missing -> from .carry/deps into $WORK/deps"
        # shellcheck disable=SC2086
        "$PY" -m pip install -q --no-index --find-links "$ROOT/.carry/deps" --target "$WORK/deps" $missing 2>&1 | tail -2
        export PYTHONPATH="$ROOT:$WORK/deps"
    fi
}
fresh_venv() {  # fresh_venv DIR: a new venv that sees the machine's torch (and nothing installed into another venv)
    local site
    site=$("$PY" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))')
    "$PY" -m venv "$1" && echo "$site" > "$("$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_machine_torch.pth"
}
