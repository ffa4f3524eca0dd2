//! The broker: topics, groups, clients and consumption state over the storage engine, and the
//! gRPC services that expose them (`apache.rocketmq.v2.MessagingService` for clients,
//! `orbitmq.v1.Admin` for operators). Every RocketMQ behaviour lives here once; `service`
//! and `admin` only convert between the wire and these methods.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod admin;
pub mod clients;
pub mod convert;
pub mod error;
pub mod pop;
pub mod pull;
mod receive;
mod send;
pub mod service;
pub mod topics;
pub mod validate;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

pub use error::{BrokerError, Result};
use serde::{Deserialize, Serialize};

use crate::storage::{MessageStore, StoreConfig};

/// Broker configuration (the `[broker]` keys of the server's TOML, RocketMQ's names where
/// there is one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Broker name, as routes show it.
    pub broker_name: String,
    /// Cluster name.
    pub cluster_name: String,
    /// Create a topic on first use (route query or send) instead of answering `TOPIC_NOT_FOUND`.
    pub auto_create_topics: bool,
    /// Create a consumer group on first use instead of answering `CONSUMER_GROUP_NOT_FOUND`.
    pub auto_create_groups: bool,
    /// Read and write queues of auto-created topics.
    pub default_queues: u32,
    /// Largest message body accepted, bytes.
    pub max_body_size: usize,
    /// Deliveries before a message would go to the dead-letter queue, for new groups.
    pub max_delivery_attempts: u32,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            broker_name: "broker-a".to_owned(),
            cluster_name: "DefaultCluster".to_owned(),
            auto_create_topics: true,
            auto_create_groups: true,
            default_queues: 8,
            max_body_size: 4 << 20,
            max_delivery_attempts: 16,
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
    /// Round-robin counter for sends that do not name a message group.
    send_cursor: AtomicU64,
}

impl Broker {
    /// Opens the store and builds the broker on it.
    pub fn open(config: BrokerConfig, store: StoreConfig) -> Result<Broker> {
        let store = MessageStore::open(store)?;
        Ok(Broker::with_store(config, store))
    }

    /// A broker over an already open store.
    pub fn with_store(config: BrokerConfig, store: MessageStore) -> Broker {
        let pop = pop::Pop::new(store.clone());
        Broker {
            inner: Arc::new(Inner {
                config,
                store,
                clients: clients::Clients::default(),
                pop,
                send_cursor: AtomicU64::new(0),
            }),
        }
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

    /// The address clients reach this broker at (the store host).
    pub fn address(&self) -> SocketAddr {
        self.store().config().store_host
    }

    /// Flushes and closes the store. Blocking.
    pub fn close(&self) -> Result<()> {
        self.store().close().map_err(Into::into)
    }

    /// Serves the client and admin gRPC services on `listener` until `shutdown` resolves.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> std::result::Result<(), tonic::transport::Error> {
        use tokio_stream::StreamExt as _;
        // Nagle's algorithm would hold a response's last small write for the client's delayed
        // ACK (40 ms): the server builder's own `tcp_nodelay` only covers listeners it binds.
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
            conn.inspect(|s| {
                if let Err(e) = s.set_nodelay(true) {
                    tracing::warn!(error = %e, "cannot set TCP_NODELAY");
                }
            })
        });
        tonic::transport::Server::builder()
            // Large windows: many concurrent sends of large batches on one connection would
            // otherwise stall on HTTP/2 flow control (64 KiB by default).
            .initial_connection_window_size(16 << 20)
            .initial_stream_window_size(4 << 20)
            .add_service(
                crate::protocol::v2::messaging_service_server::MessagingServiceServer::new(
                    service::Messaging::new(self.clone()),
                )
                .max_decoding_message_size(130 << 20)
                .max_encoding_message_size(130 << 20),
            )
            .add_service(crate::protocol::admin::admin_server::AdminServer::new(
                admin::AdminApi::new(self.clone()),
            ))
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
    }
}
