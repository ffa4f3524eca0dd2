"""Interop both ways with the official ``rocketmq-python-client==5.1.2``: what it sends, orbitmq
receives with every field, and what orbitmq sends, it receives."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable

import orbitmq
import pytest

rocketmq = pytest.importorskip("rocketmq")


def _bounded(fn: Callable[[], Any], timeout: float, what: str) -> Any:
    """A blocking official-client call in a thread, failing instead of hanging."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised below
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"{what} did not return within {timeout} s"
    if "error" in out:
        raise out["error"]
    return out.get("value")


def _start(client: Any, what: str) -> Any:
    """startup() with the client's io loop as the thread's loop (tests/compat/python/conftest.py)."""
    from rocketmq.v5.client.connection.rpc_client import RpcClient

    def startup() -> None:
        loop = RpcClient.get_channel_io_loop()
        if loop is not None:
            asyncio.set_event_loop(loop)
        client.startup()

    _bounded(startup, 30, f"{what}.startup()")
    assert client._init_settings_event.wait(10), f"{what}: no settings from the server"  # noqa: SLF001
    return client


def _config(endpoint: str) -> Any:
    return rocketmq.ClientConfiguration(endpoint, rocketmq.Credentials(), request_timeout=5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_official_producer_to_orbitmq_consumer(endpoint, make_topic, make_group) -> None:  # type: ignore[no-untyped-def]
    topic, group = make_topic(), make_group()
    producer = _start(rocketmq.Producer(_config(endpoint), (topic,)), "official Producer")
    try:
        msg = rocketmq.Message()
        msg.topic, msg.body, msg.tag, msg.keys = topic, b"from official", "TagO", "key-o"
        msg.add_property("origin", "official")
        receipt = _bounded(lambda: producer.send(msg), 30, "send")
    finally:
        _bounded(producer.shutdown, 30, "shutdown")
    with orbitmq.SimpleConsumer(endpoints=endpoint, group=group, subscriptions={topic: "*"}, await_duration=5) as c:
        got: list[orbitmq.MessageView] = []
        deadline = time.monotonic() + 20
        while not got and time.monotonic() < deadline:
            got = c.receive(16, 15)
        (m,) = got
        c.ack(m)
    assert (m.message_id, m.body, m.tag, m.keys, m.properties.get("origin")) == (
        receipt.message_id,
        b"from official",
        "TagO",
        ["key-o"],
        "official",
    )


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_orbitmq_producer_to_official_consumer(endpoint, make_topic, make_group) -> None:  # type: ignore[no-untyped-def]
    topic, group = make_topic(), make_group()
    with orbitmq.Producer(endpoints=endpoint, topics=[topic]) as p:
        r = p.send(
            orbitmq.Message(topic, b"from orbitmq", tag="TagR", keys=["key-r"], properties={"origin": "orbitmq"})
        )
    consumer = _start(
        rocketmq.SimpleConsumer(_config(endpoint), group, {topic: rocketmq.FilterExpression("TagR")}, await_duration=5),
        "official SimpleConsumer",
    )
    try:
        got: list[Any] = []
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            got = _bounded(lambda: consumer.receive(16, 15), 30, "receive") or []
        (m,) = got
        _bounded(lambda: consumer.ack(m), 15, "ack")
    finally:
        _bounded(consumer.shutdown, 30, "shutdown")
    assert (m.message_id, m.body, m.tag, list(m.keys), m.properties.get("origin")) == (
        r.message_id,
        b"from orbitmq",
        "TagR",
        ["key-r"],
        "orbitmq",
    )
