#!/usr/bin/env bash
# The container image for real: the static musl binary built here, put into
# the Dockerfile's empty image by Debian's docker.io (BuildKit builds only
# the stages the image needs, so no base image is pulled), its size checked,
# then run on the host network in front of the example backends (the Flask
# service and its Go port, as tests/e2e.sh builds them), with its embedded
# SQLite store in /data, and a summary read from its report API.
#
# Needs: docker.io (dockerd), the x86_64-unknown-linux-musl target and
# musl-tools, python3 and go. .ci/run installs them; run it after tests/e2e.sh.
# Usage: bash tests/image.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
example=$root/fixtures/example
target_dir=${CARGO_TARGET_DIR:-$root/target}
work=$target_dir/image
musl=x86_64-unknown-linux-musl
# A guard against sudden growth, not a promise of smallness: 20.1 MiB with
# the review UI, rechecks and noise learning in it.
max_mib=24
tag=shadowdiff:ci-$$
# Debian's client: its built-in BuildKit needs no buildx plugin.
docker=/usr/bin/docker

fail() { echo "image: $*" >&2; exit 1; }
[ -x "$docker" ] || fail "Debian's docker.io is not installed"
[ -x "$target_dir/e2e/candidate" ] && [ -x "$target_dir/e2e/venv/bin/python" ] ||
  fail "the example backends are not built: run tests/e2e.sh first"

if ! "$docker" info >/dev/null 2>&1; then
  # No bridge and no iptables: the container shares the host's network.
  # Started outside this script's jobs (it outlives the script), so that the
  # cleanup's `wait` waits for the backends alone.
  (dockerd --bridge=none --iptables=false >"$target_dir/dockerd.log" 2>&1 &)
  for _ in $(seq 100); do "$docker" info >/dev/null 2>&1 && break; sleep 0.2; done
  "$docker" info >/dev/null 2>&1 || fail "dockerd did not start: $(tail -n 5 "$target_dir/dockerd.log")"
fi

echo "== image: static binary ($musl)"
cargo build --quiet --release --locked --bin shadowdiff --target "$musl"
rm -rf "$work" && mkdir -p "$work/context/data"
cp "$target_dir/$musl/release/shadowdiff" "$work/context/shadowdiff"
file_type=$(file -b "$work/context/shadowdiff" 2>/dev/null || true)
case $file_type in
  *"statically linked"*|*"static-pie linked"*|"") ;;
  *) fail "the binary is not static: $file_type" ;;
esac

echo "== image: docker build"
DOCKER_BUILDKIT=1 "$docker" build -q --build-arg BINARY=prebuilt -f Dockerfile -t "$tag" "$work/context" >/dev/null
pids=()
cleanup() {
  "$docker" rm -f "shadowdiff-ci-$$" >/dev/null 2>&1 || true
  "$docker" image rm -f "$tag" >/dev/null 2>&1 || true
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
size=$("$docker" image inspect -f '{{.Size}}' "$tag")
echo "image size: $((size / 1024)) KiB"
[ "$size" -le $((max_mib * 1024 * 1024)) ] || fail "the image is $size bytes, over $max_mib MiB"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() {
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  fail "nothing listens on port $1"
}
legacy_port=$(free_port); candidate_port=$(free_port); proxy_port=$(free_port); report_port=$(free_port)
"$target_dir/e2e/venv/bin/python" "$example/legacy/app.py" --port "$legacy_port" >"$work/legacy.log" 2>&1 & pids+=($!)
"$target_dir/e2e/candidate" -addr "127.0.0.1:$candidate_port" >"$work/candidate.log" 2>&1 & pids+=($!)
wait_for "$legacy_port"; wait_for "$candidate_port"

echo "== image: serving in front of the example backends"
"$docker" run -d --name "shadowdiff-ci-$$" --network host \
  -e SHADOWDIFF_PRIMARY="http://127.0.0.1:$legacy_port" \
  -e SHADOWDIFF_CANDIDATE="http://127.0.0.1:$candidate_port" \
  -e SHADOWDIFF_LISTEN="127.0.0.1:$proxy_port" \
  -e SHADOWDIFF_REPORT_LISTEN="127.0.0.1:$report_port" \
  -e SHADOWDIFF_SAMPLE_RATE=1.0 \
  "$tag" >/dev/null
wait_for "$proxy_port"; wait_for "$report_port"
python3 "$example/traffic.py" --base "http://127.0.0.1:$proxy_port" --rounds 2 >"$work/traffic.txt"
sent=$(sed -n 's/^sent \([0-9]*\) requests.*/\1/p' "$work/traffic.txt")
[ -n "$sent" ] && [ "$sent" -gt 0 ] || fail "traffic.py sent nothing: $(cat "$work/traffic.txt")"

# Every request ends as one outcome in the image's own SQLite store.
summary=
for _ in $(seq 100); do
  summary=$(python3 - "http://127.0.0.1:$report_port/api/v1/summary" "$sent" <<'EOF' || true
import json, sys, urllib.request
t = json.load(urllib.request.urlopen(sys.argv[1]))["totals"]
done = t["compared"] + t["candidate_errors"] + t["skipped"] + t["dropped"]
print(json.dumps(t) if done >= int(sys.argv[2]) and t["compared"] > 0 else "", end="")
EOF
)
  [ -n "$summary" ] && break
  sleep 0.1
done
[ -n "$summary" ] || fail "the summary never showed $sent outcomes: $("$docker" logs --tail 20 "shadowdiff-ci-$$" 2>&1)"
echo "image: $sent requests through the container; totals $summary"
"$docker" stop -t 10 "shadowdiff-ci-$$" >/dev/null
status=$("$docker" inspect -f '{{.State.ExitCode}}' "shadowdiff-ci-$$")
[ "$status" = 0 ] || fail "the container exited with $status on SIGTERM"
echo "== image: ok"
