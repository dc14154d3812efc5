#!/usr/bin/env bash
# shadowdiff beside what users would otherwise run in front of a backend:
# nginx as a plain reverse proxy, and nginx with its mirror module (which
# copies every request to the candidate and compares nothing). Both backends
# are nginx serving a 2.2 KB JSON document; the candidate serves either the
# same bytes or the same JSON reformatted (other whitespace and key order, as
# a Go port answers a Python service), which shadowdiff must parse to match.
#
# Interleaved rounds of wrk against each proxy; per proxy: requests/s, CPU
# per request (from /proc, all of the proxy's processes and threads), wrk's
# p50/p99, and for shadowdiff the share of requests it compared. Ratios are
# of medians within this run. Then, at 100% sampling, the highest fixed rate
# (open loop, examples/open_loop.rs, in steps of a quarter of nginx-mirror's
# median req/s) at which shadowdiff still compares at least 95% of requests
# and answers every one. The generator shares the two cores too.
# Installs wrk and nginx when missing (apt-get).
#
# Usage: benches/versus-nginx.sh [rounds, default 5] [seconds per run, default 5] [connections, default 32]
#        BENCH_BIN=path/to/shadowdiff benches/versus-nginx.sh ...
#        BENCH_BASELINE=path/to/earlier/shadowdiff benches/versus-nginx.sh ...
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
seconds=${2:-5}
connections=${3:-32}

for tool in wrk nginx curl; do
  command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$tool" >/dev/null; }
done
# (Not SHADOWDIFF_*: shadowdiff warns of variables it does not know.)
# BENCH_BIN measures another build (an earlier commit's, say) instead.
if [ -z "${BENCH_BIN:-}" ]; then
  cargo build --release --quiet --locked --bin shadowdiff
fi
cargo build --release --quiet --locked --example open_loop
open_loop=$(realpath "${CARGO_TARGET_DIR:-target}/release/examples/open_loop")
shadowdiff=$(realpath "${BENCH_BIN:-${CARGO_TARGET_DIR:-target}/release/shadowdiff}")

work=$(mktemp -d)
chmod 755 "$work"  # nginx's workers (www-data) read the documents there
pids=()
cleanup() {
  for conf in "$work"/nginx-*.conf; do nginx -c "$conf" -s stop 2>/dev/null || true; done
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The document: Python's json.dumps style for the primary, compact with
# keys in another order for the reformatted candidate.
python3 - "$work" <<'EOF'
import json, sys
items = [{"id": i, "name": f"item-{i}", "price": i + 0.5, "tags": ["a", "b"], "in_stock": i % 2 == 0}
         for i in range(24)]
doc = {"items": items, "total": len(items), "page": 1}
primary = json.dumps(doc)
def reorder(v):
    if isinstance(v, dict):
        return {k: reorder(v[k]) for k in reversed(list(v))}
    if isinstance(v, list):
        return [reorder(x) for x in v]
    return v
candidate = json.dumps(reorder(doc), separators=(",", ":"))
assert json.loads(primary) == json.loads(candidate)
open(f"{sys.argv[1]}/primary.json", "w").write(primary)
open(f"{sys.argv[1]}/reformatted.json", "w").write(candidate)
print(f"document: {len(primary)} bytes (primary), {len(candidate)} bytes (reformatted)")
EOF

# One nginx per role, so each one's CPU is its own.
nginx_conf() {
  local name=$1 body=$2
  cat >"$work/nginx-$name.conf" <<EOF
worker_processes 2;
pid $work/nginx-$name.pid;
error_log $work/nginx-$name.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream primary { server 127.0.0.1:18201; keepalive 64; }
  upstream candidate { server 127.0.0.1:18202; keepalive 64; }
  $body
}
EOF
  nginx -c "$work/nginx-$name.conf"
}
file_server() { echo "server { listen 127.0.0.1:$1; location / { default_type application/json; root $work; try_files /$2 =404; } }"; }
nginx_conf backends "$(file_server 18201 primary.json) $(file_server 18202 primary.json) $(file_server 18203 reformatted.json)"
nginx_conf proxy "server { listen 127.0.0.1:18210; location / { proxy_pass http://primary; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
nginx_conf mirror "server { listen 127.0.0.1:18211;
  location / { mirror /mirror; proxy_pass http://primary; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
  location = /mirror { internal; proxy_pass http://candidate\$request_uri; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"

serve() {
  local port=$1 rate=$2 candidate=$3 binary=${4:-$shadowdiff}
  mkdir -p "$work/sd-$port"
  (cd "$work/sd-$port" && SHADOWDIFF_LOG=warn exec "$binary" serve \
    --primary http://127.0.0.1:18201 --candidate "http://127.0.0.1:$candidate" \
    --listen "127.0.0.1:$port" --report-listen "127.0.0.1:$((port + 100))" \
    --sample-rate "$rate") & pids+=($!)
  echo $! >"$work/sd-$port.pid"
}
serve 18220 0 18202
serve 18221 1 18202
serve 18222 1 18203
ports=(18201 18202 18203 18210 18211 18220 18221 18222)
# BENCH_BASELINE: another build measured in the same rounds (at 0% and
# 100% reformatted), for a before/after ratio within one run.
if [ -n "${BENCH_BASELINE:-}" ]; then
  BENCH_BASELINE=$(realpath "$BENCH_BASELINE")
  serve 18230 0 18202 "$BENCH_BASELINE"
  serve 18232 1 18203 "$BENCH_BASELINE"
  ports+=(18230 18232)
fi
for p in "${ports[@]}"; do
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.05; done
done

# The process ids whose CPU counts for a proxy: an nginx's master and
# workers, or shadowdiff's one process (all its threads).
proxy_pids() {
  case $1 in
    nginx-*) local master; master=$(cat "$work/$1.pid"); echo "$master $(pgrep -P "$master" | xargs)" ;;
    sd-*) cat "$work/$1.pid" ;;
  esac
}
cpu_ticks() {
  local total=0 pid
  for pid in $(proxy_pids "$1"); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  echo "$total"
}
compared() {
  python3 -c 'import json,sys,urllib.request as u; print(json.load(u.urlopen(sys.argv[1]))["totals"]["compared"])' \
    "http://127.0.0.1:$(($1 + 100))/api/v1/summary?since=1h"
}

names=(direct nginx-proxy nginx-mirror sd-0 sd-100-equal sd-100-reformatted)
declare -A url=(
  [direct]=http://127.0.0.1:18201/api/items [nginx-proxy]=http://127.0.0.1:18210/api/items
  [nginx-mirror]=http://127.0.0.1:18211/api/items [sd-0]=http://127.0.0.1:18220/api/items
  [sd-100-equal]=http://127.0.0.1:18221/api/items [sd-100-reformatted]=http://127.0.0.1:18222/api/items
)
declare -A owner=([direct]=nginx-backends [nginx-proxy]=nginx-proxy [nginx-mirror]=nginx-mirror
  [sd-0]=sd-18220 [sd-100-equal]=sd-18221 [sd-100-reformatted]=sd-18222)
declare -A api_port=([sd-0]=18220 [sd-100-equal]=18221 [sd-100-reformatted]=18222)
if [ -n "${BENCH_BASELINE:-}" ]; then
  names+=(baseline-0 baseline-100-reformatted)
  url[baseline-0]=http://127.0.0.1:18230/api/items
  url[baseline-100-reformatted]=http://127.0.0.1:18232/api/items
  owner[baseline-0]=sd-18230
  owner[baseline-100-reformatted]=sd-18232
  api_port[baseline-0]=18230
  api_port[baseline-100-reformatted]=18232
fi
declare -A rps cpu p50 p99 sent before one

for name in "${names[@]}"; do
  status=$(curl -s -o /dev/null -w '%{http_code}' "${url[$name]}")
  [ "$status" = 200 ] || { echo "$name answers $status, not 200" >&2; exit 1; }
  wrk -t1 -c"$connections" -d1s "${url[$name]}" >/dev/null
done
for name in "${!api_port[@]}"; do before[$name]=$(compared "${api_port[$name]}"); done

ticks_per_s=$(getconf CLK_TCK)
for round in $(seq "$rounds"); do
  for name in "${names[@]}"; do
    start=$(cpu_ticks "${owner[$name]}")
    out=$(wrk -t2 -c"$connections" -d"${seconds}s" --latency "${url[$name]}")
    ticks=$(($(cpu_ticks "${owner[$name]}") - start))
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    if grep -q "Non-2xx" <<<"$out"; then echo "$name: $(grep Non-2xx <<<"$out")" >&2; exit 1; fi
    rps[$name]+="$(awk '/Requests\/sec/ {print $2}' <<<"$out") "
    cpu[$name]+="$(python3 -c "print(round($ticks / $ticks_per_s * 1e6 / max($requests, 1), 1))") "
    p50[$name]+="$(awk '$1 == "50%" {print $2}' <<<"$out") "
    p99[$name]+="$(awk '$1 == "99%" {print $2}' <<<"$out") "
    sent[$name]=$(( ${sent[$name]:-0} + requests ))
  done
  # One connection, one request at a time: the latency a request pays.
  for name in direct nginx-proxy sd-0; do
    out=$(wrk -t1 -c1 -d"${seconds}s" --latency "${url[$name]}")
    one[$name]+="$(awk '$1 == "50%" {print $2}' <<<"$out") "
  done
  echo "round $round of $rounds done"
done

report() {
  python3 - "$@" <<'EOF'
import statistics, sys
args = sys.argv[1:]
rows = [args[i:i + 7] for i in range(0, len(args), 7)]
def nums(s): return [float(x) for x in s.split()]
def ms(s):
    out = []
    for x in s.split():
        unit = 1e-3 if x.endswith("us") else 1e3 if x.endswith("s") and not x.endswith("ms") else 1
        out.append(float(x.rstrip("mus")) * unit)
    return out
med = {}
print(f"{'proxy':<20} {'req/s min/median/max':>26} {'CPU µs/req':>11} {'p50 ms':>8} {'p99 ms':>8} {'compared':>9}")
for name, rps, cpu, p50, p99, sent, compared in rows:
    r = nums(rps)
    med[name] = (statistics.median(r), statistics.median(nums(cpu)))
    share = "" if compared == "-" else f"{100 * int(compared) / max(int(sent), 1):.1f}%"
    print(f"{name:<20} {min(r):>8.0f} {statistics.median(r):>8.0f} {max(r):>8.0f} {med[name][1]:>11.1f}"
          f" {statistics.median(ms(p50)):>8.2f} {statistics.median(ms(p99)):>8.2f} {share:>9}")
print()
pairs = [("sd-0", "nginx-proxy"), ("sd-100-equal", "nginx-mirror"), ("sd-100-reformatted", "nginx-mirror")]
if "baseline-0" in med:
    pairs += [("sd-0", "baseline-0"), ("sd-100-reformatted", "baseline-100-reformatted")]
for a, b in pairs:
    print(f"{a} / {b}: req/s {med[a][0] / med[b][0]:.2f}x, CPU per request {med[a][1] / med[b][1]:.2f}x")
EOF
}
sleep 1  # the last outcomes reach the store
args=()
for name in "${names[@]}"; do
  got=-
  [ -n "${api_port[$name]:-}" ] && got=$(( $(compared "${api_port[$name]}") - ${before[$name]} ))
  args+=("$name" "${rps[$name]}" "${cpu[$name]}" "${p50[$name]}" "${p99[$name]}" "${sent[$name]}" "$got")
done
echo
report "${args[@]}"
python3 - "${one[direct]}" "${one[nginx-proxy]}" "${one[sd-0]}" <<'EOF'
import statistics, sys
def ms(s):
    return [float(x.rstrip("mus")) * (1e-3 if x.endswith("us") else 1) for x in s.split()]
direct, nginx, sd = (statistics.median(ms(a)) for a in sys.argv[1:])
print(f"one connection, p50: direct {direct * 1000:.0f} µs; the hop adds {(nginx - direct) * 1000:.0f} µs through nginx, "
      f"{(sd - direct) * 1000:.0f} µs through shadowdiff at 0%")
EOF
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); wrk -t2 -c$connections, ${rounds} rounds of ${seconds}s"

# Open loop at 100% sampling: rates in steps of a quarter of nginx-mirror's
# median req/s (which is the most it serves, every request waiting for its
# mirror), 5 s each, until fewer than 95% of the requests are compared.
mirror_rps=$(python3 -c 'import statistics,sys; print(int(statistics.median(float(x) for x in sys.argv[1].split())))' "${rps[nginx-mirror]}")
for name in sd-100-equal sd-100-reformatted; do
  best=none
  for quarters in 1 2 3 4 5 6 7 8 9 10 11 12; do
    rate=$((mirror_rps * quarters / 4))
    start=$(compared "${api_port[$name]}")
    out=$("$open_loop" "${url[$name]}" "$rate" 5)
    sleep 2  # queued samples finish
    got=$(( $(compared "${api_port[$name]}") - start ))
    sent_now=$(sed -E 's/.*sent=([0-9]+).*/\1/' <<<"$out")
    share=$(python3 -c "print(round(100 * $got / max($sent_now, 1), 1))")
    echo "$name at $rate req/s ($(python3 -c "print($quarters / 4)")x nginx-mirror): compared $share% | $out"
    failed=$(sed -E 's/.*failed=([0-9]+).*/\1/' <<<"$out")
    python3 -c "import sys; sys.exit(0 if $share >= 95 and $failed == 0 else 1)" || break
    best="$rate req/s = $(python3 -c "print($quarters / 4)")x nginx-mirror's median"
  done
  echo "$name: highest rate with >= 95% compared: $best"
done
