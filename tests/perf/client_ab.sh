#!/usr/bin/env bash
# gRPC produce and consume rates of two load generators (`orbitmq bench` of two builds) against
# one server build, measured side by side in one run: what grpc_ab.sh does for two servers,
# for two clients (issue 17: `bench` on the Rust SDK against the raw-gRPC bench it replaced).
#
# Each round starts SERVER_BIN on a fresh data directory (async flush) once per client
# (alternating the clients' order round by round: A B, B A, …) and runs with that client:
#   produce --batch 32 --inflight 64 --count COUNT     (1 KiB bodies, topic bench)
#   produce --batch 1  --inflight 64 --count COUNT
#   consume --group c<round> --count COUNT              (16 receivers, the first COUNT messages)
# then prints each figure's median per client and the ratio B/A, and the server's CPU time per
# message (user + system, from /proc).
#
# Usage: SERVER_BIN=… tests/perf/client_ab.sh A_CLIENT_BIN B_CLIENT_BIN
#   Env: SERVER_BIN (default B_CLIENT_BIN), ROUNDS (3), COUNT (300000), WORK (a temp dir),
#   PORT (18700).
set -euo pipefail

[[ $# -eq 2 ]] || { sed -n 2,16p "$0"; exit 2; }
CLIENTS=("$@")
NAMES=(A B)
SERVER_BIN=${SERVER_BIN:-$2}
ROUNDS=${ROUNDS:-3}
COUNT=${COUNT:-300000}
PORT=${PORT:-18700}
WORK=${WORK:-$(mktemp -d /tmp/client-ab.XXXXXX)}
mkdir -p "$WORK"
RESULTS="$WORK/results.txt"
: > "$RESULTS"
# shellcheck source=server.sh
source "$(dirname "$0")/server.sh"

server_ticks() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }

# Runs one bench command with client $1 and records "client figure msgs_per_sec p50_us p99_us
# cpu_us_per_msg".
bench() {
  local client=$1 bin=$2 figure=$3; shift 3
  local line t0 t1
  t0=$(server_ticks)
  line=$("$bin" bench "$@" --endpoints "127.0.0.1:$PORT" 2>"$WORK/bench.err" | tail -n 1)
  [[ "$line" == "{"* ]] || { echo "$client $figure failed:" >&2; tail -n 3 "$WORK/bench.err" >&2; exit 1; }
  t1=$(server_ticks)
  python3 -c 'import sys,json; r=json.loads(sys.argv[3]); print(sys.argv[1], sys.argv[2], r["msgs_per_sec"], r["p50_us"], r["p99_us"], round((int(sys.argv[5]) - int(sys.argv[4])) * 1e6 / int(sys.argv[6]) / r["msgs"], 2))' \
    "$client" "$figure" "$line" "$t0" "$t1" "$(getconf CLK_TCK)" >> "$RESULTS"
}

for round in $(seq 1 "$ROUNDS"); do
  order=(0 1)
  if (( round % 2 == 0 )); then order=(1 0); fi
  for i in "${order[@]}"; do
    name=${NAMES[$i]} bin=${CLIENTS[$i]}
    start_server "$SERVER_BIN"
    bench "$name" "$bin" produce_b32 produce --count "$COUNT" --batch 32 --inflight 64
    bench "$name" "$bin" produce_b1 produce --count "$COUNT" --batch 1 --inflight 64
    bench "$name" "$bin" consume consume --group "c$round" --count "$COUNT"
    stop_server
    echo "round $round/$ROUNDS $name: $(tail -n 3 "$RESULTS" | awk '{printf "%s %s  ", $2, $3}')" >&2
  done
done

python3 - "$RESULTS" "${CLIENTS[@]}" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    client, figure, rate, p50, p99, cpu = line.split()
    runs.setdefault((client, figure), []).append((float(rate), int(p50), int(p99), float(cpu)))
print(f"A = {sys.argv[2]}\nB = {sys.argv[3]}")
out = {}
for figure in ("produce_b32", "produce_b1", "consume"):
    meds = {}
    for c in ("A", "B"):
        r = runs[(c, figure)]
        meds[c] = statistics.median(x[0] for x in r)
        p50 = statistics.median(x[1] for x in r) / 1000
        p99 = statistics.median(x[2] for x in r) / 1000
        cpu = statistics.median(x[3] for x in r)
        print(f"{figure:<12} {c}: median {meds[c]:>9.0f} msgs/s  runs {[int(x[0]) for x in r]}"
              f"  p50 {p50:.1f} ms p99 {p99:.1f} ms  server CPU {cpu:.1f} us/msg")
        out[f"{c}_{figure}"] = meds[c]
        out[f"{c}_{figure}_cpu_us_per_msg"] = cpu
    ratio = meds["B"] / meds["A"]
    print(f"{figure:<12} B/A = {ratio:.3f}")
    out[f"ratio_{figure}"] = round(ratio, 3)
print(json.dumps({"bench": "client_ab", **out}))
PY
