//! The broker: topics, groups, clients and consumption state over the storage engine, and the
//! gRPC services that expose them (`apache.rocketmq.v2.MessagingService` for clients,
//! `orbitmq.v1.Admin` for operators). Every RocketMQ behaviour lives here once; `service`
//! and `admin` only convert between the wire and these methods.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod admin;
pub mod clients;
pub mod cluster;
pub mod convert;
mod dead_letter;
pub mod error;
pub mod listener;
pub mod metrics;
pub mod namespace;
pub mod pop;
pub mod progress;
pub mod pull;
mod receive;
pub mod replication;
mod send;
pub mod service;
mod settled;
pub mod timer;
pub mod topics;
pub mod transaction;
/// The name and message-field rules, shared with the client SDK.
pub use crate::protocol::validate;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

pub use error::{BrokerError, Result};
use serde::{Deserialize, Serialize};

use crate::protocol::auth::{RequireCredentials, ServerCredentials};
use crate::storage::{MessageStore, StoreConfig};

/// Locks a mutex, carrying on through poisoning: the broker's state stays usable (and is saved
/// and reloaded whole) even if a thread panicked while holding it.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One unit of a counted resource (a parked long poll, a pending send), given back on drop.
#[derive(Debug)]
pub(crate) struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// Takes one of `counter`'s `max` units, or says how many are taken.
    fn take(counter: &Arc<AtomicUsize>, max: usize) -> std::result::Result<Slot, usize> {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .map(|_| Slot(Arc::clone(counter)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Broker configuration (the `[broker]` keys of the server's TOML, RocketMQ's names where
/// there is one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Broker name, as routes show it.
    pub broker_name: String,
    /// Cluster name.
    pub cluster_name: String,
    /// Id in the broker group: 0 is the master, > 0 a slave.
    pub broker_id: u64,
    /// `async_master` (acknowledge after the local write), `sync_master` or `slave`.
    pub broker_role: BrokerRole,
    /// Name servers to register with, `host:port;host:port`; empty: no cluster (standalone).
    pub namesrv_addr: String,
    /// How often the broker registers with (heartbeats to) its name servers, ms (RocketMQ's
    /// `registerNameServerPeriod`, 30 s); also at once whenever its topics change.
    pub register_interval_ms: u64,
    /// A slave: its master's `host:port`; empty: the one the name servers name.
    pub master_address: String,
    /// A `sync_master`: how long a send waits for a slave to store it before the client gets
    /// `SLAVE_PERSISTENCE_TIMEOUT`, ms: below the clients' 3 s request timeout, so that they
    /// get that status instead of timing out and resending.
    pub sync_replica_timeout_ms: u64,
    /// Create a topic on first use (route query or send) instead of answering `TOPIC_NOT_FOUND`.
    pub auto_create_topics: bool,
    /// Create a consumer group on first use instead of answering `CONSUMER_GROUP_NOT_FOUND`.
    pub auto_create_groups: bool,
    /// Read and write queues of auto-created topics.
    pub default_queues: u32,
    /// Largest message body accepted, bytes.
    pub max_body_size: usize,
    /// Largest gRPC request accepted, bytes (a batch of messages is one request): a larger one
    /// is refused from its length prefix, before its body is read, with `RESOURCE_EXHAUSTED`.
    pub max_request_size: usize,
    /// Deliveries before a message goes to the dead-letter queue, for new groups (RocketMQ's
    /// 16 retries + 1).
    pub max_delivery_attempts: u32,
    /// How often the consumption state (in-flight messages, attempts, acks) is saved, ms: after
    /// a crash at most this much consumption is replayed.
    pub consumption_checkpoint_ms: u64,
    /// Furthest in the future a delay message may be delivered, ms.
    pub max_delay_ms: i64,
    /// A transaction left open this long is checked with its producer, ms.
    pub transaction_check_first_ms: i64,
    /// Then checked again this often, ms.
    pub transaction_check_interval_ms: i64,
    /// Checks before an open transaction is rolled back.
    pub transaction_check_max: u32,
    /// A client heard from neither by Heartbeat nor by any other call for this long is
    /// forgotten (settings, Telemetry stream, what it held under auto-renewal), ms. Apache's
    /// `channelExpiredTimeout`.
    pub client_expiry_ms: u64,
    /// Consumption state of a (group, topic) with nothing in flight, nothing read ahead and no
    /// call for this long is dropped from memory (its offsets stay in the consumer offsets
    /// and it is rebuilt from them on the next call), ms.
    pub consumption_idle_ms: u64,
    /// Most topics; creating one more (by admin or on first use) answers `TOO_MANY_REQUESTS`.
    pub max_topics: usize,
    /// Most consumer groups; creating one more answers `TOO_MANY_REQUESTS`.
    pub max_groups: usize,
    /// Most clients (distinct `x-mq-client-id`s not yet expired); a new one beyond answers
    /// `TOO_MANY_REQUESTS`.
    pub max_clients: usize,
    /// Longest `x-mq-client-id`, bytes (`REQUEST_HEADER_FIELDS_TOO_LARGE` beyond). The official
    /// clients send `host@pid@index@time`, under 300 bytes even with a 253-byte host name.
    pub max_client_id_len: usize,
    /// Most TCP connections at once; the ones beyond are closed as they are accepted.
    pub max_connections: usize,
    /// Most messages in flight (received, not yet acked) per consumer group; a receive that
    /// would go beyond answers `TOO_MANY_REQUESTS`.
    pub max_inflight_per_group: usize,
    /// Most receives and pulls waiting for messages at once; one more answers
    /// `TOO_MANY_REQUESTS` instead of waiting.
    pub max_long_polls: usize,
    /// Most sends waiting for the store's append thread; one more answers `TOO_MANY_REQUESTS`.
    pub max_pending_sends: usize,
    /// The access key and secret key every request must be signed with (`UNAUTHORIZED`
    /// otherwise); `None`: requests are not checked. Not a `[broker]` key: the server sets it
    /// from its top-level `access_key` and `secret_key`, which name servers share.
    #[serde(skip)]
    pub credentials: Option<ServerCredentials>,
    /// How this broker reaches name servers and its master: plaintext or TLS. Not a `[broker]`
    /// key: the server sets it from its top-level `peer_tls` and `peer_tls_ca`.
    #[serde(skip)]
    pub peer_tls: crate::peer::PeerTls,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            broker_name: "broker-a".to_owned(),
            cluster_name: "DefaultCluster".to_owned(),
            broker_id: 0,
            broker_role: BrokerRole::AsyncMaster,
            namesrv_addr: String::new(),
            register_interval_ms: 30_000,
            master_address: String::new(),
            sync_replica_timeout_ms: 2_000,
            auto_create_topics: true,
            auto_create_groups: true,
            default_queues: 8,
            max_body_size: 4 << 20,
            max_request_size: 16 << 20,
            max_delivery_attempts: 17,
            consumption_checkpoint_ms: 1000,
            max_delay_ms: 24 * 3600 * 1000,
            transaction_check_first_ms: 6_000,
            transaction_check_interval_ms: 30_000,
            transaction_check_max: 15,
            client_expiry_ms: 120_000,
            consumption_idle_ms: 600_000,
            max_topics: 50_000,
            max_groups: 10_000,
            max_clients: 10_000,
            max_client_id_len: 512,
            max_connections: 10_000,
            max_inflight_per_group: 50_000,
            max_long_polls: 10_000,
            max_pending_sends: 4096,
            credentials: None,
            peer_tls: crate::peer::PeerTls::plaintext(),
        }
    }
}

/// A broker's role in its group (RocketMQ's `brokerRole`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerRole {
    /// A master that acknowledges a send once it is written locally.
    #[default]
    AsyncMaster,
    /// A master that acknowledges a send once a slave has it too.
    SyncMaster,
    /// A read-only replica of its group's master.
    Slave,
}

impl BrokerRole {
    /// The name in configs and cluster listings.
    pub fn as_str(self) -> &'static str {
        match self {
            BrokerRole::AsyncMaster => "async_master",
            BrokerRole::SyncMaster => "sync_master",
            BrokerRole::Slave => "slave",
        }
    }
}

impl std::fmt::Display for BrokerRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for BrokerRole {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "async_master" => Ok(BrokerRole::AsyncMaster),
            "sync_master" => Ok(BrokerRole::SyncMaster),
            "slave" => Ok(BrokerRole::Slave),
            other => Err(format!("{other:?} is not async_master, sync_master or slave")),
        }
    }
}

/// A running broker. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: BrokerConfig,
    store: MessageStore,
    clients: clients::Clients,
    pop: pop::Pop,
    timer: timer::Timer,
    transactions: transaction::Transactions,
    /// Round-robin counter for sends that do not name a message group.
    send_cursor: AtomicU64,
    /// Receives and pulls waiting for messages now (`max_long_polls`).
    long_polls: Arc<AtomicUsize>,
    /// Sends waiting for the append thread now (`max_pending_sends`).
    pending_sends: Arc<AtomicUsize>,
    /// Open client connections (`max_connections`).
    connections: Arc<AtomicUsize>,
    /// Background work (state saves, dead letters) runs once `serve` started it.
    background: std::sync::Once,
    /// Tells the background tasks to stop.
    stop: tokio::sync::watch::Sender<bool>,
    /// Counts for `/metrics`.
    metrics: metrics::Metrics,
    /// When the broker opened (`orbitmq_uptime`).
    started: std::time::Instant,
    /// The same, ms since the epoch (cluster listings).
    started_ms: i64,
    /// Its name servers, in a cluster.
    cluster: Option<cluster::Membership>,
    /// Master: its slaves; slave: its master.
    replication: replication::Replication,
    /// Bytes the data directory takes, and when it was last walked (`rocketmq_storage_size`).
    disk_usage: std::sync::Mutex<Option<(std::time::Instant, u64)>>,
}

impl Broker {
    /// Opens the store and builds the broker on it.
    pub fn open(config: BrokerConfig, store: StoreConfig) -> Result<Broker> {
        let store = MessageStore::open(store)?;
        Broker::with_store(config, store)
    }

    /// A broker over an already open store: loads the consumption state.
    pub fn with_store(config: BrokerConfig, store: MessageStore) -> Result<Broker> {
        if config.broker_role != BrokerRole::Slave {
            // A master's run is a new epoch of its log (slaves mirror their master's).
            let now = u64::try_from(crate::storage::message::now_millis()).unwrap_or(0);
            store.epochs().begin(store.commitlog_max_offset(), now)?;
        }
        let pop = pop::Pop::open(store.clone())?;
        let timer = timer::Timer::open(&store)?;
        let transactions = transaction::Transactions::open(&store, &config)?;
        let clients = clients::Clients::new(&config);
        let client_id = format!("{}@{}", config.broker_name, store.config().store_host);
        let cluster = cluster::Membership::new(
            &config.namesrv_addr,
            &client_id,
            config.credentials.clone(),
            config.peer_tls.clone(),
        );
        Ok(Broker {
            inner: Arc::new(Inner {
                config,
                store,
                clients,
                pop,
                timer,
                transactions,
                send_cursor: AtomicU64::new(0),
                long_polls: Arc::default(),
                pending_sends: Arc::default(),
                connections: Arc::default(),
                background: std::sync::Once::new(),
                stop: tokio::sync::watch::channel(false).0,
                metrics: metrics::Metrics::default(),
                started: std::time::Instant::now(),
                started_ms: crate::storage::message::now_millis(),
                cluster,
                replication: replication::Replication::default(),
                disk_usage: std::sync::Mutex::new(None),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BrokerConfig {
        &self.inner.config
    }

    /// The storage engine.
    pub fn store(&self) -> &MessageStore {
        &self.inner.store
    }

    /// The client registry.
    pub fn clients(&self) -> &clients::Clients {
        &self.inner.clients
    }

    /// Consumption state.
    pub fn pop(&self) -> &pop::Pop {
        &self.inner.pop
    }

    /// Delay messages.
    pub fn timer(&self) -> &timer::Timer {
        &self.inner.timer
    }

    /// Open transactions.
    pub fn transactions(&self) -> &transaction::Transactions {
        &self.inner.transactions
    }

    /// The counts behind `/metrics`.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.inner.metrics
    }

    /// Bytes the data directory takes on disk (allocated blocks, as `du` counts them). Walks
    /// the directory at most every 30 s.
    pub fn disk_usage(&self) -> u64 {
        let mut cached = lock(&self.inner.disk_usage);
        if let Some((at, bytes)) = *cached
            && at.elapsed() < std::time::Duration::from_secs(30)
        {
            return bytes;
        }
        let bytes = crate::storage::fs::disk_usage(&self.store().config().dir);
        *cached = Some((std::time::Instant::now(), bytes));
        bytes
    }

    /// Its name servers, when it is in a cluster.
    pub fn cluster(&self) -> Option<&cluster::Membership> {
        self.inner.cluster.as_ref()
    }

    /// The address clients reach this broker at (the store host).
    pub fn address(&self) -> SocketAddr {
        self.store().config().store_host
    }

    /// Stops the background work, saves the consumption state, flushes and closes the store,
    /// on the blocking pool (the store's threads are joined and its files synced).
    pub async fn close(&self) -> Result<()> {
        let b = self.clone();
        tokio::task::spawn_blocking(move || b.close_blocking()).await.map_err(|e| {
            BrokerError::new(crate::protocol::v2::Code::InternalServerError, e.to_string())
        })?
    }

    /// [`Broker::close`] for threads that may block (not a runtime's).
    pub fn close_blocking(&self) -> Result<()> {
        self.inner.stop.send_replace(true);
        let saved = self.save_state();
        self.store().close()?;
        saved
    }

    /// Saves the consumption, delay and transaction state now (what changed).
    pub fn save_state(&self) -> Result<()> {
        let pop = self.pop().save();
        let timer = self.timer().save();
        let transactions = self.transactions().save();
        pop.and(timer).and(transactions)
    }

    /// A place for one more long poll to wait (`TOO_MANY_REQUESTS` past `max_long_polls`).
    pub(crate) fn park(&self) -> Result<Slot> {
        let max = self.config().max_long_polls;
        Slot::take(&self.inner.long_polls, max).map_err(|n| {
            BrokerError::limit(error::Limit::LongPolls, max, format!("{n} long polls are waiting"))
        })
    }

    /// A place for one more send in the append queue (`TOO_MANY_REQUESTS` past
    /// `max_pending_sends`): refused rather than queued without bound behind a full channel.
    pub(crate) fn pending_send(&self) -> Result<Slot> {
        let max = self.config().max_pending_sends;
        Slot::take(&self.inner.pending_sends, max).map_err(|n| {
            BrokerError::limit(
                error::Limit::PendingSends,
                max,
                format!("{n} sends are waiting to be stored"),
            )
        })
    }

    /// Forgets the clients silent for `client_expiry_ms` and makes what they held under
    /// auto-renewal visible again, as `NotifyClientTermination` would. Returns how many.
    pub fn expire_clients(&self) -> usize {
        let gone = self.clients().expire(crate::storage::message::now_millis());
        for (id, info) in &gone {
            if info.settings.as_ref().is_some_and(clients::is_consumer) {
                self.pop().release_client(id);
            }
            tracing::debug!(client = id, "client expired");
        }
        if !gone.is_empty() {
            tracing::info!(
                expired = gone.len(),
                left = self.clients().len(),
                "forgot clients silent for client_expiry_ms"
            );
        }
        gone.len()
    }

    /// Releases memory nobody uses: expired clients, idle consumption state.
    pub fn housekeep(&self) {
        self.expire_clients();
        self.pop().prune_idle(self.config().consumption_idle_ms);
    }

    /// Starts the background work once (needs a tokio runtime): periodic saves of the
    /// consumption state, moving messages that used up their attempts to the dead-letter
    /// queue, firing delay messages, checking open transactions, expiring clients and
    /// dropping idle consumption state.
    pub fn start_background(&self) {
        self.inner.background.call_once(|| {
            if self.inner.cluster.is_some() {
                tokio::spawn(self.clone().run_registration());
            }
            if self.is_slave() {
                tokio::spawn(self.clone().run_slave());
            } else {
                // Firing delay messages writes the log: masters only.
                let b = self.clone();
                let stop = self.inner.stop.subscribe();
                tokio::spawn(async move { b.run_timer(stop).await });
            }
            let b = self.clone();
            let mut stop = self.inner.stop.subscribe();
            tokio::spawn(async move {
                // Apache scans every 10 s; a short expiry (tests) is checked often enough to
                // be met within half of it.
                let c = b.config();
                let every = (c.client_expiry_ms / 2)
                    .min(c.consumption_idle_ms / 2)
                    .clamp(50, 10_000);
                let mut tick = tokio::time::interval(std::time::Duration::from_millis(every));
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stop.changed() => return,
                    }
                    b.housekeep();
                }
            });
            let b = self.clone();
            let mut stop = self.inner.stop.subscribe();
            tokio::spawn(async move {
                let every =
                    std::time::Duration::from_millis(b.config().consumption_checkpoint_ms.max(10));
                let mut tick = tokio::time::interval(every.min(std::time::Duration::from_secs(1)));
                let mut last_save = tokio::time::Instant::now();
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stop.changed() => return,
                    }
                    if !b.is_slave() {
                        // Both write the log: masters only.
                        b.dead_letter_due().await;
                        b.check_transactions();
                    }
                    if last_save.elapsed() >= every {
                        last_save = tokio::time::Instant::now();
                        let s = b.clone();
                        match tokio::task::spawn_blocking(move || s.save_state()).await {
                            Ok(Err(e)) => {
                                tracing::error!(error = %e, "saving the consumption state failed");
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "saving the consumption state panicked");
                            }
                            Ok(Ok(())) => {}
                        }
                    }
                }
            });
        });
    }

    /// Serves the client and admin gRPC services on `listener` until `shutdown` resolves: a
    /// [`TcpListener`](tokio::net::TcpListener) for plaintext only, or a
    /// [`Listener::with_tls`](listener::Listener::with_tls) for TLS (and plaintext) on one port.
    pub async fn serve(
        &self,
        listener: impl Into<listener::Listener>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> std::result::Result<(), tonic::transport::Error> {
        self.start_background();
        let incoming = listener
            .into()
            .incoming(Arc::clone(&self.inner.connections), self.config().max_connections);
        tonic::transport::Server::builder()
            // Large windows: many concurrent sends of large batches on one connection would
            // otherwise stall on HTTP/2 flow control (64 KiB by default).
            .initial_connection_window_size(16 << 20)
            .initial_stream_window_size(4 << 20)
            .layer(tower::util::MapResponseLayer::new(service::oversized_request_status))
            .add_service(
                crate::protocol::v2::messaging_service_server::MessagingServiceServer::new(
                    service::Messaging::new(self.clone()),
                )
                .max_decoding_message_size(service::request_limit(self.config()))
                .max_encoding_message_size(130 << 20),
            )
            .add_service(crate::protocol::admin::admin_server::AdminServer::with_interceptor(
                admin::AdminApi::new(self.clone()),
                RequireCredentials::new(self.config().credentials.clone()),
            ))
            .add_service(tonic::service::interceptor::InterceptedService::new(
                crate::protocol::admin::replication_server::ReplicationServer::new(
                    replication::ReplicationApi::new(self.clone()),
                )
                .max_encoding_message_size(64 << 20)
                .max_decoding_message_size(64 << 20),
                RequireCredentials::new(self.config().credentials.clone()),
            ))
            .serve_with_incoming_shutdown(incoming, async move {
                shutdown.await;
                // Streams that would otherwise keep the graceful shutdown waiting (Telemetry,
                // long polls) end now.
                self.inner.stop.send_replace(true);
            })
            .await
    }

    /// Open client connections.
    pub fn connections(&self) -> usize {
        self.inner.connections.load(Ordering::Acquire)
    }

    /// Whether the broker is shutting down.
    pub fn is_stopping(&self) -> bool {
        *self.inner.stop.borrow()
    }

    /// Resolves when the broker is shutting down.
    pub(crate) fn stopping(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stop = self.inner.stop.subscribe();
        async move {
            let _ = stop.wait_for(|s| *s).await;
        }
    }
}
