"""Push consumer: clustering and broadcasting, plain and coroutine listeners, a listener that
raises (FAILURE, logged, redelivered), and cleanup that leaves no thread of ours running."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
import time
from collections import Counter

import orbitmq
from conftest import wait_until
from orbitmq import ConsumeResult, ConsumerModel, Message, Producer, PushConsumer


def test_clustering_shares_messages_between_members(endpoint, make_topic, make_group) -> None:  # type: ignore[no-untyped-def]
    topic, group = make_topic(), make_group()
    seen: Counter[str] = Counter()
    by_member: Counter[int] = Counter()
    lock = threading.Lock()

    def member(n: int):  # type: ignore[no-untyped-def]
        def on_message(m: orbitmq.MessageView) -> ConsumeResult:
            with lock:
                seen[m.body.decode()] += 1
                by_member[n] += 1
            return ConsumeResult.SUCCESS

        return on_message

    with (
        PushConsumer(endpoints=endpoint, group=group, subscriptions={topic: "*"}, listener=member(1)),
        PushConsumer(
            endpoints=endpoint,
            group=group,
            subscriptions={topic: "*"},
            listener=member(2),
            model=ConsumerModel.CLUSTERING,
        ),
    ):
        with Producer(endpoints=endpoint, topics=[topic]) as p:
            for i in range(40):
                p.send(Message(topic, f"m{i}"))
        wait_until(lambda: len(seen) == 40, 20, "every message consumed")
        time.sleep(0.5)
    assert set(seen.values()) == {1}, "each message once in the group"


def test_broadcasting_gives_every_member_every_message(endpoint, make_topic, make_group, tmp_path) -> None:  # type: ignore[no-untyped-def]
    topic, group = make_topic(), make_group()
    got: dict[str, list[bytes]] = {"a": [], "b": []}

    def member(name: str):  # type: ignore[no-untyped-def]
        return lambda m: (got[name].append(m.body), ConsumeResult.SUCCESS)[1]

    kw = dict(endpoints=endpoint, group=group, subscriptions={topic: "*"}, model=ConsumerModel.BROADCASTING)
    with (
        PushConsumer(listener=member("a"), offset_store=str(tmp_path / "a"), **kw),
        PushConsumer(listener=member("b"), offset_store=str(tmp_path / "b"), **kw),
    ):  # type: ignore[arg-type]
        with Producer(endpoints=endpoint, topics=[topic]) as p:
            for i in range(10):
                p.send(Message(topic, f"m{i}"))
        wait_until(lambda: len(got["a"]) >= 10 and len(got["b"]) >= 10, 20, "both members got everything")
    assert sorted(got["a"]) == sorted(got["b"]) == sorted(f"m{i}".encode() for i in range(10))


def test_a_raising_listener_or_a_wrong_value_counts_as_failure_is_logged_and_redelivered(
    endpoint, make_topic, make_group, caplog
) -> None:  # type: ignore[no-untyped-def]
    # One test for both: a redelivery waits for the consumer's next long poll (about 20 s).
    topic, group = make_topic(), make_group()
    attempts: dict[bytes, list[int]] = {b"raise": [], b"none": []}

    def on_message(m: orbitmq.MessageView) -> ConsumeResult:
        attempts[m.body].append(m.delivery_attempt)
        if m.delivery_attempt > 1:
            return ConsumeResult.SUCCESS
        if m.body == b"raise":
            raise RuntimeError("boom on the first delivery")
        return None  # type: ignore[return-value]

    caplog.set_level(logging.ERROR, logger="orbitmq")
    with PushConsumer(endpoints=endpoint, group=group, subscriptions={topic: "*"}, listener=on_message):
        with Producer(endpoints=endpoint, topics=[topic]) as p:
            p.send(Message(topic, b"raise"))
            p.send(Message(topic, b"none"))
        wait_until(lambda: all(2 in a for a in attempts.values()), 40, "redelivery after the failures")
    assert attempts == {b"raise": [1, 2], b"none": [1, 2]}
    errors = [str(r.exc_info[1]) for r in caplog.records if r.name == "orbitmq" and r.exc_info]
    assert any("boom on the first delivery" in e for e in errors), errors
    assert any("not a ConsumeResult" in e for e in errors), errors


async def test_coroutine_listener_runs_on_the_loop_it_was_made_in(endpoint, make_topic, make_group) -> None:  # type: ignore[no-untyped-def]
    topic, group = make_topic(), make_group()
    loop = asyncio.get_running_loop()
    got: list[bytes] = []

    async def on_message(m: orbitmq.MessageView) -> ConsumeResult:
        assert asyncio.get_running_loop() is loop
        await asyncio.sleep(0.01)
        got.append(m.body)
        return ConsumeResult.SUCCESS

    async with PushConsumer(endpoints=endpoint, group=group, subscriptions={topic: "*"}, listener=on_message):
        async with Producer(endpoints=endpoint, topics=[topic]) as p:
            for body in (b"a", b"b", b"c"):
                await p.send_async(Message(topic, body))
        deadline = time.monotonic() + 30
        while len(got) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    assert sorted(got) == [b"a", b"b", b"c"]


def test_coroutine_listener_without_a_running_loop(endpoint, make_topic, make_group) -> None:  # type: ignore[no-untyped-def]
    topic, group = make_topic(), make_group()
    got: list[bytes] = []

    async def on_message(m):  # type: ignore[no-untyped-def]
        got.append(m.body)
        return ConsumeResult.SUCCESS

    with PushConsumer(endpoints=endpoint, group=group, subscriptions={topic: "*"}, listener=on_message):
        with Producer(endpoints=endpoint, topics=[topic]) as p:
            p.send(Message(topic, b"bg"))
        wait_until(lambda: got == [b"bg"], 20, "consumed on the background loop")


CLEANUP_SCRIPT = r"""
import asyncio, sys, pathlib, orbitmq
from orbitmq import Admin, ConsumeResult, Message, Producer, PushConsumer, SimpleConsumer, PullConsumer

def ours():
    names = []
    for t in pathlib.Path("/proc/self/task").iterdir():
        try:
            names.append((t / "comm").read_text().strip())
        except OSError:
            pass
    return [n for n in names if n.startswith("orbitmq")]

endpoint, topic, group = sys.argv[1:4]
assert ours() == [], ours()
with Admin(endpoints=endpoint) as a:
    a.list_topics()
assert ours() == [], ours()
with PushConsumer(endpoints=endpoint, group=group, subscriptions={topic: "*"},
                  listener=lambda m: ConsumeResult.SUCCESS):
    with Producer(endpoints=endpoint, topics=[topic]) as p:
        p.send(Message(topic, b"x"))
    with SimpleConsumer(endpoints=endpoint, group=group + "-s", subscriptions={topic: "*"}, await_duration=5) as c:
        c.receive(1, 10)
    with PullConsumer(endpoints=endpoint, group=group + "-p") as pc:
        pc.subscribe(topic)
        pc.poll(0.2)
    assert ours(), "the runtime runs while clients are open"
assert not orbitmq._orbitmq.runtime_running()
assert ours() == [], ("closing the last client stops every thread at once", ours())

async def run():
    async with Producer(endpoints=endpoint, topics=[topic]) as p:
        await p.send_async(Message(topic, b"y"))

asyncio.run(run())
import time
deadline = time.monotonic() + 10
while ours() and time.monotonic() < deadline:
    time.sleep(0.02)
assert ours() == [], ("async with", ours())
print("ok")
"""


def test_cleanup_leaves_no_thread_of_ours_running(endpoint, make_topic, make_group) -> None:  # type: ignore[no-untyped-def]
    # In a fresh interpreter: this one's session fixtures keep clients open.
    topic, group = make_topic(), make_group()
    make_group_named = [group + "-s", group + "-p"]
    for g in make_group_named:
        _create_group(endpoint, g)
    out = subprocess.run(
        [sys.executable, "-c", CLEANUP_SCRIPT, endpoint, topic, group], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def _create_group(endpoint: str, name: str) -> None:
    with orbitmq.Admin(endpoints=endpoint) as a:
        a.create_group(name)


def test_a_listener_may_call_blocking_methods(endpoint, make_topic, make_group) -> None:  # type: ignore[no-untyped-def]
    topic, out, group = make_topic(), make_topic("out"), make_group()
    forwarded = threading.Event()
    with Producer(endpoints=endpoint, topics=[topic, out]) as p:

        def on_message(m: orbitmq.MessageView) -> ConsumeResult:
            p.send(Message(out, m.body))  # blocking, on the listener's thread
            forwarded.set()
            return ConsumeResult.SUCCESS

        with PushConsumer(endpoints=endpoint, group=group, subscriptions={topic: "*"}, listener=on_message):
            p.send(Message(topic, b"x"))
            assert forwarded.wait(20)
