// What every test file shares: a real `orbitmq standalone` on a free loopback port (from
// $ORBITMQ_BIN, started the way tests/compat/node does it), unique names, bounded waits.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

import { Admin } from '../orbitmq.js'

export const NODE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const REPO = path.resolve(NODE_DIR, '..')
const READY_MS = 30_000
const RUN = randomBytes(3).toString('hex')

/** A topic or group name unique to this run. */
export const unique = (prefix) => `node-${prefix}-${RUN}`

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** A temporary directory, removed by `cleanup`. */
export const tempDir = (prefix) => mkdtempSync(path.join(tmpdir(), `orbitmq-node-${prefix}-`))

/** Waits until `check()` is truthy (polled every 50 ms), failing after `ms`. */
export async function waitFor(check, ms, what) {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await check()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(50)
  }
}

/**
 * Starts `$ORBITMQ_BIN standalone --listen 127.0.0.1:0` on a fresh data directory and waits
 * for its `ready on HOST:PORT` line. Returns `{ endpoints, admin, stop() }`.
 */
export async function startServer() {
  const bin = process.env.ORBITMQ_BIN
  if (!bin) throw new Error('set ORBITMQ_BIN to the orbitmq server binary (node/test.sh does)')
  const dir = tempDir('server')
  const child = spawn(bin, ['standalone', '--listen', '127.0.0.1:0', '--metrics-listen', 'off',
    '--dashboard-listen', 'off', '--data-dir', path.join(dir, 'data')], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let log = ''
  child.stderr.on('data', (d) => { log = (log + d).slice(-8000) })
  const endpoints = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server not ready in ${READY_MS} ms:\n${log}`)), READY_MS)
    child.stdout.on('data', (d) => {
      out += d
      const m = /ready on (\S+)/.exec(out)
      if (m) { clearTimeout(timer); resolve(m[1]) }
    })
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited (${code}):\n${log}`)) })
  })
  child.stdout.resume()
  const admin = new Admin({ endpoints })
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await gone
      clearTimeout(t)
    }
    rmSync(dir, { recursive: true, force: true })
  }
  return { endpoints, admin, stop }
}

/** Creates a topic (`NORMAL`, `FIFO`, `DELAY` or `TRANSACTION`) with `queues` queues. */
export async function createTopic(admin, name, messageType = 'NORMAL', queues = 2) {
  await admin.createTopic({ name, messageType, readQueues: queues, writeQueues: queues })
  return name
}
