"""FIFO: the messages of one message group (an order) are consumed one at a time, in the order
they were sent. The consumer group must be FIFO: the example makes it so with Admin.

    ORBITMQ_ENDPOINT=127.0.0.1:8081 python examples/python/fifo.py
"""

import threading
import time

from _common import ENDPOINT, RUN
from orbitmq import Admin, ConsumeResult, Message, Producer, PushConsumer

TOPIC, GROUP = "fifo-example", "fifo-example-group"
EVENTS = ["created", "paid", "shipped"]
orders = [f"order-{i}-{RUN}" for i in range(3)]
seen = {o: [] for o in orders}
lock = threading.Lock()


def on_message(m):
    if m.message_group in seen:
        with lock:
            seen[m.message_group].append(m.body.decode())
    return ConsumeResult.SUCCESS


with Admin(endpoints=ENDPOINT) as admin:
    admin.create_group(GROUP, fifo=True)

with Producer(endpoints=ENDPOINT, topics=[TOPIC]) as producer:
    for event in EVENTS:
        for order in orders:
            producer.send(Message(TOPIC, event, message_group=order))

with PushConsumer(endpoints=ENDPOINT, group=GROUP, subscriptions={TOPIC: "*"}, listener=on_message):
    deadline = time.monotonic() + 30
    while any(len(s) < len(EVENTS) for s in seen.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
for order, events in seen.items():
    print(f"{order}: {' -> '.join(events)}")
    assert events == EVENTS, f"{order} out of order: {events}"
print("fifo: every order in order")
