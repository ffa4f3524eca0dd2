// Message types with the official Node.js client (npm rocketmq-client-nodejs 1.0.8): a delay message is not
// delivered before its delivery time, and FIFO messages (messageGroup set) reach a SimpleConsumer of a FIFO group
// in send order per message group.
// Every wait is bounded; an unexpected, missing, early or duplicated message fails the test.
// Node 1.0.8 uses only queue id 0 of a route (PROTOCOL.md §2.5) and may hang in startup() when given several
// topics: each client here has exactly one topic, and the topics have a single queue.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Producer, SimpleConsumer } from 'rocketmq-client-nodejs';
import { Admin, quietLogger, startServer, unique, withTimeout } from '../lib/server.mjs';

const AWAIT_MS = 5_000; // long polling of simple receives (Apache clamps to [5 s, 20 s])
const INVISIBLE_MS = 15_000; // >= Apache's 10 s minimum
const STARTUP_MS = 30_000;
const SHUTDOWN_MS = 60_000;
const DELAY_MS = 5_000; // delivery time of the delay message, from now
const DELAY_EARLY_MS = 200; // tolerance below the delivery time (clock granularity)
const DELAY_LATE_MS = 3_000; // the message must be received at most this long after its delivery time
const FIFO_GROUPS = 2;
const FIFO_PER_GROUP = 5;
const MESSAGE_ID_RE = /^[0-9A-F]{34}$/;

const TOPICS = { delay: unique('delay'), fifo: unique('fifo') };
const GROUPS = { delay: unique('delay'), fifo: unique('fifo') };

let server;
const clientOptions = () => ({ endpoints: server.endpoint, namespace: '', sslEnabled: false, logger: quietLogger });

before(async () => {
  server = await startServer();
  const admin = new Admin(server.endpoint);
  await Promise.all([
    admin.createTopic(TOPICS.delay, { messageType: 'delay', queues: 1 }),
    admin.createTopic(TOPICS.fifo, { messageType: 'fifo', queues: 1 }),
    admin.createGroup(GROUPS.delay),
    admin.createGroup(GROUPS.fifo, { fifo: true }),
  ]);
});

after(async () => {
  if (server) await server.stop();
});

const describe = (m) => `id=${m.messageId} body=${m.body} group=${m.messageGroup} attempt=${m.deliveryAttempt}`;

async function startClients(topic, group) {
  const producer = new Producer({ ...clientOptions(), topics: [ topic ] });
  await withTimeout(producer.startup(), STARTUP_MS, 'Producer.startup()');
  const consumer = new SimpleConsumer({ ...clientOptions(), consumerGroup: group,
    subscriptions: new Map([ [ topic, '*' ] ]), awaitDuration: AWAIT_MS });
  try {
    await withTimeout(consumer.startup(), STARTUP_MS, 'SimpleConsumer.startup()');
  } catch (e) {
    await withTimeout(producer.shutdown(), SHUTDOWN_MS, 'Producer.shutdown()').catch(() => {});
    throw e;
  }
  return { producer, consumer };
}

async function stopClients({ producer, consumer }) {
  try {
    await withTimeout(consumer.shutdown(), SHUTDOWN_MS, 'SimpleConsumer.shutdown()');
  } finally {
    await withTimeout(producer.shutdown(), SHUTDOWN_MS, 'Producer.shutdown()');
  }
}

async function send(producer, message) {
  const receipt = await withTimeout(producer.send(message), 30_000, `send to ${message.topic}`);
  assert.ok(receipt, 'send returned no receipt');
  assert.match(receipt.messageId, MESSAGE_ID_RE, `bad message id in receipt: ${receipt.messageId}`);
  return receipt;
}

const receive = (consumer, max = 16) =>
  withTimeout(consumer.receive(max, INVISIBLE_MS), AWAIT_MS + 20_000, 'SimpleConsumer.receive()');

test('delay message is delivered at its delivery time, not before', async () => {
  const clients = await startClients(TOPICS.delay, GROUPS.delay);
  const { producer, consumer } = clients;
  try {
    const due = new Date(Date.now() + DELAY_MS);
    const r = await send(producer, { topic: TOPICS.delay, body: Buffer.from('delayed'), tag: 'TagD',
      deliveryTimestamp: due });
    assert.ok(r.recallHandle, 'a delay message\'s send receipt must carry a recall handle');
    let got;
    let at;
    while (!got) {
      assert.ok(Date.now() < due.getTime() + DELAY_LATE_MS + AWAIT_MS + 5_000,
        `the delay message was not delivered within ${DELAY_LATE_MS} ms after its delivery time`);
      for (const m of await receive(consumer)) {
        const now = Date.now();
        assert.equal(m.messageId, r.messageId, `unexpected message: ${describe(m)}`);
        assert.ok(!got, `delay message delivered twice: ${describe(m)}`);
        assert.ok(now >= due.getTime() - DELAY_EARLY_MS,
          `delay message delivered ${due.getTime() - now} ms before its delivery time`);
        got = m;
        at = now;
      }
    }
    const late = at - due.getTime();
    console.log(`[measured] Node delay message delivered ${late} ms after its delivery time; deliveryTimestamp `
      + `in the message ${got.deliveryTimestamp?.toISOString()} (sent ${due.toISOString()})`);
    assert.ok(late <= DELAY_LATE_MS, `delay message delivered ${late} ms after its delivery time`);
    assert.equal(got.body.toString(), 'delayed');
    assert.equal(got.tag, 'TagD');
    assert.equal(got.deliveryAttempt, 1);
    assert.equal(got.deliveryTimestamp?.getTime(), due.getTime(), 'deliveryTimestamp of the delivered message');
    await withTimeout(consumer.ack(got), 15_000, 'ack');
    const extra = await receive(consumer);
    assert.deepEqual(extra.map(describe), [], 'nothing else may be delivered');
  } finally {
    await stopClients(clients);
  }
});

test('FIFO messages reach a FIFO group in send order per message group', async () => {
  const clients = await startClients(TOPICS.fifo, GROUPS.fifo);
  const { producer, consumer } = clients;
  try {
    const names = Array.from({ length: FIFO_GROUPS }, (_, g) => `node-order-${g}`);
    const sent = new Map(names.map((n) => [ n, [] ]));
    for (let i = 0; i < FIFO_PER_GROUP; i++) {
      for (const name of names) { // interleaved: g0/0, g1/0, g0/1, ...
        const r = await send(producer, { topic: TOPICS.fifo, body: Buffer.from(`${name}/${i}`), messageGroup: name });
        sent.get(name).push(r.messageId);
      }
    }
    const got = new Map(names.map((n) => [ n, [] ]));
    const total = FIFO_GROUPS * FIFO_PER_GROUP;
    let n = 0;
    const deadline = Date.now() + 60_000;
    while (n < total) {
      assert.ok(Date.now() < deadline, `timed out: received ${n} of ${total}`);
      const batch = await receive(consumer);
      for (const m of batch) {
        assert.ok(got.has(m.messageGroup), `unexpected message: ${describe(m)}`);
        const list = got.get(m.messageGroup);
        const i = list.length;
        assert.equal(m.messageId, sent.get(m.messageGroup)[i],
          `group ${m.messageGroup}: got ${describe(m)} as message #${i}, expected ${sent.get(m.messageGroup)[i]}`);
        assert.equal(m.body.toString(), `${m.messageGroup}/${i}`);
        assert.equal(m.deliveryAttempt, 1, describe(m));
        list.push(m.messageId);
        n++;
      }
      for (const m of batch) await withTimeout(consumer.ack(m), 15_000, 'ack');
    }
    assert.deepEqual(got, sent);
    const extra = await receive(consumer);
    assert.deepEqual(extra.map(describe), [], 'nothing else may be delivered');
  } finally {
    await stopClients(clients);
  }
});
