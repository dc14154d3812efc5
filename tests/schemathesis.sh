#!/usr/bin/env bash
# The report API against its own OpenAPI document: schemathesis sends
# generated requests, valid and invalid, to the real `shadowdiff serve` on a
# SQLite store seeded with traffic through the proxy, with every check on;
# any disagreement between the document and the API fails.
#
# Needs: python3 with venv (schemathesis is installed from PyPI into a venv
# under the target directory, reused while its pinned version holds).
# Usage: bash tests/schemathesis.sh   (from anywhere; builds the binary, a no-op
# after `cargo test`). ST_EXAMPLES (default 50) bounds the examples per operation, ST_SEED (default 1)
# picks them.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}
work=$target/schemathesis
mkdir -p "$work"
version=4.32.5
examples=${ST_EXAMPLES:-50}
seed=${ST_SEED:-1}
token=schemathesis-token

command -v python3 >/dev/null || { echo "schemathesis: python3 is not installed" >&2; exit 1; }
shadowdiff=$target/debug/shadowdiff
cargo build --quiet --locked --bin shadowdiff

venv=$work/venv
if [ ! -x "$venv/bin/st" ] || [ "$(cat "$venv/version" 2>/dev/null)" != "$version" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
  echo "$version" >"$venv/version"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
primary_port=$(free_port); candidate_port=$(free_port); proxy_port=$(free_port); report_port=$(free_port)
rm -f "$work"/store.db*

pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

wait_for() {
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "schemathesis: nothing listens on port $1" >&2; exit 1
}

# Two small JSON backends that disagree on even ids (a body field), on
# /orders (a status) and on /slow's header, so every kind of group is stored.
backend='
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
side = sys.argv[2]
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        n = sum(map(ord, self.path))
        status = 500 if side == "candidate" and self.path.startswith("/orders") else 200
        body = json.dumps({"path": self.path, "total": n % 7 if side == "candidate" and n % 2 == 0 else n}).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        if self.path.startswith("/slow"):
            self.send_header("x-version", side)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
'
python3 -c "$backend" "$primary_port" primary & pids+=($!)
python3 -c "$backend" "$candidate_port" candidate & pids+=($!)
wait_for "$primary_port"; wait_for "$candidate_port"
SHADOWDIFF_LOG=warn "$shadowdiff" serve \
  --primary "http://127.0.0.1:$primary_port" --candidate "http://127.0.0.1:$candidate_port" \
  --listen "127.0.0.1:$proxy_port" --report-listen "127.0.0.1:$report_port" \
  --database-url "sqlite://$work/store.db" --report-token "$token" >"$work/shadowdiff.log" 2>&1 &
pids+=($!)
wait_for "$proxy_port"; wait_for "$report_port"
api=http://127.0.0.1:$report_port

echo "== schemathesis: seeding the store through the proxy"
python3 - "$proxy_port" "$api" "$token" <<'PY'
import json, sys, time, urllib.request
proxy, api, token = sys.argv[1:]
paths = [f"/users/{i}?page=1" for i in range(20)] + [f"/orders/{i}" for i in range(5)] + ["/slow/1", "/slow/2"]
for path in paths:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{proxy}{path}").read()
    except urllib.error.HTTPError:
        pass
request = urllib.request.Request(f"{api}/api/v1/summary", headers={"authorization": f"Bearer {token}"})
for _ in range(100):
    totals = json.load(urllib.request.urlopen(request))["totals"]
    if totals["compared"] + totals["candidate_errors"] >= len(paths):
        break
    time.sleep(0.2)
else:
    sys.exit(f"schemathesis: the store never showed {len(paths)} outcomes: {totals}")
print(f"seeded: {totals['matched']} matched, {totals['mismatched']} mismatched")
PY

echo "== schemathesis $version: $examples examples per operation, seed $seed"
# From the work directory, where schemathesis keeps its state for `st replay`.
cd "$work"
"$venv/bin/st" --config-file "$root/tests/schemathesis.toml" run "$api/api/v1/openapi.json" \
  --url "$api" \
  --checks all \
  --max-examples "$examples" \
  --seed "$seed" \
  --header "Authorization: Bearer $token" \
  --request-timeout 10 \
  --report junit --report-dir "$work/report"
