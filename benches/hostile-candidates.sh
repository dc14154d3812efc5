#!/usr/bin/env bash
# Client throughput through shadowdiff while the candidate attacks the shadow
# stage (an endless body, 1 MiB of headers, 100 MB sent slowly), against the
# same proxy shadowing nothing. Rounds are interleaved; each line gives
# min/median/max req/s and the ratio of medians to the no-shadow figure, then
# each instance's peak resident memory. Needs wrk. Everything on 127.0.0.1.
# Usage: benches/hostile-candidates.sh [seconds per run, default 5] [rounds, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-5}
rounds=${2:-5}
command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install wrk" >&2; exit 1; }

cargo build --release --quiet --bin shadowdiff --example bench_backend --example hostile_candidate
bin=target/release
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

"$bin/examples/bench_backend" 127.0.0.1:18001 & pids+=($!)
"$bin/examples/bench_backend" 127.0.0.1:18002 & pids+=($!)
"$bin/examples/hostile_candidate" 127.0.0.1:18003 endless & pids+=($!)
"$bin/examples/hostile_candidate" 127.0.0.1:18004 headers & pids+=($!)
"$bin/examples/hostile_candidate" 127.0.0.1:18005 slow-huge & pids+=($!)

names=(no-shadow equal endless headers slow-huge)
candidates=(18002 18002 18003 18004 18005)
rates=(0 1 1 1 1)
declare -A proxy_pid
for i in "${!names[@]}"; do
  port=$((18080 + i))
  SHADOWDIFF_LOG=warn "$bin/shadowdiff" serve --primary http://127.0.0.1:18001 \
    --candidate "http://127.0.0.1:${candidates[$i]}" --sample-rate "${rates[$i]}" \
    --listen "127.0.0.1:$port" --report-listen "127.0.0.1:$((18180 + i))" \
    --database-url "sqlite://$work/${names[$i]}.db" 2>"$work/${names[$i]}.log" &
  pids+=($!); proxy_pid[${names[$i]}]=$!
done
for port in 18001 18002 18003 18004 18005 18080 18081 18082 18083 18084; do
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
done

declare -A results
for round in $(seq "$rounds"); do
  for i in "${!names[@]}"; do
    rps=$(wrk -t1 -c16 -d"${seconds}s" "http://127.0.0.1:$((18080 + i))/api/items" \
      | awk '/Requests\/sec/ {print $2}')
    results[${names[$i]}]+="$rps "
  done
done

stats() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {printf "%.0f %.0f %.0f", a[1], a[int((NR+1)/2)], a[NR]}'; }
read -r _ base _ < <(echo "${results[no-shadow]}" | stats)
printf "%-10s %10s %10s %10s %8s %10s\n" target min median max ratio peak_MiB
for name in "${names[@]}"; do
  read -r min med max < <(echo "${results[$name]}" | stats)
  peak=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/${proxy_pid[$name]}/status")
  printf "%-10s %10s %10s %10s %8.2f %10s\n" "$name" "$min" "$med" "$max" "$(echo "$med / $base" | bc -l)" "$peak"
done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
