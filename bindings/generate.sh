#!/usr/bin/env bash
# Builds the orbitmq-uniffi library and regenerates the Kotlin and Swift bindings from it:
#   bindings/kotlin/src/main/kotlin/io/orbitmq/orbitmq.kt           (package io.orbitmq)
#   bindings/swift/Sources/OrbitMQ/OrbitMQ.swift                   (module OrbitMQ)
#   bindings/swift/Sources/OrbitMQFFI/include/{OrbitMQFFI.h,module.modulemap}
# All are committed. With --check, writes nothing and fails if the committed files differ from a
# fresh generation (CI).
#
# Usage: bindings/generate.sh [--check]     (PROFILE=ci by default; CARGO_TARGET_DIR is honoured)
set -euo pipefail
cd "$(dirname "$0")/.."
check=false
[[ "${1:-}" == "--check" ]] && check=true
profile=${PROFILE:-ci}
target=${CARGO_TARGET_DIR:-$PWD/target}
out_dir=$target/$profile
[[ "$profile" == dev ]] && out_dir=$target/debug

cargo build -q -p orbitmq-uniffi --features bindgen --profile "$profile"
case "$(uname -s)" in
  Darwin) lib=$out_dir/liborbitmq_uniffi.dylib ;;
  *) lib=$out_dir/liborbitmq_uniffi.so ;;
esac

gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT
# --no-format: the output must not depend on whether ktlint or swiftformat is installed.
"$out_dir/uniffi-bindgen" generate --library "$lib" --no-format \
  --language kotlin --out-dir "$gen/kotlin-out"
"$out_dir/uniffi-bindgen" generate --library "$lib" --no-format \
  --language swift --out-dir "$gen/swift-out"

mkdir -p "$gen/tree/kotlin/src/main/kotlin/io/orbitmq" "$gen/tree/swift/Sources/OrbitMQ" \
  "$gen/tree/swift/Sources/OrbitMQFFI/include"
cp "$gen/kotlin-out/io/orbitmq/orbitmq.kt" "$gen/tree/kotlin/src/main/kotlin/io/orbitmq/"
cp "$gen/swift-out/OrbitMQ.swift" "$gen/tree/swift/Sources/OrbitMQ/"
cp "$gen/swift-out/OrbitMQFFI.h" "$gen/tree/swift/Sources/OrbitMQFFI/include/"
cp "$gen/swift-out/OrbitMQFFI.modulemap" "$gen/tree/swift/Sources/OrbitMQFFI/include/module.modulemap"

files=(
  kotlin/src/main/kotlin/io/orbitmq/orbitmq.kt
  swift/Sources/OrbitMQ/OrbitMQ.swift
  swift/Sources/OrbitMQFFI/include/OrbitMQFFI.h
  swift/Sources/OrbitMQFFI/include/module.modulemap
)
if $check; then
  stale=0
  for f in "${files[@]}"; do
    if ! diff -q "$gen/tree/$f" "bindings/$f" >/dev/null 2>&1; then
      echo "bindings/$f is not what bindings/generate.sh generates now" >&2
      diff -u "bindings/$f" "$gen/tree/$f" 2>&1 | head -20 >&2 || true
      stale=1
    fi
  done
  if ((stale)); then
    echo "run bindings/generate.sh and commit the result" >&2
    exit 1
  fi
  echo "generated Kotlin and Swift are fresh" >&2
else
  for f in "${files[@]}"; do
    mkdir -p "bindings/$(dirname "$f")"
    cp "$gen/tree/$f" "bindings/$f"
  done
  echo "regenerated ${#files[@]} files under bindings/ from $lib" >&2
fi
