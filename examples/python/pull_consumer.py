"""Pull consumer: read a topic's queues by offset, commit, and seek back to read again.

ORBITMQ_ENDPOINT=127.0.0.1:8081 python examples/python/pull_consumer.py
"""

import time

from _common import ENDPOINT, RUN
from orbitmq import Message, Producer, PullConsumer

TOPIC, GROUP = "pull-example", f"pull-example-group-{RUN}"

with Producer(endpoints=ENDPOINT, topics=[TOPIC]) as producer:
    receipts = [producer.send(Message(TOPIC, f"event {i} ({RUN})")) for i in range(5)]

# offset_store="broker" (the default) keeps the group's offsets on the broker; a path keeps
# them in a local file instead.
with PullConsumer(endpoints=ENDPOINT, group=GROUP) as consumer:
    consumer.assign(consumer.queues(TOPIC))  # every queue, no rebalancing
    first = receipts[0]
    queue = next(q for q in consumer.assignment() if q.queue_id == first.queue_id)
    consumer.seek(queue, first.queue_offset)  # from our first message on
    got = []
    deadline = time.monotonic() + 20
    while len(got) < 1 and time.monotonic() < deadline:
        got += [m for m in consumer.poll(timeout=1.0) if m.body.decode().endswith(f"({RUN})")]
    print(f"read {[m.body.decode() for m in got]}, queue {queue.queue_id} now at {consumer.position(queue)}")
    consumer.commit()

    consumer.seek(queue, first.queue_offset)  # read the same message again
    again = []
    deadline = time.monotonic() + 10
    while not again and time.monotonic() < deadline:
        again = [m for m in consumer.poll(timeout=1.0) if m.message_id == first.message_id]
    assert again, "seek did not read the message again"
    print(f"after seek: {again[0].body.decode()} again")
print("pull consumer: done")
