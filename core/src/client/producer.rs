//! The producer: `send` and `send_batch` (one RPC), many sends in flight on one handle, FIFO
//! through the message group, delay through the delivery time, `recall`, and transactions with
//! a [`TransactionChecker`] answering the server's check-backs.
//!
//! A message is checked against RocketMQ's rules before any network call. A send that fails
//! with a retryable error (unreachable broker, timeout, throttling) is retried with the
//! server's back-off, up to its max attempts, on another broker where the topic has one (a FIFO
//! message stays on its queue, to keep its group's order).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::client::config::ClientConfig;
use crate::client::error::{Error, ErrorKind, Result};
use crate::client::model::{Message, MessageType, MessageView, SendReceipt, WireMessage};
use crate::client::rpc::header_list;
use crate::client::session::{CommandHandler, Session, UNUSABLE_ROUTE_RETRY, endpoint_of};
use crate::protocol::time::now_ms;
use crate::protocol::v2::{self, telemetry_command::Command};
use crate::protocol::{HEADER_OFFSET_MSG_IDS, HEADER_QUEUE_IDS};

/// What a transaction checker decides for a half message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionResolution {
    /// Deliver it.
    Commit,
    /// Drop it.
    Rollback,
    /// Not known yet: the server asks again later.
    Unknown,
}

/// Answers the server's check-back for a transaction whose producer neither committed nor
/// rolled back (it crashed, say).
#[async_trait::async_trait]
pub trait TransactionChecker: Send + Sync + 'static {
    /// Decides the fate of the half message `message`.
    async fn check(&self, message: MessageView) -> TransactionResolution;
}

/// Builds a [`Producer`].
pub struct ProducerBuilder {
    config: ClientConfig,
    topics: Vec<String>,
    checker: Option<Arc<dyn TransactionChecker>>,
    runtime: Option<Handle>,
}

impl ProducerBuilder {
    /// Topics the producer sends to: their routes are fetched at `start`, and a topic that
    /// does not exist fails it. Others are looked up on first send.
    #[must_use]
    pub fn topics<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        topics: I,
    ) -> ProducerBuilder {
        self.topics.extend(topics.into_iter().map(Into::into));
        self
    }

    /// The checker answering transaction check-backs (needed for transactions).
    #[must_use]
    pub fn transaction_checker(mut self, checker: Arc<dyn TransactionChecker>) -> ProducerBuilder {
        self.checker = Some(checker);
        self
    }

    /// The runtime background tasks run on (default: the current one).
    #[must_use]
    pub fn runtime(mut self, handle: Handle) -> ProducerBuilder {
        self.runtime = Some(handle);
        self
    }

    /// The producer, not started yet (nothing is connected until `start` or the first send).
    pub fn build(self) -> Result<Producer> {
        for t in &self.topics {
            crate::protocol::validate::topic(t)?;
        }
        let session =
            Session::new(self.config, v2::ClientType::Producer, None, self.runtime, "producer")?;
        session.add_topics(&self.topics);
        let inner = Arc::new(Inner { session, checker: self.checker, weak: OnceLock::new() });
        let _ = inner.weak.set(Arc::downgrade(&inner));
        inner.session.set_handler(Arc::new(Checks(Arc::downgrade(&inner))));
        Ok(Producer { inner })
    }
}

struct Inner {
    session: Arc<Session>,
    checker: Option<Arc<dyn TransactionChecker>>,
    weak: OnceLock<std::sync::Weak<Inner>>,
}

/// Sends messages. Cheap to clone; every clone is the same producer.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").field("client_id", &self.inner.session.rpc.client_id()).finish()
    }
}

impl Producer {
    /// Starts building a producer.
    pub fn builder(config: ClientConfig) -> ProducerBuilder {
        ProducerBuilder { config, topics: Vec::new(), checker: None, runtime: None }
    }

    /// Connects: fetches the routes of the configured topics and syncs settings with the
    /// server. Sending starts it too; calling it first makes a wrong endpoint or topic fail
    /// here.
    pub async fn start(&self) -> Result<()> {
        self.inner.session.start().await
    }

    /// The client id the servers know this producer by.
    #[must_use]
    pub fn client_id(&self) -> String {
        self.inner.session.rpc.client_id().to_owned()
    }

    /// Sends one message.
    pub async fn send(&self, message: Message) -> Result<SendReceipt> {
        let kind = message.message_type();
        let mut receipts = self.send_typed(vec![message], kind).await?;
        receipts
            .pop()
            .ok_or_else(|| Error::new(ErrorKind::Internal, "the server answered no entry"))
    }

    /// Sends messages of one topic in one request; all are stored or none. They must all be
    /// of one type (normal, FIFO or delay).
    pub async fn send_batch(&self, messages: Vec<Message>) -> Result<Vec<SendReceipt>> {
        let Some(first) = messages.first() else {
            return Err(
                Error::bad_request("a batch needs at least one message").with_operation("send")
            );
        };
        let kind = first.message_type();
        if let Some(m) = messages.iter().find(|m| m.topic != first.topic) {
            return Err(Error::bad_request(format!(
                "a batch goes to one topic; it has {} and {}",
                first.topic, m.topic
            ))
            .with_operation("send"));
        }
        if messages.iter().any(|m| m.message_type() != kind) {
            return Err(Error::bad_request(
                "a batch holds messages of one type (normal, FIFO or delay)",
            )
            .with_operation("send"));
        }
        if kind == MessageType::Fifo
            && messages.iter().any(|m| m.message_group != first.message_group)
        {
            return Err(Error::bad_request("a FIFO batch holds messages of one message group")
                .with_operation("send"));
        }
        self.send_typed(messages, kind).await
    }

    /// Recalls a delay message before it is delivered, by the handle its receipt gave.
    /// Returns the message id.
    pub async fn recall(&self, topic: &str, recall_handle: &str) -> Result<String> {
        let s = &self.inner.session;
        s.start().await?;
        crate::protocol::validate::topic(topic)?;
        if recall_handle.is_empty() {
            return Err(Error::bad_request("the recall handle is empty").with_operation("recall"));
        }
        let route = s.route(topic).await?;
        let endpoint = route.writable().first().and_then(|q| endpoint_of(q)).ok_or_else(|| {
            Error::new(ErrorKind::NotFound, format!("topic {topic} has no writable queue"))
        })?;
        let req = v2::RecallMessageRequest {
            topic: Some(s.resource(topic)),
            recall_handle: recall_handle.to_owned(),
        };
        let resp = s
            .rpc
            .call("recall", &endpoint, Duration::ZERO, req, |mut c, r| async move {
                c.recall_message(r).await
            })
            .await?;
        if let Some(e) = resp.status.as_ref().and_then(Error::from_status) {
            return Err(e.with_operation("recall").with_endpoint(endpoint));
        }
        Ok(resp.message_id)
    }

    /// Starts a transaction: messages sent through it stay invisible to consumers until
    /// [`Transaction::commit`]. Needs a [`TransactionChecker`].
    pub fn begin_transaction(&self) -> Result<Transaction> {
        self.inner.session.check_open()?;
        if self.inner.checker.is_none() {
            return Err(Error::bad_request(
                "transactions need a transaction checker (ProducerBuilder::transaction_checker)",
            ));
        }
        Ok(Transaction { producer: self.clone(), sent: Vec::new() })
    }

    /// Stops the producer: sends in flight finish, later ones fail with `CLOSED`.
    pub async fn shutdown(&self) {
        self.inner.session.shutdown().await;
    }

    async fn send_typed(
        &self,
        messages: Vec<Message>,
        kind: MessageType,
    ) -> Result<Vec<SendReceipt>> {
        let s = &self.inner.session;
        // Before any network call, and again with the server's own body limit once known.
        let limit = s.settings().max_body_size;
        for m in &messages {
            m.validate(limit).map_err(|e| e.with_operation("send"))?;
        }
        s.start().await.map_err(|e| e.with_operation("send"))?;
        let max_body = s.settings().max_body_size;
        if let Some(m) = messages.iter().find(|m| m.body.len() > max_body) {
            return Err(Error::new(
                ErrorKind::PayloadTooLarge,
                format!(
                    "message body of {} bytes exceeds the server's limit of {max_body} bytes",
                    m.body.len()
                ),
            )
            .with_operation("send"));
        }
        let topic = messages[0].topic.clone();
        let mut route = s.route(&topic).await.map_err(|e| e.with_operation("send"))?;
        if route.writable().is_empty() {
            // Maybe stale (its master was gone when it was fetched): ask again, at most once a
            // second, instead of failing until the periodic refresh.
            route = s
                .refresh_route(&topic, UNUSABLE_ROUTE_RETRY)
                .await
                .map_err(|e| e.with_operation("send"))?;
        }
        let queues = route.writable();
        if queues.is_empty() {
            return Err(Error::new(
                ErrorKind::Forbidden,
                format!("topic {topic} has no writable queue"),
            )
            .with_operation("send"));
        }
        let born_host = local_host();
        let born = now_ms();
        // Fixed before the first attempt: a retry is the same message, not a new one.
        let ids: Vec<String> = messages.iter().map(|_| message_id()).collect();
        // A FIFO group always goes to the same queue; anything else round robin.
        let first = match &messages[0].message_group {
            Some(group) => (crc32fast::hash(group.as_bytes()) as usize) % queues.len(),
            None => route.next(queues.len()),
        };
        let settings = s.settings();
        let attempts = settings.max_attempts.max(1);
        let mut tried: HashSet<String> = HashSet::new();
        let mut last = None;
        for attempt in 1..=attempts {
            s.check_open().map_err(|e| e.with_operation("send"))?;
            let queue = if kind == MessageType::Fifo {
                queues[first]
            } else {
                // Another broker than the ones that failed, where there is one.
                (0..queues.len())
                    .map(|i| queues[(first + attempt as usize - 1 + i) % queues.len()])
                    .find(|q| {
                        endpoint_of(q)
                            .is_some_and(|e| !tried.contains(&e) && !s.rpc.is_isolated(&e))
                    })
                    .unwrap_or(queues[(first + attempt as usize - 1) % queues.len()])
            };
            let endpoint = endpoint_of(queue).ok_or_else(|| {
                Error::new(ErrorKind::Internal, "a route names a broker without an address")
            })?;
            // Built per attempt from the messages (one copy each), not cloned from a prototype.
            let batch: Vec<v2::Message> = messages
                .iter()
                .zip(&ids)
                .map(|(m, id)| {
                    let wire = WireMessage { id: id.clone(), kind, born_host: &born_host, born };
                    m.to_wire(s.rpc.namespace(), &wire, queue.id)
                })
                .collect();
            match self.send_once(&endpoint, batch, &topic).await {
                Ok(r) => return Ok(r),
                Err(e) if e.is_retryable() && attempt < attempts => {
                    tracing::debug!(attempt, endpoint, error = %e, "send failed; retrying");
                    tried.insert(endpoint);
                    let pause = if e.kind() == ErrorKind::TooManyRequests {
                        settings.send_backoff(attempt)
                    } else {
                        Duration::ZERO
                    };
                    last = Some(e);
                    if !pause.is_zero() {
                        tokio::time::sleep(pause).await;
                    }
                }
                Err(e) => return Err(self.failed(&topic, e).await),
            }
        }
        let e = last.unwrap_or_else(|| Error::new(ErrorKind::Internal, "no attempt made"));
        Err(self.failed(&topic, e).await)
    }

    /// A send to `topic` that failed for good with `e`: when a broker could not be reached,
    /// its route is asked again (at most once a second), so that the next send sees a broker
    /// that died leave it, or come back, without waiting for the periodic refresh.
    async fn failed(&self, topic: &str, e: Error) -> Error {
        if matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout)
            && let Err(refresh) =
                self.inner.session.refresh_route(topic, UNUSABLE_ROUTE_RETRY).await
        {
            tracing::debug!(topic, error = %refresh, "route refresh after a failed send failed");
        }
        e
    }

    async fn send_once(
        &self,
        endpoint: &str,
        batch: Vec<v2::Message>,
        topic: &str,
    ) -> Result<Vec<SendReceipt>> {
        let s = &self.inner.session;
        let n = batch.len();
        let req = v2::SendMessageRequest { messages: batch };
        let resp = s
            .rpc
            .call_response("send", endpoint, Duration::ZERO, req, |mut c, r| async move {
                c.send_message(r).await
            })
            .await?;
        let (meta, resp, _) = resp.into_parts();
        let offset_ids = header_list(&meta, HEADER_OFFSET_MSG_IDS, n);
        let queue_ids = header_list(&meta, HEADER_QUEUE_IDS, n);
        let fail = |e: Error| e.with_operation("send").with_endpoint(endpoint);
        if resp.entries.len() != n {
            if let Some(e) = resp.status.as_ref().and_then(Error::from_status) {
                return Err(fail(e));
            }
            return Err(fail(Error::new(
                ErrorKind::Internal,
                format!("{n} messages sent, {} results answered", resp.entries.len()),
            )));
        }
        let mut receipts = Vec::with_capacity(n);
        for (i, entry) in resp.entries.into_iter().enumerate() {
            if let Some(e) = entry.status.as_ref().and_then(Error::from_status) {
                return Err(fail(e));
            }
            receipts.push(SendReceipt {
                message_id: entry.message_id,
                offset_msg_id: offset_ids
                    .as_ref()
                    .map(|ids| ids[i])
                    .filter(|id| !id.is_empty())
                    .map(str::to_owned),
                topic: topic.to_owned(),
                queue_id: queue_ids.as_ref().and_then(|q| q[i].parse().ok()),
                queue_offset: entry.offset,
                transaction_id: Some(entry.transaction_id).filter(|t| !t.is_empty()),
                recall_handle: Some(entry.recall_handle).filter(|h| !h.is_empty()),
                endpoint: endpoint.to_owned(),
            });
        }
        Ok(receipts)
    }

    async fn end_transaction(
        &self,
        receipt: &SendReceipt,
        resolution: v2::TransactionResolution,
        source: v2::TransactionSource,
    ) -> Result<()> {
        let s = &self.inner.session;
        let req = v2::EndTransactionRequest {
            topic: Some(s.resource(&receipt.topic)),
            message_id: receipt.message_id.clone(),
            transaction_id: receipt.transaction_id.clone().unwrap_or_default(),
            resolution: resolution as i32,
            source: source as i32,
            trace_context: String::new(),
        };
        let resp = s
            .rpc
            .call(
                "end transaction",
                &receipt.endpoint,
                Duration::ZERO,
                req,
                |mut c, r| async move { c.end_transaction(r).await },
            )
            .await?;
        match resp.status.as_ref().and_then(Error::from_status) {
            Some(e) => {
                Err(e.with_operation("end transaction").with_endpoint(receipt.endpoint.as_str()))
            }
            None => Ok(()),
        }
    }
}

/// A transaction: messages sent through it are delivered on [`commit`](Transaction::commit),
/// dropped on [`rollback`](Transaction::rollback). One left open is resolved through the
/// producer's [`TransactionChecker`] when the server checks back.
#[derive(Debug)]
pub struct Transaction {
    producer: Producer,
    sent: Vec<SendReceipt>,
}

impl Transaction {
    /// Sends `message` as part of the transaction (a normal message: no group, no delay).
    pub async fn send(&mut self, message: Message) -> Result<SendReceipt> {
        if message.message_type() != MessageType::Normal {
            return Err(Error::bad_request(
                "a transactional message cannot have a message group or a delivery time",
            )
            .with_operation("send"));
        }
        let mut r = self.producer.send_typed(vec![message], MessageType::Transaction).await?;
        let receipt =
            r.pop().ok_or_else(|| Error::new(ErrorKind::Internal, "no entry answered"))?;
        self.sent.push(receipt.clone());
        Ok(receipt)
    }

    /// Delivers every message sent through the transaction.
    pub async fn commit(self) -> Result<()> {
        self.end(v2::TransactionResolution::Commit).await
    }

    /// Drops every message sent through the transaction.
    pub async fn rollback(self) -> Result<()> {
        self.end(v2::TransactionResolution::Rollback).await
    }

    async fn end(self, resolution: v2::TransactionResolution) -> Result<()> {
        if self.sent.is_empty() {
            return Err(Error::bad_request("the transaction sent no message")
                .with_operation("end transaction"));
        }
        for r in &self.sent {
            self.producer
                .end_transaction(r, resolution, v2::TransactionSource::SourceClient)
                .await?;
        }
        Ok(())
    }
}

/// The producer's answer to the server's transaction check-backs.
struct Checks(std::sync::Weak<Inner>);

impl CommandHandler for Checks {
    fn handle(&self, endpoint: &str, command: Command, _reply: mpsc::Sender<v2::TelemetryCommand>) {
        let Command::RecoverOrphanedTransactionCommand(cmd) = command else { return };
        let Some(inner) = self.0.upgrade() else { return };
        let Some(checker) = inner.checker.clone() else {
            tracing::warn!(
                "the server checks a transaction back, and this producer has no checker"
            );
            return;
        };
        let Some(message) = cmd.message else { return };
        let endpoint: Arc<str> = Arc::from(endpoint);
        let weak = inner.weak.get().cloned().unwrap_or_default();
        inner.session.spawn(async move {
            let view = match MessageView::from_wire(message, &endpoint) {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "a transaction check-back carries a broken message");
                    return;
                }
            };
            let receipt = SendReceipt {
                message_id: view.message_id.clone(),
                offset_msg_id: None,
                topic: view.topic.clone(),
                queue_id: Some(view.queue_id),
                queue_offset: view.queue_offset,
                transaction_id: Some(cmd.transaction_id),
                recall_handle: None,
                endpoint: endpoint.to_string(),
            };
            let resolution = match checker.check(view).await {
                TransactionResolution::Commit => v2::TransactionResolution::Commit,
                TransactionResolution::Rollback => v2::TransactionResolution::Rollback,
                TransactionResolution::Unknown => return,
            };
            let Some(inner) = weak.upgrade() else { return };
            let producer = Producer { inner };
            if let Err(e) = producer
                .end_transaction(&receipt, resolution, v2::TransactionSource::SourceServerCheck)
                .await
            {
                tracing::warn!(message_id = receipt.message_id, error = %e, "answering a transaction check-back failed");
            }
        });
    }
}

/// A new message id in the official clients' format (version 1): `01`, 6 bytes of a
/// process-unique host id, 2 of the pid, 4 of seconds since 2021-01-01 and a 4-byte sequence,
/// upper-case hex: 34 characters, unique per process and sortable within it.
pub(crate) fn message_id() -> String {
    const EPOCH_2021: u64 = 1_609_459_200;
    // "01", the host id and the pid: the same for every id of the process.
    static PREFIX: OnceLock<String> = OnceLock::new();
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let prefix = PREFIX.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let pid = std::process::id();
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(pid);
        let v = h.finish().to_be_bytes();
        let mut p = String::with_capacity(18);
        p.push_str("01");
        crate::client::rpc::push_hex_upper(&mut p, &v[..6]);
        crate::client::rpc::push_hex_upper(&mut p, &(pid as u16).to_be_bytes());
        p
    });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let secs = now.saturating_sub(EPOCH_2021) as u32;
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let mut out = String::with_capacity(34);
    out.push_str(prefix);
    crate::client::rpc::push_hex_upper(&mut out, &secs.to_be_bytes());
    crate::client::rpc::push_hex_upper(&mut out, &seq.to_be_bytes());
    out
}

/// This host, as the `born_host` of messages.
fn local_host() -> String {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map_or_else(|_| "localhost".to_owned(), |h| h.trim().to_owned())
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_unique_and_in_the_official_format() {
        let ids: Vec<String> = (0..1000).map(|_| message_id()).collect();
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        for id in &ids {
            assert_eq!(id.len(), 34, "{id}");
            assert!(id.starts_with("01"), "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase()), "{id}");
        }
    }

    #[tokio::test]
    async fn a_bad_message_fails_before_any_network_call() {
        // Nothing listens on port 1: any network call would fail UNAVAILABLE instead.
        let p = Producer::builder(ClientConfig::new("127.0.0.1:1")).build().unwrap();
        let e = p.send_batch(vec![]).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
        let mixed = vec![Message::new("A", "x"), Message::new("B", "y")];
        let e = p.send_batch(mixed).await.unwrap_err();
        assert!(e.message().contains("one topic"), "{e}");
        let e = p.send(Message::new("bad topic", "x")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest, "{e}");
        let e = p.send(Message::new("T", vec![0u8; (4 << 20) + 1])).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PayloadTooLarge, "{e}");
        assert!(p.begin_transaction().is_err(), "no checker");
    }

    #[test]
    fn building_outside_a_runtime_says_how_to_fix_it() {
        let e = Producer::builder(ClientConfig::new("127.0.0.1:1")).build().unwrap_err();
        assert!(e.message().contains("runtime"), "{e}");
    }
}
