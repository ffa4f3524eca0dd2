// Quickstart: send three messages, receive and acknowledge them with a simple consumer.
// ORBITMQ_ENDPOINT=127.0.0.1:8081 node quickstart.mjs
import { Producer, SimpleConsumer } from 'orbitmq'
import { endpoints, ensureTopic, runId } from './common.mjs'

const topic = 'quickstart'
await ensureTopic(topic)

const producer = new Producer({ endpoints, topics: [topic] })
await producer.start()
const sent = new Set()
for (let i = 0; i < 3; i++) {
  const body = `order ${i} created (${runId})`
  const receipt = await producer.send({ topic, body: Buffer.from(body), tag: 'created', keys: [`order-${i}`] })
  console.log(`sent ${receipt.messageId} to queue ${receipt.queueId} offset ${receipt.queueOffset}`)
  sent.add(body)
}

const consumer = new SimpleConsumer({ endpoints, group: 'quickstart-group',
  subscriptions: { [topic]: 'created' }, awaitDuration: 5000 })
await consumer.start()
const received = new Set()
const deadline = Date.now() + 30_000
while (received.size < sent.size && Date.now() < deadline) {
  // At most 16 messages, invisible to the rest of the group for 15 s unless acknowledged.
  for (const message of await consumer.receive(16, 15_000)) {
    await consumer.ack(message)
    const body = message.body.toString()
    if (sent.has(body)) {
      console.log(`received and acked ${message.messageId} (${body})`)
      received.add(body)
    }
  }
}
await producer.shutdown()
await consumer.shutdown()
if (received.size !== sent.size) throw new Error(`received ${received.size} of ${sent.size} messages`)
console.log('quickstart OK')
