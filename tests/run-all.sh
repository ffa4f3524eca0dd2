#!/usr/bin/env bash
# Every OrbitMQ test, on a fresh machine: formatting, lints, the Rust suites (unit, storage
# crash/corruption/retention and the fault-injection crash suite, broker end-to-end, the
# orbitmq binary: admin, durability, 10k topics under ulimit -n 4096, clusters of name servers
# and replicated broker groups), the multi-host test bed (network namespaces), a 60 s chaos run
# of a sync_master group (kills, freezes, partitions: nothing acknowledged lost), bounded fuzzing, the
# protocol wire-contract check against the official RocketMQ Python client's descriptors, and
# Apache's official RocketMQ clients (Python, Node.js, Java) against a real orbitmq standalone,
# and the web console (fresh built assets; Chromium driving it against orbitmq standalone).
# Installs what it needs (Python venvs under target/, npm packages, Maven artifacts) and
# starts the servers its tests need itself.
#
# Usage: tests/run-all.sh          (CI runs exactly this, through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

step() { printf '\n==> %s\n' "$*" >&2; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (all targets, -D warnings)"
cargo clippy --workspace --all-targets --profile ci -- -D warnings

step "orbitmq-core with each feature alone; the client-only tree has no server parts"
tests/features.sh

step "cargo test (workspace)"
cargo test --workspace --profile ci

step "fuzz: each cargo-fuzz target ${FUZZ_SECONDS:-30} s (nightly)"
tests/fuzz.sh

step "protocol: our .proto files vs the official rocketmq-python-client descriptors"
VENV=target/venv-compat
if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check -r tests/compat/requirements.txt
"$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/compat/check_proto_descriptors.py

step "multi-host test bed: name servers and brokers in network namespaces (loopback where not permitted)"
cargo build -q -p orbitmq-server --profile ci
ORBITMQ_BIN="${CARGO_TARGET_DIR:-$PWD/target}/ci/orbitmq" tests/cluster/smoke.sh

step "chaos: 60 s of kills, freezes and partitions on a sync_master + sync flush group; nothing acknowledged may be lost"
cargo build -q --profile ci -p orbitmq-server -p orbitmq-tests --bin orbitmq --bin chaos_client
tests/perf/chaos.sh --duration 60 --role sync_master --flush sync

step "official RocketMQ clients (Python, Node.js, Java) against orbitmq standalone"
cargo build -q -p orbitmq-server --profile ci
ORBITMQ_BIN="$PWD/target/ci/orbitmq" tests/compat/run-official-clients.sh

step "the orbitmq Python package: stubtest and pytest against orbitmq standalone"
ORBITMQ_BIN="${CARGO_TARGET_DIR:-$PWD/target}/ci/orbitmq" python/test.sh

step "the orbitmq Node.js package: npm ci, addon build, fresh index.d.ts, node --test"
ORBITMQ_BIN="${CARGO_TARGET_DIR:-$PWD/target}/ci/orbitmq" node/test.sh

step "the Kotlin/Swift binding (UniFFI): generation fresh, Kotlin JUnit against orbitmq standalone"
ORBITMQ_BIN="${CARGO_TARGET_DIR:-$PWD/target}/ci/orbitmq" bindings/test.sh

step "the console's assets: dashboard/dist is what npm ci && npm run build make from dashboard/src"
tests/dashboard/fresh.sh

step "the console in Chromium against orbitmq standalone: topics, produce, lookup, lag, reset, credentials"
ORBITMQ_BIN="${CARGO_TARGET_DIR:-$PWD/target}/ci/orbitmq" tests/dashboard/browser.sh

step "all tests passed"
