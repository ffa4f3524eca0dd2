#!/usr/bin/env bash
# Produce and consume rates by message type (normal, FIFO, delay) of one server build.
#
# Each round starts a fresh server (async flush) per type and runs, with 1 KiB bodies and 64
# requests in flight:
#   normal  produce --batch 32; consume (16 receivers)
#   fifo    produce --message-type fifo --message-groups 64, --batch 32 and --batch 1 (two
#           topics); consume the batch-32 topic with a FIFO group (--fifo) and, for comparison,
#           with a normal group
#   delay   produce --message-type delay --delay-ms 1000 --batch 32; then consume (rate, and how
#           late the messages were stored in their topic and received)
# then prints each figure's median over the rounds.
#
# Usage: tests/perf/grpc_types.sh BIN
#   Env: ROUNDS (3), COUNT (300000), WORK (a temp dir), PORT (18700).
set -euo pipefail

[[ $# -eq 1 ]] || { sed -n 2,17p "$0"; exit 2; }
BIN=$1
ROUNDS=${ROUNDS:-3}
COUNT=${COUNT:-300000}
PORT=${PORT:-18700}
WORK=${WORK:-$(mktemp -d /tmp/grpc-types.XXXXXX)}
mkdir -p "$WORK"
RESULTS="$WORK/results.txt"
: > "$RESULTS"
# shellcheck source=server.sh
source "$(dirname "$0")/server.sh"

# Runs one bench command and records "figure <its JSON result line>".
bench() {
  local figure=$1; shift
  local line
  line=$("$BIN" bench "$@" --endpoints "127.0.0.1:$PORT" 2>"$WORK/bench.err" | tail -n 1)
  [[ "$line" == "{"* ]] || { echo "$figure failed:" >&2; tail -n 3 "$WORK/bench.err" >&2; exit 1; }
  echo "$figure $line" >> "$RESULTS"
  echo "round $round: $figure $(python3 -c 'import sys,json; print(json.loads(sys.argv[1])["msgs_per_sec"])' "$line") msgs/s" >&2
}

for round in $(seq 1 "$ROUNDS"); do
  start_server "$BIN"
  bench normal_produce_b32 produce --count "$COUNT" --batch 32 --inflight 64
  bench normal_consume consume --group "c$round" --count "$COUNT"
  stop_server

  start_server "$BIN"
  bench fifo_produce_b32 produce --topic fifo-bench --message-type fifo --message-groups 64 \
    --count "$COUNT" --batch 32 --inflight 64
  bench fifo_produce_b1 produce --topic fifo-bench-b1 --message-type fifo --message-groups 64 \
    --count "$COUNT" --batch 1 --inflight 64
  bench fifo_consume_fifo_group consume --topic fifo-bench --group "f$round" --fifo --count "$COUNT"
  bench fifo_consume_normal_group consume --topic fifo-bench --group "n$round" --count "$COUNT"
  stop_server

  start_server "$BIN"
  bench delay_produce_b32 produce --topic delay-bench --message-type delay --delay-ms 1000 \
    --count "$COUNT" --batch 32 --inflight 64
  bench delay_consume consume --topic delay-bench --group "d$round" --count "$COUNT"
  stop_server
done

python3 - "$RESULTS" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    figure, result = line.split(" ", 1)
    runs.setdefault(figure, []).append(json.loads(result))
out = {}
for figure, rs in runs.items():
    rates = [r["msgs_per_sec"] for r in rs]
    med = lambda k: statistics.median(r[k] for r in rs)
    text = (f"{figure:<26} median {med('msgs_per_sec'):>9.0f} msgs/s  runs {[int(x) for x in rates]}"
            f"  p50 {med('p50_us') / 1000:.1f} ms p99 {med('p99_us') / 1000:.1f} ms")
    out[figure] = med("msgs_per_sec")
    if "lateness_p50_ms" in rs[0]:
        for k in ("lateness_p50_ms", "lateness_p99_ms", "receive_lateness_p50_ms",
                  "receive_lateness_p99_ms"):
            out[f"{figure}_{k}"] = med(k)
        text += (f"\n{'':<26} lateness (store - due) p50 {med('lateness_p50_ms'):.0f} ms"
                 f" p99 {med('lateness_p99_ms'):.0f} ms; (receive - due) p50"
                 f" {med('receive_lateness_p50_ms'):.0f} ms p99 {med('receive_lateness_p99_ms'):.0f} ms"
                 f"  runs {[(r['lateness_p50_ms'], r['lateness_p99_ms']) for r in rs]}")
    print(text)
print(json.dumps({"bench": "grpc_types", **out}))
PY
