"""Pull consumer: subscribe, assign, poll, commit, seek (offset, beginning, end, timestamp),
broker and local offset stores; sync and async."""

from __future__ import annotations

import time

from orbitmq import Message, MessageQueue, Producer, PullConsumer


def poll_all(pc: PullConsumer, want: int, timeout: float = 15.0) -> list[bytes]:
    got: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got += [m.body for m in pc.poll(timeout=1.0)]
    return got


def test_subscribe_poll_commit_and_resume(endpoint, make_topic, make_group) -> None:  # type: ignore[no-untyped-def]
    topic, group = make_topic(queues=2), make_group()
    with Producer(endpoints=endpoint, topics=[topic]) as p:
        for i in range(10):
            p.send(Message(topic, f"m{i}"))
    with PullConsumer(endpoints=endpoint, group=group, auto_commit_interval=0) as pc:
        pc.subscribe(topic, "*")
        assert len(pc.assignment()) == 2
        assert sorted(poll_all(pc, 10)) == sorted(f"m{i}".encode() for i in range(10))
        pc.commit()
    with Producer(endpoints=endpoint, topics=[topic]) as p:
        p.send(Message(topic, b"after"))
    with PullConsumer(endpoints=endpoint, group=group, subscriptions={topic: "*"}) as pc:
        assert poll_all(pc, 1) == [b"after"], "resumes from the committed offsets"


def test_assign_and_seek(endpoint, make_topic, make_group, tmp_path) -> None:  # type: ignore[no-untyped-def]
    topic, group = make_topic(queues=1), make_group()
    with Producer(endpoints=endpoint, topics=[topic]) as p:
        for i in range(5):
            p.send(Message(topic, f"m{i}"))
    with PullConsumer(endpoints=endpoint, group=group, offset_store=str(tmp_path)) as pc:
        (q,) = pc.queues(topic)
        assert isinstance(q, MessageQueue) and q.topic == topic and q.queue_id == 0
        pc.assign(pc.queues(topic))
        assert pc.assignment() == [q]
        assert poll_all(pc, 5) == [f"m{i}".encode() for i in range(5)]
        assert pc.position(q) == 5
        pc.seek(q, 3)
        assert poll_all(pc, 2) == [b"m3", b"m4"]
        pc.seek_to_beginning(topic)
        assert poll_all(pc, 5)[0] == b"m0"
        pc.seek_to_end(topic)
        assert pc.poll(timeout=0.5) == []
        pc.seek_to_timestamp(topic, 0)
        assert poll_all(pc, 5)[0] == b"m0"
        pc.commit()
    assert list(tmp_path.iterdir()), "the local offset store holds the committed offsets"


async def test_async_pull(endpoint, make_topic, make_group) -> None:  # type: ignore[no-untyped-def]
    topic, group = make_topic(queues=1), make_group()
    async with Producer(endpoints=endpoint, topics=[topic]) as p:
        await p.send_batch_async([Message(topic, b"a"), Message(topic, b"b")])
    async with PullConsumer(endpoints=endpoint, group=group) as pc:
        await pc.assign_async(await pc.queues_async(topic))
        got: list[bytes] = []
        deadline = time.monotonic() + 15
        while len(got) < 2 and time.monotonic() < deadline:
            got += [m.body for m in await pc.poll_async(1.0)]
        assert got == [b"a", b"b"]
        await pc.commit_async()
        await pc.seek_to_beginning_async(topic)
        assert [m.body for m in await pc.poll_async(2.0)][:1] == [b"a"]
        await pc.seek_to_end_async(topic)
        await pc.seek_to_timestamp_async(topic, 0)


def test_sdk_warnings_reach_python_logging(endpoint, make_topic, make_group, caplog) -> None:  # type: ignore[no-untyped-def]
    import logging

    from conftest import wait_until

    topic, group = make_topic(queues=1), make_group()
    with Producer(endpoints=endpoint, topics=[topic]) as p:
        p.send(Message(topic, b"only"))
    caplog.set_level(logging.WARNING, logger="orbitmq")
    with PullConsumer(endpoints=endpoint, group=group) as pc:
        pc.assign(pc.queues(topic))
        (q,) = pc.assignment()
        pc.seek(q, 1000)  # past the end: the SDK warns and moves to the nearest valid offset
        pc.poll(timeout=1.0)

        def warned() -> bool:
            return any(r.name == "orbitmq" and "offset outside the queue" in r.getMessage() for r in caplog.records)

        wait_until(warned, 10, "the SDK's warning on the orbitmq logger")
    (record,) = [r for r in caplog.records if "offset outside the queue" in r.getMessage()][:1]
    assert record.levelno == logging.WARNING and "next=1" in record.getMessage(), record.getMessage()
