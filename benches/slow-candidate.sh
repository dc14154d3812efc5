#!/usr/bin/env bash
# Behind a slow candidate, at a fixed offered rate (open loop: clients keep
# arriving whatever the pace of the answers): how many requests are still
# compared, what clients see, and the memory shadowdiff holds. Each run is
# 100% sampling for 10 s at RATE req/s against examples/bench_backend (1 KB
# JSON), with the candidate answering at once or after DELAY_MS, and
# max_in_flight at 512 or IN_FLIGHT (the default is 4096). Rows are interleaved
# over ROUNDS.
#
# Usage: benches/slow-candidate.sh [rate, default 5000] [delay ms, default 500] [in flight, default 4096] [rounds, default 2]
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-5000}
delay=${2:-500}
in_flight=${3:-4096}
rounds=${4:-2}
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }
cargo build --release --quiet --locked --bin shadowdiff --example bench_backend --example open_loop
bin=$(cd "${CARGO_TARGET_DIR:-target}/release" && pwd)
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

"$bin/examples/bench_backend" 127.0.0.1:18501 & pids+=($!)
"$bin/examples/bench_backend" 127.0.0.1:18502 "$delay" & pids+=($!)
for p in 18501 18502; do
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.05; done
done

# One run: its label, the candidate's port, then serve's extra arguments.
run() {
  local label=$1 candidate=$2; shift 2
  rm -f "$work"/shadowdiff.db*
  (cd "$work" && SHADOWDIFF_LOG=error exec "$bin/shadowdiff" serve --primary http://127.0.0.1:18501 \
    --candidate "http://127.0.0.1:$candidate" --listen 127.0.0.1:18520 --report-listen 127.0.0.1:18620 \
    --sample-rate 1 "$@") &
  local pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/18520) 2>/dev/null && break; sleep 0.05; done
  local out
  out=$("$bin/examples/open_loop" http://127.0.0.1:18520/api/items "$rate" 10)
  # Slow calls still running finish (or time out) before the count is read.
  sleep $(( delay / 1000 + 6 ))
  local peak_kib totals
  peak_kib=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  totals=$(curl -s "http://127.0.0.1:18620/api/v1/summary?since=1h" | python3 -c '
import json, sys
t = json.load(sys.stdin)["totals"]
print("compared=%d dropped=%d" % (t["compared"], t["dropped"]))')
  echo "$label | $out | peak_rss_mb=$((peak_kib / 1024)) | $totals"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

echo "offered: $rate req/s for 10 s, 100% sampled; candidate delay ${delay} ms"
for round in $(seq "$rounds"); do
  run "fast candidate, max_in_flight default" 18501
  run "slow candidate, max_in_flight 512" 18502 --max-in-flight 512
  run "slow candidate, max_in_flight $in_flight" 18502 --max-in-flight "$in_flight"
done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
