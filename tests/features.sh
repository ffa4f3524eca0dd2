#!/usr/bin/env bash
# orbitmq-core builds, and passes clippy, with each feature alone (`cargo test --workspace`
# unifies features, so it never compiles a client-only core), and the client-only dependency
# tree holds none of the server's parts: no storage crate, no HTTP/2 server, no signal
# handling. The language bindings depend on exactly that client-only core.
#
# Usage: tests/features.sh     (part of tests/run-all.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

for features in "client" "broker" ""; do
  echo "orbitmq-core --no-default-features --features '$features'" >&2
  cargo clippy -q -p orbitmq-core --no-default-features --features "$features" --all-targets \
    --profile ci -- -D warnings
done

# `cargo tree -e normal,features` lists every crate with the features it is built with, as
# `name feature "f"` lines; a server-only part showing up here is a gate that leaks.
tree=$(cargo tree -q -p orbitmq-core --no-default-features --features client \
  -e normal,features --prefix none)
forbidden=(
  'memmap2'                  # storage: mapped CommitLog segments
  'crc32c'                   # storage: record checksums
  'lru '                     # storage: open-file cache
  'rustix'                   # storage: fsync, statvfs
  'prometheus-client'        # broker metrics
  'rcgen'                    # broker: self-signed certificates
  'hyper feature "server"'   # the HTTP/2 server
  'tonic feature "server"'   # tonic's server transport
  'tonic feature "router"'
  'tokio feature "signal"'   # signal handling belongs to the binary
  'tokio feature "rt-multi-thread"'  # the core never creates a runtime
)
failed=0
for pattern in "${forbidden[@]}"; do
  if grep -q "^$pattern" <<<"$tree"; then
    echo "client-only orbitmq-core pulls in a server part: $pattern" >&2
    grep "^$pattern" <<<"$tree" | sort -u | head -3 >&2
    failed=1
  fi
done
# And the tree is the one asked for: the client's own parts are there.
for pattern in 'tonic feature "channel"' 'rustls' 'prost'; do
  grep -q "^$pattern" <<<"$tree" || { echo "client-only tree lacks $pattern" >&2; failed=1; }
done
(( failed == 0 )) || exit 1
echo "client-only orbitmq-core: no storage, no HTTP/2 server, no signals" >&2
