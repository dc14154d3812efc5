# Sourced by tests/e2e.sh and tests/e2e_cutover.sh: checks the tools the
# example needs and builds what they run (shadowdiff, the Go port, the
# Flask venv) into $work. Expects $root, $example, $target and $work; sets
# $shadowdiff.
for tool in python3 go psql cargo; do
  command -v "$tool" >/dev/null || { echo "e2e: $tool is not installed" >&2; exit 1; }
done

echo "== e2e: building shadowdiff, the Go port and the Flask venv"
cargo build --quiet --locked --bin shadowdiff
shadowdiff=$target/debug/shadowdiff
(cd "$example/candidate" && GOFLAGS=-mod=mod go build -o "$work/candidate" .)
if [ ! -x "$work/venv/bin/python" ] || ! cmp -s "$example/legacy/requirements.txt" "$work/venv/requirements.txt"; then
  rm -rf "$work/venv"
  python3 -m venv "$work/venv"
  "$work/venv/bin/pip" install --quiet --disable-pip-version-check -r "$example/legacy/requirements.txt"
  cp "$example/legacy/requirements.txt" "$work/venv/requirements.txt"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() {
  for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "e2e: nothing listens on port $1" >&2; exit 1
}
