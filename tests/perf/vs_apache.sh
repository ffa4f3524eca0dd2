#!/usr/bin/env bash
# OrbitMQ against Apache RocketMQ 5.3.3, the same official Java client driving both, in one run.
#
# The load program (tests/perf/apache-load: rocketmq-client-java 5.2.0, as tests/compat/java)
# primes a consumer group with one empty SimpleConsumer receive, sends WARMUP messages
# (unmeasured), then sends COUNT 1 KiB messages asynchronously with 512 in flight (a
# semaphore), plaintext, one message per request as the client does; then consumes all
# WARMUP + COUNT with RECEIVERS threads each looping SimpleConsumer receive(32) and one ack per
# message (CONSUMER=push: a PushConsumer with RECEIVERS consumption threads instead).
# Each round starts, on fresh data, in turn (order reversed every other round):
#   orbitmq   `orbitmq standalone --listen 127.0.0.1:0 --flush-disk-type async` (one process)
#   apache    ../shared/reference/apache-rocketmq/run.sh start DIR async PORT: a name server JVM
#             and a proxy JVM in local mode (the broker runs inside it), 1 GiB heaps as run.sh sets
# with a topic of 8 queues created first (`orbitmq admin topic create`, and for Apache its
# mqadmin through mqadmin-as-orbitmq). Per server it reports: produce and consume msgs/s; server
# CPU per message (utime + stime from /proc/PID/stat over each measured phase, summed over the
# server's processes); RssAnon summed over them after the load (the heap: anonymous memory);
# for orbitmq the idle RSS right after start and the time from fork to its `ready on` line; for
# Apache the time run.sh start took. Then the medians, the ratios (throughput orbitmq/apache,
# CPU apache/orbitmq, RssAnon apache/orbitmq) and the targets of issue 16: server CPU per
# message <= 1/10 of Apache's; heap <= 1/50 of Apache's; idle RSS <= 30 MiB; start to ready
# <= 100 ms.
#
# Usage: tests/perf/vs_apache.sh
#   Env: ROUNDS (3), COUNT (100000), WARMUP (20000), INFLIGHT (512), RECEIVERS (16),
#        CONSUMER (simple|push, default simple), ORBITMQ_BIN (default: builds
#        target/release/orbitmq with cargo), APACHE_REF (../shared/reference/apache-rocketmq
#        beside the repository; used read-only), APACHE_HOME (where its run.sh, pom.xml and
#        mqadmin-as-orbitmq are copied unchanged so that run.sh resolves its ~90 MB of jars
#        into APACHE_HOME/lib and not into the shared folder; default
#        ~/.cache/orbitmq-perf/apache-rocketmq; not used when APACHE_REF/lib exists),
#        WORK (a temp dir, removed at the end unless given), KEEP_WORK=1 (keep it).
# Needs java 17 and mvn (the jars come from the local Maven repository or Maven Central).
# Takes about 4-5 minutes a round on 2 busy cores: Apache starts in 20-35 s and the load is
# bound by the Java client (~5k msgs/s against OrbitMQ, ~2.5k against Apache).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."
ROOT=$PWD
# shellcheck source-path=SCRIPTDIR source=peer_lib.sh
source "$HERE/peer_lib.sh"

ROUNDS=${ROUNDS:-3}
COUNT=${COUNT:-100000}
WARMUP=${WARMUP:-20000}
INFLIGHT=${INFLIGHT:-512}
RECEIVERS=${RECEIVERS:-16}
CONSUMER=${CONSUMER:-simple}
QUEUES=8
TOPIC=perf
APACHE_REF=${APACHE_REF:-$ROOT/../shared/reference/apache-rocketmq}
APACHE_HOME=${APACHE_HOME:-$HOME/.cache/orbitmq-perf/apache-rocketmq}

if [[ -n "${WORK:-}" ]]; then
  mkdir -p "$WORK"
else
  WORK=$(mktemp -d /tmp/vs-apache.XXXXXX)
  [[ -n "${KEEP_WORK:-}" ]] || REMOVE_WORK=1
fi
APACHE_RUN_DIR=
APACHE_PIDS=()

stop_apache() {
  local pid
  if [[ -n "$APACHE_RUN_DIR" ]]; then
    "$APACHE_DIR/run.sh" stop "$APACHE_RUN_DIR" || true
    APACHE_RUN_DIR=
  fi
  for pid in "${APACHE_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${APACHE_PIDS[@]}"; do stop_pid "$pid" 90; done
  APACHE_PIDS=()
}

cleanup() {
  stop_orbitmq
  stop_apache
  rm -rf "$WORK/data" "$WORK/apache"
  if [[ -n "${REMOVE_WORK:-}" ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

command -v java >/dev/null || die "java (17) is needed"
command -v mvn >/dev/null || die "mvn is needed"
ensure_orbitmq_bin

resolve_apache_dir

log "building the load program (tests/perf/apache-load)..."
LOAD_DIR=$HERE/apache-load
(cd "$LOAD_DIR" && mvn -q -B compile dependency:build-classpath -Dmdep.outputFile=target/classpath.txt) \
  >"$WORK/mvn.log" 2>&1 || { cat "$WORK/mvn.log" >&2; die "mvn could not build tests/perf/apache-load"; }
LOAD_CP="$LOAD_DIR/target/classes:$(cat "$LOAD_DIR/target/classpath.txt")"
log "orbitmq: $ORBITMQ_BIN; apache runner: $APACHE_DIR; work dir $WORK"

RESULTS="$WORK/results.txt"
: >"$RESULTS"
CLK_TCK=$(getconf CLK_TCK)

settle() { sync; sleep 1; }

# put SERVER ROUND KEY VALUE
put() { echo "$1 $2 $3 $4" >>"$RESULTS"; }

# load SERVER ROUND ENDPOINT PID...: runs the load program, records its two phases.
load() {
  local server=$1 round=$2 endpoint=$3 line phase msgs rate ticks errors cpu
  shift 3
  mkdir -p "$WORK/client-home"
  java -Duser.home="$WORK/client-home" -Drocketmq.log.console.appender.enabled=false -cp "$LOAD_CP" \
    org.orbitmq.perf.ApacheLoad --endpoint "$endpoint" --topic "$TOPIC" --group "perf-$round" \
    --count "$COUNT" --warmup "$WARMUP" --inflight "$INFLIGHT" --receivers "$RECEIVERS" \
    --consumer "$CONSUMER" --batch 32 --pids "$(IFS=,; echo "$*")" >"$WORK/load.out" 2>"$WORK/load.err" \
    || { tail -n 20 "$WORK/load.err" >&2; die "load program failed against $server"; }
  while read -r line; do
    read -r phase msgs rate ticks errors < <(python3 -c 'import sys, json; r = json.loads(sys.argv[1]); print(r["phase"], r["msgs"], r["msgs_per_sec"], r["server_ticks"], r["errors"])' "$line")
    cpu=$(python3 -c 'import sys; print(round(int(sys.argv[1]) * 1e6 / int(sys.argv[2]) / int(sys.argv[3]), 2))' \
      "$ticks" "$CLK_TCK" "$msgs")
    put "$server" "$round" "${phase}_rate" "$rate"
    put "$server" "$round" "${phase}_cpu_us" "$cpu"
    put "$server" "$round" "${phase}_errors" "$errors"
    log "  $server $phase: $msgs msgs, $rate msgs/s, server CPU $cpu us/msg, $errors errors"
    if [[ $phase == consume && $msgs -lt $((COUNT + WARMUP)) ]]; then
      die "$server: consumed $msgs of $((COUNT + WARMUP)) messages"
    fi
  done < <(grep '^{' "$WORK/load.out")
}

run_orbitmq() {
  local round=$1 idle_rss idle_anon rss_anon
  settle
  start_orbitmq async "$WORK/data"
  idle_rss=$(proc_kib VmRSS "$ORB_PID")
  idle_anon=$(proc_kib RssAnon "$ORB_PID")
  log "orbitmq ready on $ORB_ADDR in $ORB_READY_MS ms, idle RSS $idle_rss KiB (RssAnon $idle_anon KiB)"
  put orbitmq "$round" ready_ms "$ORB_READY_MS"
  put orbitmq "$round" idle_rss_kib "$idle_rss"
  put orbitmq "$round" idle_anon_kib "$idle_anon"
  "$ORBITMQ_BIN" admin --endpoints "$ORB_ADDR" topic create --topic "$TOPIC" \
    --read-queues "$QUEUES" --write-queues "$QUEUES" --message-type normal >"$WORK/admin.out" 2>&1 \
    || { cat "$WORK/admin.out" >&2; die "orbitmq admin topic create failed"; }
  load orbitmq "$round" "$ORB_ADDR" "$ORB_PID"
  rss_anon=$(proc_kib RssAnon "$ORB_PID")
  put orbitmq "$round" rss_anon_kib "$rss_anon"
  put orbitmq "$round" rss_kib "$(proc_kib VmRSS "$ORB_PID")"
  log "  orbitmq RssAnon after the load: $rss_anon KiB"
  stop_orbitmq
  rm -rf "$WORK/data"
}

run_apache() {
  local round=$1 port t0 t1 idle_rss rss_anon
  settle
  port=$(free_port)
  APACHE_RUN_DIR=$WORK/apache
  t0=$(now_us)
  "$APACHE_DIR/run.sh" start "$APACHE_RUN_DIR" async "$port" >"$WORK/apache.start" 2>&1 &
  local starter=$!
  # Collect the JVMs' pids as soon as they exist, so a failed start still stops them.
  while kill -0 "$starter" 2>/dev/null; do
    mapfile -t APACHE_PIDS < <(cat "$APACHE_RUN_DIR"/*.pid 2>/dev/null || true)
    sleep 0.2
  done
  wait "$starter" || { cat "$WORK/apache.start" >&2; die "Apache RocketMQ did not start"; }
  t1=$(now_us)
  mapfile -t APACHE_PIDS < <(cat "$APACHE_RUN_DIR/namesrv.pid" "$APACHE_RUN_DIR/proxy.pid")
  put apache "$round" start_s "$(((t1 - t0) / 1000000)).$(printf '%03d' $(((t1 - t0) % 1000000 / 1000)))"
  idle_rss=$(proc_kib VmRSS "${APACHE_PIDS[@]}")
  put apache "$round" idle_rss_kib "$idle_rss"
  put apache "$round" idle_anon_kib "$(proc_kib RssAnon "${APACHE_PIDS[@]}")"
  log "apache $(cat "$WORK/apache.start") in $(((t1 - t0) / 1000)) ms (JVMs ${APACHE_PIDS[*]}), idle RSS $idle_rss KiB"
  RMQ_NAMESRV=$(cat "$APACHE_RUN_DIR/namesrv.addr") "$APACHE_DIR/mqadmin-as-orbitmq" admin --endpoints x \
    topic create --topic "$TOPIC" --read-queues "$QUEUES" --write-queues "$QUEUES" --message-type normal \
    >"$WORK/admin.out" 2>&1 || { cat "$WORK/admin.out" >&2; die "Apache mqadmin updateTopic failed"; }
  load apache "$round" "127.0.0.1:$port" "${APACHE_PIDS[@]}"
  rss_anon=$(proc_kib RssAnon "${APACHE_PIDS[@]}")
  put apache "$round" rss_anon_kib "$rss_anon"
  put apache "$round" rss_kib "$(proc_kib VmRSS "${APACHE_PIDS[@]}")"
  log "  apache RssAnon after the load: $rss_anon KiB; stopping it..."
  stop_apache
  rm -rf "$WORK/apache"
}

for round in $(seq 1 "$ROUNDS"); do
  order=(orbitmq apache)
  if ((round % 2 == 0)); then order=(apache orbitmq); fi
  log "round $round/$ROUNDS: ${order[*]}"
  for s in "${order[@]}"; do
    "run_$s" "$round"
  done
done

python3 - "$RESULTS" "$COUNT" "$WARMUP" "$INFLIGHT" "$CONSUMER" "$RECEIVERS" <<'PY'
import json, statistics, sys
path, count, warmup, inflight, consumer, receivers = sys.argv[1:7]
runs = {}
for line in open(path):
    server, rnd, key, value = line.split()
    runs.setdefault((server, key), []).append(float(value))
med = {k: statistics.median(v) for k, v in runs.items()}
print(f"rocketmq-client-java 5.2.0: {count} messages of 1 KiB (+{warmup} warm-up), {inflight} sends in flight;"
      f" consume: {consumer} consumer, {receivers} threads")
rows = [("produce_rate", "produce msgs/s", 1), ("consume_rate", "consume msgs/s", 1),
        ("produce_cpu_us", "produce server CPU us/msg", 1), ("consume_cpu_us", "consume server CPU us/msg", 1),
        ("rss_anon_kib", "RssAnon after load MiB", 1 / 1024), ("rss_kib", "RSS after load MiB", 1 / 1024),
        ("idle_rss_kib", "idle RSS MiB", 1 / 1024), ("ready_ms", "orbitmq start to ready ms", 1),
        ("start_s", "apache run.sh start s", 1)]
for key, label, scale in rows:
    for server in ("orbitmq", "apache"):
        if (server, key) in runs:
            vals = runs[(server, key)]
            print(f"{server:<8} {label:<28} median {med[(server, key)] * scale:>10.2f}"
                  f"  runs {[round(v * scale, 2) for v in vals]}")
o = lambda k: med[("orbitmq", k)]
a = lambda k: med[("apache", k)]
cpu_o = o("produce_cpu_us") + o("consume_cpu_us")
cpu_a = a("produce_cpu_us") + a("consume_cpu_us")
ratios = {
    "produce_throughput_orbitmq_over_apache": o("produce_rate") / a("produce_rate"),
    "consume_throughput_orbitmq_over_apache": o("consume_rate") / a("consume_rate"),
    "produce_cpu_apache_over_orbitmq": a("produce_cpu_us") / o("produce_cpu_us"),
    "consume_cpu_apache_over_orbitmq": a("consume_cpu_us") / o("consume_cpu_us"),
    "cpu_per_message_apache_over_orbitmq": cpu_a / cpu_o,
    "heap_apache_over_orbitmq": a("rss_anon_kib") / o("rss_anon_kib"),
}
for k, v in ratios.items():
    print(f"ratio {k:<40} {v:.2f}")
targets = [
    ("server CPU per message <= 1/10 of Apache's (produce + consume)", cpu_o * 10 <= cpu_a),
    ("heap (RssAnon) <= 1/50 of Apache's", o("rss_anon_kib") * 50 <= a("rss_anon_kib")),
    ("idle RSS <= 30 MiB", o("idle_rss_kib") <= 30 * 1024),
    ("start to ready <= 100 ms", o("ready_ms") <= 100),
]
for name, ok in targets:
    print(f"target {name:<64} {'met' if ok else 'MISSED'}")
print(json.dumps({"bench": "vs_apache", **{f"{s}_{k}": round(v, 2) for (s, k), v in med.items()},
                  **{k: round(v, 3) for k, v in ratios.items()},
                  "targets_met": [n for n, ok in targets if ok],
                  "targets_missed": [n for n, ok in targets if not ok]}))
PY
