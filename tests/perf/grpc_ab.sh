#!/usr/bin/env bash
# gRPC produce and consume rates of two server builds, measured side by side in one run.
#
# Each round runs every server given (alternating their order round by round: A B, B A, …),
# each on a fresh data directory with async flush, and loads it with one client binary:
#   produce --batch 32 --inflight 64 --count COUNT     (1 KiB bodies, topic bench)
#   produce --batch 1  --inflight 64 --count COUNT
#   consume --group c<round> --count COUNT              (16 receivers, the first COUNT messages)
# then prints each figure's median per server and the ratio B/A, and the server's CPU time per
# message (user + system, from /proc: less disturbed by other load on a shared machine than the
# rate is).
#
# Usage: tests/perf/grpc_ab.sh A_BIN [B_BIN]
#   Env: ROUNDS (3), COUNT (300000), CLIENT_BIN (the load generator; default the last server
#   binary: one client for every server, so only the server differs), WORK (a temp dir),
#   PORT (18600).
# With one binary it just measures it ROUNDS times.
set -euo pipefail

[[ $# -ge 1 ]] || { sed -n 2,16p "$0"; exit 2; }
BINS=("$@")
NAMES=(A B C D E F)
ROUNDS=${ROUNDS:-3}
COUNT=${COUNT:-300000}
CLIENT_BIN=${CLIENT_BIN:-${BINS[-1]}}
PORT=${PORT:-18600}
WORK=${WORK:-$(mktemp -d /tmp/grpc-ab.XXXXXX)}
mkdir -p "$WORK"
RESULTS="$WORK/results.txt"
: > "$RESULTS"
# shellcheck source=server.sh
source "$(dirname "$0")/server.sh"

# The server's CPU time so far (user + system), clock ticks.
server_ticks() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }

# Runs one bench command and records "server figure msgs_per_sec p50_us p99_us cpu_us_per_msg".
bench() {
  local server=$1 figure=$2; shift 2
  local line t0 t1
  t0=$(server_ticks)
  line=$("$CLIENT_BIN" bench "$@" --endpoints "127.0.0.1:$PORT" 2>/dev/null | tail -n 1)
  t1=$(server_ticks)
  python3 -c 'import sys,json; r=json.loads(sys.argv[3]); print(sys.argv[1], sys.argv[2], r["msgs_per_sec"], r["p50_us"], r["p99_us"], round((int(sys.argv[5]) - int(sys.argv[4])) * 1e6 / int(sys.argv[6]) / r["msgs"], 2))' \
    "$server" "$figure" "$line" "$t0" "$t1" "$(getconf CLK_TCK)" >> "$RESULTS"
}

for round in $(seq 1 "$ROUNDS"); do
  order=("${!BINS[@]}")
  if (( round % 2 == 0 )); then order=($(printf '%s\n' "${order[@]}" | tac)); fi
  for i in "${order[@]}"; do
    name=${NAMES[$i]}
    start_server "${BINS[$i]}"
    bench "$name" produce_b32 produce --count "$COUNT" --batch 32 --inflight 64
    bench "$name" produce_b1 produce --count "$COUNT" --batch 1 --inflight 64
    bench "$name" consume consume --group "c$round" --count "$COUNT"
    stop_server
    echo "round $round/$ROUNDS $name: $(tail -n 3 "$RESULTS" | awk '{printf "%s %s  ", $2, $3}')" >&2
  done
done

python3 - "$RESULTS" "${BINS[@]}" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    server, figure, rate, p50, p99, cpu = line.split()
    runs.setdefault((server, figure), []).append((float(rate), int(p50), int(p99), float(cpu)))
servers = sorted({s for s, _ in runs})
for i, s in enumerate(servers):
    print(f"{s} = {sys.argv[2 + i]}")
out = {}
for figure in ("produce_b32", "produce_b1", "consume"):
    meds, cpus = {}, {}
    for s in servers:
        r = runs[(s, figure)]
        meds[s] = statistics.median(x[0] for x in r)
        p50 = statistics.median(x[1] for x in r) / 1000
        p99 = statistics.median(x[2] for x in r) / 1000
        cpus[s] = statistics.median(x[3] for x in r)
        print(f"{figure:<12} {s}: median {meds[s]:>9.0f} msgs/s  runs {[int(x[0]) for x in r]}"
              f"  p50 {p50:.1f} ms p99 {p99:.1f} ms  server CPU {cpus[s]:.1f} us/msg")
        out[f"{s}_{figure}"] = meds[s]
        out[f"{s}_{figure}_cpu_us_per_msg"] = cpus[s]
    if len(servers) == 2:
        ratio = meds[servers[1]] / meds[servers[0]]
        cpu_ratio = cpus[servers[1]] / cpus[servers[0]]
        print(f"{figure:<12} {servers[1]}/{servers[0]} = {ratio:.3f}  (server CPU per message"
              f" {cpu_ratio:.3f})")
        out[f"ratio_{figure}"] = round(ratio, 3)
        out[f"cpu_ratio_{figure}"] = round(cpu_ratio, 3)
print(json.dumps({"bench": "grpc_ab", **out}))
PY
