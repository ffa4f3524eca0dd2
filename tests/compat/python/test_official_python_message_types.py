"""Message types with the official Python client (rocketmq-python-client 5.1.2) against the server under test:
FIFO order and exclusivity, delay and recall, transactions (commit, rollback, orphan check-back), retry then
dead-letter queue, and namespaces.

Every wait is bounded; any unexpected message, missing message or client error fails the test.

The slow scenarios (FIFO exclusivity, delay, recall, orphan transaction, retry/DLQ) wait for server-side
timers: they all start together in background threads when the module starts (only those whose test is
selected) and each test then waits for its own scenario, so the module takes about as long as the slowest one
(the orphan check: Apache RocketMQ checks half messages every 30 s) instead of their sum.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
from rocketmq import (FilterExpression, Message, Producer, SimpleConsumer, TransactionChecker,
                      TransactionResolution)

from conftest import (NAMESPACES, NS_GROUP, NS_TOPIC, TYPED_GROUPS, TYPED_TOPICS, make_client_config,
                      run_with_timeout, start, wait_settings)

AWAIT_S = 5  # long-polling time of every receive (Apache clamps to [5 s, 20 s])
INVISIBLE_S = 10  # Apache's minimum invisible duration for simple consumers
FIFO_GROUPS, FIFO_PER_GROUP = 3, 10
HOLD_INVISIBLE_S = 40  # FIFO exclusivity: the held message stays invisible well past the hold phase
HOLD_S = 8  # ... during which both consumers keep receiving (each receive is a 5 s long poll)
NEXT_AFTER_ACK_S = AWAIT_S + 10  # after an ack, the group's next message must come within this
DELAY_S = 5  # delay test: delivery time, seconds from now (the Python client sends whole seconds)
DELAY_EARLY_S = 0.2  # tolerance below the delivery time (clock granularity)
DELAY_LATE_S = 3.0  # the message must be received at most this long after its delivery time
RECALL_DELAY_S = 10
ORPHAN_CHECK_TIMEOUT_S = 100  # Apache: a check pass every 30 s for half messages older than 6 s; OrbitMQ: ~6 s
DLQ_MAX_ATTEMPTS = 2
SCENARIO_TIMEOUT_S = 140  # per-scenario bound (pytest's per-test timeout is 150 s)

APACHE = os.environ.get("ORBITMQ_COMPAT_SERVER", "").lower() == "apache"

TOPICS = {k: v[0] for k, v in TYPED_TOPICS.items()}
GROUPS = {k: v[0] for k, v in TYPED_GROUPS.items()}


def measured(what: str) -> None:
    """Timing/behaviour notes, shown with `pytest -rP` (or -s)."""
    print(f"[measured] {what}", flush=True)


def _notes():
    """A note function for a background scenario; its test prints the notes (its own captured output)."""
    lines: list[str] = []

    def note(what: str) -> None:
        lines.append(what)

    note.lines = lines
    return note


# ------------------------------------------------------------------------------------------------
# helpers


def _shutdown(client, what):
    if client is not None:
        run_with_timeout(client.shutdown, 30, f"{what}.shutdown()")


def _message(topic, body: bytes, tag=None, group=None, delivery_timestamp=None):
    msg = Message()
    msg.topic = topic
    msg.body = body
    if tag:
        msg.tag = tag
    if group:
        msg.message_group = group
    if delivery_timestamp is not None:
        msg.delivery_timestamp = delivery_timestamp  # whole seconds (sent as Timestamp.seconds)
    return msg


def _send(producer, msg, transaction=None):
    receipt = run_with_timeout(lambda: producer.send(msg, transaction), 30, f"send to {msg.topic}")
    assert receipt is not None, "send returned no receipt"
    assert receipt.message_id, f"send receipt has an empty message id: {receipt}"
    return receipt


def _receive(consumer, max_num=16, invisible_s=INVISIBLE_S):
    # The client bounds the call by request_timeout + await_duration; guard against a hang anyway.
    return run_with_timeout(lambda: consumer.receive(max_num, invisible_s), AWAIT_S + 20, "receive")


def _ack(consumer, m):
    run_with_timeout(lambda: consumer.ack(m), 15, f"ack {m.message_id}")  # raises on a non-OK status


def _simple_consumer(config, group, topic, expression="*"):
    consumer = SimpleConsumer(config, group, {topic: FilterExpression(expression)}, await_duration=AWAIT_S)
    return start(consumer, f"SimpleConsumer({group})")


def _describe(m):
    return (f"id={m.message_id} body={m.body!r} group={m.message_group} attempt={m.delivery_attempt} "
            f"topic={m.topic}")


def _receive_ids(consumer, want_ids, timeout_s=30, invisible_s=INVISIBLE_S):
    """Receive until every id in want_ids has arrived, each exactly once; anything else fails."""
    got = {}
    deadline = time.monotonic() + timeout_s
    while len(got) < len(want_ids):
        assert time.monotonic() < deadline, \
            f"timed out after {timeout_s} s: received {sorted(got)} of {sorted(want_ids)}"
        for m in _receive(consumer, invisible_s=invisible_s):
            if m.message_id not in want_ids:
                pytest.fail(f"unexpected message received: {_describe(m)}")
            assert m.message_id not in got, f"message {m.message_id} delivered twice"
            got[m.message_id] = m
    return got


def _assert_nothing_more(consumer, rounds=4, invisible_s=INVISIBLE_S):
    """Several concurrent receives (round robin over the queues) must all come back empty after a full long
    poll."""
    futures = [consumer.receive_async(16, invisible_s) for _ in range(rounds)]
    extra = []
    for f in futures:
        extra += f.result(timeout=AWAIT_S + 20)
    assert not extra, "unexpected extra messages: " + ", ".join(_describe(m) for m in extra)


class RecordingChecker(TransactionChecker):
    """Records every orphan check-back and answers with a fixed resolution."""

    def __init__(self, resolution):
        self.resolution = resolution
        self.calls = []  # (monotonic time, Message)

    def check(self, message):
        self.calls.append((time.monotonic(), message))
        return self.resolution


def _in_background(fn, *args) -> Future:
    """Run fn on a daemon thread (a hung client must not keep the interpreter alive)."""
    fut: Future = Future()

    def run():
        try:
            fut.set_result(fn(*args))
        except BaseException as e:  # noqa: BLE001 - handed to the waiting test
            fut.set_exception(e)

    threading.Thread(target=run, daemon=True, name=f"scenario-{fn.__name__}").start()
    return fut


@pytest.fixture(scope="module")
def producer(typed_resources, client_config):
    topics = tuple(TOPICS[k] for k in ("fifo-order", "fifo-excl", "delay", "recall", "dlq"))
    p = start(Producer(client_config, topics), "Producer")
    yield p
    _shutdown(p, "Producer")


# ------------------------------------------------------------------------------------------------
# slow scenarios, started together in the background (see the module docstring)


def scenario_fifo_exclusive_delivery(config, producer, note):
    """Two consumers of one FIFO group. While A holds the first message of a message group (not acked,
    invisible 40 s), neither A nor B gets the group's next message; after the ack the next one comes (to A or
    B), and so on, in order."""
    topic, group = TOPICS["fifo-excl"], GROUPS["fifo-excl"]
    a = b = None
    try:
        a = _simple_consumer(config, group, topic)
        b = _simple_consumer(config, group, topic)
        ids = [_send(producer, _message(topic, f"excl-{i}".encode(), group="excl-group")).message_id
               for i in range(3)]

        # A takes the first message of the group and keeps it in flight.
        deadline = time.monotonic() + 30
        got = []
        while not got:
            assert time.monotonic() < deadline, "A received nothing within 30 s"
            got = _receive(a, 1, HOLD_INVISIBLE_S)
        assert [m.message_id for m in got] == [ids[0]], \
            f"expected the group's first message {ids[0]}, got " + ", ".join(_describe(m) for m in got)
        first = got[0]
        assert first.message_group == "excl-group" and first.delivery_attempt == 1, _describe(first)
        held_at = time.monotonic()

        # Hold: both consumers keep receiving; nothing may come while the first message is in flight.
        def poll_for(consumer, name, seconds):
            out, end = [], time.monotonic() + seconds
            while time.monotonic() < end:
                out += [f"{name}: {_describe(m)}" for m in _receive(consumer, 16, HOLD_INVISIBLE_S)]
            return out

        with ThreadPoolExecutor(max_workers=2) as pool:
            fa, fb = pool.submit(poll_for, a, "A", HOLD_S), pool.submit(poll_for, b, "B", HOLD_S)
            leaked = fa.result(timeout=HOLD_S + AWAIT_S + 30) + fb.result(timeout=HOLD_S + AWAIT_S + 30)
        assert not leaked, "delivered while the group's first message was in flight: " + "; ".join(leaked)
        held = time.monotonic() - held_at
        assert held < HOLD_INVISIBLE_S - 5, f"hold phase took {held:.1f} s, the test is invalid"

        # Release: ack; A and B both poll (one message at a time); each next message of the group must come
        # after the previous one's ack, in order, to either consumer.
        events: queue.Queue = queue.Queue()
        stop = threading.Event()

        def poller(consumer, name):
            while not stop.is_set():
                try:
                    for m in _receive(consumer, 1, HOLD_INVISIBLE_S):
                        events.put((name, consumer, m, time.monotonic()))
                except BaseException as e:  # noqa: BLE001 - reported by the main loop
                    events.put((name, None, e, time.monotonic()))
                    return

        prev_ack_start = time.monotonic()
        _ack(a, first)
        prev_ack_done = time.monotonic()
        threads = [threading.Thread(target=poller, args=(c, n), daemon=True) for c, n in ((a, "A"), (b, "B"))]
        for t in threads:
            t.start()
        try:
            for want in ids[1:]:
                try:
                    name, consumer, m, at = events.get(timeout=NEXT_AFTER_ACK_S)
                except queue.Empty:
                    pytest.fail(f"the group's next message {want} was not delivered within {NEXT_AFTER_ACK_S} s "
                                f"after the previous one was acked")
                if isinstance(m, BaseException):
                    raise m
                assert m.message_id == want, f"{name} got {_describe(m)}, expected the group's next message {want}"
                assert at >= prev_ack_start, f"{name} got {want} before the previous message was acked"
                assert m.delivery_attempt == 1, _describe(m)
                note(f"FIFO exclusivity: next message reached {name} {at - prev_ack_done:.2f} s after the ack")
                prev_ack_start = time.monotonic()
                _ack(consumer, m)
                prev_ack_done = time.monotonic()
        finally:
            stop.set()
            for t in threads:
                t.join(AWAIT_S + 25)
        extra = []
        while not events.empty():
            name, _, m, _ = events.get()
            if isinstance(m, BaseException):
                raise m
            extra.append(f"{name}: {_describe(m)}")
        assert not extra, "unexpected deliveries after the whole group was acked: " + "; ".join(extra)
    finally:
        _shutdown(a, "SimpleConsumer A")
        _shutdown(b, "SimpleConsumer B")


def scenario_delay_message(config, producer, note):
    """A message with delivery_timestamp = now + 5 s is not receivable before then and arrives shortly after."""
    topic, group = TOPICS["delay"], GROUPS["delay"]
    consumer = _simple_consumer(config, group, topic)
    try:
        due = int(time.time()) + DELAY_S
        receipt = _send(producer, _message(topic, b"delayed", tag="TagD", delivery_timestamp=due))
        received = at = None
        while received is None:
            assert time.time() < due + DELAY_LATE_S + AWAIT_S + 5, \
                f"the delay message was not delivered within {DELAY_LATE_S} s after its delivery time"
            for m in _receive(consumer):
                now = time.time()
                assert m.message_id == receipt.message_id, f"unexpected message: {_describe(m)}"
                assert received is None, f"delay message delivered twice: {_describe(m)}"
                assert now >= due - DELAY_EARLY_S, f"delay message delivered {due - now:.2f} s before its time"
                received, at = m, now
        late = at - due
        note(f"delay: delivered {late:.2f} s after its delivery time; delivery_timestamp in the message "
                 f"{received.delivery_timestamp} (sent {due} s); message_type {received.message_type}")
        assert late <= DELAY_LATE_S, f"delay message delivered {late:.2f} s after its delivery time"
        assert received.body == b"delayed" and received.tag == "TagD", _describe(received)
        assert received.delivery_attempt == 1, _describe(received)
        assert received.delivery_timestamp == due * 1000, \
            f"delivered delivery_timestamp {received.delivery_timestamp} ms, sent {due} s"
        _ack(consumer, received)
        _assert_nothing_more(consumer)
    finally:
        _shutdown(consumer, "SimpleConsumer")


def scenario_recalled_delay_message(config, producer, note):
    """A delay message recalled with its receipt's recall handle is never delivered; a control message due at
    the same time is, and can no longer be recalled afterwards; a bogus handle is refused."""
    topic, group = TOPICS["recall"], GROUPS["recall"]
    consumer = _simple_consumer(config, group, topic)
    try:
        due = int(time.time()) + RECALL_DELAY_S
        recalled = _send(producer, _message(topic, b"recalled", delivery_timestamp=due))
        control = _send(producer, _message(topic, b"control", delivery_timestamp=due))
        assert recalled.recall_handle, f"a delay message's send receipt must carry a recall handle: {recalled}"
        try:
            answer = run_with_timeout(lambda: producer.recall_message(topic, recalled.recall_handle), 15,
                                      "recall_message")
        except Exception as e:
            if APACHE and "operation is forbidden" in str(e):
                # Apache 5.3.3's broker ships with recallMessageEnable=false; see tests/compat/README.md.
                pytest.skip("Apache broker has recall disabled (recallMessageEnable=false, its default): "
                            f"{e}")
            raise
        note(f"recall: recall_message returned {answer!r} for message id {recalled.message_id}")
        assert answer == recalled.message_id, f"recall returned {answer!r}, expected {recalled.message_id}"
        got_control = None
        while time.time() < due + 8 or got_control is None:
            assert time.time() < due + DELAY_LATE_S + AWAIT_S + 10, "the control delay message was not delivered"
            for m in _receive(consumer):
                assert m.message_id != recalled.message_id, f"recalled message delivered: {_describe(m)}"
                assert m.message_id == control.message_id, f"unexpected message: {_describe(m)}"
                assert got_control is None, f"control message delivered twice: {_describe(m)}"
                got_control = m
                _ack(consumer, m)
        # A message that was already delivered, and a handle that is no handle, cannot be recalled (Apache:
        # INTERNAL_SERVER_ERROR "recall failed, timestamp invalid" / "recall handle is invalid").
        for what, handle in (("an already delivered message", control.recall_handle), ("a bogus handle", "bogus")):
            try:
                answer = run_with_timeout(lambda: producer.recall_message(topic, handle), 15, "recall_message")
            except AssertionError:
                raise
            except Exception as e:  # noqa: BLE001 - any error status is right
                note(f"recall of {what}: {e}")
            else:
                pytest.fail(f"recall of {what} succeeded (returned {answer!r})")
    finally:
        _shutdown(consumer, "SimpleConsumer")


def scenario_transaction_orphan_check(config, _producer, note):
    """A half message the application neither commits nor rolls back: the server asks the producer's
    TransactionChecker (COMMIT), and only then is the message delivered, once."""
    topic, group = TOPICS["tx-orphan"], GROUPS["tx-orphan"]
    checker = RecordingChecker(TransactionResolution.COMMIT)
    producer = consumer = None
    try:
        producer = start(Producer(config, (topic,), checker), "transactional Producer")
        consumer = _simple_consumer(config, group, topic)
        transaction = producer.begin_transaction()
        receipt = _send(producer, _message(topic, b"orphan", tag="TagT"), transaction)
        sent_at = time.monotonic()
        assert receipt.transaction_id, f"transactional send receipt without transaction id: {receipt}"
        # The application walks away: no commit, no rollback.
        received = None
        while received is None:
            assert time.monotonic() < sent_at + ORPHAN_CHECK_TIMEOUT_S, (
                f"orphan half message not delivered within {ORPHAN_CHECK_TIMEOUT_S} s "
                f"(checker called {len(checker.calls)} times)")
            for m in _receive(consumer):
                assert m.message_id == receipt.message_id, f"unexpected message: {_describe(m)}"
                assert checker.calls, "half message delivered before the transaction checker resolved it"
                received = m
        check_at, checked = checker.calls[0]
        note(f"orphan transaction: first check {check_at - sent_at:.1f} s after the send, delivered "
                 f"{time.monotonic() - sent_at:.1f} s after; checker saw id={checked.message_id} "
                 f"topic={checked.topic} body={checked.body!r}; delivered message_type {received.message_type}")
        assert checked.message_id == receipt.message_id, f"checker got {checked.message_id}"
        assert checked.topic == topic and checked.body == b"orphan", f"checker got {_describe(checked)}"
        assert received.body == b"orphan" and received.tag == "TagT", _describe(received)
        assert received.delivery_attempt == 1, _describe(received)
        _ack(consumer, received)
        _assert_nothing_more(consumer, rounds=2)
        assert len(checker.calls) == 1, f"checker called {len(checker.calls)} times for a resolved transaction"
    finally:
        _shutdown(consumer, "SimpleConsumer")
        _shutdown(producer, "transactional Producer")


def scenario_retry_then_dead_letter(config, producer, note):
    """Group with max attempts 2: a message never acked is delivered exactly twice (delivery_attempt 1, then 2
    after the invisible duration), then lands in %DLQ%<group>, where another group reads it with the same
    message id and body."""
    topic, group, reader_group = TOPICS["dlq"], GROUPS["dlq"], GROUPS["dlq-reader"]
    dlq_topic = f"%DLQ%{group}"
    consumer = reader = None
    try:
        consumer = _simple_consumer(config, group, topic)
        receipt = _send(producer, _message(topic, b"to-the-dlq", tag="TagX"))
        deliveries = []  # (monotonic, Message)
        deadline = time.monotonic() + 30 + DLQ_MAX_ATTEMPTS * INVISIBLE_S
        while len(deliveries) < DLQ_MAX_ATTEMPTS:
            assert time.monotonic() < deadline, \
                f"only {len(deliveries)} of {DLQ_MAX_ATTEMPTS} deliveries within the time limit"
            for m in _receive(consumer):
                assert m.message_id == receipt.message_id, f"unexpected message: {_describe(m)}"
                deliveries.append((time.monotonic(), m))
        (t1, m1), (t2, m2) = deliveries
        assert [m1.delivery_attempt, m2.delivery_attempt] == [1, 2], [_describe(m) for _, m in deliveries]
        assert m2.body == b"to-the-dlq" and m2.tag == "TagX", _describe(m2)
        assert t2 - t1 >= INVISIBLE_S - 1.5, f"redelivered after {t2 - t1:.1f} s, before the invisible duration"
        note(f"retry/DLQ: second delivery {t2 - t1:.1f} s after the first")

        # From now on the group gets nothing more: keep receiving (in the background) until well past the end
        # of the second invisible duration, while another group reads the DLQ topic.
        redelivery_due = t2 + INVISIBLE_S

        def no_third_delivery():
            while time.monotonic() < redelivery_due + 10:
                for m in _receive(consumer):
                    pytest.fail(f"delivered again after {DLQ_MAX_ATTEMPTS} attempts: {_describe(m)}")

        watcher = _in_background(no_third_delivery)

        # The DLQ topic may exist only once a message was dead-lettered: from the end of the second invisible
        # duration on, retry until a consumer gets a route for it.
        time.sleep(max(0.0, redelivery_due - time.monotonic()))
        deadline = time.monotonic() + 40
        dead = None
        while dead is None:
            assert time.monotonic() < deadline, f"message not readable from {dlq_topic} within 40 s"
            if reader is None:
                candidate = SimpleConsumer(config, reader_group, {dlq_topic: FilterExpression("*")},
                                           await_duration=AWAIT_S)
                run_with_timeout(candidate.startup, 30, "DLQ SimpleConsumer.startup()")
                try:
                    candidate._retrieve_topic_route_data(dlq_topic)  # noqa: SLF001 - raises without a route
                except Exception:  # noqa: BLE001 - no route yet
                    _shutdown(candidate, "DLQ SimpleConsumer")
                    time.sleep(1)
                    continue
                reader = candidate
                wait_settings(reader, "DLQ SimpleConsumer")
            for m in _receive(reader):
                assert m.message_id == receipt.message_id, f"unexpected message in {dlq_topic}: {_describe(m)}"
                assert dead is None, f"message delivered twice from {dlq_topic}"
                dead = m
        note(f"retry/DLQ: read from {dlq_topic} {time.monotonic() - redelivery_due:.1f} s after the second "
             f"invisible duration ended: topic={dead.topic!r} namespace={dead.namespace!r} "
             f"attempt={dead.delivery_attempt} tag={dead.tag} keys={dead.keys} properties={dict(dead.properties)} "
             f"message_type={dead.message_type}")
        watcher.result(timeout=max(5.0, redelivery_due + 10 + AWAIT_S + 30 - time.monotonic()))
        assert dead.body == b"to-the-dlq" and dead.tag == "TagX", _describe(dead)
        assert dead.topic == dlq_topic, f"DLQ message delivered with topic {dead.topic!r}"
        _ack(reader, dead)
    finally:
        _shutdown(reader, "DLQ SimpleConsumer")
        _shutdown(consumer, "SimpleConsumer")


SCENARIOS = {
    "test_fifo_exclusive_delivery": scenario_fifo_exclusive_delivery,
    "test_delay_message_delivered_at_its_time": scenario_delay_message,
    "test_recalled_delay_message_is_never_delivered": scenario_recalled_delay_message,
    "test_transaction_orphan_check_commits": scenario_transaction_orphan_check,
    "test_retry_then_dead_letter_queue": scenario_retry_then_dead_letter,
}


@pytest.fixture(scope="module")
def scenarios(request, client_config, producer):
    """Starts every selected slow scenario at once; each test waits for its own."""
    selected = {item.name for item in request.session.items}
    futures = {}
    for name, fn in SCENARIOS.items():
        if name in selected:
            note = _notes()
            futures[name] = (_in_background(fn, client_config, producer, note), note)
    yield futures
    # Let unfinished scenarios shut their clients down before the producer goes away.
    for f, _ in futures.values():
        try:
            f.exception(timeout=SCENARIO_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - timeouts were reported by the test
            pass


@pytest.fixture(autouse=True)
def _start_scenarios_first(scenarios):
    """Requested by every test of the module, so the background scenarios start before the first test."""


def _wait_scenario(scenarios, name):
    future, note = scenarios[name]
    try:
        future.result(timeout=SCENARIO_TIMEOUT_S)
    except TimeoutError:
        pytest.fail(f"scenario did not finish within {SCENARIO_TIMEOUT_S} s")
    finally:
        for line in note.lines:
            measured(line)


# ------------------------------------------------------------------------------------------------
# tests (quick ones first; the background scenarios run meanwhile)


def test_fifo_order_per_message_group(producer, client_config):
    """3 message groups x 10 messages, each group sent from its own thread: one SimpleConsumer of a FIFO group
    gets every message exactly once and each group in send order."""
    topic, group = TOPICS["fifo-order"], GROUPS["fifo-order"]
    consumer = _simple_consumer(client_config, group, topic)
    try:
        names = [f"order-{g}" for g in range(FIFO_GROUPS)]

        def send_group(name):
            return [_send(producer, _message(topic, f"{name}/{i}".encode(), group=name)).message_id
                    for i in range(FIFO_PER_GROUP)]

        with ThreadPoolExecutor(max_workers=FIFO_GROUPS) as pool:
            sent = dict(zip(names, pool.map(send_group, names)))
        got = {name: [] for name in names}
        total = FIFO_GROUPS * FIFO_PER_GROUP
        deadline = time.monotonic() + 60
        n = 0
        while n < total:
            assert time.monotonic() < deadline, f"timed out: received {n} of {total}: {got}"
            batch = _receive(consumer)
            for m in batch:
                name = m.message_group
                assert name in got, f"unexpected message: {_describe(m)}"
                i = len(got[name])
                assert i < FIFO_PER_GROUP and m.message_id == sent[name][i], (
                    f"group {name}: got {_describe(m)} as message #{i}, expected {sent[name][i:i + 1]} "
                    f"(received so far {got[name]})")
                assert m.body == f"{name}/{i}".encode(), _describe(m)
                assert m.delivery_attempt == 1, _describe(m)
                got[name].append(m.message_id)
                n += 1
            for m in batch:
                _ack(consumer, m)
        assert got == sent
        _assert_nothing_more(consumer)
    finally:
        _shutdown(consumer, "SimpleConsumer")


def test_transaction_commit_and_rollback(client_config):
    """A committed half message is delivered once (and not before the commit); a rolled-back one never; the
    checker is not consulted for either."""
    topic, group = TOPICS["tx"], GROUPS["tx"]
    checker = RecordingChecker(TransactionResolution.ROLLBACK)
    producer = consumer = None
    try:
        producer = start(Producer(client_config, (topic,), checker), "transactional Producer")
        consumer = _simple_consumer(client_config, group, topic)

        rollback_tx = producer.begin_transaction()
        rolled_back = _send(producer, _message(topic, b"rolled-back"), rollback_tx)
        assert rolled_back.transaction_id, f"transactional send receipt without transaction id: {rolled_back}"
        run_with_timeout(rollback_tx.rollback, 15, "rollback")

        commit_tx = producer.begin_transaction()
        committed = _send(producer, _message(topic, b"committed", tag="TagC"), commit_tx)
        assert committed.transaction_id, f"transactional send receipt without transaction id: {committed}"
        early = _receive(consumer)
        assert not early, "delivered before commit: " + ", ".join(_describe(m) for m in early)
        run_with_timeout(commit_tx.commit, 15, "commit")

        (m,) = _receive_ids(consumer, {committed.message_id}).values()
        assert m.body == b"committed" and m.tag == "TagC", _describe(m)
        assert m.delivery_attempt == 1, _describe(m)
        measured(f"transaction commit: transaction_id {committed.transaction_id!r} (message id "
                 f"{committed.message_id}); delivered message_type {m.message_type}")
        _ack(consumer, m)
        _assert_nothing_more(consumer)
        assert not checker.calls, "checker called for a resolved transaction: " + ", ".join(
            c.message_id for _, c in checker.calls)
    finally:
        _shutdown(consumer, "SimpleConsumer")
        _shutdown(producer, "transactional Producer")


# Apache RocketMQ 5.3.3's gRPC proxy ignores Resource.resource_namespace (and x-mq-namespace) in requests: a
# client in namespace NS asking for topic T gets the route of the plain topic T (TOPIC_NOT_FOUND here, where only
# NS%T exists). It does split a stored "NS%T" into {namespace NS, name T} in delivered messages (so the client
# then acks T and fails). Against Apache (ORBITMQ_COMPAT_SERVER=apache) this test is therefore an expected
# failure; against OrbitMQ it is strict.
@pytest.mark.xfail(APACHE, strict=False,
                   reason="Apache RocketMQ 5.3.3's gRPC proxy ignores the request namespace "
                          "(Resource.resource_namespace)")
def test_namespaces_isolate(endpoint, typed_resources):
    """Two namespaces, same topic and group names: each namespace's consumer gets only the message sent in its
    own namespace, delivered with the plain topic name and the namespace in Resource.resource_namespace."""
    clients = []
    try:
        side = {}
        for key in ("ns-a", "ns-b"):
            ns = NAMESPACES[key]
            config = make_client_config(endpoint, ns)
            p = start(Producer(config, (NS_TOPIC,)), f"Producer({ns})")
            clients.append((p, f"Producer({ns})"))
            c = _simple_consumer(config, NS_GROUP, NS_TOPIC)
            clients.append((c, f"SimpleConsumer({ns})"))
            side[key] = (ns, p, c)
        sent = {key: _send(p, _message(NS_TOPIC, f"from {ns}".encode())).message_id
                for key, (ns, p, _) in side.items()}
        for key, (ns, _, c) in side.items():
            (m,) = _receive_ids(c, {sent[key]}).values()
            measured(f"namespace {ns}: delivered topic={m.topic!r} namespace={m.namespace!r}")
            assert m.body == f"from {ns}".encode(), _describe(m)
            assert m.topic == NS_TOPIC, f"delivered topic {m.topic!r}, expected the name without namespace"
            assert m.namespace == ns, f"delivered resource_namespace {m.namespace!r}, expected {ns!r}"
            _ack(c, m)
        for key, (ns, _, c) in side.items():
            _assert_nothing_more(c, rounds=2)
    finally:
        for client, what in reversed(clients):
            _shutdown(client, what)


def test_fifo_exclusive_delivery(scenarios):
    _wait_scenario(scenarios, "test_fifo_exclusive_delivery")


def test_delay_message_delivered_at_its_time(scenarios):
    _wait_scenario(scenarios, "test_delay_message_delivered_at_its_time")


def test_recalled_delay_message_is_never_delivered(scenarios):
    _wait_scenario(scenarios, "test_recalled_delay_message_is_never_delivered")


def test_retry_then_dead_letter_queue(scenarios):
    _wait_scenario(scenarios, "test_retry_then_dead_letter_queue")


def test_transaction_orphan_check_commits(scenarios):
    _wait_scenario(scenarios, "test_transaction_orphan_check_commits")
