#!/usr/bin/env bash
# Load benchmark of the proxy path: requests/s and latency of direct calls to
# a backend, and of the same calls through shadowdiff at 0% and 100% sampling.
# Needs wrk (apt-get install wrk). Everything runs on 127.0.0.1.
# Usage: benches/proxy-load.sh [duration, default 15s] [connections, default 32]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-15s}
connections=${2:-32}
command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install wrk" >&2; exit 1; }

cargo build --release --quiet --bin shadowdiff --example bench_backend
bin=target/release
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT

"$bin/examples/bench_backend" 127.0.0.1:18001 & pids+=($!)
"$bin/examples/bench_backend" 127.0.0.1:18002 & pids+=($!)
common=(--primary http://127.0.0.1:18001 --candidate http://127.0.0.1:18002)
SHADOWDIFF_LOG=warn "$bin/shadowdiff" serve "${common[@]}" --listen 127.0.0.1:18080 --sample-rate 0 & pids+=($!)
SHADOWDIFF_LOG=warn "$bin/shadowdiff" serve "${common[@]}" --listen 127.0.0.1:18081 --sample-rate 1 & pids+=($!)

for port in 18001 18002 18080 18081; do
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
done

run() {
  local name=$1 url=$2
  wrk -t1 -c10 -d2s "$url" >/dev/null   # warm connections and caches
  echo "== $name: 1 connection, one request at a time (the latency a request pays)"
  wrk -t1 -c1 -d"$duration" --latency "$url" | grep -E "Requests/sec|^ +(50|99)%|Socket errors|Non-2xx"
  echo "== $name: $connections connections (throughput at saturation)"
  wrk -t2 -c"$connections" -d"$duration" --latency "$url" | grep -E "Requests/sec|^ +(50|99)%|Socket errors|Non-2xx"
}
run "direct to backend" http://127.0.0.1:18001/api/items
run "through shadowdiff, 0% sampled" http://127.0.0.1:18080/api/items
run "through shadowdiff, 100% sampled" http://127.0.0.1:18081/api/items
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
