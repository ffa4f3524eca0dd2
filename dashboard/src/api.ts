// The JSON API client (docs/DASHBOARD.md): typed answers, errors as ApiError, requests signed
// with the access key and secret kept in sessionStorage when the server needs credentials.
import { hmacSha1Hex } from "./sha1";

export interface Info {
  mode: "standalone" | "broker" | "namesrv";
  version: string;
  grpc_address: string;
  started_at: number;
  auth_required: boolean;
  listen: string;
  loopback_only: boolean;
}

export interface Broker {
  cluster: string;
  broker_name: string;
  broker_id: number;
  address: string;
  role: string;
  version: string;
  started_at: number;
  last_heartbeat: number;
  topics: number;
  commitlog_max_offset: number;
  replication_lag: number;
}

export interface ClusterInfo {
  name_server: string;
  brokers: Broker[];
}

export interface MetricsPoint {
  t: number;
  in_per_s: number;
  out_per_s: number;
  disk_bytes: number;
}

export interface Metrics {
  interval_ms: number;
  points: MetricsPoint[];
}

export const MESSAGE_TYPES = ["NORMAL", "FIFO", "DELAY", "TRANSACTION"] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

export interface TopicConfig {
  name: string;
  read_queues: number;
  write_queues: number;
  perm: number;
  message_type: MessageType | string;
}

export interface TopicUpdate {
  read_queues?: number;
  write_queues?: number;
  perm?: number;
  message_type?: string;
}

export interface TopicCreate extends TopicUpdate {
  name: string;
}

export interface QueueStatus {
  broker_name: string;
  queue_id: number;
  min_offset: number;
  max_offset: number;
  last_store_timestamp: number;
}

export interface TopicStatus {
  topic: string;
  queues: QueueStatus[];
}

export interface RouteQueue {
  broker_name: string;
  broker_id: number;
  address: string;
  queue_id: number;
  /** What the route allows: "RW", "R", "W" or "-" (a topic's perm is the number, 6/4/2). */
  perm: string;
}

export interface TopicRoute {
  topic: string;
  queues: RouteQueue[];
}

export const CONSUME_FROM = ["auto", "first", "last"] as const;

export interface Group {
  name: string;
  max_delivery_attempts: number;
  fifo: boolean;
  consume_from: string;
}

export interface GroupCreate {
  name: string;
  fifo?: boolean;
  max_delivery_attempts?: number;
  consume_from?: string;
}

export interface GroupCreated {
  group: Group;
  created: boolean;
}

export interface QueueProgress {
  topic: string;
  broker_name: string;
  queue_id: number;
  broker_offset: number;
  consumer_offset: number;
  lag: number;
}

export interface GroupProgress {
  group: string;
  queues: QueueProgress[];
  total_lag: number;
  dead_letters: number;
  inflight: number;
}

export interface Member {
  client_id: string;
  client_type: string;
  language: string;
  version: string;
  host: string;
  last_seen: number;
  topics: string[];
}

export interface ResetResult {
  queue_id: number;
  old_offset: number;
  new_offset: number;
  broker_name: string;
}

export interface MessageBody {
  size: number;
  text: string | null;
  hex: string | null;
  truncated: boolean;
}

export interface Message {
  topic: string;
  queue_id: number;
  queue_offset: number;
  commitlog_offset: number;
  /** The broker group storing it: each broker of a topic has its own queues. */
  broker_name: string;
  message_id: string;
  offset_msg_id: string;
  tag: string | null;
  keys: string[];
  properties: Record<string, string>;
  born_timestamp: number;
  store_timestamp: number;
  born_host: string;
  store_host: string;
  reconsume_times: number;
  size: number;
  body: MessageBody;
}

export interface ProduceRequest {
  topic: string;
  body: string;
  tag?: string;
  keys?: string[];
  properties?: Record<string, string>;
}

export interface Receipt {
  message_id: string;
  topic: string;
  queue_id: number;
  offset: number;
}

/** An error answer of the API (`{"error":{"kind","message"}}`), or a network failure (kind "Network"). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly kind: string,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export interface Credentials {
  accessKey: string;
  secretKey: string;
}

const CRED_KEY = "orbitmq.credentials";

export function loadCredentials(): Credentials | null {
  try {
    const raw = sessionStorage.getItem(CRED_KEY);
    if (!raw) return null;
    const c = JSON.parse(raw) as Credentials;
    return c.accessKey && c.secretKey ? c : null;
  } catch {
    return null;
  }
}

export function saveCredentials(c: Credentials | null): void {
  if (c) sessionStorage.setItem(CRED_KEY, JSON.stringify(c));
  else sessionStorage.removeItem(CRED_KEY);
}

/** `yyyyMMddTHHmmssZ` in UTC. */
export function mqDateTime(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return (
    `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}` +
    `T${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`
  );
}

export async function signHeaders(c: Credentials, now = new Date()): Promise<Record<string, string>> {
  const dateTime = mqDateTime(now);
  const signature = await hmacSha1Hex(c.secretKey, dateTime);
  return {
    "x-mq-date-time": dateTime,
    authorization: `MQv2-HMAC-SHA1 Credential=${c.accessKey}, SignedHeaders=x-mq-date-time, Signature=${signature}`,
  };
}

/** Called on a 401 (the main module asks for the keys again). */
let onUnauthorized: (e: ApiError) => void = () => {};
export function setUnauthorizedHandler(f: (e: ApiError) => void): void {
  onUnauthorized = f;
}

type Query = Record<string, string | number | boolean | undefined>;

function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

const seg = encodeURIComponent;

async function request(method: string, path: string, body?: unknown, query?: Query): Promise<Response> {
  const headers: Record<string, string> = { accept: "application/json" };
  const creds = loadCredentials();
  if (creds && path !== "/api/info") Object.assign(headers, await signHeaders(creds));
  if (body !== undefined) headers["content-type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(withQuery(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, "Network", `the console's server did not answer (${String(e)})`);
  }
  if (!res.ok) {
    let kind = `HTTP ${res.status}`;
    let message = res.statusText || "request failed";
    try {
      const j = (await res.json()) as { error?: { kind?: string; message?: string } };
      if (j.error) {
        kind = j.error.kind ?? kind;
        message = j.error.message ?? message;
      }
    } catch {
      // not JSON: keep the status line
    }
    const err = new ApiError(res.status, kind, message);
    if (res.status === 401) onUnauthorized(err);
    throw err;
  }
  return res;
}

async function json<T>(method: string, path: string, body?: unknown, query?: Query): Promise<T> {
  const res = await request(method, path, body, query);
  return (await res.json()) as T;
}

export const api = {
  info: () => json<Info>("GET", "/api/info"),
  cluster: () => json<ClusterInfo>("GET", "/api/cluster"),
  metrics: () => json<Metrics>("GET", "/api/metrics"),

  topics: (system = false) => json<TopicConfig[]>("GET", "/api/topics", undefined, { system: system || undefined }),
  createTopic: (t: TopicCreate) => json<TopicConfig>("POST", "/api/topics", t),
  topic: (name: string) => json<TopicConfig>("GET", `/api/topics/${seg(name)}`),
  updateTopic: (name: string, u: TopicUpdate) => json<TopicConfig>("PUT", `/api/topics/${seg(name)}`, u),
  topicStatus: (name: string) => json<TopicStatus>("GET", `/api/topics/${seg(name)}/status`),
  topicRoute: (name: string) => json<TopicRoute>("GET", `/api/topics/${seg(name)}/route`),

  groups: () => json<Group[]>("GET", "/api/groups"),
  createGroup: (g: GroupCreate) => json<GroupCreated>("POST", "/api/groups", g),
  groupProgress: (group: string, topic?: string) =>
    json<GroupProgress>("GET", `/api/groups/${seg(group)}/progress`, undefined, { topic }),
  groupMembers: (group: string) => json<Member[]>("GET", `/api/groups/${seg(group)}/members`),
  resetGroup: (group: string, topic: string, timestamp: number) =>
    json<ResetResult[]>("POST", `/api/groups/${seg(group)}/reset`, { topic, timestamp }),

  messageById: (id: string) => json<Message[]>("GET", `/api/messages/by-id/${seg(id)}`),
  messagesByKey: (topic: string, key: string, max?: number) =>
    json<Message[]>("GET", "/api/messages/by-key", undefined, { topic, key, max }),
  messageByOffset: (topic: string, queue: number, offset: number, broker?: string) =>
    json<Message>("GET", "/api/messages/by-offset", undefined, { topic, queue, offset, broker }),
  resend: (group: string, topic: string, message_id: string) =>
    json<{ resent: boolean }>("POST", "/api/messages/resend", { group, topic, message_id }),
  produce: (p: ProduceRequest) => json<Receipt>("POST", "/api/produce", p),

  bodyUrl: (m: Message) =>
    withQuery("/api/messages/body", { topic: m.topic, queue: m.queue_id, offset: m.queue_offset, broker: m.broker_name }),
  /** The whole body as a Blob (signed like every call, so it works when credentials are needed). */
  bodyBlob: async (m: Message): Promise<Blob> =>
    (await request("GET", "/api/messages/body", undefined, { topic: m.topic, queue: m.queue_id, offset: m.queue_offset, broker: m.broker_name })).blob(),
};
