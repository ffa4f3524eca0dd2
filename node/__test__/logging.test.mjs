// Logging: warnings and errors to stderr by default (nothing else), every record to a JS
// logger once one is set, never a file (the home directory stays empty).
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readdirSync, rmSync } from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'

import { Producer, setLogger } from '../orbitmq.js'
import { NODE_DIR, createTopic, startServer, tempDir, unique } from './helpers.mjs'

const run = promisify(execFile)
let server
let topic
before(async () => {
  server = await startServer()
  topic = await createTopic(server.admin, unique('log'))
})
after(async () => { await server?.stop() })

const child = async (env) => {
  const home = tempDir('home')
  try {
    const r = await run(process.execPath, [path.join(NODE_DIR, '__test__/fixtures/log.mjs'), server.endpoints, topic],
      { env: { ...process.env, HOME: home, ...env }, timeout: 30_000 })
    assert.deepEqual(readdirSync(home), [], 'nothing written in the home directory')
    return r
  } finally {
    rmSync(home, { recursive: true, force: true })
  }
}

test('by default a client that works logs nothing, and writes no file', async () => {
  const { stdout, stderr } = await child({})
  assert.equal(stdout, 'sent\n')
  assert.equal(stderr, '')
})

test('setLogger(null, level) sends records from that level to stderr', async () => {
  const { stderr } = await child({ LEVEL: 'debug' })
  assert.match(stderr, /^orbitmq debug \S+: /m)
})

test('a JS logger gets each record as { level, target, message }', async () => {
  const records = []
  setLogger((r) => records.push(r), 'debug')
  try {
    const p = new Producer({ endpoints: server.endpoints, topics: [topic] })
    await p.send({ topic, body: Buffer.from('x') })
    await p.shutdown()
    await new Promise((r) => setTimeout(r, 100))
  } finally {
    setLogger(null)
  }
  assert.ok(records.length > 0, 'records came')
  for (const r of records) {
    assert.ok(['error', 'warn', 'info', 'debug'].includes(r.level), r.level)
    assert.equal(typeof r.target, 'string')
    assert.equal(typeof r.message, 'string')
  }
})

test('an unknown level is BAD_REQUEST', () => {
  assert.throws(() => setLogger(null, 'loud'), (e) => e.code === 'BAD_REQUEST')
})
