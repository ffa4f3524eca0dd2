"""Delay messages and recall with Apache's official RocketMQ Python client (pip install rocketmq-python-client==5.1.2).

A delay message carries a `delivery_timestamp`: the server keeps it from consumers until then. Its send receipt
carries a `recall_handle`: until the message is due, the producer can cancel it with
`producer.recall_message(topic, recall_handle)`, and it is never delivered.

Here: a payment reminder due in 3 s is delivered at its time; a second reminder, due in 5 s, is recalled (the
customer paid) and never arrives.

Run: python delay_and_recall.py   (ORBITMQ_ENDPOINT=host:port, default 127.0.0.1:8081). Exits 0 only if the
first reminder arrived, not before its time, and could no longer be recalled then, and the recalled one did not
arrive by 2 s past its time.
"""
import os
import sys
import time
import uuid

from rocketmq import ClientConfiguration, Credentials, FilterExpression, Message, Producer, SimpleConsumer

endpoint = os.environ.get("ORBITMQ_ENDPOINT", "127.0.0.1:8081")
topic = "delay-reminders"  # auto-created by the server (as MIXED: it accepts delay messages)
config = ClientConfiguration(endpoint, Credentials())  # no ACL: empty credentials
run = uuid.uuid4().hex[:8]  # tells this run's messages from older ones


def clock(t):
    return time.strftime("%H:%M:%S", time.localtime(t))


consumer = SimpleConsumer(config, "delay-reminders-group", {topic: FilterExpression("reminder")}, await_duration=5)
consumer.startup()
producer = Producer(config, (topic,))
producer.startup()


def send_reminder(text, due):
    msg = Message()
    msg.topic, msg.tag, msg.keys = topic, "reminder", f"invoice-{run}"
    msg.body = f"{text} ({run})".encode()
    msg.delivery_timestamp = due  # 5.1.2 sends whole seconds since the epoch (not milliseconds)
    receipt = producer.send(msg)
    print(f"sent {msg.body.decode()!r}, due at {clock(due)}, message id {receipt.message_id}")
    return receipt


now = int(time.time())
due, recalled_due = now + 3, now + 5  # whole seconds: due in 2-3 s and 4-5 s
kept = send_reminder("invoice 42: payment due", due)
cancelled = send_reminder("invoice 42: second reminder", recalled_due)

# The customer paid: cancel the second reminder before it fires. recall_message answers the message id and
# raises if the message cannot be recalled any more (already delivered, or an invalid handle).
print("recalled", producer.recall_message(topic, cancelled.recall_handle))

# Receive until the first reminder arrived and 2 s past the recalled one's time have gone by (30 s at most).
arrived_at = None
recalled_arrived = False
deadline = time.time() + 30
while (arrived_at is None or time.time() < recalled_due + 2) and time.time() < deadline:
    for msg in consumer.receive(16, 15):  # at most 16 messages, invisible to the group for 15 s
        t = time.time()
        if msg.message_id == kept.message_id:
            print(f"received {msg.body.decode()!r} at {clock(t)}, {t - due:+.2f} s from its due time")
            arrived_at = arrived_at or t
        elif msg.message_id == cancelled.message_id:
            print(f"received the RECALLED message {msg.body.decode()!r}")
            recalled_arrived = True
        consumer.ack(msg)  # leftovers of earlier runs are acked too

# Too late to recall the first reminder: it was delivered, so recall_message raises.
too_late = False
try:
    producer.recall_message(topic, kept.recall_handle)
    print("recalled the delivered reminder?!")
except Exception as e:  # the client raises its own exception types; any error is the right answer here
    print(f"recalling the delivered reminder fails as it should: {e}")
    too_late = True
producer.shutdown()
consumer.shutdown()

on_time = arrived_at is not None and arrived_at >= due
print("delay_and_recall: reminder " + ("not received" if arrived_at is None else
                                       f"received {arrived_at - due:+.2f} s from its due time")
      + ("; recalled reminder RECEIVED" if recalled_arrived else "; recalled reminder never received")
      + ("" if too_late else "; the delivered reminder could still be recalled"))
sys.exit(0 if on_time and not recalled_arrived and too_late else 1)
