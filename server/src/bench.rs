//! `orbitmq bench …`: load generators. Each prints a progress line to stderr every second and
//! ends with one JSON line on stdout (`msgs`, `msgs_per_sec`, `mib_per_sec`, `p50_us`, `p99_us`,
//! latency per request).
//!
//! - `bench store` appends through the real storage engine (the same append thread, flush and
//!   dispatch the broker uses), in-process.
//! - `bench produce` sends over the RocketMQ v2 gRPC protocol to a running server: normal, FIFO
//!   (a message group each) or delay (a delivery time each) messages.
//! - `bench consume` receives and acks from a running server as simple consumers do (pop), as a
//!   normal or a FIFO group; for delay messages it also reports how late they were delivered.

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::{Args, Subcommand, ValueEnum};
use orbitmq_core::protocol::admin::{self as pb, admin_client::AdminClient};
use orbitmq_core::protocol::time::{now_ms, timestamp_ms};
use orbitmq_core::protocol::v2::{self, messaging_service_client::MessagingServiceClient};
use orbitmq_core::storage::{FlushDiskType, MessageStore, PutMessage, StoreConfig};
use tonic::metadata::MetadataValue;

use crate::client_tls::TlsArgs;

const MIB: f64 = 1_048_576.0;

#[derive(Debug, Subcommand)]
pub enum Bench {
    /// Append messages through the storage engine and report msgs/s, MiB/s and latency.
    ///
    /// Example: orbitmq bench store --dir /tmp/bench --size 1024 --count 1000000 --flush sync
    Store(StoreArgs),
    /// Send messages to a running server over gRPC and report msgs/s, MiB/s and latency.
    ///
    /// Example: orbitmq bench produce --endpoints 127.0.0.1:8081 --topic bench --count 200000
    #[command(after_help = PRODUCE_EXAMPLES)]
    Produce(ProduceArgs),
    /// Receive and ack messages from a running server over gRPC (pop consumption, as simple
    /// consumers do) and report msgs/s and latency per receive.
    ///
    /// Example: orbitmq bench consume --endpoints 127.0.0.1:8081 --topic bench --count 200000
    #[command(after_help = CONSUME_EXAMPLES)]
    Consume(ConsumeArgs),
}

const PRODUCE_EXAMPLES: &str = "\
Examples:
  # 300 000 normal messages, 32 per request, 64 requests in flight
  orbitmq bench produce --endpoints 127.0.0.1:8081 --count 300000 --batch 32 --inflight 64
  # FIFO: message i gets message group bench-group-(i % 64); each group keeps one queue
  orbitmq bench produce --topic fifo-bench --message-type fifo --message-groups 64
  # Delay: each message is due 1 s after it is sent (it waits in the broker's timer)
  orbitmq bench produce --topic delay-bench --message-type delay --delay-ms 1000

The topic must accept the type: auto-created topics accept every type.
The result line adds \"message_type\" (and \"message_groups\" or \"delay_ms\").";

const CONSUME_EXAMPLES: &str = "\
Examples:
  # a fresh group starts at the first message of each queue
  orbitmq bench consume --endpoints 127.0.0.1:8081 --group c1 --count 300000
  # FIFO: creates group f1 as a FIFO group if it does not exist
  orbitmq bench produce --topic fifo-bench --message-type fifo --count 300000
  orbitmq bench consume --topic fifo-bench --group f1 --fifo --count 300000
  # delay messages: the result line adds how late they were delivered
  orbitmq bench produce --topic delay-bench --message-type delay --delay-ms 1000 --count 300000
  orbitmq bench consume --topic delay-bench --group d1 --count 300000

\"receives\" in the result line counts the receives that returned messages (msgs / receives:
messages per receive). For messages with a delivery time the result line adds \"delay_msgs\",
\"lateness_p50_ms\" and \"lateness_p99_ms\" (store time in the topic minus delivery time: how
late the timer fired them) and \"receive_lateness_p50_ms\"/\"receive_lateness_p99_ms\" (receive
time minus delivery time: includes any wait for the consumer, so only meaningful while consuming
keeps up).";

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// The server.
    #[arg(long, env = "ORBITMQ_ENDPOINTS", default_value = "127.0.0.1:8081")]
    endpoints: String,
    #[command(flatten)]
    tls: TlsArgs,
    /// Topic to consume.
    #[arg(long, default_value = "bench")]
    topic: String,
    /// Consumer group (offsets are kept per group: a new group starts at the beginning).
    #[arg(long, default_value = "bench-consumer")]
    group: String,
    /// Messages to consume in all.
    #[arg(long, default_value_t = 200_000)]
    count: u64,
    /// Concurrent receivers.
    #[arg(long, default_value_t = 16)]
    receivers: usize,
    /// gRPC connections the receivers share.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Consume as a FIFO group (one message per message group in flight, in order). The group
    /// is created as FIFO through the admin API if it does not exist, as `orbitmq admin group
    /// create --group G --fifo` does; an existing group that is not FIFO is an error (the bench
    /// never changes a group). Without --fifo the group is used as it is (a new one is
    /// auto-created, not FIFO).
    #[arg(long)]
    fifo: bool,
}

/// What every load shares.
#[derive(Debug, Clone, Args)]
pub struct Load {
    /// Body size of each message, bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Messages in all.
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// Messages per request.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Requests in flight at once (concurrent producers).
    #[arg(long, default_value_t = 64)]
    inflight: usize,
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Data directory (created if missing; appended to if not empty).
    #[arg(long)]
    dir: PathBuf,
    #[command(flatten)]
    load: Load,
    /// `async`: acknowledge once in the page cache, flush in the background; `sync`:
    /// acknowledge once durable (group commit).
    #[arg(long, default_value = "async")]
    flush: FlushDiskType,
    /// CommitLog segment size, bytes.
    #[arg(long, default_value_t = 1 << 30)]
    segment_size: usize,
    /// Queues the messages are spread over.
    #[arg(long, default_value_t = 8)]
    queues: u32,
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// The server.
    #[arg(long, env = "ORBITMQ_ENDPOINTS", default_value = "127.0.0.1:8081")]
    endpoints: String,
    #[command(flatten)]
    tls: TlsArgs,
    /// Topic to send to (created on first use when the server auto-creates topics).
    #[arg(long, default_value = "bench")]
    topic: String,
    /// gRPC connections the requests are spread over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    #[command(flatten)]
    load: Load,
    /// What to send: `normal`; `fifo` (`message_group` set, type FIFO: each group's messages go
    /// to one queue, in order); `delay` (`delivery_timestamp` set, type DELAY: the broker holds
    /// them until then).
    #[arg(long, value_enum, default_value_t = MessageKind::Normal)]
    message_type: MessageKind,
    /// With `--message-type fifo`: message groups, assigned round-robin (message i gets
    /// `bench-group-<i % N>`). [default: 64]
    #[arg(long, value_name = "N")]
    message_groups: Option<u32>,
    /// With `--message-type delay`: each message is due this long after its request is built,
    /// ms, at most 100 years (the broker refuses more than its maximum delay). [default: 1000]
    #[arg(long, value_name = "D", value_parser = clap::value_parser!(u64).range(..=MAX_DELAY_MS))]
    delay_ms: Option<u64>,
}

/// The largest `--delay-ms`: 100 years, far beyond any broker's limit, yet small enough that
/// "now + delay" stays a valid time.
const MAX_DELAY_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

/// The message types `bench produce` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MessageKind {
    /// Plain messages, spread over the queues by the server.
    Normal,
    /// Messages with a message group.
    Fifo,
    /// Messages with a delivery time.
    Delay,
}

impl MessageKind {
    fn name(self) -> &'static str {
        match self {
            MessageKind::Normal => "normal",
            MessageKind::Fifo => "fifo",
            MessageKind::Delay => "delay",
        }
    }
}

/// How `bench produce` fills in each message's system properties.
#[derive(Debug, Clone)]
enum Typing {
    Normal,
    /// Message i gets group `groups[i % len]`.
    Fifo {
        groups: Arc<[String]>,
    },
    /// Due this long after the request is built, ms.
    Delay {
        delay_ms: i64,
    },
}

impl Typing {
    fn from_args(args: &ProduceArgs) -> anyhow::Result<Typing> {
        let kind = args.message_type;
        anyhow::ensure!(
            args.message_groups.is_none() || kind == MessageKind::Fifo,
            "--message-groups only applies to --message-type fifo"
        );
        anyhow::ensure!(
            args.delay_ms.is_none() || kind == MessageKind::Delay,
            "--delay-ms only applies to --message-type delay"
        );
        Ok(match kind {
            MessageKind::Normal => Typing::Normal,
            MessageKind::Fifo => {
                let n = args.message_groups.unwrap_or(64);
                anyhow::ensure!(n > 0, "--message-groups must be > 0");
                Typing::Fifo { groups: (0..n).map(|g| format!("bench-group-{g}")).collect() }
            }
            MessageKind::Delay => {
                let d = args.delay_ms.unwrap_or(1000);
                Typing::Delay { delay_ms: i64::try_from(d).context("--delay-ms is too large")? }
            }
        })
    }

    /// The system properties of message `i`; `now_ms` is when its request is built.
    fn system_properties(&self, i: u64, now_ms: i64) -> v2::SystemProperties {
        let mut sys = v2::SystemProperties {
            message_id: format!("01BENCH{i:027X}"),
            message_type: v2::MessageType::Normal as i32,
            ..Default::default()
        };
        match self {
            Typing::Normal => {}
            Typing::Fifo { groups } => {
                sys.message_type = v2::MessageType::Fifo as i32;
                sys.message_group = Some(groups[(i % groups.len() as u64) as usize].clone());
            }
            Typing::Delay { delay_ms } => {
                let at = now_ms + delay_ms;
                sys.message_type = v2::MessageType::Delay as i32;
                sys.delivery_timestamp = Some(prost_types::Timestamp {
                    seconds: at.div_euclid(1000),
                    nanos: (at.rem_euclid(1000) * 1_000_000) as i32,
                });
            }
        }
        sys
    }

    /// What the result line adds about the messages.
    fn describe(&self, kind: MessageKind) -> Vec<(&'static str, serde_json::Value)> {
        let mut out = vec![("message_type", kind.name().into())];
        match self {
            Typing::Normal => {}
            Typing::Fifo { groups } => out.push(("message_groups", groups.len().into())),
            Typing::Delay { delay_ms } => out.push(("delay_ms", (*delay_ms).into())),
        }
        out
    }
}

pub fn run(bench: Bench) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
    match bench {
        Bench::Store(args) => rt.block_on(store(args)),
        Bench::Produce(args) => rt.block_on(produce(args)),
        Bench::Consume(args) => rt.block_on(consume(args)),
    }
}

fn body(size: usize) -> Bytes {
    Bytes::from((0..size).map(|i| b'a' + (i % 26) as u8).collect::<Vec<u8>>())
}

async fn store(args: StoreArgs) -> anyhow::Result<()> {
    let config = StoreConfig {
        segment_size: args.segment_size,
        flush_disk_type: args.flush,
        max_message_size: (args.load.size + 4096).min(args.segment_size / 2),
        ..StoreConfig::new(&args.dir)
    };
    let store = MessageStore::open(config)
        .with_context(|| format!("opening the store in {}", args.dir.display()))?;
    let body = body(args.load.size);
    let queues = u64::from(args.queues.max(1));
    let s = store.clone();
    let report = drive(&args.load, move |first, n| {
        let (store, body) = (s.clone(), body.clone());
        async move {
            let msgs: Vec<PutMessage> = (first..first + n)
                .map(|i| PutMessage::new("bench", (i % queues) as u32, body.clone()))
                .collect();
            store.put_batch(msgs).await?;
            Ok(())
        }
    })
    .await?;
    store.close().context("closing the store")?;
    report.print("store", &args.load, &[("flush", args.flush.to_string().into())])
}

type Client = MessagingServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>,
    >,
>;

#[allow(clippy::unnecessary_wraps)] // the signature tonic's interceptors have
fn with_client_id(mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    req.metadata_mut().insert("x-mq-client-id", MetadataValue::from_static("orbitmq-bench"));
    // As OrbitMQ's client SDK: the server sends it the CRC32 body digest it checks.
    req.metadata_mut().insert("x-mq-language", MetadataValue::from_static("RUST"));
    Ok(req)
}

async fn connect(
    endpoints: &str,
    tls: &TlsArgs,
    connections: usize,
) -> anyhow::Result<Arc<Vec<Client>>> {
    let mut clients: Vec<Client> = Vec::new();
    for _ in 0..connections.max(1) {
        let channel = tls
            .connect(endpoints, |e| {
                e.tcp_nodelay(true)
                    .initial_connection_window_size(16 << 20)
                    .initial_stream_window_size(4 << 20)
            })
            .await?;
        let interceptor: fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> =
            with_client_id;
        clients.push(MessagingServiceClient::with_interceptor(channel, interceptor));
    }
    Ok(Arc::new(clients))
}

/// `--fifo`: makes sure `group` is a FIFO group, creating it if it does not exist.
async fn ensure_fifo_group(endpoints: &str, tls: &TlsArgs, group: &str) -> anyhow::Result<()> {
    let mut admin = AdminClient::new(tls.connect(endpoints, |e| e).await?);
    let groups = admin
        .list_groups(pb::ListGroupsRequest {})
        .await
        .context("--fifo: listing consumer groups (the admin API of an orbitmq server)")?
        .into_inner()
        .groups;
    match groups.iter().find(|g| g.name == group) {
        Some(g) if g.fifo => Ok(()),
        Some(_) => anyhow::bail!(
            "--fifo: consumer group {group:?} exists and is not a FIFO group; use a new group \
             name, or make it FIFO with `orbitmq admin group create --group {group} --fifo`"
        ),
        None => {
            admin
                .create_group(pb::CreateGroupRequest {
                    name: group.to_owned(),
                    fifo: Some(true),
                    ..Default::default()
                })
                .await
                .with_context(|| format!("--fifo: creating FIFO consumer group {group:?}"))?;
            eprintln!("created FIFO consumer group {group:?}");
            Ok(())
        }
    }
}

/// How late delay messages were: (store time in the topic, receive time) minus delivery time,
/// ms, one pair per message that had a delivery time.
type Lateness = Arc<std::sync::Mutex<Vec<(i64, i64)>>>;

/// The `p` percentile of sorted `v`.
fn percentile_of(v: &[i64], p: f64) -> i64 {
    v.get(((v.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0)
}

/// One receive of up to 32 messages, 60 s invisible, polling 5 s at most: what to ack, and the
/// lateness of those that had a delivery time.
async fn receive_batch(
    client: &mut Client,
    group: &v2::Resource,
    topic: &v2::Resource,
) -> anyhow::Result<(Vec<v2::AckMessageEntry>, Vec<(i64, i64)>)> {
    let req = v2::ReceiveMessageRequest {
        group: Some(group.clone()),
        message_queue: Some(v2::MessageQueue { topic: Some(topic.clone()), ..Default::default() }),
        batch_size: 32,
        invisible_duration: Some(prost_types::Duration { seconds: 60, nanos: 0 }),
        long_polling_timeout: Some(prost_types::Duration { seconds: 5, nanos: 0 }),
        ..Default::default()
    };
    let mut stream = client.receive_message(req).await?.into_inner();
    let mut entries = Vec::new();
    let mut lates = Vec::new();
    while let Some(item) = stream.message().await? {
        if let Some(v2::receive_message_response::Content::Message(m)) = item.content {
            let sys = m.system_properties.unwrap_or_default();
            if let Some(at) = sys.delivery_timestamp.as_ref().map(timestamp_ms) {
                let stored = sys.store_timestamp.as_ref().map_or(at, timestamp_ms);
                lates.push((stored - at, now_ms() - at));
            }
            entries.push(v2::AckMessageEntry {
                message_id: sys.message_id,
                receipt_handle: sys.receipt_handle.unwrap_or_default(),
                lite_topic: None,
            });
        }
    }
    Ok((entries, lates))
}

/// Adds the lateness percentiles of delay messages to a consume result (nothing if none).
fn add_lateness(result: &mut serde_json::Value, late: Vec<(i64, i64)>) {
    if late.is_empty() {
        return;
    }
    let (mut stored, mut received): (Vec<i64>, Vec<i64>) = late.into_iter().unzip();
    stored.sort_unstable();
    received.sort_unstable();
    result["delay_msgs"] = stored.len().into();
    result["lateness_p50_ms"] = percentile_of(&stored, 0.50).into();
    result["lateness_p99_ms"] = percentile_of(&stored, 0.99).into();
    result["receive_lateness_p50_ms"] = percentile_of(&received, 0.50).into();
    result["receive_lateness_p99_ms"] = percentile_of(&received, 0.99).into();
}

async fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    if args.fifo {
        ensure_fifo_group(&args.endpoints, &args.tls, &args.group).await?;
    }
    let clients = connect(&args.endpoints, &args.tls, args.connections).await?;
    let resource =
        |name: &str| v2::Resource { resource_namespace: String::new(), name: name.to_owned() };
    let (group, topic) = (resource(&args.group), resource(&args.topic));
    // Each "call" of the driver is one receive of up to 32 messages plus one ack of them all;
    // the driver counts calls, so the message count is tallied separately.
    let consumed = Arc::new(AtomicU64::new(0));
    let lateness: Lateness = Arc::default();
    let load = Load { size: 1024, count: u64::MAX, batch: 1, inflight: args.receivers };
    let (target, c, late) = (args.count, Arc::clone(&consumed), Arc::clone(&lateness));
    let start = Instant::now();
    let done_at: Arc<std::sync::OnceLock<Duration>> = Arc::default();
    let d = Arc::clone(&done_at);
    let report = drive_until(&load, move |first, _| {
        let mut client = clients[first as usize % clients.len()].clone();
        let (group, topic, consumed) = (group.clone(), topic.clone(), Arc::clone(&c));
        let (finished, late) = (Arc::clone(&d), Arc::clone(&late));
        async move {
            if consumed.load(Ordering::Relaxed) >= target {
                return Ok(None);
            }
            let (entries, lates) = receive_batch(&mut client, &group, &topic).await?;
            if entries.is_empty() {
                let so_far = consumed.load(Ordering::Relaxed);
                if so_far >= target {
                    return Ok(None);
                }
                anyhow::bail!("no message within 5 s after {so_far} of {target} consumed");
            }
            if !lates.is_empty() {
                late.lock().unwrap_or_else(PoisonError::into_inner).extend(lates);
            }
            let n = entries.len() as u64;
            client
                .ack_message(v2::AckMessageRequest {
                    group: Some(group),
                    topic: Some(topic),
                    entries,
                })
                .await?;
            if consumed.fetch_add(n, Ordering::Relaxed) + n >= target {
                // The last receivers may still be long-polling: the clock stops here.
                finished.get_or_init(|| start.elapsed());
            }
            Ok(Some(n))
        }
    })
    .await?;
    let msgs = consumed.load(Ordering::Relaxed);
    let secs = done_at.get().copied().unwrap_or_else(|| start.elapsed()).as_secs_f64();
    let mut result = serde_json::json!({
        "bench": "consume",
        "topic": args.topic,
        "receivers": args.receivers,
        "msgs": msgs,
        "receives": report.latencies_us.len(),
        "secs": (secs * 1000.0).round() / 1000.0,
        "msgs_per_sec": (msgs as f64 / secs).round(),
        "p50_us": report.percentile(0.50),
        "p99_us": report.percentile(0.99),
    });
    if args.fifo {
        result["fifo"] = true.into();
    }
    let late = std::mem::take(&mut *lateness.lock().unwrap_or_else(PoisonError::into_inner));
    add_lateness(&mut result, late);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{result}")?;
    Ok(())
}

async fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    let typing = Typing::from_args(&args)?;
    let clients = connect(&args.endpoints, &args.tls, args.connections).await?;
    let body = body(args.load.size);
    let topic = v2::Resource { resource_namespace: String::new(), name: args.topic.clone() };
    let t = typing.clone();
    let report = drive(&args.load, move |first, n| {
        let mut client = clients[(first as usize / 7) % clients.len()].clone();
        let now = if matches!(t, Typing::Delay { .. }) { now_ms() } else { 0 };
        let messages = (first..first + n)
            .map(|i| v2::Message {
                topic: Some(topic.clone()),
                user_properties: std::collections::HashMap::new(),
                system_properties: Some(t.system_properties(i, now)),
                body: body.clone(),
            })
            .collect();
        async move {
            let resp = client.send_message(v2::SendMessageRequest { messages }).await?;
            let status = resp.into_inner().status.unwrap_or_default();
            anyhow::ensure!(
                status.code == v2::Code::Ok as i32,
                "send failed: {} {}",
                status.code,
                status.message
            );
            Ok(())
        }
    })
    .await?;
    let mut extra = vec![("topic", args.topic.into())];
    extra.extend(typing.describe(args.message_type));
    report.print("produce", &args.load, &extra)
}

/// The outcome of a load.
struct Report {
    msgs: u64,
    secs: f64,
    latencies_us: Vec<u64>,
}

impl Report {
    fn percentile(&self, p: f64) -> u64 {
        let l = &self.latencies_us;
        l.get(((l.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0)
    }

    fn print(
        &self,
        bench: &str,
        load: &Load,
        extra: &[(&str, serde_json::Value)],
    ) -> anyhow::Result<()> {
        let mut result = serde_json::json!({
            "bench": bench,
            "size": load.size,
            "batch": load.batch,
            "inflight": load.inflight,
            "msgs": self.msgs,
            "secs": (self.secs * 1000.0).round() / 1000.0,
            "msgs_per_sec": (self.msgs as f64 / self.secs).round(),
            "mib_per_sec": (self.msgs as f64 * load.size as f64 / MIB / self.secs * 10.0).round() / 10.0,
            "p50_us": self.percentile(0.50),
            "p99_us": self.percentile(0.99),
        });
        for (k, v) in extra {
            result[*k] = v.clone();
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{result}")?;
        Ok(())
    }
}

/// Runs `op(first, n)` for batches of `load.batch` message numbers until `load.count`, with
/// `load.inflight` calls at once; prints progress each second; times each call.
async fn drive<F, Fut>(load: &Load, op: F) -> anyhow::Result<Report>
where
    F: Fn(u64, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    drive_until(load, move |first, n| {
        let fut = op(first, n);
        async move { fut.await.map(|()| Some(n)) }
    })
    .await
}

/// [`drive`] for operations that say how many messages they handled, or `None` to stop.
async fn drive_until<F, Fut>(load: &Load, op: F) -> anyhow::Result<Report>
where
    F: Fn(u64, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<Option<u64>>> + Send,
{
    anyhow::ensure!(
        load.size > 0 && load.batch > 0 && load.inflight > 0,
        "--size, --batch and --inflight must be > 0"
    );
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(load.inflight);
    for _ in 0..load.inflight {
        let (op, next, done) = (op.clone(), Arc::clone(&next), Arc::clone(&done));
        let (count, batch) = (load.count, load.batch as u64);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                if first >= count {
                    break;
                }
                let n = batch.min(count - first);
                let t = Instant::now();
                let Some(handled) = op(first, n).await? else { break };
                latencies.push(t.elapsed().as_micros() as u64);
                done.fetch_add(handled, Ordering::Relaxed);
            }
            anyhow::Ok(latencies)
        }));
    }
    let progress = {
        let done = Arc::clone(&done);
        let size = load.size as f64;
        tokio::spawn(async move {
            let mut last = 0;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = done.load(Ordering::Relaxed);
                let rate = (now - last) as f64;
                eprintln!(
                    "[{:>5.1}s] {now} msgs, {rate:.0} msgs/s, {:.1} MiB/s",
                    start.elapsed().as_secs_f64(),
                    rate * size / MIB
                );
                last = now;
            }
        })
    };
    let mut latencies_us = Vec::new();
    let mut failure = None;
    for t in tasks {
        match t.await.context("bench task panicked")? {
            Ok(l) => latencies_us.extend(l),
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    progress.abort();
    if let Some(e) = failure {
        return Err(e);
    }
    latencies_us.sort_unstable();
    Ok(Report {
        msgs: done.load(Ordering::Relaxed),
        secs: start.elapsed().as_secs_f64(),
        latencies_us,
    })
}
