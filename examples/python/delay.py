"""Delay: a message delivered 2 s after it is sent, and one recalled before it is due.

ORBITMQ_ENDPOINT=127.0.0.1:8081 python examples/python/delay.py
"""

import time

from _common import ENDPOINT, RUN
from orbitmq import Message, Producer, SimpleConsumer

TOPIC, GROUP = "delay-example", "delay-example-group"

with Producer(endpoints=ENDPOINT, topics=[TOPIC]) as producer:
    sent_at = time.time()
    reminder = producer.send(Message(TOPIC, f"reminder ({RUN})", delay=2.0))
    cancelled = producer.send(Message(TOPIC, f"cancelled ({RUN})", delay=2.0))
    if cancelled.recall_handle:
        producer.recall(TOPIC, cancelled.recall_handle)
        print(f"recalled {cancelled.message_id}")

got = []
with SimpleConsumer(endpoints=ENDPOINT, group=GROUP, subscriptions={TOPIC: "*"}, await_duration=5) as consumer:
    deadline = time.monotonic() + 20
    while not any(m.message_id == reminder.message_id for m in got) and time.monotonic() < deadline:
        for m in consumer.receive(16, 15):
            consumer.ack(m)
            got.append(m)
mine = [m for m in got if m.body.decode().endswith(f"({RUN})")]
for m in mine:
    print(
        f"{m.body.decode()} arrived {m.store_timestamp / 1000 - sent_at:.1f} s after sending,"
        f" due at +{m.delivery_timestamp / 1000 - sent_at:.1f} s"
    )
assert [m.message_id for m in mine] == [reminder.message_id], mine
print("delay: delivered late, the recalled one never")
