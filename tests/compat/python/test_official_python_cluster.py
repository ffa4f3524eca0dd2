"""The official Python client (rocketmq-python-client 5.1.2) against an OrbitMQ cluster (issue 21): two name
servers and two brokers, real processes on free 127.0.0.1 ports, started by this module from ``$ORBITMQ_BIN``
(so the module is skipped with ``ORBITMQ_COMPAT_SERVER=apache``; it ignores ``ORBITMQ_ENDPOINT``).

The clients' endpoint is the first name server only; the second must list both brokers too. Sends spread over
both brokers; a SimpleConsumer and a PushConsumer (two groups) each get every message, from both. Then broker-a
is SIGKILLed: within the name servers' broker expiry it leaves both name servers' routes, and the clients carry
on: every send of a second batch succeeds (the client's own retries included) and both consumers get all of it.

Timings and counts of the run go to stdout (``pytest -s`` shows them) and into every assertion message.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import pytest
from rocketmq import (ClientConfiguration, ConsumeResult, Credentials, FilterExpression, Message, MessageListener,
                      Producer, PushConsumer, SimpleConsumer)

from conftest import _orbitmq_bin, run_with_timeout, start, unique

pytestmark = pytest.mark.skipif(os.environ.get("ORBITMQ_COMPAT_SERVER") == "apache",
                                reason="starts its own OrbitMQ cluster (orbitmq namesrv/broker processes)")

EXPIRY_MS = int(os.environ.get("ORBITMQ_CLUSTER_EXPIRY_MS", "3000"))  # name servers' --broker-expiry-ms
REGISTER_MS = 500  # brokers' --register-interval-ms
LEAVE_MARGIN_S = 2.0  # the dead broker must leave the routes within EXPIRY_MS + this
COUNT = 100  # messages per batch
# Long-polling time of every receive (the server makes it at least 5 s). The Python 5.1.2 SimpleConsumer sends each
# receive to a random queue (__select_topic_queue builds a new QueueSelector, random start index, on every call),
# so once one broker is drained about half the receives wait out this whole time empty-handed.
AWAIT_S = 5
INVISIBLE_S = 20
READY_TIMEOUT_S = 30
TOPIC = unique("cluster")
GROUP = unique("cluster")
PUSH_GROUP = unique("cluster-push")
KILLED, SURVIVOR = "broker-a", "broker-b"


class Cluster:
    """Two name servers and two brokers (broker-a, broker-b), each a process with its own log."""

    def __init__(self):
        self.bin = _orbitmq_bin()
        if not os.access(self.bin, os.X_OK):
            pytest.fail(f"the server binary {self.bin} does not exist (build it, or set ORBITMQ_BIN)", pytrace=False)
        self.dir = Path(tempfile.mkdtemp(prefix="orbitmq-compat-py-cluster-"))
        self.procs: dict[str, subprocess.Popen] = {}
        self.addrs: dict[str, str] = {}

    def _spawn(self, name: str, args: list[str]) -> None:
        log_path = self.dir / f"{name}.log"
        with open(log_path, "wb") as log:
            self.procs[name] = subprocess.Popen([self.bin, *args], stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL)

    def _wait_ready(self, name: str) -> str:
        log_path = self.dir / f"{name}.log"
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            m = re.search(r"ready on (\S+)", log_path.read_text(errors="replace"))
            if m:
                self.addrs[name] = m.group(1)
                return m.group(1)
            if self.procs[name].poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(f"{name} did not print 'ready on <addr>' within {READY_TIMEOUT_S} s "
                    f"(exit code {self.procs[name].poll()}); log:\n{self.log(name)}", pytrace=False)

    def start(self) -> None:
        for ns in ("namesrv-1", "namesrv-2"):
            self._spawn(ns, ["namesrv", "--listen", "127.0.0.1:0", "--broker-expiry-ms", str(EXPIRY_MS)])
        namesrv = ";".join(self._wait_ready(ns) for ns in ("namesrv-1", "namesrv-2"))
        for broker in ("broker-a", "broker-b"):
            self._spawn(broker, ["broker", "--namesrv", namesrv, "--listen", "127.0.0.1:0", "--broker-name", broker,
                                 "--data-dir", str(self.dir / broker), "--metrics-listen", "off",
                                 "--register-interval-ms", str(REGISTER_MS)])
        for broker in ("broker-a", "broker-b"):
            self._wait_ready(broker)

    def ns(self, i: int) -> str:
        return self.addrs[f"namesrv-{i}"]

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(timeout=10)

    def log(self, name: str) -> str:
        return (self.dir / f"{name}.log").read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def admin(ns: str, *args: str, check: bool = True):
    """``orbitmq admin --endpoints <ns> --json ARGS``: the parsed JSON answer (None if it failed and not check)."""
    cmd = [_orbitmq_bin(), "admin", "--endpoints", ns, "--json", *args]
    res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    if res.returncode != 0:
        if check:
            raise AssertionError(f"{' '.join(cmd)} failed (exit {res.returncode}): "
                                 f"{res.stderr.decode(errors='replace')}")
        return None
    return json.loads(res.stdout)


def brokers(ns: str) -> set[str]:
    return {b["broker_name"] for b in admin(ns, "cluster", "list")["brokers"]}


def route(ns: str) -> dict[str, int]:
    """Broker name -> number of queues of TOPIC's route at name server ns ({} when there is no route)."""
    r = admin(ns, "topic", "route", "--topic", TOPIC, check=False)
    by_broker: dict[str, int] = {}
    for q in (r or {}).get("queues", []):
        by_broker[q["broker_name"]] = by_broker.get(q["broker_name"], 0) + 1
    return by_broker


def messages_per_broker(ns: str) -> dict[str, int]:
    """Broker name -> messages TOPIC holds there (sum of the queues' max offsets), from admin topic status."""
    held: dict[str, int] = {}
    for q in admin(ns, "topic", "status", "--topic", TOPIC)["queues"]:
        held[q["broker_name"]] = held.get(q["broker_name"], 0) + q["max_offset"]
    return held


def wait_for(limit_s: float, what: str, check):
    """Polls check() until it returns something truthy; fails after limit_s."""
    deadline = time.monotonic() + limit_s
    while True:
        v = check()
        if v:
            return v
        assert time.monotonic() < deadline, f"timed out after {limit_s} s waiting for {what}"
        time.sleep(0.05)


def broker_of(queue) -> str:
    return str(queue).split(".", 1)[0]  # MessageQueue.__str__ is "<broker>.<topic>.<queue id>"


@pytest.fixture(scope="module")
def cluster():
    c = Cluster()
    try:
        c.start()
        yield c
    finally:
        c.stop()


def send_batch(producer, tag: str, report: dict) -> dict[str, str]:
    """Sends COUNT messages one after the other; every send must succeed. Returns {message id: broker}."""
    sent: dict[str, str] = {}
    for i in range(COUNT):
        msg = Message()
        msg.topic = TOPIC
        msg.body = f"{tag}-{i}".encode()
        msg.tag = tag
        t0 = time.monotonic()
        try:
            receipt = run_with_timeout(lambda: producer.send(msg), 30, f"send {tag}-{i}")
        except Exception as e:  # noqa: BLE001 - reported with the timings
            raise AssertionError(f"send {tag}-{i} failed after {time.monotonic() - t0:.2f} s "
                                 f"(after {len(sent)} sends succeeded): {e!r}; {report}") from e
        sent[receipt.message_id] = broker_of(receipt.message_queue)
    return sent


def receive_all(consumer, want: set[str], limit_s: float, report: dict, key: str) -> set[str]:
    """Receives (and acks) until every id in want arrived; returns the broker endpoints they came from. A
    receive that fails (sent to the killed broker while the client's route still lists it) is counted in
    report[key + '_receive_errors'] and retried."""
    got: set[str] = set()
    sources: set[str] = set()
    receives: list = []
    errors = 0
    first_error = None
    deadline = time.monotonic() + limit_s
    while not want <= got:
        assert time.monotonic() < deadline, (
            f"consumer got {len(got & want)} of {len(want)} messages in {limit_s} s ({errors} receive errors, "
            f"first: {first_error!r}; receives {receives}); {report}")
        t0 = time.monotonic()
        try:
            messages = run_with_timeout(lambda: consumer.receive(32, INVISIBLE_S), AWAIT_S + 20, "receive")
        except Exception as e:  # noqa: BLE001 - counted, reported
            errors += 1
            first_error = first_error or e
            time.sleep(0.1)  # a connection refused fails at once; do not spin
            continue
        # Each receive: messages, seconds, broker endpoints (a slow consumer shows why here).
        receives.append((len(messages), round(time.monotonic() - t0, 2),
                         sorted({m.endpoints.facade for m in messages})))
        for m in messages:
            got.add(m.message_id)
            if m.message_id in want:
                sources.add(m.endpoints.facade)
            run_with_timeout(lambda: consumer.ack(m), 15, "ack")
    report[key + "_receive_errors"] = errors
    report[key + "_receives"] = receives
    if first_error is not None:
        report[key + "_first_receive_error"] = repr(first_error)[:300]
    return sources


class Collect(MessageListener):
    """PushConsumer listener: message id -> endpoints of the broker it came from; ids delivered twice."""

    def __init__(self):
        self.lock = threading.Lock()
        self.got: dict[str, str] = {}
        self.twice: list[str] = []

    def consume(self, message):
        with self.lock:
            if message.message_id in self.got:
                self.twice.append(message.message_id)
            self.got[message.message_id] = message.endpoints.facade
        return ConsumeResult.SUCCESS

    def wait_for(self, want: set[str], limit_s: float, report: dict) -> set[str]:
        """Waits until every id in want was consumed; returns the broker endpoints they came from."""
        def done():
            with self.lock:
                return want <= self.got.keys()
        wait_for(limit_s, f"the PushConsumer to get {len(want)} messages ({report})", done)
        with self.lock:
            return {self.got[i] for i in want}


def thread_stacks() -> str:
    """Every thread's stack, for the failure message of a client call that hangs."""
    names = {t.ident: t.name for t in threading.enumerate()}
    return "\n".join(f"--- thread {names.get(ident, ident)}\n" + "".join(traceback.format_stack(frame)[-8:])
                     for ident, frame in sys._current_frames().items())  # noqa: SLF001 - diagnostics only


def shutdown(client, what: str, limit_s: float = 40) -> None:
    """client.shutdown(), bounded; a hang fails with every thread's stack."""
    t0 = time.monotonic()
    try:
        run_with_timeout(client.shutdown, limit_s, f"{what}.shutdown()")
    except AssertionError as e:
        raise AssertionError(f"{e}; threads:\n{thread_stacks()}") from None
    print(f"{what}.shutdown() took {time.monotonic() - t0:.1f} s")


def test_two_brokers_spread_and_survive_a_killed_broker(cluster):
    report: dict = {}
    t_start = time.monotonic()
    ns1, ns2 = cluster.ns(1), cluster.ns(2)
    for ns in (ns1, ns2):
        wait_for(10, f"both brokers registered at {ns}", lambda: brokers(ns) == {"broker-a", "broker-b"})
    admin(ns1, "topic", "create", "--topic", TOPIC, "--read-queues", "4", "--write-queues", "4")
    admin(ns1, "group", "create", "--group", GROUP)
    admin(ns1, "group", "create", "--group", PUSH_GROUP)
    for ns in (ns1, ns2):
        wait_for(5, f"the route of {TOPIC} on both brokers at {ns}",
                 lambda: route(ns) == {"broker-a": 4, "broker-b": 4})

    config = ClientConfiguration(ns1, Credentials(), request_timeout=5)
    producer = start(Producer(config, (TOPIC,)), "Producer")
    consumer = push = None
    pushed = Collect()
    try:
        consumer = start(SimpleConsumer(config, GROUP, {TOPIC: FilterExpression("*")}, await_duration=AWAIT_S),
                         "SimpleConsumer")
        push = start(PushConsumer(config, PUSH_GROUP, pushed, {TOPIC: FilterExpression("*")}), "PushConsumer")

        # Sends spread over both brokers, and the consumer reads them all, from both.
        before = send_batch(producer, "before", report)
        report["before_sends_per_broker"] = {b: list(before.values()).count(b) for b in set(before.values())}
        held = messages_per_broker(ns2)
        report["before_held_per_broker"] = held
        assert sum(held.values()) == COUNT and set(held) == {"broker-a", "broker-b"} and all(held.values()), (
            f"admin topic status must show the {COUNT} messages on both brokers; {report}")
        t0 = time.monotonic()
        sources = receive_all(consumer, set(before), 60, report, "before")
        report["before_simple_s"] = round(time.monotonic() - t0, 2)
        assert len(sources) == 2, f"the SimpleConsumer got the messages from {sources}, not from both brokers; {report}"
        sources = pushed.wait_for(set(before), 60, report)
        assert len(sources) == 2, f"the PushConsumer got the messages from {sources}, not from both brokers; {report}"
        report["before_consumed_s"] = round(time.monotonic() - t0, 2)
        # Both groups' acks reached the brokers (the PushConsumer acks after its listener returns): nothing of the
        # first batch is left unacked on the broker about to be killed.
        for group in (GROUP, PUSH_GROUP):
            wait_for(30, f"group {group} to have acked everything ({report})",
                     lambda: admin(ns1, "consumer", "progress", "--group", group, "--topic", TOPIC)["total_lag"] == 0)
        report["before_acked_s"] = round(time.monotonic() - t0, 2)

        # SIGKILL one broker: it leaves both name servers' routes within the expiry.
        cluster.kill(KILLED)
        killed_at = time.monotonic()
        for ns in (ns1, ns2):  # one deadline for both, counted from the kill
            wait_for(killed_at + EXPIRY_MS / 1000 + LEAVE_MARGIN_S - time.monotonic(),
                     f"{KILLED} out of the route at {ns}", lambda: route(ns) == {SURVIVOR: 4})
        report["left_routes_after_s"] = round(time.monotonic() - killed_at, 2)
        assert brokers(ns1) == {SURVIVOR} and brokers(ns2) == {SURVIVOR}, report

        # The clients carry on: every send succeeds (the client's cached route still lists the dead broker for up
        # to its 30 s refresh; the client retries a failed send on another queue), and the consumer gets them all.
        t0 = time.monotonic()
        after = send_batch(producer, "after", report)
        report["after_sent_s"] = round(time.monotonic() - t0, 2)
        # Whether the producer's cached route still listed the dead broker during the batch (so the batch went
        # through the client's retry): it refreshes 10 s after its start, then every 30 s. Reported, not asserted.
        cached = producer._retrieve_topic_route_data(TOPIC)  # noqa: SLF001 - no public accessor
        report["producer_route_after_batch"] = sorted({broker_of(q) for q in cached.message_queues})
        report["after_sends_per_broker"] = {b: list(after.values()).count(b) for b in set(after.values())}
        assert set(after.values()) == {SURVIVOR}, report
        t0 = time.monotonic()
        receive_all(consumer, set(after), 60, report, "after")
        pushed.wait_for(set(after), 60, report)
        report["after_consumed_s"] = round(time.monotonic() - t0, 2)
        assert not pushed.twice, f"the PushConsumer got messages twice: {pushed.twice}"
        report["total_s"] = round(time.monotonic() - t_start, 2)
        print(f"\ncluster scenario: {report}")
    finally:
        if push is not None:
            shutdown(push, "PushConsumer")
        if consumer is not None:
            shutdown(consumer, "SimpleConsumer")
        shutdown(producer, "Producer")
