//! Transactions. A TRANSACTION message is stored as a half message under the system topic
//! `RMQ_SYS_TRANS_HALF_TOPIC` (its real topic and queue in properties): invisible to consumers.
//! `EndTransaction` COMMIT appends a copy to the real topic; ROLLBACK discards it. A transaction
//! left open is checked with a producer of its topic over that producer's Telemetry stream
//! (`RecoverOrphanedTransactionCommand`): first after `transaction_check_first_ms`, then every
//! `transaction_check_interval_ms`, at most `transaction_check_max` times, after which it is
//! rolled back, as RocketMQ discards it. The producer answers with `EndTransaction` (source
//! `SERVER_CHECK`).
//!
//! What has ended is recorded ([`Settled`], with the check counts) in
//! `config/transactions.json`, saved before `EndTransaction` answers; on start the open half
//! messages are found again by rescanning the half queue from its low-water mark.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::broker::convert::{BodyDigest, Delivered, PROPERTY_TRANSACTION_PREPARED, to_wire};
use crate::broker::error::{BrokerError, Result};
use crate::broker::lock;
use crate::broker::settled::{Settled, StateFile};
use crate::broker::timer::{PROPERTY_REAL_QID, PROPERTY_REAL_TOPIC, real_message};
use crate::broker::{Broker, BrokerConfig};
use crate::protocol::v2::{self, Code, TransactionResolution, telemetry_command::Command};
use crate::storage::message::now_millis;
use crate::storage::persist::load_json;
use crate::storage::{MessageStore, StoredMessage};

/// The system topic half messages wait in.
pub const HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
/// The producer group of a half message (the proxy uses the topic).
pub const PROPERTY_PRODUCER_GROUP: &str = "PGROUP";
/// Ended transactions remembered, so a repeated `EndTransaction` answers OK.
const ENDED_REMEMBERED: usize = 4096;

/// An open transaction at its half-queue offset.
type Open = (u64, Half);

/// An open transaction.
#[derive(Debug, Clone)]
struct Half {
    commitlog_offset: u64,
    /// The stored (namespaced) real topic.
    topic: String,
    checks: u32,
    next_check: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    settled: Settled,
    /// Checks so far of open transactions, by half-queue offset.
    #[serde(default)]
    checks: BTreeMap<u64, u32>,
}

#[derive(Debug, Default)]
struct State {
    settled: Settled,
    open: BTreeMap<u64, Half>,
    /// Transaction id → half-queue offset.
    by_id: HashMap<String, u64>,
    ended: VecDeque<(String, TransactionResolution)>,
    dirty: bool,
}

/// The open transactions of this broker.
#[derive(Debug)]
pub struct Transactions {
    file: StateFile,
    state: Mutex<State>,
}

impl Transactions {
    /// Loads the saved progress and finds the open half messages in the store.
    pub(crate) fn open(store: &MessageStore, config: &BrokerConfig) -> Result<Transactions> {
        let path = store.config().dir.join("config").join("transactions.json");
        let saved: Saved = load_json(&path)?.unwrap_or_default();
        let mut state = State { settled: saved.settled, ..State::default() };
        let (min, max) = (store.min_offset(HALF_TOPIC, 0), store.max_offset(HALF_TOPIC, 0));
        state.settled.forget_below(min);
        let first_check = now_millis() + config.transaction_check_first_ms;
        if let Some(cq) = store.queue(HALF_TOPIC, 0) {
            for offset in state.settled.low..max {
                if state.settled.is_settled(offset) {
                    continue;
                }
                let half = cq.get(offset).and_then(|e| store.read_at(e.commitlog_offset).ok());
                let Some(m) = half else {
                    state.settled.settle(offset);
                    continue;
                };
                let (Some(id), Some(topic)) =
                    (m.message_id(), m.properties.get(PROPERTY_REAL_TOPIC))
                else {
                    state.settled.settle(offset);
                    continue;
                };
                state.by_id.insert(id.to_owned(), offset);
                state.open.insert(
                    offset,
                    Half {
                        commitlog_offset: m.commitlog_offset,
                        topic: topic.clone(),
                        checks: saved.checks.get(&offset).copied().unwrap_or(0),
                        next_check: first_check,
                    },
                );
            }
        }
        if !state.open.is_empty() {
            tracing::info!(open = state.open.len(), "open transactions found");
        }
        Ok(Transactions { file: StateFile::new(path), state: Mutex::new(state) })
    }

    /// A half message was stored at `offset`.
    pub(crate) fn add(
        &self,
        id: &str,
        topic: &str,
        offset: u64,
        commitlog_offset: u64,
        first: i64,
    ) {
        let mut st = lock(&self.state);
        st.by_id.insert(id.to_owned(), offset);
        st.open.insert(
            offset,
            Half {
                commitlog_offset,
                topic: topic.to_owned(),
                checks: 0,
                next_check: now_millis() + first,
            },
        );
    }

    /// How many transactions are open.
    pub fn open_count(&self) -> usize {
        lock(&self.state).open.len()
    }

    /// Takes the open transaction `id` on `topic` out, to end it. `Ok(None)`: it already ended
    /// the same way.
    fn take(
        &self,
        id: &str,
        topic: &str,
        resolution: TransactionResolution,
    ) -> Result<Option<(u64, Half)>> {
        let mut st = lock(&self.state);
        if let Some(&offset) = st.by_id.get(id)
            && st.open.get(&offset).is_some_and(|h| h.topic == topic)
        {
            st.by_id.remove(id);
            let half = st.open.remove(&offset).map(|h| (offset, h));
            return Ok(half);
        }
        match st.ended.iter().find(|(e, _)| e == id) {
            Some((_, r)) if *r == resolution => Ok(None),
            Some((_, r)) => Err(BrokerError::new(
                Code::InvalidTransactionId,
                format!("transaction {id:?} already ended with {}", r.as_str_name()),
            )),
            None => Err(BrokerError::new(
                Code::InvalidTransactionId,
                format!("no open transaction {id:?} on topic {topic:?}"),
            )),
        }
    }

    fn put_back(&self, id: &str, offset: u64, half: Half) {
        let mut st = lock(&self.state);
        st.by_id.insert(id.to_owned(), offset);
        st.open.insert(offset, half);
    }

    fn ended(&self, id: &str, offset: u64, resolution: TransactionResolution) {
        let mut st = lock(&self.state);
        st.settled.settle(offset);
        if st.ended.len() >= ENDED_REMEMBERED {
            st.ended.pop_front();
        }
        st.ended.push_back((id.to_owned(), resolution));
        st.dirty = true;
    }

    /// Open transactions due for a check: (half-queue offset, half) with the check counted.
    fn due_checks(&self, config: &BrokerConfig) -> (Vec<Open>, Vec<Open>) {
        let now = now_millis();
        let mut st = lock(&self.state);
        let mut check = Vec::new();
        let mut expired = Vec::new();
        for (&offset, half) in &mut st.open {
            if half.next_check > now {
                continue;
            }
            if half.checks >= config.transaction_check_max {
                expired.push((offset, half.clone()));
                continue;
            }
            half.checks += 1;
            half.next_check = now + config.transaction_check_interval_ms;
            check.push((offset, half.clone()));
        }
        for (offset, _) in &expired {
            st.open.remove(offset);
            st.settled.settle(*offset);
        }
        st.by_id.retain(|_, o| !expired.iter().any(|(e, _)| e == o));
        if !check.is_empty() || !expired.is_empty() {
            st.dirty = true;
        }
        (check, expired)
    }

    /// Saves the progress if it changed.
    pub fn save(&self) -> Result<()> {
        self.file.save(
            &self.state,
            |st| &mut st.dirty,
            |st| Saved {
                settled: st.settled.clone(),
                checks: st
                    .open
                    .iter()
                    .filter(|(_, h)| h.checks > 0)
                    .map(|(&o, h)| (o, h.checks))
                    .collect(),
            },
        )
    }
}

/// The message a producer's checker sees: the half message as it was sent.
fn as_sent(m: &StoredMessage) -> StoredMessage {
    let mut view = m.clone();
    if let Some(t) = m.properties.get(PROPERTY_REAL_TOPIC) {
        view.topic.clone_from(t);
    }
    view.queue_id = m.properties.get(PROPERTY_REAL_QID).and_then(|q| q.parse().ok()).unwrap_or(0);
    for p in [PROPERTY_REAL_TOPIC, PROPERTY_REAL_QID, PROPERTY_PRODUCER_GROUP] {
        view.properties.remove(p);
    }
    view
}

impl Broker {
    /// `EndTransaction`: commits (the message becomes visible in its topic) or rolls back the
    /// open transaction `id` of `topic`. Ending it again the same way answers OK.
    pub async fn end_transaction(
        &self,
        topic: &str,
        id: &str,
        resolution: TransactionResolution,
    ) -> Result<()> {
        self.check_writable("EndTransaction")?;
        if id.trim().is_empty() {
            return Err(BrokerError::new(Code::InvalidTransactionId, "transaction id is empty"));
        }
        if !matches!(resolution, TransactionResolution::Commit | TransactionResolution::Rollback) {
            return Err(BrokerError::new(
                Code::BadRequest,
                "resolution must be COMMIT or ROLLBACK",
            ));
        }
        let Some((offset, half)) = self.transactions().take(id, topic, resolution)? else {
            return Ok(());
        };
        // Where the committed message ends in the CommitLog: a sync_master answers once a
        // slave has it too, as for a send.
        let mut committed_end = None;
        if resolution == TransactionResolution::Commit {
            let put =
                self.store().read_at(half.commitlog_offset).map_err(BrokerError::from).and_then(
                    |m| {
                        let queues =
                            self.store().topics().get(&half.topic).map_or(1, |c| c.write_queues);
                        let mut put = real_message(&m, queues).ok_or_else(|| {
                            BrokerError::new(
                                Code::InternalServerError,
                                "half message has no real topic",
                            )
                        })?;
                        put.properties.remove(PROPERTY_PRODUCER_GROUP);
                        Ok(put)
                    },
                );
            let stored = match put {
                Ok(put) => self.store().put(put).await.map_err(BrokerError::from),
                Err(e) => Err(e),
            };
            match stored {
                Ok(put) => committed_end = Some(put.commitlog_offset + u64::from(put.size)),
                Err(e) => {
                    self.transactions().put_back(id, offset, half);
                    return Err(e);
                }
            }
        }
        self.transactions().ended(id, offset, resolution);
        self.metrics().transaction_ended(&half.topic, resolution == TransactionResolution::Commit);
        let b = self.clone();
        tokio::task::spawn_blocking(move || b.transactions().save())
            .await
            .map_err(|e| BrokerError::new(Code::InternalServerError, e.to_string()))??;
        tracing::debug!(topic, id, resolution = resolution.as_str_name(), "transaction ended");
        // The transaction stays ended either way: the message is stored here, and the client
        // is told if no slave confirmed it (a repeated commit would find nothing to commit).
        match committed_end {
            Some(end) => self.wait_replicated(end).await,
            None => Ok(()),
        }
    }

    /// Checks the open transactions that are due with a producer of their topic; rolls back
    /// those checked too often.
    pub(crate) fn check_transactions(&self) {
        let (check, expired) = self.transactions().due_checks(self.config());
        for (offset, half) in expired {
            self.metrics().transaction_ended(&half.topic, false);
            tracing::warn!(
                topic = half.topic,
                offset,
                checks = self.config().transaction_check_max,
                "transaction never ended: rolled back after the last check"
            );
        }
        for (_, half) in check {
            let Ok(m) = self.store().read_at(half.commitlog_offset) else { continue };
            let Some(id) = m.message_id().map(str::to_owned) else { continue };
            let Some(sender) = self.clients().producer_stream(&half.topic) else {
                tracing::debug!(topic = half.topic, id, "no producer to check a transaction with");
                continue;
            };
            let view = as_sent(&m);
            let mut message = to_wire(&Delivered {
                message: &view,
                receipt_handle: None,
                delivery_attempt: 1,
                invisible_ms: None,
                // Rare (one per check): the digest every client accepts.
                digest: BodyDigest::Md5,
            });
            if let Some(sys) = message.system_properties.as_mut() {
                sys.message_type = v2::MessageType::Transaction as i32;
            }
            let cmd = v2::TelemetryCommand {
                status: None,
                command: Some(Command::RecoverOrphanedTransactionCommand(
                    v2::RecoverOrphanedTransactionCommand {
                        message: Some(message),
                        transaction_id: id.clone(),
                    },
                )),
            };
            if sender.try_send(Ok(cmd)).is_err() {
                tracing::debug!(topic = half.topic, id, "producer stream busy or gone");
            } else {
                tracing::debug!(
                    topic = half.topic,
                    id,
                    checks = half.checks,
                    "transaction check sent"
                );
            }
        }
    }
}

/// Whether a stored message is a transaction half message.
pub fn is_half(m: &StoredMessage) -> bool {
    m.topic == HALF_TOPIC && m.properties.contains_key(PROPERTY_TRANSACTION_PREPARED)
}
