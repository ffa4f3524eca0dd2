// Delay: a message delivered 3 s after it is sent, and one recalled before its time.
import { Producer, SimpleConsumer } from 'orbitmq'
import { endpoints, ensureTopic, runId } from './common.mjs'

const topic = 'delay-example'
await ensureTopic(topic, 'DELAY')
const producer = new Producer({ endpoints, topics: [topic] })
const sentAt = Date.now()
const later = await producer.send({ topic, body: Buffer.from(`reminder (${runId})`), delay: 3_000 })
const cancelled = await producer.send({ topic, body: Buffer.from(`cancelled (${runId})`),
  deliveryTimestamp: Date.now() + 3_000 })
console.log(`recalled ${await producer.recall(topic, cancelled.recallHandle)}`)
await producer.shutdown()

const consumer = new SimpleConsumer({ endpoints, group: 'delay-example-group',
  subscriptions: { [topic]: '*' }, awaitDuration: 5000 })
await consumer.start()
let got
const deadline = Date.now() + 30_000
while (!got && Date.now() < deadline) {
  for (const m of await consumer.receive(16, 15_000)) {
    if (m.body.toString() === `cancelled (${runId})`) throw new Error('a recalled message came')
    if (m.messageId === later.messageId) got = m
    await consumer.ack(m)
  }
}
await consumer.shutdown()
if (!got) throw new Error('the delay message did not come')
console.log(`received ${got.body} after ${Date.now() - sentAt} ms`)
console.log('delay OK')
