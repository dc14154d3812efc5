#!/usr/bin/env bash
# Client throughput through shadowdiff while the candidate attacks the shadow
# stage (an endless body, 1 MiB of headers, 100 MB sent slowly), against the
# same proxy shadowing nothing and shadowing to a well-behaved candidate.
# Each run starts a fresh shadowdiff (so no run inherits another's backlog),
# rounds are interleaved, and each line gives min/median/max req/s, the ratio
# of medians to the no-shadow figure, and the highest peak resident memory.
# The attackers run at nice 19, standing in for another machine: on loopback
# their own sending would otherwise take the proxy's CPU. Needs wrk.
# Each run is measured after a warm-up (default 7 s) longer than the 5 s
# candidate timeout: a starved attacker's first failures are timeouts, and
# only then can the breaker know it (warm-up 1 shows that first stretch).
# Usage: benches/hostile-candidates.sh [seconds per run, default 5] [rounds, default 5] [warm-up seconds, default 7]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-5}
rounds=${2:-5}
warmup=${3:-7}
command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install wrk" >&2; exit 1; }

cargo build --release --quiet --bin shadowdiff --example bench_backend --example hostile_candidate
bin=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return; sleep 0.05; done; }
"$bin/examples/bench_backend" 127.0.0.1:18001 & pids+=($!)
"$bin/examples/bench_backend" 127.0.0.1:18002 & pids+=($!)
nice -n 19 "$bin/examples/hostile_candidate" 127.0.0.1:18003 endless & pids+=($!)
nice -n 19 "$bin/examples/hostile_candidate" 127.0.0.1:18004 headers & pids+=($!)
nice -n 19 "$bin/examples/hostile_candidate" 127.0.0.1:18005 slow-huge & pids+=($!)
for port in 18001 18002 18003 18004 18005; do wait_port $port; done

names=(no-shadow equal endless headers slow-huge)
candidates=(18002 18002 18003 18004 18005)
rates=(0 1 1 1 1)
declare -A results peaks
for round in $(seq "$rounds"); do
  for i in "${!names[@]}"; do
    name=${names[$i]}
    rm -f "$work"/*.db*
    SHADOWDIFF_LOG=warn "$bin/shadowdiff" serve --primary http://127.0.0.1:18001 \
      --candidate "http://127.0.0.1:${candidates[$i]}" --sample-rate "${rates[$i]}" \
      --listen 127.0.0.1:18080 --report-listen 127.0.0.1:18180 \
      --database-url "sqlite://$work/bench.db" 2>>"$work/$name.log" &
    proxy=$!
    wait_port 18080
    wrk -t1 -c16 -d"${warmup}s" http://127.0.0.1:18080/api/items >/dev/null
    rps=$(wrk -t1 -c16 -d"${seconds}s" http://127.0.0.1:18080/api/items | awk '/Requests\/sec/ {print $2}')
    results[$name]+="$rps "
    peak=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$proxy/status")
    peaks[$name]+="$peak "
    kill -KILL "$proxy"; wait "$proxy" 2>/dev/null || true
  done
done

stats() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {printf "%.0f %.0f %.0f\n", a[1], a[int((NR+1)/2)], a[NR]}'; }
read -r _ base _ < <(echo "${results[no-shadow]}" | stats)
printf "%-10s %10s %10s %10s %8s %14s\n" target min median max ratio peak_RSS_MiB
for name in "${names[@]}"; do
  read -r min med max < <(echo "${results[$name]}" | stats)
  read -r _ _ peak < <(echo "${peaks[$name]}" | stats)
  printf "%-10s %10s %10s %10s %8.2f %14s\n" "$name" "$min" "$med" "$max" "$(echo "$med / $base" | bc -l)" "$peak"
done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $seconds s a run after $warmup s of warm-up, $rounds rounds"
