"""The asyncio API: every blocking method has an `_async` twin, and clients are `async with`
context managers. A coroutine listener runs on the loop the consumer was made in.

    ORBITMQ_ENDPOINT=127.0.0.1:8081 python examples/python/asyncio_quickstart.py
"""

import asyncio

from _common import ENDPOINT, RUN
from orbitmq import ConsumeResult, Message, MessageView, Producer, PushConsumer, SimpleConsumer

TOPIC = "asyncio-example"


async def main() -> None:
    async with Producer(endpoints=ENDPOINT, topics=[TOPIC]) as producer:
        # Sends in flight together on one producer.
        receipts = await asyncio.gather(
            *(producer.send_async(Message(TOPIC, f"event {i} ({RUN})", tag="async")) for i in range(10))
        )
        print(f"sent {len(receipts)} messages concurrently")

    mine = {r.message_id for r in receipts}
    half = set(list(mine)[:5])
    async with SimpleConsumer(
        endpoints=ENDPOINT, group="asyncio-simple-group", subscriptions={TOPIC: "async"}, await_duration=5
    ) as consumer:
        for m in await consumer.receive_async(max_messages=16, invisible_duration=30):
            await consumer.ack_async(m)
            mine.discard(m.message_id)
    print("simple consumer: received a batch")

    consumed = asyncio.Event()
    count = 0

    async def on_message(m: MessageView) -> ConsumeResult:
        nonlocal count
        await asyncio.sleep(0)  # any awaiting work
        if m.message_id in half:
            count += 1
            if count == len(half):
                consumed.set()
        return ConsumeResult.SUCCESS

    async with PushConsumer(
        endpoints=ENDPOINT, group="asyncio-push-group", subscriptions={TOPIC: "*"}, listener=on_message
    ):
        await asyncio.wait_for(consumed.wait(), 30)
    print("push consumer: a coroutine listener consumed them")


asyncio.run(main())
print("asyncio: done")
