// A stand-in for the orbitmq console server, in memory, for front-end work without Rust:
//   node dev/mock-server.mjs [port]   (MOCK_ACCESS_KEY/MOCK_SECRET_KEY turn on the signature check)
// It follows docs/DASHBOARD.md loosely (no brokers, no real consumption: POST /api/dev/consume
// {group,topic} acks everything); the browser test runs against the real orbitmq, not this.
import { createHash, createHmac } from "node:crypto";
import { readFileSync, existsSync } from "node:fs";
import { createServer } from "node:http";
import { extname, join } from "node:path";

const dist = new URL("../dist/", import.meta.url).pathname;
const port = Number(process.argv[2] ?? 8090);
const ak = process.env.MOCK_ACCESS_KEY;
const sk = process.env.MOCK_SECRET_KEY;
const started = Date.now();
const topics = new Map();
const groups = new Map();
const log = []; // messages
const offsets = new Map(); // `${group}\0${topic}\0${queue}` -> offset
const points = [];
setInterval(() => {
  points.push({ t: Date.now(), in_per_s: Math.random() * 50, out_per_s: Math.random() * 40, disk_bytes: 1e6 + log.length * 1000 });
  if (points.length > 300) points.shift();
}, 2000);

class HttpError extends Error {
  constructor(status, kind, message) { super(message); this.status = status; this.kind = kind; }
}
const bad = (m) => new HttpError(400, "BadRequest", m);
const notFound = (m) => new HttpError(404, "NotFound", m);
const queuesOf = (t) => log.filter((m) => m.topic === t);
function maxOffset(t, q) { return log.filter((m) => m.topic === t && m.queue_id === q).length; }
function topicOr404(name) { const t = topics.get(name); if (!t) throw notFound(`topic ${name} does not exist`); return t; }
function view(m) {
  const buf = Buffer.from(m.body, "utf8");
  return { ...m, body: { size: buf.length, text: m.body.slice(0, 4096), hex: null, truncated: buf.length > 4096 } };
}
function progress(group, onlyTopic) {
  const qs = [];
  for (const t of topics.values()) {
    if (onlyTopic && t.name !== onlyTopic) continue;
    if (!queuesOf(t.name).length) continue;
    for (let q = 0; q < t.read_queues; q++) {
      const b = maxOffset(t.name, q);
      const c = offsets.get(`${group}\0${t.name}\0${q}`) ?? 0;
      qs.push({ topic: t.name, broker_name: "broker-a", queue_id: q, broker_offset: b, consumer_offset: c, lag: b - c });
    }
  }
  return { group, queues: qs, total_lag: qs.reduce((s, q) => s + q.lag, 0), dead_letters: 0, inflight: 0 };
}

async function api(method, path, q, body) {
  const p = path.split("/").slice(2).map(decodeURIComponent); // after /api
  const key = `${method} /${p[0]}${p.length > 1 ? "/" + (p[0] === "messages" ? p[1] : "*") : ""}${p[2] ? "/" + p[2] : ""}`;
  switch (key) {
    case "GET /info": return { mode: "standalone", version: "0.1.0-mock", grpc_address: "127.0.0.1:8081", started_at: started, auth_required: !!ak, listen: `127.0.0.1:${port}`, loopback_only: true };
    case "GET /cluster": return { name_server: "127.0.0.1:8081", brokers: [{ cluster: "DefaultCluster", broker_name: "broker-a", broker_id: 0, address: "127.0.0.1:8081", role: "async_master", version: "0.1.0", started_at: started, last_heartbeat: Date.now() - 1000, topics: topics.size, commitlog_max_offset: log.length * 200, replication_lag: 0 }] };
    case "GET /metrics": return { interval_ms: 2000, points };
    case "GET /topics": return [...topics.values()];
    case "POST /topics": {
      if (!body.name || !/^[A-Za-z0-9_%|-]{1,127}$/.test(body.name)) throw bad("name: invalid topic name");
      const t = { name: body.name, read_queues: body.read_queues ?? 8, write_queues: body.write_queues ?? 8, perm: body.perm ?? 6, message_type: body.message_type ?? "NORMAL" };
      topics.set(t.name, t);
      return [201, t];
    }
    case "GET /topics/*": return topicOr404(p[1]);
    case "PUT /topics/*": return Object.assign(topicOr404(p[1]), body);
    case "GET /topics/*/status": {
      const t = topicOr404(p[1]);
      return { topic: t.name, queues: Array.from({ length: t.read_queues }, (_, i) => ({ broker_name: "broker-a", queue_id: i, min_offset: 0, max_offset: maxOffset(t.name, i), last_store_timestamp: Date.now() })) };
    }
    case "GET /topics/*/route": {
      const t = topicOr404(p[1]);
      return { topic: t.name, queues: Array.from({ length: t.read_queues }, (_, i) => ({ broker_name: "broker-a", broker_id: 0, address: "127.0.0.1:8081", queue_id: i, perm: t.perm })) };
    }
    case "GET /groups": return [...groups.values()];
    case "POST /groups": {
      if (!body.name) throw bad("name: missing");
      const created = !groups.has(body.name);
      const g = { name: body.name, max_delivery_attempts: body.max_delivery_attempts ?? 17, fifo: !!body.fifo, consume_from: body.consume_from ?? "auto" };
      groups.set(g.name, g);
      return [201, { group: g, created }];
    }
    case "GET /groups/*/progress": if (!groups.has(p[1])) throw notFound(`group ${p[1]}`); return progress(p[1], q.get("topic"));
    case "GET /groups/*/members": return [];
    case "POST /groups/*/reset": {
      const t = topicOr404(body.topic);
      return Array.from({ length: t.read_queues }, (_, i) => {
        const k = `${p[1]}\0${t.name}\0${i}`;
        const old = offsets.get(k) ?? 0;
        const n = log.filter((m) => m.topic === t.name && m.queue_id === i && m.store_timestamp < body.timestamp).length;
        offsets.set(k, n);
        return { queue_id: i, old_offset: old, new_offset: n, broker_name: "broker-a" };
      });
    }
    case "POST /dev/*": /* consume */ for (let i = 0; i < 64; i++) offsets.set(`${body.group}\0${body.topic}\0${i}`, maxOffset(body.topic, i)); return {};
    case "GET /messages/by-key": return log.filter((m) => m.topic === q.get("topic") && m.keys.includes(q.get("key"))).map(view);
    case "GET /messages/by-id": { const r = log.filter((m) => m.message_id === p[2]); if (!r.length) throw notFound("no such message"); return r.map(view); }
    case "GET /messages/by-offset": {
      const m = log.find((m) => m.topic === q.get("topic") && m.queue_id === Number(q.get("queue")) && m.queue_offset === Number(q.get("offset")));
      if (!m) throw notFound("no message at that offset"); return view(m);
    }
    case "POST /messages/resend": return { resent: true };
    case "POST /produce": {
      const t = topicOr404(body.topic);
      if (typeof body.body !== "string") throw bad("body: expected a string");
      const queue_id = log.length % t.write_queues;
      const m = { topic: t.name, queue_id, queue_offset: maxOffset(t.name, queue_id), commitlog_offset: log.length * 200, message_id: createHash("md5").update(String(log.length)).digest("hex").slice(0, 32).toUpperCase(), offset_msg_id: "7F00000100001F91", tag: body.tag ?? null, keys: body.keys ?? [], properties: body.properties ?? {}, born_timestamp: Date.now(), store_timestamp: Date.now(), born_host: "127.0.0.1:1", store_host: "127.0.0.1:8081", reconsume_times: 0, size: 200, body: body.body };
      log.push(m);
      return { message_id: m.message_id, topic: m.topic, queue_id, offset: m.queue_offset };
    }
  }
  throw notFound(`no API at ${method} ${path}`);
}

function checkAuth(req) {
  if (!ak) return;
  const dt = req.headers["x-mq-date-time"] ?? "";
  const want = `MQv2-HMAC-SHA1 Credential=${ak}, SignedHeaders=x-mq-date-time, Signature=${createHmac("sha1", sk).update(dt).digest("hex")}`;
  if (req.headers.authorization !== want) throw new HttpError(401, "Unauthorized", "bad or missing signature");
}

const types = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css" };
createServer(async (req, res) => {
  const url = new URL(req.url, "http://x");
  if (url.pathname.startsWith("/api/")) {
    let chunks = "";
    for await (const c of req) chunks += c;
    try {
      if (url.pathname !== "/api/info") checkAuth(req);
      let out = await api(req.method, url.pathname, url.searchParams, chunks ? JSON.parse(chunks) : {});
      let status = 200;
      if (Array.isArray(out) && typeof out[0] === "number") [status, out] = out;
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(out));
    } catch (e) {
      const status = e.status ?? 400;
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify({ error: { kind: e.kind ?? "BadRequest", message: e.message } }));
    }
    return;
  }
  const file = join(dist, url.pathname);
  if (url.pathname !== "/" && existsSync(file) && file.startsWith(dist)) {
    res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" }).end(readFileSync(file));
  } else {
    res.writeHead(200, { "content-type": types[".html"] }).end(readFileSync(join(dist, "index.html")));
  }
}).listen(port, "127.0.0.1", () => console.log(`ready on 127.0.0.1:${port} (mock console: http://127.0.0.1:${port})`));
