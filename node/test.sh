#!/usr/bin/env bash
# The Node.js package's test command, from a fresh checkout: install the pinned tools
# (npm ci), build the addon with the workspace's ci profile (dev with line tables only: never
# --release here), check the committed index.js/index.d.ts are what the build generates,
# check the packed tarball installs and loads, then run the tests (node --test __test__/)
# against a real `orbitmq standalone`.
#
# Usage: node/test.sh          (server: $ORBITMQ_BIN, else built with the ci profile)
set -euo pipefail
NODE_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$NODE_DIR")
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
step() { printf '\n--> node: %s\n' "$*" >&2; }
npm_ci() { (cd "$1" && npm ci --no-audit --no-fund --loglevel=error); }

step "npm ci (@napi-rs/cli, typescript, rocketmq-client-nodejs for interop)"
npm_ci "$NODE_DIR"

step "build the addon (napi build --platform --profile ci: the dev profile with line tables only)"
(cd "$NODE_DIR" && npm run --silent build)

step "the committed index.js and index.d.ts are what the build generates"
git -C "$REPO" diff --exit-code -- node/index.js node/index.d.ts

if [[ -z ${ORBITMQ_BIN:-} ]]; then
  step "build the server (cargo build -p orbitmq-server --profile ci)"
  (cd "$REPO" && cargo build -q -p orbitmq-server --profile ci)
  ORBITMQ_BIN=$TARGET/ci/orbitmq
fi
export ORBITMQ_BIN

step "npm pack; the tarball installs into an empty project and loads"
PACK=$(mktemp -d)
trap 'rm -rf "$PACK"' EXIT
(cd "$NODE_DIR" && npm pack --silent --pack-destination "$PACK" >/dev/null)
(cd "$PACK" && npm init -y >/dev/null && npm install --no-audit --no-fund --loglevel=error ./orbitmq-*.tgz \
  && node -e "const o = require('orbitmq'); for (const k of ['Producer','PushConsumer','PullConsumer','SimpleConsumer','Admin','ConsumeResult','ConsumerModel']) if (!o[k]) throw new Error('no ' + k)" \
  && node --input-type=module -e "import { Producer } from 'orbitmq'; if (typeof Producer !== 'function') throw new Error('ESM')")

step "examples/node: npm ci (links ../../node as orbitmq)"
npm_ci "$REPO/examples/node"

step "node --test __test__/ (server: $ORBITMQ_BIN)"
cd "$NODE_DIR"
npm test
