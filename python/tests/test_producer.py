"""Producer: one message and batches, FIFO, delay and recall, transactions with a checker;
sync and async."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import receive_all
from orbitmq import ClientConfig, Message, PreconditionFailedError, Producer, SimpleConsumer, TransactionResolution


def test_send_gives_a_full_receipt_and_the_message_arrives_intact(endpoint, make_topic, make_group) -> None:  # type: ignore[no-untyped-def]
    topic, group = make_topic(), make_group()
    with Producer(endpoints=endpoint, topics=[topic]) as p:
        r = p.send(Message(topic, b"body", tag="A", keys=["k1", "k2"], properties={"p": "v"}))
        assert len(r.message_id) == 34 and r.topic == topic
        assert r.offset_msg_id and r.queue_id is not None and r.queue_offset >= 0
        assert r.endpoint == endpoint
        receipts = p.send_batch([Message(topic, b"1"), Message(topic, "2")])
        assert len(receipts) == 2 and len({x.message_id for x in receipts}) == 2
    with SimpleConsumer(endpoints=endpoint, group=group, subscriptions={topic: "*"}, await_duration=2) as c:
        got = {m.message_id: m for m in receive_all(c, 3)}
    m = got[r.message_id]
    assert (m.body, m.tag, sorted(m.keys), m.properties) == (b"body", "A", ["k1", "k2"], {"p": "v"})
    assert (m.topic, m.queue_id, m.queue_offset, m.offset_msg_id) == (
        topic,
        r.queue_id,
        r.queue_offset,
        r.offset_msg_id,
    )
    assert m.delivery_attempt == 1 and m.born_timestamp <= m.store_timestamp
    assert sorted(x.body for x in got.values()) == [b"1", b"2", b"body"]


async def test_async_sends_run_concurrently(endpoint, make_topic, make_group) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    topic, group = make_topic(), make_group()
    async with Producer(ClientConfig(endpoint), topics=[topic]) as p:
        receipts = await asyncio.gather(*(p.send_async(Message(topic, f"m{i}")) for i in range(50)))
        batch = await p.send_batch_async([Message(topic, b"b1"), Message(topic, b"b2")])
    assert len({r.message_id for r in receipts + batch}) == 52
    async with SimpleConsumer(endpoints=endpoint, group=group, subscriptions={topic: "*"}, await_duration=2) as c:
        got = []
        deadline = time.monotonic() + 15
        while len(got) < 52 and time.monotonic() < deadline:
            for m in await c.receive_async(32, 15):
                await c.ack_async(m)
                got.append(m.body)
    assert len(got) == 52


def test_fifo_keeps_the_order_of_a_message_group(endpoint, make_topic, make_group) -> None:  # type: ignore[no-untyped-def]
    topic, group = make_topic("fifo", "FIFO"), make_group("fifo", fifo=True)
    with Producer(endpoints=endpoint, topics=[topic]) as p:
        for i in range(10):
            p.send(Message(topic, f"a{i}", message_group="A"))
            p.send(Message(topic, f"b{i}", message_group="B"))
    with SimpleConsumer(endpoints=endpoint, group=group, subscriptions={topic: "*"}, await_duration=2) as c:
        got = receive_all(c, 20)
    for g in ("A", "B"):
        bodies = [m.body.decode() for m in got if m.message_group == g]
        assert bodies == [f"{g.lower()}{i}" for i in range(10)]


async def test_delay_delivers_late_and_recall_cancels(endpoint, make_topic, make_group) -> None:  # type: ignore[no-untyped-def]
    topic, group = make_topic("delay", "DELAY"), make_group()
    async with Producer(endpoints=endpoint, topics=[topic]) as p:
        sent_at = time.time()
        kept = await p.send_async(Message(topic, b"late", delay=2.0))
        recalled = await p.send_async(Message(topic, b"recalled", delivery_timestamp=int((sent_at + 2) * 1000)))
        assert recalled.recall_handle
        assert await p.recall_async(topic, recalled.recall_handle) == recalled.message_id
    with SimpleConsumer(endpoints=endpoint, group=group, subscriptions={topic: "*"}, await_duration=2) as c:
        got = receive_all(c, 1)
        time.sleep(1)
        got += c.receive(32, 15)
    assert [m.body for m in got] == [b"late"], got
    assert got[0].message_id == kept.message_id
    assert time.time() >= sent_at + 1.9 and got[0].delivery_timestamp is not None


def test_transactions_commit_rollback_and_a_checker_settles_an_open_one(endpoint, make_topic, make_group) -> None:  # type: ignore[no-untyped-def]
    topic, group = make_topic("tx", "TRANSACTION"), make_group()
    checked = []
    seen = threading.Event()

    def checker(m):  # type: ignore[no-untyped-def]
        checked.append(m.body)
        seen.set()
        return TransactionResolution.COMMIT if m.body == b"orphan" else TransactionResolution.ROLLBACK

    with Producer(endpoints=endpoint, topics=[topic], checker=checker) as p:
        tx = p.begin_transaction()
        assert tx.send(Message(topic, b"committed")).transaction_id
        tx.commit()
        with pytest.raises(PreconditionFailedError):
            tx.commit()
        tx = p.begin_transaction()
        tx.send(Message(topic, b"rolled back"))
        tx.rollback()
        p.begin_transaction().send(Message(topic, b"orphan"))  # neither: the checker decides
        with SimpleConsumer(endpoints=endpoint, group=group, subscriptions={topic: "*"}, await_duration=2) as c:
            got = receive_all(c, 1)
            assert seen.wait(60), "the server never checked the open transaction back"
            got += receive_all(c, 1, timeout=15)
    assert sorted(m.body for m in got) == [b"committed", b"orphan"]
    assert checked == [b"orphan"]


async def test_async_transaction_with_a_coroutine_checker(endpoint, make_topic, make_group) -> None:  # type: ignore[no-untyped-def]
    topic, group = make_topic("txa", "TRANSACTION"), make_group()

    async def checker(m):  # type: ignore[no-untyped-def]
        return TransactionResolution.ROLLBACK

    async with Producer(endpoints=endpoint, topics=[topic], checker=checker) as p:
        tx = p.begin_transaction()
        await tx.send_async(Message(topic, b"one"))
        await tx.send_async(Message(topic, b"two"))
        await tx.commit_async()
    with SimpleConsumer(endpoints=endpoint, group=group, subscriptions={topic: "*"}, await_duration=2) as c:
        assert sorted(m.body for m in receive_all(c, 2)) == [b"one", b"two"]
