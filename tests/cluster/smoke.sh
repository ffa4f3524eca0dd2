#!/usr/bin/env bash
# Proves the test bed (tests/cluster/lib.sh) with the real orbitmq binary: two hosts, a
# standalone server on host 1, admin and bench produce from host 2 and from the root namespace;
# a partition of host 1 (admin fails while the server lives, works again once healed, and an
# established TCP connection stalls and resumes); SIGSTOP/SIGCONT (a call times out, then works);
# SIGKILL. Exits non-zero on any failure. ORBITMQ_NETNS=0 runs it on loopback ports (the
# partition part is skipped).
#
# Usage: tests/cluster/smoke.sh   (ORBITMQ_BIN=path/to/orbitmq, default
#        ${CARGO_TARGET_DIR:-target}/ci/orbitmq: cargo build -p orbitmq-server --profile ci)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${ORBITMQ_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/ci/orbitmq}
if [[ ! -x $BIN ]]; then
  echo "smoke: no orbitmq binary at $BIN (cargo build -p orbitmq-server --profile ci, or set ORBITMQ_BIN)" >&2
  exit 1
fi
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HERE/lib.sh"

START=$(date +%s%N)
step() { printf '\n==> [%5.1fs] %s\n' "$(( ($(date +%s%N) - START) / 1000000 ))e-3" "$*" >&2; }
fail() { printf 'smoke: FAIL: %s\n' "$*" >&2; exit 1; }
ok() { printf 'smoke: ok: %s\n' "$*" >&2; }
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# admin K TIMEOUT_S ARGS...: orbitmq admin on host K (0: the root namespace) against the server,
# killed after TIMEOUT_S; its output goes to stderr, its status is returned.
admin() {
  local k=$1 t=$2
  shift 2
  if (( k == 0 )); then
    timeout "$t" "$BIN" admin --endpoints "$EP" "$@" >&2
  else
    bed_exec "$k" timeout "$t" "$BIN" admin --endpoints "$EP" "$@" >&2
  fi
}
# produce K TOPIC: a short bench produce from host K (0: root); prints its summary.
produce() {
  local k=$1 topic=$2 out
  local cmd=(timeout 30 "$BIN" bench produce --endpoints "$EP" --topic "$topic" --count 5000
    --size 256 --batch 16 --inflight 8 --connections 2)
  if (( k == 0 )); then out=$("${cmd[@]}" 2>&1); else out=$(bed_exec "$k" "${cmd[@]}" 2>&1); fi || {
    printf '%s\n' "$out" >&2; fail "bench produce from host $k"
  }
  printf '%s\n' "$out" | tail -n 3 >&2
}

step "bed with 2 hosts"
bed_init 2
W=$(bed_workdir)
EP=$(bed_ip 1):$(bed_port 1 8081)

step "host 1: orbitmq standalone on $EP"
bed_run 1 "$W/server.log" "$BIN" standalone --listen "$EP" --data-dir "$W/data1" --metrics-listen off --dashboard-listen off >/dev/null
bed_wait_line "$W/server.log" "^ready on $EP\$" 30

step "host 2: admin topic create, bench produce"
admin 2 10 topic create --topic smoke-h2 || fail "admin topic create from host 2"
produce 2 smoke-h2

step "root namespace: admin topic create, bench produce"
admin 0 10 topic create --topic smoke-root || fail "admin topic create from the root namespace"
produce 0 smoke-root
list=$(timeout 10 "$BIN" admin --endpoints "$EP" --json topic list) || fail "admin topic list"
for t in smoke-h2 smoke-root; do
  grep -q "\"$t\"" <<<"$list" || fail "topic $t missing from: $list"
done
ok "both topics listed"

if [[ $BED_MODE == netns ]]; then
  step "host 2 is a separate host: its 127.0.0.1:$(bed_port 1 8081) has no server"
  if bed_exec 2 timeout 5 "$BIN" admin --endpoints "127.0.0.1:$(bed_port 1 8081)" topic list >/dev/null 2>&1; then
    fail "host 2 reached the server on its own loopback: the hosts share a network namespace"
  fi
  ok "refused on host 2's loopback"
fi

step "partition host 1"
rc=0
bed_partition 1 || rc=$?
if (( rc == 2 )); then
  echo "smoke: skipped: partitions need network namespaces (loopback mode)" >&2
elif (( rc != 0 )); then
  fail "bed_partition 1 (status $rc)"
else
  t0=$(date +%s%N)
  rc=0
  admin 2 5 topic list || rc=$?
  (( rc != 0 )) || fail "admin from host 2 worked across the partition"
  ok "admin from host 2 failed (status $rc$( ((rc == 124)) && echo ': timed out')) after $(ms_since "$t0") ms"
  if admin 0 3 topic list 2>/dev/null; then fail "admin from the root namespace worked across the partition"; fi
  ok "admin from the root namespace failed too"
  bed_alive 1 || fail "the server on host 1 died during the partition"
  ok "server on host 1 still alive"
  bed_heal 1
  t0=$(date +%s%N)
  admin 2 15 topic list >/dev/null 2>&1 || fail "admin from host 2 after healing"
  ok "admin from host 2 works again after healing ($(ms_since "$t0") ms)"

  if command -v python3 >/dev/null; then
    step "an established TCP connection (host 2 -> host 1) stalls during a partition and resumes"
    bed_run 1 "$W/tcp.log" python3 -u "$HERE/tcp_stall.py" serve "$(bed_ip 1)" 7001 >/dev/null
    bed_wait_line "$W/tcp.log" "ready on" 10
    coproc STALL { bed_exec 2 python3 -u "$HERE/tcp_stall.py" client "$(bed_ip 1)" 7001 2>&1; }
    # Own copies of the coprocess's pipes and PID: bash drops its own once it exits.
    spid=$STALL_PID
    exec {sin}<&"${STALL[0]}" {sout}>&"${STALL[1]}"
    stall_expect() {
      local line
      IFS= read -r -t 40 line <&"$sin" || fail "tcp_stall client: no answer (wanted '$1')"
      echo "tcp_stall: $line" >&2
      [[ $line == "$1"* ]] || fail "tcp_stall client: '$line', wanted '$1'"
    }
    stall_expect connected
    # The connection really comes from host 2's address (bed_exec 2 runs on host 2).
    bed_wait_line "$W/tcp.log" "^peer $(bed_ip 2)\$" 5
    bed_partition 1
    echo partitioned >&"$sout"
    stall_expect stalled
    bed_heal 1
    echo healed >&"$sout"
    stall_expect resumed
    wait "$spid" || fail "tcp_stall client exited non-zero"
    exec {sin}<&- {sout}>&-
    ok "established TCP connection stalled and resumed"
  else
    echo "smoke: skipped: the raw TCP stall check needs python3" >&2
  fi
fi

step "SIGSTOP host 1's server"
bed_stop 1
rc=0
t0=$(date +%s%N)
admin 2 3 topic list 2>/dev/null || rc=$?
(( rc == 124 )) || fail "admin during SIGSTOP: status $rc, wanted 124 (timed out)"
ok "admin from host 2 timed out after $(ms_since "$t0") ms"
bed_cont 1
admin 2 15 topic list >/dev/null 2>&1 || fail "admin after SIGCONT"
ok "admin works after SIGCONT"

step "SIGKILL host 1's server"
bed_sigkill 1
if bed_alive 1; then fail "server alive after SIGKILL"; fi
rc=0
admin 2 5 topic list 2>/dev/null || rc=$?
(( rc != 0 )) || fail "admin worked with the server killed"
ok "server gone; admin fails (status $rc)"

step "cleanup leaves nothing behind"
mode=$BED_MODE tag=$BED_TAG started=$(bed_pids 1; bed_pids 2)
bed_cleanup
for pid in $started; do
  if _bed_alive "$pid"; then fail "pid $pid still running after bed_cleanup"; fi
done
if [[ $mode == netns ]]; then
  left=$( { ip netns list; ip -o link show; } | grep -o "${tag}[^ :@]*" || true)
  [[ -z $left ]] || fail "left behind: $left"
fi
ok "no processes$([[ $mode == netns ]] && echo ', namespaces or interfaces') left"

step "passed ($mode mode)"
