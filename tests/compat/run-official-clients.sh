#!/usr/bin/env bash
# Apache's official RocketMQ 5 clients (Python 5.1.2, Node.js 1.0.8, Java 5.2.0) against a server:
# installs what each suite needs, then runs the suites in sequence. Exit status is non-zero if any suite
# fails (or cannot be installed). Needs only Python 3.11, Node 20, Java 17 and Maven on the PATH.
#
# Usage: tests/compat/run-official-clients.sh [python] [node] [java] [examples]     (default: all four)
#
# The `examples` suite runs the README's quickstarts and the message-type examples (examples/official/
# {python,node,java}, and the Rust SDK's examples/rust, built with cargo) unchanged, each bounded by
# EXAMPLE_TIMEOUT, and fails if any of them exits non-zero.
#
# Environment:
#   ORBITMQ_ENDPOINT  host:port of a running server to test. Unset: start ONE
#                     `$ORBITMQ_BIN standalone --listen 127.0.0.1:<free port> --data-dir <temp dir>` for all suites
#                     (waits for its `ready on <addr>` line, 30 s max) and stop it (SIGTERM) at the end.
#   ORBITMQ_BIN       server binary (default <repo>/target/debug/orbitmq).
#   ORBITMQ_AUTH_ENDPOINT  host:port of a server that requires the access key ORBITMQ_AUTH_ACCESS_KEY and secret
#                     key ORBITMQ_AUTH_SECRET_KEY (default compat-ak / compat-secret), for the credential tests.
#                     Unset, and ORBITMQ_ENDPOINT unset: a second standalone is started with --access-key and
#                     --secret-key. Unset with ORBITMQ_ENDPOINT set: the credential tests are skipped.
#   ORBITMQ_ADMIN     command prefix that creates topics/groups (default "$ORBITMQ_BIN admin --endpoints <endpoint>").
#   SUITE_TIMEOUT     upper bound per suite in seconds (default 600).
#   EXAMPLE_TIMEOUT   upper bound per example of the examples suite in seconds (default 120).
#   ORBITMQ_COMPAT_SERVER=apache  when testing Apache RocketMQ: marks the one Python test that Apache 5.3.3 fails
#                     (upstream bug apache/rocketmq#9583) as an expected failure.
#
# Against Apache RocketMQ (reference, see tests/compat/README.md):
#   RMQ_NAMESRV=... ORBITMQ_ENDPOINT=127.0.0.1:18081 \
#   ORBITMQ_ADMIN="/work/shared/reference/apache-rocketmq/mqadmin-as-orbitmq admin --endpoints x" \
#   ORBITMQ_COMPAT_SERVER=apache tests/compat/run-official-clients.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)
COMPAT=$REPO/tests/compat
export ORBITMQ_BIN=${ORBITMQ_BIN:-$REPO/target/debug/orbitmq}
SUITE_TIMEOUT=${SUITE_TIMEOUT:-600}
EXAMPLE_TIMEOUT=${EXAMPLE_TIMEOUT:-120}
VENV=$REPO/target/venv-official
EXAMPLES=$REPO/examples/official
RUST_EXAMPLES=${CARGO_TARGET_DIR:-$REPO/target}/ci/examples
EXAMPLES_CLASSPATH=$REPO/target/official-examples-java.classpath

suites=("$@")
[ ${#suites[@]} -eq 0 ] && suites=(python node java examples)
for s in "${suites[@]}"; do
  case $s in python|node|java|examples) ;; *) echo "unknown suite '$s' (python, node, java, examples)" >&2; exit 2;; esac
done

header() { printf '\n==================== %s ====================\n' "$*"; }
now() { date +%s; }

# ---------------------------------------------------------------------------------------------- install
# Each installer is skipped when its lock file has not changed since the last successful install.
stamp_ok() { [ -f "$2" ] && [ "$(cat "$2")" = "$(sha256sum "$1" | cut -d' ' -f1)" ]; }
stamp_set() { sha256sum "$1" | cut -d' ' -f1 >"$2"; }

install_python() {
  # The Rust SDK example interop_push, which the Python suite runs beside the official client.
  cargo build -q -p orbitmq-examples --examples --profile ci || return 1
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || return 1
  stamp_ok "$COMPAT/python/requirements.txt" "$VENV/.orbitmq-requirements" && return 0
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$COMPAT/python/requirements.txt" || return 1
  stamp_set "$COMPAT/python/requirements.txt" "$VENV/.orbitmq-requirements"
}

install_node() {
  local nm=$COMPAT/node/node_modules
  stamp_ok "$COMPAT/node/package-lock.json" "$nm/.orbitmq-lock" && return 0
  (cd "$COMPAT/node" && npm ci --no-audit --no-fund --loglevel=error) || return 1
  stamp_set "$COMPAT/node/package-lock.json" "$nm/.orbitmq-lock"
}

install_java() {
  # Resolves the client, JUnit and the plugins (surefire's JUnit provider included, by running zero tests).
  (cd "$COMPAT/java" && mvn -q -B -Dstyle.color=never test -Dtest=NoSuchTest -Dsurefire.failIfNoSpecifiedTests=false)
}

install_examples() {
  # Python: the compat venv already holds rocketmq-python-client 5.1.2.
  install_python || return 1
  local nm=$EXAMPLES/node/node_modules
  if ! stamp_ok "$EXAMPLES/node/package-lock.json" "$nm/.orbitmq-lock"; then
    (cd "$EXAMPLES/node" && npm ci --no-audit --no-fund --loglevel=error) || return 1
    stamp_set "$EXAMPLES/node/package-lock.json" "$nm/.orbitmq-lock"
  fi
  mkdir -p "$(dirname "$EXAMPLES_CLASSPATH")"
  (cd "$EXAMPLES/java" && mvn -q -B -Dstyle.color=never dependency:build-classpath \
    -Dmdep.outputFile="$EXAMPLES_CLASSPATH") || return 1
  [ -s "$EXAMPLES_CLASSPATH" ] || { echo "empty classpath in $EXAMPLES_CLASSPATH" >&2; return 1; }
  # The Rust SDK's examples (examples/rust), built as a user builds them.
  cargo build -q -p orbitmq-examples --examples --profile ci || return 1
}

declare -A result took
failed=0
for s in "${suites[@]}"; do
  header "install: $s"
  if ! "install_$s"; then
    echo "install of the $s suite FAILED" >&2
    result[$s]="FAIL (install)"
    failed=1
  fi
done

# ---------------------------------------------------------------------------------------------- server
server_pids=()
server_log=
cleanup() {
  local pid
  for pid in "${server_pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || continue
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server DIR [FLAGS...]: starts `$ORBITMQ_BIN standalone FLAGS` on a free port with its data and log
# (DIR/server.log) in DIR, waits for its `ready on <addr>` line (30 s max) and sets started_addr.
start_server() {
  local dir=$1 port pid
  shift
  port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  # Metrics on a free port: the default 127.0.0.1:5557 may be taken by a server already running.
  "$ORBITMQ_BIN" standalone --listen "127.0.0.1:$port" --data-dir "$dir/data" \
    --metrics-listen 127.0.0.1:0 --dashboard-listen off "$@" >"$dir/server.log" 2>&1 </dev/null &
  pid=$!
  server_pids+=("$pid")
  started_addr=
  for _ in $(seq 1 300); do
    started_addr=$(sed -n 's/.*ready on \([^ ]*\).*/\1/p' "$dir/server.log" | head -1)
    [ -n "$started_addr" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$started_addr" ]; then
    echo "server did not print 'ready on <addr>' within 30 s; log:" >&2
    tail -50 "$dir/server.log" >&2
    return 1
  fi
  echo "server ready on $started_addr (pid $pid, log $dir/server.log)"
}

if [ -z "${ORBITMQ_ENDPOINT:-}" ]; then
  header "server: $ORBITMQ_BIN standalone"
  if [ ! -x "$ORBITMQ_BIN" ]; then
    echo "ORBITMQ_ENDPOINT is unset and $ORBITMQ_BIN does not exist (build it: cargo build -p orbitmq-server)" >&2
    exit 1
  fi
  work=$(mktemp -d -t orbitmq-compat-XXXXXX)
  mkdir -p "$work/open" "$work/auth"
  start_server "$work/open" || exit 1
  export ORBITMQ_ENDPOINT=$started_addr
  server_log=$work/open/server.log
  # A second server that requires credentials, for the suites' credential tests (Python
  # test_official_python_credentials.py, Java AuthTest).
  if [ -z "${ORBITMQ_AUTH_ENDPOINT:-}" ]; then
    export ORBITMQ_AUTH_ACCESS_KEY=${ORBITMQ_AUTH_ACCESS_KEY:-compat-ak}
    export ORBITMQ_AUTH_SECRET_KEY=${ORBITMQ_AUTH_SECRET_KEY:-compat-secret}
    header "server with credentials: $ORBITMQ_BIN standalone --access-key $ORBITMQ_AUTH_ACCESS_KEY --secret-key ..."
    start_server "$work/auth" --access-key "$ORBITMQ_AUTH_ACCESS_KEY" --secret-key "$ORBITMQ_AUTH_SECRET_KEY" || exit 1
    export ORBITMQ_AUTH_ENDPOINT=$started_addr
  fi
fi
echo "endpoint: $ORBITMQ_ENDPOINT"
echo "admin:    ${ORBITMQ_ADMIN:-$ORBITMQ_BIN admin --endpoints $ORBITMQ_ENDPOINT}"
echo "with credentials: ${ORBITMQ_AUTH_ENDPOINT:-none (the credential tests are skipped)}"

# ---------------------------------------------------------------------------------------------- suites
run_python() {
  timeout -k 10 "$SUITE_TIMEOUT" "$VENV/bin/python" -m pytest -q "$COMPAT/python"
}
run_node() {
  (cd "$COMPAT/node" && timeout -k 10 "$SUITE_TIMEOUT" npm test --silent)
}
run_java() {
  (cd "$COMPAT/java" && timeout -k 10 "$SUITE_TIMEOUT" mvn -q -B -Dstyle.color=never test)
}
run_examples() {
  # Each example as a user runs it (ORBITMQ_ENDPOINT and ORBITMQ_BIN are exported above: fifo.py creates its FIFO
  # group with `$ORBITMQ_BIN admin`), each bounded by EXAMPLE_TIMEOUT; all of them run even if one fails. The
  # quickstarts first, then the message-type examples.
  local bad=() name start rc
  for name in python/quickstart.py node/quickstart.mjs java/Quickstart.java rust/quickstart \
    python/fifo.py python/delay_and_recall.py python/transaction.py java/Transaction.java \
    rust/push_consumer rust/delay_and_recall rust/transaction rust/fifo rust/pull_consumer; do
    printf -- '--- example: %s\n' "$name"
    start=$(now)
    case $name in
      python/*) timeout -k 10 "$EXAMPLE_TIMEOUT" "$VENV/bin/python" "$EXAMPLES/$name";;
      node/*) (cd "$EXAMPLES/node" && timeout -k 10 "$EXAMPLE_TIMEOUT" node "${name#node/}");;
      java/*) (cd "$EXAMPLES/java" &&
        timeout -k 10 "$EXAMPLE_TIMEOUT" java -cp "$(cat "$EXAMPLES_CLASSPATH")" "${name#java/}");;
      rust/*) timeout -k 10 "$EXAMPLE_TIMEOUT" "$RUST_EXAMPLES/${name#rust/}";;
    esac
    rc=$?
    echo "--- example: $name exited $rc after $(( $(now) - start )) s"
    [ $rc -eq 0 ] || bad+=("$name")
  done
  [ ${#bad[@]} -eq 0 ] || { echo "examples FAILED: ${bad[*]}" >&2; return 1; }
}

for s in "${suites[@]}"; do
  [ -n "${result[$s]:-}" ] && continue # install failed
  case $s in
    python) header "suite: Python rocketmq-python-client 5.1.2 (pytest)";;
    node) header "suite: Node.js rocketmq-client-nodejs 1.0.8 (node --test)";;
    java) header "suite: Java rocketmq-client-java 5.2.0 (JUnit 5)";;
    examples) header "suite: README quickstarts and examples (examples/official: Python, Node.js, Java)";;
  esac
  start=$(now)
  if "run_$s"; then
    result[$s]=PASS
  else
    result[$s]=FAIL
    failed=1
    if [ -n "$server_log" ]; then
      echo "--- last 40 lines of the server log ($server_log) ---"
      tail -40 "$server_log"
    fi
  fi
  took[$s]=$(( $(now) - start ))
done

header "summary"
passed=0 nfailed=0
for s in "${suites[@]}"; do
  printf '%-8s %-16s %s\n' "$s" "${result[$s]}" "${took[$s]:+${took[$s]} s}"
  if [ "${result[$s]}" = PASS ]; then passed=$((passed + 1)); else nfailed=$((nfailed + 1)); fi
done
echo "suites: $passed passed, $nfailed failed"
exit $failed
