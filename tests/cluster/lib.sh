# shellcheck shell=bash
# OrbitMQ multi-host test bed: name servers, brokers and clients as separate "hosts" in Linux
# network namespaces this library creates itself (a bridge in the root namespace, one namespace
# per host joined to it by a veth pair, addresses in a private /24 picked per run), with
# partitions by setting a host's link down. Where namespaces are not permitted (or
# ORBITMQ_NETNS=0) every host is 127.0.0.1 and hosts differ by port only; partitions are then
# unavailable (bed_partition returns 2 so callers can skip).
#
# Source it from a bash test script (set -euo pipefail is fine) and call bed_init N first; it
# installs bed_cleanup as the EXIT/INT/TERM trap. See tests/cluster/README.md.
#
# Environment:
#   ORBITMQ_NETNS=0|1        0: loopback only; 1: namespaces required (fail if not permitted);
#                            unset: namespaces when they work, loopback otherwise.
#   ORBITMQ_BED_KEEP=1       keep the run's directory (logs) even when the script succeeded.
#   ORBITMQ_BED_STALE_MIN=60 leftovers of crashed runs are removed once this many minutes old.

# Run state (set by bed_init; plain globals so subshells such as $(bed_ip 1) see them).
BED_MODE=''   # netns | loopback
BED_N=0       # hosts
BED_OWNER=''  # PID of the shell that called bed_init (names carry it, in hex)
BED_TAG=''    # obed<pid in hex>: prefix of every namespace and interface of this run
BED_DIR=''    # this run's directory: processes, port reservations, work files
BED_NET=''    # 10.213.X (netns mode)
BED_BR=''     # the bridge (netns mode)

_bed_log() { printf '[bed] %s\n' "$*" >&2; }
_bed_err() { printf '[bed] error: %s\n' "$*" >&2; }

_bed_lockfile() {
  if [[ -d /run/lock && -w /run/lock ]]; then echo /run/lock/orbitmq-bed.lock; else echo "${TMPDIR:-/tmp}/orbitmq-bed.lock"; fi
}

# _bed_host_ok K: K is a host of this run.
_bed_host_ok() {
  if [[ -z $BED_MODE ]]; then _bed_err "bed_init has not been called"; return 1; fi
  if ! [[ ${1:-} =~ ^[0-9]+$ ]] || (( $1 < 1 || $1 > BED_N )); then
    _bed_err "no host '${1:-}' (hosts are 1..$BED_N)"; return 1
  fi
}

# Port reservations of loopback runs (one directory per port, holding the owner's PID).
_bed_portdir() { echo "${TMPDIR:-/tmp}/orbitmq-bed-ports-$(id -u)"; }

_bed_ns() { echo "${BED_TAG}-h$1"; }      # namespace of host K
_bed_veth() { echo "${BED_TAG}v$1"; }     # host K's veth end in the root namespace (on the bridge)

# _bed_alive PID: the process exists and is not a zombie.
_bed_alive() {
  local stat
  [[ -r /proc/$1/stat ]] || return 1
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z && -n $stat ]]
}

# bed_pids K: PIDs started on host K with bed_run (alive or not), one a line.
bed_pids() {
  _bed_host_ok "${1:-}" || return 1
  [[ -f $BED_DIR/procs ]] || return 0
  awk -F '\t' -v k="$1" '$1 == k { print $2 }' "$BED_DIR/procs"
}

# bed_alive K: some process started on host K is still alive.
bed_alive() {
  local pid
  for pid in $(bed_pids "$1"); do
    if _bed_alive "$pid"; then return 0; fi
  done
  return 1
}

# bed_init N: creates N hosts (namespaces when permitted, loopback otherwise).
bed_init() {
  local n=${1:-}
  if ! [[ $n =~ ^[0-9]+$ ]] || (( n < 1 || n > 200 )); then
    _bed_err "bed_init N: N must be 1..200, not '$n'"; return 1
  fi
  if [[ -n $BED_OWNER ]]; then _bed_err "bed_init: the bed is already up (bed_cleanup first)"; return 1; fi
  BED_OWNER=$$
  BED_TAG=obed$(printf '%x' "$BED_OWNER")
  BED_N=$n
  BED_DIR=$(mktemp -d "${TMPDIR:-/tmp}/orbitmq-bed.$BED_OWNER.XXXXXX")
  : > "$BED_DIR/procs"
  mkdir -p "$BED_DIR/work"
  trap '_bed_exit_trap' EXIT
  trap '_bed_signal_trap 130' INT
  trap '_bed_signal_trap 143' TERM

  if [[ ${ORBITMQ_NETNS:-} == 0 ]]; then
    _bed_log "ORBITMQ_NETNS=0: loopback mode"
    BED_MODE=loopback
  else
    _bed_reap_stale
    if _bed_netns_up "$n"; then
      BED_MODE=netns
    else
      _bed_netns_down
      if [[ ${ORBITMQ_NETNS:-} == 1 ]]; then
        _bed_err "ORBITMQ_NETNS=1 but network namespaces are not usable here"; return 1
      fi
      _bed_log "network namespaces not permitted: loopback mode (hosts differ by port only)"
      BED_MODE=loopback
    fi
  fi
  if [[ $BED_MODE == netns ]]; then
    _bed_log "$n hosts in network namespaces ${BED_TAG}-h1..h$n on bridge $BED_BR ($BED_NET.0/24; root namespace is $BED_NET.1); run dir $BED_DIR"
  else
    _bed_log "$n hosts on 127.0.0.1 (ports differ per host); run dir $BED_DIR"
  fi
}

# Creates the bridge, namespaces and veth pairs; returns non-zero (leaving the pieces for
# _bed_netns_down) when anything is not permitted.
_bed_netns_up() {
  local n=$1 k x used ns veth peer lockfd now err
  if ! command -v ip >/dev/null; then _bed_log "no 'ip' command"; return 1; fi
  # Permission is whatever actually happens when we try.
  if ! err=$(ip netns add "$(_bed_ns 1)" 2>&1); then
    _bed_log "ip netns add failed: $err"; return 1
  fi
  now=$(date +%s)
  # Pick a free 10.213.X.0/24 and claim it with the bridge, under a lock shared by parallel runs.
  exec {lockfd}>>"$(_bed_lockfile)"
  flock -w 30 "$lockfd" || { exec {lockfd}>&-; _bed_log "could not lock $(_bed_lockfile)"; return 1; }
  used=$( { ip -4 -o addr show; ip -4 route show table all; } 2>/dev/null | grep -oE '10\.213\.[0-9]+\.' | sort -u || true)
  BED_NET=''
  for ((k = 0; k < 254; k++)); do
    x=$(( (BED_OWNER + k) % 254 + 1 ))
    if ! grep -qxF "10.213.$x." <<<"$used"; then BED_NET=10.213.$x; break; fi
  done
  if [[ -z $BED_NET ]]; then exec {lockfd}>&-; _bed_log "no free 10.213.X.0/24"; return 1; fi
  BED_BR=${BED_TAG}br
  if ! err=$(ip link add "$BED_BR" type bridge 2>&1); then
    exec {lockfd}>&-; _bed_log "ip link add bridge failed: $err"; return 1
  fi
  ip link set "$BED_BR" alias "orbitmq-bed pid=$BED_OWNER t=$now"
  # Bridged frames must not meet the host's iptables FORWARD policy (Docker sets DROP).
  ip link set "$BED_BR" type bridge nf_call_iptables 0 2>/dev/null || true
  if ! err=$( { ip addr add "$BED_NET.1/24" dev "$BED_BR" && ip link set "$BED_BR" up; } 2>&1); then
    exec {lockfd}>&-; _bed_log "setting up bridge $BED_BR failed: $err"; return 1
  fi
  exec {lockfd}>&-

  for ((k = 1; k <= n; k++)); do
    ns=$(_bed_ns "$k"); veth=$(_bed_veth "$k"); peer=${BED_TAG}p$k
    if (( k > 1 )); then
      err=$(ip netns add "$ns" 2>&1) || { _bed_log "ip netns add $ns failed: $err"; return 1; }
    fi
    err=$( {
      ip -n "$ns" link set lo up &&
      ip link add "$veth" type veth peer name "$peer" &&
      ip link set "$veth" alias "orbitmq-bed pid=$BED_OWNER t=$now" &&
      ip link set "$peer" netns "$ns" &&
      ip -n "$ns" link set "$peer" name eth0 &&
      ip -n "$ns" addr add "$BED_NET.$((10 + k))/24" dev eth0 &&
      ip -n "$ns" link set eth0 up &&
      ip link set "$veth" master "$BED_BR" &&
      ip link set "$veth" up
    } 2>&1) || { _bed_log "setting up host $k failed: $err"; return 1; }
  done
  # Every host reaches the root namespace and host 1 (a closed port answers "refused" at once;
  # a broken path would hang).
  for ((k = 1; k <= n; k++)); do
    _bed_probe "" "$BED_NET.$((10 + k))" || { _bed_log "root namespace cannot reach host $k"; return 1; }
    if (( k > 1 )); then
      _bed_probe "$(_bed_ns "$k")" "$BED_NET.11" || { _bed_log "host $k cannot reach host 1"; return 1; }
    fi
  done
}

# _bed_probe NS IP: from namespace NS ("" = root), IP answers on TCP (port 9, discard: normally
# closed, so the answer is a reset).
_bed_probe() {
  local ns=$1 ip=$2 out i
  for i in 1 2 3; do
    if [[ -n $ns ]]; then
      out=$(ip netns exec "$ns" timeout 2 bash -c "exec 3<>/dev/tcp/$ip/9" 2>&1) && return 0
    else
      out=$(timeout 2 bash -c "exec 3<>/dev/tcp/$ip/9" 2>&1) && return 0
    fi
    [[ $out == *"refused"* ]] && return 0
    sleep 0.2
    : "$i"
  done
  return 1
}

# Deletes this run's namespaces, veths and bridge (whatever of them exists).
_bed_netns_down() {
  local k ns
  [[ -n $BED_TAG ]] || return 0
  for ((k = 1; k <= BED_N; k++)); do
    ip link del "$(_bed_veth "$k")" 2>/dev/null || true
    ns=$(_bed_ns "$k")
    if [[ -e /run/netns/$ns ]]; then
      _bed_kill_ns_pids "$ns"
      ip netns del "$ns" 2>/dev/null || _bed_log "could not delete namespace $ns"
    fi
  done
  if [[ -n $BED_BR ]]; then ip link del "$BED_BR" 2>/dev/null || true; fi
}

# SIGKILLs whatever still runs in namespace NS (a namespace is ours by its name).
_bed_kill_ns_pids() {
  local pids
  pids=$(ip netns pids "$1" 2>/dev/null || true)
  if [[ -n $pids ]]; then
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
  fi
}

# Removes namespaces and interfaces of earlier runs that crashed: name obed<pid hex>..., that PID
# gone, and older than ORBITMQ_BED_STALE_MIN minutes. A reused PID keeps them (never wrong).
_bed_reap_stale() {
  local now stale ns hex pid age f name alias t
  command -v ip >/dev/null || return 0
  now=$(date +%s); stale=$(( ${ORBITMQ_BED_STALE_MIN:-60} * 60 ))
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
    [[ $ns =~ ^obed([0-9a-f]{1,7})-h[0-9]+$ ]] || continue
    hex=${BASH_REMATCH[1]}; pid=$((16#$hex))
    [[ -e /proc/$pid ]] && continue
    age=$(( now - $(stat -c %Y "/run/netns/$ns" 2>/dev/null || echo "$now") ))
    (( age >= stale )) || continue
    _bed_log "removing leftover namespace $ns (pid $pid gone, $((age / 60)) min old)"
    _bed_kill_ns_pids "$ns"
    ip netns del "$ns" 2>/dev/null || true
  done
  for f in /sys/class/net/obed*/ifalias; do
    [[ -r $f ]] || continue
    name=${f#/sys/class/net/}; name=${name%/ifalias}
    [[ $name =~ ^obed[0-9a-f]{1,7}(br|v[0-9]+)$ ]] || continue
    alias=$(cat "$f" 2>/dev/null || true)
    [[ $alias =~ ^orbitmq-bed\ pid=([0-9]+)\ t=([0-9]+)$ ]] || continue
    pid=${BASH_REMATCH[1]}; t=${BASH_REMATCH[2]}
    [[ $name == obed$(printf '%x' "$pid")* ]] || continue
    [[ -e /proc/$pid ]] && continue
    (( now - t >= stale )) || continue
    _bed_log "removing leftover interface $name (pid $pid gone, $(( (now - t) / 60 )) min old)"
    ip link del "$name" 2>/dev/null || true
  done
  return 0
}

# bed_ip K: host K's address.
bed_ip() {
  _bed_host_ok "${1:-}" || return 1
  if [[ $BED_MODE == netns ]]; then echo "$BED_NET.$((10 + $1))"; else echo 127.0.0.1; fi
}

# bed_port K BASE: the port of a service with base port BASE on host K. Namespaces: BASE.
# Loopback: a free port from BASE+100*K on, reserved for this run (parallel runs skip it) and
# the same on every call.
bed_port() {
  local k=${1:-} base=${2:-} key p j resdir owner
  _bed_host_ok "$k" || return 1
  if ! [[ $base =~ ^[0-9]+$ ]] || (( base < 1 || base > 65535 )); then _bed_err "bed_port: bad BASE '$base'"; return 1; fi
  if [[ $BED_MODE == netns ]]; then echo "$base"; return 0; fi
  key="$BED_DIR/port.$k.$base"
  if [[ -f $key ]]; then cat "$key"; return 0; fi
  resdir=$(_bed_portdir)
  mkdir -p "$resdir" || { _bed_err "bed_port: cannot create $resdir"; return 1; }
  for ((j = 0; j < 100; j++)); do
    p=$(( base + 100 * k + j ))
    (( p <= 65535 )) || break
    if ! mkdir "$resdir/$p" 2>/dev/null; then
      owner=$(cat "$resdir/$p/owner" 2>/dev/null || true)
      # Reserved by a live run (maybe this one, for another host/base): not this one.
      if [[ -z $owner || -e /proc/$owner ]]; then continue; fi
      rm -rf "${resdir:?}/$p"
      mkdir "$resdir/$p" 2>/dev/null || continue
    fi
    echo "$BED_OWNER" > "$resdir/$p/owner"
    if [[ -n $(ss -Htan "( sport = :$p )" 2>/dev/null) ]]; then
      rm -rf "${resdir:?}/$p"; continue
    fi
    echo "$p" >> "$BED_DIR/ports"
    echo "$p" > "$key"
    echo "$p"
    return 0
  done
  _bed_err "bed_port: no free port from $((base + 100 * k)) for host $k"; return 1
}

# bed_run K LOGFILE CMD ARGS...: starts CMD on host K in the background, stdout and stderr to
# LOGFILE; records it for bed_kill/bed_cleanup and echoes its PID.
bed_run() {
  local k=${1:-} log=${2:-} pid
  _bed_host_ok "$k" || return 1
  if [[ -z $log || $# -lt 3 ]]; then _bed_err "bed_run K LOGFILE CMD [ARGS...]"; return 1; fi
  shift 2
  mkdir -p "$(dirname "$log")"
  log=$(realpath -m "$log")
  # setsid: the process leads its own group, so signals reach its children too (it does not
  # fork here: a background child of a script is never a group leader).
  if [[ $BED_MODE == netns ]]; then
    ip netns exec "$(_bed_ns "$k")" setsid "$@" >"$log" 2>&1 </dev/null &
  else
    setsid "$@" >"$log" 2>&1 </dev/null &
  fi
  pid=$!
  # Out of the job table: no "Killed" notices when bed_kill ends it (bed_alive tells).
  disown "$pid" 2>/dev/null || true
  printf '%s\t%s\t%s\n' "$k" "$pid" "$log" >> "$BED_DIR/procs"
  _bed_log "host $k: started pid $pid: $* (log $log)"
  echo "$pid"
}

# bed_wait_line LOGFILE PATTERN TIMEOUT_S: waits until LOGFILE has a line matching PATTERN (grep
# basic regex). Fails, showing the log's tail, if the process writing it (started by bed_run)
# died or TIMEOUT_S passed.
bed_wait_line() {
  local log=${1:-} pat=${2:-} timeout=${3:-30} pid deadline
  if [[ -z $log || -z $pat ]]; then _bed_err "bed_wait_line LOGFILE PATTERN [TIMEOUT_S]"; return 1; fi
  log=$(realpath -m "$log")
  pid=$(awk -F '\t' -v l="$log" '$3 == l { p = $2 } END { print p }' "$BED_DIR/procs" 2>/dev/null || true)
  deadline=$(( $(date +%s%N) + timeout * 1000000000 ))
  while :; do
    if grep -q -- "$pat" "$log" 2>/dev/null; then
      _bed_log "$(basename "$log"): '$(grep -m1 -- "$pat" "$log")'"
      return 0
    fi
    if [[ -n $pid ]] && ! _bed_alive "$pid"; then
      grep -q -- "$pat" "$log" 2>/dev/null && return 0
      _bed_err "pid $pid died before '$pat' appeared in $log; its last lines:"
      tail -n 20 "$log" >&2 || true
      return 1
    fi
    if (( $(date +%s%N) >= deadline )); then
      _bed_err "no '$pat' in $log after ${timeout}s; its last lines:"
      tail -n 20 "$log" >&2 || true
      return 1
    fi
    sleep 0.1
  done
}

# bed_exec K CMD ARGS...: runs CMD on host K in the foreground; its status is returned.
bed_exec() {
  _bed_host_ok "${1:-}" || return 1
  local k=$1; shift
  if [[ $BED_MODE == netns ]]; then ip netns exec "$(_bed_ns "$k")" "$@"; else "$@"; fi
}

# bed_partition K: cuts host K off from every other host and the root namespace: its veth end on
# the bridge goes down (the host's eth0 loses carrier; addresses and routes stay), so frames are
# dropped both ways and established TCP connections stall, retransmitting, and resume on
# bed_heal (smoke.sh checks this). Returns 2 in loopback mode.
bed_partition() {
  _bed_host_ok "${1:-}" || return 1
  if [[ $BED_MODE != netns ]]; then
    _bed_log "partitions need network namespaces (loopback mode): not partitioning host $1"
    return 2
  fi
  ip link set "$(_bed_veth "$1")" down
  _bed_log "host $1 partitioned ($(_bed_veth "$1") down)"
}

# bed_heal K: undoes bed_partition K. Returns 2 in loopback mode.
bed_heal() {
  _bed_host_ok "${1:-}" || return 1
  if [[ $BED_MODE != netns ]]; then
    _bed_log "partitions need network namespaces (loopback mode): nothing to heal on host $1"
    return 2
  fi
  ip link set "$(_bed_veth "$1")" up
  _bed_log "host $1 healed ($(_bed_veth "$1") up)"
}

# bed_kill K SIG: sends SIG (KILL, STOP, CONT, TERM, ...) to every live process started on host
# K (to its process group). With KILL, waits (up to 5 s) until they are gone.
bed_kill() {
  local k=${1:-} sig=${2:-TERM} pid n=0 i
  _bed_host_ok "$k" || return 1
  for pid in $(bed_pids "$k"); do
    _bed_alive "$pid" || continue
    kill "-$sig" -- "-$pid" 2>/dev/null || kill "-$sig" "$pid" 2>/dev/null || true
    n=$((n + 1))
  done
  _bed_log "host $k: SIG${sig#SIG} to $n process(es)"
  if [[ ${sig#SIG} == KILL ]]; then
    for ((i = 0; i < 50; i++)); do
      bed_alive "$k" || return 0
      sleep 0.1
    done
    _bed_err "host $k: processes still alive after SIGKILL"; return 1
  fi
}
bed_sigkill() { bed_kill "${1:-}" KILL; }
bed_stop() { bed_kill "${1:-}" STOP; }
bed_cont() { bed_kill "${1:-}" CONT; }

# bed_workdir: a directory for the script's files (data directories, logs), removed by
# bed_cleanup when the script succeeded.
bed_workdir() {
  if [[ -z $BED_DIR ]]; then _bed_err "bed_init has not been called"; return 1; fi
  echo "$BED_DIR/work"
}

_bed_exit_trap() {
  local rc=$?
  bed_cleanup "$rc"
  exit "$rc"
}
_bed_signal_trap() {
  _bed_log "interrupted"
  bed_cleanup "$1"
  trap - EXIT
  exit "$1"
}

# bed_cleanup [RC]: stops every process started (TERM, then KILL after 3 s), deletes the
# namespaces, veths and bridge and the port reservations; removes the run directory unless RC is
# non-zero or ORBITMQ_BED_KEEP=1. Idempotent; a no-op in subshells.
bed_cleanup() {
  local rc=${1:-0} pid pids=() i p
  local -
  set +e
  [[ -n $BED_OWNER && $BASHPID == "$BED_OWNER" ]] || return 0
  if [[ -f $BED_DIR/procs ]]; then
    while IFS=$'\t' read -r _ pid _; do
      if _bed_alive "$pid"; then pids+=("$pid"); fi
    done < "$BED_DIR/procs"
  fi
  if (( ${#pids[@]} )); then
    for pid in "${pids[@]}"; do
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
      kill -CONT -- "-$pid" 2>/dev/null || kill -CONT "$pid" 2>/dev/null
    done
    for ((i = 0; i < 30; i++)); do
      local alive=0
      for pid in "${pids[@]}"; do _bed_alive "$pid" && alive=1; done
      (( alive )) || break
      sleep 0.1
    done
    for pid in "${pids[@]}"; do
      if _bed_alive "$pid"; then
        _bed_log "pid $pid ignored SIGTERM: SIGKILL"
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
      fi
    done
  fi
  if [[ $BED_MODE == netns ]]; then _bed_netns_down; fi
  if [[ -f $BED_DIR/ports ]]; then
    local portdir
    portdir=$(_bed_portdir)
    while read -r p; do rm -rf "${portdir:?}/$p"; done < "$BED_DIR/ports"
  fi
  if [[ $rc != 0 || ${ORBITMQ_BED_KEEP:-} == 1 ]]; then
    _bed_log "cleaned up; logs kept in $BED_DIR"
  else
    rm -rf "$BED_DIR"
    _bed_log "cleaned up"
  fi
  BED_MODE='' BED_N=0 BED_DIR='' BED_NET='' BED_BR='' BED_TAG='' BED_OWNER=''
  trap - EXIT INT TERM
  return 0
}
