#!/usr/bin/env bash
# bench/run.sh - side-by-side throughput benchmark: specssl (C) vs a tuned
# PyTorch reference of the same models and training step (bench/README.md).
#
#   bench/run.sh [--threads "1 2"] [--workloads "cnn_pretrain convsc_pretrain cnn_embed convsc_embed"]
#                [--steps N] [--allocator jemalloc|glibc] [--estimate] [--no-install]
#                [--no-build] [--torch-only] [--c-only] [--rss] [--rss-seconds S]
#
# Installs what it needs (scripts/common.sh), builds specssl in Release, runs
# bench_sgemm, then every workload with each thread count: the C bench
# (build/bench/bench_pretrain, build/bench/bench_embed; skipped with "not built
# yet" when missing) and bench/torch_reference.py, each in a fresh process,
# everything under `env -u OPENBLAS_CORETYPE`. Prints one table. Raw outputs go
# to $SP_BUILD_DIR/bench_results/<date>/.
#
# --rss also runs bench/rss_check.sh (pretraining peak RSS on a 2,000 vs a
# 200,000-spectrum file, data.load=stream; each run stopped after S seconds,
# default 60) and adds its result under the table.
#
# --estimate (for a busy machine): both sides run with OMP_WAIT_POLICY=PASSIVE
# and the table adds B / (main-thread CPU time per step), an estimate of the
# quiet-machine throughput that other jobs on the cores barely disturb (needs
# main_cpu_ms= in the result lines).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../scripts/common.sh
source "$HERE/../scripts/common.sh"

THREADS="1 2"
WORKLOADS="cnn_pretrain convsc_pretrain cnn_embed convsc_embed"
STEPS=10
DO_INSTALL=1
DO_BUILD=1
DO_C=1
DO_TORCH=1
ALLOCATOR=jemalloc
ESTIMATE=0
DO_RSS=0
RSS_SECONDS=60
PY=/usr/bin/python3

usage() { sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --threads) THREADS=$2; shift 2 ;;
        --workloads) WORKLOADS=$2; shift 2 ;;
        --steps) STEPS=$2; shift 2 ;;
        --allocator) ALLOCATOR=$2; shift 2 ;;
        --estimate) ESTIMATE=1; shift ;;
        --rss) DO_RSS=1; shift ;;
        --rss-seconds) RSS_SECONDS=$2; DO_RSS=1; shift 2 ;;
        --no-install) DO_INSTALL=0; shift ;;
        --no-build) DO_BUILD=0; shift ;;
        --torch-only) DO_C=0; shift ;;
        --c-only) DO_TORCH=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench/run.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
for w in $WORKLOADS; do
    case "$w" in
        cnn_pretrain|convsc_pretrain|cnn_embed|convsc_embed) ;;
        *) echo "bench/run.sh: unknown workload '$w'" >&2; exit 2 ;;
    esac
done
case "$ALLOCATOR" in
    jemalloc|glibc) ;;
    *) echo "bench/run.sh: --allocator takes jemalloc or glibc, got '$ALLOCATOR'" >&2; exit 2 ;;
esac
for t in $THREADS; do
    case "$t" in
        ''|*[!0-9]*) echo "bench/run.sh: --threads takes positive integers, got '$t'" >&2; exit 2 ;;
    esac
done

# The shell of this machine exports OPENBLAS_CORETYPE=Haswell, which forces
# AVX2 kernels on an AVX-512 CPU (about half the sgemm speed): every benchmark
# runs with it unset. The Python process also gets a malloc that keeps freed
# memory: with glibc's defaults every large tensor is a fresh mmap and each
# 4 KiB page costs a page fault (~15-20 us on this VM), which slows the PyTorch
# step by an order of magnitude. glibc tunables (no mmap, no trim) remove most
# faults; jemalloc with decay off (the default here, --allocator) removes the
# rest (glibc's heap still fragments and grows by thousands of pages per step).
RUN=(env -u OPENBLAS_CORETYPE)
[ "$ESTIMATE" = 1 ] && RUN+=(OMP_WAIT_POLICY=PASSIVE)
TORCH_ENV=(GLIBC_TUNABLES="glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=1099511627776")
JEMALLOC=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2

if [ "$DO_INSTALL" = 1 ]; then
    extra=""
    [ "$ALLOCATOR" = jemalloc ] && extra=libjemalloc2
    [ "$DO_RSS" = 1 ] && extra="$extra time"
    sp_install_deps python3-torch python3-numpy python3-scipy $extra
fi
if [ "$ALLOCATOR" = jemalloc ]; then
    if [ -f "$JEMALLOC" ]; then
        TORCH_ENV+=(LD_PRELOAD="$JEMALLOC" MALLOC_CONF="dirty_decay_ms:-1,muzzy_decay_ms:-1")
    else
        echo "== $JEMALLOC not found (apt-get install libjemalloc2): PyTorch runs with glibc malloc + tunables"
        ALLOCATOR=glibc
    fi
fi
if [ "$DO_BUILD" = 1 ]; then
    echo "== building specssl (Release) in $SP_BUILD_DIR"
    sp_build >/dev/null
fi

OUT="$SP_BUILD_DIR/bench_results/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT"

# find_exe NAME: the bench executable in the build tree, or nothing.
find_exe() {
    local d
    for d in "$SP_BUILD_DIR/bench" "$SP_BUILD_DIR"; do
        if [ -x "$d/$1" ]; then echo "$d/$1"; return 0; fi
    done
    return 0
}

# kv KEY LINE: the value of KEY=... in a key=value line ("" if absent).
kv() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n1; }

# est LINE: B / main-thread CPU seconds per step = spectra_s * step_ms / main_cpu_ms.
est() {
    local s m c
    s=$(kv spectra_s "$1"); m=$(kv step_ms "$1"); c=$(kv main_cpu_ms "$1")
    if [ -n "$s" ] && [ -n "$m" ] && [ -n "$c" ]; then
        awk -v s="$s" -v m="$m" -v c="$c" 'BEGIN { if (c > 0) printf "%.1f", s * m / c; else print "-" }'
    else
        echo "-"
    fi
}

# legacy_line FILE WORKLOAD THREADS: a key=value line from the table printed by
# an early bench_embed ("bench_cnn eval L=1024 B=256 threads=1 median 191.59 ms
# 1336 spectra/s 31.4 GFLOP/s (min ...; cpu 5904 spectra per cpu-s; ...)").
legacy_line() {
    local name mode
    case "$2" in
        cnn_*) name=bench_cnn ;;
        *) name=convsc ;;
    esac
    case "$2" in
        *_embed) mode=eval ;;
        *) mode=none ;;
    esac
    awk -v name="$name" -v mode="$mode" -v th="threads=$3" -v w="$2" -v t="$3" '
        $1 == name && $2 == mode && $0 ~ th "[ ]" {
            B = ""; med = ""; sps = ""; gf = ""; cps = ""
            for (i = 1; i <= NF; i++) {
                if ($i ~ /^B=/) B = substr($i, 3)
                if ($i == "median") med = $(i + 1)
                if ($i == "spectra/s") sps = $(i - 1)
                if ($i == "GFLOP/s") gf = $(i - 1)
                if ($i == "cpu") cps = $(i + 1)
            }
            line = sprintf("workload=%s threads=%s spectra_s=%s step_ms=%s gflops=%s", w, t, sps, med, gf)
            if (cps > 0) line = line sprintf(" cpu_ms=%.1f", 1000 * B / cps)
            print line; found = 1; exit
        }
        END { if (!found) print "no result line" }' "$1"
}

# ratio A B: A/B with 2 decimals, or "-".
ratio() {
    if [ -n "$1" ] && [ -n "$2" ]; then
        awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'
    else
        echo "-"
    fi
}

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')," \
     "load average $(cut -d' ' -f1-3 /proc/loadavg)"
if awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v n="$(nproc)" 'BEGIN { exit !(l > 0.5 * n) }'; then
    echo "== WARNING: the machine is busy (load $(cut -d' ' -f1 /proc/loadavg) on $(nproc) CPUs): wall-clock" \
         "throughputs will be low and noisy; compare the CPU-time columns"
fi
echo "== OPENBLAS_CORETYPE in the calling shell: ${OPENBLAS_CORETYPE:-(unset)}; benchmarks run with it unset"

SGEMM=$(find_exe bench_sgemm)
CORE="?"
if [ -n "$SGEMM" ]; then
    echo "== $SGEMM (cblas_sgemm, OpenBLAS single-threaded; 2 threads = 2 independent sgemms)"
    "${RUN[@]}" "$SGEMM" | tee "$OUT/sgemm.txt"
    CORE=$(kv openblas_core "$(head -n1 "$OUT/sgemm.txt")")
else
    echo "== bench_sgemm: not built"
fi

declare -A C_LINE T_LINE
for w in $WORKLOADS; do
    kind=${w%_*}
    what=${w#*_}
    exe=$(find_exe "bench_$what")
    for t in $THREADS; do
        if [ "$DO_C" = 1 ]; then
            if [ -z "$exe" ]; then
                echo "== specssl $w threads=$t: bench_$what not built yet"
                C_LINE[$w.$t]="not built yet"
            elif ! grep -aq -- '--workload' "$exe"; then
                # An early bench_embed without the --workload/--threads contract:
                # it runs every configuration itself; parse its table once.
                legacy=$OUT/c_${what}_legacy.txt
                if [ ! -f "$legacy" ]; then
                    echo "== specssl bench_$what: no --workload option, running it once as '$exe $STEPS'"
                    "${RUN[@]}" "$exe" "$STEPS" >"$legacy" 2>&1 || true
                    sed 's/^/   /' "$legacy"
                fi
                C_LINE[$w.$t]=$(legacy_line "$legacy" "$w" "$t")
                echo "== specssl $w threads=$t (from bench_$what's table): ${C_LINE[$w.$t]}"
            else
                echo "== specssl $w threads=$t: $exe --workload $kind --threads $t"
                if "${RUN[@]}" "$exe" --workload "$kind" --threads "$t" >"$OUT/c_$w.$t.txt" 2>&1; then
                    C_LINE[$w.$t]=$(grep '^workload=' "$OUT/c_$w.$t.txt" | tail -n1 || true)
                    [ -n "${C_LINE[$w.$t]}" ] || C_LINE[$w.$t]="no result line"
                else
                    C_LINE[$w.$t]="failed (see $OUT/c_$w.$t.txt)"
                fi
                grep -v '^workload=' "$OUT/c_$w.$t.txt" | sed 's/^/   /' | head -n 20 || true
                echo "   ${C_LINE[$w.$t]}"
            fi
        fi
        if [ "$DO_TORCH" = 1 ]; then
            echo "== PyTorch $w threads=$t"
            if "${RUN[@]}" "${TORCH_ENV[@]}" "$PY" "$HERE/torch_reference.py" \
                    --workload "$w" --threads "$t" --steps "$STEPS" >"$OUT/torch_$w.$t.txt" 2>&1; then
                T_LINE[$w.$t]=$(grep '^workload=' "$OUT/torch_$w.$t.txt" | tail -n1 || true)
            else
                T_LINE[$w.$t]="failed (see $OUT/torch_$w.$t.txt)"
            fi
            sed 's/^/   /' "$OUT/torch_$w.$t.txt" | grep -v '^   workload=' || true
            echo "   ${T_LINE[$w.$t]}"
        fi
    done
done

RSS_LINE=""
if [ "$DO_RSS" = 1 ]; then
    echo "== bench/rss_check.sh --seconds $RSS_SECONDS --threads ${THREADS##* }"
    "$HERE/rss_check.sh" --seconds "$RSS_SECONDS" --threads "${THREADS##* }" | tee "$OUT/rss_check.txt" || true
    RSS_LINE=$(grep '^rss_check ' "$OUT/rss_check.txt" || echo "rss_check failed (see $OUT/rss_check.txt)")
fi

# targets: issue 10's targets at the largest thread count of the run
# (wall and, with --estimate, the CPU-time estimate), and the 2-thread scaling.
targets() {
    local tmax tmin w c p cs ps ce pe goal cs1 ce1
    tmax=${THREADS##* }
    tmin=${THREADS%% *}
    echo
    echo "Targets (threads=$tmax; ratio = specssl / PyTorch; scaling = specssl $tmax threads / $tmin thread):"
    echo
    echo "| workload | target | specssl spectra/s wall / est. | wall ratio | est. ratio | specssl scaling wall | specssl scaling est. |"
    echo "|---|---|---|---|---|---|---|"
    for w in $WORKLOADS; do
        case "$w" in
            convsc_pretrain) goal=">= 3x torch" ;;
            cnn_embed) goal=">= 1.5x torch, >= 10000 spectra/s" ;;
            *) goal=">= 1.5x torch" ;;
        esac
        c=${C_LINE[$w.$tmax]:-}; p=${T_LINE[$w.$tmax]:-}
        cs=$(kv spectra_s "$c"); ps=$(kv spectra_s "$p")
        ce=$(est "$c"); pe=$(est "$p")
        [ "$ce" = - ] && ce=""
        [ "$pe" = - ] && pe=""
        cs1=$(kv spectra_s "${C_LINE[$w.$tmin]:-}"); ce1=$(est "${C_LINE[$w.$tmin]:-}")
        [ "$ce1" = - ] && ce1=""
        if [ "$tmax" = "$tmin" ]; then cs1=""; ce1=""; fi
        echo "| $w | $goal | ${cs:--} / ${ce:--} | $(ratio "$cs" "$ps") | $(ratio "$ce" "$pe") | $(ratio "$cs" "$cs1") | $(ratio "$ce" "$ce1") |"
    done
    echo
    echo "Scaling target: >= 1.7 at 2 threads. Embedding target for cnn_embed: >= 10000 spectra/s."
}

{
    echo
    echo "## specssl vs PyTorch ($(date -u +%Y-%m-%dT%H:%MZ), OpenBLAS core $CORE, OPENBLAS_CORETYPE unset, PyTorch malloc $ALLOCATOR)"
    echo
    hdr="| workload | threads | specssl spectra/s | PyTorch spectra/s | ratio C/torch | peak RSS MB (C / torch) | C GFLOP/s | CPU ms/step (C / torch) | CPU-time ratio |"
    sep="|---|---|---|---|---|---|---|---|---|"
    if [ "$ESTIMATE" = 1 ]; then
        hdr="$hdr est. spectra/s (C / torch) | est. ratio |"
        sep="$sep---|---|"
    fi
    echo "$hdr"
    echo "$sep"
    for w in $WORKLOADS; do
        for t in $THREADS; do
            c=${C_LINE[$w.$t]:-skipped}
            p=${T_LINE[$w.$t]:-skipped}
            cs=$(kv spectra_s "$c"); ps=$(kv spectra_s "$p")
            cr=$(kv peak_rss_mb "$c"); pr=$(kv peak_rss_mb "$p")
            cg=$(kv gflops "$c")
            cc=$(kv cpu_ms "$c"); pc=$(kv cpu_ms "$p")
            row="| $w | $t | ${cs:-$c} | ${ps:-$p} | $(ratio "$cs" "$ps") | ${cr:--} / ${pr:--} | ${cg:--} | ${cc:--} / ${pc:--} | $(ratio "$pc" "$cc") |"
            if [ "$ESTIMATE" = 1 ]; then
                ce=$(est "$c"); pe=$(est "$p")
                [ "$ce" = - ] && ce=""
                [ "$pe" = - ] && pe=""
                row="$row ${ce:--} / ${pe:--} | $(ratio "$ce" "$pe") |"
            fi
            echo "$row"
        done
    done
    targets
    if [ -n "$RSS_LINE" ]; then
        echo
        echo "Pretraining peak RSS vs data set size (bench/rss_check.sh: configs/bench_cnn.cfg, batch 256,"
        echo "data.load=stream, 2,000 vs 200,000 spectra of length 1024; target < 1 GB and < 10 % apart):"
        echo
        echo "    $RSS_LINE"
    fi
    if [ -f "$OUT/sgemm.txt" ]; then
        echo
        echo "cblas_sgemm GFLOP/s on this machine (bench_sgemm, core $CORE; wall / CPU-time based):"
        echo
        grep '^sgemm ' "$OUT/sgemm.txt" | awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
            printf "- %s (%sx%sx%s), %s thread(s): %s / %s\n", v["shape"], v["m"], v["n"], v["k"],
                   v["threads"], v["gflops"], v["gflops_cpu"] }'
    fi
    echo
    echo "ratio = specssl spectra/s / PyTorch spectra/s (wall clock, median step). CPU-time ratio ="
    echo "PyTorch CPU ms per step / specssl CPU ms per step (process CPU time, all threads): it stays"
    echo "meaningful when other jobs share the cores, which inflate wall times."
    if [ "$ESTIMATE" = 1 ]; then
        echo "est. = B / main-thread CPU time per step with OMP_WAIT_POLICY=PASSIVE (idle workers sleep):"
        echo "approximately the quiet-machine throughput (slightly optimistic: load imbalance is not counted)."
    fi
    echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (on $(nproc) CPUs)."
    echo "Raw outputs: $OUT"
} | tee "$OUT/table.md"
