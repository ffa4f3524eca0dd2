#!/usr/bin/env bash
# Store append rate vs the disk's own rate, measured side by side in one run.
#
# Alternates, ROUNDS times (default 3): dd buffered (1 MiB blocks, 1 GiB), dd with
# oflag=dsync (64 KiB blocks), `orbitmq bench store --flush async` (1 KiB messages) and
# `--flush sync`; then prints each figure's median and the ratios store/disk:
#   async store MiB/s / dd buffered MiB/s   (target >= 0.7)
#   sync store MiB/s  / dd 64 KiB dsync MiB/s (target >= 0.5)
# Store MiB/s counts message bodies only (record headers are overhead, not credit).
#
# Usage: tests/perf/store_vs_disk.sh [DIR]   (DIR: where to write; default a temp dir under
#        ./target). Env: ROUNDS, ASYNC_COUNT, SYNC_COUNT, DSYNC_COUNT, ORBITMQ_BIN.
set -euo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=${ROUNDS:-3}
ASYNC_COUNT=${ASYNC_COUNT:-1000000}   # 1 KiB each: ~1 GiB, the size dd writes
SYNC_COUNT=${SYNC_COUNT:-300000}
DSYNC_COUNT=${DSYNC_COUNT:-2048}      # 64 KiB each: 128 MiB
if [[ -z "${ORBITMQ_BIN:-}" ]]; then
  echo "building orbitmq (release)..." >&2
  cargo build --release -q -p orbitmq-server
  ORBITMQ_BIN=target/release/orbitmq
fi
mkdir -p target
WORK=${1:-$(mktemp -d "$PWD/target/store-vs-disk.XXXXXX")}
mkdir -p "$WORK"
trap 'rm -rf "$WORK"/dd.bin "$WORK"/store' EXIT
RESULTS="$WORK/results.txt"
: > "$RESULTS"

# Every measurement starts with no dirty pages left by the previous one.
settle() { sync; sleep 1; }

# dd prints "N bytes (...) copied, S s, ..."; record MiB/s from N and S.
dd_mib() {
  local out
  out=$(dd "$@" 2>&1 | tail -n 1)
  python3 -c 'import sys,re; m=re.match(r"(\d+) bytes.* copied, ([\d.]+) s", sys.argv[1]); print(round(int(m[1])/float(m[2])/1048576, 1))' "$out"
}

store_mib() {
  rm -rf "$WORK/store"
  "$ORBITMQ_BIN" bench store --dir "$WORK/store" --size 1024 "$@" 2>/dev/null | tail -n 1 |
    python3 -c 'import sys,json; print(json.load(sys.stdin)["mib_per_sec"])'
}

for round in $(seq 1 "$ROUNDS"); do
  rm -f "$WORK/dd.bin"; settle
  v=$(dd_mib if=/dev/zero of="$WORK/dd.bin" bs=1M count=1024); echo "dd_buffered $v" >> "$RESULTS"
  rm -f "$WORK/dd.bin"; settle
  v=$(dd_mib if=/dev/zero of="$WORK/dd.bin" bs=64k count="$DSYNC_COUNT" oflag=dsync); echo "dd_dsync $v" >> "$RESULTS"
  rm -f "$WORK/dd.bin"; settle
  v=$(store_mib --count "$ASYNC_COUNT" --flush async); echo "store_async $v" >> "$RESULTS"
  rm -rf "$WORK/store"; settle
  v=$(store_mib --count "$SYNC_COUNT" --flush sync); echo "store_sync $v" >> "$RESULTS"
  rm -rf "$WORK/store"
  echo "round $round/$ROUNDS: $(tail -n 4 "$RESULTS" | tr '\n' ' ')" >&2
done

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name, value = line.split()
    runs.setdefault(name, []).append(float(value))
med = {k: statistics.median(v) for k, v in runs.items()}
print(f"{'figure':<14}{'median MiB/s':>14}   runs")
for k in ("dd_buffered", "dd_dsync", "store_async", "store_sync"):
    print(f"{k:<14}{med[k]:>14.1f}   {runs[k]}")
ra = med["store_async"] / med["dd_buffered"]
rs = med["store_sync"] / med["dd_dsync"]
print(f"async store / dd buffered   = {ra:.2f}  (target >= 0.70)")
print(f"sync store  / dd 64k dsync  = {rs:.2f}  (target >= 0.50)")
print(json.dumps({"bench": "store_vs_disk", "medians_mib_per_sec": med,
                  "ratio_async": round(ra, 3), "ratio_sync": round(rs, 3)}))
PY
