#!/usr/bin/env bash
# OrbitMQ produce (and consume) against Redis 7 Streams XADD, measured side by side in one run.
#
# Each round runs four contenders, each on its own fresh server and data directory (order
# reversed every other round), 1 KiB messages:
#   orbitmq async   `orbitmq bench produce --batch 32 --inflight 64 --count COUNT` against
#                   `orbitmq standalone --flush-disk-type async`, then on the same server
#                   `orbitmq bench consume --group cN --count COUNT` (16 receivers, pop + ack)
#   orbitmq sync    the same produce (SYNC_COUNT messages) with `--flush-disk-type sync`
#   redis everysec  `redis-benchmark -P 32 -c CLIENTS --threads BENCH_THREADS -n REDIS_COUNT
#                   XADD bench '*' f <1024 bytes>` against redis-server with AOF on,
#                   `appendfsync everysec` (RDB snapshots and AOF rewrites off)
#   redis always    the same with `appendfsync always`
# then prints each figure's median, the server's CPU time per message (user + system from
# /proc), and the ratios orbitmq/redis with the targets of issue 16:
#   async produce >= 400k msgs/s and >= 2.5x redis everysec; sync produce >= 250k msgs/s;
#   consume >= 1.0x async produce.
#
# Usage: tests/perf/vs_redis.sh
#   Env: ROUNDS (3), COUNT (300000), SYNC_COUNT (300000), REDIS_COUNT (300000),
#        REDIS_CLIENTS (50), REDIS_PIPELINE (32), BENCH_THREADS (2: redis-benchmark threads),
#        ORBITMQ_BIN (default: builds target/release/orbitmq with cargo), WORK (a temp dir,
#        removed at the end unless given), KEEP_WORK=1 (keep it).
# Needs redis-server and redis-benchmark 7.x: installs the Debian packages redis-server and
# redis-tools with apt-get when they are missing (run as root). Takes about 2 minutes.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."
# shellcheck source-path=SCRIPTDIR source=peer_lib.sh
source "$HERE/peer_lib.sh"

ROUNDS=${ROUNDS:-3}
COUNT=${COUNT:-300000}
SYNC_COUNT=${SYNC_COUNT:-300000}
REDIS_COUNT=${REDIS_COUNT:-300000}
REDIS_CLIENTS=${REDIS_CLIENTS:-50}
REDIS_PIPELINE=${REDIS_PIPELINE:-32}
BENCH_THREADS=${BENCH_THREADS:-2}
SIZE=1024

if [[ -n "${WORK:-}" ]]; then
  mkdir -p "$WORK"
else
  WORK=$(mktemp -d /tmp/vs-redis.XXXXXX)
  [[ -n "${KEEP_WORK:-}" ]] || REMOVE_WORK=1
fi
REDIS_PID=

cleanup() {
  stop_orbitmq
  if [[ -n "$REDIS_PID" ]]; then stop_pid "$REDIS_PID" 60; REDIS_PID=; fi
  rm -rf "$WORK/data"
  if [[ -n "${REMOVE_WORK:-}" ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Redis 7 from Debian's packages.
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  log "installing redis-server and redis-tools (apt-get)..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq redis-server redis-tools >&2 \
    || { apt-get update -qq >&2 && apt-get install -y -qq redis-server redis-tools >&2; }
fi
REDIS_VERSION=$(redis-server --version | sed -n 's/.* v=\([0-9.]*\).*/\1/p')
[[ $REDIS_VERSION == 7.* ]] || die "need Redis 7.x, found '${REDIS_VERSION}'"
ensure_orbitmq_bin
log "orbitmq: $ORBITMQ_BIN; redis $REDIS_VERSION; work dir $WORK"

RESULTS="$WORK/results.txt"
: >"$RESULTS"
CLK_TCK=$(getconf CLK_TCK)
VALUE=$(head -c "$SIZE" /dev/zero | tr '\0' x)

# Every measurement starts with no dirty pages left by the previous one.
settle() { sync; sleep 1; }

# record CONTENDER FIGURE MSGS MSGS_PER_SEC TICKS P50_MS P99_MS
record() {
  local cpu
  cpu=$(python3 -c 'import sys; print(round(int(sys.argv[1]) * 1e6 / int(sys.argv[2]) / int(sys.argv[3]), 2))' \
    "$5" "$CLK_TCK" "$3")
  echo "$1 $2 $4 $cpu $6 $7" >>"$RESULTS"
  log "  $1 $2: $4 msgs/s, server CPU $cpu us/msg"
}

# orbitmq_bench CONTENDER FIGURE bench-args...: one `orbitmq bench` run against ORB_ADDR.
orbitmq_bench() {
  local contender=$1 figure=$2 line t0 t1
  shift 2
  t0=$(proc_ticks "$ORB_PID")
  line=$("$ORBITMQ_BIN" bench "$@" --endpoints "$ORB_ADDR" 2>"$WORK/bench.err" | tail -n 1)
  t1=$(proc_ticks "$ORB_PID")
  [[ $line == "{"* ]] || { tail -n 5 "$WORK/bench.err" >&2; die "orbitmq bench $* failed"; }
  # shellcheck disable=SC2046
  record "$contender" "$figure" $(python3 -c 'import sys, json; r = json.loads(sys.argv[1]); print(r["msgs"], r["msgs_per_sec"], r["p50_us"] / 1000, r["p99_us"] / 1000)' "$line" | {
    read -r msgs rate p50 p99; echo "$msgs $rate $((t1 - t0)) $p50 $p99"; })
}

run_orbitmq() {
  local flush=$1 round=$2
  settle
  start_orbitmq "$flush" "$WORK/data"
  log "orbitmq ($flush flush) ready on $ORB_ADDR in $ORB_READY_MS ms"
  if [[ $flush == async ]]; then
    orbitmq_bench orbitmq_async produce produce --count "$COUNT" --batch 32 --inflight 64 --size "$SIZE"
    orbitmq_bench orbitmq_async consume consume --group "c$round" --count "$COUNT"
  else
    orbitmq_bench orbitmq_sync produce produce --count "$SYNC_COUNT" --batch 32 --inflight 64 --size "$SIZE"
  fi
  stop_orbitmq
  rm -rf "$WORK/data"
}

run_redis() {
  local fsync=$1 port line t0 t1 i
  settle
  mkdir -p "$WORK/data"
  port=$(free_port)
  redis-server --bind 127.0.0.1 --port "$port" --dir "$WORK/data" --daemonize no \
    --appendonly yes --appendfsync "$fsync" --save '' --auto-aof-rewrite-percentage 0 \
    --logfile "$WORK/redis.log" &
  REDIS_PID=$!
  for ((i = 0; i < 100; i++)); do
    [[ $(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null) == PONG ]] && break
    sleep 0.1
  done
  [[ $(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null) == PONG ]] \
    || { tail -n 20 "$WORK/redis.log" >&2; die "redis-server did not start"; }
  log "redis-server (appendfsync $fsync) on 127.0.0.1:$port"
  t0=$(proc_ticks "$REDIS_PID")
  line=$(redis-benchmark -h 127.0.0.1 -p "$port" -c "$REDIS_CLIENTS" -P "$REDIS_PIPELINE" \
    --threads "$BENCH_THREADS" -n "$REDIS_COUNT" --csv XADD bench '*' f "$VALUE" | tail -n 1)
  t1=$(proc_ticks "$REDIS_PID")
  local stored
  stored=$(redis-cli -h 127.0.0.1 -p "$port" xlen bench)
  # redis-benchmark finishes its last pipelines, so a few more than -n may be stored.
  ((stored >= REDIS_COUNT)) || die "redis stream holds $stored entries, expected $REDIS_COUNT"
  # CSV: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95..","p99..","max.."
  # shellcheck disable=SC2046
  record "redis_$fsync" produce $(python3 -c 'import sys, csv; r = next(csv.reader([sys.argv[1]])); print(sys.argv[2], round(float(r[1])), sys.argv[3], r[4], r[6])' \
    "$line" "$REDIS_COUNT" "$((t1 - t0))")
  stop_pid "$REDIS_PID" 60
  REDIS_PID=
  rm -rf "$WORK/data"
}

CONTENDERS=(orbitmq_async orbitmq_sync redis_everysec redis_always)
for round in $(seq 1 "$ROUNDS"); do
  order=("${CONTENDERS[@]}")
  if ((round % 2 == 0)); then
    mapfile -t order < <(printf '%s\n' "${CONTENDERS[@]}" | tac)
  fi
  log "round $round/$ROUNDS: ${order[*]}"
  for c in "${order[@]}"; do
    case $c in
      orbitmq_async) run_orbitmq async "$round" ;;
      orbitmq_sync) run_orbitmq sync "$round" ;;
      redis_everysec) run_redis everysec ;;
      redis_always) run_redis always ;;
    esac
  done
done

python3 - "$RESULTS" "$REDIS_VERSION" "$REDIS_CLIENTS" "$REDIS_PIPELINE" "$BENCH_THREADS" <<'PY'
import json, statistics, sys
path, redis_version, clients, pipeline, threads = sys.argv[1:6]
runs = {}
for line in open(path):
    c, fig, rate, cpu, p50, p99 = line.split()
    runs.setdefault((c, fig), []).append((float(rate), float(cpu), float(p50), float(p99)))
med = {}
print(f"redis {redis_version}: redis-benchmark -c {clients} -P {pipeline} --threads {threads} XADD (1 KiB value)")
for (c, fig), r in runs.items():
    m = {k: statistics.median(x[i] for x in r) for i, k in enumerate(("rate", "cpu", "p50", "p99"))}
    med[(c, fig)] = m
    print(f"{c + ' ' + fig:<24} median {m['rate']:>9.0f} msgs/s  runs {[int(x[0]) for x in r]}"
          f"  server CPU {m['cpu']:.2f} us/msg  p50 {m['p50']:.2f} ms p99 {m['p99']:.2f} ms")
a = med[("orbitmq_async", "produce")]["rate"]
s = med[("orbitmq_sync", "produce")]["rate"]
c = med[("orbitmq_async", "consume")]["rate"]
e = med[("redis_everysec", "produce")]["rate"]
al = med[("redis_always", "produce")]["rate"]
ratios = {
    "async_over_redis_everysec": a / e,
    "sync_over_redis_always": s / al,
    "async_over_redis_always": a / al,
    "consume_over_async_produce": c / a,
    "cpu_redis_everysec_over_orbitmq_async": med[("redis_everysec", "produce")]["cpu"] / med[("orbitmq_async", "produce")]["cpu"],
}
for k, v in ratios.items():
    print(f"ratio {k:<40} {v:.2f}")
targets = [
    ("async produce >= 400k msgs/s", a >= 400_000),
    ("async produce >= 2.5x redis everysec", a >= 2.5 * e),
    ("sync produce >= 250k msgs/s", s >= 250_000),
    ("consume >= 1.0x async produce", c >= a),
]
for name, ok in targets:
    print(f"target {name:<40} {'met' if ok else 'MISSED'}")
print(json.dumps({"bench": "vs_redis", "redis_version": redis_version,
                  **{f"{c}_{f}": round(m["rate"]) for (c, f), m in med.items()},
                  **{f"{c}_{f}_cpu_us_per_msg": m["cpu"] for (c, f), m in med.items()},
                  **{k: round(v, 3) for k, v in ratios.items()},
                  "targets_met": [n for n, ok in targets if ok],
                  "targets_missed": [n for n, ok in targets if not ok]}))
PY
