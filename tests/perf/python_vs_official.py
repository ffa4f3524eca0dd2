#!/usr/bin/env python3
"""The orbitmq Python package against the official rocketmq-python-client, both sending 1 KiB
messages to the same `orbitmq standalone` in one run (DESIGN.md §5: Python SDK produce >= 10x
the official client).

Each round runs the clients in turn (order reversed every other round), each on its own
8-queue topic, with INFLIGHT sends in flight: orbitmq through `send_async` (INFLIGHT asyncio
workers, one awaited send each), the official client through its `send_async` futures (a window
of INFLIGHT), and orbitmq again through `send_batch_async` with BATCH messages per request (the
official client has no batch send). Each client warms up WARMUP seconds (connecting, routes), then its sends are
counted for SECONDS. A new Message per send for both. Prints each round, the medians and the
ratio orbitmq / official.

Usage: python tests/perf/python_vs_official.py [--endpoint HOST:PORT]
  Without --endpoint it starts `$ORBITMQ_BIN standalone` (default target/release/orbitmq) on a
  free port with fresh data. Needs both packages in the running interpreter:
    pip install ./python rocketmq-python-client==5.1.2
  Env: ROUNDS (3), SECONDS (10), WARMUP (2), INFLIGHT (64), BATCH (16).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orbitmq

ROUNDS = int(os.environ.get("ROUNDS", "3"))
SECONDS = float(os.environ.get("SECONDS", "10"))
WARMUP = float(os.environ.get("WARMUP", "2"))
INFLIGHT = int(os.environ.get("INFLIGHT", "64"))
BATCH = int(os.environ.get("BATCH", "16"))
BODY = b"x" * 1024
REPO = Path(__file__).resolve().parents[2]


def start_server() -> tuple[subprocess.Popen, str]:
    binary = os.environ.get("ORBITMQ_BIN") or str(REPO / "target" / "release" / "orbitmq")
    data = tempfile.mkdtemp(prefix="py-vs-official-")
    proc = subprocess.Popen(
        [
            binary,
            "standalone",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "off",
            "--dashboard-listen",
            "off",
            "--data-dir",
            data,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        m = re.search(r"ready on (\S+)", line)
        if m:
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
            return proc, m.group(1)
    raise SystemExit(f"{binary} exited {proc.wait()} before it was ready")


def run_orbitmq(endpoint: str, topic: str, batch: int = 1) -> float:
    async def main() -> float:
        count = 0
        stop = False
        async with orbitmq.Producer(endpoints=endpoint, topics=[topic]) as p:

            async def worker() -> None:
                nonlocal count
                while not stop:
                    if batch == 1:
                        await p.send_async(orbitmq.Message(topic, BODY))
                    else:
                        await p.send_batch_async([orbitmq.Message(topic, BODY) for _ in range(batch)])
                    count += batch

            workers = [asyncio.ensure_future(worker()) for _ in range(INFLIGHT)]
            await asyncio.sleep(WARMUP)
            c0, t0 = count, time.perf_counter()
            await asyncio.sleep(SECONDS)
            c1, t1 = count, time.perf_counter()
            stop = True
            await asyncio.gather(*workers)
        return (c1 - c0) / (t1 - t0)

    return asyncio.run(main())


def run_official(endpoint: str, topic: str) -> float:
    from rocketmq import ClientConfiguration, Credentials, Message, Producer
    from rocketmq.v5.client.connection.rpc_client import RpcClient

    producer = Producer(ClientConfiguration(endpoint, Credentials(), request_timeout=10), (topic,))
    loop = RpcClient.get_channel_io_loop()
    if loop is not None:
        asyncio.set_event_loop(loop)
    producer.startup()
    window = threading.Semaphore(INFLIGHT)
    lock = threading.Lock()
    count = errors = 0

    def done(f) -> None:  # type: ignore[no-untyped-def]
        nonlocal count, errors
        with lock:
            if f.exception() is None:
                count += 1
            else:
                errors += 1
        window.release()

    def send_until(deadline: float) -> None:
        while time.perf_counter() < deadline:
            window.acquire()
            msg = Message()
            msg.topic, msg.body = topic, BODY
            producer.send_async(msg).add_done_callback(done)

    send_until(time.perf_counter() + WARMUP)
    with lock:
        c0 = count
    t0 = time.perf_counter()
    send_until(t0 + SECONDS)
    with lock:
        c1 = count
    t1 = time.perf_counter()
    for _ in range(INFLIGHT):  # drain
        window.acquire()
    producer.shutdown()
    if errors:
        print(f"  official client: {errors} failed sends", file=sys.stderr)
    return (c1 - c0) / (t1 - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--endpoint", help="a running server (default: start one)")
    args = ap.parse_args()
    proc = None
    endpoint = args.endpoint
    if endpoint is None:
        proc, endpoint = start_server()
    try:
        topics = {
            "orbitmq": "perf-py-orbitmq",
            "official": "perf-py-official",
            "orbitmq-batch": "perf-py-orbitmq-batch",
        }
        with orbitmq.Admin(endpoints=endpoint) as admin:
            for t in topics.values():
                try:
                    admin.create_topic(t, read_queues=8, write_queues=8)
                except orbitmq.BadRequestError:
                    pass  # exists (a server given with --endpoint)
        runs: dict[str, list[float]] = {name: [] for name in topics}
        clients = {
            "orbitmq": run_orbitmq,
            "official": run_official,
            "orbitmq-batch": lambda e, t: run_orbitmq(e, t, BATCH),
        }
        print(f"1 KiB messages, {INFLIGHT} in flight, {WARMUP:g} s warm-up + {SECONDS:g} s measured, server {endpoint}")
        for r in range(ROUNDS):
            order = ["orbitmq", "official", "orbitmq-batch"]
            if r % 2:
                order.reverse()
            for name in order:
                rate = clients[name](endpoint, topics[name])
                runs[name].append(rate)
                print(f"round {r + 1}: {name:13} {rate:10.0f} msgs/s", flush=True)
        med = {k: statistics.median(v) for k, v in runs.items()}
        for name, rates in runs.items():
            print(f"{name:13} median {med[name]:10.0f} msgs/s  runs {[round(x) for x in rates]}")
        print(f"ratio orbitmq / official, one message per send: {med['orbitmq'] / med['official']:.1f}x")
        print(
            f"ratio orbitmq send_batch({BATCH}) / official: {med['orbitmq-batch'] / med['official']:.1f}x "
            f"(target >= 10x)"
        )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
