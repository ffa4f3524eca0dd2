//! The push consumer: the SDK receives and the application's [`MessageListener`] consumes, one
//! call per message, on up to `consumption_threads` messages at once. A `Success` is
//! acknowledged; a `Failure` (or a listener that panics) is redelivered after the group's
//! back-off, and goes to the dead-letter queue after the group's max attempts.
//!
//! Clustering consumption runs on `ReceiveMessage`/`AckMessage`, like the official clients'
//! push consumers, so an OrbitMQ push consumer shares a group with official simple and push
//! consumers. For a FIFO group (the server says so in its settings) consumption is orderly:
//! the messages of one assignment are consumed one at a time, in order, and a failed one is
//! retried in place (with the back-off) before the next, then dead-lettered after max attempts.
//!
//! At most `max_cached_messages` messages are held (received and not yet acknowledged);
//! receiving pauses while the cache is full. `shutdown` stops receiving, lets the listener
//! calls in flight finish and settles them, then leaves.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::client::config::ClientConfig;
use crate::client::error::{Error, ErrorKind, Result};
use crate::client::model::{ConsumeResult, ConsumerModel, FilterExpression, MessageView};
use crate::client::pop::{self, Receive};
use crate::client::session::{Session, endpoint_of, endpoints_of};
use crate::protocol::v2;

/// Consumes the messages a [`PushConsumer`] receives.
#[async_trait::async_trait]
pub trait MessageListener: Send + Sync + 'static {
    /// Consumes `message`: `Success` acknowledges it, `Failure` has it redelivered.
    async fn consume(&self, message: MessageView) -> ConsumeResult;
}

/// How often assignments are asked for again.
const ASSIGNMENT_REFRESH: Duration = Duration::from_secs(5);
/// How long one receive waits when there is nothing.
const LONG_POLL: Duration = Duration::from_secs(20);
/// The pause after a receive fails, before the next.
const RECEIVE_RETRY: Duration = Duration::from_secs(1);

/// Builds a [`PushConsumer`].
pub struct PushConsumerBuilder {
    config: ClientConfig,
    group: String,
    subscriptions: Vec<(String, FilterExpression)>,
    listener: Option<Arc<dyn MessageListener>>,
    consumption_threads: usize,
    max_cached_messages: usize,
    model: ConsumerModel,
    runtime: Option<Handle>,
}

impl PushConsumerBuilder {
    /// Subscribes to `topic` with `filter`.
    #[must_use]
    pub fn subscribe(
        mut self,
        topic: impl Into<String>,
        filter: FilterExpression,
    ) -> PushConsumerBuilder {
        self.subscriptions.push((topic.into(), filter));
        self
    }

    /// The listener that consumes each message (required).
    #[must_use]
    pub fn listener(mut self, listener: Arc<dyn MessageListener>) -> PushConsumerBuilder {
        self.listener = Some(listener);
        self
    }

    /// Messages consumed at once (default 20).
    #[must_use]
    pub fn consumption_threads(mut self, n: usize) -> PushConsumerBuilder {
        self.consumption_threads = n;
        self
    }

    /// Messages held at most, received and not yet settled (default 1024).
    #[must_use]
    pub fn max_cached_messages(mut self, n: usize) -> PushConsumerBuilder {
        self.max_cached_messages = n;
        self
    }

    /// Clustering (default: each message to one member) or broadcasting (each to all).
    #[must_use]
    pub fn model(mut self, model: ConsumerModel) -> PushConsumerBuilder {
        self.model = model;
        self
    }

    /// The runtime the consumer runs on (default: the current one).
    #[must_use]
    pub fn runtime(mut self, handle: Handle) -> PushConsumerBuilder {
        self.runtime = Some(handle);
        self
    }

    /// The consumer, not started yet.
    pub fn build(self) -> Result<PushConsumer> {
        let listener = self.listener.ok_or_else(|| {
            Error::bad_request("a push consumer needs a listener (PushConsumerBuilder::listener)")
        })?;
        if self.consumption_threads == 0 || self.consumption_threads > 1024 {
            return Err(Error::bad_request(format!(
                "consumption_threads must be from 1 to 1024, not {}",
                self.consumption_threads
            )));
        }
        if self.max_cached_messages == 0 {
            return Err(Error::bad_request("max_cached_messages must be above 0"));
        }
        if self.model == ConsumerModel::Broadcasting {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "broadcasting push consumers are not built yet; use clustering",
            ));
        }
        for (t, _) in &self.subscriptions {
            crate::protocol::validate::topic(t)?;
        }
        let session = Session::new(
            self.config,
            v2::ClientType::PushConsumer,
            Some(self.group),
            self.runtime,
            "push consumer",
        )?;
        for (t, f) in self.subscriptions {
            session.subscribe(&t, f);
        }
        let stop = CancellationToken::new();
        let guard = Arc::new(DropGuard { stop: stop.clone(), session: Arc::downgrade(&session) });
        Ok(PushConsumer {
            _guard: guard,
            inner: Arc::new(Inner {
                session,
                listener,
                threads: self.consumption_threads,
                consuming: Arc::new(Semaphore::new(self.consumption_threads)),
                cache: Arc::new(Semaphore::new(self.max_cached_messages)),
                held: Arc::new(AtomicUsize::new(0)),
                max_cached: self.max_cached_messages,
                stop,
                loops: Mutex::new(HashMap::new()),
            }),
        })
    }
}

struct Inner {
    session: Arc<Session>,
    listener: Arc<dyn MessageListener>,
    threads: usize,
    /// One permit per listener call in flight.
    consuming: Arc<Semaphore>,
    /// One permit per message held (or room reserved for a receive in progress).
    cache: Arc<Semaphore>,
    /// Messages held: received and not yet settled.
    held: Arc<AtomicUsize>,
    max_cached: usize,
    /// Stops receiving (before the session itself shuts down).
    stop: CancellationToken,
    /// The receive loop of each assignment (topic, queue), with its own stop.
    loops: Mutex<HashMap<(String, String, i32), CancellationToken>>,
}

/// Receives messages of a group's subscriptions and hands each to the listener. Cheap to
/// clone; dropping the last clone without `shutdown` stops it too (without waiting).
#[derive(Clone)]
pub struct PushConsumer {
    inner: Arc<Inner>,
    /// Dropped with the last handle: the background tasks hold `inner`, not this.
    _guard: Arc<DropGuard>,
}

struct DropGuard {
    stop: CancellationToken,
    session: std::sync::Weak<Session>,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(s) = self.session.upgrade() {
            s.cancel();
        }
    }
}

impl std::fmt::Debug for PushConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushConsumer")
            .field("group", &self.inner.session.group())
            .field("client_id", &self.inner.session.rpc.client_id())
            .finish_non_exhaustive()
    }
}

impl PushConsumer {
    /// Starts building a push consumer of `group`.
    pub fn builder(config: ClientConfig, group: impl Into<String>) -> PushConsumerBuilder {
        PushConsumerBuilder {
            config,
            group: group.into(),
            subscriptions: Vec::new(),
            listener: None,
            consumption_threads: 20,
            max_cached_messages: 1024,
            model: ConsumerModel::Clustering,
            runtime: None,
        }
    }

    /// Connects and starts consuming.
    pub async fn start(&self) -> Result<()> {
        let s = &self.inner.session;
        s.start().await?;
        rebalance(&self.inner).await?;
        let weak = Arc::downgrade(&self.inner);
        let stop = self.inner.stop.clone();
        s.spawn(async move {
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(ASSIGNMENT_REFRESH) => {}
                }
                let Some(inner) = weak.upgrade() else { break };
                if let Err(e) = rebalance(&inner).await {
                    tracing::warn!(error = %e, "asking for assignments failed; keeping the old ones");
                }
            }
        });
        Ok(())
    }

    /// The group.
    #[must_use]
    pub fn group(&self) -> String {
        self.inner.session.group().unwrap_or_default().to_owned()
    }

    /// Subscribes to `topic` (or changes its filter); effective at once.
    pub async fn subscribe(&self, topic: &str, filter: FilterExpression) -> Result<()> {
        let s = &self.inner.session;
        s.check_open()?;
        crate::protocol::validate::topic(topic)?;
        s.route(topic).await.map_err(|e| e.with_operation("subscribe"))?;
        s.subscribe(topic, filter);
        s.sync_settings();
        // A changed filter applies to new receive loops: restart this topic's.
        self.stop_loops(|t| t == topic);
        rebalance(&self.inner).await
    }

    /// Drops the subscription of `topic`.
    pub fn unsubscribe(&self, topic: &str) {
        self.inner.session.unsubscribe(topic);
        self.inner.session.sync_settings();
        self.stop_loops(|t| t == topic);
    }

    /// Messages received and not yet settled.
    #[must_use]
    pub fn cached_messages(&self) -> usize {
        self.inner.held.load(Ordering::Relaxed)
    }

    /// Stops receiving, waits for the listener calls in flight and settles them, then leaves
    /// the group. Messages received but not consumed come back to the group.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        inner.stop.cancel();
        self.stop_loops(|_| true);
        let threads = u32::try_from(inner.threads).unwrap_or(u32::MAX);
        // Every permit back: no listener call is running any more.
        if let Ok(all) = inner.consuming.acquire_many(threads).await {
            all.forget();
        }
        inner.consuming.close();
        inner.session.shutdown().await;
    }

    fn stop_loops(&self, which: impl Fn(&str) -> bool) {
        let mut loops = self.inner.loops.lock().unwrap_or_else(PoisonError::into_inner);
        loops.retain(|(topic, _, _), stop| {
            if which(topic) {
                stop.cancel();
                false
            } else {
                true
            }
        });
    }
}

/// Asks every subscribed topic's assignments and runs one receive loop per assignment.
async fn rebalance(inner: &Arc<Inner>) -> Result<()> {
    let s = &inner.session;
    if inner.stop.is_cancelled() {
        return Ok(());
    }
    for (topic, filter) in s.subscriptions() {
        let assignments = query_assignment(inner, &topic).await?;
        let mut loops = inner.loops.lock().unwrap_or_else(PoisonError::into_inner);
        let wanted: Vec<(String, String, i32)> = assignments
            .iter()
            .filter_map(|q| Some((topic.clone(), endpoint_of(q)?, q.id)))
            .collect();
        loops.retain(|key, stop| {
            if key.0 == topic && !wanted.contains(key) {
                stop.cancel();
                false
            } else {
                true
            }
        });
        for (key, queue) in wanted.into_iter().zip(assignments) {
            if loops.contains_key(&key) {
                continue;
            }
            let stop = inner.stop.child_token();
            loops.insert(key, stop.clone());
            let inner = Arc::clone(inner);
            let filter = filter.clone();
            s.spawn(receive_loop(inner, queue, filter, stop));
        }
    }
    Ok(())
}

async fn query_assignment(inner: &Inner, topic: &str) -> Result<Vec<v2::MessageQueue>> {
    let s = &inner.session;
    let route = s.route(topic).await?;
    let endpoint = route.readable().first().and_then(|q| endpoint_of(q)).ok_or_else(|| {
        Error::new(ErrorKind::Forbidden, format!("topic {topic} has no readable queue"))
    })?;
    let req = v2::QueryAssignmentRequest {
        topic: Some(s.resource(topic)),
        group: s.group_resource(),
        endpoints: Some(endpoints_of(&endpoint)),
    };
    let resp = s
        .rpc
        .call("query assignment", &endpoint, Duration::ZERO, req, |mut c, r| async move {
            c.query_assignment(r).await
        })
        .await?;
    if let Some(e) = resp.status.as_ref().and_then(Error::from_status) {
        return Err(e.with_operation("query assignment").with_endpoint(endpoint));
    }
    Ok(resp
        .assignments
        .into_iter()
        .filter_map(|a| a.message_queue)
        .map(|mut q| {
            q.topic = Some(s.resource(topic));
            q
        })
        .collect())
}

/// Receives from one assignment until stopped, handing messages to the listener.
async fn receive_loop(
    inner: Arc<Inner>,
    queue: v2::MessageQueue,
    filter: FilterExpression,
    stop: CancellationToken,
) {
    let s = Arc::clone(&inner.session);
    loop {
        if stop.is_cancelled() {
            break;
        }
        let settings = s.settings();
        let batch = settings.receive_batch_size.clamp(1, 32) as usize;
        // Room in the cache for a whole batch first.
        let permits = tokio::select! {
            () = stop.cancelled() => break,
            p = Arc::clone(&inner.cache).acquire_many_owned(u32::try_from(batch.min(inner.max_cached)).unwrap_or(1)) => p,
        };
        let Ok(mut permits) = permits else { break };
        let received = tokio::select! {
            () = stop.cancelled() => break,
            r = pop::receive(
                &s,
                Receive {
                    queue: queue.clone(),
                    filter: &filter,
                    batch: u32::try_from(permits.num_permits()).unwrap_or(1),
                    invisible: None,
                    auto_renew: true,
                    wait: LONG_POLL,
                },
            ) => r,
        };
        let messages = match received {
            Ok(m) => m,
            Err(e) => {
                if e.kind() != ErrorKind::Closed {
                    tracing::warn!(error = %e, "receiving failed; retrying in 1 s");
                }
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(RECEIVE_RETRY) => {}
                }
                continue;
            }
        };
        inner.held.fetch_add(messages.len(), Ordering::Relaxed);
        if settings.fifo {
            // Orderly: one at a time, in order; each settled before the next.
            for m in messages {
                let held = permits.split(1);
                let Ok(running) = Arc::clone(&inner.consuming).acquire_owned().await else { break };
                consume_orderly(&inner, m).await;
                inner.held.fetch_sub(1, Ordering::Relaxed);
                drop(running);
                drop(held);
            }
        } else {
            for m in messages {
                let Some(held) = permits.split(1) else { break };
                let Ok(running) = Arc::clone(&inner.consuming).acquire_owned().await else { break };
                let inner = Arc::clone(&inner);
                s.spawn(async move {
                    consume_concurrently(&inner, m).await;
                    inner.held.fetch_sub(1, Ordering::Relaxed);
                    drop(running);
                    drop(held);
                });
            }
        }
    }
}

/// Runs the listener on `message` in its own task, so a panic is a `Failure`, not a crash.
async fn call_listener(inner: &Inner, message: MessageView) -> ConsumeResult {
    let listener = Arc::clone(&inner.listener);
    let id = message.message_id.clone();
    match tokio::spawn(async move { listener.consume(message).await }).await {
        Ok(result) => result,
        Err(e) => {
            tracing::warn!(message_id = id, error = %e, "the listener panicked; counted as a failure");
            ConsumeResult::Failure
        }
    }
}

async fn consume_concurrently(inner: &Inner, message: MessageView) {
    let s = &inner.session;
    let result = call_listener(inner, message.clone()).await;
    let settled = match result {
        ConsumeResult::Success => pop::ack(s, &message).await,
        ConsumeResult::Failure => {
            // Back to the group after the back-off of its attempt (the broker dead-letters it
            // once it has had the group's max attempts).
            let settings = s.settings();
            let delay = settings.backoff.after(message.delivery_attempt);
            pop::change_invisible(s, &message, delay).await.map(|_| ())
        }
    };
    if let Err(e) = settled {
        tracing::warn!(message_id = message.message_id, error = %e, "settling a consumed message failed");
    }
}

async fn consume_orderly(inner: &Inner, mut message: MessageView) {
    let s = &inner.session;
    let settings = s.settings();
    let max_attempts = settings.max_attempts.max(1);
    loop {
        let result = call_listener(inner, message.clone()).await;
        let settled = if result == ConsumeResult::Success {
            pop::ack(s, &message).await
        } else if message.delivery_attempt >= max_attempts {
            pop::forward_to_dlq(s, &message, max_attempts).await
        } else {
            // Retried here, in place, so the group's next message waits for it.
            let delay = settings.backoff.after(message.delivery_attempt);
            if inner.stop.is_cancelled() {
                // Leaving: the broker redelivers it (in order) to another member.
                return;
            }
            tokio::time::sleep(delay).await;
            message.delivery_attempt += 1;
            continue;
        };
        if let Err(e) = settled {
            tracing::warn!(message_id = message.message_id, error = %e, "settling an orderly message failed");
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::client::session::Backoff;

    #[test]
    fn backoff_follows_the_servers_policy() {
        let levels = Backoff::Custom([1, 5, 10, 30].map(Duration::from_secs).to_vec());
        assert_eq!(levels.after(1), Duration::from_secs(1));
        assert_eq!(levels.after(3), Duration::from_secs(10));
        assert_eq!(levels.after(9), Duration::from_secs(30));
        let exp = Backoff::Exponential {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            multiplier: 2.0,
        };
        assert_eq!(exp.after(1), Duration::from_millis(100));
        assert_eq!(exp.after(3), Duration::from_millis(400));
        assert_eq!(exp.after(30), Duration::from_secs(1));
    }
}
