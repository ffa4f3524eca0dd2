"""Errors: one class per SDK error kind, bad arguments refused before any network call, and
server answers mapped with their RocketMQ status code."""

from __future__ import annotations

import orbitmq
import pytest
from orbitmq import (
    BadRequestError,
    ClosedError,
    ConsumerModel,
    Message,
    NotFoundError,
    OrbitMQError,
    PayloadTooLargeError,
    Producer,
    PullConsumer,
    PushConsumer,
    SimpleConsumer,
    exceptions,
)

# Nothing listens on port 1: a network call would fail UNAVAILABLE, not BAD_REQUEST.
NOWHERE = "127.0.0.1:1"


def test_every_error_kind_has_its_class() -> None:
    kinds = orbitmq._orbitmq.error_kinds()
    assert [n for _, n in kinds] == list(range(1, len(kinds) + 1))
    for name, _ in kinds:
        cls = exceptions._BY_KIND[name]
        assert issubclass(cls, OrbitMQError) and cls.kind == name
    assert issubclass(orbitmq.TimeoutError, TimeoutError)
    assert issubclass(BadRequestError, ValueError)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Message("T", b"x", delay=-1.0),
        lambda: Message("T", b"x", delay=1.0, delivery_timestamp=1),
        lambda: orbitmq.ClientConfig("not-an-endpoint"),
        lambda: orbitmq.ClientConfig(NOWHERE, request_timeout=0),
        lambda: Producer(),
        lambda: Producer(orbitmq.ClientConfig(NOWHERE), endpoints=NOWHERE),
        lambda: Producer(endpoints=NOWHERE, topics=["bad topic"]),
        lambda: SimpleConsumer(endpoints=NOWHERE, group="g", await_duration=float("nan")),
        lambda: PushConsumer(endpoints=NOWHERE, group="g", listener=print, consumption_threads=0),
        lambda: PushConsumer(
            endpoints=NOWHERE,
            group="g",
            listener=print,
            model=ConsumerModel.BROADCASTING,
            subscriptions={"T": orbitmq.FilterExpression("a > 1", sql=True)},
        ),
        lambda: PullConsumer(endpoints=NOWHERE, group="g", max_batch=0),
    ],
)
def test_bad_arguments_raise_bad_request_at_once(make) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(OrbitMQError) as e:
        make()
    assert e.type in (BadRequestError, orbitmq.UnsupportedError), e.value
    assert e.value.kind in ("BAD_REQUEST", "UNSUPPORTED")


def test_bad_messages_fail_before_any_network_call() -> None:
    p = Producer(endpoints=NOWHERE)
    with pytest.raises(BadRequestError, match="empty"):
        p.send(Message("T", b""))
    with pytest.raises(PayloadTooLargeError):
        p.send(Message("T", b"x" * (4 * 1024 * 1024 + 1)))
    with pytest.raises(BadRequestError, match="one topic"):
        p.send_batch([Message("A", b"1"), Message("B", b"2")])
    with pytest.raises(BadRequestError) as e:
        p.send(Message("T", b"x", properties={"UNIQ_KEY": "v"}))
    assert e.value.code is not None and e.value.operation == "send"
    with pytest.raises(BadRequestError, match="checker"):
        p.begin_transaction()
    c = SimpleConsumer(endpoints=NOWHERE, group="g", subscriptions={"T": "*"})
    with pytest.raises(BadRequestError, match="1 to 32"):
        c.receive(max_messages=0)
    with pytest.raises(BadRequestError, match="invisible"):
        c.receive(invisible_duration=1)
    with pytest.raises(BadRequestError, match="seconds"):
        c.receive(invisible_duration=-5)
    pc = PullConsumer(endpoints=NOWHERE, group="g")
    with pytest.raises(BadRequestError, match="timeout"):
        pc.poll(timeout=0)
    with pytest.raises(BadRequestError, match="below 0"):
        pc.seek(orbitmq.MessageQueue("T", "b", 0), -1)
    for client in (p, c, pc):
        client.close()


async def test_bad_arguments_fail_the_same_way_async() -> None:
    p = Producer(endpoints=NOWHERE)  # not started: `async with` would connect
    with pytest.raises(BadRequestError):
        await p.send_async(Message("bad topic", b"x"))
    with pytest.raises(BadRequestError):
        await p.send_batch_async([])
    await p.close_async()


def test_an_unreachable_server_is_unavailable() -> None:
    with pytest.raises((orbitmq.UnavailableError, orbitmq.TimeoutError)) as e:
        with Producer(endpoints=NOWHERE, request_timeout=1):
            pass
    assert e.value.endpoint == NOWHERE


def test_server_answers_keep_their_status_code(endpoint: str) -> None:
    with Producer(endpoints=endpoint) as p:
        with pytest.raises(NotFoundError) as e:
            p.send(Message("py-no-such-topic-at-all", b"x"))
    assert e.value.code == 40402, e.value
    assert "py-no-such-topic-at-all" in str(e.value)


def test_closed_clients_refuse_and_close_twice_is_fine(endpoint: str, make_topic) -> None:  # type: ignore[no-untyped-def]
    topic = make_topic()
    p = Producer(endpoints=endpoint, topics=[topic])
    p.start()
    p.close()
    p.close()
    with pytest.raises(ClosedError):
        p.send(Message(topic, b"x"))
