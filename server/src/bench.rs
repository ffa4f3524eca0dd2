//! `orbitmq bench …`: load generators. Each prints a progress line to stderr every second and
//! ends with one JSON line on stdout (`msgs`, `msgs_per_sec`, `p50_us`, `p99_us`, …).
//!
//! - `bench store` appends through the real storage engine (the same append thread, flush and
//!   dispatch the broker uses), in-process.
//! - `bench produce` sends to a running server through the Rust client SDK's [`Producer`]:
//!   normal, FIFO (a message group per request) or delay (a delivery time each) messages.
//! - `bench consume` receives and acks from a running server through the SDK's
//!   [`SimpleConsumer`] (pop), as a normal or a FIFO group; for delay messages it also reports
//!   how late they were delivered.
//! - `bench e2e` sends at a steady rate and receives at the same time: the latency from send to
//!   receive of each message.
//!
//! Latencies go into HDR histograms (3 significant digits): exact enough for percentiles, in
//! constant memory whatever the count.

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use bytes::Bytes;
use clap::{Args, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use orbitmq_core::client::{
    self as sdk, Admin, ClientConfig, ClientTls, ErrorKind, FilterExpression, GroupOptions,
    Message, MessageView, Producer, SimpleConsumer,
};
use orbitmq_core::protocol::time::now_ms;
use orbitmq_core::storage::{FlushDiskType, MessageStore, PutMessage, StoreConfig};

use crate::client_tls::TlsArgs;
use crate::credentials::{self, CredentialArgs};

const MIB: f64 = 1_048_576.0;

#[derive(Debug, Subcommand)]
pub enum Bench {
    /// Append messages through the storage engine and report msgs/s, MiB/s and latency.
    ///
    /// Example: orbitmq bench store --dir /tmp/bench --size 1024 --count 1000000 --flush sync
    #[command(after_help = STORE_EXAMPLES)]
    Store(StoreArgs),
    /// Send messages to a running server with the Rust SDK's producer and report msgs/s, MiB/s
    /// and latency per request.
    ///
    /// Example: orbitmq bench produce --endpoints 127.0.0.1:8081 --topic bench --count 200000
    #[command(after_help = PRODUCE_EXAMPLES)]
    Produce(ProduceArgs),
    /// Receive and ack messages from a running server with the Rust SDK's simple consumer (pop
    /// consumption) and report msgs/s and latency per receive.
    ///
    /// Example: orbitmq bench consume --endpoints 127.0.0.1:8081 --topic bench --count 200000
    #[command(after_help = CONSUME_EXAMPLES)]
    Consume(ConsumeArgs),
    /// Send at a steady rate and receive at the same time (Rust SDK producer and simple
    /// consumer): the latency from send to receive of each message.
    ///
    /// Example: orbitmq bench e2e --endpoints 127.0.0.1:8081 --rate 10000 --count 100000
    #[command(after_help = E2E_EXAMPLES)]
    E2e(E2eArgs),
}

const STORE_EXAMPLES: &str = "\
Example:
  orbitmq bench store --dir /tmp/bench --size 1024 --count 1000000 --batch 32 --flush sync

The result line (JSON, stdout):
  msgs          messages appended
  msgs_per_sec  msgs / secs (wall clock of the whole run)
  mib_per_sec   body bytes per second, MiB
  p50_us/p99_us latency of one put_batch call (--batch messages), microseconds: the median and
                the 99th percentile, from an HDR histogram (3 significant digits)";

const PRODUCE_EXAMPLES: &str = "\
Examples:
  # 300 000 normal messages, 32 per request, 64 requests in flight
  orbitmq bench produce --endpoints 127.0.0.1:8081 --count 300000 --batch 32 --inflight 64
  # one message per request (Producer::send), as most applications send
  orbitmq bench produce --endpoints 127.0.0.1:8081 --count 300000 --batch 1 --inflight 64
  # FIFO: request j gets message group bench-group-(j % 64); each group keeps one queue
  orbitmq bench produce --topic fifo-bench --message-type fifo --message-groups 64
  # Delay: each message is due 1 s after it is sent (it waits in the broker's timer)
  orbitmq bench produce --topic delay-bench --message-type delay --delay-ms 1000

Each request is one Producer::send_batch (Producer::send with --batch 1) of the Rust SDK;
--connections producers (each its own gRPC connection) share the --inflight senders.
The topic must accept the type: auto-created topics accept every type.

The result line (JSON, stdout):
  msgs          messages sent (and acknowledged by the server)
  msgs_per_sec  msgs / secs (wall clock of the whole run)
  mib_per_sec   body bytes per second, MiB
  p50_us/p99_us latency of one request, from the SDK call to its answer, microseconds: the
                median and the 99th percentile, from an HDR histogram (3 significant digits)
It adds \"message_type\" (and \"message_groups\" or \"delay_ms\").";

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

Each receiver loops: SimpleConsumer::receive(32 messages, 60 s invisible, 5 s long poll), then
one SimpleConsumer::ack_batch of what it got (one AckMessage request).

The result line (JSON, stdout):
  msgs          messages received and acked
  msgs_per_sec  msgs / secs (until the last message was acked)
  receives      receives that returned messages (msgs / receives: messages per receive)
  p50_us/p99_us latency of one receive plus its ack, microseconds (HDR histogram)
For messages with a delivery time it adds \"delay_msgs\", \"lateness_p50_ms\" and
\"lateness_p99_ms\" (store time in the topic minus delivery time: how late the timer fired them)
and \"receive_lateness_p50_ms\"/\"receive_lateness_p99_ms\" (receive time minus delivery time:
includes any wait for the consumer, so only meaningful while consuming keeps up).";

const E2E_EXAMPLES: &str = "\
Examples:
  # 10 000 msgs/s for 10 s, 4 receivers
  orbitmq bench e2e --endpoints 127.0.0.1:8081 --rate 10000 --count 100000
  # what latency does a light load see?
  orbitmq bench e2e --rate 100 --count 2000 --receivers 1

One producer sends one message per request (Producer::send) at --rate messages per second
(at most --inflight sends in flight); each message carries its send time in microseconds (user
property bench-sent-us) and this run's id. --receivers loops of SimpleConsumer::receive(32)
plus ack_batch take them; messages of earlier runs still in the topic are acked and skipped
(\"stale_msgs\"). Use a fresh topic, or the same group each run, to not wade through old ones.

The result line (JSON, stdout):
  msgs          messages of this run received (= --count)
  msgs_per_sec  msgs / secs (first send to last receive): the rate reached
  p50_us, p99_us, p999_us, max_us
                receive time minus send time of each message, microseconds: median, 99th and
                99.9th percentile and maximum (HDR histogram, 3 significant digits). Sender and
                receiver share this machine's clock.
  send_p50_us/send_p99_us  latency of one send";

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// The server.
    #[arg(long, env = "ORBITMQ_ENDPOINTS", default_value = "127.0.0.1:8081")]
    endpoints: String,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    creds: CredentialArgs,
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
    /// Simple consumer handles the receivers share (each its own gRPC connection).
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
    #[command(flatten)]
    creds: CredentialArgs,
    /// Topic to send to (created on first use when the server auto-creates topics).
    #[arg(long, default_value = "bench")]
    topic: String,
    /// Producer handles the requests are spread over (each its own gRPC connection).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    #[command(flatten)]
    load: Load,
    /// What to send: `normal`; `fifo` (a message group set, type FIFO: each group's messages
    /// go to one queue, in order); `delay` (a delivery time set, type DELAY: the broker holds
    /// them until then).
    #[arg(long, value_enum, default_value_t = MessageKind::Normal)]
    message_type: MessageKind,
    /// With `--message-type fifo`: message groups, assigned round-robin per request (the SDK
    /// sends a FIFO batch to one group: request j gets `bench-group-<j % N>`). [default: 64]
    #[arg(long, value_name = "N")]
    message_groups: Option<u32>,
    /// With `--message-type delay`: each message is due this long after its request is built,
    /// ms, at most 100 years (the broker refuses more than its maximum delay). [default: 1000]
    #[arg(long, value_name = "D", value_parser = clap::value_parser!(u64).range(..=MAX_DELAY_MS))]
    delay_ms: Option<u64>,
}

#[derive(Debug, Args)]
pub struct E2eArgs {
    /// The server.
    #[arg(long, env = "ORBITMQ_ENDPOINTS", default_value = "127.0.0.1:8081")]
    endpoints: String,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    creds: CredentialArgs,
    /// Topic to send to and receive from.
    #[arg(long, default_value = "bench-e2e")]
    topic: String,
    /// Consumer group.
    #[arg(long, default_value = "bench-e2e")]
    group: String,
    /// Messages sent per second (one per request), spread evenly over each second.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Messages in all.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Body size of each message, bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Sends in flight at most (a slower server makes the rate fall short, not pile up).
    #[arg(long, default_value_t = 256)]
    inflight: usize,
    /// Concurrent receivers (one simple consumer).
    #[arg(long, default_value_t = 4)]
    receivers: usize,
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

/// How `bench produce` types each message.
#[derive(Debug, Clone)]
enum Typing {
    Normal,
    /// Request j gets group `groups[j % len]`.
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

    /// A message of request number `request`; `now_ms` is when its request is built.
    fn message(&self, topic: &str, body: Bytes, request: u64, now_ms: i64) -> Message {
        let mut m = Message::new(topic, body);
        match self {
            Typing::Normal => {}
            Typing::Fifo { groups } => {
                m.message_group = Some(groups[(request % groups.len() as u64) as usize].clone());
            }
            Typing::Delay { delay_ms } => m.delivery_timestamp = Some(now_ms + delay_ms),
        }
        m
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
        Bench::E2e(args) => rt.block_on(e2e(args)),
    }
}

fn body(size: usize) -> Bytes {
    Bytes::from((0..size).map(|i| b'a' + (i % 26) as u8).collect::<Vec<u8>>())
}

/// An empty histogram of microseconds, 3 significant digits, growing as needed.
fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new(3).map_err(|e| anyhow!("creating a latency histogram: {e:?}"))
}

/// Records `us` in `h`, growing it as needed. (`saturating_record` would clamp to the
/// histogram's current top instead of growing it.)
fn record(h: &mut Histogram<u64>, us: u64) {
    if h.record(us).is_err() {
        h.saturating_record(us);
    }
}

/// The value at quantile `q` (0 when empty).
fn quantile(h: &Histogram<u64>, q: f64) -> u64 {
    if h.is_empty() { 0 } else { h.value_at_quantile(q) }
}

/// Microseconds since the Unix epoch.
fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
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

/// The SDK configuration for `--endpoints` (`HOST:PORT`, `;`-separated, or an `https://` URL,
/// which implies TLS) and the TLS flags.
fn client_config(
    endpoints: &str,
    tls: &TlsArgs,
    creds: &CredentialArgs,
) -> anyhow::Result<ClientConfig> {
    let https = endpoints.starts_with("https://");
    let list = endpoints.trim_start_matches("https://").trim_start_matches("http://");
    let mut config =
        ClientConfig::new(list).tls(ClientTls::from_flags(tls.tls || https, tls.tls_ca.clone()));
    config.credentials = creds.credentials()?;
    config.validate().map_err(|e| anyhow!("invalid --endpoints {endpoints:?}: {e}"))?;
    Ok(config)
}

/// An SDK error as the bench reports it: an unreachable server gets the TLS hint.
fn sdk_error(e: &sdk::Error, config: &ClientConfig, tls: &TlsArgs) -> anyhow::Error {
    let over = if matches!(config.tls, ClientTls::Off) { "" } else { " over TLS" };
    if matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout) {
        anyhow!("cannot reach orbitmq at {}{over}: {e} ({})", config.endpoints, tls.hint())
    } else if e.kind() == ErrorKind::Unauthorized {
        anyhow!("{e} ({})", credentials::hint(config.credentials.is_some()))
    } else {
        anyhow!("{e}")
    }
}

/// `connections` started producers, the routes of `topic` fetched.
async fn producers(
    config: &ClientConfig,
    tls: &TlsArgs,
    topic: &str,
    connections: usize,
) -> anyhow::Result<Vec<Producer>> {
    let mut out = Vec::new();
    for _ in 0..connections.max(1) {
        let p = Producer::builder(config.clone()).topics([topic]).build()?;
        p.start().await.map_err(|e| sdk_error(&e, config, tls))?;
        out.push(p);
    }
    Ok(out)
}

/// `connections` started simple consumers of `group` subscribed to all of `topic`, each
/// receive long-polling 5 s at most.
async fn consumers(
    config: &ClientConfig,
    tls: &TlsArgs,
    group: &str,
    topic: &str,
    connections: usize,
) -> anyhow::Result<Vec<SimpleConsumer>> {
    let mut out = Vec::new();
    for _ in 0..connections.max(1) {
        let c = SimpleConsumer::builder(config.clone(), group)
            .subscribe(topic, FilterExpression::all())
            .await_duration(Duration::from_secs(5))
            .build()?;
        c.start().await.map_err(|e| sdk_error(&e, config, tls))?;
        out.push(c);
    }
    Ok(out)
}

/// `--fifo`: makes sure `group` is a FIFO group, creating it if it does not exist.
async fn ensure_fifo_group(
    config: &ClientConfig,
    tls: &TlsArgs,
    group: &str,
) -> anyhow::Result<()> {
    let admin = Admin::new(config.clone())?;
    let groups = admin.list_groups().await.map_err(|e| {
        sdk_error(&e, config, tls)
            .context("--fifo: listing consumer groups (the admin API of an orbitmq server)")
    })?;
    match groups.iter().find(|g| g.name == group) {
        Some(g) if g.fifo => Ok(()),
        Some(_) => anyhow::bail!(
            "--fifo: consumer group {group:?} exists and is not a FIFO group; use a new group \
             name, or make it FIFO with `orbitmq admin group create --group {group} --fifo`"
        ),
        None => {
            admin
                .create_group(group, GroupOptions { fifo: Some(true), ..Default::default() })
                .await
                .with_context(|| format!("--fifo: creating FIFO consumer group {group:?}"))?;
            eprintln!("created FIFO consumer group {group:?}");
            Ok(())
        }
    }
}

/// How late delay messages were: (store time in the topic, receive time) minus delivery time,
/// ms, one pair per message that had a delivery time.
type Lateness = Arc<Mutex<Vec<(i64, i64)>>>;

/// The `p` percentile of sorted `v`.
fn percentile_of(v: &[i64], p: f64) -> i64 {
    v.get(((v.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0)
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

/// The lateness of the delay messages among `messages`.
fn lateness_of(messages: &[MessageView]) -> Vec<(i64, i64)> {
    let now = now_ms();
    messages
        .iter()
        .filter_map(|m| {
            let at = m.delivery_timestamp?;
            let stored = if m.store_timestamp > 0 { m.store_timestamp } else { at };
            Some((stored - at, now - at))
        })
        .collect()
}

async fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    let config = client_config(&args.endpoints, &args.tls, &args.creds)?;
    if args.fifo {
        ensure_fifo_group(&config, &args.tls, &args.group).await?;
    }
    let consumers =
        consumers(&config, &args.tls, &args.group, &args.topic, args.connections).await?;
    let handles = consumers.clone();
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
        let handle = handles[first as usize % handles.len()].clone();
        let (consumed, finished, late) = (Arc::clone(&c), Arc::clone(&d), Arc::clone(&late));
        async move {
            if consumed.load(Ordering::Relaxed) >= target {
                return Ok(None);
            }
            let messages = handle.receive(32, Duration::from_secs(60)).await?;
            if messages.is_empty() {
                let so_far = consumed.load(Ordering::Relaxed);
                if so_far >= target {
                    return Ok(None);
                }
                anyhow::bail!("no message within 5 s after {so_far} of {target} consumed");
            }
            let lates = lateness_of(&messages);
            if !lates.is_empty() {
                late.lock().unwrap_or_else(PoisonError::into_inner).extend(lates);
            }
            handle.ack_batch(&messages).await?;
            let n = messages.len() as u64;
            if consumed.fetch_add(n, Ordering::Relaxed) + n >= target {
                // The last receivers may still be long-polling: the clock stops here.
                finished.get_or_init(|| start.elapsed());
            }
            Ok(Some(n))
        }
    })
    .await?;
    for c in &consumers {
        c.shutdown().await;
    }
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
    let config = client_config(&args.endpoints, &args.tls, &args.creds)?;
    let producers = producers(&config, &args.tls, &args.topic, args.connections).await?;
    let handles = producers.clone();
    let body = body(args.load.size);
    let (t, topic, batch) = (typing.clone(), args.topic.clone(), args.load.batch.max(1) as u64);
    let report = drive(&args.load, move |first, n| {
        let request = first / batch;
        let producer = handles[request as usize % handles.len()].clone();
        let now = if matches!(t, Typing::Delay { .. }) { now_ms() } else { 0 };
        let mut messages: Vec<Message> =
            (0..n).map(|_| t.message(&topic, body.clone(), request, now)).collect();
        async move {
            if messages.len() == 1 {
                let m = messages.pop().context("one message")?;
                producer.send(m).await?;
            } else {
                producer.send_batch(messages).await?;
            }
            Ok(())
        }
    })
    .await?;
    for p in &producers {
        p.shutdown().await;
    }
    let mut extra = vec![("topic", args.topic.into())];
    extra.extend(typing.describe(args.message_type));
    report.print("produce", &args.load, &extra)
}

/// The user property holding a message's send time, µs since the epoch.
const SENT_US: &str = "bench-sent-us";
/// The user property naming the `bench e2e` run that sent a message.
const RUN: &str = "bench-run";

/// What the receivers of `bench e2e` share.
struct E2eState {
    run: String,
    count: u64,
    /// Messages of this run received.
    received: AtomicU64,
    /// Messages of earlier runs received (and acked).
    stale: AtomicU64,
    /// Every message has been sent.
    sent_all: AtomicBool,
    latencies: Mutex<Histogram<u64>>,
    /// When the last message of the run was received.
    done_at: std::sync::OnceLock<Instant>,
}

/// One receiver of `bench e2e`: receives until the run's messages are in.
async fn e2e_receiver(consumer: SimpleConsumer, state: Arc<E2eState>) -> anyhow::Result<()> {
    let mut local = histogram()?;
    let mut idle = 0;
    while state.received.load(Ordering::Relaxed) < state.count {
        let messages = consumer.receive(32, Duration::from_secs(60)).await?;
        let now = now_us();
        if messages.is_empty() {
            // Receives long-poll 5 s: three in a row after the last send is 15 s without any.
            idle = if state.sent_all.load(Ordering::Relaxed) { idle + 1 } else { 0 };
            let so_far = state.received.load(Ordering::Relaxed);
            anyhow::ensure!(
                idle < 3 || so_far >= state.count,
                "no message within 15 s after {so_far} of {} received",
                state.count
            );
            continue;
        }
        idle = 0;
        let (mut mine, mut old) = (0, 0);
        for m in &messages {
            let sent = m.properties.get(SENT_US).and_then(|s| s.parse::<u64>().ok());
            match sent {
                Some(sent) if m.properties.get(RUN) == Some(&state.run) => {
                    record(&mut local, now.saturating_sub(sent));
                    mine += 1;
                }
                _ => old += 1,
            }
        }
        consumer.ack_batch(&messages).await?;
        state.stale.fetch_add(old, Ordering::Relaxed);
        state
            .latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .add(&local)
            .map_err(|e| anyhow!("merging histograms: {e:?}"))?;
        local.reset();
        if state.received.fetch_add(mine, Ordering::Relaxed) + mine >= state.count {
            state.done_at.get_or_init(Instant::now);
        }
    }
    Ok(())
}

/// The sender of `bench e2e`: `count` messages at `rate` msgs/s, `inflight` at most in flight;
/// returns the send latencies.
async fn e2e_sender(
    producer: Producer,
    args: &E2eArgs,
    run: &str,
    start: Instant,
) -> anyhow::Result<Histogram<u64>> {
    let body = body(args.size);
    let sends = Arc::new(tokio::sync::Semaphore::new(args.inflight.max(1)));
    let latencies = Arc::new(Mutex::new(histogram()?));
    let mut tasks = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sent = 0;
    while sent < args.count {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * args.rate as f64) as u64).min(args.count);
        while sent < due {
            let permit = Arc::clone(&sends).acquire_owned().await?;
            let message = Message::builder(args.topic.as_str())
                .body(body.clone())
                .property(RUN, run)
                .property(SENT_US, now_us().to_string())
                .build();
            let (sender, times) = (producer.clone(), Arc::clone(&latencies));
            tasks.spawn(async move {
                let begun = Instant::now();
                let sent = sender.send(message).await;
                let us = begun.elapsed().as_micros() as u64;
                record(&mut times.lock().unwrap_or_else(PoisonError::into_inner), us);
                drop(permit);
                sent.map(|_| ())
            });
            sent += 1;
            while let Some(done) = tasks.try_join_next() {
                done.context("a send task panicked")??;
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a send task panicked")??;
    }
    let h = latencies.lock().unwrap_or_else(PoisonError::into_inner).clone();
    Ok(h)
}

async fn e2e(args: E2eArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rate > 0 && args.count > 0 && args.size > 0 && args.receivers > 0,
        "--rate, --count, --size and --receivers must be > 0"
    );
    let config = client_config(&args.endpoints, &args.tls, &args.creds)?;
    let consumer = consumers(&config, &args.tls, &args.group, &args.topic, 1).await?.remove(0);
    let producer = producers(&config, &args.tls, &args.topic, 1).await?.remove(0);
    let state = Arc::new(E2eState {
        run: format!("{:x}-{}", now_us(), std::process::id()),
        count: args.count,
        received: AtomicU64::new(0),
        stale: AtomicU64::new(0),
        sent_all: AtomicBool::new(false),
        latencies: Mutex::new(histogram()?),
        done_at: std::sync::OnceLock::new(),
    });
    let mut receivers = tokio::task::JoinSet::new();
    for _ in 0..args.receivers {
        receivers.spawn(e2e_receiver(consumer.clone(), Arc::clone(&state)));
    }
    let start = Instant::now();
    let progress = {
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                eprintln!(
                    "[{:>5.1}s] {} msgs received",
                    start.elapsed().as_secs_f64(),
                    state.received.load(Ordering::Relaxed)
                );
            }
        })
    };
    let send_latencies = e2e_sender(producer.clone(), &args, &state.run, start).await;
    state.sent_all.store(true, Ordering::Relaxed);
    let send_latencies = match send_latencies {
        Ok(h) => h,
        Err(e) => {
            progress.abort();
            return Err(e);
        }
    };
    // The receivers end once every message is in (or one fails); the others may still be
    // long-polling, so the first one to end with all in ends the wait.
    let mut failure = None;
    while let Some(r) = receivers.join_next().await {
        match r.context("a receiver panicked")? {
            Ok(()) if state.done_at.get().is_some() => break,
            Ok(()) => {}
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    receivers.abort_all();
    progress.abort();
    producer.shutdown().await;
    consumer.shutdown().await;
    if let Some(e) = failure {
        return Err(e);
    }
    let msgs = state.received.load(Ordering::Relaxed);
    let secs = state.done_at.get().map_or_else(|| start.elapsed(), |t| *t - start).as_secs_f64();
    let h = state.latencies.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let result = serde_json::json!({
        "bench": "e2e",
        "topic": args.topic,
        "rate": args.rate,
        "size": args.size,
        "receivers": args.receivers,
        "msgs": msgs,
        "stale_msgs": state.stale.load(Ordering::Relaxed),
        "secs": (secs * 1000.0).round() / 1000.0,
        "msgs_per_sec": (msgs as f64 / secs).round(),
        "p50_us": quantile(&h, 0.50),
        "p99_us": quantile(&h, 0.99),
        "p999_us": quantile(&h, 0.999),
        "max_us": h.max(),
        "send_p50_us": quantile(&send_latencies, 0.50),
        "send_p99_us": quantile(&send_latencies, 0.99),
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{result}")?;
    Ok(())
}

/// The outcome of a load.
struct Report {
    msgs: u64,
    secs: f64,
    /// One value per call, µs.
    latencies_us: Histogram<u64>,
}

impl Report {
    fn percentile(&self, p: f64) -> u64 {
        quantile(&self.latencies_us, p)
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
        let mut latencies = histogram()?;
        tasks.push(tokio::spawn(async move {
            loop {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                if first >= count {
                    break;
                }
                let n = batch.min(count - first);
                let t = Instant::now();
                let Some(handled) = op(first, n).await? else { break };
                record(&mut latencies, t.elapsed().as_micros() as u64);
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
    let mut latencies_us = histogram()?;
    let mut failure = None;
    for t in tasks {
        match t.await.context("bench task panicked")? {
            Ok(l) => latencies_us.add(&l).map_err(|e| anyhow!("merging histograms: {e:?}"))?,
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    progress.abort();
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(Report {
        msgs: done.load(Ordering::Relaxed),
        secs: start.elapsed().as_secs_f64(),
        latencies_us,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn histograms_grow_to_hold_any_latency() {
        let mut h = histogram().unwrap();
        for us in 1..=1000 {
            record(&mut h, us);
        }
        record(&mut h, 5_000_000);
        assert_eq!(h.len(), 1001);
        assert_eq!(quantile(&h, 0.50), 501);
        assert_eq!(quantile(&h, 0.99), 991);
        // 3 significant digits: 5 s within 0.1 %.
        assert!((4_995_000..=5_005_000).contains(&h.max()), "{}", h.max());
        assert_eq!(quantile(&histogram().unwrap(), 0.99), 0);
    }
}
