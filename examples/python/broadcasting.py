"""Broadcasting: every member of the group gets every message (each keeps its own offsets in a
local store).

    ORBITMQ_ENDPOINT=127.0.0.1:8081 python examples/python/broadcasting.py
"""

import tempfile
import threading
import time

from _common import ENDPOINT, RUN
from orbitmq import ConsumeResult, ConsumerModel, Message, Producer, PushConsumer

TOPIC, GROUP = "broadcast-example", "broadcast-example-group"
sent = {f"config change {i} ({RUN})" for i in range(3)}
got = {"cache-1": set(), "cache-2": set()}
lock = threading.Lock()


def member(name):
    def on_message(m):
        with lock:
            if m.body.decode() in sent:
                got[name].add(m.body.decode())
        return ConsumeResult.SUCCESS

    return on_message


with tempfile.TemporaryDirectory() as offsets:
    members = [
        PushConsumer(
            endpoints=ENDPOINT,
            group=GROUP,
            subscriptions={TOPIC: "*"},
            model=ConsumerModel.BROADCASTING,
            listener=member(name),
            offset_store=f"{offsets}/{name}",
        )
        for name in got
    ]
    for m in members:
        m.start()
    time.sleep(0.5)
    with Producer(endpoints=ENDPOINT, topics=[TOPIC]) as producer:
        for body in sorted(sent):
            producer.send(Message(TOPIC, body))
    deadline = time.monotonic() + 30
    while any(g != sent for g in got.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    for m in members:
        m.close()
for name, bodies in got.items():
    print(f"{name} got {len(bodies)} of {len(sent)}")
assert all(g == sent for g in got.values()), "a member missed a message"
print("broadcasting: every member got every message")
