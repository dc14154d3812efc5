#!/usr/bin/env bash
# Replay throughput: comparisons per second when `shadowdiff replay` sends a
# JSON Lines file to two fast local backends (1 KB JSON each) and stores the
# results in SQLite, and also in PostgreSQL when SHADOWDIFF_BENCH_POSTGRES_URL
# names a database of its own (tables are created there). Everything runs on
# 127.0.0.1.
# Usage: benches/replay-throughput.sh [requests, default 20000]
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-20000}

cargo build --release --quiet --bin shadowdiff --example bench_backend
bin=target/release
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

"$bin/examples/bench_backend" 127.0.0.1:18011 & pids+=($!)
"$bin/examples/bench_backend" 127.0.0.1:18012 & pids+=($!)
for port in 18011 18012; do
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
done

# Requests over 100 endpoints' worth of ids, so naming and grouping do real work.
python3 - "$requests" > "$work/requests.jsonl" <<'PY'
import json, sys
for i in range(int(sys.argv[1])):
    print(json.dumps({"method": "GET", "path": f"/api/items/{i % 5000}?page={i % 7}",
                      "headers": {"accept": "application/json"}}))
PY

databases=("sqlite://$work/bench.db")
[ -n "${SHADOWDIFF_BENCH_POSTGRES_URL:-}" ] && databases+=("$SHADOWDIFF_BENCH_POSTGRES_URL")
for database in "${databases[@]}"; do
  for concurrency in 1 16 64; do
    start=$(date +%s.%N)
    SHADOWDIFF_LOG=warn "$bin/shadowdiff" replay --input "$work/requests.jsonl" \
      --primary http://127.0.0.1:18011 --candidate http://127.0.0.1:18012 \
      --database-url "$database" --concurrency "$concurrency" --format json > "$work/gate.json" 2>/dev/null || true
    end=$(date +%s.%N)
    compared=$(python3 -c "import json; print(json.load(open('$work/gate.json'))['total']['comparisons'])")
    python3 -c "
s, e, n = $start, $end, $compared
print(f'${database%%:*} concurrency $concurrency: {n} comparisons in {e - s:.2f} s = {n / (e - s):,.0f}/s')"
  done
done
echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
