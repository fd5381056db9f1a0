#!/usr/bin/env bash
# Reproduces the figures in docs/cache-aside.md: the large dataset, two instances on loopback
# with Redis, the load generator with the cache on and off, and the SVG chart.
#   bash examples/profile-service/scripts/bench.sh      (from the repository root)
# Environment: DATA (default target/profile-large.sqlite), DURATION (20 s), CONCURRENCY (64),
# ZIPF (1.0), WARMUP (60 s of the same load before the cache-on runs, not recorded), OUT (docs/cache-aside-results.tsv), SVG (docs/cache-aside.svg).
set -euo pipefail
cd "$(dirname "$0")/../../.."
DATA="${DATA:-target/profile-large.sqlite}"
DURATION="${DURATION:-20}"
WARMUP="${WARMUP:-60}"
CONCURRENCY="${CONCURRENCY:-64}"
ZIPF="${ZIPF:-1.0}"
OUT="${OUT:-docs/cache-aside-results.tsv}"
SVG="${SVG:-docs/cache-aside.svg}"

cargo build --release -p profile-service --bins
bin=target/release
[ -f "$DATA" ] || "$bin/profile-service" gen --db "$DATA"
bash .ci/service >/dev/null
: > "$OUT"

pids=()
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }
trap stop EXIT

start() { # start two instances with extra flags "$@"
  for port in 8081 8082; do
    "$bin/profile-service" serve --listen "127.0.0.1:$port" --db "$DATA" \
      --redis redis://127.0.0.1:6399 --instance "i$port" "$@" \
      > "target/profile-$port.out" 2> "target/profile-$port.log" &
    pids+=("$!")
  done
  for port in 8081 8082; do
    for _ in $(seq 1 100); do grep -q "listening on" "target/profile-$port.out" 2>/dev/null && break; sleep 0.1; done
  done
}

run() { # label, extra loadgen flags
  local label="$1"; shift
  "$bin/loadgen" --target 127.0.0.1:8081,127.0.0.1:8082 --users 100000 --zipf "$ZIPF" \
    --concurrency "$CONCURRENCY" --duration "$DURATION" --label "$label" --record "$OUT" "$@"
}

warm() { # fill the caches first: the figures are for a service that has been up a while
  "$bin/loadgen" --target 127.0.0.1:8081,127.0.0.1:8082 --users 100000 --zipf "$ZIPF" \
    --concurrency "$CONCURRENCY" --duration "$1" --label "warm-up (not recorded)"
}

start                       # the default TTL, 30 s
warm "$WARMUP"
run "cache on"
run "cache on, 1% writes" --writes-per-mille 10
run "cache on, 1 connection" --concurrency 1
stop
start --ttl-ms 300000       # TTL 5 min: more of the key space stays cached
warm $((WARMUP * 2))
run "cache on, TTL 5 min"
stop
start --no-cache
run "cache off"
run "cache off, 1 connection" --concurrency 1
stop
"$bin/loadgen" --chart "$OUT" --svg "$SVG"
cat "$OUT"
