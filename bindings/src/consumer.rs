//! The three consumers: `PushConsumer` with a listener the app implements, `SimpleConsumer`
//! (receive, ack) and `PullConsumer` (poll, commit, seek).

use std::sync::Arc;
use std::time::Duration;

use orbitmq_core::client::{self as core, OffsetStore};

use crate::config::ClientConfig;
use crate::error::{CallbackError, OrbitMqError};
use crate::message::{
    ConsumeResult, ConsumerModel, Delivery, FilterExpression, MessageQueue, MessageView,
    Subscription, views,
};
use crate::runtime::{Guarded, handle, run};

/// Consumes what a `PushConsumer` receives. Throwing counts as `FAILURE`: the message is
/// redelivered.
#[uniffi::export(with_foreign)]
#[async_trait::async_trait]
pub trait MessageListener: Send + Sync {
    async fn consume(&self, message: MessageView) -> Result<ConsumeResult, CallbackError>;
}

struct Listener(Arc<dyn MessageListener>);

#[async_trait::async_trait]
impl core::MessageListener for Listener {
    async fn consume(&self, message: core::MessageView) -> core::ConsumeResult {
        self.0.consume(message.into()).await.map_or(core::ConsumeResult::Failure, Into::into)
    }
}

/// How a push consumer runs; the SDK's defaults where not given.
#[derive(uniffi::Record)]
pub struct PushConsumerOptions {
    #[uniffi(default = None)]
    pub model: Option<ConsumerModel>,
    /// Listener calls at once.
    #[uniffi(default = None)]
    pub consumption_threads: Option<u32>,
    /// Messages received ahead of the listener.
    #[uniffi(default = None)]
    pub max_cached_messages: Option<u32>,
    /// Where a broadcasting member keeps its offsets (a directory).
    #[uniffi(default = None)]
    pub offset_dir: Option<String>,
}

/// Receives messages in the background and hands each to the listener.
#[derive(uniffi::Object)]
pub struct PushConsumer(Guarded<core::PushConsumer>);

#[uniffi::export]
impl PushConsumer {
    /// A consumer of `group`, not started yet.
    #[uniffi::constructor(default(options = None))]
    pub fn new(
        config: ClientConfig,
        group: String,
        subscriptions: Vec<Subscription>,
        listener: Arc<dyn MessageListener>,
        options: Option<PushConsumerOptions>,
    ) -> Result<Arc<PushConsumer>, OrbitMqError> {
        let mut b = core::PushConsumer::builder(config.into(), group)
            .listener(Arc::new(Listener(listener)))
            .runtime(handle().clone());
        for (topic, filter) in subscriptions.into_iter().map(Subscription::into_core) {
            b = b.subscribe(topic, filter);
        }
        if let Some(o) = options {
            if let Some(m) = o.model {
                b = b.model(m.into());
            }
            if let Some(n) = o.consumption_threads {
                b = b.consumption_threads(n as usize);
            }
            if let Some(n) = o.max_cached_messages {
                b = b.max_cached_messages(n as usize);
            }
            if let Some(dir) = o.offset_dir {
                b = b.offset_store(OffsetStore::Local(dir.into()));
            }
        }
        Ok(Arc::new(PushConsumer(Guarded::new(b.build()?))))
    }

    /// Connects and starts consuming.
    pub async fn start(&self) -> Result<(), OrbitMqError> {
        let c = self.0.clone();
        run(async move { c.start().await }).await
    }

    pub fn group(&self) -> String {
        self.0.group()
    }

    /// Adds or replaces a subscription.
    pub async fn subscribe(
        &self,
        topic: String,
        filter: FilterExpression,
    ) -> Result<(), OrbitMqError> {
        let c = self.0.clone();
        run(async move { c.subscribe(&topic, filter.into()).await }).await
    }

    pub fn unsubscribe(&self, topic: &str) {
        self.0.unsubscribe(topic);
    }

    /// Messages received and not yet consumed.
    pub fn cached_messages(&self) -> u64 {
        self.0.cached_messages() as u64
    }

    /// Stops receiving and waits for the listener calls in progress.
    pub async fn shutdown(&self) {
        let c = self.0.clone();
        let _ = run(async move {
            c.shutdown().await;
            Ok(())
        })
        .await;
    }
}

/// Receives messages when asked and acknowledges them one by one.
#[derive(uniffi::Object)]
pub struct SimpleConsumer(Guarded<core::SimpleConsumer>);

#[uniffi::export]
impl SimpleConsumer {
    /// A consumer of `group`, not started yet; a receive waits up to `await_duration` when
    /// there is nothing.
    #[uniffi::constructor(default(await_duration = None))]
    pub fn new(
        config: ClientConfig,
        group: String,
        subscriptions: Vec<Subscription>,
        await_duration: Option<Duration>,
    ) -> Result<Arc<SimpleConsumer>, OrbitMqError> {
        let mut b = core::SimpleConsumer::builder(config.into(), group).runtime(handle().clone());
        for (topic, filter) in subscriptions.into_iter().map(Subscription::into_core) {
            b = b.subscribe(topic, filter);
        }
        if let Some(d) = await_duration {
            b = b.await_duration(d);
        }
        Ok(Arc::new(SimpleConsumer(Guarded::new(b.build()?))))
    }

    pub async fn start(&self) -> Result<(), OrbitMqError> {
        let c = self.0.clone();
        run(async move { c.start().await }).await
    }

    pub fn group(&self) -> String {
        self.0.group()
    }

    pub async fn subscribe(
        &self,
        topic: String,
        filter: FilterExpression,
    ) -> Result<(), OrbitMqError> {
        let c = self.0.clone();
        run(async move { c.subscribe(&topic, filter.into()).await }).await
    }

    pub fn unsubscribe(&self, topic: &str) {
        self.0.unsubscribe(topic);
    }

    /// Up to `max` messages, invisible to others for `invisible_duration` unless acknowledged.
    pub async fn receive(
        &self,
        max: u32,
        invisible_duration: Duration,
    ) -> Result<Vec<MessageView>, OrbitMqError> {
        let c = self.0.clone();
        run(async move { c.receive(max, invisible_duration).await.map(views) }).await
    }

    /// Acknowledges a received message.
    pub async fn ack(&self, message: MessageView) -> Result<(), OrbitMqError> {
        let c = self.0.clone();
        run(async move { c.ack(&*message.delivery.0.lock().await).await }).await
    }

    /// Makes `message` invisible for `duration` from now; returns its new receipt handle,
    /// which later acks of this `MessageView` use.
    pub async fn change_invisible_duration(
        &self,
        message: MessageView,
        duration: Duration,
    ) -> Result<String, OrbitMqError> {
        let c = self.0.clone();
        let delivery: Arc<Delivery> = message.delivery;
        run(async move {
            c.change_invisible_duration(&mut *delivery.0.lock().await, duration).await
        })
        .await
    }

    pub async fn shutdown(&self) {
        let c = self.0.clone();
        let _ = run(async move {
            c.shutdown().await;
            Ok(())
        })
        .await;
    }
}

/// How a pull consumer keeps its positions; the SDK's defaults where not given.
#[derive(uniffi::Record)]
pub struct PullConsumerOptions {
    /// Keep offsets in this directory instead of on the broker.
    #[uniffi(default = None)]
    pub offset_dir: Option<String>,
    /// Commit positions this often; zero for manual commits only.
    #[uniffi(default = None)]
    pub auto_commit_interval: Option<Duration>,
    /// Messages per poll at most.
    #[uniffi(default = None)]
    pub max_batch: Option<u32>,
}

/// Reads queues by offset: poll, commit, seek.
#[derive(uniffi::Object)]
pub struct PullConsumer(Guarded<core::PullConsumer>);

#[uniffi::export]
impl PullConsumer {
    /// A consumer of `group`, not started yet.
    #[uniffi::constructor(default(subscriptions = [], options = None))]
    pub fn new(
        config: ClientConfig,
        group: String,
        subscriptions: Vec<Subscription>,
        options: Option<PullConsumerOptions>,
    ) -> Result<Arc<PullConsumer>, OrbitMqError> {
        let mut b = core::PullConsumer::builder(config.into(), group).runtime(handle().clone());
        for (topic, filter) in subscriptions.into_iter().map(Subscription::into_core) {
            b = b.subscribe(topic, filter);
        }
        if let Some(o) = options {
            if let Some(dir) = o.offset_dir {
                b = b.offset_store(OffsetStore::Local(dir.into()));
            }
            if let Some(i) = o.auto_commit_interval {
                b = b.auto_commit_interval(i);
            }
            if let Some(n) = o.max_batch {
                b = b.max_batch(n);
            }
        }
        Ok(Arc::new(PullConsumer(Guarded::new(b.build()?))))
    }

    pub async fn start(&self) -> Result<(), OrbitMqError> {
        let c = self.0.clone();
        run(async move { c.start().await }).await
    }

    pub fn group(&self) -> String {
        self.0.group()
    }

    pub async fn subscribe(
        &self,
        topic: String,
        filter: FilterExpression,
    ) -> Result<(), OrbitMqError> {
        let c = self.0.clone();
        run(async move { c.subscribe(&topic, filter.into()).await }).await
    }

    /// Reads exactly these queues (no group rebalancing).
    pub async fn assign(&self, queues: Vec<MessageQueue>) -> Result<(), OrbitMqError> {
        let c = self.0.clone();
        let queues = queues.into_iter().map(Into::into).collect();
        run(async move { c.assign(queues).await }).await
    }

    /// The queues this member reads now.
    pub fn assignment(&self) -> Vec<MessageQueue> {
        self.0.assignment().into_iter().map(Into::into).collect()
    }

    /// The queues of `topic`.
    pub async fn queues(&self, topic: String) -> Result<Vec<MessageQueue>, OrbitMqError> {
        let c = self.0.clone();
        run(async move { Ok(c.queues(&topic).await?.into_iter().map(Into::into).collect()) }).await
    }

    /// The next offset to read in `queue`, if assigned.
    pub fn position(&self, queue: MessageQueue) -> Option<i64> {
        self.0.position(&queue.into())
    }

    /// The next messages of the assigned queues, waiting up to `timeout` when there are none.
    pub async fn poll(&self, timeout: Duration) -> Result<Vec<MessageView>, OrbitMqError> {
        let c = self.0.clone();
        run(async move { c.poll(timeout).await.map(views) }).await
    }

    /// Stores the positions reached.
    pub async fn commit(&self) -> Result<(), OrbitMqError> {
        let c = self.0.clone();
        run(async move { c.commit().await }).await
    }

    /// Reads `queue` from `offset` next.
    pub fn seek(&self, queue: MessageQueue, offset: i64) -> Result<(), OrbitMqError> {
        Ok(self.0.seek(&queue.into(), offset)?)
    }

    pub async fn seek_to_beginning(&self, topic: String) -> Result<(), OrbitMqError> {
        let c = self.0.clone();
        run(async move { c.seek_to_beginning(&topic).await }).await
    }

    pub async fn seek_to_end(&self, topic: String) -> Result<(), OrbitMqError> {
        let c = self.0.clone();
        run(async move { c.seek_to_end(&topic).await }).await
    }

    /// Reads each queue of `topic` from the first message stored at or after `timestamp_ms`.
    pub async fn seek_to_timestamp(
        &self,
        topic: String,
        timestamp_ms: i64,
    ) -> Result<(), OrbitMqError> {
        let c = self.0.clone();
        run(async move { c.seek_to_timestamp(&topic, timestamp_ms).await }).await
    }

    pub async fn shutdown(&self) {
        let c = self.0.clone();
        let _ = run(async move {
            c.shutdown().await;
            Ok(())
        })
        .await;
    }
}
