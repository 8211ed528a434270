#!/usr/bin/env bash
# bench/rss_check.sh - pretraining peak RSS vs data set size (issue 10's memory
# target: under 1 GB, and a 200,000-spectrum file within 10 % of a 2,000-spectrum one).
#
#   bench/rss_check.sh [--small N] [--big N] [--seconds S] [--threads N] [--config CFG]
#                      [--data-dir DIR] [--specssl EXE]
#
# Writes two `specssl synth ramp --length 1024` files (N spectra each; cached in
# --data-dir, default $SP_BUILD_DIR/bench_data) and runs `specssl pretrain` on each
# (configs/bench_cnn.cfg with its default heads, batch 256, data.load = "stream",
# 1 epoch, no kNN) under /usr/bin/time -v, stopping it with SIGTERM after S seconds
# (default 60; pretrain finishes its step and writes a checkpoint). Prints the peak
# RSS of both runs, the steps each reached and the relative difference, and a final
# line `rss_check small_mb=... big_mb=... diff_pct=... ok=yes|no`.
# Exit status 0 when both targets hold, 1 otherwise, 2 on usage errors.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SP_BUILD_DIR=${SP_BUILD_DIR:-$ROOT/build}

SMALL=2000
BIG=200000
SECONDS_MAX=60
THREADS=2
CFG=$ROOT/configs/bench_cnn.cfg
DATA_DIR=$SP_BUILD_DIR/bench_data
EXE=$SP_BUILD_DIR/specssl

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --small) SMALL=$2; shift 2 ;;
        --big) BIG=$2; shift 2 ;;
        --seconds) SECONDS_MAX=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        --config) CFG=$2; shift 2 ;;
        --data-dir) DATA_DIR=$2; shift 2 ;;
        --specssl) EXE=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench/rss_check.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
for v in "$SMALL" "$BIG" "$SECONDS_MAX" "$THREADS"; do
    case "$v" in
        ''|*[!0-9]*|0) echo "bench/rss_check.sh: --small/--big/--seconds/--threads take positive integers, got '$v'" >&2; exit 2 ;;
    esac
done
[ -x "$EXE" ] || { echo "bench/rss_check.sh: $EXE not built (cmake --build build)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "bench/rss_check.sh: /usr/bin/time missing (apt-get install time)" >&2; exit 2; }
mkdir -p "$DATA_DIR"

# make_data N: a ramp file with N spectra of length 1024 (2 ramps of N/2 frames).
make_data() {
    local n=$1 f="$DATA_DIR/ramp1024_$1.h5"
    if [ ! -s "$f" ]; then
        local half=$((n / 2))
        echo "== writing $f ($n spectra, length 1024)" >&2
        "$EXE" synth ramp --length 1024 --ramps 2 --frames-slow "$half" --frames-fast $((n - half)) \
            --out "$f.tmp" -q >&2
        mv "$f.tmp" "$f"
    fi
    echo "$f"
}

# run_one N: peak RSS in KiB and the last step reached, "KIB STEP".
run_one() {
    local f run log
    f=$(make_data "$1")
    run=$(mktemp -d "${TMPDIR:-/tmp}/rss_check.XXXXXX")
    log="$run.log"
    env -u OPENBLAS_CORETYPE /usr/bin/time -v timeout -s TERM "$SECONDS_MAX" \
        "$EXE" pretrain -c "$CFG" --data "$f" --out "$run/run" --threads "$THREADS" \
        --set 'data.load="stream"' --set train.epochs=1 --set train.batch_size=256 \
        --set train.knn_every=0 --set train.log_every=1 >"$log" 2>&1 || true
    local kib step
    kib=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log")
    step=$(grep -o 'step=[0-9]*' "$log" | tail -n1 | cut -d= -f2)
    grep -E '^(pretrain:|model FLOPs)|error' "$log" | sed 's/^/   /' >&2 || true
    rm -rf "$run" "$log"
    echo "${kib:-0} ${step:-0}"
}

echo "== pretraining peak RSS vs data set size: $CFG, batch 256, data.load=stream, $THREADS threads," \
     "stopped after ${SECONDS_MAX}s or 1 epoch"
read -r ks ss < <(run_one "$SMALL")
echo "   $SMALL spectra: peak RSS $((ks / 1024)) MB after $ss steps"
read -r kb sb < <(run_one "$BIG")
echo "   $BIG spectra: peak RSS $((kb / 1024)) MB after $sb steps"
awk -v s="$ks" -v b="$kb" 'BEGIN {
    d = s > 0 ? 100 * (b - s) / s : 1e9; if (d < 0) d = -d
    ok = (s > 0 && d < 10 && s < 1048576 && b < 1048576) ? "yes" : "no"
    printf "rss_check small_mb=%.1f big_mb=%.1f diff_pct=%.1f ok=%s\n", s / 1024, b / 1024, d, ok
    exit ok == "yes" ? 0 : 1 }'
