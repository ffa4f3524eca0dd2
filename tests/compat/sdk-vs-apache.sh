#!/usr/bin/env bash
# The OrbitMQ Rust SDK against the real Apache RocketMQ 5.3.3: runs the Rust examples
# (examples/rust, the SDK as a user uses it, each asserting what it shows) against Apache's
# proxy, and prints one PASS/FAIL line per check. Exits non-zero if any check fails.
#
# Checks (example, what it covers):
#   quickstart              producer (normal messages) + simple consumer
#   push_consumer           push consumer, clustering, with a redelivery after a Failure
#   fifo                    FIFO messages consumed in order by a push consumer in a FIFO group
#                           (the group is made FIFO here with Apache's mqadmin: SKIP_GROUP_CREATE=1)
#   delay_and_recall        delay messages, and recalling one (RecallMessage; Apache 5.3.3 refuses
#                           recalls by default: the script turns them on with mqadmin
#                           updateBrokerConfig recallMessageEnable=true)
#   transaction             transactional messages: commit, rollback
#   pull_unsupported        pull consumer and broadcasting push consumer: Apache's proxy serves no
#                           pull RPCs, so both must fail with ErrorKind::Unsupported, saying why
#                           (pull_consumer with EXPECT_UNSUPPORTED=1)
# Apache refuses a message whose type does not match its topic's (autoCreateTopicEnable=false
# too), so the script first creates each example's topic with its type (NORMAL, FIFO, DELAY,
# TRANSACTION) and the FIFO group, with Apache's mqadmin through mqadmin-as-orbitmq.
#
# Usage: tests/compat/sdk-vs-apache.sh [--help] [CHECK...]     (default: every check)
#   Env: APACHE_REF (../shared/reference/apache-rocketmq beside the repository; used read-only),
#        APACHE_HOME (where its run.sh, pom.xml and mqadmin-as-orbitmq are copied unchanged so
#        that run.sh resolves its ~90 MB of jars outside the shared folder; default
#        ~/.cache/orbitmq-perf/apache-rocketmq, as tests/perf/vs_apache.sh; not used when
#        APACHE_REF/lib exists), CHECK_TIMEOUT (seconds per check, default 120),
#        EXAMPLES_DIR (built examples; default: builds them with
#        `cargo build -p orbitmq-examples --examples --profile ci` into
#        ${CARGO_TARGET_DIR:-target}/ci/examples), WORK (a temp dir, removed unless KEEP_WORK=1).
# Needs java 17 and mvn. Takes 2-4 minutes: Apache starts in 10-35 s.
# Not part of .ci/run: the reference server is two JVMs with 1 GiB heaps, too heavy for the
# default test command, which stays fast and JVM-free. Run it by hand when the SDK changes.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."
ROOT=$PWD

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
ALL_CHECKS=(quickstart push_consumer fifo delay_and_recall transaction pull_unsupported)
CHECKS=()
for a in "$@"; do
  case $a in
    -h|--help) usage; exit 0;;
    *) [[ " ${ALL_CHECKS[*]} " == *" $a "* ]] || { echo "unknown check '$a' (${ALL_CHECKS[*]})" >&2; exit 2; }
       CHECKS+=("$a");;
  esac
done
[[ ${#CHECKS[@]} -gt 0 ]] || CHECKS=("${ALL_CHECKS[@]}")

# log, die, free_port and resolve_apache_dir, shared with the peer benchmarks.
# shellcheck source-path=SCRIPTDIR source=../perf/peer_lib.sh
source "$ROOT/tests/perf/peer_lib.sh"

CHECK_TIMEOUT=${CHECK_TIMEOUT:-120}
APACHE_REF=${APACHE_REF:-$ROOT/../shared/reference/apache-rocketmq}
APACHE_HOME=${APACHE_HOME:-$HOME/.cache/orbitmq-perf/apache-rocketmq}
if [[ -n "${WORK:-}" ]]; then
  mkdir -p "$WORK"
else
  WORK=$(mktemp -d /tmp/sdk-vs-apache.XXXXXX)
  [[ -n "${KEEP_WORK:-}" ]] || REMOVE_WORK=1
fi
APACHE_RUN_DIR=
APACHE_PIDS=()

# Stops Apache for sure: run.sh stop, then waits for its JVMs (SIGKILL after 60 s).
stop_apache() {
  local pid i
  if [[ -n "$APACHE_RUN_DIR" ]]; then
    "$APACHE_DIR/run.sh" stop "$APACHE_RUN_DIR" >/dev/null 2>&1 || true
    APACHE_RUN_DIR=
  fi
  for pid in "${APACHE_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${APACHE_PIDS[@]}"; do
    for ((i = 0; i < 600; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  APACHE_PIDS=()
}
cleanup() {
  stop_apache
  if [[ -n "${REMOVE_WORK:-}" ]]; then rm -rf "$WORK"; else log "work dir kept: $WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

command -v java >/dev/null || die "java (17) is needed"
command -v mvn >/dev/null || die "mvn is needed"

# The SDK's examples, built as a user builds them.
if [[ -z "${EXAMPLES_DIR:-}" ]]; then
  log "building the Rust examples (cargo build -p orbitmq-examples --examples --profile ci)..."
  cargo build -q -p orbitmq-examples --examples --profile ci || die "cargo build failed"
  EXAMPLES_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/ci/examples
fi
for e in quickstart push_consumer fifo delay_and_recall transaction pull_consumer; do
  [[ -x "$EXAMPLES_DIR/$e" ]] || die "no example binary $EXAMPLES_DIR/$e"
done

resolve_apache_dir

PORT=$(free_port)
APACHE_RUN_DIR=$WORK/apache
log "starting Apache RocketMQ 5.3.3 ($APACHE_DIR/run.sh start $APACHE_RUN_DIR async $PORT)..."
timeout -k 10 300 "$APACHE_DIR/run.sh" start "$APACHE_RUN_DIR" async "$PORT" >"$WORK/apache.start" 2>&1 &
starter=$!
# Collect the JVMs' pids as soon as they exist, so a failed start still stops them.
while kill -0 "$starter" 2>/dev/null; do
  mapfile -t APACHE_PIDS < <(cat "$APACHE_RUN_DIR"/*.pid 2>/dev/null || true)
  sleep 0.2
done
wait "$starter" || { cat "$WORK/apache.start" >&2; die "Apache RocketMQ did not start"; }
mapfile -t APACHE_PIDS < <(cat "$APACHE_RUN_DIR/namesrv.pid" "$APACHE_RUN_DIR/proxy.pid")
log "apache $(cat "$WORK/apache.start")"
export RMQ_NAMESRV
RMQ_NAMESRV=$(cat "$APACHE_RUN_DIR/namesrv.addr")

admin() {
  timeout -k 10 120 "$APACHE_DIR/mqadmin-as-orbitmq" admin --endpoints x "$@" >>"$WORK/admin.out" 2>&1 \
    || { cat "$WORK/admin.out" >&2; die "Apache mqadmin failed: $*"; }
}
log "creating the examples' topics and the FIFO group with Apache's mqadmin..."
for t in quickstart:normal push-example:normal fifo-example:fifo delay-example:delay \
  transaction-example:transaction pull-example:normal; do
  admin topic create --topic "${t%%:*}" --read-queues 4 --write-queues 4 --message-type "${t#*:}"
done
admin group create --group fifo-example-group --fifo
# Apache 5.3.3 refuses every recall ("recall failed, operation is forbidden", as
# INTERNAL_SERVER_ERROR) unless the broker has recallMessageEnable=true, off by default and not
# set by run.sh: turned on here, on the running broker, for the recall in delay_and_recall.
log "turning recalls on (mqadmin updateBrokerConfig -k recallMessageEnable -v true)..."
timeout -k 10 120 java -cp "$APACHE_DIR/lib/*" -Drocketmq.namesrv.addr="$RMQ_NAMESRV" \
  org.apache.rocketmq.tools.command.MQAdminStartup updateBrokerConfig -c DefaultCluster \
  -k recallMessageEnable -v true -n "$RMQ_NAMESRV" >>"$WORK/admin.out" 2>&1 \
  || { cat "$WORK/admin.out" >&2; die "Apache mqadmin updateBrokerConfig failed"; }

export ORBITMQ_ENDPOINT=127.0.0.1:$PORT
declare -A RESULT
failed=0
for check in "${CHECKS[@]}"; do
  example=$check
  envs=()
  case $check in
    fifo) envs=(SKIP_GROUP_CREATE=1);;
    pull_unsupported) example=pull_consumer envs=(EXPECT_UNSUPPORTED=1);;
  esac
  log "--- check $check: ${envs[*]} $example"
  start=$SECONDS
  set +e
  env RUST_BACKTRACE=0 "${envs[@]}" timeout -k 10 "$CHECK_TIMEOUT" "$EXAMPLES_DIR/$example" 2>&1 | tee "$WORK/$check.out"
  rc=${PIPESTATUS[0]}
  set -e
  took=$((SECONDS - start))
  if [[ $rc -eq 0 ]]; then
    RESULT[$check]="PASS $check (${took} s)"
  else
    why=$(grep -m 1 '^Error: ' "$WORK/$check.out" || grep -v '^\s*$' "$WORK/$check.out" | tail -n 1)
    [[ $rc -eq 124 ]] && why="timed out after $CHECK_TIMEOUT s"
    RESULT[$check]="FAIL $check (exit $rc after ${took} s): $why"
    failed=1
  fi
done

echo "=== the OrbitMQ Rust SDK against Apache RocketMQ 5.3.3 ($ORBITMQ_ENDPOINT)"
for check in "${CHECKS[@]}"; do echo "${RESULT[$check]}"; done
if [[ $failed -ne 0 ]]; then
  REMOVE_WORK= # kept, to look at
  log "outputs: $WORK/<check>.out; Apache's logs: $WORK/apache/logs/rocketmqlogs/{proxy,broker}.log"
  exit 1
fi
