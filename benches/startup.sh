#!/usr/bin/env bash
# From exec to accepting connections: how long `shadowdiff serve` takes to
# start listening (a restart, a new pod, a rollback), with its embedded
# SQLite store in a new folder each time. Prints min/median/max of RUNS
# starts, each measured from just before exec to the first TCP connect that
# succeeds, polled every 0.2 ms.
#
# Usage: benches/startup.sh [runs, default 30]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30}
cargo build --release --quiet --locked --bin shadowdiff
bin=$(cd "${CARGO_TARGET_DIR:-target}/release" && pwd)/shadowdiff
python3 - "$bin" "$runs" <<'EOF'
import os, socket, statistics, subprocess, sys, tempfile, time
binary, runs = sys.argv[1], int(sys.argv[2])
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close(); return port
times = []
for _ in range(runs):
    port, report = free_port(), free_port()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [binary, "serve", "--primary", "http://127.0.0.1:9", "--candidate", "http://127.0.0.1:9",
             "--listen", f"127.0.0.1:{port}", "--report-listen", f"127.0.0.1:{report}"],
            cwd=folder, env={**os.environ, "SHADOWDIFF_LOG": "error"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.05).close()
                break
            except OSError:
                if proc.poll() is not None:
                    sys.exit("shadowdiff exited before listening")
                time.sleep(0.0002)
        times.append((time.perf_counter() - started) * 1000)
        proc.terminate(); proc.wait()
print(f"exec to accepting: min {min(times):.1f} ms, median {statistics.median(times):.1f} ms, max {max(times):.1f} ms ({runs} starts)")
EOF
