// Bad arguments fail with the right `err.code` before any network call: the endpoint here has
// nothing listening, so a request that went out would fail UNAVAILABLE instead.
import { test } from 'node:test'
import assert from 'node:assert/strict'

import {
  Admin, ConsumerModel, ErrorCode, Producer, PullConsumer, PushConsumer, SimpleConsumer,
} from '../orbitmq.js'

const endpoints = '127.0.0.1:1'
const badRequest = (extra = {}) => (e) => {
  assert.ok(e instanceof Error, `${e} is an Error`)
  assert.equal(e.code, 'BAD_REQUEST', e.message)
  for (const [k, v] of Object.entries(extra)) assert.equal(e[k], v, `err.${k}`)
  return true
}

test('ErrorCode lists the core kinds by their stable names', () => {
  assert.deepEqual(Object.keys(ErrorCode), [
    'BAD_REQUEST', 'UNAUTHORIZED', 'FORBIDDEN', 'NOT_FOUND', 'PAYLOAD_TOO_LARGE', 'TOO_MANY_REQUESTS',
    'TIMEOUT', 'UNAVAILABLE', 'UNSUPPORTED', 'INTERNAL', 'CLOSED', 'PRECONDITION_FAILED',
    'REPLICATION_TIMEOUT',
  ])
  for (const [k, v] of Object.entries(ErrorCode)) assert.equal(k, v)
})

test('a bad configuration throws BAD_REQUEST from the constructor', () => {
  assert.throws(() => new Producer({ endpoints: '' }), badRequest())
  assert.throws(() => new Producer({ endpoints: 'host-without-port' }), badRequest())
  assert.throws(() => new Producer({ endpoints, namespace: 'a b' }), badRequest())
  assert.throws(() => new Producer({ endpoints, requestTimeout: 0 }), badRequest())
  assert.throws(() => new Producer({ endpoints, topics: ['bad topic'] }), badRequest())
  assert.throws(() => new Producer({ endpoints, credentials: { accessKey: '', secretKey: 's' } }), badRequest())
  assert.throws(() => new Admin({ endpoints: ';' }), badRequest())
  const listener = async () => 'SUCCESS'
  assert.throws(() => new PushConsumer({ endpoints, group: 'G', subscriptions: { T: '*' }, listener,
    consumptionThreads: 0 }), badRequest())
  assert.throws(() => new PushConsumer({ endpoints, group: 'G', subscriptions: { 'bad topic': '*' },
    listener, model: ConsumerModel.CLUSTERING }), badRequest())
  assert.throws(() => new SimpleConsumer({ endpoints, group: 'bad group!' }), badRequest())
  assert.throws(() => new PullConsumer({ endpoints, group: '' }), badRequest())
})

test('arguments of the wrong type are BAD_REQUEST too, naming the field; promises reject, never throw', async () => {
  assert.throws(() => new Producer({}), badRequest({ napiCode: 'InvalidArg' }))
  assert.throws(() => new Producer({}), /endpoints/)
  assert.throws(() => new Producer({ endpoints, topics: 'T' }), badRequest())
  assert.throws(() => new PushConsumer({ endpoints, group: 'G', subscriptions: {} }), /listener/)
  assert.throws(() => new PushConsumer({ endpoints, group: 'G', subscriptions: {}, listener: 'no' }), badRequest())
  const p = new Producer({ endpoints })
  const pending = p.send({ topic: 'T', body: 5 }) // must not throw synchronously
  assert.ok(pending instanceof Promise)
  await assert.rejects(pending, badRequest())
  await assert.rejects(p.send({ topic: 'T' }), (e) => badRequest()(e) && /body/.test(e.message))
  await assert.rejects(p.sendBatch('x'), badRequest())
  const pull = new PullConsumer({ endpoints, group: 'G' })
  assert.throws(() => pull.seek({ topic: 'T' }, 0), badRequest())
  await assert.rejects(pull.poll('soon'), badRequest())
  await pull.shutdown()
  await p.shutdown()
})

test('a bad message is rejected with BAD_REQUEST (and its RocketMQ status) before sending', async () => {
  const p = new Producer({ endpoints })
  try {
    await assert.rejects(p.send({ topic: 'bad topic', body: Buffer.from('x') }),
      badRequest({ status: 40002, operation: 'send', kind: 1, retryable: false }))
    await assert.rejects(p.send({ topic: 'T', body: Buffer.alloc(0) }), badRequest())
    await assert.rejects(p.send({ topic: 'T', body: Buffer.from('x'), tag: 'a|b' }), badRequest())
    await assert.rejects(p.send({ topic: 'T', body: 'x', properties: { UNIQ_KEY: 'v' } }), badRequest())
    await assert.rejects(p.send({ topic: 'T', body: 'x', messageGroup: 'g', deliveryTimestamp: Date.now() }),
      badRequest())
    await assert.rejects(p.sendBatch([]), badRequest())
    await assert.rejects(p.sendBatch([{ topic: 'A', body: 'x' }, { topic: 'B', body: 'y' }]), badRequest())
    await assert.rejects(p.recall('T', ''), (e) => ['BAD_REQUEST', 'UNAVAILABLE'].includes(e.code))
    assert.throws(() => p.beginTransaction(), badRequest())
  } finally {
    await p.shutdown()
  }
})

test('a simple consumer refuses bad receive arguments before any request', async () => {
  const sc = new SimpleConsumer({ endpoints, group: 'G', subscriptions: { T: '*' } })
  await assert.rejects(sc.receive(0, 30_000), badRequest({ operation: 'receive' }))
  await assert.rejects(sc.receive(33, 30_000), badRequest())
  await assert.rejects(sc.receive(1, 1_000), badRequest())
  await sc.shutdown()
})

test('a request to an endpoint with nothing listening fails UNAVAILABLE, retryable', async () => {
  const p = new Producer({ endpoints, requestTimeout: 1000 })
  await assert.rejects(p.send({ topic: 'T', body: 'x' }), (e) => {
    assert.equal(e.code, 'UNAVAILABLE', e.message)
    assert.equal(e.retryable, true)
    return true
  })
  await p.shutdown()
})

test('a client that was shut down fails CLOSED', async () => {
  const p = new Producer({ endpoints })
  await p.shutdown()
  await assert.rejects(p.send({ topic: 'T', body: 'x' }), (e) => e.code === 'CLOSED')
  assert.throws(() => p.beginTransaction(), (e) => e.code === 'CLOSED')
})

test('every method index.d.ts declares as returning a Promise rejects on bad arguments, never throws', async () => {
  const { readFileSync } = await import('node:fs')
  const dts = readFileSync(new URL('../index.d.ts', import.meta.url), 'utf8')
  const instances = {
    Producer: () => new Producer({ endpoints }),
    Transaction: () => new Producer({ endpoints, transactionChecker: () => 'COMMIT' }).beginTransaction(),
    PushConsumer: () => new PushConsumer({ endpoints, group: 'G', subscriptions: {}, listener: () => 'SUCCESS' }),
    SimpleConsumer: () => new SimpleConsumer({ endpoints, group: 'G' }),
    PullConsumer: () => new PullConsumer({ endpoints, group: 'G' }),
    Admin: () => new Admin({ endpoints }),
  }
  let checked = 0
  for (const [, cls, body] of dts.matchAll(/export declare class (\w+) \{\n([\s\S]*?)\n\}/g)) {
    for (const [, method] of body.matchAll(/^ {2}(\w+)\([^)]*\): Promise</gm)) {
      if (method === 'shutdown' || method === 'start' || method === 'commit' || method === 'rollback'
        || method === 'listGroups' || method === 'listTopics' || method === 'brokerStats') continue // no argument to get wrong
      assert.ok(instances[cls], `a class with async methods the test does not know: ${cls}`)
      const obj = instances[cls]()
      let result
      assert.doesNotThrow(() => { result = obj[method](Symbol('bad'), Symbol('bad')) }, `${cls}.${method} threw`)
      await assert.rejects(result, (e) => e.code === 'BAD_REQUEST', `${cls}.${method}`)
      checked++
    }
  }
  assert.ok(checked >= 25, `checked ${checked} methods`)
})
