"""Quickstart: a producer sends three messages, a push consumer's listener consumes them.

ORBITMQ_ENDPOINT=127.0.0.1:8081 python examples/python/quickstart.py
"""

import threading

from _common import ENDPOINT, RUN
from orbitmq import ConsumeResult, Message, MessageView, Producer, PushConsumer

TOPIC, GROUP = "quickstart", "quickstart-push-group"
sent = {f"order {i} created ({RUN})" for i in range(3)}
received: set = set()
done = threading.Event()


def on_message(m: MessageView) -> ConsumeResult:
    body = m.body.decode()
    if body in sent:  # older runs' messages are consumed and skipped
        print(f"consumed {m.message_id}: {body} (tag {m.tag}, keys {m.keys}, attempt {m.delivery_attempt})")
        received.add(body)
        if received == sent:
            done.set()
    return ConsumeResult.SUCCESS


with Producer(endpoints=ENDPOINT, topics=[TOPIC]) as producer:
    for i, body in enumerate(sorted(sent)):
        receipt = producer.send(Message(TOPIC, body, tag="created", keys=[f"order-{i}"]))
        print(f"sent {receipt.message_id} to queue {receipt.queue_id} offset {receipt.queue_offset}")

with PushConsumer(endpoints=ENDPOINT, group=GROUP, subscriptions={TOPIC: "created"}, listener=on_message):
    assert done.wait(30), f"consumed {len(received)} of {len(sent)} within 30 s"
print("quickstart: all consumed")
