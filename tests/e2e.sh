#!/usr/bin/env bash
# End to end on real backends in their own languages: the Flask service in
# fixtures/example/legacy (primary) and its Go port in fixtures/example/candidate
# (candidate), with shadowdiff in front on the real PostgreSQL, recording.
# It sends the example traffic, then asserts through the report API and
# `shadowdiff gate` that with the python-go preset and the suggested rules only
# the genuine bug is left, as one group, that the gate fails on its endpoint
# and passes on the others, and that replaying the recorded traffic gives the
# same verdicts; then, with the port fixed, that the group's stored requests
# match again and `replay --mark-fixed` marks it fixed.
#
# Needs: python3 (with venv), go, psql, and PostgreSQL at
# $SHADOWDIFF_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres).
# Usage: bash tests/e2e.sh   (from anywhere; builds what it needs)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
example=$root/fixtures/example
# Where cargo builds (CARGO_TARGET_DIR when set), so the binary run is the one
# just built from this checkout.
target=${CARGO_TARGET_DIR:-$root/target}
work=$target/e2e
mkdir -p "$work"
admin_url=${SHADOWDIFF_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
rounds=${E2E_ROUNDS:-40}

. "$root/tests/e2e_build.sh"
legacy_port=$(free_port); candidate_port=$(free_port); proxy_port=$(free_port); report_port=$(free_port)
database=shadowdiff_e2e_$$
db_url="${admin_url%/*}/$database"
record=$work/recorded.jsonl
rm -f "$record"

pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  psql -q "$admin_url" -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
psql -q "$admin_url" -c "CREATE DATABASE $database" >/dev/null


"$work/venv/bin/python" "$example/legacy/app.py" --port "$legacy_port" >"$work/legacy.log" 2>&1 & pids+=($!)
"$work/candidate" -addr "127.0.0.1:$candidate_port" >"$work/candidate.log" 2>&1 & pids+=($!)
wait_for "$legacy_port"; wait_for "$candidate_port"
SHADOWDIFF_LOG=warn "$shadowdiff" serve --config "$example/shadowdiff.toml" \
  --primary "http://127.0.0.1:$legacy_port" --candidate "http://127.0.0.1:$candidate_port" \
  --listen "127.0.0.1:$proxy_port" --report-listen "127.0.0.1:$report_port" \
  --database-url "$db_url" --record "$record" --sample-rate 1.0 >"$work/shadowdiff.log" 2>&1 &
serve_pid=$!; pids+=($serve_pid)
wait_for "$proxy_port"; wait_for "$report_port"
api=http://127.0.0.1:$report_port

echo "== e2e: $rounds rounds of traffic through shadowdiff"
python3 "$example/traffic.py" --base "http://127.0.0.1:$proxy_port" --rounds "$rounds" | tee "$work/traffic.txt"
sent=$(sed -n 's/^sent \([0-9]*\) requests.*/\1/p' "$work/traffic.txt")
[ -n "$sent" ] || { echo "e2e: traffic.py did not say how many requests it sent" >&2; exit 1; }

# Outcomes reach the store within a second or two of the last response.
for _ in $(seq 100); do
  stored=$(python3 -c 'import json,sys,urllib.request as u; t=json.load(u.urlopen(sys.argv[1]))["totals"]; print(t["compared"]+t["candidate_errors"]+t["skipped"]+t["dropped"])' "$api/api/v1/summary")
  [ "$stored" -ge "$sent" ] && break
  sleep 0.2
done

echo "== e2e: the report API shows one group, on the endpoint with the bug"
python3 - "$api" "$sent" <<'PY'
import json, sys, urllib.request
api, sent = sys.argv[1], int(sys.argv[2])
get = lambda path: json.load(urllib.request.urlopen(api + path))
summary = get("/api/v1/summary")
t = summary["totals"]
assert t["compared"] == sent, f"compared {t['compared']} of {sent}: {t}"
assert t["candidate_errors"] == t["skipped"] == t["dropped"] == 0, t
groups = get("/api/v1/groups")
assert len(groups) == 1, json.dumps(groups, indent=1)
assert groups[0]["endpoint"] == "GET /api/orders/{id}", groups[0]
assert groups[0]["paths"] == ["/total"], groups[0]
for e in summary["endpoints"]:
    bug = e["endpoint"] == "GET /api/orders/{id}"
    assert (e["mismatched"] > 0) == bug, e
    print(f"  {e['endpoint']:<28} compared {e['compared']:>5}  mismatched {e['mismatched']:>4}")
print(f"  one group: {groups[0]['endpoint']} {groups[0]['paths']} x{groups[0]['count']}")
PY

echo "== e2e: the gate fails on that endpoint and passes on the others"
gate() { "$shadowdiff" gate "$@" --per-endpoint --min-parity 90 --since 1h --format json; }
check_gate() {
  python3 - "$1" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
assert report["verdict"] == "fail" and report["pass"] is False, report["reason"]
verdicts = {e["endpoint"]: e["verdict"] for e in report["endpoints"]}
assert verdicts.pop("GET /api/orders/{id}") == "fail", verdicts
assert verdicts and all(v == "pass" for v in verdicts.values()), verdicts
print(f"  fail on GET /api/orders/{{id}}; pass on {len(verdicts)} others")
PY
}
set +e
gate --report-url "$api" >"$work/gate-live.json"; code=$?
set -e
[ "$code" -eq 1 ] || { echo "e2e: gate exited $code, expected 1" >&2; cat "$work/gate-live.json" >&2; exit 1; }
check_gate "$work/gate-live.json"

echo "== e2e: replaying the recorded traffic gives the same verdicts"
kill -TERM "$serve_pid"; wait "$serve_pid" || true   # flushes the record file
recorded=$(wc -l <"$record")
[ "$recorded" -eq "$sent" ] || { echo "e2e: $recorded requests recorded of $sent" >&2; exit 1; }
set +e
SHADOWDIFF_LOG=warn "$shadowdiff" replay --config "$example/shadowdiff.toml" --input "$record" \
  --primary "http://127.0.0.1:$legacy_port" --candidate "http://127.0.0.1:$candidate_port" \
  --database-url "$db_url" --run-id e2e-replay --per-endpoint --min-parity 90 --format json \
  >"$work/gate-replay.json" 2>"$work/replay.log"; code=$?
set -e
[ "$code" -eq 1 ] || { echo "e2e: replay exited $code, expected 1" >&2; cat "$work/replay.log" >&2; exit 1; }
check_gate "$work/gate-replay.json"
set +e
gate --database-url "$db_url" >"$work/gate-live-db.json"
set -e
python3 - "$work/gate-live-db.json" "$work/gate-replay.json" <<'PY'
import json, sys
live, replay = (json.load(open(p)) for p in sys.argv[1:])
pick = lambda r: {e["endpoint"]: (e["matched"], e["mismatched"], e["verdict"]) for e in r["endpoints"]}
assert pick(live) == pick(replay), (pick(live), pick(replay))
print(f"  {len(pick(live))} endpoints: the same matched, mismatched and verdict live and replayed")
PY

echo "== e2e: the port fixed, the group's requests match again and it is marked fixed"
fingerprint=$(psql -tA "$db_url" -c "SELECT fingerprint FROM mismatch_groups")
kill "${pids[1]}"; wait "${pids[1]}" 2>/dev/null || true
"$work/candidate" -addr "127.0.0.1:$candidate_port" -fix-total >"$work/candidate-fixed.log" 2>&1 & pids+=($!)
wait_for "$candidate_port"
set +e
SHADOWDIFF_LOG=warn "$shadowdiff" replay --config "$example/shadowdiff.toml" --from-store \
  --fingerprint "$fingerprint" --mark-fixed --run-id e2e-fixed \
  --primary "http://127.0.0.1:$legacy_port" --candidate "http://127.0.0.1:$candidate_port" \
  --database-url "$db_url" --format json >"$work/gate-fixed.json" 2>"$work/fixed.log"; code=$?
set -e
grep -q "group $fingerprint: marked fixed: all [0-9]* requests of the group now match" "$work/fixed.log" ||
  { echo "e2e: the group was not marked fixed (exit $code)" >&2; cat "$work/fixed.log" >&2; exit 1; }
status=$(psql -tA "$db_url" -c "SELECT g.status || ' by ' || h.reviewer FROM mismatch_groups g JOIN triage_history h USING (fingerprint)")
[ "$status" = "fixed by shadowdiff replay" ] || { echo "e2e: the group's triage is '$status'" >&2; exit 1; }
echo "  $(grep -o 'marked fixed.*' "$work/fixed.log")"
echo "== e2e: ok"
