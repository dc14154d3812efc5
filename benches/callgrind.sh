#!/usr/bin/env bash
# Instructions per request, counted by callgrind (exact and repeatable, unlike
# time on a shared machine): shadowdiff built with the profiling profile runs
# under valgrind in front of examples/bench_backend (a 1 KB JSON document);
# once it serves, the counters are zeroed, REQUESTS requests are sent one at
# a time over keep-alive, shadow work is let finish, and the counters are
# dumped. Prints instructions per request and the 25 costliest functions
# (inclusive and by their own instructions).
#
# Usage: benches/callgrind.sh [sample rate, default 1] [requests, default 1000] [candidate: same|reformatted, default same]
#        BENCH_BIN=path/to/another/shadowdiff benches/callgrind.sh ...   (counts only; names need symbols)
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-1}
requests=${2:-1000}
candidate=${3:-same}
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
command -v curl >/dev/null || { apt-get update -qq && apt-get install -y -qq curl >/dev/null; }
cargo build --profile profiling --quiet --locked --bin shadowdiff --example bench_backend
bin=$(realpath "${CARGO_TARGET_DIR:-target}/profiling")
shadowdiff=$(realpath "${BENCH_BIN:-$bin/shadowdiff}")
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

"$bin/examples/bench_backend" 127.0.0.1:18701 & pids+=($!)
"$bin/examples/bench_backend" 127.0.0.1:18702 0 "$candidate" & pids+=($!)
(cd "$work" && SHADOWDIFF_LOG=error exec valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" \
  "$shadowdiff" serve --primary http://127.0.0.1:18701 --candidate http://127.0.0.1:18702 \
  --listen 127.0.0.1:18720 --report-listen 127.0.0.1:18820 --sample-rate "$rate") 2>"$work/valgrind.log" &
pids+=($!)
for p in 18701 18702 18720; do
  for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.1; done
done
# Warm up (pools, lazy statics, the store's first writes), then count from zero.
for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:18720/api/items; done
sleep 3
callgrind_control -z >/dev/null 2>&1
urls=$(for _ in $(seq "$requests"); do printf 'http://127.0.0.1:18720/api/items '; done)
# shellcheck disable=SC2086
curl -s $urls >/dev/null
sleep 5  # shadow work and outcomes finish
callgrind_control -d >/dev/null 2>&1
compared=$(curl -s "http://127.0.0.1:18820/api/v1/summary?since=1h" | python3 -c 'import json,sys; print(json.load(sys.stdin)["totals"]["compared"])')
out=$(ls -t "$work"/callgrind.out* | head -1)
# Kept for a closer look (callgrind_annotate, kcachegrind).
kept="$(realpath "${CARGO_TARGET_DIR:-target}")/callgrind-$rate-$candidate.out"
cp "$out" "$kept"
total=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}' || true)
echo "sample rate $rate, candidate $candidate: $requests requests, $compared compared in all (50 of them warm-up)"
echo "instructions per request: $((total / requests))  (profile kept in $kept)"
echo
echo "costliest functions, inclusive:"
{ callgrind_annotate --inclusive=yes "$out" 2>/dev/null | sed -n '/file:function/,$p' | head -27 | cut -c1-160; } || true
echo
echo "costliest functions, own instructions:"
{ callgrind_annotate "$out" 2>/dev/null | sed -n '/file:function/,$p' | head -27 | cut -c1-160; } || true
