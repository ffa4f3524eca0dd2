//! Delay messages. A message whose `delivery_timestamp` is in the future is appended to the
//! CommitLog under the system topic `rmq_sys_wheel_timer`, in the queue of its delay bucket
//! (log2 of the delay in seconds, so each queue fires roughly in order), with its real topic and
//! queue in properties. The timer keeps the pending ones in a time-ordered index and, when one is
//! due, appends a copy to its real topic, where consumers see it (type DELAY,
//! `delivery_timestamp` set). What has fired or been recalled is recorded per bucket queue
//! ([`Settled`]) in `config/timer.json`, saved after every firing and every recall; on start the
//! index is rebuilt from the bucket queues, from each queue's low-water mark. Messages are thus
//! always on disk; the index is only a cache of them.
//!
//! A send receipt carries a recall handle: `base64url("v1 <topic> <broker> <deliver ms>
//! <message id> <bucket> <queue offset>")`. `RecallMessage` with it cancels the message if it has
//! not fired.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::broker::Broker;
pub use crate::broker::convert::PROPERTY_TIMER_DELIVER_MS;
use crate::broker::error::{BrokerError, Result};
use crate::broker::lock;
use crate::broker::settled::{Settled, StateFile};
use crate::protocol::v2::Code;
use crate::storage::message::now_millis;
use crate::storage::persist::load_json;
use crate::storage::{MessageStore, PutMessage, StoredMessage};

/// The system topic delay messages wait in.
pub const TIMER_TOPIC: &str = "rmq_sys_wheel_timer";
/// The topic a system-topic message really belongs to.
pub const PROPERTY_REAL_TOPIC: &str = "REAL_TOPIC";
/// The queue a system-topic message really belongs to.
pub const PROPERTY_REAL_QID: &str = "REAL_QID";
/// Delay buckets (queues of the timer topic): bucket `b` holds delays under 2^b seconds.
pub const BUCKETS: u32 = 20;
/// Most due messages one firing takes (the rest go in the next, right after).
const FIRE_MAX_MESSAGES: usize = 16_384;
/// Body bytes per append request of a firing; the requests of one firing run concurrently, so
/// a burst of due messages is not queued one small batch at a time behind producers.
const FIRE_BATCH_BYTES: usize = 4 << 20;
/// Recalled messages remembered, so a repeated recall answers OK.
const RECALLED_REMEMBERED: usize = 4096;

/// The bucket (timer queue) of a message due in `delay_ms`.
pub fn bucket(delay_ms: i64) -> u32 {
    let secs = (delay_ms.max(0) / 1000).max(1) as u64;
    (64 - secs.leading_zeros()).min(BUCKETS - 1)
}

/// Where a pending delay message is: (deliver ms, bucket, queue offset in the bucket).
type Key = (i64, u32, u64);

#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    buckets: BTreeMap<u32, Settled>,
}

#[derive(Debug, Default)]
struct State {
    settled: BTreeMap<u32, Settled>,
    /// Pending messages by due time → CommitLog offset.
    pending: BTreeMap<Key, u64>,
    recalled: VecDeque<(u32, u64)>,
    dirty: bool,
}

/// The delay-message timer.
#[derive(Debug)]
pub struct Timer {
    file: StateFile,
    state: Mutex<State>,
    /// Woken when a message due earlier than the timer sleeps for arrives.
    wake: tokio::sync::Notify,
}

/// The delivery time of a stored delay message, ms.
pub fn deliver_ms(m: &StoredMessage) -> Option<i64> {
    m.properties.get(PROPERTY_TIMER_DELIVER_MS).and_then(|v| v.parse().ok())
}

impl Timer {
    /// Loads the saved progress and rebuilds the index of pending messages from the store.
    pub(crate) fn open(store: &MessageStore) -> Result<Timer> {
        let path = store.config().dir.join("config").join("timer.json");
        let saved: Saved = load_json(&path)?.unwrap_or_default();
        let mut state = State { settled: saved.buckets, ..State::default() };
        for b in 0..BUCKETS {
            let (min, max) = (store.min_offset(TIMER_TOPIC, b), store.max_offset(TIMER_TOPIC, b));
            let settled = state.settled.entry(b).or_default();
            settled.forget_below(min);
            let Some(cq) = store.queue(TIMER_TOPIC, b) else { continue };
            for offset in settled.low..max {
                if settled.is_settled(offset) {
                    continue;
                }
                let Some(e) = cq.get(offset) else { continue };
                match store.read_at(e.commitlog_offset).ok().and_then(|m| deliver_ms(&m)) {
                    Some(at) => {
                        state.pending.insert((at, b, offset), e.commitlog_offset);
                    }
                    None => settled.settle(offset),
                }
            }
        }
        if !state.pending.is_empty() {
            tracing::info!(pending = state.pending.len(), "delay messages waiting");
        }
        Ok(Timer {
            file: StateFile::new(path),
            state: Mutex::new(state),
            wake: tokio::sync::Notify::new(),
        })
    }

    /// A delay message was stored at `offset` of bucket `b`.
    pub(crate) fn add(&self, at: i64, b: u32, offset: u64, commitlog_offset: u64) {
        let mut st = lock(&self.state);
        let earliest = st.pending.keys().next().is_none_or(|k| at < k.0);
        st.pending.insert((at, b, offset), commitlog_offset);
        drop(st);
        if earliest {
            self.wake.notify_one();
        }
    }

    /// How many messages wait.
    pub fn pending(&self) -> usize {
        lock(&self.state).pending.len()
    }

    fn next_due(&self) -> Option<i64> {
        lock(&self.state).pending.keys().next().map(|k| k.0)
    }

    fn take_due(&self, now: i64, max: usize) -> Vec<(Key, u64)> {
        let mut st = lock(&self.state);
        let mut out = Vec::new();
        while out.len() < max {
            match st.pending.first_key_value() {
                Some((k, _)) if k.0 <= now => {}
                _ => break,
            }
            if let Some(e) = st.pending.pop_first() {
                out.push(e);
            }
        }
        out
    }

    fn settle(&self, keys: impl IntoIterator<Item = (u32, u64)>) {
        let mut st = lock(&self.state);
        for (b, offset) in keys {
            st.settled.entry(b).or_default().settle(offset);
        }
        st.dirty = true;
    }

    fn put_back(&self, entries: Vec<(Key, u64)>) {
        lock(&self.state).pending.extend(entries);
    }

    /// Cancels a pending message. `Ok(true)`: recalled now; `Ok(false)`: recalled before.
    fn recall(&self, key: Key) -> Result<bool> {
        let mut st = lock(&self.state);
        if st.pending.remove(&key).is_some() {
            st.settled.entry(key.1).or_default().settle(key.2);
            if st.recalled.len() >= RECALLED_REMEMBERED {
                st.recalled.pop_front();
            }
            st.recalled.push_back((key.1, key.2));
            st.dirty = true;
            return Ok(true);
        }
        if st.recalled.contains(&(key.1, key.2)) {
            return Ok(false);
        }
        Err(BrokerError::new(
            Code::NotFound,
            "the delay message was already delivered (or never existed): only a message that has not reached its delivery time can be recalled",
        ))
    }

    /// Saves the progress if it changed.
    pub fn save(&self) -> Result<()> {
        self.file.save(&self.state, |st| &mut st.dirty, |st| Saved { buckets: st.settled.clone() })
    }
}

/// A recall handle for a delay message.
pub fn recall_handle(
    topic: &str,
    broker: &str,
    at: i64,
    message_id: &str,
    b: u32,
    offset: u64,
) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("v1 {topic} {broker} {at} {message_id} {b} {offset}"))
}

/// The broker (group) name a recall handle names: where the delay message waits.
pub fn recall_handle_broker(handle: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(handle.trim()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut parts = text.split(' ');
    (parts.next()? == "v1").then_some(())?;
    let _topic = parts.next()?;
    parts.next().filter(|b| !b.is_empty()).map(str::to_owned)
}

/// A parsed recall handle: (topic, deliver ms, message id, bucket, offset).
fn parse_recall_handle(handle: &str) -> Result<(String, i64, String, u32, u64)> {
    let bad =
        || BrokerError::new(Code::BadRequest, format!("recall handle {handle:?} is not valid"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(handle.trim())
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let parts: Vec<&str> = text.split(' ').collect();
    let [version, topic, _broker, at, id, b, offset] = parts.as_slice() else {
        return Err(bad());
    };
    if *version != "v1" {
        return Err(bad());
    }
    Ok((
        (*topic).to_owned(),
        at.parse().map_err(|_| bad())?,
        (*id).to_owned(),
        b.parse().map_err(|_| bad())?,
        offset.parse().map_err(|_| bad())?,
    ))
}

/// The message a fired delay message becomes in its real topic.
pub fn real_message(m: &StoredMessage, write_queues: u32) -> Option<PutMessage> {
    let topic = m.properties.get(PROPERTY_REAL_TOPIC)?.clone();
    let queue: u32 = m.properties.get(PROPERTY_REAL_QID).and_then(|q| q.parse().ok()).unwrap_or(0);
    let mut put = PutMessage::new(topic, queue % write_queues.max(1), m.body.clone());
    put.flags = m.flags;
    put.properties.clone_from(&m.properties);
    put.properties.remove(PROPERTY_REAL_TOPIC);
    put.properties.remove(PROPERTY_REAL_QID);
    put.born_timestamp = m.born_timestamp;
    put.born_host = m.born_host;
    put.reconsume_times = m.reconsume_times;
    Some(put)
}

impl Broker {
    /// `RecallMessage`: cancels a delay message that has not fired. Returns its message id.
    pub async fn recall(&self, topic: &str, handle: &str) -> Result<String> {
        self.check_writable("RecallMessage")?;
        let (handle_topic, at, id, b, offset) = parse_recall_handle(handle)?;
        if handle_topic != topic {
            return Err(BrokerError::new(
                Code::BadRequest,
                format!("the recall handle is for topic {handle_topic:?}, not {topic:?}"),
            ));
        }
        let recalled = self.timer().recall((at, b, offset))?;
        if recalled {
            let b = self.clone();
            tokio::task::spawn_blocking(move || b.timer().save())
                .await
                .map_err(|e| BrokerError::new(Code::InternalServerError, e.to_string()))??;
            tracing::debug!(topic, message_id = id, "delay message recalled");
        }
        Ok(id)
    }

    /// Fires due delay messages until `stop` changes.
    pub(crate) async fn run_timer(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let now = now_millis();
            let sleep =
                self.timer().next_due().map_or(std::time::Duration::from_secs(3600), |at| {
                    std::time::Duration::from_millis(u64::try_from(at - now).unwrap_or(0))
                });
            if !sleep.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(sleep) => {}
                    () = self.timer().wake.notified() => {}
                    _ = stop.changed() => return,
                }
            }
            if *stop.borrow() {
                return;
            }
            let due = self.timer().take_due(now_millis(), FIRE_MAX_MESSAGES);
            if due.is_empty() {
                continue;
            }
            if let Err(e) = self.fire(&due).await {
                tracing::warn!(error = %e, count = due.len(), "delivering due delay messages failed; retrying in 1 s");
                self.timer().put_back(due);
                tokio::select! {
                    () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }

    async fn fire(&self, due: &[(Key, u64)]) -> Result<()> {
        let mut puts = Vec::with_capacity(due.len());
        let mut lost = Vec::new();
        for &((_, b, offset), commitlog_offset) in due {
            let put = self.store().read_at(commitlog_offset).ok().and_then(|m| {
                let topic = m.properties.get(PROPERTY_REAL_TOPIC)?;
                let queues = self.store().topics().get(topic).map_or(1, |c| c.write_queues);
                real_message(&m, queues)
            });
            match put {
                Some(p) => puts.push(p),
                None => lost.push((b, offset)),
            }
        }
        if !lost.is_empty() {
            tracing::warn!(
                count = lost.len(),
                "delay messages lost to retention before their time"
            );
        }
        let mut batches: Vec<Vec<PutMessage>> = Vec::new();
        let mut bytes = usize::MAX;
        for p in puts {
            if bytes.saturating_add(p.body.len()) > FIRE_BATCH_BYTES {
                batches.push(Vec::new());
                bytes = 0;
            }
            bytes += p.body.len();
            if let Some(b) = batches.last_mut() {
                b.push(p);
            }
        }
        let appends = batches.into_iter().map(|b| self.store().put_batch(b));
        for r in futures_util::future::join_all(appends).await {
            r?;
        }
        self.timer().settle(due.iter().map(|&((_, b, o), _)| (b, o)));
        let b = self.clone();
        tokio::task::spawn_blocking(move || b.timer().save())
            .await
            .map_err(|e| BrokerError::new(Code::InternalServerError, e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_grow_with_the_delay() {
        assert_eq!(bucket(0), 1);
        assert_eq!(bucket(1500), 1);
        assert_eq!(bucket(3000), 2);
        assert_eq!(bucket(86_400_000), 17);
        assert_eq!(bucket(i64::MAX), BUCKETS - 1);
    }

    #[test]
    fn recall_handles_round_trip() {
        let h = recall_handle("ns%t", "broker-a", 123, "01AB", 3, 9);
        assert_eq!(parse_recall_handle(&h).unwrap(), ("ns%t".into(), 123, "01AB".into(), 3, 9));
        assert_eq!(parse_recall_handle("???").unwrap_err().code, Code::BadRequest);
        assert_eq!(recall_handle_broker(&h).as_deref(), Some("broker-a"));
        assert_eq!(recall_handle_broker("???"), None);
    }
}
