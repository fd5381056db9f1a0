#!/usr/bin/env bash
# Per-get cost of linemap and its peers under cachegrind (examples/lookup_cost.rs).
#
# For every (size, distribution, map) it runs the example twice under
# `valgrind --tool=cachegrind --cache-sim=yes`, with N and 2N gets, and differences the totals:
# setup cancels, leaving the cost of N gets. It then subtracts the `loop-only` row (the driver
# loop, key computation and black_box without a lookup) to give the net cost of one get.
#
# Usage: bench-tools/lookup_cost.sh
# Environment (optional):
#   SIZES="1024 1048576"   DISTS="uniform"   N=200000
#   MAPS="linemap-pinned-handle linemap-map-level-get hashbrown mutex rwlock dashmap \
#         papaya-guard-reused papaya-pin-per-op scc"
#   CG_CACHE="--D1=32768,8,64 --LL=8388608,16,64"   (the research notes' simulated caches)
#   JOBS=1   cachegrind runs at once (each run is single-threaded; the counts do not depend on
#            JOBS, only the wall time does: a 4M-entry table takes ~40 s of CPU per run to build)
#   CARGO_TARGET_DIR (default: target/bench)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target/bench}"
SIZES="${SIZES:-1024 1048576}"
DISTS="${DISTS:-uniform}"
N="${N:-200000}"
MAPS="${MAPS:-linemap-pinned-handle linemap-map-level-get hashbrown mutex rwlock dashmap papaya-guard-reused papaya-pin-per-op scc}"
CG_CACHE="${CG_CACHE:---D1=32768,8,64 --LL=8388608,16,64}"
JOBS="${JOBS:-1}"

cargo build --release --example lookup_cost >&2
EXE="$CARGO_TARGET_DIR/release/examples/lookup_cost"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
export EXE CG_CACHE N TMP

# Prints "instr d1 ll" totals (data-side D1 and LL misses) of one cachegrind run.
totals() {
  local log
  log="$(mktemp "$TMP/log.XXXXXX")"
  # shellcheck disable=SC2086
  valgrind --tool=cachegrind --cache-sim=yes $CG_CACHE --cachegrind-out-file=/dev/null \
    "$EXE" "$@" >/dev/null 2>"$log"
  local i d1 ll
  i=$(grep -E '== I +refs:' "$log" | awk '{print $4}' | tr -d ,)
  d1=$(grep -E '== D1 +misses:' "$log" | awk '{print $4}' | tr -d ,)
  ll=$(grep -E '== LLd misses:' "$log" | awk '{print $4}' | tr -d ,)
  echo "$i $d1 $ll"
}

# Writes "instr d1 ll" per get for N gets (difference of the 2N and N runs) of one
# (map, size, dist) to $TMP/res.<size>.<dist>.<map>.
per_get() {
  local a b
  a=$(totals "$1" "$2" "$3" "$N")
  b=$(totals "$1" "$2" "$3" $((2 * N)))
  echo "$a $b" | awk -v n="$N" '{printf "%.3f %.4f %.4f\n", ($4-$1)/n, ($5-$2)/n, ($6-$3)/n}' \
    >"$TMP/res.$2.$3.$1"
}
export -f totals per_get

# Every run, largest tables first (they take longest), JOBS at a time.
# shellcheck disable=SC2086
for size in $(printf '%s\n' $SIZES | sort -rn); do
  for dist in $DISTS; do
    for map in loop-only $MAPS; do
      echo "$map $size $dist"
    done
  done
done | xargs -P "$JOBS" -L 1 bash -c 'per_get "$@"' _

echo "cachegrind $CG_CACHE, N=$N and 2N gets, differenced; net = minus loop-only"
echo
echo "| size | dist | map | instr/get (net) | D1 miss/get (net) | LL miss/get (net) | instr/get (raw) |"
echo "|---:|---|---|---:|---:|---:|---:|"
for size in $SIZES; do
  for dist in $DISTS; do
    read -r bi bd bl <"$TMP/res.$size.$dist.loop-only"
    echo "| $size | $dist | loop-only | 0 | 0 | 0 | $bi |"
    for map in $MAPS; do
      read -r i d l <"$TMP/res.$size.$dist.$map"
      awk -v s="$size" -v di="$dist" -v m="$map" -v i="$i" -v d="$d" -v l="$l" \
        -v bi="$bi" -v bd="$bd" -v bl="$bl" \
        'BEGIN {printf "| %s | %s | %s | %.1f | %.2f | %.2f | %.1f |\n", s, di, m, i-bi, d-bd, l-bl, i}'
    done
  done
done
