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
//! Broadcasting consumption (every member gets every message) runs on `PullMessage` over every
//! readable queue of the subscribed topics, with the positions kept in a local offset store
//! (one per member: by default `~/.orbitmq/offsets/<instance>/`, where RocketMQ keeps its
//! `~/.rocketmq_offsets`), committed after each batch is consumed (at least once). As in
//! RocketMQ, a broadcast message whose listener fails is not redelivered: it is logged and
//! skipped. Tag filters apply on the client; a new member starts where a new group would.
//! Apache's proxy has no `PullMessage`: there, broadcasting fails with `UNSUPPORTED`.
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
use crate::client::offset_store::OffsetStore;
use crate::client::pop::{self, Receive};
use crate::client::pull_consumer::PullConsumer;
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
    offset_store: Option<OffsetStore>,
    instance: String,
    runtime: Option<Handle>,
}

impl PushConsumerBuilder {
    /// Broadcasting: where this member keeps its positions (default: a local store in
    /// `~/.orbitmq/offsets/<instance name>/`). Only a local store fits broadcasting: the
    /// broker keeps one position per group, and broadcasting members each need their own.
    #[must_use]
    pub fn offset_store(mut self, store: OffsetStore) -> PushConsumerBuilder {
        self.offset_store = Some(store);
        self
    }

    /// Broadcasting: the name of this member on its machine (default `default`), which
    /// keeps its positions apart from another member's in the default offset store.
    #[must_use]
    pub fn instance_name(mut self, name: impl Into<String>) -> PushConsumerBuilder {
        self.instance = name.into();
        self
    }

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

    /// The pull consumer broadcasting runs on: this member's own local offset store, positions
    /// committed after each consumed batch (no auto-commit).
    fn broadcast_pull(&self) -> Result<PullConsumer> {
        if self.subscriptions.iter().any(|(_, f)| matches!(f, FilterExpression::Sql(_))) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "broadcasting filters by tag on the client: SQL filters are not supported",
            ));
        }
        let store = match &self.offset_store {
            Some(OffsetStore::Broker) => {
                return Err(Error::bad_request(
                    "broadcasting keeps positions per member: use OffsetStore::Local, not Broker",
                ));
            }
            Some(local) => local.clone(),
            None => OffsetStore::Local(default_offset_dir(&self.instance)?),
        };
        let mut b = PullConsumer::builder(self.config.clone(), self.group.clone())
            .offset_store(store)
            .auto_commit_interval(Duration::ZERO);
        if let Some(h) = &self.runtime {
            b = b.runtime(h.clone());
        }
        b.build()
    }

    /// The consumer, not started yet.
    pub fn build(self) -> Result<PushConsumer> {
        let listener = self.listener.clone().ok_or_else(|| {
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
        for (t, _) in &self.subscriptions {
            crate::protocol::validate::topic(t)?;
        }
        let broadcast = if self.model == ConsumerModel::Broadcasting {
            Some(self.broadcast_pull()?)
        } else {
            None
        };
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
        let guard = Arc::new(DropGuard {
            stop: stop.clone(),
            session: Arc::downgrade(&session),
            pull: broadcast.clone(),
        });
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
                broadcast,
            }),
        })
    }
}

struct Inner {
    /// Broadcasting: the pull consumer reading every queue for this member.
    broadcast: Option<PullConsumer>,
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
    pull: Option<PullConsumer>,
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(s) = self.session.upgrade() {
            s.cancel();
        }
        if let Some(p) = &self.pull {
            p.cancel();
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
            offset_store: None,
            instance: "default".to_owned(),
            runtime: None,
        }
    }

    /// Connects and starts consuming.
    pub async fn start(&self) -> Result<()> {
        if let Some(pull) = &self.inner.broadcast {
            return self.start_broadcast(pull).await;
        }
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
        if let Some(pull) = &self.inner.broadcast {
            return assign_all(&self.inner, pull).await;
        }
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
        if let Some(pull) = &inner.broadcast {
            if let Err(e) = pull.commit().await {
                tracing::warn!(error = %e, "committing broadcast positions at shutdown failed");
            }
            pull.shutdown().await;
        }
        inner.session.shutdown().await;
    }

    async fn start_broadcast(&self, pull: &PullConsumer) -> Result<()> {
        pull.start().await?;
        assign_all(&self.inner, pull).await?;
        let inner = Arc::clone(&self.inner);
        let pull = pull.clone();
        self.inner.session.spawn(broadcast_loop(inner, pull));
        Ok(())
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

/// `~/.orbitmq/offsets/<instance>`: where a broadcasting member keeps its positions by
/// default, as RocketMQ keeps them under `~/.rocketmq_offsets`.
fn default_offset_dir(instance: &str) -> Result<std::path::PathBuf> {
    if instance.is_empty()
        || !instance.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        || instance.starts_with('.')
    {
        return Err(Error::bad_request(format!(
            "instance name {instance:?} must be letters, digits, '-', '_' or '.'"
        )));
    }
    let home =
        std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE")).ok_or_else(|| {
            Error::bad_request("no home directory for the offset store: give offset_store(..)")
        })?;
    Ok(std::path::PathBuf::from(home).join(".orbitmq").join("offsets").join(instance))
}

/// Broadcasting: reads every readable queue of every subscribed topic.
async fn assign_all(inner: &Inner, pull: &PullConsumer) -> Result<()> {
    let mut queues = Vec::new();
    for (topic, _) in inner.session.subscriptions() {
        queues.extend(pull.queues(&topic).await?);
    }
    if queues != pull.assignment() {
        pull.assign(queues).await?;
    }
    Ok(())
}

/// Broadcasting: polls every queue, hands each message passing its topic's filter to the
/// listener, and commits the positions once the whole batch is consumed.
async fn broadcast_loop(inner: Arc<Inner>, pull: PullConsumer) {
    let mut last_assign = tokio::time::Instant::now();
    loop {
        let polled = tokio::select! {
            () = inner.stop.cancelled() => break,
            p = pull.poll(LONG_POLL) => p,
        };
        let messages = match polled {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::Closed => break,
            Err(e) => {
                tracing::warn!(error = %e, "broadcast poll failed; retrying in 1 s");
                tokio::select! {
                    () = inner.stop.cancelled() => break,
                    () = tokio::time::sleep(RECEIVE_RETRY) => {}
                }
                continue;
            }
        };
        let filters: HashMap<String, FilterExpression> =
            inner.session.subscriptions().into_iter().collect();
        let mut running = Vec::new();
        for m in messages {
            if !filters.get(&m.topic).is_none_or(|f| f.matches_tag(m.tag.as_deref())) {
                continue;
            }
            let Ok(permit) = Arc::clone(&inner.consuming).acquire_owned().await else { break };
            inner.held.fetch_add(1, Ordering::Relaxed);
            let inner2 = Arc::clone(&inner);
            running.push(tokio::spawn(async move {
                let id = m.message_id.clone();
                if call_listener(&inner2, m).await == ConsumeResult::Failure {
                    tracing::warn!(
                        message_id = id,
                        "a broadcast message failed; as in RocketMQ it is not redelivered"
                    );
                }
                inner2.held.fetch_sub(1, Ordering::Relaxed);
                drop(permit);
            }));
        }
        for r in running {
            let _ = r.await;
        }
        if let Err(e) = pull.commit().await {
            tracing::warn!(error = %e, "committing broadcast positions failed");
        }
        if last_assign.elapsed() >= ASSIGNMENT_REFRESH {
            last_assign = tokio::time::Instant::now();
            if let Err(e) = assign_all(&inner, &pull).await {
                tracing::warn!(error = %e, "refreshing the broadcast queues failed");
            }
        }
    }
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
