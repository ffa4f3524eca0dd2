// Simple consumer: receive on demand, take longer on one message (changeInvisibleDuration),
// acknowledge the rest in one batch.
import { Producer, SimpleConsumer } from 'orbitmq'
import { endpoints, ensureTopic, runId } from './common.mjs'

const topic = 'simple-example'
await ensureTopic(topic)
const producer = new Producer({ endpoints, topics: [topic] })
const bodies = ['a', 'b', 'c'].map((x) => `${x} (${runId})`)
for (const body of bodies) await producer.send({ topic, body: Buffer.from(body) })
await producer.shutdown()

const consumer = new SimpleConsumer({ endpoints, group: 'simple-example-group',
  subscriptions: { [topic]: '*' }, awaitDuration: 5000 })
await consumer.start()
const mine = []
const deadline = Date.now() + 30_000
while (mine.length < bodies.length && Date.now() < deadline) {
  const messages = await consumer.receive(16, 15_000)
  const others = messages.filter((m) => !bodies.includes(m.body.toString()))
  if (others.length) await consumer.ackBatch(others) // older runs' leftovers
  mine.push(...messages.filter((m) => bodies.includes(m.body.toString())))
}
if (mine.length !== bodies.length) throw new Error(`received ${mine.length} of ${bodies.length}`)
// Needs more time for the first one: keep it invisible for 60 s more (its receipt handle renews).
await consumer.changeInvisibleDuration(mine[0], 60_000)
console.log(`working on ${mine[0].messageId}, attempt ${mine[0].deliveryAttempt}`)
await consumer.ackBatch(mine)
await consumer.shutdown()
console.log('simple consumer OK')
