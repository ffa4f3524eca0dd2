//! `orbitmq bench …`: load generators. Each prints a progress line to stderr every second and
//! ends with one JSON line on stdout (`msgs`, `msgs_per_sec`, `mib_per_sec`, `p50_us`, `p99_us`,
//! latency per request).
//!
//! - `bench store` appends through the real storage engine (the same append thread, flush and
//!   dispatch the broker uses), in-process.
//! - `bench produce` sends over the RocketMQ v2 gRPC protocol to a running server, one message
//!   per request by default, as the official clients do.

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::{Args, Subcommand};
use orbitmq_core::protocol::v2::{self, messaging_service_client::MessagingServiceClient};
use orbitmq_core::storage::{FlushDiskType, MessageStore, PutMessage, StoreConfig};
use tonic::metadata::MetadataValue;

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
    Produce(ProduceArgs),
    /// Receive and ack messages from a running server over gRPC (pop consumption, as simple
    /// consumers do) and report msgs/s and latency per receive.
    ///
    /// Example: orbitmq bench consume --endpoints 127.0.0.1:8081 --topic bench --count 200000
    Consume(ConsumeArgs),
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// The server.
    #[arg(long, env = "ORBITMQ_ENDPOINTS", default_value = "127.0.0.1:8081")]
    endpoints: String,
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
    /// Topic to send to (created on first use when the server auto-creates topics).
    #[arg(long, default_value = "bench")]
    topic: String,
    /// gRPC connections the requests are spread over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    #[command(flatten)]
    load: Load,
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
    Ok(req)
}

async fn connect(endpoints: &str, connections: usize) -> anyhow::Result<Arc<Vec<Client>>> {
    let mut clients: Vec<Client> = Vec::new();
    for _ in 0..connections.max(1) {
        let channel = tonic::transport::Channel::from_shared(format!("http://{endpoints}"))?
            .tcp_nodelay(true)
            .initial_connection_window_size(16 << 20)
            .initial_stream_window_size(4 << 20)
            .connect()
            .await
            .with_context(|| format!("cannot connect to orbitmq at {endpoints}"))?;
        let interceptor: fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> =
            with_client_id;
        clients.push(MessagingServiceClient::with_interceptor(channel, interceptor));
    }
    Ok(Arc::new(clients))
}

async fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    let clients = connect(&args.endpoints, args.connections).await?;
    let resource =
        |name: &str| v2::Resource { resource_namespace: String::new(), name: name.to_owned() };
    let (group, topic) = (resource(&args.group), resource(&args.topic));
    // Each "call" of the driver is one receive of up to 32 messages plus one ack of them all;
    // the driver counts calls, so the message count is tallied separately.
    let consumed = Arc::new(AtomicU64::new(0));
    let load = Load { size: 1024, count: u64::MAX, batch: 1, inflight: args.receivers };
    let (target, c) = (args.count, Arc::clone(&consumed));
    let start = Instant::now();
    let done_at: Arc<std::sync::OnceLock<Duration>> = Arc::default();
    let d = Arc::clone(&done_at);
    let report = drive_until(&load, move |first, _| {
        let mut client = clients[first as usize % clients.len()].clone();
        let (group, topic, consumed) = (group.clone(), topic.clone(), Arc::clone(&c));
        let finished = Arc::clone(&d);
        async move {
            if consumed.load(Ordering::Relaxed) >= target {
                return Ok(None);
            }
            let req = v2::ReceiveMessageRequest {
                group: Some(group.clone()),
                message_queue: Some(v2::MessageQueue {
                    topic: Some(topic.clone()),
                    ..Default::default()
                }),
                batch_size: 32,
                invisible_duration: Some(prost_types::Duration { seconds: 60, nanos: 0 }),
                long_polling_timeout: Some(prost_types::Duration { seconds: 5, nanos: 0 }),
                ..Default::default()
            };
            let mut stream = client.receive_message(req).await?.into_inner();
            let mut entries = Vec::new();
            while let Some(item) = stream.message().await? {
                if let Some(v2::receive_message_response::Content::Message(m)) = item.content {
                    let sys = m.system_properties.unwrap_or_default();
                    entries.push(v2::AckMessageEntry {
                        message_id: sys.message_id,
                        receipt_handle: sys.receipt_handle.unwrap_or_default(),
                        lite_topic: None,
                    });
                }
            }
            if entries.is_empty() {
                let so_far = consumed.load(Ordering::Relaxed);
                if so_far >= target {
                    return Ok(None);
                }
                anyhow::bail!("no message within 5 s after {so_far} of {target} consumed");
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
    let result = serde_json::json!({
        "bench": "consume",
        "topic": args.topic,
        "receivers": args.receivers,
        "msgs": msgs,
        "secs": (secs * 1000.0).round() / 1000.0,
        "msgs_per_sec": (msgs as f64 / secs).round(),
        "p50_us": report.percentile(0.50),
        "p99_us": report.percentile(0.99),
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{result}")?;
    Ok(())
}

async fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    let clients = connect(&args.endpoints, args.connections).await?;
    let body = body(args.load.size);
    let topic = v2::Resource { resource_namespace: String::new(), name: args.topic.clone() };
    let report = drive(&args.load, move |first, n| {
        let mut client = clients[(first as usize / 7) % clients.len()].clone();
        let messages = (first..first + n)
            .map(|i| v2::Message {
                topic: Some(topic.clone()),
                user_properties: std::collections::HashMap::new(),
                system_properties: Some(v2::SystemProperties {
                    message_id: format!("01BENCH{i:027X}"),
                    message_type: v2::MessageType::Normal as i32,
                    ..Default::default()
                }),
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
    report.print("produce", &args.load, &[("topic", args.topic.into())])
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
