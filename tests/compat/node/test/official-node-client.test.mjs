// The official Node.js client (npm rocketmq-client-nodejs 1.0.8) against the server under test.
// Run: node --test --test-force-exit test/   (see tests/compat/README.md for the server contract).
// Every wait is bounded; an unexpected, missing or duplicated message fails the test.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ConsumeResult, Producer, PushConsumer, SimpleConsumer } from 'rocketmq-client-nodejs';
import { Admin, quietLogger, sleep, startServer, unique, withTimeout } from '../lib/server.mjs';

const AWAIT_MS = 5_000; // long polling of simple receives (Apache clamps to [5 s, 20 s])
const INVISIBLE_MS = 15_000; // >= Apache's 10 s minimum
const STARTUP_MS = 30_000; // startup waits for the Telemetry settings reply without a timeout of its own
const SHUTDOWN_MS = 60_000; // push shutdown waits for the in-flight long poll (server's long_polling_timeout)
const MESSAGE_ID_RE = /^[0-9A-F]{34}$/; // client generated: "01" + 32 upper-case hex

const TOPICS = { send: unique('send'), simple: unique('simple'), push: unique('push') };
const GROUPS = { simple: unique('simple'), push: unique('push') };

let server;
let producer;

const clientOptions = () => ({ endpoints: server.endpoint, namespace: '', sslEnabled: false, logger: quietLogger });

before(async () => {
  server = await startServer();
  const admin = new Admin(server.endpoint);
  await Promise.all([
    ...Object.values(TOPICS).map((t) => admin.createTopic(t)),
    ...Object.values(GROUPS).map((g) => admin.createGroup(g)),
  ]);
  // One topic only: with several, Node 1.0.8's startup can hang forever (client race: the Telemetry
  // settings reply lands while it still fetches the other routes, before it starts waiting for it).
  // The other topics' routes are fetched on first send.
  producer = new Producer({ ...clientOptions(), topics: [ TOPICS.send ] });
  await withTimeout(producer.startup(), STARTUP_MS, 'Producer.startup()');
});

after(async () => {
  try {
    if (producer) await withTimeout(producer.shutdown(), SHUTDOWN_MS, 'Producer.shutdown()');
  } finally {
    if (server) await server.stop();
  }
});

async function send(topic, body, extra = {}) {
  const receipt = await withTimeout(producer.send({ topic, body: Buffer.from(body), ...extra }), 30_000,
    `send to ${topic}`);
  assert.ok(receipt, 'send returned no receipt');
  assert.match(receipt.messageId, MESSAGE_ID_RE, `bad message id in receipt: ${receipt.messageId}`);
  return receipt;
}

async function receive(consumer, max = 16) {
  return withTimeout(consumer.receive(max, INVISIBLE_MS), AWAIT_MS + 20_000, 'SimpleConsumer.receive()');
}

test('Producer.send returns a receipt with the message id', async () => {
  const ids = new Set();
  for (let i = 0; i < 5; i++) {
    const r = await send(TOPICS.send, `send-${i}`, { tag: 'TagA', keys: [ `key-${i}` ],
      properties: new Map([ [ 'n', String(i) ] ]) });
    assert.ok(r.offset >= 0, `offset ${r.offset}`);
    ids.add(r.messageId);
  }
  assert.equal(ids.size, 5, 'message ids are not unique');
});

test('SimpleConsumer receives, changes invisible duration and acks', async () => {
  const consumer = new SimpleConsumer({ ...clientOptions(), consumerGroup: GROUPS.simple,
    subscriptions: new Map([ [ TOPICS.simple, '*' ] ]), awaitDuration: AWAIT_MS });
  await withTimeout(consumer.startup(), STARTUP_MS, 'SimpleConsumer.startup()');
  try {
    const sent = new Map();
    for (let i = 0; i < 3; i++) {
      const body = `simple-${i}`;
      const r = await send(TOPICS.simple, body, { tag: 'TagS', keys: [ `k${i}` ],
        properties: new Map([ [ 'index', String(i) ] ]) });
      sent.set(r.messageId, { body, i });
    }
    const got = new Map();
    const deadline = Date.now() + 30_000;
    while (got.size < sent.size) {
      assert.ok(Date.now() < deadline, `timed out: received ${[ ...got.keys() ]} of ${[ ...sent.keys() ]}`);
      for (const m of await receive(consumer)) {
        assert.ok(sent.has(m.messageId), `unexpected message ${m.messageId} (${m.body})`);
        assert.ok(!got.has(m.messageId), `message ${m.messageId} delivered twice`);
        got.set(m.messageId, m);
      }
    }
    let first = true;
    for (const [ id, m ] of got) {
      const { body, i } = sent.get(id);
      assert.equal(m.topic, TOPICS.simple);
      assert.equal(m.body.toString(), body);
      assert.equal(m.tag, 'TagS');
      assert.deepEqual(m.keys, [ `k${i}` ]);
      assert.equal(m.properties.get('index'), String(i));
      assert.equal(m.deliveryAttempt, 1, `first delivery must have deliveryAttempt 1, got ${m.deliveryAttempt}`);
      assert.ok(!m.corrupted, 'body digest did not match the body');
      assert.ok(m.receiptHandle, 'message without receipt handle');
      if (first) {
        first = false;
        const old = m.receiptHandle;
        await withTimeout(consumer.changeInvisibleDuration(m, INVISIBLE_MS), 15_000, 'changeInvisibleDuration');
        assert.ok(m.receiptHandle && m.receiptHandle !== old, 'changeInvisibleDuration must return a new handle');
      }
      await withTimeout(consumer.ack(m), 15_000, 'ack'); // throws on a non-OK status
    }
    const extra = await receive(consumer);
    assert.deepEqual(extra.map((m) => m.messageId), [], 'nothing else may be delivered after the acks');
  } finally {
    await withTimeout(consumer.shutdown(), SHUTDOWN_MS, 'SimpleConsumer.shutdown()');
  }
});

test('PushConsumer receives every message sent and shuts down cleanly', async () => {
  const N = 10;
  const consumed = new Map();
  const duplicates = [];
  let onAll;
  const allConsumed = new Promise((resolve) => { onAll = resolve; });
  const sent = new Set();
  const consumer = new PushConsumer({
    ...clientOptions(),
    consumerGroup: GROUPS.push,
    subscriptions: new Map([ [ TOPICS.push, '*' ] ]),
    messageListener: {
      async consume(m) {
        if (consumed.has(m.messageId)) duplicates.push(m.messageId);
        consumed.set(m.messageId, m);
        if ([ ...sent ].every((id) => consumed.has(id)) && sent.size === N) onAll();
        return ConsumeResult.SUCCESS;
      },
    },
  });
  await withTimeout(consumer.startup(), STARTUP_MS, 'PushConsumer.startup()');
  let shutDown = false;
  try {
    for (let i = 0; i < N; i++) {
      sent.add((await send(TOPICS.push, `push-${i}`, { tag: 'TagP' })).messageId);
    }
    if ([ ...sent ].every((id) => consumed.has(id))) onAll();
    await withTimeout(allConsumed, 60_000, `consumption of all ${N} messages `
      + `(got ${consumed.size}: ${[ ...consumed.keys() ]})`);
    // Give a wrongly unacked/duplicated delivery a moment to show up before judging.
    await sleep(2_000);
    const unexpected = [ ...consumed.keys() ].filter((id) => !sent.has(id));
    assert.deepEqual(unexpected, [], 'push consumer received messages that were never sent');
    assert.deepEqual(duplicates, [], 'push consumer received a message twice');
    for (const m of consumed.values()) {
      assert.equal(m.topic, TOPICS.push);
      assert.equal(m.tag, 'TagP');
      assert.equal(m.deliveryAttempt, 1, `deliveryAttempt ${m.deliveryAttempt}`);
      assert.ok(!m.corrupted, 'body digest did not match the body');
    }
    await withTimeout(consumer.shutdown(), SHUTDOWN_MS, 'PushConsumer.shutdown()');
    shutDown = true;
    assert.equal(consumer.isRunning(), false);
  } finally {
    if (!shutDown) await withTimeout(consumer.shutdown(), SHUTDOWN_MS, 'PushConsumer.shutdown()').catch(() => {});
  }
});
