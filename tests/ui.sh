#!/usr/bin/env bash
# tests/ui.sh: the review UI's real-browser test (tests/ui/browser.mjs).
# Runs the built binary (SHADOWDIFF_BIN, default target/debug/shadowdiff)
# behind two Node backends and drives Chromium (CHROMIUM, default
# /usr/bin/chromium: Debian's `chromium` package) with playwright-core,
# installed from tests/ui/package-lock.json into tests/ui/node_modules.
# Screenshots, one per page, go to SHADOWDIFF_UI_SCREENSHOTS (default
# target/ui-screenshots). Exits non-zero, saying what failed, on any failure.
set -euo pipefail

cd "$(dirname "$0")/.."

# The binary this checkout builds (a no-op after `cargo test`), unless one is given.
if [ -z "${SHADOWDIFF_BIN:-}" ]; then
    cargo build --locked --quiet --bin shadowdiff
fi
bin=${SHADOWDIFF_BIN:-${CARGO_TARGET_DIR:-target}/debug/shadowdiff}
if [ ! -x "$bin" ]; then
    echo "tests/ui.sh: no binary at $bin" >&2
    exit 1
fi
chromium=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
    echo "tests/ui.sh: no Chromium at $chromium; install it (apt-get install chromium) or set CHROMIUM" >&2
    exit 1
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "tests/ui.sh: needs Node.js 20 or newer and npm" >&2
    exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
    echo "tests/ui.sh: needs Node.js 20 or newer; found $(node --version)" >&2
    exit 1
fi

# Exactly the locked playwright-core; it downloads no browser.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
(cd tests/ui && npm ci --no-audit --no-fund --loglevel=error)

SHADOWDIFF_BIN=$(realpath "$bin") \
CHROMIUM=$chromium \
SHADOWDIFF_UI_SCREENSHOTS=$(realpath -m "${SHADOWDIFF_UI_SCREENSHOTS:-target/ui-screenshots}") \
    node tests/ui/browser.mjs
