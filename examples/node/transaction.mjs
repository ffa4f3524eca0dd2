// Transactions: messages sent in a transaction reach consumers only once it commits. The
// checker answers the server when a transaction is left open (the producer crashed, say).
import { Producer, SimpleConsumer, TransactionResolution } from 'orbitmq'
import { endpoints, ensureTopic, runId } from './common.mjs'

const topic = 'transaction-example'
await ensureTopic(topic, 'TRANSACTION')
const producer = new Producer({
  endpoints,
  topics: [topic],
  // Asked about a transaction neither committed nor rolled back: look it up, answer.
  transactionChecker: async (message) => {
    console.log(`the server checks back on ${message.messageId}`)
    return message.body.toString().startsWith('paid') ? TransactionResolution.COMMIT : TransactionResolution.ROLLBACK
  },
})
await producer.start()

const paid = producer.beginTransaction()
const receipt = await paid.send({ topic, body: Buffer.from(`paid order (${runId})`) })
await paid.commit() // delivered now
const dropped = producer.beginTransaction()
await dropped.send({ topic, body: Buffer.from(`cancelled order (${runId})`) })
await dropped.rollback() // never delivered

const consumer = new SimpleConsumer({ endpoints, group: 'transaction-example-group',
  subscriptions: { [topic]: '*' }, awaitDuration: 5000 })
await consumer.start()
let got
const deadline = Date.now() + 30_000
while (!got && Date.now() < deadline) {
  for (const m of await consumer.receive(16, 15_000)) {
    if (m.body.toString() === `cancelled order (${runId})`) throw new Error('a rolled back message came')
    if (m.messageId === receipt.messageId) got = m
    await consumer.ack(m)
  }
}
await consumer.shutdown()
await producer.shutdown()
if (!got) throw new Error('the committed message did not come')
console.log(`received ${got.body}`)
console.log('transaction OK')
