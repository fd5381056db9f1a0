#!/usr/bin/env bash
# Starts the demo: Redis on 127.0.0.1:6399 (via .ci/service, which installs Debian's
# redis-server if missing), the large dataset (generated once, about 30 s), and two instances
# on 127.0.0.1:8081 and 127.0.0.1:8082 sharing it. Ctrl-C stops both instances.
#   bash examples/profile-service/scripts/up.sh [extra serve flags, e.g. --no-cache]
set -euo pipefail
cd "$(dirname "$0")/../../.."
DATA="${DATA:-target/profile-large.sqlite}"
cargo build --release -p profile-service --bins
bash .ci/service
[ -f "$DATA" ] || target/release/profile-service gen --db "$DATA"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT INT TERM
for port in 8081 8082; do
  target/release/profile-service serve --listen "127.0.0.1:$port" --db "$DATA" \
    --redis redis://127.0.0.1:6399 --instance "i$port" "$@" &
  pids+=("$!")
done
wait
