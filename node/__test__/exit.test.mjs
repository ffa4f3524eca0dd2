// After shutdown() the process exits by itself: no native handle keeps the event loop alive.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import path from 'node:path'

import { NODE_DIR, createTopic, startServer, unique } from './helpers.mjs'

let server
before(async () => { server = await startServer() })
after(async () => { await server?.stop() })

/** Runs the fixture; resolves { code, out, ms } or { code: 'timeout' } after `ms`. */
function run(topic, group, env, ms) {
  const started = Date.now()
  const child = spawn(process.execPath, [path.join(NODE_DIR, '__test__/fixtures/exits.mjs'), server.endpoints, topic, group],
    { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d) => { out += d })
  child.stderr.on('data', (d) => { out += d })
  return new Promise((resolve) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); resolve({ code: 'timeout', out }) }, ms)
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, out, ms: Date.now() - started }) })
  })
}

test('a script exits by itself after shutting every client down', async () => {
  const topic = await createTopic(server.admin, unique('exit'))
  const r = await run(topic, unique('exit'), {}, 30_000)
  assert.equal(r.code, 0, r.out)
  assert.match(r.out, /shut down/)
})

test('a push consumer not shut down keeps the process alive', async () => {
  const topic = await createTopic(server.admin, unique('alive'))
  const r = await run(topic, unique('alive'), { SKIP_SHUTDOWN: 'push' }, 8_000)
  assert.equal(r.code, 'timeout', r.out)
  assert.match(r.out, /shut down/)
})
