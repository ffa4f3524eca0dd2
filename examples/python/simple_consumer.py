"""Simple consumer: receive a batch, acknowledge what was handled, give a message more time
with change_invisible_duration.

    ORBITMQ_ENDPOINT=127.0.0.1:8081 python examples/python/simple_consumer.py
"""

import time

from _common import ENDPOINT, RUN
from orbitmq import FilterExpression, Message, Producer, SimpleConsumer

TOPIC, GROUP = "simple-example", "simple-example-group"

with Producer(endpoints=ENDPOINT, topics=[TOPIC]) as producer:
    sent = {producer.send(Message(TOPIC, f"job {i} ({RUN})", tag="job")).message_id for i in range(5)}

done = set()
with SimpleConsumer(
    endpoints=ENDPOINT, group=GROUP, subscriptions={TOPIC: FilterExpression("job")}, await_duration=5
) as consumer:
    deadline = time.monotonic() + 30
    while not sent <= done and time.monotonic() < deadline:
        # Up to 16 messages, invisible to the rest of the group for 30 s unless acknowledged.
        for m in consumer.receive(max_messages=16, invisible_duration=30):
            if m.message_id in sent and not done:
                # A slow job: keep it invisible for another minute while working on it.
                consumer.change_invisible_duration(m, 60)
            consumer.ack(m)
            done.add(m.message_id)
            print(f"handled {m.message_id}: {m.body.decode()}")
assert sent <= done, "not every job was handled"
print("simple consumer: all handled")
