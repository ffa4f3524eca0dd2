"""OrbitMQ quickstart with Apache's official RocketMQ Python client (pip install rocketmq-python-client==5.1.2)."""
import os
import sys
import time
import uuid

from rocketmq import ClientConfiguration, Credentials, FilterExpression, Message, Producer, SimpleConsumer

endpoint = os.environ.get("ORBITMQ_ENDPOINT", "127.0.0.1:8081")
topic = "quickstart"
config = ClientConfiguration(endpoint, Credentials())  # no ACL: empty credentials
run = uuid.uuid4().hex[:8]  # tells this run's messages from older ones

producer = Producer(config, (topic,))
producer.startup()
sent = set()
for i in range(3):
    msg = Message()
    msg.topic, msg.tag, msg.keys = topic, "created", f"order-{i}"
    msg.body = f"order {i} created ({run})".encode()
    print("sent", producer.send(msg).message_id)
    sent.add(msg.body)

consumer = SimpleConsumer(config, "quickstart-group", {topic: FilterExpression("created")}, await_duration=5)
consumer.startup()
received = set()
deadline = time.monotonic() + 30
while received != sent and time.monotonic() < deadline:
    for msg in consumer.receive(16, 15):  # at most 16 messages, invisible to the group for 15 s
        if msg.body in sent:
            print("received", msg.body.decode())
            received.add(msg.body)
        consumer.ack(msg)  # leftovers of earlier runs are acked too
consumer.shutdown()
producer.shutdown()
print(f"quickstart: sent {len(sent)}, received {len(received)}")
sys.exit(0 if received == sent else 1)
