// What the examples share: the endpoint (ORBITMQ_ENDPOINT, default 127.0.0.1:8081) and a topic
// created when missing.
import { Admin } from 'orbitmq'

export const endpoints = process.env.ORBITMQ_ENDPOINT ?? '127.0.0.1:8081'

/** Creates `name` (`NORMAL`, `FIFO`, `DELAY` or `TRANSACTION`) unless it exists. */
export async function ensureTopic(name, messageType = 'NORMAL') {
  const admin = new Admin({ endpoints })
  await admin.topic(name).catch((e) => {
    if (e.code !== 'NOT_FOUND') throw e
    return admin.createTopic({ name, messageType, readQueues: 4, writeQueues: 4 })
  })
}

/** Tells this run's messages from older ones. */
export const runId = `${process.pid.toString(16)}${Date.now().toString(16)}`
