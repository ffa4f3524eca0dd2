// Push consumer: the listener is called for each message. Answer ConsumeResult.SUCCESS to
// acknowledge it; FAILURE, a thrown error or a rejected promise has it redelivered.
import { ConsumeResult, ConsumerModel, Producer, PushConsumer } from 'orbitmq'
import { endpoints, ensureTopic, runId } from './common.mjs'

const topic = 'push-example'
await ensureTopic(topic)
const bodies = new Set([0, 1, 2, 3, 4].map((i) => `job ${i} (${runId})`))
const done = new Set()
let failedOnce = false

const consumer = new PushConsumer({
  endpoints,
  group: 'push-example-group',
  subscriptions: { [topic]: 'jobs' },
  model: ConsumerModel.CLUSTERING, // or BROADCASTING: every member gets every message
  listener: async (message) => {
    const body = message.body.toString()
    if (!bodies.has(body)) return ConsumeResult.SUCCESS // an older run's
    if (!failedOnce) {
      failedOnce = true
      throw new Error(`${body} fails once, then comes back`)
    }
    console.log(`consumed ${body} (attempt ${message.deliveryAttempt})`)
    done.add(body)
    return ConsumeResult.SUCCESS
  },
})
await consumer.start()

const producer = new Producer({ endpoints, topics: [topic] })
for (const body of bodies) await producer.send({ topic, body: Buffer.from(body), tag: 'jobs' })
await producer.shutdown()

const deadline = Date.now() + 60_000
while (done.size < bodies.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
await consumer.shutdown() // releases the listener: the process exits by itself
if (done.size !== bodies.size) throw new Error(`consumed ${done.size} of ${bodies.size}`)
console.log('push consumer OK')
