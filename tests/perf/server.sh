# Sourced by the tests/perf gRPC scripts: one `orbitmq standalone` at a time on a fresh data
# directory under $WORK, on the next port after $PORT. Sets SERVER_PID; stops it on exit.
SERVER_PID=

stop_server() {
  if [[ -n "$SERVER_PID" ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
  fi
}
trap 'stop_server; rm -rf "$WORK/data"' EXIT

# Starts BIN (async flush) on a fresh data directory and waits for its `ready on` line.
start_server() {
  local bin=$1
  stop_server
  rm -rf "$WORK/data"; sync; sleep 1
  PORT=$((PORT + 1))
  "$bin" standalone --listen "127.0.0.1:$PORT" --metrics-listen 127.0.0.1:0 --dashboard-listen off \
    --data-dir "$WORK/data" \
    > "$WORK/server.out" 2> "$WORK/server.err" &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    grep -q '^ready on' "$WORK/server.out" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "server $bin did not start" >&2; cat "$WORK/server.err" >&2; exit 1
}
