"""Interoperability: an OrbitMQ Rust SDK PushConsumer and the official Python SimpleConsumer in one consumer
group split the group's messages between them, as two official consumers would.

The Rust side is the example binary ``interop_push`` (examples/rust/interop_push.rs), started as a subprocess:
``interop_push TOPIC GROUP SECONDS`` prints ``READY`` and then every body it consumed, one per line, and stops
when its stdin closes. It is looked up as ``$INTEROP_PUSH_BIN``, else under ``$CARGO_TARGET_DIR`` or
``<repo>/target``, profiles ci, debug, release (``cargo build -p orbitmq-examples --examples --profile ci``
builds it); the test is skipped, saying so, when it is not built.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from rocketmq import FilterExpression, Message, Producer, SimpleConsumer

from conftest import REPO, Admin, run_with_timeout, start, unique

COUNT = 100
RUST_SECONDS = 120  # upper bound; the test closes its stdin as soon as every message was consumed
DEADLINE_S = 90


def _interop_push_bin() -> Path | None:
    given = os.environ.get("INTEROP_PUSH_BIN")
    if given:
        return Path(given)
    targets = [Path(os.environ["CARGO_TARGET_DIR"])] if os.environ.get("CARGO_TARGET_DIR") else []
    targets.append(REPO / "target")
    for target in targets:
        for profile in ("ci", "debug", "release"):
            p = target / profile / "examples" / "interop_push"
            if os.access(p, os.X_OK):
                return p
    return None


def test_rust_push_consumer_and_python_simple_consumer_share_a_group(endpoint, client_config):
    binary = _interop_push_bin()
    if binary is None:
        pytest.skip("the Rust example interop_push is not built (cargo build -p orbitmq-examples --examples "
                    "--profile ci), nor given as INTEROP_PUSH_BIN")
    if not os.access(binary, os.X_OK):
        pytest.skip(f"INTEROP_PUSH_BIN={binary} is not an executable file")
    topic, group = unique("interop"), unique("interop")
    admin = Admin(endpoint)
    admin.create_topic(topic)
    admin.create_group(group)

    rust = subprocess.Popen([str(binary), topic, group, str(RUST_SECONDS)], env={**os.environ, "ORBITMQ_ENDPOINT": endpoint},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rust_lines: list[str] = []
    ready = threading.Event()

    def read_rust():
        for line in rust.stdout:
            line = line.rstrip("\n")
            if line == "READY":
                ready.set()
            else:
                rust_lines.append(line)
        ready.set()  # exited early: do not wait for READY

    reader = threading.Thread(target=read_rust, daemon=True, name="interop-push-stdout")
    reader.start()
    consumer = producer = None
    try:
        assert ready.wait(60), "interop_push did not print READY within 60 s"
        assert rust.poll() is None, f"interop_push exited {rust.returncode}: {rust.stderr.read()}"
        consumer = start(SimpleConsumer(client_config, group, {topic: FilterExpression("*")}, await_duration=5),
                         "SimpleConsumer")
        producer = start(Producer(client_config, (topic,)), "Producer")
        sent = [f"interop-{i}" for i in range(COUNT)]

        def send_all():
            for body in sent:
                msg = Message()
                msg.topic, msg.body = topic, body.encode()
                producer.send(msg)
                time.sleep(0.01)  # a steady stream, so both consumers are asking while it flows

        sender = threading.Thread(target=lambda: run_with_timeout(send_all, 60, "send"), daemon=True)
        sender.start()
        python_bodies: list[str] = []
        deadline = time.monotonic() + DEADLINE_S
        while set(python_bodies) | set(rust_lines) != set(sent) and time.monotonic() < deadline:
            for m in run_with_timeout(lambda: consumer.receive(4, 10), 30, "receive"):
                run_with_timeout(lambda: consumer.ack(m), 15, "ack")
                python_bodies.append(m.body.decode())
        sender.join(60)
    finally:
        for client, what in ((consumer, "SimpleConsumer"), (producer, "Producer")):
            if client is not None:
                run_with_timeout(client.shutdown, 30, f"{what}.shutdown()")
        rust.stdin.close()  # interop_push shuts down: in-flight messages finish and are acked
        try:
            rust.wait(timeout=60)
        except subprocess.TimeoutExpired:
            rust.kill()
            rust.wait(timeout=10)
        reader.join(10)

    rust_bodies = list(rust_lines)
    print(f"Rust push consumer: {len(rust_bodies)} messages, Python simple consumer: {len(python_bodies)}")
    assert rust.returncode == 0, f"interop_push exited {rust.returncode}: {rust.stderr.read()}"
    assert rust_bodies, "the Rust push consumer got none of the group's messages"
    assert python_bodies, "the Python simple consumer got none of the group's messages"
    both = rust_bodies + python_bodies
    twice = sorted({b for b in both if both.count(b) > 1})
    assert not twice, f"delivered twice in the group: {twice}"
    missing = sorted(set(sent) - set(both), key=lambda b: int(b.split("-")[1]))
    assert not missing, f"consumed by neither: {missing}"
    assert set(both) == set(sent), f"unexpected bodies: {sorted(set(both) - set(sent))}"
