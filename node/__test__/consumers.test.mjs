// Consumers against a real server: simple (ack, ackBatch, changeInvisibleDuration), push in
// clustering and broadcasting, listener failures (a throw, a rejection, FAILURE) redelivered,
// and pull with commit and seek.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { rmSync } from 'node:fs'

import {
  ConsumeResult, ConsumerModel, Producer, PullConsumer, PushConsumer, SimpleConsumer,
} from '../orbitmq.js'
import { createTopic, sleep, startServer, tempDir, unique, waitFor } from './helpers.mjs'

let server
let producer
const dirs = []

before(async () => {
  server = await startServer()
  producer = new Producer({ endpoints: server.endpoints })
})

after(async () => {
  await producer?.shutdown()
  await server?.stop()
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

const sendAll = async (topic, bodies, extra = {}) => {
  const ids = []
  for (const b of bodies) ids.push((await producer.send({ topic, body: Buffer.from(b), ...extra })).messageId)
  return ids
}

const group = async (name, options) => {
  const g = unique(name)
  await server.admin.createGroup(g, options)
  return g
}

test('simple consumer: receive, changeInvisibleDuration then ack, ackBatch; nothing left', async () => {
  const topic = await createTopic(server.admin, unique('simple'))
  const c = new SimpleConsumer({ endpoints: server.endpoints, group: await group('simple'),
    subscriptions: { [topic]: '*' }, awaitDuration: 2000 })
  await c.start()
  const sent = await sendAll(topic, ['a', 'b', 'c', 'd'])
  const got = []
  await waitFor(async () => { got.push(...await c.receive(16, 30_000)); return got.length >= 4 }, 30_000, '4 messages')
  assert.deepEqual(got.map((m) => m.messageId).sort(), [...sent].sort())
  const first = got[0]
  const before = first.receiptHandle
  const handle = await c.changeInvisibleDuration(first, 20_000)
  assert.notEqual(handle, before)
  assert.equal(first.receiptHandle, handle, 'the message keeps its new receipt handle')
  await c.ack(first)
  await c.ackBatch(got.slice(1))
  assert.deepEqual(await c.receive(16, 30_000), [])
  await c.shutdown()
  await assert.rejects(c.receive(1, 30_000), (e) => e.code === 'CLOSED')
})

test('push clustering: two members of a group share the messages, each consumed once', async () => {
  const topic = await createTopic(server.admin, unique('push'), 'NORMAL', 4)
  const g = await group('push')
  const seen = new Map()
  const listener = (who) => async (m) => {
    seen.set(m.messageId, [...(seen.get(m.messageId) ?? []), who])
    return ConsumeResult.SUCCESS
  }
  const members = ['one', 'two'].map((who) => new PushConsumer({ endpoints: server.endpoints, group: g,
    subscriptions: { [topic]: 'A || B' }, model: ConsumerModel.CLUSTERING, listener: listener(who) }))
  for (const m of members) await m.start()
  const ids = await sendAll(topic, Array.from({ length: 20 }, (_, i) => `m${i}`), { tag: 'A' })
  await sendAll(topic, ['filtered out'], { tag: 'C' })
  await waitFor(() => ids.every((id) => seen.has(id)), 30_000, 'every message consumed')
  await sleep(500)
  for (const [id, who] of seen) assert.equal(who.length, 1, `${id} consumed by ${who}`)
  assert.equal(seen.size, ids.length, 'the tag filter keeps C out')
  for (const m of members) await m.shutdown()
})

test('push broadcasting: every member gets every message', async () => {
  const topic = await createTopic(server.admin, unique('bcast'))
  const g = await group('bcast')
  const got = { one: [], two: [] }
  const members = Object.keys(got).map((who) => {
    const dir = tempDir(`offsets-${who}`)
    dirs.push(dir)
    return new PushConsumer({ endpoints: server.endpoints, group: g, subscriptions: { [topic]: '*' },
      model: ConsumerModel.BROADCASTING, offsetStore: dir, instanceName: who,
      listener: async (m) => { got[who].push(m.body.toString()); return ConsumeResult.SUCCESS } })
  })
  for (const m of members) await m.start()
  const bodies = ['x', 'y', 'z']
  await sendAll(topic, bodies)
  await waitFor(() => got.one.length >= 3 && got.two.length >= 3, 30_000, 'both members got all')
  assert.deepEqual(got.one.sort(), bodies)
  assert.deepEqual(got.two.sort(), bodies)
  for (const m of members) await m.shutdown()
})

test('a listener that throws, rejects or answers FAILURE has the message redelivered', async () => {
  const topic = await createTopic(server.admin, unique('fail'), 'NORMAL', 1)
  const g = await group('fail', { maxDeliveryAttempts: 5 })
  const attempts = new Map()
  const c = new PushConsumer({ endpoints: server.endpoints, group: g, subscriptions: { [topic]: '*' },
    listener: (m) => {
      const body = m.body.toString()
      attempts.set(body, [...(attempts.get(body) ?? []), m.deliveryAttempt])
      if (m.deliveryAttempt > 1) return ConsumeResult.SUCCESS
      if (body === 'throw') throw new Error('listener bug')
      if (body === 'reject') return Promise.reject(new Error('async listener bug'))
      if (body === 'failure') return Promise.resolve(ConsumeResult.FAILURE)
      if (body === 'garbage') return 'not a result'
      return ConsumeResult.SUCCESS // a plain value is fine too
    } })
  await c.start()
  await sendAll(topic, ['throw', 'reject', 'failure', 'garbage', 'ok'])
  await waitFor(() => ['throw', 'reject', 'failure', 'garbage'].every((b) => attempts.get(b)?.length === 2),
    60_000, 'the redeliveries')
  await sleep(1000)
  assert.deepEqual(Object.fromEntries(attempts), {
    throw: [1, 2], reject: [1, 2], failure: [1, 2], garbage: [1, 2], ok: [1],
  })
  await c.shutdown()
})

test('pull: subscribe, poll, commit; seek back to an offset and to the beginning', async () => {
  const topic = await createTopic(server.admin, unique('pull'), 'NORMAL', 1)
  const c = new PullConsumer({ endpoints: server.endpoints, group: await group('pull'), autoCommitInterval: 0 })
  await c.start()
  await sendAll(topic, ['p0', 'p1', 'p2', 'p3'])
  await c.subscribe(topic, '*')
  const read = async (n) => {
    const got = []
    await waitFor(async () => { got.push(...await c.poll(1000)); return got.length >= n }, 30_000, `${n} polled`)
    return got
  }
  const all = await read(4)
  assert.deepEqual(all.map((m) => m.body.toString()), ['p0', 'p1', 'p2', 'p3'])
  await c.commit()
  const [queue] = c.assignment()
  assert.deepEqual(queue.topic, topic)
  assert.equal(c.position(queue), 4)
  assert.deepEqual((await c.queues(topic)).map((q) => q.queueId), [0])
  c.seek(queue, 2)
  assert.deepEqual((await read(2)).map((m) => m.queueOffset), [2, 3])
  await c.seekToBeginning(topic)
  assert.deepEqual((await read(4)).map((m) => m.body.toString()), ['p0', 'p1', 'p2', 'p3'])
  await c.seekToEnd(topic)
  assert.deepEqual(await c.poll(500), [])
  assert.throws(() => c.seek({ topic: 'other', broker: queue.broker, queueId: 0 }, 0), (e) => !!e.code)
  await c.shutdown()
  // A new member of the group starts where the last commit left it.
  const again = new PullConsumer({ endpoints: server.endpoints, group: c.group, subscriptions: { [topic]: '*' } })
  await again.start()
  await sendAll(topic, ['p4'])
  const next = []
  await waitFor(async () => { next.push(...await again.poll(1000)); return next.length >= 1 }, 30_000, 'p4')
  assert.deepEqual(next.map((m) => m.body.toString()), ['p4'])
  await again.shutdown()
})
