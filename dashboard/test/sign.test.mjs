// Request signing without a browser: the TypeScript HMAC-SHA1 (used where crypto.subtle is
// missing, i.e. a console on plain http off loopback) and the WebCrypto path both match
// node:crypto, and the headers have the shape docs/DASHBOARD.md gives.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import * as esbuild from "esbuild";

const { outputFiles } = await esbuild.build({
  stdin: { contents: 'export * from "./src/api"; export * from "./src/sha1";', resolveDir: ".", loader: "ts" },
  bundle: true,
  format: "esm",
  platform: "neutral",
  write: false,
  logLevel: "silent",
});
const mod = await import("data:text/javascript;base64," + Buffer.from(outputFiles[0].text).toString("base64"));

test("the TypeScript HMAC-SHA1 matches node:crypto for keys and messages of every length", () => {
  for (let n = 0; n < 200; n += 3) {
    const key = "k€y".repeat(n % 50); // up to 150 chars: past the 64-byte block, so hashed first
    const msg = "m".repeat(n * 3);
    assert.equal(mod.hmacSha1HexSync(key, msg), createHmac("sha1", key).update(msg).digest("hex"), `n=${n}`);
  }
});

test("hmacSha1Hex (WebCrypto here) agrees", async () => {
  assert.equal(await mod.hmacSha1Hex("secret", "20261206T215600Z"), createHmac("sha1", "secret").update("20261206T215600Z").digest("hex"));
});

test("the signed headers: x-mq-date-time in UTC and the MQv2-HMAC-SHA1 authorization", async () => {
  const now = new Date(Date.UTC(2026, 0, 2, 3, 4, 5));
  assert.equal(mod.mqDateTime(now), "20260102T030405Z");
  const h = await mod.signHeaders({ accessKey: "ak", secretKey: "sk" }, now);
  const sig = createHmac("sha1", "sk").update("20260102T030405Z").digest("hex");
  assert.deepEqual(h, {
    "x-mq-date-time": "20260102T030405Z",
    authorization: `MQv2-HMAC-SHA1 Credential=ak, SignedHeaders=x-mq-date-time, Signature=${sig}`,
  });
});
