// Pull consumer: poll the queues of a topic from positions the consumer keeps (here on the
// broker, as the group's offsets), commit them, and seek back to read again.
import { Producer, PullConsumer } from 'orbitmq'
import { endpoints, ensureTopic, runId } from './common.mjs'

const topic = 'pull-example'
await ensureTopic(topic)
const group = `pull-example-${runId}` // a new group: it starts at the end of each queue

const consumer = new PullConsumer({ endpoints, group, subscriptions: { [topic]: '*' } })
await consumer.start()
const producer = new Producer({ endpoints, topics: [topic] })
const sent = []
for (let i = 0; i < 4; i++) {
  sent.push((await producer.send({ topic, body: Buffer.from(`record ${i}`) })).messageId)
}
await producer.shutdown()

const poll = async (n) => {
  const got = []
  const deadline = Date.now() + 30_000
  while (got.length < n && Date.now() < deadline) got.push(...await consumer.poll(1000))
  return got
}
const first = await poll(sent.length)
for (const m of first) console.log(`polled ${m.body} from queue ${m.queueId} offset ${m.queueOffset}`)
await consumer.commit()

// Read one queue again from the offset of its first message.
const queue = consumer.assignment().find((q) => q.queueId === first[0].queueId)
consumer.seek(queue, first[0].queueOffset)
const again = await poll(1)
console.log(`read again: ${again[0].body} (offset ${again[0].queueOffset})`)
await consumer.shutdown()
if (first.length !== sent.length) throw new Error(`polled ${first.length} of ${sent.length}`)
console.log('pull consumer OK')
