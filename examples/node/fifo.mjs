// FIFO: messages of one message group are consumed in the order sent (a FIFO topic, and a
// group created with fifo: true).
import { Admin, Producer, SimpleConsumer } from 'orbitmq'
import { endpoints, ensureTopic, runId } from './common.mjs'

const topic = 'fifo-example'
const group = 'fifo-example-group'
await ensureTopic(topic, 'FIFO')
await new Admin({ endpoints }).createGroup(group, { fifo: true })

const producer = new Producer({ endpoints, topics: [topic] })
const steps = ['created', 'paid', 'shipped', 'delivered']
for (const step of steps) {
  await producer.send({ topic, body: Buffer.from(`${step} (${runId})`), messageGroup: `order-${runId}` })
}
await producer.shutdown()

const consumer = new SimpleConsumer({ endpoints, group, subscriptions: { [topic]: '*' }, awaitDuration: 5000 })
await consumer.start()
const seen = []
const deadline = Date.now() + 30_000
while (seen.length < steps.length && Date.now() < deadline) {
  for (const m of await consumer.receive(16, 15_000)) {
    if (m.messageGroup === `order-${runId}`) seen.push(m.body.toString().split(' ')[0])
    await consumer.ack(m) // in a FIFO group the next message of a group comes after this ack
  }
}
await consumer.shutdown()
console.log(`consumed in order: ${seen.join(' -> ')}`)
if (seen.join() !== steps.join()) throw new Error('out of order')
console.log('fifo OK')
