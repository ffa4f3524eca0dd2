#!/usr/bin/env bash
# Fuzzes what takes outside input, for a bounded time per target, and fails on any crash
# (a panic, an overflow: the targets are built with debug assertions, or a sanitizer report):
#   record          CommitLog record check/verify/decode/dispatch_view; encode+seal round trip
#   offset_msg_id   offset_msg_id decoding (round trip with encode)
#   receipt_handle  receipt and recall handles sent back by clients (ack, change, recall)
#   index_file      index files with arbitrary contents, through open + key/id lookups
#   consume_queue   ConsumeQueue files with arbitrary contents, through open + queue reads
#   grpc            every MessagingService handler but Telemetry, on one in-process broker
# The targets live in fuzz/ (crate orbitmq-fuzz, outside the workspace: nightly, its own
# Cargo.lock and target dir). Seed inputs are in fuzz/seeds/<target>; what a run learns goes
# to fuzz/corpus/<target> (not committed), crashes to fuzz/artifacts/<target>. A crash found
# here gets fixed and becomes a regression test in the normal suites: `cargo test` does not
# run corpora.
#
# Needs rustup; installs the nightly toolchain and cargo-fuzz if they are missing.
# Usage: tests/fuzz.sh [target…]      FUZZ_SECONDS=30 per target (default)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
each=${FUZZ_SECONDS:-30}

if ! cargo +nightly --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(record offset_msg_id receipt_handle index_file consume_queue grpc)
fi

# The targets' store directories (libFuzzer exits without dropping them).
cleanup() { rm -rf "${TMPDIR:-/tmp}"/orbitmq-fuzz-* /dev/shm/orbitmq-fuzz-* 2>/dev/null || true; }
trap cleanup EXIT

fuzz=(cargo +nightly fuzz)
flags=(-O --debug-assertions)
"${fuzz[@]}" build "${flags[@]}"
for t in "${targets[@]}"; do
  printf '\n==> fuzz %s for %s s\n' "$t" "$each" >&2
  mkdir -p "corpus/$t"
  corpora=("corpus/$t")
  if [[ -d "seeds/$t" ]]; then
    corpora+=("seeds/$t")
  fi
  # libFuzzer's progress lines (NEW, REDUCE, pulse) are left out of the log.
  if ! (
    set -o pipefail
    "${fuzz[@]}" run "${flags[@]}" "$t" "${corpora[@]}" -- \
      -max_total_time="$each" -max_len=4096 -len_control=0 -timeout=20 -rss_limit_mb=4096 \
      -print_final_stats=1 2>&1 |
      { grep -v '^INFO:\|^#[0-9]*[[:space:]]*\(NEW\|REDUCE\|pulse\)\|NEW_FUNC' || true; } >&2
  ); then
    echo "fuzz target $t crashed: see fuzz/artifacts/$t (reproduce: cd fuzz && cargo +nightly fuzz run ${flags[*]} $t <artifact>)" >&2
    exit 1
  fi
done
printf '\n==> fuzzing passed: %s\n' "${targets[*]}" >&2
