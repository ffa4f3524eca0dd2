// OrbitMQ quickstart with Apache's official RocketMQ Node.js client (npm install rocketmq-client-nodejs@1.0.8).
import { randomUUID } from 'node:crypto';
import { Producer, SimpleConsumer } from 'rocketmq-client-nodejs';

const endpoints = process.env.ORBITMQ_ENDPOINT ?? '127.0.0.1:8081';
const topic = 'quickstart';
const run = randomUUID().slice(0, 8); // tells this run's messages from older ones
// Warnings and errors to the console. (With the default file logger, 1.0.8's Producer.shutdown()
// prints a harmless "log stream had been closed" error.)
const logger = { info() {}, warn: console.warn, error: console.error };

const producer = new Producer({ endpoints, logger, topics: [ topic ] });
await producer.startup();
const sent = new Set();
for (let i = 0; i < 3; i++) {
  const body = `order ${i} created (${run})`;
  const receipt = await producer.send({ topic, tag: 'created', keys: [ `order-${i}` ], body: Buffer.from(body) });
  console.log('sent', receipt.messageId);
  sent.add(body);
}

const consumer = new SimpleConsumer({ endpoints, logger, consumerGroup: 'quickstart-group',
  subscriptions: new Map([ [ topic, 'created' ] ]), awaitDuration: 5000 });
await consumer.startup();
const received = new Set();
const deadline = Date.now() + 30_000;
while (received.size < sent.size && Date.now() < deadline) {
  // at most 16 messages, invisible to the group for 15 s
  for (const message of await consumer.receive(16, 15_000)) {
    const body = message.body.toString();
    if (sent.has(body)) {
      console.log('received', body);
      received.add(body);
    }
    await consumer.ack(message); // leftovers of earlier runs are acked too
  }
}
await consumer.shutdown();
await producer.shutdown();
console.log(`quickstart: sent ${sent.size}, received ${received.size}`);
process.exit(received.size === sent.size ? 0 : 1);
