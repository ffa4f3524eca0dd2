// Server/admin plumbing shared by the Node suite. Contract (same as the Python and Java suites,
// see tests/compat/README.md):
//  - ORBITMQ_ENDPOINT=host:port set: use that server; otherwise start
//    `$ORBITMQ_BIN standalone --listen 127.0.0.1:<free port> --data-dir <temp dir>`, wait (30 s max) for a
//    stdout line `ready on <addr>`, SIGTERM it at the end.
//  - ORBITMQ_ADMIN: command prefix for `topic create` / `group create`
//    (default `$ORBITMQ_BIN admin --endpoints <endpoint>`).
import { spawn, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, accessSync, constants } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
const READY_TIMEOUT_MS = 30_000;
const ADMIN_TIMEOUT_MS = 90_000;

export const RUN_ID = randomBytes(4).toString('hex');
/** A topic/group name unique to this run. */
export const unique = (prefix) => `node-${prefix}-${RUN_ID}`;

const orbitmqBin = () => process.env.ORBITMQ_BIN || path.join(REPO, 'target', 'debug', 'orbitmq');

/** Reject if `promise` does not settle within `ms`. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([ promise, timeout ]).finally(() => clearTimeout(timer));
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Starts the server unless ORBITMQ_ENDPOINT is set. Returns { endpoint, stop() }. */
export async function startServer() {
  if (process.env.ORBITMQ_ENDPOINT) {
    return { endpoint: process.env.ORBITMQ_ENDPOINT, stop: async () => {} };
  }
  const bin = orbitmqBin();
  try {
    accessSync(bin, constants.X_OK);
  } catch {
    throw new Error(`ORBITMQ_ENDPOINT is unset and the server binary ${bin} does not exist `
      + '(build it, or set ORBITMQ_BIN / ORBITMQ_ENDPOINT)');
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'orbitmq-compat-node-'));
  const logPath = path.join(dir, 'server.log');
  const logFd = openSync(logPath, 'w');
  const listen = `127.0.0.1:${await freePort()}`;
  const child = spawn(bin, [ 'standalone', '--listen', listen, '--dashboard-listen', 'off', '--data-dir', path.join(dir, 'data') ],
    { stdio: [ 'ignore', logFd, logFd ] });
  let exited = null;
  child.on('exit', (code, signal) => { exited = { code, signal }; });
  const stop = async () => {
    if (exited) return;
    child.kill('SIGTERM');
    const gone = new Promise((resolve) => child.once('exit', resolve));
    try {
      await withTimeout(gone, 10_000, 'server shutdown');
    } catch {
      child.kill('SIGKILL');
    }
  };
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const m = /ready on (\S+)/.exec(readFileSync(logPath, 'utf8'));
    if (m) return { endpoint: m[1], stop };
    if (exited) break;
    await sleep(100);
  }
  await stop();
  throw new Error(`server did not print 'ready on <addr>' within ${READY_TIMEOUT_MS} ms `
    + `(exit ${JSON.stringify(exited)}); log:\n${readFileSync(logPath, 'utf8').slice(-4000)}`);
}

/** Minimal POSIX-shell-like word splitting (whitespace, '…', "…", backslash). */
function shellSplit(s) {
  const words = [];
  let cur = null;
  let quote = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && i + 1 < s.length) cur += s[++i];
      else cur += c;
    } else if (c === '\'' || c === '"') {
      quote = c;
      cur ??= '';
    } else if (c === '\\' && i + 1 < s.length) {
      cur = (cur ?? '') + s[++i];
    } else if (/\s/.test(c)) {
      if (cur !== null) words.push(cur);
      cur = null;
    } else {
      cur = (cur ?? '') + c;
    }
  }
  if (quote) throw new Error(`unbalanced quote in ORBITMQ_ADMIN: ${s}`);
  if (cur !== null) words.push(cur);
  return words;
}

export class Admin {
  constructor(endpoint) {
    this.prefix = process.env.ORBITMQ_ADMIN
      ? shellSplit(process.env.ORBITMQ_ADMIN)
      : [ orbitmqBin(), 'admin', '--endpoints', endpoint ];
  }

  run(args) {
    const [ cmd, ...rest ] = [ ...this.prefix, ...args ];
    return new Promise((resolve, reject) => {
      execFile(cmd, rest, { timeout: ADMIN_TIMEOUT_MS, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`admin command failed (${err.killed ? 'timed out' : `exit ${err.code}`}): `
            + `${[ cmd, ...rest ].join(' ')}\nstdout: ${stdout}\nstderr: ${stderr}`));
        } else {
          resolve();
        }
      });
    });
  }

  /** messageType: normal, fifo, delay or transaction. */
  createTopic(topic, { messageType = 'normal', queues = 4 } = {}) {
    return this.run([ 'topic', 'create', '--topic', topic, '--read-queues', String(queues),
      '--write-queues', String(queues), '--message-type', messageType ]);
  }

  /** fifo: the group consumes each message group in order; maxAttempts: deliveries before the DLQ. */
  createGroup(group, { fifo = false, maxAttempts } = {}) {
    const args = [ 'group', 'create', '--group', group ];
    if (fifo) args.push('--fifo');
    if (maxAttempts !== undefined) args.push('--max-attempts', String(maxAttempts));
    return this.run(args);
  }
}

/** Client logger: drops info/debug, keeps warnings and errors (on stderr) for diagnosis. */
export const quietLogger = {
  info() {},
  debug() {},
  warn(...args) { console.error('[client warn]', ...args); },
  error(...args) { console.error('[client error]', ...args); },
};
