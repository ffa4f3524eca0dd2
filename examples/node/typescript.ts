// The quickstart in TypeScript, against the package's generated index.d.ts.
// Type-check: npx tsc -p tsconfig.json   Run: npx tsc -p tsconfig.json --outDir dist && node dist/typescript.js
import {
  ConsumeResult, ConsumerModel, Producer, PushConsumer, type MessageView, type SendReceipt,
} from 'orbitmq'
import { endpoints, ensureTopic, runId } from './common.mjs'

async function main(): Promise<void> {
  const topic = 'typescript-example'
  await ensureTopic(topic)
  const received = new Set<string>()
  const consumer = new PushConsumer({
    endpoints,
    group: 'typescript-example-group',
    subscriptions: { [topic]: '*' },
    model: ConsumerModel.CLUSTERING,
    listener: async (message: MessageView): Promise<ConsumeResult> => {
      received.add(message.body.toString())
      return ConsumeResult.SUCCESS
    },
  })
  await consumer.start()
  const producer = new Producer({ endpoints, topics: [topic] })
  const sent: string[] = []
  for (let i = 0; i < 3; i++) {
    const body = `typed ${i} (${runId})`
    const receipt: SendReceipt = await producer.send({ topic, body: Buffer.from(body), keys: [`k${i}`] })
    console.log(`sent ${receipt.messageId}`)
    sent.push(body)
  }
  await producer.shutdown()
  const deadline = Date.now() + 30_000
  while (!sent.every((b) => received.has(b)) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  await consumer.shutdown()
  if (!sent.every((b) => received.has(b))) throw new Error('not every message came')
  console.log('typescript OK')
}

main().catch((e: Error & { code?: string }) => {
  console.error(`failed (${e.code}): ${e.message}`)
  process.exitCode = 1
})
