#!/usr/bin/env bash
# The Rust SDK against Apache's official Java client, both driving the same `orbitmq
# standalone`, side by side in one run (issue 17: the SDK's one-message produce rate next to
# the Java client's).
#
# Each round starts orbitmq on fresh data (async flush) with two topics of 8 queues, then runs
# both clients in turn (order reversed every other round), each on its own topic and group:
#   java   tests/perf/apache-load (rocketmq-client-java 5.2.0, as vs_apache.sh): WARMUP
#          unmeasured sends, then COUNT 1 KiB messages, one per request, INFLIGHT in flight;
#          then consumes them all with RECEIVERS threads of SimpleConsumer receive(32) plus one
#          ack per message.
#   sdk    `orbitmq bench produce --batch 1 --inflight INFLIGHT --count COUNT` (Producer::send,
#          1 KiB; connection set-up included in the time), then `orbitmq bench consume --count
#          COUNT --receivers RECEIVERS` (SimpleConsumer::receive(32) plus one ack_batch).
#   kotlin the Kotlin binding (bindings/, UniFFI; produce only): bindings/kotlin's
#          io.orbitmq.perf.KotlinLoad, WARMUP unmeasured sends, then COUNT 1 KiB messages, one
#          per Producer.send, INFLIGHT coroutines in flight. KOTLIN=0 leaves it out.
# Per client: produce and consume msgs/s and the server's CPU per message (utime + stime of the
# orbitmq process over each phase). Then the medians and the ratios sdk / java.
#
# Usage: tests/perf/sdk_vs_java.sh
#   Env: ROUNDS (3), COUNT (100000), WARMUP (20000), INFLIGHT (512), RECEIVERS (16),
#        ORBITMQ_BIN (default: builds target/release/orbitmq), WORK (a temp dir, removed at the
#        end unless given), KOTLIN (1), UNIFFI_LIB_DIR (the directory of an optimised
#        liborbitmq_uniffi.so; default: builds target/release).
# Needs java 17 and mvn. About a minute a round on 2 cores (the Java client is the slow part).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."
# shellcheck source-path=SCRIPTDIR source=peer_lib.sh
source "$HERE/peer_lib.sh"

[[ "${1:-}" == "-h" || "${1:-}" == "--help" ]] && { sed -n 2,26p "$0"; exit 0; }
ROUNDS=${ROUNDS:-3}
COUNT=${COUNT:-100000}
WARMUP=${WARMUP:-20000}
INFLIGHT=${INFLIGHT:-512}
RECEIVERS=${RECEIVERS:-16}
KOTLIN=${KOTLIN:-1}
if [[ -z "${WORK:-}" ]]; then
  WORK=$(mktemp -d /tmp/sdk-vs-java.XXXXXX)
  REMOVE_WORK=1
fi
mkdir -p "$WORK"

cleanup() {
  stop_orbitmq
  rm -rf "$WORK/data"
  if [[ -n "${REMOVE_WORK:-}" ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

command -v java >/dev/null || die "java (17) is needed"
command -v mvn >/dev/null || die "mvn is needed"
ensure_orbitmq_bin

log "building the load program (tests/perf/apache-load)..."
LOAD_DIR=$HERE/apache-load
(cd "$LOAD_DIR" && mvn -q -B compile dependency:build-classpath -Dmdep.outputFile=target/classpath.txt) \
  >"$WORK/mvn.log" 2>&1 || { cat "$WORK/mvn.log" >&2; die "mvn could not build tests/perf/apache-load"; }
LOAD_CP="$LOAD_DIR/target/classes:$(cat "$LOAD_DIR/target/classpath.txt")"

if ((KOTLIN)); then
  if [[ -z "${UNIFFI_LIB_DIR:-}" ]]; then
    log "building liborbitmq_uniffi (release; set UNIFFI_LIB_DIR to reuse one)..."
    cargo build --release -q -p orbitmq-uniffi
    UNIFFI_LIB_DIR=${CARGO_TARGET_DIR:-$PWD/target}/release
  fi
  [[ -f "$UNIFFI_LIB_DIR/liborbitmq_uniffi.so" ]] || die "no liborbitmq_uniffi.so in $UNIFFI_LIB_DIR"
  log "building the Kotlin load program (bindings/kotlin, io.orbitmq.perf.KotlinLoad)..."
  KT_DIR=$PWD/bindings/kotlin
  (cd "$KT_DIR" && mvn -q -B test-compile dependency:build-classpath \
    -Dmdep.outputFile=target/classpath.txt) >"$WORK/mvn-kotlin.log" 2>&1 \
    || { cat "$WORK/mvn-kotlin.log" >&2; die "mvn could not build bindings/kotlin"; }
  KT_CP="$KT_DIR/target/classes:$KT_DIR/target/test-classes:$(cat "$KT_DIR/target/classpath.txt")"
fi

RESULTS="$WORK/results.txt"
: >"$RESULTS"
CLK_TCK=$(getconf CLK_TCK)

# put CLIENT ROUND KEY VALUE
put() { echo "$1 $2 $3 $4" >>"$RESULTS"; }

# cpu_us TICKS MSGS: server CPU µs per message.
cpu_us() { python3 -c 'import sys; print(round(int(sys.argv[1]) * 1e6 / int(sys.argv[2]) / int(sys.argv[3]), 2))' "$1" "$CLK_TCK" "$2"; }

run_java() {
  local round=$1 line phase msgs rate ticks errors
  mkdir -p "$WORK/client-home"
  java -Duser.home="$WORK/client-home" -Drocketmq.log.console.appender.enabled=false -cp "$LOAD_CP" \
    org.orbitmq.perf.ApacheLoad --endpoint "$ORB_ADDR" --topic perf-java --group "java-$round" \
    --count "$COUNT" --warmup "$WARMUP" --inflight "$INFLIGHT" --receivers "$RECEIVERS" \
    --consumer simple --batch 32 --pids "$ORB_PID" >"$WORK/load.out" 2>"$WORK/load.err" \
    || { tail -n 20 "$WORK/load.err" >&2; die "the Java load program failed"; }
  while read -r line; do
    read -r phase msgs rate ticks errors < <(python3 -c 'import sys, json; r = json.loads(sys.argv[1]); print(r["phase"], r["msgs"], r["msgs_per_sec"], r["server_ticks"], r["errors"])' "$line")
    ((errors == 0)) || die "java $phase: $errors errors"
    put java "$round" "${phase}_rate" "$rate"
    put java "$round" "${phase}_cpu_us" "$(cpu_us "$ticks" "$msgs")"
    log "  java $phase: $msgs msgs, $rate msgs/s"
  done < <(grep '^{' "$WORK/load.out")
}

run_kotlin() {
  local round=$1 line msgs rate ticks errors
  java -Djna.library.path="$UNIFFI_LIB_DIR" -cp "$KT_CP" io.orbitmq.perf.KotlinLoadKt \
    --endpoint "$ORB_ADDR" --topic perf-kotlin --count "$COUNT" --warmup "$WARMUP" \
    --inflight "$INFLIGHT" --pids "$ORB_PID" >"$WORK/kotlin.out" 2>"$WORK/kotlin.err" \
    || { tail -n 20 "$WORK/kotlin.err" >&2; die "the Kotlin load program failed"; }
  line=$(grep '^{' "$WORK/kotlin.out" | tail -n 1)
  read -r msgs rate ticks errors < <(python3 -c 'import sys, json; r = json.loads(sys.argv[1]); print(r["msgs"], r["msgs_per_sec"], r["server_ticks"], r["errors"])' "$line")
  ((errors == 0)) || die "kotlin produce: $errors errors"
  put kotlin "$round" produce_rate "$rate"
  put kotlin "$round" produce_cpu_us "$(cpu_us "$ticks" "$msgs")"
  log "  kotlin produce: $msgs msgs, $rate msgs/s"
}

# sdk_bench ROUND PHASE ARGS...: one `orbitmq bench` run, recorded as PHASE.
sdk_bench() {
  local round=$1 phase=$2 t0 t1 line msgs rate
  shift 2
  t0=$(proc_ticks "$ORB_PID")
  line=$("$ORBITMQ_BIN" bench "$@" --endpoints "$ORB_ADDR" 2>"$WORK/bench.err" | tail -n 1)
  t1=$(proc_ticks "$ORB_PID")
  [[ $line == "{"* ]] || { tail -n 5 "$WORK/bench.err" >&2; die "orbitmq bench $phase failed"; }
  read -r msgs rate < <(python3 -c 'import sys, json; r = json.loads(sys.argv[1]); print(r["msgs"], r["msgs_per_sec"])' "$line")
  put sdk "$round" "${phase}_rate" "$rate"
  put sdk "$round" "${phase}_cpu_us" "$(cpu_us $((t1 - t0)) "$msgs")"
  log "  sdk $phase: $msgs msgs, $rate msgs/s"
}

run_sdk() {
  local round=$1
  sdk_bench "$round" produce produce --topic perf-sdk --batch 1 --inflight "$INFLIGHT" --count "$COUNT"
  sdk_bench "$round" consume consume --topic perf-sdk --group "sdk-$round" --count "$COUNT" \
    --receivers "$RECEIVERS"
}

for round in $(seq 1 "$ROUNDS"); do
  order=(sdk java)
  if ((round % 2 == 0)); then order=(java sdk); fi
  if ((KOTLIN)); then
    order=(sdk java kotlin)
    case $((round % 3)) in
      2) order=(java kotlin sdk) ;;
      0) order=(kotlin sdk java) ;;
    esac
  fi
  log "round $round/$ROUNDS: ${order[*]}"
  sync
  start_orbitmq async "$WORK/data"
  for topic in perf-java perf-sdk perf-kotlin; do
    "$ORBITMQ_BIN" admin --endpoints "$ORB_ADDR" topic create --topic "$topic" \
      --read-queues 8 --write-queues 8 --message-type normal >"$WORK/admin.out" 2>&1 \
      || { cat "$WORK/admin.out" >&2; die "orbitmq admin topic create failed"; }
  done
  for c in "${order[@]}"; do
    sleep 1
    "run_$c" "$round"
  done
  stop_orbitmq
  rm -rf "$WORK/data"
done

python3 - "$RESULTS" "$COUNT" "$INFLIGHT" "$RECEIVERS" <<'PY'
import json, statistics, sys
path, count, inflight, receivers = sys.argv[1:5]
runs = {}
for line in open(path):
    client, _, key, value = line.split()
    runs.setdefault((client, key), []).append(float(value))
med = {k: statistics.median(v) for k, v in runs.items()}
print(f"one orbitmq standalone; {count} messages of 1 KiB, one per request, {inflight} in flight;"
      f" consume: simple consumer, {receivers} receivers")
labels = {"produce_rate": "produce msgs/s", "consume_rate": "consume msgs/s",
          "produce_cpu_us": "produce server CPU us/msg", "consume_cpu_us": "consume server CPU us/msg"}
clients = ("sdk", "java", "kotlin")
for key, label in labels.items():
    for client in clients:
        if (client, key) in med:
            print(f"{client:<6} {label:<27} median {med[(client, key)]:>10.2f}  runs {runs[(client, key)]}")
result = {"bench": "sdk_vs_java"}
for key in labels:
    for client in ("sdk", "java"):
        result[f"{client}_{key}"] = med[(client, key)]
    result[f"ratio_{key}"] = round(med[("sdk", key)] / med[("java", key)], 3)
    if ("kotlin", key) in med:
        result[f"kotlin_{key}"] = med[("kotlin", key)]
        result[f"ratio_kotlin_{key}"] = round(med[("kotlin", key)] / med[("java", key)], 3)
for key in ("produce_rate", "consume_rate"):
    print(f"{labels[key]}: sdk / java = {result['ratio_' + key]:.2f}")
if "ratio_kotlin_produce_rate" in result:
    print(f"produce msgs/s: kotlin / java = {result['ratio_kotlin_produce_rate']:.2f}")
print(json.dumps(result))
PY
