#!/usr/bin/env bash
# Fault test of a master/slave broker group (issue 21), after OpenChaos: a name server, a
# master and a slave on three hosts of the test bed (tests/cluster/lib.sh: network namespaces
# when permitted, loopback otherwise), a client in the root namespace producing FIFO messages
# and consuming them through the name server (tests/src/bin/chaos_client.rs), and for
# --duration seconds a seeded random schedule of faults on the master or the slave, one at a
# time: SIGKILL (restarted with the same arguments, address and data after 2-4 s), SIGSTOP for
# 1-3 s then SIGCONT, a partition (link down) for 2-5 s then healed. Then production stops,
# everything is healed, and the client consumes until every acknowledged id was consumed (or
# --drain seconds pass). The last line on stdout is
#   {"acked":…,"consumed":…,"lost":…,"duplicated":…,"order_violations":…,"recovery_ms_max":…}
# Faults and progress go to stderr, with UTC timestamps.
#
# Exits non-zero when lost > 0 with --role sync_master --flush sync (no acknowledged message
# may be lost then), when nothing was acknowledged, or when a broker died by itself; with an
# async role or flush, loss is reported, not failed.
#
# Usage: tests/perf/chaos.sh --duration S [--role sync_master|async_master] [--flush sync|async]
#          [--seed N] [--drain S] [--prove-loss]
#   --prove-loss: instead of the random schedule, consumers pause, the slave is cut off (a
#     partition; frozen in loopback mode) for 3 s, the master is SIGKILLed meanwhile and never
#     comes back (its machine is lost), and the slave and the consumers resume.
#     With async_master the messages acknowledged during the cut were only on the master:
#     the run must report lost > 0 (that the tool sees loss); with sync_master none were
#     acknowledged, so lost = 0 still.
# Binaries: ORBITMQ_BIN (default ${CARGO_TARGET_DIR:-target}/ci/orbitmq) and CHAOS_CLIENT_BIN
# (default …/ci/chaos_client): cargo build --profile ci -p orbitmq-server -p orbitmq-tests
#   --bin orbitmq --bin chaos_client. ORBITMQ_BED_KEEP=1 keeps the logs of a passing run.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${ORBITMQ_BIN:-$TARGET/ci/orbitmq}
CLIENT=${CHAOS_CLIENT_BIN:-$TARGET/ci/chaos_client}

usage() { sed -n '/^# Usage:/,/^# Binaries:/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
DURATION='' ROLE=sync_master FLUSH=sync SEED=$(( $(date +%s%N) / 1000 % 1000000 )) DRAIN=60 PROVE=0
while (( $# )); do
  case $1 in
    --duration) DURATION=${2:-}; shift 2 ;;
    --role) ROLE=${2:-}; shift 2 ;;
    --flush) FLUSH=${2:-}; shift 2 ;;
    --seed) SEED=${2:-}; shift 2 ;;
    --drain) DRAIN=${2:-}; shift 2 ;;
    --prove-loss) PROVE=1; shift ;;
    -h|--help) usage ;;
    *) echo "chaos: unknown argument $1" >&2; usage ;;
  esac
done
if ! [[ $DURATION =~ ^[0-9]+$ ]] || (( DURATION < 10 )); then echo "chaos: --duration S (at least 10) is required" >&2; usage; fi
[[ $ROLE == sync_master || $ROLE == async_master ]] || { echo "chaos: --role sync_master|async_master" >&2; usage; }
[[ $FLUSH == sync || $FLUSH == async ]] || { echo "chaos: --flush sync|async" >&2; usage; }
[[ $SEED =~ ^[0-9]+$ && $DRAIN =~ ^[0-9]+$ ]] || usage
for b in "$BIN" "$CLIENT"; do
  [[ -x $b ]] || { echo "chaos: no binary at $b (cargo build --profile ci -p orbitmq-server -p orbitmq-tests --bin orbitmq --bin chaos_client)" >&2; exit 1; }
done
# shellcheck source-path=SCRIPTDIR source=../cluster/lib.sh
source "$ROOT/tests/cluster/lib.sh"

T0=$(date +%s%N)
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
log() { printf '[chaos %s +%5.1fs] %s\n' "$(date -u +%H:%M:%S.%3N)" "$(( ($(date +%s%N) - T0) / 1000000 ))e-3" "$*" >&2; }

TOPIC=chaos GROUP=chaos-group
REGISTER_MS=500 EXPIRY_MS=3000
CLIENT_PID='' CRASHED=0
declare -A HOST=([master]=2 [slave]=3) ID=([master]=0 [slave]=1) STARTS=([master]=0 [slave]=0)
declare -A STATE=([master]=up [slave]=up)   # up | killed | stopped | partitioned | lost

# shellcheck disable=SC2317  # trap handlers
on_exit() {
  local rc=$?
  if [[ -n $CLIENT_PID ]] && kill -0 "$CLIENT_PID" 2>/dev/null; then kill -KILL "$CLIENT_PID" 2>/dev/null || true; fi
  bed_cleanup "$rc"
  exit "$rc"
}
# shellcheck disable=SC2317
on_signal() {
  log "interrupted"
  trap - EXIT
  if [[ -n $CLIENT_PID ]]; then kill -KILL "$CLIENT_PID" 2>/dev/null || true; fi
  bed_cleanup "$1"
  exit "$1"
}

bed_init 3
trap on_exit EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM
W=$(bed_workdir)
NS=$(bed_ip 1):$(bed_port 1 9876)
declare -A ADDR=([master]=$(bed_ip 2):$(bed_port 2 8081) [slave]=$(bed_ip 3):$(bed_port 3 8081))
log "seed $SEED, role $ROLE, flush $FLUSH, duration ${DURATION}s, drain ${DRAIN}s, bed $BED_MODE; name server $NS, master ${ADDR[master]}, slave ${ADDR[slave]}"
if [[ $BED_MODE != netns ]]; then
  log "loopback mode (no network namespaces): partitions are skipped, only SIGKILL and SIGSTOP run"
fi

# admin ARGS...: orbitmq admin against the name server, from the root namespace (10 s at most).
admin() { timeout 10 "$BIN" admin --endpoints "$NS" --json "$@"; }

# start NAME: starts the master or the slave (again) with the same arguments, address and data
# directory; waits until it serves.
start() {
  local name=$1 n log role
  STARTS[$name]=$(( STARTS[$name] + 1 )); n=${STARTS[$name]}
  log="$W/$name.$n.log"
  if [[ $name == master ]]; then role=$ROLE; else role=slave; fi
  bed_run "${HOST[$name]}" "$log" "$BIN" broker --namesrv "$NS" --listen "${ADDR[$name]}" \
    --broker-name broker-a --broker-id "${ID[$name]}" --broker-role "$role" \
    --flush-disk-type "$FLUSH" --data-dir "$W/$name" --metrics-listen off \
    --register-interval-ms "$REGISTER_MS" >/dev/null
  bed_wait_line "$log" "ready on" 30
  STATE[$name]=up
}

bed_run 1 "$W/namesrv.log" "$BIN" namesrv --listen "$NS" --broker-expiry-ms "$EXPIRY_MS" >/dev/null
bed_wait_line "$W/namesrv.log" "ready on" 30
start master
start slave

# The slave linked to its master (the cluster listing shows its replication lag).
deadline=$(( $(date +%s) + 30 ))
until admin cluster list 2>/dev/null | jq -e '.brokers[] | select(.broker_id == 1) | .replication_lag >= 0' >/dev/null 2>&1; do
  (( $(date +%s) < deadline )) || { log "the slave did not connect to its master within 30 s"; exit 1; }
  sleep 0.2
done
admin topic create --topic "$TOPIC" --read-queues 4 --write-queues 4 --message-type fifo >/dev/null
admin group create --group "$GROUP" --fifo --consume-from first >/dev/null
# The slave has the topic and the group once the master's metadata reached it.
deadline=$(( $(date +%s) + 15 ))
until timeout 5 "$BIN" admin --endpoints "${ADDR[slave]}" --json group list 2>/dev/null | jq -e --arg g "$GROUP" '.. | objects | select(.name? == $g)' >/dev/null 2>&1 \
  && timeout 5 "$BIN" admin --endpoints "${ADDR[slave]}" topic status --topic "$TOPIC" >/dev/null 2>&1; do
  (( $(date +%s) < deadline )) || { log "the topic or group did not reach the slave within 15 s"; exit 1; }
  sleep 0.2
done
log "cluster up: topic $TOPIC (FIFO, 4 queues) and FIFO group $GROUP on master and slave"

mkdir -p "$W/client"
"$CLIENT" run --endpoints "$NS" --topic "$TOPIC" --group "$GROUP" --dir "$W/client" \
  --stop-file "$W/client/stop" --pause-file "$W/client/pause" --drain-secs "$DRAIN" --max-secs $(( DURATION + 120 )) \
  >"$W/report.json" 2> >(tee "$W/client.log" >&2) &
CLIENT_PID=$!

# Brokers that died without being killed are crashes: reported, restarted, and the run fails.
check_alive() {
  local name
  for name in master slave; do
    if [[ ${STATE[$name]} != killed && ${STATE[$name]} != lost ]] && ! bed_alive "${HOST[$name]}"; then
      log "CRASH: the $name died by itself (log $W/$name.${STARTS[$name]}.log):"
      tail -n 20 "$W/$name.${STARTS[$name]}.log" >&2 || true
      CRASHED=1
      start "$name"
    fi
  done
  bed_alive 1 || { log "CRASH: the name server died"; CRASHED=1; exit 1; }
}

# sleep_until MS: sleeps until the epoch millisecond MS, checking on the processes meanwhile.
sleep_for() {
  local until=$(( $(now_ms) + $1 ))
  while (( $(now_ms) < until )); do
    local left=$(( until - $(now_ms) ))
    (( left > 500 )) && left=500
    (( left > 0 )) && sleep "$(printf '%d.%03d' $((left / 1000)) $((left % 1000)))"
    check_alive
  done
}

kill_fault() {
  local name=$1 down=$2
  log "FAULT kill: SIGKILL the $name, restart after ${down} ms"
  bed_sigkill "${HOST[$name]}"; STATE[$name]=killed
  sleep_for "$down"
  start "$name"
  log "HEALED kill: the $name is back (log $W/$name.${STARTS[$name]}.log)"
}
stop_fault() {
  local name=$1 d=$2
  log "FAULT stop: SIGSTOP the $name for ${d} ms"
  bed_stop "${HOST[$name]}"; STATE[$name]=stopped
  sleep_for "$d"
  bed_cont "${HOST[$name]}"; STATE[$name]=up
  log "HEALED stop: SIGCONT the $name"
}
partition_fault() {
  local name=$1 d=$2
  log "FAULT partition: the $name's host cut off for ${d} ms"
  bed_partition "${HOST[$name]}"; STATE[$name]=partitioned
  sleep_for "$d"
  bed_heal "${HOST[$name]}"; STATE[$name]=up
  log "HEALED partition: the $name's host reconnected"
}
heal_all() {
  local name
  for name in master slave; do
    case ${STATE[$name]} in
      killed) start "$name" ;;
      stopped) bed_cont "${HOST[$name]}"; STATE[$name]=up ;;
      partitioned) bed_heal "${HOST[$name]}"; STATE[$name]=up ;;
    esac
  done
}

END_MS=$(( $(now_ms) + DURATION * 1000 ))
FAULTS=()
if (( PROVE )); then
  sleep_for $(( DURATION * 1000 / 3 ))
  # Consumers pause, so what the master acknowledges now is read nowhere but on the slave
  # later. The slave is cut off by a partition (a frozen process's kernel would still take the
  # bytes into its socket buffer); in loopback mode, frozen.
  touch "$W/client/pause"
  if [[ $BED_MODE == netns ]]; then
    log "FAULT prove-loss: consumers paused; the slave's host cut off for 3000 ms; SIGKILL the master after 2000 ms, for good"
    bed_partition "${HOST[slave]}"; STATE[slave]=partitioned
  else
    log "FAULT prove-loss: consumers paused; SIGSTOP the slave for 3000 ms; SIGKILL the master after 2000 ms, for good"
    bed_stop "${HOST[slave]}"; STATE[slave]=stopped
  fi
  sleep_for 2000
  bed_sigkill "${HOST[master]}"; STATE[master]=lost
  sleep_for 1000
  if [[ $BED_MODE == netns ]]; then bed_heal "${HOST[slave]}"; else bed_cont "${HOST[slave]}"; fi
  STATE[slave]=up
  rm -f "$W/client/pause"
  log "HEALED prove-loss: the slave is back, consumers resume; the master stays dead"
  FAULTS+=("prove-loss")
else
  RANDOM=$SEED
  sleep_for 3000   # a clean start: some messages acknowledged before the first fault
  kinds=(kill stop partition)
  nkinds=3
  [[ $BED_MODE == netns ]] || nkinds=2
  while (( END_MS - $(now_ms) > 6000 )); do
    kind=${kinds[RANDOM % nkinds]}
    if (( RANDOM % 2 )); then target=slave; else target=master; fi
    case $kind in
      kill) kill_fault "$target" $(( 2000 + RANDOM % 2001 )) ;;
      stop) stop_fault "$target" $(( 1000 + RANDOM % 2001 )) ;;
      partition) partition_fault "$target" $(( 2000 + RANDOM % 3001 )) ;;
    esac
    FAULTS+=("$kind:$target")
    # A quiet spell between faults (2-5 s), within the injection period.
    gap=$(( 2000 + RANDOM % 3001 ))
    left=$(( END_MS - $(now_ms) ))
    (( gap > left )) && gap=$(( left > 0 ? left : 0 ))
    sleep_for "$gap"
  done
fi
left=$(( END_MS - $(now_ms) ))
(( left > 0 )) && sleep_for "$left"
log "injection over (${#FAULTS[@]} faults: ${FAULTS[*]}); production stops, everything is healed"
touch "$W/client/stop"
heal_all
check_alive

rc=0
wait "$CLIENT_PID" || rc=$?
CLIENT_PID=''
(( rc == 0 )) || { log "the client failed (status $rc)"; exit 1; }
REPORT=$(tail -n 1 "$W/report.json")
jq -e . >/dev/null <<<"$REPORT" || { log "no report from the client: '$REPORT'"; exit 1; }
admin cluster list 2>/dev/null | jq -c '.brokers[] | {broker_id, role, commitlog_max_offset, replication_lag}' >&2 || true
log "done in $(( ($(date +%s%N) - T0) / 1000000000 )) s; seed $SEED; faults: ${FAULTS[*]}"
echo "$REPORT"

status=0
lost=$(jq .lost <<<"$REPORT"); acked=$(jq .acked <<<"$REPORT")
if (( acked == 0 )); then log "FAIL: nothing was acknowledged"; status=1; fi
if (( CRASHED )); then log "FAIL: a process died by itself (see CRASH above)"; status=1; fi
if (( lost > 0 )); then
  if [[ $ROLE == sync_master && $FLUSH == sync ]]; then
    log "FAIL: $lost acknowledged messages lost with sync_master + sync flush (logs kept in $W)"
    status=1
  else
    log "$lost acknowledged messages lost ($ROLE, $FLUSH flush: reported, not a failure)"
  fi
elif (( PROVE )) && [[ $ROLE == async_master ]]; then
  log "FAIL: --prove-loss with async_master lost nothing: the run did not show that loss is seen"
  status=1
fi
exit "$status"
