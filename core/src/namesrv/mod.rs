//! The name server (`orbitmq namesrv`): the registry of live brokers and the topic routes
//! built from it. Brokers register (and heartbeat) through `orbitmq.v1.Cluster`; clients ask
//! for routes through `apache.rocketmq.v2.MessagingService` QueryRoute, as they ask Apache's
//! proxy; operators use `orbitmq.v1.Admin`, answered by calling the brokers. All three on one
//! port. Several name servers run side by side without talking to each other: every broker
//! registers with all of them.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod admin;
mod cluster;
mod messaging;
pub mod registry;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use tonic::service::interceptor::InterceptedService;

use crate::broker::listener::Listener;
use crate::peer::{PeerTls, Peers};
use crate::protocol::auth::{RequireCredentials, ServerCredentials};
use registry::Registry;

/// Name server configuration (the `[namesrv]` keys of the server's TOML).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NamesrvConfig {
    /// A broker not heard from for this long leaves the registry and the routes, ms
    /// (RocketMQ's `BROKER_CHANNEL_EXPIRED_TIME`, 120 s). Brokers register every
    /// `register_interval_ms` (30 s), so a live broker misses three before it expires.
    pub broker_expiry_ms: u64,
    /// When a client asks for the route of a topic no broker holds, have the masters that
    /// create topics on first use create it (RocketMQ's `autoCreateTopicEnable`); off, the
    /// client gets `TOPIC_NOT_FOUND`.
    pub auto_create_topics: bool,
    /// Timeout of each call to a broker (admin requests, topic creation), ms.
    pub broker_call_timeout_ms: u64,
}

impl Default for NamesrvConfig {
    fn default() -> Self {
        NamesrvConfig {
            broker_expiry_ms: 120_000,
            auto_create_topics: true,
            broker_call_timeout_ms: 5_000,
        }
    }
}

/// A running name server. Cheap to clone.
#[derive(Debug, Clone)]
pub struct NameServer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: NamesrvConfig,
    /// What every request must be signed with, when set (and what its own calls are signed
    /// with).
    credentials: Option<ServerCredentials>,
    address: SocketAddr,
    registry: Mutex<Registry>,
    peers: Peers,
    started: Instant,
}

impl NameServer {
    /// A name server answering at `address` (what it calls itself in cluster listings),
    /// calling brokers as `tls` says.
    pub fn new(
        config: NamesrvConfig,
        address: SocketAddr,
        credentials: Option<ServerCredentials>,
        tls: PeerTls,
    ) -> NameServer {
        let timeout = Duration::from_millis(config.broker_call_timeout_ms.max(100));
        NameServer {
            inner: Arc::new(Inner {
                peers: Peers::new(&format!("namesrv@{address}"), timeout, credentials.clone(), tls),
                credentials,
                config,
                address,
                registry: Mutex::new(Registry::default()),
                started: Instant::now(),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &NamesrvConfig {
        &self.inner.config
    }

    /// Its address.
    pub fn address(&self) -> SocketAddr {
        self.inner.address
    }

    /// How long it has been running.
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// The registry, locked.
    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        self.inner.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn credentials(&self) -> Option<&ServerCredentials> {
        self.inner.credentials.as_ref()
    }

    pub(crate) fn peers(&self) -> &Peers {
        &self.inner.peers
    }

    /// Drops the brokers silent for `broker_expiry_ms`; returns how many.
    pub fn expire(&self) -> usize {
        let expiry = Duration::from_millis(self.config().broker_expiry_ms);
        let gone = self.registry().expire(Instant::now(), expiry);
        for (key, entry) in &gone {
            tracing::warn!(
                broker = key.broker_name,
                id = key.broker_id,
                address = entry.address,
                silent_ms = crate::storage::message::now_millis() - entry.last_heartbeat,
                "broker expired: no registration within broker_expiry_ms; it leaves the routes"
            );
            self.peers().forget(&entry.address);
        }
        gone.len()
    }

    /// Serves the name server's gRPC services on `listener` until `shutdown` resolves, and
    /// expires silent brokers meanwhile.
    pub async fn serve(
        &self,
        listener: impl Into<Listener>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), tonic::transport::Error> {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let ns = self.clone();
        let expiring = tokio::spawn(async move {
            // Checked often enough that a broker leaves within a tenth of the expiry after it.
            let every =
                Duration::from_millis((ns.config().broker_expiry_ms / 10).clamp(50, 10_000));
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => { ns.expire(); }
                    _ = stopped.changed() => return,
                }
            }
        });
        let incoming = listener.into().incoming(Arc::default(), 10_000);
        let served = tonic::transport::Server::builder()
            .add_service(
                crate::protocol::v2::messaging_service_server::MessagingServiceServer::new(
                    messaging::Messaging::new(self.clone()),
                ),
            )
            .add_service(InterceptedService::new(
                crate::protocol::admin::admin_server::AdminServer::new(admin::AdminApi::new(
                    self.clone(),
                ))
                .max_decoding_message_size(256 << 20)
                .max_encoding_message_size(256 << 20),
                RequireCredentials::new(self.inner.credentials.clone()),
            ))
            .add_service(InterceptedService::new(
                crate::protocol::admin::cluster_server::ClusterServer::new(
                    cluster::ClusterApi::new(self.clone()),
                )
                .max_decoding_message_size(256 << 20),
                RequireCredentials::new(self.inner.credentials.clone()),
            ))
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await;
        let _ = stop.send(true);
        let _ = expiring.await;
        served
    }
}
