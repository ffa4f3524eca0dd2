//! The pull consumer: the application reads message queues by offset and keeps its own
//! position in each, committing it to an [`OffsetStore`] (the broker, or a local file).
//!
//! Which queues it reads: with [`PullConsumer::subscribe`] (or the builder's), the broker
//! assigns each member of the group a share of every subscribed topic's queues
//! (QueryAssignment, RocketMQ's allocate-averagely over the group's live pull consumers), asked
//! at start and every [`REBALANCE_INTERVAL`]; a queue taken away is committed and dropped, one
//! given is read from its committed offset. With [`PullConsumer::assign`] the application names
//! the queues itself and nothing is rebalanced.
//!
//! Where a queue starts when the group has no committed offset for it: RocketMQ's rule, the one
//! OrbitMQ's brokers apply to a new group by default (`consume_from = auto`): from the queue's
//! first message while nothing was ever deleted from it (a new topic is read in full), else from
//! its last message on (an old topic's history is not replayed). [`PullConsumer::seek`] and the
//! `seek_to_*` methods move a position; [`PullConsumer::commit`] makes positions the group's.
//!
//! Apache RocketMQ's proxy serves none of the pull RPCs: against it, every call fails with
//! [`ErrorKind::Unsupported`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::client::config::ClientConfig;
use crate::client::error::{Error, ErrorKind, Result};
use crate::client::model::{FilterExpression, MessageQueue, MessageView};
use crate::client::offset_store::{OffsetStore, Offsets, StoredQueue};
use crate::client::session::{Session, endpoint_of, endpoints_of};
use crate::protocol::time::{from_std, timestamp};
use crate::protocol::v2::{self, pull_message_response::Content};

/// How often a subscribing consumer asks which queues are its own.
pub const REBALANCE_INTERVAL: Duration = Duration::from_secs(5);
/// How often positions are committed, by default.
pub const DEFAULT_AUTO_COMMIT_INTERVAL: Duration = Duration::from_secs(5);
/// Messages asked for per queue and pull, by default (and at most).
pub const DEFAULT_MAX_BATCH: u32 = 32;
/// The shortest long poll a broker holds: a pull's deadline leaves it at least this.
const MIN_SERVER_POLL: Duration = Duration::from_secs(5);
/// How long a poll with no queue to read sleeps before looking again.
const IDLE: Duration = Duration::from_millis(200);

/// Builds a [`PullConsumer`].
pub struct PullConsumerBuilder {
    config: ClientConfig,
    group: String,
    subscriptions: Vec<(String, FilterExpression)>,
    offset_store: OffsetStore,
    auto_commit_interval: Duration,
    max_batch: u32,
    runtime: Option<Handle>,
}

impl PullConsumerBuilder {
    /// Subscribes to `topic` with `filter`: the broker assigns this consumer a share of the
    /// topic's queues.
    #[must_use]
    pub fn subscribe(
        mut self,
        topic: impl Into<String>,
        filter: FilterExpression,
    ) -> PullConsumerBuilder {
        self.subscriptions.push((topic.into(), filter));
        self
    }

    /// Where committed offsets are kept (default: the broker).
    #[must_use]
    pub fn offset_store(mut self, store: OffsetStore) -> PullConsumerBuilder {
        self.offset_store = store;
        self
    }

    /// How often positions are committed on their own (default 5 s); also at shutdown.
    /// `Duration::ZERO` turns auto-commit off: only [`PullConsumer::commit`] commits.
    #[must_use]
    pub fn auto_commit_interval(mut self, interval: Duration) -> PullConsumerBuilder {
        self.auto_commit_interval = interval;
        self
    }

    /// Messages asked for per queue and pull: 1 to 32 (default 32).
    #[must_use]
    pub fn max_batch(mut self, max: u32) -> PullConsumerBuilder {
        self.max_batch = max;
        self
    }

    /// The runtime background tasks run on (default: the current one).
    #[must_use]
    pub fn runtime(mut self, handle: Handle) -> PullConsumerBuilder {
        self.runtime = Some(handle);
        self
    }

    /// The consumer, not started yet.
    pub fn build(self) -> Result<PullConsumer> {
        if !(1..=DEFAULT_MAX_BATCH).contains(&self.max_batch) {
            return Err(Error::bad_request(format!(
                "max_batch must be from 1 to {DEFAULT_MAX_BATCH}, not {}",
                self.max_batch
            )));
        }
        for (t, _) in &self.subscriptions {
            crate::protocol::validate::topic(t)?;
        }
        let offsets = Offsets::open(&self.offset_store, &self.config.namespace, &self.group)?;
        let session = Session::new(
            self.config,
            v2::ClientType::PullConsumer,
            Some(self.group),
            self.runtime,
            "pull consumer",
        )?;
        for (t, f) in self.subscriptions {
            session.subscribe(&t, f);
        }
        Ok(PullConsumer {
            inner: Arc::new(Inner {
                session,
                offsets,
                max_batch: self.max_batch,
                auto_commit: self.auto_commit_interval,
                state: Mutex::new(State::default()),
                started: tokio::sync::OnceCell::new(),
            }),
        })
    }
}

/// One queue this consumer reads.
#[derive(Debug)]
struct Assigned {
    stored: StoredQueue,
    filter: FilterExpression,
    /// The next offset to read; `None` until loaded from the offset store.
    position: Option<i64>,
    /// What the offset store holds, as far as this consumer knows.
    committed: Option<i64>,
    /// Changes on every seek and (re)assignment: a pull begun before does not move the
    /// position.
    generation: u64,
    /// A pull is under way.
    busy: bool,
}

#[derive(Debug, Default)]
struct State {
    queues: BTreeMap<MessageQueue, Assigned>,
    /// `assign` pinned the queues: no rebalancing.
    manual: bool,
    generation: u64,
    cursor: usize,
}

impl State {
    fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// The queues whose position moved past what is committed.
    fn dirty(&self) -> Vec<(StoredQueue, i64)> {
        self.queues
            .values()
            .filter_map(|a| match a.position {
                Some(p) if a.committed != Some(p) => Some((a.stored.clone(), p)),
                _ => None,
            })
            .collect()
    }
}

struct Inner {
    session: Arc<Session>,
    offsets: Offsets,
    max_batch: u32,
    auto_commit: Duration,
    state: Mutex<State>,
    started: tokio::sync::OnceCell<()>,
}

/// Reads message queues by offset. Cheap to clone; clones share positions.
#[derive(Clone)]
pub struct PullConsumer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PullConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullConsumer")
            .field("group", &self.inner.session.group())
            .field("client_id", &self.inner.session.rpc.client_id())
            .field("offset_store", &self.inner.offsets)
            .finish()
    }
}

/// A queue a poll pulls from, and from where.
#[derive(Debug, Clone)]
struct Pick {
    queue: MessageQueue,
    stored: StoredQueue,
    filter: FilterExpression,
    offset: i64,
    generation: u64,
}

/// What one pull found.
enum Pulled {
    Found(Vec<MessageView>, i64),
    Nothing(i64),
    IllegalOffset(i64, Error),
}

/// Frees the picked queues for other polls however the poll ends (dropped included).
struct Busy<'a> {
    state: &'a Mutex<State>,
    picks: Vec<(MessageQueue, u64)>,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        for (q, generation) in &self.picks {
            if let Some(a) = st.queues.get_mut(q)
                && a.generation == *generation
            {
                a.busy = false;
            }
        }
    }
}

impl PullConsumer {
    /// Starts building a consumer of `group`.
    pub fn builder(config: ClientConfig, group: impl Into<String>) -> PullConsumerBuilder {
        PullConsumerBuilder {
            config,
            group: group.into(),
            subscriptions: Vec::new(),
            offset_store: OffsetStore::Broker,
            auto_commit_interval: DEFAULT_AUTO_COMMIT_INTERVAL,
            max_batch: DEFAULT_MAX_BATCH,
            runtime: None,
        }
    }

    /// Connects: fetches the subscribed topics' routes, announces the consumer to the servers,
    /// asks for its queues and starts rebalancing and auto-commit. Later calls do nothing;
    /// every other call starts the consumer first when needed.
    pub async fn start(&self) -> Result<()> {
        let inner = &self.inner;
        inner.session.start().await.map_err(pull_error)?;
        inner
            .started
            .get_or_try_init(|| async {
                let subscribed = !inner.session.subscriptions().is_empty();
                let manual = inner.state.lock().unwrap_or_else(PoisonError::into_inner).manual;
                if subscribed && !manual {
                    inner.rebalance().await.map_err(|e| pull_error(e.with_operation("start")))?;
                }
                spawn_background(&self.inner);
                Ok::<(), Error>(())
            })
            .await?;
        Ok(())
    }

    /// The group.
    #[must_use]
    pub fn group(&self) -> String {
        self.inner.session.group().unwrap_or_default().to_owned()
    }

    /// Subscribes to `topic` (or changes its filter): the broker assigns this consumer a share
    /// of its queues. Not with queues [`assign`](Self::assign)ed by hand.
    pub async fn subscribe(&self, topic: &str, filter: FilterExpression) -> Result<()> {
        let inner = &self.inner;
        inner.session.check_open()?;
        crate::protocol::validate::topic(topic)
            .map_err(|e| Error::from(e).with_operation("subscribe"))?;
        if inner.state.lock().unwrap_or_else(PoisonError::into_inner).manual {
            return Err(Error::bad_request(
                "the consumer reads queues assigned by hand; it cannot also subscribe",
            )
            .with_operation("subscribe"));
        }
        inner.session.route(topic).await.map_err(|e| e.with_operation("subscribe"))?;
        inner.session.subscribe(topic, filter);
        inner.session.sync_settings();
        self.start().await?;
        inner.rebalance().await.map_err(|e| pull_error(e.with_operation("subscribe")))
    }

    /// Reads exactly `queues` from now on (each from its committed offset), with no
    /// rebalancing; queues read before and not in the list are committed and dropped. Not
    /// with subscriptions. Tag filters: the one subscribed for the topic, else every message.
    pub async fn assign(&self, queues: Vec<MessageQueue>) -> Result<()> {
        let inner = &self.inner;
        let s = &inner.session;
        s.check_open()?;
        for q in &queues {
            crate::protocol::validate::topic(&q.topic)
                .map_err(|e| Error::from(e).with_operation("assign"))?;
            if q.queue_id < 0 {
                return Err(Error::bad_request(format!(
                    "queue id {} is not a queue (ids start at 0)",
                    q.queue_id
                ))
                .with_operation("assign"));
            }
        }
        if !s.subscriptions().is_empty() {
            return Err(Error::bad_request(
                "the consumer subscribes to topics; it cannot also assign queues by hand",
            )
            .with_operation("assign"));
        }
        inner.state.lock().unwrap_or_else(PoisonError::into_inner).manual = true;
        self.start().await?;
        let mut wanted = BTreeMap::new();
        for q in queues {
            let stored = inner.resolve(&q).await.map_err(|e| e.with_operation("assign"))?;
            wanted.insert(q, stored);
        }
        let revoked = {
            let mut st = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
            let gone: Vec<MessageQueue> =
                st.queues.keys().filter(|q| !wanted.contains_key(*q)).cloned().collect();
            let revoked: Vec<Assigned> = gone.iter().filter_map(|q| st.queues.remove(q)).collect();
            for (q, stored) in wanted {
                if !st.queues.contains_key(&q) {
                    let generation = st.next_generation();
                    st.queues.insert(q, new_assigned(stored, FilterExpression::all(), generation));
                }
            }
            revoked
        };
        inner.commit_revoked(revoked).await.map_err(|e| e.with_operation("assign"))
    }

    /// The queues this consumer reads now (assigned by the broker or by hand).
    #[must_use]
    pub fn assignment(&self) -> Vec<MessageQueue> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .queues
            .keys()
            .cloned()
            .collect()
    }

    /// The readable queues of `topic`, from its route.
    pub async fn queues(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        let s = &self.inner.session;
        s.check_open()?;
        crate::protocol::validate::topic(topic)
            .map_err(|e| Error::from(e).with_operation("queues"))?;
        let route = s.route(topic).await.map_err(|e| e.with_operation("queues"))?;
        let mut out: Vec<MessageQueue> =
            route.readable().into_iter().map(|q| plain_queue(topic, q)).collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The next offset this consumer reads from `queue`; `None` when it does not read the
    /// queue, or has not read it yet (the position is loaded on the first poll).
    #[must_use]
    pub fn position(&self, queue: &MessageQueue) -> Option<i64> {
        let st = self.inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.queues.get(queue).and_then(|a| a.position)
    }

    /// Pulls from this consumer's queues and returns what they hold from their positions on
    /// (per queue in queue order, up to `max_batch` each), advancing the positions. Waits up to
    /// `timeout` (long polling) when there is nothing new; then returns an empty list. Pulled
    /// messages carry no receipt handle: there is nothing to acknowledge, only positions to
    /// commit.
    pub async fn poll(&self, timeout: Duration) -> Result<Vec<MessageView>> {
        if timeout.is_zero() {
            return Err(
                Error::bad_request("poll needs a timeout above zero").with_operation("poll")
            );
        }
        self.inner.session.check_open()?;
        self.start().await.map_err(|e| e.with_operation("poll"))?;
        self.inner
            .poll(Instant::now() + timeout)
            .await
            .map_err(|e| pull_error(e.with_operation("poll")))
    }

    /// Stores every position that moved in the offset store: the group (or, with a local
    /// store, this machine) resumes from there.
    pub async fn commit(&self) -> Result<()> {
        self.inner.session.check_open()?;
        self.inner.commit().await.map_err(|e| pull_error(e.with_operation("commit")))
    }

    /// Reads `queue` from `offset` on. The queue must be one this consumer reads; an offset
    /// outside the queue is corrected to the nearest valid one by the next poll.
    pub fn seek(&self, queue: &MessageQueue, offset: i64) -> Result<()> {
        if offset < 0 {
            return Err(
                Error::bad_request(format!("offset {offset} is below 0")).with_operation("seek")
            );
        }
        self.inner.session.check_open()?;
        self.inner.set_position(queue, offset).map_err(|e| e.with_operation("seek"))
    }

    /// Reads every queue of `topic` this consumer reads from its first message still held.
    pub async fn seek_to_beginning(&self, topic: &str) -> Result<()> {
        self.seek_topic(topic, v2::QueryOffsetPolicy::Beginning, None, "seek to beginning").await
    }

    /// Reads every queue of `topic` this consumer reads from its end: only new messages.
    pub async fn seek_to_end(&self, topic: &str) -> Result<()> {
        self.seek_topic(topic, v2::QueryOffsetPolicy::End, None, "seek to end").await
    }

    /// Reads every queue of `topic` this consumer reads from the first message stored at or
    /// after `timestamp_ms` (ms since the epoch); from the end where there is none.
    pub async fn seek_to_timestamp(&self, topic: &str, timestamp_ms: i64) -> Result<()> {
        if timestamp_ms < 0 {
            return Err(Error::bad_request(format!("timestamp {timestamp_ms} is below 0"))
                .with_operation("seek to timestamp"));
        }
        self.seek_topic(
            topic,
            v2::QueryOffsetPolicy::Timestamp,
            Some(timestamp_ms),
            "seek to timestamp",
        )
        .await
    }

    /// Reads `queue` from its first message still held.
    pub async fn seek_queue_to_beginning(&self, queue: &MessageQueue) -> Result<()> {
        self.seek_queue(queue, v2::QueryOffsetPolicy::Beginning, "seek to beginning").await
    }

    /// Reads `queue` from its end.
    pub async fn seek_queue_to_end(&self, queue: &MessageQueue) -> Result<()> {
        self.seek_queue(queue, v2::QueryOffsetPolicy::End, "seek to end").await
    }

    /// Stops the background work now, without committing or waiting (a dropped owner).
    pub(crate) fn cancel(&self) {
        self.inner.session.cancel();
    }

    /// Commits (when auto-commit is on) and stops the consumer; the group's other members
    /// take its queues over.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        if inner.session.is_closed() {
            return;
        }
        if !inner.auto_commit.is_zero()
            && inner.started.initialized()
            && let Err(e) = inner.commit().await
        {
            tracing::warn!(error = %e, "committing at shutdown failed");
        }
        inner.session.shutdown().await;
    }

    async fn seek_topic(
        &self,
        topic: &str,
        policy: v2::QueryOffsetPolicy,
        timestamp_ms: Option<i64>,
        operation: &'static str,
    ) -> Result<()> {
        let inner = &self.inner;
        crate::protocol::validate::topic(topic)
            .map_err(|e| Error::from(e).with_operation(operation))?;
        inner.session.check_open()?;
        self.start().await.map_err(|e| e.with_operation(operation))?;
        let queues: Vec<(MessageQueue, StoredQueue)> = {
            let st = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
            st.queues
                .iter()
                .filter(|(q, _)| q.topic == topic)
                .map(|(q, a)| (q.clone(), a.stored.clone()))
                .collect()
        };
        let subscribed = inner.session.subscriptions().iter().any(|(t, _)| t == topic);
        if queues.is_empty() && !subscribed {
            return Err(Error::bad_request(format!(
                "the consumer reads no queue of topic {topic}"
            ))
            .with_operation(operation));
        }
        for (q, stored) in queues {
            let offset = inner
                .query_offset(&stored, policy, timestamp_ms)
                .await
                .map_err(|e| pull_error(e.with_operation(operation)))?;
            inner.set_position(&q, offset).map_err(|e| e.with_operation(operation))?;
        }
        Ok(())
    }

    async fn seek_queue(
        &self,
        queue: &MessageQueue,
        policy: v2::QueryOffsetPolicy,
        operation: &'static str,
    ) -> Result<()> {
        let inner = &self.inner;
        inner.session.check_open()?;
        let stored = {
            let st = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
            st.queues.get(queue).map(|a| a.stored.clone())
        };
        let stored = stored.ok_or_else(|| not_read(queue).with_operation(operation))?;
        let offset = inner
            .query_offset(&stored, policy, None)
            .await
            .map_err(|e| pull_error(e.with_operation(operation)))?;
        inner.set_position(queue, offset).map_err(|e| e.with_operation(operation))
    }
}

fn new_assigned(stored: StoredQueue, filter: FilterExpression, generation: u64) -> Assigned {
    Assigned { stored, filter, position: None, committed: None, generation, busy: false }
}

fn not_read(queue: &MessageQueue) -> Error {
    Error::bad_request(format!(
        "the consumer does not read queue {}:{}:{}",
        queue.topic, queue.broker, queue.queue_id
    ))
}

/// Whether `e` is Apache RocketMQ's proxy refusing a pull consumer's settings on the Telemetry
/// stream: it knows no client type `PULL_CONSUMER` and answers gRPC `INTERNAL` with
/// `process client telemetryCommand failed. Client type is not consumer, type: PULL_CONSUMER`
/// (5.3.3), before any pull RPC is tried.
fn refuses_pull_clients(e: &Error) -> bool {
    e.kind() == ErrorKind::Internal && e.message().contains("type: PULL_CONSUMER")
}

/// The plain queue of a route's `q` in `topic`.
fn plain_queue(topic: &str, q: &v2::MessageQueue) -> MessageQueue {
    MessageQueue {
        topic: topic.to_owned(),
        broker: q.broker.as_ref().map(|b| b.name.clone()).unwrap_or_default(),
        queue_id: q.id,
    }
}

/// An answer saying the server has no pull RPCs, said so; other errors as they are.
fn pull_error(e: Error) -> Error {
    if e.kind() != ErrorKind::Unsupported && !refuses_pull_clients(&e) {
        return e;
    }
    let mut out = Error::new(
        ErrorKind::Unsupported,
        format!(
            "the server does not support pull consumers (Apache RocketMQ's proxy serves no \
             PullMessage, UpdateOffset, GetOffset or QueryOffset): {}",
            e.message()
        ),
    );
    if let Some(op) = e.operation() {
        out = out.with_operation(op);
    }
    if let Some(endpoint) = e.endpoint() {
        out = out.with_endpoint(endpoint);
    }
    out.with_source(e)
}

fn spawn_background(inner: &Arc<Inner>) {
    let weak: Weak<Inner> = Arc::downgrade(inner);
    let cancel = inner.session.cancelled();
    let auto_commit = inner.auto_commit;
    inner.session.spawn(async move {
        let mut rebalance = tokio::time::interval(REBALANCE_INTERVAL);
        rebalance.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Zero: off (an interval that never fires in practice).
        let every = if auto_commit.is_zero() { Duration::from_secs(86_400 * 365) } else { auto_commit };
        let mut commit = tokio::time::interval_at(Instant::now() + every, every);
        commit.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        rebalance.tick().await;
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = rebalance.tick() => {
                    let Some(inner) = weak.upgrade() else { break };
                    let manual = inner.state.lock().unwrap_or_else(PoisonError::into_inner).manual;
                    if !manual && let Err(e) = inner.rebalance().await {
                        tracing::warn!(error = %e, "asking for the consumer's queues failed; keeping them");
                    }
                }
                _ = commit.tick() => {
                    let Some(inner) = weak.upgrade() else { break };
                    if !auto_commit.is_zero() && let Err(e) = inner.commit().await {
                        tracing::warn!(error = %e, "auto-commit failed");
                    }
                }
            }
        }
    });
}

impl Inner {
    /// The wire queue and endpoint of `q`, from its topic's route.
    async fn resolve(&self, q: &MessageQueue) -> Result<StoredQueue> {
        let route = self.session.route(&q.topic).await?;
        let found = route
            .readable()
            .into_iter()
            .find(|w| w.id == q.queue_id && w.broker.as_ref().is_some_and(|b| b.name == q.broker));
        let Some(w) = found else {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "topic {} has no readable queue {} on broker {:?}",
                    q.topic, q.queue_id, q.broker
                ),
            ));
        };
        self.stored(&q.topic, w)
    }

    fn stored(&self, topic: &str, w: &v2::MessageQueue) -> Result<StoredQueue> {
        let endpoint = endpoint_of(w).ok_or_else(|| {
            Error::new(ErrorKind::Internal, "a route names a broker without an address")
        })?;
        let mut wire = w.clone();
        wire.topic = Some(self.session.resource(topic));
        Ok(StoredQueue { queue: plain_queue(topic, w), wire, endpoint })
    }

    /// Asks which queues of each subscribed topic are this consumer's, takes the new ones and
    /// commits and drops the ones taken away. A topic whose answer fails keeps its queues.
    async fn rebalance(&self) -> Result<()> {
        let s = &self.session;
        let subs = s.subscriptions();
        let access = s.access_point()?;
        let mut wanted: BTreeMap<MessageQueue, (StoredQueue, FilterExpression)> = BTreeMap::new();
        let mut kept_topics = BTreeSet::new();
        let mut first_error = None;
        for (topic, filter) in &subs {
            let req = v2::QueryAssignmentRequest {
                topic: Some(s.resource(topic)),
                group: s.group_resource(),
                endpoints: Some(endpoints_of(&access)),
            };
            let answer = s
                .rpc
                .call("query assignment", &access, Duration::ZERO, req, |mut c, r| async move {
                    c.query_assignment(r).await
                })
                .await
                .and_then(|resp| match resp.status.as_ref().and_then(Error::from_status) {
                    Some(e) => {
                        Err(e.with_operation("query assignment").with_endpoint(access.as_str()))
                    }
                    None => Ok(resp.assignments),
                });
            match answer {
                Ok(assignments) => {
                    for a in assignments {
                        let Some(w) = a.message_queue else { continue };
                        if w.id < 0 {
                            // "Any queue": a server answering as for pop consumers.
                            return Err(Error::new(
                                ErrorKind::Unsupported,
                                "the server assigns no queues to pull consumers",
                            ));
                        }
                        let stored = self.stored(topic, &w)?;
                        wanted.insert(stored.queue.clone(), (stored, filter.clone()));
                    }
                }
                Err(e) => {
                    kept_topics.insert(topic.clone());
                    first_error.get_or_insert(e);
                }
            }
        }
        let revoked = {
            let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if st.manual {
                return Ok(());
            }
            let gone: Vec<MessageQueue> = st
                .queues
                .keys()
                .filter(|q| !wanted.contains_key(*q) && !kept_topics.contains(&q.topic))
                .cloned()
                .collect();
            let revoked: Vec<Assigned> = gone.iter().filter_map(|q| st.queues.remove(q)).collect();
            for (q, (stored, filter)) in wanted {
                if let Some(a) = st.queues.get_mut(&q) {
                    a.filter = filter;
                } else {
                    let generation = st.next_generation();
                    st.queues.insert(q, new_assigned(stored, filter, generation));
                }
            }
            revoked
        };
        self.commit_revoked(revoked).await?;
        first_error.map_or(Ok(()), Err)
    }

    async fn commit_revoked(&self, revoked: Vec<Assigned>) -> Result<()> {
        let entries: Vec<(StoredQueue, i64)> = revoked
            .into_iter()
            .filter_map(|a| match a.position {
                Some(p) if a.committed != Some(p) => Some((a.stored, p)),
                _ => None,
            })
            .collect();
        if entries.is_empty() {
            return Ok(());
        }
        self.offsets.commit(&self.session, &entries).await
    }

    async fn commit(&self) -> Result<()> {
        let dirty = self.state.lock().unwrap_or_else(PoisonError::into_inner).dirty();
        if dirty.is_empty() {
            return Ok(());
        }
        self.offsets.commit(&self.session, &dirty).await?;
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        for (q, offset) in dirty {
            if let Some(a) = st.queues.get_mut(&q.queue) {
                a.committed = Some(offset);
            }
        }
        Ok(())
    }

    fn set_position(&self, queue: &MessageQueue, offset: i64) -> Result<()> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let generation = st.next_generation();
        let a = st.queues.get_mut(queue).ok_or_else(|| not_read(queue))?;
        a.position = Some(offset);
        a.generation = generation;
        a.busy = false;
        Ok(())
    }

    async fn query_offset(
        &self,
        q: &StoredQueue,
        policy: v2::QueryOffsetPolicy,
        timestamp_ms: Option<i64>,
    ) -> Result<i64> {
        let req = v2::QueryOffsetRequest {
            message_queue: Some(q.wire.clone()),
            query_offset_policy: policy as i32,
            timestamp: timestamp_ms.map(timestamp),
        };
        let resp = self
            .session
            .rpc
            .call("query offset", &q.endpoint, Duration::ZERO, req, |mut c, r| async move {
                c.query_offset(r).await
            })
            .await?;
        if let Some(e) = resp.status.as_ref().and_then(Error::from_status) {
            return Err(e.with_operation("query offset").with_endpoint(q.endpoint.as_str()));
        }
        Ok(resp.offset)
    }

    /// Where the group starts on `q`: its committed offset, else RocketMQ's rule (the module
    /// documentation).
    async fn initial_position(&self, q: &StoredQueue) -> Result<i64> {
        if let Some(offset) = self.offsets.load(&self.session, q).await? {
            return Ok(offset);
        }
        let min = self.query_offset(q, v2::QueryOffsetPolicy::Beginning, None).await?;
        if min == 0 {
            return Ok(0);
        }
        let end = self.query_offset(q, v2::QueryOffsetPolicy::End, None).await?;
        Ok((end - 1).max(min))
    }

    /// Loads the positions not loaded yet.
    async fn load_positions(&self) -> Result<()> {
        let unloaded: Vec<(StoredQueue, u64)> = {
            let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            st.queues
                .values()
                .filter(|a| a.position.is_none())
                .map(|a| (a.stored.clone(), a.generation))
                .collect()
        };
        for (q, generation) in unloaded {
            let offset = self.initial_position(&q).await?;
            let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(a) = st.queues.get_mut(&q.queue)
                && a.generation == generation
                && a.position.is_none()
            {
                a.position = Some(offset);
                a.committed = Some(offset);
            }
        }
        Ok(())
    }

    /// The queues to pull from now, round robin from the cursor, marked busy.
    fn pick(&self) -> Vec<Pick> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let n = st.queues.len();
        if n == 0 {
            return Vec::new();
        }
        let start = st.cursor % n;
        st.cursor = st.cursor.wrapping_add(1);
        let mut picks = Vec::new();
        for (i, (q, a)) in st.queues.iter_mut().enumerate() {
            let Some(offset) = a.position else { continue };
            if a.busy {
                continue;
            }
            a.busy = true;
            picks.push((
                (i + n - start) % n,
                Pick {
                    queue: q.clone(),
                    stored: a.stored.clone(),
                    filter: a.filter.clone(),
                    offset,
                    generation: a.generation,
                },
            ));
        }
        picks.sort_by_key(|(order, _)| *order);
        picks.into_iter().map(|(_, p)| p).collect()
    }

    /// Moves `pick`'s queue to `next` unless it was sought, reassigned or dropped meanwhile.
    fn advance(&self, pick: &Pick, next: i64) -> bool {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match st.queues.get_mut(&pick.queue) {
            Some(a) if a.generation == pick.generation && a.position == Some(pick.offset) => {
                a.position = Some(next);
                true
            }
            _ => false,
        }
    }

    /// Applies one pull's answer: positions move, found messages are kept.
    fn settle(
        &self,
        pick: Pick,
        got: Result<Pulled>,
        found: &mut BTreeMap<MessageQueue, Vec<MessageView>>,
        failures: &mut Vec<Error>,
    ) {
        match got {
            Ok(Pulled::Found(messages, next)) => {
                if self.advance(&pick, next) {
                    found.insert(pick.queue, messages);
                }
            }
            Ok(Pulled::Nothing(next)) => {
                self.advance(&pick, next);
            }
            Ok(Pulled::IllegalOffset(next, e)) => {
                tracing::warn!(error = %e, next, "offset outside the queue; moving to the nearest valid one");
                self.advance(&pick, next);
            }
            Err(e) => failures.push(e),
        }
    }

    async fn poll(&self, deadline: Instant) -> Result<Vec<MessageView>> {
        loop {
            self.load_positions().await?;
            let picks = self.pick();
            let now = Instant::now();
            if picks.is_empty() {
                // No queue (yet), or other polls are reading them all.
                if now >= deadline {
                    return Ok(Vec::new());
                }
                tokio::time::sleep_until(deadline.min(now + IDLE)).await;
                continue;
            }
            let _busy = Busy {
                state: &self.state,
                picks: picks.iter().map(|p| (p.queue.clone(), p.generation)).collect(),
            };
            let wait = deadline.saturating_duration_since(now);
            let order: Vec<MessageQueue> = picks.iter().map(|p| p.queue.clone()).collect();
            let mut pulls = JoinSet::new();
            for pick in picks {
                let session = Arc::clone(&self.session);
                let batch = self.max_batch;
                pulls.spawn(async move {
                    let got = pull(&session, &pick, batch, wait).await;
                    (pick, got)
                });
            }
            let mut found: BTreeMap<MessageQueue, Vec<MessageView>> = BTreeMap::new();
            let mut failures = Vec::new();
            loop {
                let next = tokio::time::timeout_at(deadline, pulls.join_next()).await;
                match next {
                    Err(_) | Ok(None) => break,
                    Ok(Some(Err(e))) => {
                        failures.push(Error::new(ErrorKind::Internal, format!("pull task: {e}")));
                    }
                    Ok(Some(Ok((pick, got)))) => self.settle(pick, got, &mut found, &mut failures),
                }
                if !found.is_empty() {
                    // Take whatever else has arrived, then answer.
                    while let Some(Ok((pick, got))) = pulls.try_join_next() {
                        self.settle(pick, got, &mut found, &mut failures);
                    }
                    break;
                }
            }
            drop(pulls);
            if !found.is_empty() {
                // Queues in the round robin's order, each in queue order.
                return Ok(order.iter().filter_map(|q| found.remove(q)).flatten().collect());
            }
            if let Some(e) = failures.iter().find(|e| e.kind() == ErrorKind::Unsupported) {
                return Err(e.clone());
            }
            if Instant::now() >= deadline {
                return match failures.into_iter().next() {
                    Some(e) => Err(e),
                    None => Ok(Vec::new()),
                };
            }
            if !failures.is_empty() {
                // Do not spin on a failing server.
                tokio::time::sleep_until(deadline.min(Instant::now() + IDLE)).await;
            }
        }
    }
}

/// One PullMessage of `pick`, long-polling up to `wait`.
async fn pull(session: &Session, pick: &Pick, batch: u32, wait: Duration) -> Result<Pulled> {
    let req = v2::PullMessageRequest {
        group: session.group_resource(),
        message_queue: Some(pick.stored.wire.clone()),
        offset: pick.offset,
        batch_size: i32::try_from(batch).unwrap_or(32),
        filter_expression: Some(pick.filter.to_wire()),
        long_polling_timeout: Some(from_std(wait)),
    };
    let endpoint = pick.stored.endpoint.as_str();
    // The broker refuses to long-poll with less than its shortest time left; the caller drops
    // the pull at its own deadline.
    let extra = wait.max(MIN_SERVER_POLL);
    let mut stream = session
        .rpc
        .call("pull", endpoint, extra, req, |mut c, r| async move { c.pull_message(r).await })
        .await?;
    let mut status = None;
    let mut messages = Vec::new();
    let mut next = None;
    let mut shared: Option<Arc<str>> = None;
    loop {
        match stream.message().await {
            Err(st) => return Err(Error::from(st).with_operation("pull").with_endpoint(endpoint)),
            Ok(None) => break,
            Ok(Some(item)) => match item.content {
                Some(Content::Status(st)) => status = Some(st),
                Some(Content::Message(m)) => {
                    let from = shared.get_or_insert_with(|| Arc::from(endpoint));
                    messages.push(MessageView::from_wire(m, from)?);
                }
                Some(Content::NextOffset(n)) => next = Some(n),
                None => {}
            },
        }
    }
    let code = status
        .as_ref()
        .map_or(v2::Code::Unspecified, |s| v2::Code::try_from(s.code).unwrap_or_default());
    match (code, next) {
        (v2::Code::Ok, Some(n)) => Ok(Pulled::Found(messages, n)),
        (v2::Code::MessageNotFound, Some(n)) => Ok(Pulled::Nothing(n)),
        (v2::Code::IllegalOffset, Some(n)) => Ok(Pulled::IllegalOffset(
            n,
            status
                .as_ref()
                .and_then(Error::from_status)
                .unwrap_or_else(|| Error::new(ErrorKind::BadRequest, "illegal offset")),
        )),
        _ => Err(status
            .as_ref()
            .and_then(Error::from_status)
            .unwrap_or_else(|| {
                Error::new(ErrorKind::Internal, "a pull answer without a status or next offset")
            })
            .with_operation("pull")
            .with_endpoint(endpoint)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_without_pull_rpcs_is_said_so() {
        let e = pull_error(
            Error::from(tonic::Status::unimplemented("unknown method PullMessage"))
                .with_operation("poll")
                .with_endpoint("h:1"),
        );
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.message().contains("does not support pull consumers"), "{e}");
        assert_eq!((e.operation(), e.endpoint()), (Some("poll"), Some("h:1")));
        let st = v2::Status { code: v2::Code::Unsupported as i32, message: "no".into() };
        let e = pull_error(Error::from_status(&st).unwrap());
        assert!(e.message().contains("does not support pull consumers"), "{e}");
        let apache = pull_error(
            Error::from(tonic::Status::internal(
                "process client telemetryCommand failed. Client type is not consumer, type: \
                 PULL_CONSUMER",
            ))
            .with_operation("telemetry"),
        );
        assert_eq!(apache.kind(), ErrorKind::Unsupported);
        assert!(apache.message().contains("does not support pull consumers"), "{apache}");
        assert!(apache.message().contains("type: PULL_CONSUMER"), "{apache}");
        let internal = pull_error(Error::new(ErrorKind::Internal, "disk full"));
        assert_eq!(internal.kind(), ErrorKind::Internal);
        let other = pull_error(Error::bad_request("x"));
        assert_eq!(other.message(), "x");
    }
}
