#!/usr/bin/env bash
# The console's browser test: a real `orbitmq standalone` driven through its web UI in headless
# Chromium (tests/dashboard/browser.test.mjs). Installs Chromium (apt-get) and playwright-core
# (npm ci) when missing. ORBITMQ_BIN: the binary (default ${CARGO_TARGET_DIR:-target}/ci/orbitmq);
# ORBITMQ_DASHBOARD_DIR is passed on (the server then serves the assets from that directory).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export ORBITMQ_BIN="${ORBITMQ_BIN:-${CARGO_TARGET_DIR:-$root/target}/ci/orbitmq}"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$ORBITMQ_BIN" ]; then
  echo "no orbitmq binary at $ORBITMQ_BIN (build it: cargo build --profile ci --bin orbitmq, or set ORBITMQ_BIN)" >&2
  exit 1
fi
if [ ! -x "$CHROMIUM" ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium
fi
cd "$here"
npm ci --no-audit --no-fund
node --test --test-reporter=spec --test-concurrency=1 --test-timeout=300000 browser.test.mjs
