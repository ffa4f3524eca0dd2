"""Transactions: a committed message is delivered, a rolled-back one never; a transaction
left open is settled by the checker when the broker checks back.

    ORBITMQ_ENDPOINT=127.0.0.1:8081 python examples/python/transaction.py
"""

import time

from _common import ENDPOINT, RUN
from orbitmq import Message, MessageView, Producer, SimpleConsumer, TransactionResolution

TOPIC, GROUP = "transaction-example", "transaction-example-group"


def checker(m: MessageView) -> TransactionResolution:
    """Looks the order up in "the database": here the body says what happened."""
    print(f"the broker checks back on {m.message_id}")
    return TransactionResolution.COMMIT if m.body.startswith(b"paid") else TransactionResolution.ROLLBACK


with Producer(endpoints=ENDPOINT, topics=[TOPIC], checker=checker) as producer:
    tx = producer.begin_transaction()
    committed = tx.send(Message(TOPIC, f"paid order ({RUN})"))
    tx.commit()
    tx = producer.begin_transaction()
    tx.send(Message(TOPIC, f"cancelled order ({RUN})"))
    tx.rollback()
    print(f"committed {committed.message_id}, rolled one back")

    with SimpleConsumer(endpoints=ENDPOINT, group=GROUP, subscriptions={TOPIC: "*"}, await_duration=5) as c:
        got = []
        deadline = time.monotonic() + 15
        while not got and time.monotonic() < deadline:
            for m in c.receive(16, 15):
                c.ack(m)
                if m.body.decode().endswith(f"({RUN})"):
                    got.append(m.body.decode())
assert got == [f"paid order ({RUN})"], got
print("transaction: only the committed message was delivered")
