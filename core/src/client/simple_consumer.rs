//! The simple consumer: the application receives batches (each message invisible to the rest
//! of the group for a while), acknowledges each message it handled, and may extend a message's
//! invisible time. Unacknowledged messages come back after their invisible time, to the DLQ
//! after the group's max attempts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::runtime::Handle;

use crate::client::config::ClientConfig;
use crate::client::error::{Error, ErrorKind, Result};
use crate::client::model::{FilterExpression, MessageView};
use crate::client::pop::{self, Receive};
use crate::client::session::{Session, UNUSABLE_ROUTE_RETRY};
use crate::protocol::v2;

/// How long a receive waits for messages when there are none, by default.
pub const DEFAULT_AWAIT_DURATION: Duration = Duration::from_secs(20);

/// Builds a [`SimpleConsumer`].
pub struct SimpleConsumerBuilder {
    config: ClientConfig,
    group: String,
    subscriptions: Vec<(String, FilterExpression)>,
    await_duration: Duration,
    runtime: Option<Handle>,
}

impl SimpleConsumerBuilder {
    /// Subscribes to `topic` with `filter`.
    #[must_use]
    pub fn subscribe(
        mut self,
        topic: impl Into<String>,
        filter: FilterExpression,
    ) -> SimpleConsumerBuilder {
        self.subscriptions.push((topic.into(), filter));
        self
    }

    /// How long a receive waits for messages when there are none (long polling).
    #[must_use]
    pub fn await_duration(mut self, d: Duration) -> SimpleConsumerBuilder {
        self.await_duration = d;
        self
    }

    /// The runtime background tasks run on (default: the current one).
    #[must_use]
    pub fn runtime(mut self, handle: Handle) -> SimpleConsumerBuilder {
        self.runtime = Some(handle);
        self
    }

    /// The consumer, not started yet.
    pub fn build(self) -> Result<SimpleConsumer> {
        for (t, _) in &self.subscriptions {
            crate::protocol::validate::topic(t)?;
        }
        let session = Session::new(
            self.config,
            v2::ClientType::SimpleConsumer,
            Some(self.group),
            self.runtime,
            "simple consumer",
        )?;
        for (t, f) in self.subscriptions {
            session.subscribe(&t, f);
        }
        Ok(SimpleConsumer {
            inner: Arc::new(Inner {
                session,
                await_duration: self.await_duration,
                cursor: AtomicUsize::new(0),
            }),
        })
    }
}

struct Inner {
    session: Arc<Session>,
    await_duration: Duration,
    cursor: AtomicUsize,
}

/// Receives and acknowledges messages of a consumer group. Cheap to clone.
#[derive(Clone)]
pub struct SimpleConsumer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SimpleConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimpleConsumer")
            .field("group", &self.inner.session.group())
            .field("client_id", &self.inner.session.rpc.client_id())
            .finish()
    }
}

impl SimpleConsumer {
    /// Starts building a consumer of `group`.
    pub fn builder(config: ClientConfig, group: impl Into<String>) -> SimpleConsumerBuilder {
        SimpleConsumerBuilder {
            config,
            group: group.into(),
            subscriptions: Vec::new(),
            await_duration: DEFAULT_AWAIT_DURATION,
            runtime: None,
        }
    }

    /// Connects: fetches the subscribed topics' routes and syncs settings with the server.
    pub async fn start(&self) -> Result<()> {
        self.inner.session.start().await
    }

    /// The group.
    #[must_use]
    pub fn group(&self) -> String {
        self.inner.session.group().unwrap_or_default().to_owned()
    }

    /// Subscribes to `topic` (or changes its filter).
    pub async fn subscribe(&self, topic: &str, filter: FilterExpression) -> Result<()> {
        let s = &self.inner.session;
        s.check_open()?;
        crate::protocol::validate::topic(topic)?;
        s.route(topic).await.map_err(|e| e.with_operation("subscribe"))?;
        s.subscribe(topic, filter);
        s.sync_settings();
        Ok(())
    }

    /// Drops the subscription of `topic`.
    pub fn unsubscribe(&self, topic: &str) {
        self.inner.session.unsubscribe(topic);
        self.inner.session.sync_settings();
    }

    /// Receives up to `max` messages (1 to 32), each invisible to the group for
    /// `invisible_duration` unless acknowledged. Waits up to the await duration when there are
    /// none, then returns an empty list.
    pub async fn receive(
        &self,
        max: u32,
        invisible_duration: Duration,
    ) -> Result<Vec<MessageView>> {
        let s = &self.inner.session;
        if !(1..=32).contains(&max) {
            return Err(Error::bad_request(format!(
                "receive asks for 1 to 32 messages, not {max}"
            ))
            .with_operation("receive"));
        }
        if invisible_duration < Duration::from_secs(10)
            || invisible_duration > Duration::from_secs(12 * 3600)
        {
            return Err(Error::bad_request(format!(
                "the invisible duration must be from 10 s to 12 h, not {} ms",
                invisible_duration.as_millis()
            ))
            .with_operation("receive"));
        }
        s.start().await.map_err(|e| e.with_operation("receive"))?;
        let subs = s.subscriptions();
        if subs.is_empty() {
            return Err(
                Error::bad_request("the consumer subscribes to no topic").with_operation("receive")
            );
        }
        // A topic, then one of its readable queues, in turn.
        let (topic, filter) = &subs[self.inner.cursor.fetch_add(1, Ordering::Relaxed) % subs.len()];
        let mut route = s.route(topic).await.map_err(|e| e.with_operation("receive"))?;
        if route.readable().is_empty() {
            route = s
                .refresh_route(topic, UNUSABLE_ROUTE_RETRY)
                .await
                .map_err(|e| e.with_operation("receive"))?;
        }
        let queues = route.readable();
        if queues.is_empty() {
            return Err(Error::new(
                ErrorKind::Forbidden,
                format!("topic {topic} has no readable queue"),
            )
            .with_operation("receive"));
        }
        let mut queue = queues[route.next(queues.len())].clone();
        queue.topic = Some(s.resource(topic));
        let received = pop::receive(
            s,
            Receive {
                queue,
                filter,
                batch: max,
                invisible: Some(invisible_duration),
                auto_renew: false,
                wait: self.inner.await_duration,
            },
        )
        .await;
        if let Err(e) = &received
            && e.kind() == ErrorKind::Unavailable
            && let Err(refresh) = s.refresh_route(topic, UNUSABLE_ROUTE_RETRY).await
        {
            // The broker is gone: the next receive should see the route without it.
            tracing::debug!(topic, error = %refresh, "route refresh after a failed receive failed");
        }
        received
    }

    /// Acknowledges `message`: consumed, not to be redelivered.
    pub async fn ack(&self, message: &MessageView) -> Result<()> {
        self.inner.session.check_open()?;
        pop::ack(&self.inner.session, message).await
    }

    /// Acknowledges `messages` in one request per endpoint and topic they came from (usually
    /// one): what [`SimpleConsumer::ack`] does for each, in far fewer round trips. An error
    /// says the first request or entry that failed; messages of requests before it are
    /// acknowledged, the rest may not be (acking them again is harmless).
    pub async fn ack_batch(&self, messages: &[MessageView]) -> Result<()> {
        self.inner.session.check_open()?;
        pop::ack_batch(&self.inner.session, messages).await
    }

    /// Makes `message` invisible for `duration` from now (to keep working on it, or to have it
    /// redelivered sooner). Returns its new receipt handle, which later acks must use; it is
    /// also stored in `message`.
    pub async fn change_invisible_duration(
        &self,
        message: &mut MessageView,
        duration: Duration,
    ) -> Result<String> {
        self.inner.session.check_open()?;
        let handle = pop::change_invisible(&self.inner.session, message, duration).await?;
        message.receipt_handle.clone_from(&handle);
        Ok(handle)
    }

    /// Stops the consumer; unacknowledged messages come back after their invisible time.
    pub async fn shutdown(&self) {
        self.inner.session.shutdown().await;
    }
}
