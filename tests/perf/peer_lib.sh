# shellcheck shell=bash
# Sourced by tests/perf/vs_redis.sh, tests/perf/vs_apache.sh and tests/compat/sdk-vs-apache.sh: servers started on free ports
# and stopped for sure, plus /proc readings. Expects WORK (a temp dir) and ORBITMQ_BIN to be set
# by the caller before start_orbitmq.

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
die() { log "error: $*"; exit 1; }

# Sets APACHE_DIR to where Apache's reference runner (APACHE_REF: shared/reference/apache-rocketmq)
# can run: in place when its jars are resolved there, else an unchanged copy under APACHE_HOME
# (the shared folder is read-only), its jars resolved again whenever the runner changed.
resolve_apache_dir() {
  local f
  [[ -x "$APACHE_REF/run.sh" ]] || die "no Apache runner at $APACHE_REF (set APACHE_REF)"
  if [[ -d "$APACHE_REF/lib" ]]; then
    APACHE_DIR=$APACHE_REF
    return
  fi
  mkdir -p "$APACHE_HOME"
  for f in run.sh mqadmin-as-orbitmq pom.xml; do
    if ! cmp -s "$APACHE_REF/$f" "$APACHE_HOME/$f"; then
      cp "$APACHE_REF/$f" "$APACHE_HOME/$f"
      chmod u+w "$APACHE_HOME/$f"
      rm -rf "${APACHE_HOME:?}/lib"  # the runner changed: resolve its jars again
    fi
  done
  APACHE_DIR=$APACHE_HOME
  [[ -d "$APACHE_DIR/lib" ]] || log "resolving Apache RocketMQ's jars into $APACHE_DIR/lib (first use)..."
}

# A free TCP port on 127.0.0.1 (the kernel's pick; free when asked).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Microseconds since the epoch, without a fork.
now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }

# utime + stime of the given processes, summed, clock ticks (missing processes count 0).
proc_ticks() {
  local pid sum=0 stat rest
  local -a f
  for pid in "$@"; do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    rest=${stat##*) }
    read -r -a f <<<"$rest"
    sum=$((sum + f[11] + f[12]))
  done
  echo "$sum"
}

# A field of /proc/PID/status in KiB (VmRSS, RssAnon, ...), summed over the given processes.
proc_kib() {
  local field=$1 pid sum=0 v
  shift
  for pid in "$@"; do
    v=$(awk -v f="$field:" '$1 == f {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}

# Sends SIGTERM to PID and waits up to SECS (default 30) for it to exit, then SIGKILL.
# Works for processes that are not our children too (polls /proc).
stop_pid() {
  local pid=$1 secs=${2:-30} i
  [[ -n "$pid" ]] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < secs * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid still running after ${secs}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# Starts `orbitmq standalone` (flush FLUSH: async|sync) on a free port with data dir DATA and
# waits for its `ready on ADDR` stdout line, read through a FIFO so the time is exact. Sets
# ORB_PID, ORB_ADDR and ORB_READY_MS (from just before the fork to the line).
ORB_PID=
ORB_DRAIN=
start_orbitmq() {
  local flush=$1 data=$2 fifo="$WORK/orbitmq.fifo" line t0 t1 fd
  rm -f "$fifo"
  mkfifo "$fifo"
  t0=$(now_us)
  "$ORBITMQ_BIN" standalone --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --dashboard-listen off --data-dir "$data" --flush-disk-type "$flush" \
    >"$fifo" 2>"$WORK/orbitmq.err" &
  ORB_PID=$!
  exec {fd}<"$fifo"
  ORB_ADDR=
  while read -r -t 60 -u "$fd" line; do
    if [[ $line == "ready on "* ]]; then
      t1=$(now_us)
      ORB_ADDR=${line#ready on }
      break
    fi
  done
  if [[ -z "$ORB_ADDR" ]]; then
    exec {fd}<&-
    tail -n 20 "$WORK/orbitmq.err" >&2 || true
    die "orbitmq standalone did not print 'ready on' within 60 s"
  fi
  # shellcheck disable=SC2034  # read by the caller
  ORB_READY_MS=$(((t1 - t0) / 1000)).$(printf '%03d' $(((t1 - t0) % 1000)))
  # Keep draining its stdout (a closed pipe would fail its later writes).
  cat <&"$fd" >>"$WORK/orbitmq.out" &
  ORB_DRAIN=$!
  exec {fd}<&-
  rm -f "$fifo"
}

stop_orbitmq() {
  if [[ -n "$ORB_PID" ]]; then
    stop_pid "$ORB_PID" 60
    ORB_PID=
  fi
  if [[ -n "$ORB_DRAIN" ]]; then
    wait "$ORB_DRAIN" 2>/dev/null || true
    ORB_DRAIN=
  fi
}

# Builds the release binary once unless ORBITMQ_BIN names one. Run from the repository root.
ensure_orbitmq_bin() {
  if [[ -z "${ORBITMQ_BIN:-}" ]]; then
    log "building orbitmq (release; set ORBITMQ_BIN to reuse a binary)..."
    cargo build --release -q -p orbitmq-server
    ORBITMQ_BIN=$PWD/target/release/orbitmq
  fi
  [[ -x "$ORBITMQ_BIN" ]] || die "ORBITMQ_BIN=$ORBITMQ_BIN is not executable"
  ORBITMQ_BIN=$(cd "$(dirname "$ORBITMQ_BIN")" && pwd)/$(basename "$ORBITMQ_BIN")
}
