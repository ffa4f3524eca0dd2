"""The official Python client (rocketmq-python-client 5.1.2) against the server under test.

Every wait is bounded; any unexpected message, missing message or client error fails the test.
Scenarios that depend on the invisible duration use the 10 s minimum Apache RocketMQ enforces and are
grouped so that only two tests wait for it.
"""

from __future__ import annotations

import os
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from rocketmq import FilterExpression, Message, Producer, SimpleConsumer

from conftest import GROUPS, TOPICS, run_with_timeout, start

AWAIT_S = 5  # long-polling time of every receive (Apache clamps to [5 s, 20 s])
INVISIBLE_S = 10  # Apache's minimum invisible duration for simple consumers
MESSAGE_ID_RE = re.compile(r"^[0-9A-F]{34}$")  # client generated: "01" + 32 upper-case hex (CL docs/message_id.md)


# ------------------------------------------------------------------------------------------------
# helpers


def _shutdown(client, what):
    run_with_timeout(client.shutdown, 30, f"{what}.shutdown()")


def _message(topic, body, tag=None, keys=None, props=None):
    msg = Message()
    msg.topic = topic
    msg.body = body
    if tag:
        msg.tag = tag
    if keys:
        msg.keys = keys
    for k, v in (props or {}).items():
        msg.add_property(k, v)
    return msg


def _send(producer, topic, body, **kw):
    msg = _message(topic, body, **kw)
    receipt = run_with_timeout(lambda: producer.send(msg), 30, f"send to {topic}")
    assert receipt is not None, "send returned no receipt"
    assert receipt.message_id, f"send receipt has an empty message id: {receipt}"
    return receipt


def _receive(consumer, max_num=16, invisible_s=INVISIBLE_S):
    # The client bounds the call by request_timeout + await_duration; guard against a hang anyway.
    return run_with_timeout(lambda: consumer.receive(max_num, invisible_s), AWAIT_S + 20, "receive")


def _simple_consumer(client_config, group, topic, expression="*"):
    consumer = SimpleConsumer(client_config, group, {topic: FilterExpression(expression)}, await_duration=AWAIT_S)
    return start(consumer, f"SimpleConsumer({group})")


def _receive_ids(consumer, want_ids, timeout_s=30, invisible_s=INVISIBLE_S, unexpected_ok=False):
    """Receive until every id in want_ids has arrived (each exactly once). Returns {id: Message}."""
    got = {}
    deadline = time.monotonic() + timeout_s
    while len(got) < len(want_ids):
        assert time.monotonic() < deadline, \
            f"timed out after {timeout_s} s: received {sorted(got)} of {sorted(want_ids)}"
        for m in _receive(consumer, invisible_s=invisible_s):
            if m.message_id not in want_ids:
                if unexpected_ok:
                    continue
                pytest.fail(f"unexpected message received: id={m.message_id} tag={m.tag} body={m.body!r}")
            assert m.message_id not in got, f"message {m.message_id} delivered twice"
            got[m.message_id] = m
    return got


def _assert_nothing_more(consumer, rounds=4, invisible_s=INVISIBLE_S):
    """Several concurrent receives (one per queue of a 4-queue topic, round robin) must all come back
    empty after a full long poll."""
    futures = [consumer.receive_async(16, invisible_s) for _ in range(rounds)]
    extra = []
    for f in futures:
        extra += f.result(timeout=AWAIT_S + 20)
    assert not extra, "unexpected extra messages: " + ", ".join(
        f"id={m.message_id} tag={m.tag} attempt={m.delivery_attempt}" for m in extra)


@pytest.fixture(scope="module")
def producer(resources, client_config):
    p = start(Producer(client_config, tuple(TOPICS.values())), "Producer")
    yield p
    _shutdown(p, "Producer")


# ------------------------------------------------------------------------------------------------
# tests


def test_producer_send_returns_message_id(producer):
    ids = set()
    for i in range(5):
        msg = _message(TOPICS["send"], f"send-{i}".encode(), tag="TagA", keys=f"key-{i}", props={"n": str(i)})
        receipt = run_with_timeout(lambda: producer.send(msg), 30, "send")
        assert receipt.message_id, "empty message id in send receipt"
        assert MESSAGE_ID_RE.match(receipt.message_id), f"unexpected message id format {receipt.message_id!r}"
        # The server stores and echoes the client-generated id; it does not make up its own.
        assert receipt.message_id == msg.message_id, (receipt.message_id, msg.message_id)
        assert receipt.message_queue.topic == TOPICS["send"]
        assert receipt.offset >= 0
        ids.add(receipt.message_id)
    assert len(ids) == 5, "message ids are not unique"


def test_simple_consumer_receive_and_ack(producer, client_config):
    topic, group = TOPICS["simple"], GROUPS["simple"]
    consumer = _simple_consumer(client_config, group, topic)
    try:
        sent = {}
        for i in range(3):
            body = f"simple-{i}".encode()
            r = _send(producer, topic, body, tag="TagS", keys=f"k{i}", props={"index": str(i)})
            sent[r.message_id] = (body, i)

        got = _receive_ids(consumer, set(sent))
        for mid, m in got.items():
            body, i = sent[mid]
            assert m.topic == topic
            assert m.body == body, (m.body, body)
            assert m.tag == "TagS"
            assert set(m.keys) == {f"k{i}"}, m.keys
            assert m.properties.get("index") == str(i), m.properties
            assert m.delivery_attempt == 1, f"first delivery must have delivery_attempt 1, got {m.delivery_attempt}"
            assert m.receipt_handle, "message without receipt handle"
            assert not m.corrupted, "body digest did not match the body"
            assert m.born_timestamp and m.born_timestamp > 0
            run_with_timeout(lambda: consumer.ack(m), 15, "ack")  # raises on a non-OK status
        # Acked messages are gone: nothing else is waiting (the invisible-duration test checks that
        # acked messages are not redelivered later).
        _assert_nothing_more(consumer)
    finally:
        _shutdown(consumer, "SimpleConsumer")


def test_change_invisible_duration_returns_usable_handle(producer, client_config):
    topic, group = TOPICS["cid"], GROUPS["cid"]
    consumer = _simple_consumer(client_config, group, topic)
    try:
        r = _send(producer, topic, b"change-invisible")
        (m,) = _receive_ids(consumer, {r.message_id}).values()
        old_handle = m.receipt_handle
        run_with_timeout(lambda: consumer.change_invisible_duration(m, INVISIBLE_S), 15, "change_invisible_duration")
        assert m.receipt_handle, "change_invisible_duration gave an empty receipt handle"
        assert m.receipt_handle != old_handle, "change_invisible_duration must return a new receipt handle"
        # The client stored the new handle in the message; acking with it must succeed.
        run_with_timeout(lambda: consumer.ack(m), 15, "ack with the new handle")
    finally:
        _shutdown(consumer, "SimpleConsumer")


def test_invisible_duration_semantics(producer, client_config):
    """One topic, one 10 s wait:
    A received and acked      -> never delivered again;
    B received and not acked  -> redelivered once its invisible duration has passed (not before), with
                                 delivery_attempt == 2 and a fresh receipt handle."""
    topic, group = TOPICS["redeliver"], GROUPS["redeliver"]
    consumer = _simple_consumer(client_config, group, topic)
    try:
        ra = _send(producer, topic, b"A-acked")
        rb = _send(producer, topic, b"B-not-acked")
        got = _receive_ids(consumer, {ra.message_id, rb.message_id})
        received_at = time.monotonic()
        for m in got.values():
            assert m.delivery_attempt == 1, m.delivery_attempt
        a, b = got[ra.message_id], got[rb.message_id]
        run_with_timeout(lambda: consumer.ack(a), 15, "ack A")

        # Wait for B's redelivery; anything else (or B too early) is wrong.
        redelivered = None
        deadline = received_at + INVISIBLE_S + 30
        while redelivered is None:
            assert time.monotonic() < deadline, "B was not redelivered within 30 s after its invisible duration"
            for m in _receive(consumer):
                if m.message_id != rb.message_id:
                    pytest.fail(f"message {m.message_id} ({m.body!r}) was redelivered although it was acked")
                elapsed = time.monotonic() - received_at
                assert elapsed >= INVISIBLE_S - 1.5, \
                    f"B came back after {elapsed:.1f} s, before its {INVISIBLE_S} s invisible duration"
                redelivered = m
        assert redelivered.body == b"B-not-acked"
        assert redelivered.delivery_attempt == 2, \
            f"redelivery must have delivery_attempt 2, got {redelivered.delivery_attempt}"
        assert redelivered.receipt_handle and redelivered.receipt_handle != b.receipt_handle, \
            "a redelivery must come with a fresh receipt handle"
        run_with_timeout(lambda: consumer.ack(redelivered), 15, "ack redelivered B")
        _assert_nothing_more(consumer)
    finally:
        _shutdown(consumer, "SimpleConsumer")


# Apache RocketMQ 5.3.3 often redelivers a message that was acked with the handle returned by
# ChangeInvisibleDuration (open upstream bug apache/rocketmq#9583; measured here: 35 of 40 messages came
# back). Against Apache (ORBITMQ_COMPAT_SERVER=apache) this test is therefore an expected failure, reported
# as XFAIL/XPASS in the summary; against OrbitMQ it is strict.
@pytest.mark.xfail(os.environ.get("ORBITMQ_COMPAT_SERVER", "").lower() == "apache", strict=False,
                   reason="Apache RocketMQ 5.3.3 bug apache/rocketmq#9583: ack after ChangeInvisibleDuration "
                          "does not always take effect")
def test_ack_after_change_invisible_duration_is_final(producer, client_config):
    """Messages whose invisible duration was changed and that were then acked with the new handle never
    come back, also after the original and the changed invisible durations have passed."""
    topic, group = TOPICS["cid-final"], GROUPS["cid-final"]
    consumer = _simple_consumer(client_config, group, topic)
    try:
        sent = {_send(producer, topic, f"changed-then-acked-{i}".encode()).message_id for i in range(4)}
        got = _receive_ids(consumer, sent)
        received_at = time.monotonic()
        for m in got.values():
            run_with_timeout(lambda: consumer.change_invisible_duration(m, INVISIBLE_S), 15,
                             "change_invisible_duration")
            run_with_timeout(lambda: consumer.ack(m), 15, "ack with the new handle")
        # Both invisible durations end about INVISIBLE_S after the receive; watch a while past that.
        while time.monotonic() < received_at + INVISIBLE_S + 6:
            back = _receive(consumer)
            assert not back, "acked messages came back: " + ", ".join(
                f"id={m.message_id} attempt={m.delivery_attempt}" for m in back)
    finally:
        _shutdown(consumer, "SimpleConsumer")


def test_tag_filter(producer, client_config):
    topic = TOPICS["tags"]
    sent = {"TagA": set(), "TagB": set(), "TagC": set()}
    for tag in sent:
        for i in range(2):
            sent[tag].add(_send(producer, topic, f"{tag}-{i}".encode(), tag=tag).message_id)

    def check(group, expression, want_tags):
        consumer = _simple_consumer(client_config, group, topic, expression)
        try:
            want = set().union(*(sent[t] for t in want_tags))
            got = _receive_ids(consumer, want)
            for m in got.values():
                assert m.tag in want_tags, f"{expression!r} delivered tag {m.tag}"
                run_with_timeout(lambda: consumer.ack(m), 15, "ack")
            _assert_nothing_more(consumer)
        finally:
            _shutdown(consumer, f"SimpleConsumer({group})")

    with ThreadPoolExecutor(max_workers=2) as pool:
        fa = pool.submit(check, GROUPS["tag-a"], "TagA", {"TagA"})
        fab = pool.submit(check, GROUPS["tag-ab"], "TagA||TagB", {"TagA", "TagB"})
        fa.result(timeout=120)
        fab.result(timeout=120)
