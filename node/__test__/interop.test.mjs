// Interop both ways with the official Node.js client (npm rocketmq-client-nodejs 1.0.8) on one
// server: what one sends, the other receives, with its tag, keys, properties and body.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import * as official from 'rocketmq-client-nodejs'

import { Producer, SimpleConsumer } from '../orbitmq.js'
import { createTopic, startServer, unique, waitFor } from './helpers.mjs'

const quiet = { info() {}, debug() {}, warn() {}, error(...a) { console.error('[official]', ...a) } }
let server
const opts = () => ({ endpoints: server.endpoints, namespace: '', sslEnabled: false, logger: quiet })

before(async () => { server = await startServer() })
after(async () => { await server?.stop() })

test('official producer -> orbitmq simple consumer', async () => {
  const topic = await createTopic(server.admin, unique('from-official'))
  const group = unique('g-from-official')
  await server.admin.createGroup(group)
  const p = new official.Producer({ ...opts(), topics: [topic] })
  await p.startup()
  const r = await p.send({ topic, body: Buffer.from('from the official client'), tag: 'T',
    keys: ['k1'], properties: new Map([['p', 'v']]) })
  await p.shutdown()
  const c = new SimpleConsumer({ endpoints: server.endpoints, group, subscriptions: { [topic]: '*' }, awaitDuration: 2000 })
  const got = []
  await waitFor(async () => { got.push(...await c.receive(16, 30_000)); return got.length >= 1 }, 30_000, 'the message')
  assert.equal(got.length, 1)
  const [m] = got
  assert.equal(m.messageId, r.messageId)
  assert.equal(m.body.toString(), 'from the official client')
  assert.equal(m.tag, 'T')
  assert.deepEqual(m.keys, ['k1'])
  assert.deepEqual(m.properties, { p: 'v' })
  await c.ack(m)
  await c.shutdown()
})

test('orbitmq producer -> official simple consumer', async () => {
  const topic = await createTopic(server.admin, unique('to-official'))
  const group = unique('g-to-official')
  await server.admin.createGroup(group)
  const p = new Producer({ endpoints: server.endpoints, topics: [topic] })
  const r = await p.send({ topic, body: Buffer.from('from orbitmq'), tag: 'T', keys: ['k2'], properties: { q: 'w' } })
  await p.shutdown()
  const c = new official.SimpleConsumer({ ...opts(), consumerGroup: group,
    subscriptions: new Map([[topic, '*']]), awaitDuration: 5000 })
  await c.startup()
  try {
    const got = []
    await waitFor(async () => { got.push(...await c.receive(16, 15_000)); return got.length >= 1 }, 30_000, 'the message')
    const [m] = got
    assert.equal(m.messageId, r.messageId)
    assert.equal(m.body.toString(), 'from orbitmq')
    assert.equal(m.tag, 'T')
    assert.deepEqual(m.keys, ['k2'])
    assert.equal(m.properties.get('q'), 'w')
    assert.ok(!m.corrupted, 'the body matches its digest')
    await c.ack(m)
  } finally {
    await c.shutdown()
  }
})
