//! The client SDK: producers and consumers speaking the RocketMQ 5 gRPC protocol, to OrbitMQ
//! and to Apache RocketMQ 5's proxy alike. It is the one implementation Rust applications use
//! directly and the Python, Node.js and Kotlin/Swift packages wrap.
//!
//! Its shape (`STYLE.md` §3): handles ([`Producer`], [`SimpleConsumer`]) are `Clone + Send +
//! Sync`, one `Arc` inside; the public API takes and returns owned, FFI-friendly types
//! ([`Message`], [`SendReceipt`], [`MessageView`]); the core never creates a runtime of its
//! own (background tasks run on the caller's, or the one given to the builder); errors are one
//! [`Error`] with stable [`ErrorKind`]s.
//!
//! ```no_run
//! # async fn demo() -> orbitmq_core::client::Result<()> {
//! use std::time::Duration;
//! use orbitmq_core::client::{ClientConfig, FilterExpression, Message, Producer, SimpleConsumer};
//!
//! let config = ClientConfig::new("127.0.0.1:8081");
//! let producer = Producer::builder(config.clone()).topics(["orders"]).build()?;
//! producer.start().await?;
//! let receipt = producer.send(Message::builder("orders").body("hello").tag("new").build()).await?;
//! println!("sent {}", receipt.message_id);
//!
//! let consumer = SimpleConsumer::builder(config, "billing")
//!     .subscribe("orders", FilterExpression::tags(["new"]))
//!     .build()?;
//! for message in consumer.receive(16, Duration::from_secs(30)).await? {
//!     consumer.ack(&message).await?;
//! }
//! producer.shutdown().await;
//! consumer.shutdown().await;
//! # Ok(()) }
//! ```

mod admin;
mod config;
mod error;
mod model;
mod offset_store;
mod pop;
mod producer;
mod pull_consumer;
mod push_consumer;
mod rpc;
mod session;
mod simple_consumer;

pub use crate::tls::ClientTls;
pub use admin::{
    Admin, BrokerStat, ConsumerProgress, GroupConfig, GroupCreated, GroupMember, GroupOptions,
    QueueOffsetReset, QueueProgress, QueueRoute, QueueStatus, StoredMessage, TopicConfig,
    TopicRoute, TopicStatus,
};
pub use config::{ClientConfig, Credentials, DEFAULT_REQUEST_TIMEOUT};
pub use error::{Error, ErrorKind, Result};
pub use model::{
    ConsumeResult, ConsumerModel, FilterExpression, Message, MessageBuilder, MessageQueue,
    MessageType, MessageView, SendReceipt,
};
pub use offset_store::OffsetStore;
pub use producer::{
    Producer, ProducerBuilder, Transaction, TransactionChecker, TransactionResolution,
};
pub use pull_consumer::{
    DEFAULT_AUTO_COMMIT_INTERVAL, DEFAULT_MAX_BATCH, PullConsumer, PullConsumerBuilder,
    REBALANCE_INTERVAL,
};
pub use push_consumer::{MessageListener, PushConsumer, PushConsumerBuilder};
pub use simple_consumer::{DEFAULT_AWAIT_DURATION, SimpleConsumer, SimpleConsumerBuilder};
