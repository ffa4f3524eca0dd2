"""FIFO messages with Apache's official RocketMQ Python client (pip install rocketmq-python-client==5.1.2).

Every order is a message group: its events (created, paid, packed, shipped, delivered) must be handled in the
order they happened, while different orders are independent of each other. The producer tags each message
with its order's `message_group`; a consumer group created as FIFO then gets each message group's next
message only after the previous one was acked.

Run: python fifo.py   (ORBITMQ_ENDPOINT=host:port, default 127.0.0.1:8081; ORBITMQ_BIN=path to the orbitmq
binary that creates the FIFO group, default `orbitmq` on the PATH). Exits 0 only if every event of both
orders arrived, each order's events in the order they were sent.
"""
import os
import shlex
import subprocess
import sys
import time
import uuid

from rocketmq import ClientConfiguration, Credentials, FilterExpression, Message, Producer, SimpleConsumer

endpoint = os.environ.get("ORBITMQ_ENDPOINT", "127.0.0.1:8081")
topic = "fifo-orders"  # auto-created by the server (as MIXED: it accepts FIFO messages)
group = "fifo-orders-group"
config = ClientConfiguration(endpoint, Credentials())  # no ACL: empty credentials
run = uuid.uuid4().hex[:8]  # tells this run's messages from older ones
events = ["created", "paid", "packed", "shipped", "delivered"]
orders = [f"order-{n}-{run}" for n in (1, 2)]  # the message groups

# Consumer groups are auto-created with defaults (not FIFO): create this one as FIFO first. Creating it again
# on a later run is fine ("create, or change it if it exists").
admin = [os.environ.get("ORBITMQ_BIN", "orbitmq"), "admin", "--endpoints", endpoint]
cmd = admin + ["group", "create", "--group", group, "--fifo"]
print("running", shlex.join(cmd), flush=True)  # before the command's own output
try:
    subprocess.run(cmd, check=True, timeout=60, stdin=subprocess.DEVNULL)  # prints what it did
except FileNotFoundError:
    sys.exit(f"{cmd[0]} not found: set ORBITMQ_BIN to the orbitmq binary")
except subprocess.SubprocessError as e:
    sys.exit(f"could not create the FIFO group: {e}")

consumer = SimpleConsumer(config, group, {topic: FilterExpression("*")}, await_duration=5)
consumer.startup()
producer = Producer(config, (topic,))
producer.startup()

# Both orders' events, interleaved: order-1 created, order-2 created, order-1 paid, ...
sent = {order: [] for order in orders}
for event in events:
    for order in orders:
        msg = Message()
        msg.topic, msg.tag, msg.keys = topic, event, order
        msg.message_group = order  # same group: delivered in send order, one at a time
        msg.body = f"{order} {event}".encode()
        producer.send(msg)
        sent[order].append(msg.body)
        print("sent", msg.body.decode())

# Receive until every event arrived (or 60 s passed). Each event is acked as soon as it is handled: that is what
# releases its order's next event to the group.
received = {order: [] for order in orders}
seen = set()  # message ids: a message that was not acked in time comes again (delivery_attempt + 1)
in_order = True
total = len(orders) * len(events)
deadline = time.monotonic() + 60
while sum(map(len, received.values())) < total and time.monotonic() < deadline:
    for msg in consumer.receive(16, 15):  # at most 16 messages, invisible to the group for 15 s
        order = msg.message_group
        if msg.message_id in seen:
            print("received", msg.body.decode(), f"again (attempt {msg.delivery_attempt}: not acked in time)")
        elif order in received:
            seen.add(msg.message_id)
            got = received[order]
            expected = sent[order][len(got)] if len(got) < len(sent[order]) else b"nothing more"
            ok = msg.body == expected
            in_order = in_order and ok
            print("received", msg.body.decode() + ("" if ok else f"  OUT OF ORDER, expected {expected.decode()}"))
            got.append(msg.body)
        consumer.ack(msg)  # leftovers of earlier runs are acked too
producer.shutdown()
consumer.shutdown()

ok = in_order and received == sent
print(f"fifo: {len(orders)} message groups x {len(events)} messages; received "
      + ", ".join(f"{o}: {len(received[o])}" for o in orders)
      + ("; each group in order" if ok else "; out of order" if not in_order else "; some missing"))
sys.exit(0 if ok else 1)
