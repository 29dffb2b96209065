# Shared by the GPU-machine journey scripts (gpu_fa3_journey.sh, gpu_fa3_proof.sh, gpu_wrong_arch_install.sh);
# sourced with the script's arguments, not run:  source "$(dirname "$0")/gpu_common.sh" "$@"
# Takes OUTDIR (the first argument), moves to the checkout's root and sets OUT, ROOT, PY ($PYTHON or python3),
# WORK ($FD_WORK or /tmp/fd-<script>, emptied), PYTHONPATH (the checkout), T0 and the helpers below, and the
# environment every step runs in (no network: pip reads carried wheels only).
[[ $# -ge 1 ]] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD
PY=${PYTHON:-python3}
WORK=${FD_WORK:-/tmp/fd-$(basename "$0" .sh)}
rm -rf "$WORK" && mkdir -p "$WORK"
export PYTHONPATH="$ROOT"
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
