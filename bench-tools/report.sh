#!/usr/bin/env bash
# One command for the whole benchmark suite on this machine:
#
#   bench-tools/report.sh [TRACE_DIR]          (TRACE_DIR defaults to ../shared/traces)
#
# It runs, in order,
#   map       cargo bench --bench map          (conc-map-bench mixes + criterion micro groups)
#   cache     cargo bench --bench cache        (zipf get_or_insert_with tables + criterion hit/miss)
#   locality  bench-tools/lookup_cost.sh       (cachegrind: instructions, D1 and LL misses per get,
#                                               100K and 4M entries, uniform and zipf(0.99), and
#                                               1024 entries, a table that fits in L1)
#   replay    cachesim's `replay` example      (hit ratios of linemap::Cache, quick_cache, moka at 1
#                                               and 2 threads next to exact LRU and OPT, every trace
#                                               in TRACE_DIR; skipped with a note if it is absent)
# keeps every raw output in target/benchreport/<arch>/, and then renders
# docs/benchmarks/<arch>.md with the machine's facts, the tables and SVG plots
# (docs/benchmarks/<arch>-*.svg) through bench-tools/report.py (Python 3 standard library only).
#
# Environment (all optional):
#   LINEMAP_REPORT_QUICK=1     smoke test in a few minutes: short criterion measurement, small
#                              mixes and zipf runs, locality at 100K only with fewer gets, trace
#                              prefixes. The report says in its title that it is a quick run.
#   LINEMAP_REPORT_STAGES="map cache locality replay"   the stages to run
#   LINEMAP_REPORT_REUSE=1     keep a stage's existing raw output instead of re-running it
#                              (re-render only: LINEMAP_REPORT_STAGES= bench-tools/report.sh)
#   LINEMAP_BENCH_THREADS      thread counts (default: 1 through `nproc`)
#   LINEMAP_REPORT_JOBS=1      cachegrind runs at once (bench-tools/lookup_cost.sh's JOBS)
#   LINEMAP_REPORT_LARGE_MAPS  maps measured on the 4M table (default: every map but the two
#                              pin-per-call variants, which read the same table as their
#                              handle-reusing twins; each 4M run builds the table under cachegrind)
#   LINEMAP_REPORT_OUT=docs/benchmarks   where the report and plots go
#   LINEMAP_REPORT_RAW=target/benchreport/<arch>   where the raw outputs go
#   Every LINEMAP_BENCH_* knob of the benches (docs/benchmarks.md) is passed through.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

ARCH="$(uname -m)"
case "$ARCH" in arm64) ARCH=aarch64 ;; esac
TRACES="${1:-../shared/traces}"
QUICK="${LINEMAP_REPORT_QUICK:-0}"
STAGES="${LINEMAP_REPORT_STAGES-map cache locality replay}"
REUSE="${LINEMAP_REPORT_REUSE:-0}"
OUT="${LINEMAP_REPORT_OUT:-docs/benchmarks}"
RAW="${LINEMAP_REPORT_RAW:-target/benchreport/$ARCH}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/bench}"
NPROC="$( (command -v nproc >/dev/null && nproc) || sysctl -n hw.ncpu)"
if [ -z "${LINEMAP_BENCH_THREADS:-}" ]; then
  LINEMAP_BENCH_THREADS="$(seq -s, 1 "$NPROC")"
fi
export LINEMAP_BENCH_THREADS
mkdir -p "$RAW" "$OUT"
if [ -n "$STAGES" ] && [ -r /proc/loadavg ]; then cut -d" " -f1-3 /proc/loadavg >"$RAW/loadavg-start.txt"; fi

# The command line as the report prints it.
CMD="bench-tools/report.sh${1:+ $1}"
[ "$QUICK" = 1 ] && CMD="LINEMAP_REPORT_QUICK=1 $CMD"

CRIT_ARGS=(--noplot)
if [ "$QUICK" = 1 ]; then
  CRIT_ARGS+=(--warm-up-time 0.2 --measurement-time 0.5)
  export LINEMAP_BENCH_SCALE="${LINEMAP_BENCH_SCALE:-18}" LINEMAP_BENCH_REPS="${LINEMAP_BENCH_REPS:-1}"
  export LINEMAP_BENCH_GROW="${LINEMAP_BENCH_GROW:-16}"
  export LINEMAP_BENCH_KEYS="${LINEMAP_BENCH_KEYS:-100000}" LINEMAP_BENCH_OPS="${LINEMAP_BENCH_OPS:-100000}"
fi

wants() { [[ " $STAGES " == *" $1 "* ]]; }
# Runs a stage unless its output is kept; stdout goes to $RAW/$1.txt, stderr to $RAW/$1.err.
stage() {
  local name="$1"
  shift
  if [ "$REUSE" = 1 ] && [ -s "$RAW/$name.txt" ]; then
    echo "== $name: keeping $RAW/$name.txt"
    return
  fi
  echo "== $name: $*"
  local start=$SECONDS
  "$@" >"$RAW/$name.txt" 2>"$RAW/$name.err" || {
    echo "$name FAILED, see $RAW/$name.err" >&2
    tail -n 20 "$RAW/$name.err" >&2
    exit 1
  }
  echo "$((SECONDS - start))" >"$RAW/$name.seconds"
  echo "   $((SECONDS - start)) s"
}

# Criterion writes target/criterion/<group>/<peer>/<n>T/new/{benchmark,estimates}.json; each
# bench gets a directory of its own so that old groups never leak into the report.
crit() {
  local bench="$1"
  rm -rf "$RAW/criterion-$bench"
  CRITERION_HOME="$PWD/$RAW/criterion-$bench" cargo bench --bench "$bench" -- "${CRIT_ARGS[@]}"
}

if wants map; then stage map crit map; fi
if wants cache; then stage cache crit cache; fi

if wants locality; then
  ALL_MAPS="linemap-pinned-handle linemap-map-level-get hashbrown mutex rwlock dashmap papaya-guard-reused papaya-pin-per-op scc"
  LARGE_MAPS="${LINEMAP_REPORT_LARGE_MAPS:-linemap-pinned-handle hashbrown mutex rwlock dashmap papaya-guard-reused scc}"
  if ! command -v valgrind >/dev/null; then
    echo "== locality: SKIPPED (valgrind not installed)"
    echo "valgrind is not installed on this machine" >"$RAW/locality-skipped.txt"
  elif [ "$QUICK" = 1 ]; then
    # (A 4M-entry result kept with LINEMAP_REPORT_REUSE=1 is still rendered.)
    [ "$REUSE" = 1 ] || rm -f "$RAW/locality-4194304.txt"
    stage locality-1024 env SIZES=1024 DISTS="uniform zipf" N=20000 MAPS="$ALL_MAPS" \
      JOBS="${LINEMAP_REPORT_JOBS:-1}" bash bench-tools/lookup_cost.sh
    stage locality-100000 env SIZES=100000 DISTS="uniform zipf" N=20000 MAPS="$ALL_MAPS" \
      JOBS="${LINEMAP_REPORT_JOBS:-1}" bash bench-tools/lookup_cost.sh
  else
    # 1024 entries: the hot set fits in L1.
    stage locality-1024 env SIZES=1024 DISTS="uniform zipf" MAPS="$ALL_MAPS" \
      JOBS="${LINEMAP_REPORT_JOBS:-1}" bash bench-tools/lookup_cost.sh
    stage locality-100000 env SIZES=100000 DISTS="uniform zipf" MAPS="$ALL_MAPS" \
      JOBS="${LINEMAP_REPORT_JOBS:-1}" bash bench-tools/lookup_cost.sh
    stage locality-4194304 env SIZES=4194304 DISTS="uniform zipf" MAPS="$LARGE_MAPS" \
      JOBS="${LINEMAP_REPORT_JOBS:-1}" bash bench-tools/lookup_cost.sh
  fi
fi

if wants replay; then
  have_traces=0
  for f in "$TRACES"/*; do
    case "$(basename "$f")" in README* | *LICENSE* | "*") ;; *) have_traces=1 ;; esac
  done
  if [ "$have_traces" = 1 ]; then
    REPLAY=(cargo run --release -p linemap-cachesim --example replay -- "$TRACES")
    [ "$QUICK" = 1 ] && REPLAY+=(--prefix 200000)
    rm -f "$RAW/replay-skipped.txt"
    stage replay "${REPLAY[@]}"
  else
    echo "== replay: SKIPPED (no traces in $TRACES)"
    echo "no trace directory at $TRACES (pass one: bench-tools/report.sh DIR)" >"$RAW/replay-skipped.txt"
    rm -f "$RAW/replay.txt"
  fi
fi

echo "== rendering $OUT/$ARCH.md"
python3 bench-tools/report.py --raw "$RAW" --out "$OUT" --arch "$ARCH" --quick "$QUICK" \
  --command "$CMD" --threads "$LINEMAP_BENCH_THREADS" --traces "$TRACES"
echo "wrote $OUT/$ARCH.md"
