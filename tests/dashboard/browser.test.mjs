// The console's browser test (issue 22): a real `orbitmq standalone`, driven through its web UI in
// headless Chromium. Through the pages (clicks and typing, no API calls): create a topic, produce
// a message with a key, find it by key, create a consumer group, watch its lag fall while
// `orbitmq bench consume` receives and acks as that group, reset the group's offsets by time
// (confirmation dialog) and watch the lag come back; screenshot the overview into docs/img/.
//
// Environment: ORBITMQ_BIN (the binary), CHROMIUM (default /usr/bin/chromium),
// ORBITMQ_DASHBOARD_DIR (passed on: serve the assets from that directory instead of the embedded ones),
// KEEP_TMP=1 keeps the server's data and log even on success.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createWriteStream, mkdtempSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../..");
const bin = resolve(process.env.ORBITMQ_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(repo, "target"), "ci/orbitmq"));
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const screenshot = join(repo, "docs/img/dashboard.png");

const TOPIC = "web-orders";
const GROUP = "web-billing";
const KEY = "order-42";
const BODY = "hello from the console: {\"order\":42}";
const EXTRA = 4; // more messages produced through the page, so the lag is more than one

const tmp = mkdtempSync(join(tmpdir(), "orbitmq-dashboard-"));
const servers = [];
let browser;
let page;
let base;
let ports;
let failed = false;

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

function run(args, timeoutMs = 60_000) {
  return new Promise((ok, fail) => {
    const p = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (out += d));
    const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
    p.on("exit", (code, sig) => {
      clearTimeout(timer);
      if (code === 0) ok(out);
      else fail(new Error(`${bin} ${args.join(" ")}: exit ${code ?? sig}\n${out}`));
    });
  });
}

/** Starts `orbitmq standalone` on free ports; resolves once it says "ready on". */
async function startServer(name, env = {}) {
  const ports = { grpc: await freePort(), metrics: await freePort(), dashboard: await freePort() };
  const logPath = join(tmp, `${name}.log`);
  const log = createWriteStream(logPath);
  const args = [
    "standalone",
    "--listen", `127.0.0.1:${ports.grpc}`,
    "--metrics-listen", `127.0.0.1:${ports.metrics}`,
    "--dashboard-listen", `127.0.0.1:${ports.dashboard}`,
    "--data-dir", join(tmp, `${name}-data`),
  ];
  const proc = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "info", ...env } });
  const s = { name, proc, ports, logPath, exit: null, base: `http://127.0.0.1:${ports.dashboard}` };
  servers.push(s);
  proc.on("exit", (code, sig) => (s.exit = code ?? sig));
  await new Promise((ok, fail) => {
    let seen = "";
    const timer = setTimeout(() => fail(new Error(`no "ready on" within 30 s; log: ${logPath}`)), 30_000);
    const onData = (d) => {
      log.write(d);
      seen += d;
      if (seen.includes("ready on")) {
        clearTimeout(timer);
        ok();
      }
      if (seen.length > 100_000) seen = seen.slice(-1000);
    };
    proc.stdout.on("data", onData);
    proc.stderr.on("data", onData);
    proc.on("exit", () => fail(new Error(`orbitmq exited (${s.exit}) before "ready on"; log: ${logPath}`)));
  });
  return s;
}

async function stopServer(s) {
  if (s.exit !== null) return;
  const exited = new Promise((ok) => s.proc.on("exit", ok));
  s.proc.kill("SIGTERM");
  const t = setTimeout(() => s.proc.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(t);
}

const byId = (id) => page.getByTestId(id);

/** Waits until the element's text satisfies `pred` (the pages refresh every 2 s). */
async function waitText(locator, pred, what, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = (await locator.count()) ? await locator.first().textContent() : null;
    if (last !== null && pred(last)) return last;
    await page.waitForTimeout(250);
  }
  throw new Error(`timed out waiting for ${what}; last text: ${JSON.stringify(last)}`);
}

// Whatever ends this process (a failure, a timeout, ^C), no server outlives it.
process.on("exit", () => {
  for (const s of servers) if (s.exit === null) s.proc.kill("SIGKILL");
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(130));

before(async () => {
  failed = true; // until the server and the browser are up: keep the log if they are not
  const main = await startServer("server");
  base = main.base;
  ports = main.ports;
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(20_000);
  page.on("pageerror", (e) => {
    console.error("page error:", e.message);
    failed = true;
  });
  failed = false;
});

after(async () => {
  if (failed && page) {
    await page.screenshot({ path: join(tmp, "failure.png"), fullPage: true }).catch(() => {});
  }
  await browser?.close().catch(() => {});
  for (const s of servers) await stopServer(s);
  if (failed || process.env.KEEP_TMP) {
    console.error(`kept: ${tmp} (the servers' logs${failed ? ", failure.png" : ""})`);
    if (failed) {
      for (const s of servers) {
        try {
          console.error(`--- last lines of ${s.logPath} ---\n` + readFileSync(s.logPath, "utf8").split("\n").slice(-40).join("\n"));
        } catch {}
      }
    }
  } else {
    rmSync(tmp, { recursive: true, force: true });
  }
});

// Each step marks the run failed when it throws, so the server log is kept.
function step(name, fn) {
  test(name, async () => {
    try {
      await fn();
    } catch (e) {
      failed = true;
      throw e;
    }
  });
}

let messageId;

step("overview: the server, its broker and the no-credentials notice", async () => {
  await page.goto(base + "/");
  await waitText(byId("server-info"), (t) => t.includes("standalone"), "the server info");
  await waitText(byId("brokers"), (t) => t.includes("broker"), "the brokers table");
  assert.match(await byId("notice-loopback").textContent(), /no credentials: listening on 127\.0\.0\.1 only/i);
});

step("topics: create a topic through the form", async () => {
  await byId("nav-topics").click();
  await byId("topic-create-name").fill(TOPIC);
  await byId("topic-create-read").fill("4");
  await byId("topic-create-write").fill("4");
  await byId("topic-create-type").selectOption("NORMAL");
  await byId("topic-create-submit").click();
  await byId("topic-created-link").waitFor();
  await waitText(byId("topics-table"), (t) => t.includes(TOPIC), "the new topic in the list");
  // the topic's own page, opened by a deep link (a reload must work)
  await byId("topic-created-link").click();
  await waitText(byId("topic-config"), (t) => t.includes("NORMAL"), "the topic's config");
  await page.reload();
  await waitText(byId("topic-status"), (t) => /Queue/.test(t), "the topic's queues after a reload");
  assert.equal(await byId("topic-status").locator("tbody tr").count(), 4);
});

step("produce: a message with a key, tag and property; the receipt has its id", async () => {
  await byId("nav-produce").click();
  await byId("produce-topic").fill(TOPIC);
  await byId("produce-tag").fill("TagA");
  await byId("produce-keys").fill(KEY);
  await byId("produce-properties").fill("origin=browser-test");
  await byId("produce-body").fill(BODY);
  await byId("produce-submit").click();
  messageId = (await byId("produce-message-id").textContent()).trim();
  assert.match(messageId, /^[0-9A-F]{16,}$/i);
  for (let i = 0; i < EXTRA; i++) {
    await byId("produce-keys").fill(`extra-${i}`);
    await byId("produce-body").fill(`extra message ${i}`);
    await byId("produce-submit").click();
    await waitText(byId("produce-message-id"), (t) => t.trim() !== messageId && t.trim().length > 0, `receipt ${i}`);
  }
});

step("messages: find the message by its key", async () => {
  await byId("nav-messages").click();
  await byId("lookup-key-topic").fill(TOPIC);
  await byId("lookup-key-key").fill(KEY);
  // The key index is written behind the CommitLog (as RocketMQ's is): ask again until it answers.
  const result = byId("message-result");
  const deadline = Date.now() + 15_000;
  for (;;) {
    await byId("lookup-key-submit").click();
    await page.locator('[data-testid="message-result"], [data-testid="message-none"], [data-testid="error"]').first().waitFor();
    if (await result.count()) break;
    if (Date.now() > deadline) throw new Error(`no message by key: ${await byId("message-results").textContent()}`);
    await page.waitForTimeout(500);
  }
  assert.equal(await result.count(), 1);
  assert.equal(await result.getAttribute("data-message-id"), messageId);
  assert.equal(await byId("message-body").textContent(), BODY);
  assert.match(await byId("message-properties").textContent(), /origin\s*browser-test/);
  assert.match(await result.textContent(), /TagA/);
  // the lookup is in the URL: a reload shows it again
  assert.match(page.url(), /\/messages\?topic=web-orders&key=order-42$/);
  await page.reload();
  await byId("message-result").first().waitFor();
  assert.equal(await byId("message-result").getAttribute("data-message-id"), messageId);
});

step("groups: create a consumer group", async () => {
  await byId("nav-groups").click();
  await byId("group-create-name").fill(GROUP);
  await byId("group-create-consume-from").selectOption("first");
  await byId("group-create-submit").click();
  await byId("group-created-link").waitFor();
  await waitText(byId("groups-table"), (t) => t.includes(GROUP), "the new group in the list");
});

step("group page: lag falls as a consumer receives and acks, and comes back after a reset by time", async () => {
  await byId("group-created-link").click();
  await byId("progress-topic").fill(TOPIC);
  await byId("progress-topic-submit").click();
  const total = 1 + EXTRA;
  await waitText(byId("group-total-lag"), (t) => Number(t) === total, `a lag of ${total} before consuming`);

  // A real consumer of the group: the Rust SDK's simple consumer receives and acks every message.
  const consumed = await run(["bench", "consume", "--endpoints", `127.0.0.1:${ports.grpc}`, "--topic", TOPIC, "--group", GROUP, "--count", String(total), "--receivers", "2", "--connections", "1"]);
  assert.match(consumed, new RegExp(`"msgs":${total}\\b`));
  await waitText(byId("group-total-lag"), (t) => Number(t) === 0, "the lag to fall to 0 after consuming");
  assert.match(await byId("group-progress").textContent(), new RegExp(TOPIC));
  await waitText(byId("group-members"), (t) => t.includes("SIMPLE_CONSUMER"), "the consumer among the group's members");

  // Reset to an hour ago: every message is delivered again, so the lag is back.
  await byId("reset-topic").fill(TOPIC);
  const hourAgo = new Date(Date.now() - 3600_000);
  const p = (n) => String(n).padStart(2, "0");
  const local = `${hourAgo.getFullYear()}-${p(hourAgo.getMonth() + 1)}-${p(hourAgo.getDate())}T${p(hourAgo.getHours())}:${p(hourAgo.getMinutes())}:${p(hourAgo.getSeconds())}`;
  await byId("reset-time").fill(local);
  await byId("reset-submit").click();
  const dialog = byId("reset-dialog");
  await dialog.waitFor({ state: "visible" });
  // Cancel first: nothing may change.
  await byId("reset-cancel").click();
  await dialog.waitFor({ state: "hidden" });
  await page.waitForTimeout(2500);
  assert.equal(Number(await byId("group-total-lag").textContent()), 0);
  await byId("reset-submit").click();
  await dialog.waitFor({ state: "visible" });
  await byId("reset-confirm").click();
  await byId("reset-table").waitFor();
  await waitText(byId("group-total-lag"), (t) => Number(t) === total, `the lag back at ${total} after the reset`);
});

step("messages: a long body is cut at 4 KiB with a download of the whole; resend to the group", async () => {
  const long = "0123456789abcdef".repeat(400); // 6400 bytes
  await byId("nav-produce").click();
  await byId("produce-topic").fill(TOPIC);
  await byId("produce-keys").fill("long-one");
  await byId("produce-body").fill(long);
  await byId("produce-submit").click();
  const id = (await byId("produce-message-id").textContent()).trim();
  await byId("produce-lookup").click(); // the receipt's link: lookup by id
  await byId("message-result").first().waitFor();
  assert.equal(await byId("message-result").getAttribute("data-message-id"), id);
  assert.equal((await byId("message-body").textContent()).length, 4096);
  const [download] = await Promise.all([page.waitForEvent("download"), byId("message-body-download").click()]);
  const saved = join(tmp, "body.bin");
  await download.saveAs(saved);
  assert.equal(readFileSync(saved, "utf8"), long);
  // resend it to the group (the API answers resent)
  await byId("resend-group").selectOption(GROUP);
  await byId("resend-submit").click();
  await waitText(byId("resend-result"), (t) => t.includes(`Resent to ${GROUP}`), "the resend confirmation");
});

step("errors: a missing topic shows the API's error on the page", async () => {
  await page.goto(base + "/topics/no-such-topic-here");
  await waitText(byId("error"), (t) => /NotFound/.test(t), "a NotFound error box");
});

step("overview screenshot into docs/img/dashboard.png", async () => {
  await byId("nav-overview").click();
  // two metric samples at least, so the charts have lines
  await page.waitForFunction(() => (document.querySelector('[data-testid="metrics-latest"]')?.textContent ?? "").startsWith("Now:"), null, { timeout: 20_000 });
  await page.waitForTimeout(4500);
  mkdirSync(dirname(screenshot), { recursive: true });
  await page.screenshot({ path: screenshot, fullPage: true });
});

step("credentials: a server with keys asks for them, refuses a wrong secret, then works signed", async () => {
  const secured = await startServer("secured", { ORBITMQ_ACCESS_KEY: "console-ak", ORBITMQ_SECRET_KEY: "console-secret-1" });
  const ctx = await browser.newContext();
  const p2 = await ctx.newPage();
  p2.on("pageerror", (e) => {
    console.error("page error:", e.message);
    failed = true;
  });
  try {
    await p2.goto(secured.base + "/topics");
    await p2.getByTestId("login-form").waitFor();
    assert.equal(await p2.getByTestId("notice-loopback").count(), 0);
    await p2.getByTestId("login-access-key").fill("console-ak");
    await p2.getByTestId("login-secret-key").fill("wrong-secret");
    await p2.getByTestId("login-submit").click();
    await p2.getByTestId("error").filter({ hasText: "Unauthorized" }).waitFor();
    await p2.getByTestId("login-access-key").fill("console-ak");
    await p2.getByTestId("login-secret-key").fill("console-secret-1");
    await p2.getByTestId("login-submit").click();
    await p2.getByTestId("topics-table").waitFor();
    // signed writes too, and the keys survive a reload (sessionStorage)
    await p2.getByTestId("topic-create-name").fill("signed-topic");
    await p2.getByTestId("topic-create-submit").click();
    await p2.getByTestId("topic-created-link").waitFor();
    await p2.reload();
    await p2.getByTestId("topics-table").filter({ hasText: "signed-topic" }).waitFor();
  } finally {
    await ctx.close();
    await stopServer(secured);
  }
});
