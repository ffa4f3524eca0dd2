"""Transaction messages with Apache's official RocketMQ Python client (pip install rocketmq-python-client==5.1.2).

A transaction message ties a message to a local transaction (here: capturing an order's payment in the
application's database). The producer sends a "half" message, which consumers cannot see, runs its local
transaction, then commits (the message is delivered) or rolls back (it is discarded). If the producer never
says which (it crashed, timed out, ...), the broker asks it back: the producer's TransactionChecker looks the
order up in the database and answers. OrbitMQ asks about 6 s after the send, then every 30 s.

Here: order 1 is paid and committed, order 2's payment is declined and rolled back, order 3 is paid but the
producer "forgets" to commit, so the broker checks back and the checker commits.

Run: python transaction.py   (ORBITMQ_ENDPOINT=host:port, default 127.0.0.1:8081). Exits 0 only if the
consumer got exactly orders 1 and 3, once each, order 3 only after the check-back, and the checker was asked
about order 3 alone.
"""
import os
import sys
import threading
import time
import uuid

from rocketmq import (ClientConfiguration, Credentials, FilterExpression, Message, Producer, SimpleConsumer,
                      TransactionChecker, TransactionResolution)

endpoint = os.environ.get("ORBITMQ_ENDPOINT", "127.0.0.1:8081")
topic = "tx-payments"  # auto-created by the server (as MIXED: it accepts transaction messages)
config = ClientConfiguration(endpoint, Credentials())  # no ACL: empty credentials
run = uuid.uuid4().hex[:8]  # tells this run's messages from older ones

database = {}  # the application's own records: order id -> "paid" or "declined"
checked = {}  # order id -> when the broker asked about it (this run's orders)
lock = threading.Lock()


class PaymentChecker(TransactionChecker):
    """Called (on a client thread) when the broker asks about a half message nobody committed or rolled back."""

    def check(self, message):
        order = next(iter(message.keys), "?")
        state = database.get(order)  # an order of an earlier run is unknown here: roll it back
        answer = TransactionResolution.COMMIT if state == "paid" else TransactionResolution.ROLLBACK
        print(f"broker checks back {order}: local state {state}, answering {TransactionResolution.Name(answer)}")
        with lock:
            if order in database:
                checked.setdefault(order, time.monotonic())
        return answer


consumer = SimpleConsumer(config, "tx-payments-group", {topic: FilterExpression("paid")}, await_duration=5)
consumer.startup()
producer = Producer(config, (topic,), checker=PaymentChecker())  # a checker is required for transactions
producer.startup()


def pay(order, amount, card_ok, finish=True):
    """One order: half message, local transaction, then commit or rollback (unless finish is False)."""
    transaction = producer.begin_transaction()
    msg = Message()
    msg.topic, msg.tag, msg.keys = topic, "paid", order
    msg.body = f"{order} paid {amount} EUR".encode()
    receipt = producer.send(msg, transaction)  # the half message: invisible to consumers for now
    database[order] = "paid" if card_ok else "declined"  # the local transaction
    if not finish:
        print(f"sent {order} (message id {receipt.message_id}), local state {database[order]}, left open")
    elif card_ok:
        transaction.commit()
        print(f"sent {order} (message id {receipt.message_id}), local state paid, committed")
    else:
        transaction.rollback()
        print(f"sent {order} (message id {receipt.message_id}), local state declined, rolled back")
    return receipt.message_id


committed = pay(f"order-1-{run}", 30, card_ok=True)
rolled_back = pay(f"order-2-{run}", 45, card_ok=False)
open_order = f"order-3-{run}"
left_open = pay(open_order, 12, card_ok=True, finish=False)
sent_at = time.monotonic()
expected = {committed, left_open}

# Receive until orders 1 and 3 arrived (40 s at most: the check-back comes ~6 s after the send).
received = []
early = False
deadline = time.monotonic() + 40
while not expected <= set(received) and time.monotonic() < deadline:
    for msg in consumer.receive(16, 15):  # at most 16 messages, invisible to the group for 15 s
        if msg.message_id in (committed, rolled_back, left_open):
            print(f"received {msg.body.decode()!r} {time.monotonic() - sent_at:.1f} s after the last send")
            received.append(msg.message_id)
            if msg.message_id == left_open and open_order not in checked:
                early = True
                print("  ... but the broker has not checked it back yet")
        consumer.ack(msg)  # leftovers of earlier runs are acked too
producer.shutdown()
consumer.shutdown()

with lock:
    asked = dict(checked)
if open_order in asked:
    print(f"the broker checked {open_order} back {asked[open_order] - sent_at:.1f} s after it was sent")
ok = sorted(received) == sorted(expected) and not early and set(asked) == {open_order}
count = received.count
print(f"transaction: received committed {count(committed)}x, rolled back {count(rolled_back)}x, "
      f"left open {count(left_open)}x{' (before the check-back)' if early else ''}; "
      f"checker asked about {', '.join(sorted(asked)) or 'none of them'}")
sys.exit(0 if ok else 1)
