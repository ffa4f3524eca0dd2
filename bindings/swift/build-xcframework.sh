#!/usr/bin/env bash
# macOS only: builds liborbitmq_uniffi.a for macOS and iOS (device and simulator) and packs it
# with the generated header and module map into bindings/swift/OrbitMQFFI.xcframework, the binary
# target Package.swift names. Needs Xcode and `rustup target add aarch64-apple-darwin
# x86_64-apple-darwin aarch64-apple-ios aarch64-apple-ios-sim`.
#
# Usage: bindings/swift/build-xcframework.sh        (PROFILE=release by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
profile=${PROFILE:-release}
target=${CARGO_TARGET_DIR:-$PWD/target}
for t in aarch64-apple-darwin x86_64-apple-darwin aarch64-apple-ios aarch64-apple-ios-sim; do
  cargo rustc -p orbitmq-uniffi --lib --profile "$profile" --target "$t" --crate-type staticlib
done
lib() { echo "$target/$1/$profile/liborbitmq_uniffi.a"; }
mkdir -p "$target/universal-macos"
lipo -create "$(lib aarch64-apple-darwin)" "$(lib x86_64-apple-darwin)" \
  -output "$target/universal-macos/liborbitmq_uniffi.a"
headers=bindings/swift/Sources/OrbitMQFFI/include
rm -rf bindings/swift/OrbitMQFFI.xcframework
xcodebuild -create-xcframework \
  -library "$target/universal-macos/liborbitmq_uniffi.a" -headers "$headers" \
  -library "$(lib aarch64-apple-ios)" -headers "$headers" \
  -library "$(lib aarch64-apple-ios-sim)" -headers "$headers" \
  -output bindings/swift/OrbitMQFFI.xcframework
echo "built bindings/swift/OrbitMQFFI.xcframework" >&2
