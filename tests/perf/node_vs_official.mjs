#!/usr/bin/env node
// The orbitmq Node.js package against Apache's official Node.js client
// (rocketmq-client-nodejs 1.0.8), both sending to the same `orbitmq standalone` in one run
// (issue 19: target >= 5x).
//
// Each round starts orbitmq on fresh data (unless ORBITMQ_ENDPOINT is given) with one 8-queue
// topic per client, then runs the clients in turn (order reversed every other round): WARMUP
// unmeasured sends, then COUNT 1 KiB messages, one per request (`send`), INFLIGHT in flight from
// one producer; then orbitmq again with `sendBatch` of BATCH messages per request, INFLIGHT
// requests in flight (the official client has no batch send). Prints each round's msgs/s, the
// medians and the ratios.
//
// Usage: node tests/perf/node_vs_official.mjs
//   Env: ROUNDS (3), COUNT (50000), WARMUP (2000), INFLIGHT (256), BATCH (16),
//        ORBITMQ_BIN (default target/release/orbitmq), ORBITMQ_ENDPOINT (use that server).
//   Needs node/ built (cd node && npm ci && npm run build:release; a dev build works but is
//   slower) and node/node_modules (rocketmq-client-nodejs is a devDependency there).
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const require = createRequire(path.join(REPO, 'node', 'package.json'))
const orbitmq = require('./orbitmq.js')
const official = require('rocketmq-client-nodejs')

const ROUNDS = Number(process.env.ROUNDS ?? 3)
const COUNT = Number(process.env.COUNT ?? 50_000)
const WARMUP = Number(process.env.WARMUP ?? 2_000)
const INFLIGHT = Number(process.env.INFLIGHT ?? 256)
const BATCH = Number(process.env.BATCH ?? 16)
const BODY = Buffer.alloc(1024, 'x')
const quiet = { info() {}, debug() {}, warn() {}, error(...a) { console.error('[official]', ...a) } }

async function startServer() {
  if (process.env.ORBITMQ_ENDPOINT) return { endpoints: process.env.ORBITMQ_ENDPOINT, stop: async () => {} }
  const bin = process.env.ORBITMQ_BIN ?? path.join(REPO, 'target', 'release', 'orbitmq')
  const dir = mkdtempSync(path.join(tmpdir(), 'node-vs-official-'))
  const child = spawn(bin, ['standalone', '--listen', '127.0.0.1:0', '--metrics-listen', 'off',
    '--dashboard-listen', 'off', '--data-dir', path.join(dir, 'data')], { stdio: ['ignore', 'pipe', 'pipe'] })
  let log = ''
  child.stderr.on('data', (d) => { log = (log + d).slice(-4000) })
  const endpoints = await new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
      const m = /ready on (\S+)/.exec(out)
      if (m) resolve(m[1])
    })
    child.on('exit', (code) => reject(new Error(`${bin} exited (${code}):\n${log}`)))
  })
  child.stdout.resume()
  const stop = async () => {
    const gone = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    await gone
    rmSync(dir, { recursive: true, force: true })
  }
  return { endpoints, stop }
}

/** `count / per` calls of `sendOne` (each sending `per` messages), INFLIGHT at a time; msgs/s. */
async function drive(sendOne, count, per = 1) {
  count = Math.ceil(count / per)
  let started = 0
  const worker = async () => {
    while (started < count) {
      started++
      await sendOne()
    }
  }
  const t0 = performance.now()
  await Promise.all(Array.from({ length: INFLIGHT }, worker))
  return (count * per) / ((performance.now() - t0) / 1000)
}

const clients = {
  async orbitmq(endpoints, topic) {
    const p = new orbitmq.Producer({ endpoints, topics: [topic] })
    await p.start()
    const send = () => p.send({ topic, body: BODY })
    await drive(send, WARMUP)
    const rate = await drive(send, COUNT)
    await p.shutdown()
    return rate
  },
  async orbitmq_batch(endpoints, topic) {
    const p = new orbitmq.Producer({ endpoints, topics: [topic] })
    await p.start()
    const send = () => p.sendBatch(Array.from({ length: BATCH }, () => ({ topic, body: BODY })))
    await drive(send, WARMUP, BATCH)
    const rate = await drive(send, COUNT, BATCH)
    await p.shutdown()
    return rate
  },
  async official(endpoints, topic) {
    const p = new official.Producer({ endpoints, namespace: '', sslEnabled: false, logger: quiet, topics: [topic] })
    await p.startup()
    const send = () => p.send({ topic, body: BODY })
    await drive(send, WARMUP)
    const rate = await drive(send, COUNT)
    await p.shutdown()
    return rate
  },
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const rates = { orbitmq: [], official: [], orbitmq_batch: [] }
console.log(`${ROUNDS} rounds: ${COUNT} 1 KiB messages per client and round, one per request (orbitmq_batch: ${BATCH}), ${INFLIGHT} requests in flight`)
for (let round = 0; round < ROUNDS; round++) {
  const server = await startServer()
  try {
    const admin = new orbitmq.Admin({ endpoints: server.endpoints })
    const order = round % 2 === 0 ? ['orbitmq', 'official', 'orbitmq_batch'] : ['orbitmq_batch', 'official', 'orbitmq']
    for (const name of order) {
      const topic = `perf-node-${name}-${round}-${process.pid}`
      await admin.createTopic({ name: topic, readQueues: 8, writeQueues: 8 })
      const rate = await clients[name](server.endpoints, topic)
      rates[name].push(rate)
      console.log(`round ${round + 1}: ${name.padEnd(13)} ${Math.round(rate)} msgs/s`)
    }
  } finally {
    await server.stop()
  }
}
const m = Object.fromEntries(Object.entries(rates).map(([k, v]) => [k, median(v)]))
console.log(`median: orbitmq ${Math.round(m.orbitmq)} msgs/s (send), ${Math.round(m.orbitmq_batch)} msgs/s (sendBatch ${BATCH}); rocketmq-client-nodejs 1.0.8 ${Math.round(m.official)} msgs/s`)
console.log(`ratio orbitmq / official: send ${(m.orbitmq / m.official).toFixed(2)}x, sendBatch ${(m.orbitmq_batch / m.official).toFixed(2)}x (target >= 5x)`)
