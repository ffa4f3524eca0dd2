"""Exit safety: fresh interpreters that await a send and a receive and exit at once, half of
them without close(), all exit 0 (no abort or segfault while the interpreter finalises:
PyO3/pyo3-async-runtimes#40)."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

PROCESSES = 100
PARALLEL = 4

SCRIPT = r"""
import asyncio, sys
from orbitmq import Message, Producer, SimpleConsumer

endpoint, topic, group, close = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "close"

async def main():
    p = Producer(endpoints=endpoint, topics=[topic])
    c = SimpleConsumer(endpoints=endpoint, group=group, subscriptions={topic: "*"}, await_duration=5)
    await p.send_async(Message(topic, b"bye"))
    got = await c.receive_async(1, 10)
    if close:
        await p.close_async()
        await c.close_async()
    else:
        globals()["keep"] = (p, c)  # still open when the interpreter exits
    return len(got)

asyncio.run(main())
"""


def test_processes_that_exit_at_once_exit_cleanly(endpoint, make_topic, make_group) -> None:  # type: ignore[no-untyped-def]
    topic, group = make_topic(), make_group()

    def run(i: int) -> tuple[int, int, str]:
        close = "close" if i % 2 == 0 else "keep"
        out = subprocess.run(
            [sys.executable, "-c", SCRIPT, endpoint, topic, group, close], capture_output=True, text=True, timeout=60
        )
        return i, out.returncode, out.stderr[-2000:]

    with ThreadPoolExecutor(PARALLEL) as pool:
        results = list(pool.map(run, range(PROCESSES)))
    failed = [(i, rc, err) for i, rc, err in results if rc != 0]
    assert not failed, f"{len(failed)} of {PROCESSES} exited non-zero, e.g. {failed[:3]}"


AFTER_SHUTDOWN = r"""
import gc, sys, orbitmq
from orbitmq import ClosedError, Message, Producer, SimpleConsumer

endpoint, topic, group = sys.argv[1:4]
p = Producer(endpoints=endpoint, topics=[topic])
p.send(Message(topic, b"x"))
c = SimpleConsumer(endpoints=endpoint, group=group, subscriptions={topic: "*"}, await_duration=5)
orbitmq.shutdown_all()  # what atexit does
for call in (lambda: p.send(Message(topic, b"y")), lambda: c.receive(1, 10), lambda: Producer(endpoints=endpoint)):
    try:
        call()
    except ClosedError:
        pass
    else:
        raise SystemExit("a call after shutdown did not raise ClosedError")
p.close()
del p, c
gc.collect()
orbitmq.shutdown_all()
print("ok")
"""


def test_clients_after_shutdown_raise_closed_and_drop_quietly(endpoint, make_topic, make_group) -> None:  # type: ignore[no-untyped-def]
    topic, group = make_topic(), make_group()
    out = subprocess.run(
        [sys.executable, "-c", AFTER_SHUTDOWN, endpoint, topic, group], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    assert "panic" not in out.stderr, out.stderr


FORK = r"""
import multiprocessing as mp, sys
from orbitmq import ClosedError, Message, Producer

endpoint, topic = sys.argv[1:3]

def child(parent_producer, q):
    try:
        parent_producer.send(Message(topic, b"from the parent's producer"))
        q.put("the parent's producer worked in the child")
        return
    except ClosedError:
        pass
    with Producer(endpoints=endpoint, topics=[topic]) as p:
        p.send(Message(topic, b"from the child"))
    q.put("ok")

p = Producer(endpoints=endpoint, topics=[topic])
p.send(Message(topic, b"before fork"))
ctx = mp.get_context("fork")
q = ctx.Queue()
proc = ctx.Process(target=child, args=(p, q))
proc.start()
proc.join(60)
if proc.is_alive():  # hung: leave no process behind
    proc.kill()
    proc.join()
assert proc.exitcode == 0, proc.exitcode
assert q.get(timeout=1) == "ok"
p.send(Message(topic, b"after fork"))  # the parent's runtime is untouched
p.close()
print("ok")
"""


def test_a_forked_child_gets_its_own_runtime(endpoint, make_topic) -> None:  # type: ignore[no-untyped-def]
    topic = make_topic()
    out = subprocess.run([sys.executable, "-c", FORK, endpoint, topic], capture_output=True, text=True, timeout=90)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
