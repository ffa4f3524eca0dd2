//! Prometheus metrics with the names and labels of RocketMQ 5's
//! (<https://rocketmq.apache.org/docs/observability/01metrics>), so dashboards and alerts
//! written for Apache RocketMQ read OrbitMQ unchanged.
//!
//! Two kinds of numbers:
//! - **Counts the hot path adds to** (messages and bytes in and out, message sizes, dead
//!   letters, transaction ends, RPC latencies) are atomics reached through [`Table`]s: a read
//!   is a lock-free load of an immutable map, and only the first use of a key copies the map
//!   (under a mutex). Adding to a counter is one atomic add.
//! - **States** (consumer lag and in-flight messages, storage, clients) are computed from the
//!   broker when scraped, by the same code as `orbitmq admin` (`Broker::consumer_progress`).
//!
//! [`Broker::render_metrics`] encodes both with `prometheus-client` (`OpenMetrics` text). Names
//! are RocketMQ's exactly (no unit suffix added): sizes are bytes, latencies milliseconds.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::broker::Broker;
use crate::protocol::v2::{Code, MessageType};

/// `rocketmq_message_size` buckets, bytes: RocketMQ's (1 KiB … 4 MiB).
const SIZE_BUCKETS: &[f64] = &[1024.0, 4096.0, 524_288.0, 1_048_576.0, 2_097_152.0, 4_194_304.0];
/// `rocketmq_rpc_latency` buckets, ms: RocketMQ's (1, 3, 5, 7, 10, 100, 1000 ms) with finer ones
/// below 1 ms, where most of OrbitMQ's calls end.
const LATENCY_BUCKETS_MS: &[f64] = &[0.1, 0.25, 0.5, 1.0, 3.0, 5.0, 7.0, 10.0, 100.0, 1000.0];

/// A map read on the hot path without a lock: an immutable map swapped whole when a key is
/// added (rarely: a new topic, group or RPC). Values live as long as the table.
pub(crate) struct Table<K, V> {
    map: ArcSwap<HashMap<K, Arc<V>>>,
    grow: Mutex<()>,
}

impl<K: Hash + Eq + Clone, V> Default for Table<K, V> {
    fn default() -> Self {
        Table { map: ArcSwap::from_pointee(HashMap::new()), grow: Mutex::new(()) }
    }
}

impl<K: Hash + Eq + Clone, V> Table<K, V> {
    /// Runs `f` on the value of `key`, made by `make` on first use.
    pub(crate) fn with<Q, R>(&self, key: &Q, make: impl FnOnce() -> V, f: impl FnOnce(&V) -> R) -> R
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(v) = self.map.load().get(key) {
            return f(v);
        }
        let _one = self.grow.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.map.load_full();
        if let Some(v) = current.get(key) {
            return f(v);
        }
        let value = Arc::new(make());
        let mut next = HashMap::clone(&current);
        next.insert(key.to_owned(), Arc::clone(&value));
        self.map.store(Arc::new(next));
        f(&value)
    }

    /// Forgets the keys `drop` says so of.
    pub(crate) fn retain(&self, keep: impl Fn(&K) -> bool) {
        let _one = self.grow.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.map.load_full();
        if current.keys().all(&keep) {
            return;
        }
        let next = current.iter().filter(|(k, _)| keep(k)).map(|(k, v)| (k.clone(), Arc::clone(v)));
        self.map.store(Arc::new(next.collect()));
    }

    /// Every entry, sorted by key (scrape output is stable).
    pub(crate) fn snapshot(&self) -> Vec<(K, Arc<V>)>
    where
        K: Ord,
    {
        let mut all: Vec<(K, Arc<V>)> =
            self.map.load().iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

/// A histogram of atomics with fixed bucket bounds.
pub(crate) struct Histogram {
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    buckets: Box<[AtomicU64]>,
    /// Sum of the observations, in 1/1000 of the unit (µs for ms, for instance).
    sum_milli: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_milli: AtomicU64::new(0),
        }
    }

    /// Records `value` (in the unit of the bounds).
    fn observe(&self, value: f64) {
        let i = self.bounds.iter().position(|b| value <= *b).unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_milli.fetch_add((value * 1000.0) as u64, Ordering::Relaxed);
    }

    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(counts.iter().copied())
            .collect();
        let sum = self.sum_milli.load(Ordering::Relaxed) as f64 / 1000.0;
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            sum,
            counts.iter().sum(),
            &buckets,
            None,
        )
    }
}

/// What came in for one topic and message type.
struct Incoming {
    messages: AtomicU64,
    bytes: AtomicU64,
    sizes: Histogram,
}

/// What went out of one topic to one group.
#[derive(Default)]
struct Outgoing {
    messages: AtomicU64,
    bytes: AtomicU64,
}

/// Transaction ends of one topic.
#[derive(Default)]
struct Ends {
    commits: AtomicU64,
    rollbacks: AtomicU64,
}

/// The counts the hot path adds to (see the module docs).
#[derive(Default)]
pub struct Metrics {
    incoming: Table<String, Table<&'static str, Incoming>>,
    outgoing: Table<String, Table<String, Outgoing>>,
    dead_letters: Table<String, Table<String, AtomicU64>>,
    ends: Table<String, Ends>,
    rpcs: Table<(&'static str, i32, bool), Histogram>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// RocketMQ's `message_type` label.
fn type_label(t: MessageType) -> &'static str {
    match t {
        MessageType::Fifo => "fifo",
        MessageType::Delay => "delay",
        MessageType::Transaction => "transaction",
        _ => "normal",
    }
}

impl Metrics {
    /// Messages of `topic` stored, with their body sizes.
    pub(crate) fn messages_in(
        &self,
        topic: &str,
        message_type: MessageType,
        sizes: impl Iterator<Item = usize>,
    ) {
        let make = || Incoming {
            messages: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            sizes: Histogram::new(SIZE_BUCKETS),
        };
        self.incoming.with(topic, Table::default, |types| {
            types.with(&type_label(message_type), make, |c| {
                let (mut n, mut total) = (0u64, 0u64);
                for size in sizes {
                    n += 1;
                    total += size as u64;
                    c.sizes.observe(size as f64);
                }
                c.messages.fetch_add(n, Ordering::Relaxed);
                c.bytes.fetch_add(total, Ordering::Relaxed);
            });
        });
    }

    /// Messages of `topic` delivered to `group`, `bytes` of bodies in all.
    pub(crate) fn messages_out(&self, topic: &str, group: &str, messages: u64, bytes: u64) {
        self.outgoing.with(topic, Table::default, |groups| {
            groups.with(group, Outgoing::default, |c| {
                c.messages.fetch_add(messages, Ordering::Relaxed);
                c.bytes.fetch_add(bytes, Ordering::Relaxed);
            });
        });
    }

    /// Messages stored and messages delivered since the start, over every topic and group
    /// (the console's traffic chart takes their rates).
    pub fn totals(&self) -> (u64, u64) {
        let stored = self
            .incoming
            .snapshot()
            .iter()
            .flat_map(|(_, types)| types.snapshot())
            .map(|(_, c)| c.messages.load(Ordering::Relaxed))
            .sum();
        let delivered = self
            .outgoing
            .snapshot()
            .iter()
            .flat_map(|(_, groups)| groups.snapshot())
            .map(|(_, c)| c.messages.load(Ordering::Relaxed))
            .sum();
        (stored, delivered)
    }

    /// A message of `topic` that `group` failed too often went to the group's DLQ.
    pub(crate) fn sent_to_dead_letters(&self, topic: &str, group: &str) {
        self.dead_letters.with(topic, Table::default, |groups| {
            groups.with(group, || AtomicU64::new(0), |c| c.fetch_add(1, Ordering::Relaxed));
        });
    }

    /// A transaction of `topic` ended.
    pub(crate) fn transaction_ended(&self, topic: &str, committed: bool) {
        self.ends.with(topic, Ends::default, |e| {
            let c = if committed { &e.commits } else { &e.rollbacks };
            c.fetch_add(1, Ordering::Relaxed);
        });
    }

    /// One gRPC call of `method` answered `code` after `elapsed`.
    pub fn rpc(&self, method: &'static str, code: Code, long_polling: bool, elapsed: Duration) {
        self.rpcs.with(
            &(method, code as i32, long_polling),
            || Histogram::new(LATENCY_BUCKETS_MS),
            |h| h.observe(elapsed.as_secs_f64() * 1000.0),
        );
    }

    /// Forgets the counts of a deleted topic.
    pub(crate) fn forget_topic(&self, topic: &str) {
        self.incoming.retain(|t| t != topic);
        self.outgoing.retain(|t| t != topic);
        self.dead_letters.retain(|t| t != topic);
        self.ends.retain(|t| t != topic);
    }

    /// Forgets the counts of a deleted group.
    pub(crate) fn forget_group(&self, group: &str) {
        for (_, groups) in self.outgoing.snapshot() {
            groups.retain(|g| g != group);
        }
        for (_, groups) in self.dead_letters.snapshot() {
            groups.retain(|g| g != group);
        }
    }
}

/// Labels every series carries, as RocketMQ's: the cluster and which node this is.
type Node<'a> = [(&'static str, &'a str); 3];

/// A series' own labels.
type Labels<'a> = Vec<(&'static str, &'a str)>;

/// What one series holds.
enum Value<'a> {
    Counter(u64),
    Gauge(i64),
    Histogram(&'a Histogram),
}

/// Writes one metric family: its descriptor, then a series per row (node labels first).
fn family<'a>(
    out: &mut DescriptorEncoder<'_>,
    node: &Node<'_>,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Labels<'a>, Value<'a>)>,
) -> Result<(), std::fmt::Error> {
    let mut rows = rows.into_iter().peekable();
    let kind = match rows.peek() {
        None => return Ok(()),
        Some((_, Value::Counter(_))) => MetricType::Counter,
        Some((_, Value::Gauge(_))) => MetricType::Gauge,
        Some((_, Value::Histogram(_))) => MetricType::Histogram,
    };
    let mut encoder = out.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in rows {
        let set: Labels<'_> = node.iter().copied().chain(labels).collect();
        let series = encoder.encode_family(&set)?;
        match value {
            Value::Counter(v) => ConstCounter::new(v).encode(series)?,
            Value::Gauge(v) => ConstGauge::new(v).encode(series)?,
            Value::Histogram(h) => h.encode(series)?,
        }
    }
    Ok(())
}

/// One gauge with no labels of its own.
fn gauge(
    out: &mut DescriptorEncoder<'_>,
    node: &Node<'_>,
    name: &str,
    help: &str,
    v: i64,
) -> Result<(), std::fmt::Error> {
    family(out, node, name, help, [(Vec::new(), Value::Gauge(v))])
}

/// One consumer group's progress on one topic, as `orbitmq admin group progress` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicProgress {
    /// Messages not acknowledged (`broker offset - consumer offset`, summed over queues).
    pub lag: u64,
    /// Messages delivered and not yet acknowledged or expired.
    pub inflight: u64,
    /// Store time (ms) of the oldest message not acknowledged, if any.
    pub oldest_unacked_ms: Option<i64>,
}

/// Encodes everything for one scrape.
#[derive(Debug)]
struct Scrape {
    broker: Broker,
    started: Instant,
}

impl prometheus_client::collector::Collector for Scrape {
    fn encode(&self, mut out: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let cfg = self.broker.config();
        let node: Node<'_> = [
            ("cluster", &cfg.cluster_name),
            ("node_type", "broker"),
            ("node_id", &cfg.broker_name),
        ];
        self.encode_in(&mut out, &node)?;
        self.encode_out(&mut out, &node)?;
        self.encode_rpcs(&mut out, &node)?;
        self.encode_consumers(&mut out, &node)?;
        self.encode_counts(&mut out, &node)?;
        self.encode_store(&mut out, &node)?;
        encode_process(&mut out, self.started)
    }
}

impl Scrape {
    /// Messages and bytes in, sizes.
    fn encode_in(
        &self,
        out: &mut DescriptorEncoder<'_>,
        node: &Node<'_>,
    ) -> Result<(), std::fmt::Error> {
        let m = self.broker.metrics();
        let incoming: Vec<(String, &'static str, Arc<Incoming>)> = m
            .incoming
            .snapshot()
            .into_iter()
            .flat_map(|(t, types)| {
                types.snapshot().into_iter().map(move |(k, c)| (t.clone(), k, c))
            })
            .collect();
        let rows = |f: &dyn Fn(&Incoming) -> u64| {
            incoming
                .iter()
                .map(|(t, k, c)| {
                    (vec![("topic", t.as_str()), ("message_type", *k)], Value::Counter(f(c)))
                })
                .collect::<Vec<_>>()
        };
        family(
            out,
            node,
            "rocketmq_messages_in",
            "Messages produced.",
            rows(&|c| c.messages.load(Ordering::Relaxed)),
        )?;
        family(
            out,
            node,
            "rocketmq_throughput_in",
            "Bytes of message bodies produced.",
            rows(&|c| c.bytes.load(Ordering::Relaxed)),
        )?;
        family(
            out,
            node,
            "rocketmq_message_size",
            "Sizes (bytes) of the message bodies produced.",
            incoming.iter().map(|(t, k, c)| {
                (vec![("topic", t.as_str()), ("message_type", *k)], Value::Histogram(&c.sizes))
            }),
        )?;
        Ok(())
    }

    /// Messages and bytes out, dead letters, transaction ends.
    fn encode_out(
        &self,
        out: &mut DescriptorEncoder<'_>,
        node: &Node<'_>,
    ) -> Result<(), std::fmt::Error> {
        let m = self.broker.metrics();
        let pairs = |table: &Table<String, Table<String, Outgoing>>| {
            table
                .snapshot()
                .into_iter()
                .flat_map(|(t, groups)| {
                    groups.snapshot().into_iter().map(move |(g, c)| (t.clone(), g, c))
                })
                .collect::<Vec<_>>()
        };
        let outgoing = pairs(&m.outgoing);
        let rows = |f: &dyn Fn(&Outgoing) -> u64| {
            outgoing
                .iter()
                .map(|(t, g, c)| {
                    (
                        vec![("topic", t.as_str()), ("consumer_group", g.as_str())],
                        Value::Counter(f(c)),
                    )
                })
                .collect::<Vec<_>>()
        };
        family(
            out,
            node,
            "rocketmq_messages_out",
            "Messages delivered to consumers.",
            rows(&|c| c.messages.load(Ordering::Relaxed)),
        )?;
        family(
            out,
            node,
            "rocketmq_throughput_out",
            "Bytes of message bodies delivered to consumers.",
            rows(&|c| c.bytes.load(Ordering::Relaxed)),
        )?;
        let dead: Vec<(String, String, u64)> = m
            .dead_letters
            .snapshot()
            .into_iter()
            .flat_map(|(t, groups)| {
                groups
                    .snapshot()
                    .into_iter()
                    .map(move |(g, c)| (t.clone(), g, c.load(Ordering::Relaxed)))
            })
            .collect();
        family(
            out,
            node,
            "rocketmq_send_to_dlq_messages",
            "Messages moved to a dead-letter queue after their last attempt.",
            dead.iter().map(|(t, g, n)| {
                (vec![("topic", t.as_str()), ("consumer_group", g.as_str())], Value::Counter(*n))
            }),
        )?;
        let ends = m.ends.snapshot();
        family(
            out,
            node,
            "rocketmq_commit_messages",
            "Transaction messages committed.",
            ends.iter().map(|(t, e)| {
                (vec![("topic", t.as_str())], Value::Counter(e.commits.load(Ordering::Relaxed)))
            }),
        )?;
        family(
            out,
            node,
            "rocketmq_rollback_messages",
            "Transaction messages rolled back (by the producer or after the last check).",
            ends.iter().map(|(t, e)| {
                (vec![("topic", t.as_str())], Value::Counter(e.rollbacks.load(Ordering::Relaxed)))
            }),
        )
    }

    /// `rocketmq_rpc_latency`, per method and answer.
    fn encode_rpcs(
        &self,
        out: &mut DescriptorEncoder<'_>,
        node: &Node<'_>,
    ) -> Result<(), std::fmt::Error> {
        let rpcs: Vec<(&'static str, String, &'static str, Arc<Histogram>)> = self
            .broker
            .metrics()
            .rpcs
            .snapshot()
            .into_iter()
            .map(|((method, code, long_polling), h)| {
                // RocketMQ's `response_code`: the status code's name, lower case.
                let code = Code::try_from(code)
                    .map_or("unknown", |c| c.as_str_name())
                    .to_ascii_lowercase();
                (method, code, if long_polling { "true" } else { "false" }, h)
            })
            .collect();
        family(
            out,
            node,
            "rocketmq_rpc_latency",
            "Time (ms) to answer a gRPC call; long polls (is_long_polling) include their wait.",
            rpcs.iter().map(|(method, code, lp, h)| {
                let labels = vec![
                    ("protocol_type", "grpc"),
                    ("request_code", *method),
                    ("response_code", code.as_str()),
                    ("is_long_polling", *lp),
                ];
                (labels, Value::Histogram(h))
            }),
        )
    }

    /// Lag, in-flight and ready messages per (topic, group).
    fn encode_consumers(
        &self,
        out: &mut DescriptorEncoder<'_>,
        node: &Node<'_>,
    ) -> Result<(), std::fmt::Error> {
        let progress = self.broker.all_consumer_progress();
        let now = crate::storage::message::now_millis();
        let rows = |f: &dyn Fn(&TopicProgress) -> i64| {
            progress
                .iter()
                .map(|((g, t), p)| {
                    (
                        vec![("topic", t.as_str()), ("consumer_group", g.as_str())],
                        Value::Gauge(f(p)),
                    )
                })
                .collect::<Vec<_>>()
        };
        family(
            out,
            node,
            "rocketmq_consumer_lag_messages",
            "Messages the group has not acknowledged.",
            rows(&|p| p.lag as i64),
        )?;
        family(
            out,
            node,
            "rocketmq_consumer_inflight_messages",
            "Messages delivered to the group and not yet acknowledged.",
            rows(&|p| p.inflight as i64),
        )?;
        family(
            out,
            node,
            "rocketmq_consumer_ready_messages",
            "Messages ready for the group: lag minus in flight.",
            rows(&|p| p.lag.saturating_sub(p.inflight) as i64),
        )?;
        family(
            out,
            node,
            "rocketmq_consumer_lag_latency",
            "Age (ms) of the oldest message the group has not acknowledged; 0 without lag.",
            rows(&|p| p.oldest_unacked_ms.map_or(0, |t| (now - t).max(0))),
        )
    }

    /// Clients, connections, topics, groups, open transactions, waiting delay messages.
    fn encode_counts(
        &self,
        out: &mut DescriptorEncoder<'_>,
        node: &Node<'_>,
    ) -> Result<(), std::fmt::Error> {
        let b = &self.broker;
        let (mut producers, mut consumers) = (0, 0);
        for (_, info) in b.clients().all() {
            match info.settings.as_ref() {
                Some(s) if crate::broker::clients::is_consumer(s) => consumers += 1,
                Some(_) => producers += 1,
                None => {}
            }
        }
        gauge(out, node, "rocketmq_producer_connections", "Producers with settings.", producers)?;
        gauge(out, node, "rocketmq_consumer_connections", "Consumers with settings.", consumers)?;
        gauge(
            out,
            node,
            "orbitmq_connections",
            "Open client connections.",
            b.connections() as i64,
        )?;
        gauge(out, node, "rocketmq_topic_number", "Topics.", b.store().topics().len() as i64)?;
        let groups = b.store().groups().len() as i64;
        gauge(out, node, "rocketmq_consumer_group_number", "Consumer groups.", groups)?;
        let half = b.transactions().open_count() as i64;
        gauge(out, node, "rocketmq_half_messages", "Transactions not yet ended.", half)?;
        let timing = b.timer().pending() as i64;
        gauge(out, node, "rocketmq_timing_messages", "Delay messages not yet due.", timing)
    }

    /// The store: size, what is not yet flushed or dispatched.
    fn encode_store(
        &self,
        out: &mut DescriptorEncoder<'_>,
        node: &Node<'_>,
    ) -> Result<(), std::fmt::Error> {
        let store = self.broker.store();
        let local = || vec![("storage_type", "local"), ("storage_medium", "disk")];
        let end = store.commitlog_max_offset();
        let size = self.broker.disk_usage() as i64;
        let flush = end.saturating_sub(store.commitlog_flushed_offset()) as i64;
        let dispatch = end.saturating_sub(store.dispatched_offset()) as i64;
        for (name, help, v) in [
            ("rocketmq_storage_size", "Bytes the data directory takes on disk.", size),
            ("rocketmq_storage_flush_behind_bytes", "CommitLog bytes not yet on disk.", flush),
            (
                "rocketmq_storage_dispatch_behind_bytes",
                "CommitLog bytes not yet in queues.",
                dispatch,
            ),
        ] {
            family(out, node, name, help, [(local(), Value::Gauge(v))])?;
        }
        Ok(())
    }
}

/// `process_*` metrics, from /proc/self (Linux); nothing elsewhere.
fn encode_process(
    out: &mut DescriptorEncoder<'_>,
    started: Instant,
) -> Result<(), std::fmt::Error> {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces), from field 3 (state) on.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    if let (Some(utime), Some(stime)) = (field(14), field(15)) {
        let e = out.encode_descriptor(
            "process_cpu",
            "User and system CPU time spent.",
            Some(&Unit::Seconds),
            MetricType::Counter,
        )?;
        ConstCounter::new((utime + stime) as f64 / ticks).encode(e)?;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
            .map(|k| k * 1024)
    };
    for (name, key, help) in [
        ("process_resident_memory", "VmRSS:", "Resident memory size."),
        ("process_virtual_memory", "VmSize:", "Virtual memory size."),
        ("process_resident_memory_anon", "RssAnon:", "Resident anonymous memory (heap, stacks)."),
    ] {
        if let Some(v) = kib(key) {
            let e = out.encode_descriptor(name, help, Some(&Unit::Bytes), MetricType::Gauge)?;
            ConstGauge::new(v).encode(e)?;
        }
    }
    if let Some(threads) = field(20) {
        let e = out.encode_descriptor("process_threads", "OS threads.", None, MetricType::Gauge)?;
        ConstGauge::new(threads as i64).encode(e)?;
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        let e = out.encode_descriptor(
            "process_open_fds",
            "Open file descriptors.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(fds.count() as i64).encode(e)?;
    }
    let e = out.encode_descriptor(
        "orbitmq_uptime",
        "Time since the broker opened.",
        Some(&Unit::Seconds),
        MetricType::Gauge,
    )?;
    ConstGauge::new(started.elapsed().as_secs_f64()).encode(e)
}

impl Broker {
    /// Everything in Prometheus' `OpenMetrics` text format, for `GET /metrics`. Reads the
    /// consumer and storage state, so call it off the async threads (`spawn_blocking`).
    pub fn render_metrics(&self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Scrape {
            broker: self.clone(),
            started: self.inner.started,
        }));
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }
}
