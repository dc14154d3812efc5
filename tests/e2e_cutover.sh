#!/usr/bin/env bash
# A whole cutover end to end, on SQLite and then on the real PostgreSQL: the
# Flask service in fixtures/example/legacy (primary) and its Go port in
# fixtures/example/candidate, started with its one bug fixed (-fix-total),
# behind shadowdiff with a plan for GET /api/orders/{id}: [1, 5, 25, 100],
# two-second holds, a parity gate. Example traffic runs all along. It checks
# that the plan reaches 100% with the reverse-shadow parity in the history
# at each step; then the port is restarted with the bug, and the route must
# be rolled back to 0 within seconds, the history saying why, every client
# served by the primary from then on, and no client request failed.
#
# Needs: python3 (with venv), go, psql, and PostgreSQL at
# $SHADOWDIFF_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres).
# Usage: bash tests/e2e_cutover.sh   (from anywhere; builds what it needs)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
example=$root/fixtures/example
target=${CARGO_TARGET_DIR:-$root/target}
work=$target/e2e-cutover
mkdir -p "$work"
admin_url=${SHADOWDIFF_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}

. "$root/tests/e2e_build.sh"
fail() { echo "e2e-cutover ($store): $*" >&2; exit 1; }

pids=()
database=shadowdiff_cutover_$$
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
route='GET /api/orders/{id}'

# The orders route's weight, step and the latest history entry, as one line.
status() {
  "$shadowdiff" rollout status --json --report-url "$api" --report-token e2e-token | python3 -c '
import json, sys
v = json.load(sys.stdin)
r = next(r for r in v["routes"] if r["route"] == sys.argv[1])
print(json.dumps({"weight": r["weight"], "served": v["served"], "history": v["history"]}))' "$route"
}
weight() { status | python3 -c 'import json,sys; print(json.load(sys.stdin)["weight"])'; }

run_on() {
  store=$1 db_url=$2
  legacy_port=$(free_port); candidate_port=$(free_port); proxy_port=$(free_port); report_port=$(free_port)
  api=http://127.0.0.1:$report_port
  "$work/venv/bin/python" "$example/legacy/app.py" --port "$legacy_port" >"$work/legacy.log" 2>&1 & pids+=($!)
  "$work/candidate" -fix-total -addr "127.0.0.1:$candidate_port" >"$work/candidate.log" 2>&1 &
  candidate_pid=$!; pids+=($candidate_pid)
  wait_for "$legacy_port"; wait_for "$candidate_port"
  # The example's rules, and the cutover: writes stay on the old backend,
  # safe requests fall back to it, the orders route follows its plan.
  config=$work/cutover.toml
  python3 - "$example/shadowdiff.toml" "$config" <<'PY'
import sys
text = open(sys.argv[1]).read()
plan = '''[route.plan]
steps = [1, 5, 25, 100]
hold = "2s"
gate = "min_parity=95&min_samples=20"
'''
anchor = 'match = "GET /api/orders/{id}"\n'
assert anchor in text
text = text.replace(anchor, anchor + plan, 1)
head = 'writes = "primary"\nfallback = "primary"\nrollout_sync_ms = 250\nreport_token = "e2e-token"\n'
open(sys.argv[2], "w").write(head + text)
PY
  SHADOWDIFF_LOG=${E2E_LOG:-warn} "$shadowdiff" serve --config "$config" \
    --primary "http://127.0.0.1:$legacy_port" --candidate "http://127.0.0.1:$candidate_port" \
    --listen "127.0.0.1:$proxy_port" --report-listen "127.0.0.1:$report_port" \
    --database-url "$db_url" --sample-rate 1.0 >"$work/shadowdiff-$store.log" 2>&1 &
  serve_pid=$!; pids+=($serve_pid)
  wait_for "$proxy_port"; wait_for "$report_port"

  # Traffic all along, in rounds; every round's answer is kept.
  traffic=$work/traffic-$store.txt
  rm -f "$traffic" "$work/stop"
  (while [ ! -e "$work/stop" ]; do
     python3 "$example/traffic.py" --base "http://127.0.0.1:$proxy_port" --rounds 2 >>"$traffic" 2>&1 || echo "ROUND FAILED" >>"$traffic"
   done) & traffic_pid=$!; pids+=($traffic_pid)

  echo "== e2e-cutover ($store): the plan with the fixed port"
  for _ in $(seq 240); do
    [ "$(weight)" = "100.0" ] && break
    sleep 0.5
  done
  [ "$(weight)" = "100.0" ] || fail "the plan did not reach 100%: $(status)"
  status | python3 -c '
import json, sys
h = [e for e in json.load(sys.stdin)["history"] if e["route"] == sys.argv[1]][::-1]
steps = [(e["from"], e["to"], e["reason"]) for e in h]
assert steps == [(0, 1, "plan"), (1, 5, "plan"), (5, 25, "plan"), (25, 100, "plan")], steps
for e in h:
    assert "parity" in e["detail"], e
    print("   ", e["at"], e["from"], "->", e["to"], e["detail"])' "$route" || fail "unexpected history: $(status)"

  echo "== e2e-cutover ($store): the port restarted with its bug"
  kill "$candidate_pid"; wait "$candidate_pid" 2>/dev/null || true
  "$work/candidate" -addr "127.0.0.1:$candidate_port" >"$work/candidate-buggy.log" 2>&1 & pids+=($!)
  wait_for "$candidate_port"
  started=$(date +%s%N)
  for _ in $(seq 120); do
    [ "$(weight)" = "0.0" ] && break
    sleep 0.25
  done
  elapsed_ms=$(( ($(date +%s%N) - started) / 1000000 ))
  [ "$(weight)" = "0.0" ] || fail "no rollback: $(status)"
  echo "   rolled back ${elapsed_ms} ms after the bug appeared"
  [ "$elapsed_ms" -lt 10000 ] || fail "the rollback took ${elapsed_ms} ms"
  status | python3 -c '
import json, sys
last = json.load(sys.stdin)["history"][0]
assert last["reason"] == "rollback" and "parity" in last["detail"], last
print("   ", last["detail"])' || fail "the history does not say why: $(status)"
  served=$(status | python3 -c 'import json,sys; print(json.load(sys.stdin)["served"]["candidate"])')
  sleep 2
  [ "$(status | python3 -c 'import json,sys; print(json.load(sys.stdin)["served"]["candidate"])')" = "$served" ] \
    || fail "the candidate still serves after the rollback"

  touch "$work/stop"; wait "$traffic_pid" 2>/dev/null || true
  rounds=$(grep -c '^sent ' "$traffic" || true)
  echo "   $rounds traffic rounds"
  ! grep -q 'ROUND FAILED\|network failure\|  50[0-9]:' "$traffic" || fail "a client request failed: $(grep -m3 'FAILED\|failure\|  50' "$traffic")"
  kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true
  kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true
  pids=()
}

rm -f "$work"/cutover.db*
run_on sqlite "sqlite://$work/cutover.db"
psql -q "$admin_url" -c "CREATE DATABASE $database" >/dev/null
run_on postgres "${admin_url%/*}/$database"
echo "== e2e-cutover: ok"
