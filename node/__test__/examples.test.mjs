// examples/node: each example runs to its "OK" line against the test server and exits by
// itself; the TypeScript example type-checks (tsc --noEmit) against index.d.ts, then runs.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { copyFileSync, existsSync, rmSync } from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'

import { NODE_DIR, REPO, startServer } from './helpers.mjs'

const run = promisify(execFile)
const EXAMPLES = path.join(REPO, 'examples', 'node')
const TSC = path.join(NODE_DIR, 'node_modules', '.bin', 'tsc')
let server

before(async () => {
  assert.ok(existsSync(path.join(EXAMPLES, 'node_modules', 'orbitmq')),
    'examples/node needs `npm ci` (it links ../../node as orbitmq); node/test.sh does it')
  server = await startServer()
})
after(async () => { await server?.stop() })

const example = (file, cwd = EXAMPLES) => run(process.execPath, [file], {
  cwd, timeout: 90_000, env: { ...process.env, ORBITMQ_ENDPOINT: server.endpoints },
})

for (const name of ['quickstart', 'simple_consumer', 'push_consumer', 'pull_consumer', 'fifo', 'delay', 'transaction']) {
  test(`examples/node/${name}.mjs runs and exits by itself`, async () => {
    const { stdout } = await example(`${name}.mjs`)
    assert.match(stdout, / OK\n$/, stdout)
  })
}

test('the TypeScript example type-checks against index.d.ts (tsc --noEmit), then runs', async () => {
  await run(TSC, ['-p', 'tsconfig.json', '--noEmit'], { cwd: EXAMPLES })
  const dist = path.join(EXAMPLES, 'dist')
  rmSync(dist, { recursive: true, force: true })
  try {
    await run(TSC, ['-p', 'tsconfig.json', '--noEmit', 'false', '--outDir', dist], { cwd: EXAMPLES })
    copyFileSync(path.join(EXAMPLES, 'common.mjs'), path.join(dist, 'common.mjs'))
    const { stdout } = await example(path.join(dist, 'typescript.js'))
    assert.match(stdout, /typescript OK\n$/, stdout)
  } finally {
    rmSync(dist, { recursive: true, force: true })
  }
})

test('a type error in TypeScript code using the package is caught', async () => {
  // Guards the check above: a listener answering a number must not type-check.
  const bad = path.join(EXAMPLES, 'bad-example.ts')
  const { writeFileSync } = await import('node:fs')
  writeFileSync(bad, `import { PushConsumer } from 'orbitmq'\n`
    + `new PushConsumer({ endpoints: 'h:1', group: 'g', subscriptions: {}, listener: async () => 42 })\n`)
  try {
    await assert.rejects(run(TSC, ['--noEmit', '--strict', '--module', 'NodeNext', '--moduleResolution', 'NodeNext',
      '--typeRoots', path.join(NODE_DIR, 'node_modules', '@types'), '--types', 'node', bad], { cwd: EXAMPLES }),
    (e) => /TS2322|not assignable/.test(e.stdout))
  } finally {
    rmSync(bad, { force: true })
  }
})
