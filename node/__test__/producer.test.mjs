// The producer against a real server: receipts, batches, FIFO order, delay and recall,
// transactions (commit, rollback, and the checker answering the server's check-back).
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'

import { Producer, SimpleConsumer, TransactionResolution } from '../orbitmq.js'
import { createTopic, startServer, unique, waitFor } from './helpers.mjs'

const ID = /^[0-9A-F]{34}$/
let server
let producer

before(async () => {
  server = await startServer()
})

after(async () => {
  await producer?.shutdown()
  await server?.stop()
})

/** Receives (and acks) until `n` messages came, or fails after `ms`. */
async function receiveAll(consumer, n, ms = 30_000) {
  const got = []
  await waitFor(async () => {
    for (const m of await consumer.receive(16, 30_000)) {
      got.push(m)
      await consumer.ack(m)
    }
    return got.length >= n
  }, ms, `${n} messages`)
  return got
}

async function simpleConsumer(topic, { fifo = false } = {}) {
  const group = unique(`g-${topic}`)
  await server.admin.createGroup(group, { fifo })
  const c = new SimpleConsumer({ endpoints: server.endpoints, group, subscriptions: { [topic]: '*' },
    awaitDuration: 2000 })
  await c.start()
  return c
}

test('send returns a receipt; the consumer sees the tag, keys, properties and body', async () => {
  const topic = await createTopic(server.admin, unique('send'))
  producer = new Producer({ endpoints: server.endpoints, topics: [topic] })
  await producer.start()
  const r = await producer.send({ topic, body: Buffer.from('hello'), tag: 'A', keys: ['k1', 'k2'],
    properties: { p: 'v' } })
  assert.match(r.messageId, ID)
  assert.match(r.offsetMsgId, /^[0-9A-F]{32}$/)
  assert.equal(r.topic, topic)
  assert.equal(typeof r.queueId, 'number')
  assert.equal(r.queueOffset, 0)
  const c = await simpleConsumer(topic)
  const [m] = await receiveAll(c, 1)
  assert.equal(m.messageId, r.messageId)
  assert.equal(m.body.toString(), 'hello')
  assert.ok(Buffer.isBuffer(m.body))
  assert.equal(m.tag, 'A')
  assert.deepEqual(m.keys, ['k1', 'k2'])
  assert.deepEqual(m.properties, { p: 'v' })
  assert.equal(m.queueId, r.queueId)
  assert.equal(m.queueOffset, r.queueOffset)
  assert.equal(m.deliveryAttempt, 1)
  assert.ok(m.bornTimestamp > 0 && m.storeTimestamp >= m.bornTimestamp)
  await c.shutdown()
})

test('sendBatch stores every message in one request, in order', async () => {
  const topic = await createTopic(server.admin, unique('batch'), 'NORMAL', 1)
  const bodies = ['b0', 'b1', 'b2', 'b3', 'b4']
  const receipts = await producer.sendBatch(bodies.map((b) => ({ topic, body: Buffer.from(b), tag: 'T' })))
  assert.equal(receipts.length, bodies.length)
  assert.deepEqual(receipts.map((r) => r.queueOffset), [0, 1, 2, 3, 4])
  assert.equal(new Set(receipts.map((r) => r.messageId)).size, bodies.length)
  const c = await simpleConsumer(topic)
  const got = await receiveAll(c, bodies.length)
  assert.deepEqual(got.map((m) => m.body.toString()).sort(), bodies)
  await c.shutdown()
})

test('FIFO: messages of one group are received in the order sent', async () => {
  const topic = await createTopic(server.admin, unique('fifo'), 'FIFO')
  const sent = []
  for (let i = 0; i < 10; i++) {
    const r = await producer.send({ topic, body: Buffer.from(`m${i}`), messageGroup: 'order-1' })
    sent.push(r.messageId)
  }
  const c = await simpleConsumer(topic, { fifo: true })
  const got = await receiveAll(c, 10)
  assert.deepEqual(got.map((m) => m.messageId), sent)
  assert.ok(got.every((m) => m.messageGroup === 'order-1'))
  await c.shutdown()
})

test('delay: a message is delivered at its delivery time, and one can be recalled before', async () => {
  const topic = await createTopic(server.admin, unique('delay'), 'DELAY')
  const at = Date.now() + 2_000
  const r = await producer.send({ topic, body: Buffer.from('later'), deliveryTimestamp: at })
  assert.ok(r.recallHandle, 'a delay message has a recall handle')
  const recalled = await producer.send({ topic, body: Buffer.from('never'), delay: 3_000 })
  assert.equal(await producer.recall(topic, recalled.recallHandle), recalled.messageId)
  const c = await simpleConsumer(topic)
  const got = await receiveAll(c, 1)
  assert.equal(got[0].body.toString(), 'later')
  assert.ok(Date.now() >= at - 50, 'not delivered before its time')
  assert.ok(got[0].deliveryTimestamp >= at - 1, `deliveryTimestamp ${got[0].deliveryTimestamp}`)
  // The recalled one never comes, even after its time.
  const more = await c.receive(16, 30_000)
  assert.deepEqual(more.map((m) => m.body.toString()), [])
  await c.shutdown()
})

test('transactions: commit delivers, rollback drops, the checker resolves one left open', async () => {
  const topic = await createTopic(server.admin, unique('tx'), 'TRANSACTION')
  const checked = []
  const p = new Producer({
    endpoints: server.endpoints,
    topics: [topic],
    transactionChecker: async (m) => {
      checked.push(m.body.toString())
      return m.body.toString() === 'open-commit' ? TransactionResolution.COMMIT : TransactionResolution.ROLLBACK
    },
  })
  await p.start()
  const t1 = p.beginTransaction()
  const r1 = await t1.send({ topic, body: Buffer.from('committed') })
  assert.ok(r1.transactionId)
  await t1.commit()
  await assert.rejects(t1.commit(), (e) => e.code === 'PRECONDITION_FAILED')
  const t2 = p.beginTransaction()
  await t2.send({ topic, body: Buffer.from('rolled-back') })
  await t2.rollback()
  const t3 = p.beginTransaction()
  await t3.send({ topic, body: Buffer.from('open-commit') }) // neither committed nor rolled back
  const t4 = p.beginTransaction()
  await t4.send({ topic, body: Buffer.from('open-rollback') })
  const c = await simpleConsumer(topic)
  const got = await receiveAll(c, 2, 60_000)
  assert.deepEqual(got.map((m) => m.body.toString()).sort(), ['committed', 'open-commit'])
  await waitFor(() => checked.includes('open-rollback'), 60_000, 'the check-back of open-rollback')
  assert.deepEqual((await c.receive(16, 30_000)).length, 0)
  await c.shutdown()
  await p.shutdown()
})
