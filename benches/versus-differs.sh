#!/usr/bin/env bash
# shadowdiff's comparison beside the diff tools users would otherwise script:
# Python's DeepDiff and Node's jsondiffpatch. The same pairs for all three,
# bytes in (parsing counted, as every tool must parse a response): a list of
# user records of about 1 KB, 100 KB and 5 MB, against the same JSON written
# compactly with keys in another order (equal) and against one with 1% of
# its fields changed (differ). Each tool runs without rules or options, and
# reports the median of its runs. Installs DeepDiff (PyPI, in a venv) and
# jsondiffpatch (npm) under the target folder when missing.
#
# Usage: benches/versus-differs.sh [iterations at 1 KB, default 2000]
set -euo pipefail
cd "$(dirname "$0")/.."
iterations=${1:-2000}
target=${CARGO_TARGET_DIR:-$PWD/target}
tools=$target/versus-differs
mkdir -p "$tools"
cargo build --release --quiet --locked --example compare_files

if [ ! -x "$tools/venv/bin/python" ] || ! "$tools/venv/bin/python" -c 'import deepdiff' 2>/dev/null; then
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check 'deepdiff==8.*'
fi
if [ ! -d "$tools/node_modules/jsondiffpatch" ]; then
  (cd "$tools" && npm install --silent --no-audit --no-fund jsondiffpatch@0.7 >/dev/null)
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work" <<'EOF'
import json, sys
def record(i, changed):
    return {"id": i, "name": f"user-{i}", "email": f"user{i}@example.com",
            "score": i * 3 + (1 if changed else 0) + 0.5, "tags": ["alpha", "beta"],
            "active": i % 2 == 0, "created": f"2024-01-{i % 28 + 1:02}T10:00:00Z",
            "address": {"city": "Zürich", "zip": f"80{i % 100:02}"}}
for label, size in [("1KB", 1_000), ("100KB", 100_000), ("5MB", 5_000_000)]:
    n = max(3, size // 250)  # a record is about 250 bytes
    records = [record(i, False) for i in range(n)]
    primary = {"count": n, "results": records}
    differ = {"count": n, "results": [record(i, i % 10 == 5 or i == 1) for i in range(n)]}
    open(f"{sys.argv[1]}/{label}.primary.json", "w").write(json.dumps(primary, indent=1))
    open(f"{sys.argv[1]}/{label}.equal.json", "w").write(json.dumps(primary, separators=(",", ":"), sort_keys=True))
    open(f"{sys.argv[1]}/{label}.differ.json", "w").write(json.dumps(differ, separators=(",", ":"), sort_keys=True))
EOF

cat >"$work/deepdiff_time.py" <<'EOF'
import json, statistics, sys, time
from deepdiff import DeepDiff
p_path, c_path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
p, c = open(p_path, "rb").read(), open(c_path, "rb").read()
def run():
    return DeepDiff(json.loads(p), json.loads(c))
equal = not run()
times = []
for _ in range(n):
    at = time.perf_counter(); run(); times.append((time.perf_counter() - at) * 1e6)
print(f"us={statistics.median(times):.1f} equal={equal}")
EOF
cat >"$work/jsondiffpatch_time.mjs" <<'EOF'
import { readFileSync } from "node:fs";
import { create } from "jsondiffpatch";
const [p, c, n] = [readFileSync(process.argv[2], "utf8"), readFileSync(process.argv[3], "utf8"), Number(process.argv[4])];
const differ = create();
const run = () => differ.diff(JSON.parse(p), JSON.parse(c));
const equal = run() === undefined;
for (let i = 0; i < 5; i++) run();
const times = [];
for (let i = 0; i < n; i++) { const at = process.hrtime.bigint(); run(); times.push(Number(process.hrtime.bigint() - at) / 1000); }
times.sort((a, b) => a - b);
console.log(`us=${times[Math.floor(times.length / 2)].toFixed(1)} equal=${equal}`);
EOF
cp "$work/jsondiffpatch_time.mjs" "$tools/"

bin=$target/release/examples/compare_files
printf '%-6s %-6s %12s %12s %12s %14s %10s %10s\n' size pair shadowdiff "sd (full)" DeepDiff jsondiffpatch "vs DD" "vs jdp"
for label in 1KB 100KB 5MB; do
  case $label in 1KB) n=$iterations ;; 100KB) n=$(( iterations / 20 + 5 )) ;; *) n=5 ;; esac
  for pair in equal differ; do
    p=$work/$label.primary.json c=$work/$label.$pair.json
    sd=$("$bin" "$p" "$c" "$n")
    dd=$("$tools/venv/bin/python" "$work/deepdiff_time.py" "$p" "$c" "$(( n / 10 + 3 ))")
    jd=$(cd "$tools" && node jsondiffpatch_time.mjs "$p" "$c" "$n")
    live=$(sed -n 's/.*live_us=\([0-9.]*\).*/\1/p' <<<"$sd")
    full=$(sed -n 's/.*full_us=\([0-9.]*\).*/\1/p' <<<"$sd")
    dd_us=$(sed -n 's/.*us=\([0-9.]*\).*/\1/p' <<<"$dd")
    jd_us=$(sed -n 's/.*us=\([0-9.]*\).*/\1/p' <<<"$jd")
    # Every tool must agree on whether the pair is equal, or the timing means nothing.
    want=$([ "$pair" = equal ] && echo true || echo false)
    case "$sd $dd $jd" in
      *"matched=$want"*"equal=${want^}"*"equal=$want"*) ;;
      *) echo "the tools disagree on $label $pair: $sd | $dd | $jd" >&2; exit 1 ;;
    esac
    printf '%-6s %-6s %10.1fµs %10.1fµs %10.1fµs %12.1fµs %9.1fx %9.2fx\n' "$label" "$pair" \
      "$live" "$full" "$dd_us" "$jd_us" "$(python3 -c "print($dd_us / $live)")" "$(python3 -c "print($jd_us / $live)")"
  done
done
echo "(µs: median per comparison, parsing included; vs: the other tool's time / shadowdiff's live time)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); python $(python3 -c 'import platform; print(platform.python_version())'), node $(node --version)"
