// Admin against a real server: topics, routes, status, groups, members, progress, message
// queries (by offset with a broker), resend, broker stats, offset reset; a missing topic is
// NOT_FOUND.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'

import { Admin, Producer, SimpleConsumer } from '../orbitmq.js'
import { startServer, unique, waitFor } from './helpers.mjs'

let server
let admin
before(async () => {
  server = await startServer()
  admin = new Admin({ endpoints: server.endpoints })
})
after(async () => { await server?.stop() })

test('topics: create, read back, route, status, update, list, delete', async () => {
  const name = unique('admin-topic')
  const created = await admin.createTopic({ name, readQueues: 2, writeQueues: 2, messageType: 'FIFO' })
  assert.deepEqual(created, { name, readQueues: 2, writeQueues: 2, perm: 6, messageType: 'FIFO' })
  assert.deepEqual(await admin.topic(name), created)
  await assert.rejects(admin.createTopic({ name }), (e) => e.code === 'BAD_REQUEST')
  const route = await admin.topicRoute(name)
  assert.deepEqual(route.map((q) => q.queueId).sort(), [0, 1])
  assert.ok(route.every((q) => q.address && q.perm === 'RW'), JSON.stringify(route))
  const status = await admin.topicStatus(name)
  assert.deepEqual(status.map((q) => [q.queueId, q.minOffset, q.maxOffset]).sort(), [[0, 0, 0], [1, 0, 0]])
  assert.equal((await admin.updateTopic({ name, readQueues: 4, writeQueues: 4 })).readQueues, 4)
  assert.ok((await admin.listTopics()).some((t) => t.name === name))
  await admin.deleteTopic(name)
  await assert.rejects(admin.topic(name), (e) => e.code === 'NOT_FOUND' && e.operation === 'get topic')
})

test('groups, progress, message queries and offset reset', async () => {
  const topic = unique('admin-q')
  await admin.createTopic({ name: topic, readQueues: 1, writeQueues: 1 })
  const group = unique('admin-g')
  const g = await admin.createGroup(group, { maxDeliveryAttempts: 3 })
  assert.equal(g.created, true)
  assert.equal(g.maxDeliveryAttempts, 3)
  assert.equal((await admin.createGroup(group)).created, false)
  assert.ok((await admin.listGroups()).some((x) => x.name === group))
  const p = new Producer({ endpoints: server.endpoints })
  const r = await p.send({ topic, body: Buffer.from('stored'), keys: ['the-key'], tag: 'Q' })
  await p.shutdown()
  // The consume queue is written behind the commit log: wait until the queue shows the message.
  await waitFor(async () => (await admin.topicStatus(topic))[0].maxOffset === 1, 10_000, 'the consume queue')
  const byOffset = await admin.queryMessageByOffset(topic, 0, 0)
  assert.equal(byOffset.messageId, r.messageId)
  assert.equal(byOffset.brokerName, 'broker-a')
  assert.equal((await admin.queryMessageByOffset(topic, 0, 0, 'broker-a')).messageId, r.messageId)
  await assert.rejects(admin.queryMessageByOffset(topic, 0, 0, 'broker-b'), (e) => e.code === 'NOT_FOUND' && /broker-b/.test(e.message))
  assert.equal(byOffset.body.toString(), 'stored')
  assert.equal(byOffset.tag, 'Q')
  assert.equal((await admin.queryMessageById(r.messageId))[0].queueOffset, 0)
  const byKey = await waitFor(async () => (await admin.queryMessageByKey(topic, 'the-key')).length && admin.queryMessageByKey(topic, 'the-key'), 10_000, 'the key index')
  assert.equal(byKey[0].messageId, r.messageId)
  await assert.rejects(admin.queryMessageByOffset(topic, 0, 5), (e) => e.code === 'NOT_FOUND')
  await assert.rejects(admin.queryMessageByOffset(topic, 0, -1), (e) => e.code === 'BAD_REQUEST')
  const c = new SimpleConsumer({ endpoints: server.endpoints, group, subscriptions: { [topic]: '*' }, awaitDuration: 2000 })
  const got = await waitFor(async () => { const m = await c.receive(1, 30_000); return m.length && m }, 30_000, 'the message')
  await c.ack(got[0])
  // The consumer is the group's member; the message resent to the group comes once more.
  const members = await admin.groupMembers(group)
  assert.equal(members.length, 1, JSON.stringify(members))
  assert.equal(members[0].clientType, 'SIMPLE_CONSUMER')
  assert.deepEqual(members[0].topics, [topic])
  await admin.resendMessage(group, topic, r.messageId)
  const again = await waitFor(async () => { const m = await c.receive(1, 30_000); return m.length && m }, 30_000, 'the resent message')
  assert.equal(again[0].messageId, r.messageId)
  await c.ack(again[0])
  await assert.rejects(admin.resendMessage(group, topic, '0123456789ABCDEF'), (e) => e.code === 'NOT_FOUND')
  await c.shutdown()
  const stats = await admin.brokerStats()
  assert.equal(stats.length, 1, JSON.stringify(stats))
  assert.equal(stats[0].brokerName, 'broker-a')
  assert.ok(stats[0].messagesIn >= 1 && stats[0].messagesOut >= 2 && stats[0].diskBytes > 0, JSON.stringify(stats))
  const progress = await waitFor(async () => {
    const pr = await admin.consumerProgress(group, topic)
    return pr.queues.length && pr.queues[0].consumerOffset === 1 && pr
  }, 10_000, 'the group offset')
  assert.equal(progress.totalLag, 0)
  const reset = await admin.resetOffset(group, topic, 0)
  assert.deepEqual(reset.map((q) => [q.queueId, q.newOffset]), [[0, 0]])
  await admin.deleteGroup(group)
})
