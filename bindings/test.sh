#!/usr/bin/env bash
# The Kotlin/Swift binding's checks, on a fresh machine:
#   1. builds liborbitmq_uniffi and uniffi-bindgen (ci profile) and checks that the committed
#      Kotlin and Swift sources are what they generate (bindings/generate.sh --check);
#   2. builds the server unless ORBITMQ_BIN names one;
#   3. runs the Kotlin JUnit tests (bindings/kotlin, which also builds and runs examples/kotlin)
#      against the library and a real `orbitmq standalone`.
# Swift is not compiled here (no toolchain): see bindings/swift/README.md.
#
# Usage: bindings/test.sh      (honours CARGO_TARGET_DIR and ORBITMQ_BIN; Maven must reach
#                               Maven Central once, or have ~/.m2 warm)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
target=${CARGO_TARGET_DIR:-target}
[[ "$target" = /* ]] || target=$PWD/$target

PROFILE=ci bindings/generate.sh --check

if [[ -z "${ORBITMQ_BIN:-}" ]]; then
  cargo build -q -p orbitmq-server --profile ci
  ORBITMQ_BIN=$target/ci/orbitmq
fi
export ORBITMQ_BIN

reports=bindings/kotlin/target/surefire-reports
rm -rf "$reports"
mvn -q -B -f bindings/kotlin/pom.xml test -Dorbitmq.lib.dir="$target/ci"
# Maven -q prints nothing on success: say what ran, and fail if nothing did.
tests=$(cat "$reports"/TEST-*.xml 2>/dev/null | grep -o '<testsuite [^>]*tests="[0-9]*"' \
  | sed 's/.*tests="\([0-9]*\)"/\1/' | paste -sd+ - | bc)
if [[ -z "$tests" || "$tests" -eq 0 ]]; then
  echo "no Kotlin tests ran" >&2
  exit 1
fi
echo "Kotlin binding: $tests JUnit tests passed" >&2
