"""Simple consumer: receive, ack, change invisible duration, redelivery; sync and async."""

from __future__ import annotations

import time

from conftest import receive_all
from orbitmq import FilterExpression, Message, Producer, SimpleConsumer


def test_tag_filters_and_ack(endpoint, make_topic, make_group) -> None:  # type: ignore[no-untyped-def]
    topic, group = make_topic(), make_group()
    with Producer(endpoints=endpoint, topics=[topic]) as p:
        for tag in ("A", "B", "C"):
            p.send(Message(topic, tag.encode(), tag=tag))
    subs = {topic: FilterExpression("A || B")}
    with SimpleConsumer(endpoints=endpoint, group=group, subscriptions=subs, await_duration=2) as c:
        assert c.group == group
        got = receive_all(c, 2)
        assert sorted(m.body for m in got) == [b"A", b"B"]
        assert c.receive(16, 10) == []  # acked: nothing comes back, and C never matched


def test_change_invisible_duration_brings_a_message_back_sooner(endpoint, make_topic, make_group) -> None:  # type: ignore[no-untyped-def]
    topic, group = make_topic(), make_group()
    with Producer(endpoints=endpoint, topics=[topic]) as p:
        p.send(Message(topic, b"again"))
    with SimpleConsumer(endpoints=endpoint, group=group, subscriptions={topic: "*"}, await_duration=2) as c:
        first = []
        deadline = time.monotonic() + 10
        while not first and time.monotonic() < deadline:
            first = c.receive(1, 60)
        (m,) = first
        old = m.receipt_handle
        new = c.change_invisible_duration(m, 1)
        assert new == m.receipt_handle != old
        again = []
        deadline = time.monotonic() + 10
        while not again and time.monotonic() < deadline:
            again = c.receive(1, 30)
        assert [x.message_id for x in again] == [m.message_id]
        assert again[0].delivery_attempt == 2
        c.ack(again[0])


async def test_async_receive_ack_and_change(endpoint, make_topic, make_group) -> None:  # type: ignore[no-untyped-def]
    topic, group = make_topic(), make_group()
    async with Producer(endpoints=endpoint, topics=[topic]) as p:
        await p.send_async(Message(topic, b"x"))
    async with SimpleConsumer(endpoints=endpoint, group=group, await_duration=2) as c:
        await c.subscribe_async(topic, "*")
        got = []
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            got = await c.receive_async(max_messages=4, invisible_duration=20)
        handle = await c.change_invisible_duration_async(got[0], 30)
        assert got[0].receipt_handle == handle
        await c.ack_async(got[0])


async def test_cancelling_an_awaitable_cancels_the_call(endpoint, make_topic, make_group) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    topic, group = make_topic(), make_group()
    async with SimpleConsumer(endpoints=endpoint, group=group, subscriptions={topic: "*"}, await_duration=20) as c:
        waiting = asyncio.ensure_future(c.receive_async(1, 15))  # a long poll on an empty topic
        await asyncio.sleep(0.3)
        started = time.monotonic()
        waiting.cancel()
        try:
            await waiting
        except asyncio.CancelledError:
            pass
        assert waiting.cancelled() and time.monotonic() - started < 1
        async with Producer(endpoints=endpoint, topics=[topic]) as p:
            await p.send_async(Message(topic, b"after"))
        got: list = []
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            got = await c.receive_async(1, 15)
        assert [m.body for m in got] == [b"after"]
