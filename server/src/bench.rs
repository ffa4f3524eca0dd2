//! `orbitmq bench …`: load generators. `bench store` appends through the real storage engine
//! (the same append thread, flush and dispatch the broker uses), prints a progress line to
//! stderr each second, and ends with one JSON line on stdout.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::{Args, Subcommand};
use orbitmq_core::storage::{FlushDiskType, MessageStore, PutMessage, StoreConfig};

const MIB: f64 = 1_048_576.0;

#[derive(Debug, Subcommand)]
pub enum Bench {
    /// Append messages through the storage engine and report msgs/s, MiB/s and latency.
    ///
    /// Example: orbitmq bench store --dir /tmp/bench --size 1024 --count 1000000 --flush sync
    Store(StoreArgs),
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Data directory (created if missing; appended to if not empty).
    #[arg(long)]
    dir: PathBuf,
    /// Body size of each message, bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Messages to append in all.
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// `async`: acknowledge once in the page cache, flush in the background; `sync`:
    /// acknowledge once durable (group commit).
    #[arg(long, default_value = "async")]
    flush: FlushDiskType,
    /// Messages per append request.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Append requests in flight at once (concurrent producers).
    #[arg(long, default_value_t = 64)]
    inflight: usize,
    /// CommitLog segment size, bytes.
    #[arg(long, default_value_t = 1 << 30)]
    segment_size: usize,
    /// Queues the messages are spread over.
    #[arg(long, default_value_t = 8)]
    queues: u32,
}

pub fn run(bench: Bench) -> anyhow::Result<()> {
    match bench {
        Bench::Store(args) => {
            let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
            rt.block_on(store(args))
        }
    }
}

async fn store(args: StoreArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.size > 0 && args.batch > 0 && args.inflight > 0,
        "--size, --batch and --inflight must be > 0"
    );
    let config = StoreConfig {
        segment_size: args.segment_size,
        flush_disk_type: args.flush,
        max_message_size: (args.size + 4096).min(args.segment_size / 2),
        ..StoreConfig::new(&args.dir)
    };
    let store = MessageStore::open(config)
        .with_context(|| format!("opening the store in {}", args.dir.display()))?;
    let body = Bytes::from((0..args.size).map(|i| b'a' + (i % 26) as u8).collect::<Vec<u8>>());
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();

    let mut tasks = Vec::with_capacity(args.inflight);
    for _ in 0..args.inflight {
        let (store, body, next, done) =
            (store.clone(), body.clone(), Arc::clone(&next), Arc::clone(&done));
        let (count, batch, queues) = (args.count, args.batch as u64, args.queues);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                if first >= count {
                    break;
                }
                let n = batch.min(count - first);
                let msgs: Vec<PutMessage> = (first..first + n)
                    .map(|i| PutMessage::new("bench", (i % u64::from(queues)) as u32, body.clone()))
                    .collect();
                let t = Instant::now();
                store.put_batch(msgs).await?;
                latencies.push(t.elapsed().as_micros() as u64);
                done.fetch_add(n, Ordering::Relaxed);
            }
            anyhow::Ok(latencies)
        }));
    }

    let progress = {
        let done = Arc::clone(&done);
        let size = args.size as f64;
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

    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.context("bench task panicked")??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    progress.abort();
    store.close().context("closing the store")?;

    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies.get(((latencies.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0)
    };
    let msgs = done.load(Ordering::Relaxed);
    let result = serde_json::json!({
        "bench": "store",
        "flush": args.flush.to_string(),
        "size": args.size,
        "batch": args.batch,
        "inflight": args.inflight,
        "msgs": msgs,
        "secs": (elapsed * 1000.0).round() / 1000.0,
        "msgs_per_sec": (msgs as f64 / elapsed).round(),
        "mib_per_sec": (msgs as f64 * args.size as f64 / MIB / elapsed * 10.0).round() / 10.0,
        "p50_us": pct(0.50),
        "p99_us": pct(0.99),
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{result}")?;
    Ok(())
}
