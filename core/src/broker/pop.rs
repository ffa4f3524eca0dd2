//! Pop-style consumption (what `ReceiveMessage` serves): a consumer group takes messages from a
//! topic's queues; each taken message is invisible to the group until it is acked or its
//! invisible time passes, after which it is delivered again with `delivery_attempt` + 1.
//!
//! State per (group, topic, queue): `next`, the first offset never handed out, and `inflight`,
//! the handed-out-but-unacked offsets. The group's committed offset (persisted through the
//! store's consumer offsets) is the smallest unacked offset, so a restart redelivers what was
//! not acked: at-least-once. A receipt handle names one hand-out (`seq`); a newer hand-out,
//! an ack or a change of invisible time makes older handles stale.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::broker::error::{BrokerError, Result};
use crate::protocol::v2::Code;
use crate::storage::message::now_millis;
use crate::storage::{MessageStore, StoredMessage, TagFilter};

/// How long a push consumer's message stays invisible between renewals, ms.
pub const AUTO_RENEW_INVISIBLE_MS: i64 = 60_000;
/// Auto-renewal stops this long after the first delivery, ms (the proxy's 3 h).
pub const AUTO_RENEW_MAX_MS: i64 = 3 * 3600 * 1000;

#[derive(Debug, Clone)]
struct Inflight {
    seq: u64,
    visible_at: i64,
    attempt: u32,
    commitlog_offset: u64,
    /// Push consumers: the client whose liveness keeps the message invisible, and until when.
    renew: Option<(String, i64)>,
}

#[derive(Debug, Default)]
struct QueueState {
    next: u64,
    committed: u64,
    inflight: BTreeMap<u64, Inflight>,
    /// No inflight message of this queue becomes visible before this time (a lower bound),
    /// ms: a receive skips the queue's inflight scan until then.
    next_due: i64,
}

#[derive(Debug, Default)]
struct TopicState {
    queues: BTreeMap<u32, QueueState>,
    /// Where the next fresh read starts, for fairness across queues.
    cursor: u32,
}

/// (consumer group, topic).
type GroupTopic = (String, String);

/// A message handed out by [`Pop::receive`].
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The message.
    pub message: StoredMessage,
    /// The handle to ack it or change its invisible time with.
    pub receipt_handle: String,
    /// 1 on first delivery.
    pub delivery_attempt: u32,
    /// How long it stays invisible, ms.
    pub invisible_ms: i64,
}

/// What one receive asks for.
#[derive(Debug, Clone)]
pub struct ReceiveSpec<'a> {
    /// Consumer group.
    pub group: &'a str,
    /// Topic.
    pub topic: &'a str,
    /// Readable queues of the topic (`0..read_queues`).
    pub read_queues: u32,
    /// Tag filter.
    pub filter: &'a TagFilter,
    /// Most messages.
    pub batch: usize,
    /// Invisible time of what is handed out, ms.
    pub invisible_ms: i64,
    /// Renew invisibility while this client lives (push consumers).
    pub auto_renew_client: Option<&'a str>,
}

/// A parsed receipt handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Handle {
    queue_id: u32,
    offset: u64,
    seq: u64,
}

/// The pop state of every (group, topic).
#[derive(Debug)]
pub struct Pop {
    store: MessageStore,
    /// Changes on each broker start, so handles from an earlier run are recognisably stale.
    epoch: u64,
    seq: AtomicU64,
    topics: Mutex<HashMap<GroupTopic, Arc<Mutex<TopicState>>>>,
}

impl Pop {
    pub(crate) fn new(store: MessageStore) -> Self {
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_micros() as u64);
        Pop { store, epoch, seq: AtomicU64::new(1), topics: Mutex::new(HashMap::new()) }
    }

    fn state(&self, group: &str, topic: &str) -> Arc<Mutex<TopicState>> {
        let mut map = self.topics.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(map.entry((group.to_owned(), topic.to_owned())).or_default())
    }

    fn handle(&self, h: Handle) -> String {
        format!("{:x}.{}.{}.{:x}", self.epoch, h.queue_id, h.offset, h.seq)
    }

    fn parse_handle(&self, s: &str) -> Result<Handle> {
        let stale = || {
            BrokerError::new(
                Code::InvalidReceiptHandle,
                format!("receipt handle {s:?} is not valid on this broker"),
            )
        };
        let mut parts = s.split('.');
        let (Some(epoch), Some(q), Some(off), Some(seq), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(stale());
        };
        if u64::from_str_radix(epoch, 16).ok() != Some(self.epoch) {
            return Err(stale());
        }
        Ok(Handle {
            queue_id: q.parse().map_err(|_| stale())?,
            offset: off.parse().map_err(|_| stale())?,
            seq: u64::from_str_radix(seq, 16).map_err(|_| stale())?,
        })
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Hands out up to `spec.batch` messages: first those whose invisible time passed, then
    /// new ones. `alive` says whether a client is still there (for auto-renewal).
    pub fn receive(
        &self,
        spec: &ReceiveSpec<'_>,
        alive: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<Delivery>> {
        let state = self.state(spec.group, spec.topic);
        let mut st = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = now_millis();
        let mut out = Vec::new();
        let renew = spec.auto_renew_client.map(|c| (c.to_owned(), now + AUTO_RENEW_MAX_MS));

        // Redeliveries first: they have waited longest.
        for (&queue_id, qs) in &mut st.queues {
            if qs.next_due > now || out.len() >= spec.batch {
                continue;
            }
            let (mut due, mut complete, mut gone) = (i64::MAX, true, false);
            for (&offset, inf) in &mut qs.inflight {
                if out.len() >= spec.batch {
                    complete = false;
                    break;
                }
                if inf.visible_at > now {
                    due = due.min(inf.visible_at);
                    continue;
                }
                if let Some((client, until)) = &inf.renew
                    && now < *until
                    && alive(client)
                {
                    inf.visible_at = now + AUTO_RENEW_INVISIBLE_MS;
                    due = due.min(inf.visible_at);
                    continue;
                }
                let Ok(message) = self.store.read_at(inf.commitlog_offset) else {
                    // Deleted by retention while invisible: nothing left to redeliver.
                    inf.visible_at = i64::MAX;
                    gone = true;
                    continue;
                };
                inf.seq = self.next_seq();
                inf.attempt += 1;
                inf.visible_at = now + spec.invisible_ms;
                inf.renew.clone_from(&renew);
                due = due.min(inf.visible_at);
                out.push(Delivery {
                    receipt_handle: self.handle(Handle { queue_id, offset, seq: inf.seq }),
                    delivery_attempt: inf.attempt + message.reconsume_times,
                    invisible_ms: spec.invisible_ms,
                    message,
                });
            }
            if gone {
                qs.inflight.retain(|_, inf| inf.visible_at != i64::MAX);
            }
            // Stopped early: what was not looked at may be due now.
            qs.next_due = if complete { due } else { now };
        }

        // Then new messages, round-robin over the readable queues.
        let queues = spec.read_queues.max(1);
        let start = st.cursor % queues;
        st.cursor = st.cursor.wrapping_add(1);
        for i in 0..queues {
            if out.len() >= spec.batch {
                break;
            }
            let queue_id = (start + i) % queues;
            let qs = st
                .queues
                .entry(queue_id)
                .or_insert_with(|| self.initial(spec.group, spec.topic, queue_id));
            let min = self.store.min_offset(spec.topic, queue_id);
            if qs.next < min {
                qs.next = min;
            }
            let got = self.store.get_messages(
                spec.topic,
                queue_id,
                qs.next,
                spec.batch - out.len(),
                spec.filter,
            )?;
            for message in got.messages {
                let seq = self.next_seq();
                let offset = message.queue_offset;
                qs.next_due = qs.next_due.min(now + spec.invisible_ms);
                qs.inflight.insert(
                    offset,
                    Inflight {
                        seq,
                        visible_at: now + spec.invisible_ms,
                        attempt: 1,
                        commitlog_offset: message.commitlog_offset,
                        renew: renew.clone(),
                    },
                );
                out.push(Delivery {
                    receipt_handle: self.handle(Handle { queue_id, offset, seq }),
                    delivery_attempt: 1 + message.reconsume_times,
                    invisible_ms: spec.invisible_ms,
                    message,
                });
            }
            qs.next = qs.next.max(got.next_offset);
        }
        self.commit_all(spec.group, spec.topic, &mut st);
        Ok(out)
    }

    /// Where a group with no state yet starts on a queue: its committed offset, else the
    /// queue's start while nothing was deleted from it (RocketMQ's behaviour for new groups),
    /// else the queue's end.
    fn initial(&self, group: &str, topic: &str, queue_id: u32) -> QueueState {
        let next = self.store.consumer_offsets().get(group, topic, queue_id).unwrap_or_else(|| {
            let min = self.store.min_offset(topic, queue_id);
            if min == 0 { 0 } else { self.store.max_offset(topic, queue_id) }
        });
        QueueState { next, committed: next, inflight: BTreeMap::new(), next_due: i64::MAX }
    }

    fn commit_all(&self, group: &str, topic: &str, st: &mut TopicState) {
        for (&queue_id, qs) in &mut st.queues {
            let committed = qs.inflight.keys().next().copied().unwrap_or(qs.next);
            if committed != qs.committed {
                qs.committed = committed;
                self.store.consumer_offsets().commit(group, topic, queue_id, committed);
            }
        }
    }

    /// Acknowledges the message a handle names.
    pub fn ack(&self, group: &str, topic: &str, handle: &str) -> Result<()> {
        let h = self.parse_handle(handle)?;
        let state = self.state(group, topic);
        let mut st = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = st
            .queues
            .get(&h.queue_id)
            .and_then(|qs| qs.inflight.get(&h.offset))
            .is_some_and(|inf| inf.seq == h.seq);
        if !current {
            return Err(stale(handle));
        }
        if let Some(qs) = st.queues.get_mut(&h.queue_id) {
            qs.inflight.remove(&h.offset);
        }
        self.commit_all(group, topic, &mut st);
        Ok(())
    }

    /// Makes the message a handle names visible again after `invisible_ms` (0: now), and
    /// returns the new handle (the old one is stale). Ends auto-renewal for it.
    pub fn change_invisible(
        &self,
        group: &str,
        topic: &str,
        handle: &str,
        invisible_ms: i64,
    ) -> Result<String> {
        let h = self.parse_handle(handle)?;
        let state = self.state(group, topic);
        let mut st = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let qs = st.queues.get_mut(&h.queue_id).ok_or_else(|| stale(handle))?;
        let inf = qs
            .inflight
            .get_mut(&h.offset)
            .filter(|inf| inf.seq == h.seq)
            .ok_or_else(|| stale(handle))?;
        inf.seq = self.next_seq();
        inf.visible_at = now_millis() + invisible_ms;
        inf.renew = None;
        qs.next_due = qs.next_due.min(inf.visible_at);
        Ok(self.handle(Handle { seq: inf.seq, ..h }))
    }

    /// A client went away: what it held under auto-renewal becomes visible now.
    pub fn release_client(&self, client_id: &str) {
        let states: Vec<Arc<Mutex<TopicState>>> = self
            .topics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        let now = now_millis();
        for state in states {
            let mut st = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for qs in st.queues.values_mut() {
                for inf in qs.inflight.values_mut() {
                    if inf.renew.as_ref().is_some_and(|(c, _)| c == client_id) {
                        inf.renew = None;
                        inf.visible_at = now;
                        qs.next_due = qs.next_due.min(now);
                    }
                }
            }
        }
    }

    /// When the earliest invisible message of (group, topic) becomes visible, ms.
    pub fn next_visible(&self, group: &str, topic: &str) -> Option<i64> {
        let state = self.state(group, topic);
        let st = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        st.queues
            .values()
            .filter(|q| !q.inflight.is_empty())
            .map(|q| q.next_due)
            .filter(|t| *t != i64::MAX)
            .min()
    }

    /// The next offset a fresh read of each queue starts at (for long polling).
    pub fn next_offsets(&self, group: &str, topic: &str, read_queues: u32) -> Vec<(u32, u64)> {
        let state = self.state(group, topic);
        let mut st = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (0..read_queues.max(1))
            .map(|q| (q, st.queues.entry(q).or_insert_with(|| self.initial(group, topic, q)).next))
            .collect()
    }

    /// Moves the group's offsets on `topic` to `targets` (queue id, offset) and forgets what it
    /// had in flight there: the next receive starts at the new offsets. Done under the state's
    /// lock, so a receive or ack running meanwhile cannot write the old offsets back.
    /// Returns (queue id, old committed offset, new offset).
    pub fn reset_to(
        &self,
        group: &str,
        topic: &str,
        targets: &[(u32, u64)],
    ) -> Vec<(u32, u64, u64)> {
        let state = self.state(group, topic);
        let mut st = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        st.queues.clear();
        let offsets = self.store.consumer_offsets();
        targets
            .iter()
            .map(|&(queue_id, new)| {
                let old = offsets.get(group, topic, queue_id).unwrap_or(0);
                offsets.commit(group, topic, queue_id, new);
                (queue_id, old, new)
            })
            .collect()
    }
}

fn stale(handle: &str) -> BrokerError {
    BrokerError::new(
        Code::InvalidReceiptHandle,
        format!(
            "receipt handle {handle:?} is stale: the message was acked, re-delivered or its invisible time changed"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{PutMessage, StoreConfig};

    async fn store_with(n: usize) -> (tempfile::TempDir, MessageStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = MessageStore::open(StoreConfig {
            segment_size: 8 << 20,
            ..StoreConfig::new(dir.path())
        })
        .unwrap();
        for i in 0..n {
            store
                .put(PutMessage::new("t", 0, format!("m{i}")).with_message_id(format!("id{i}")))
                .await
                .unwrap();
        }
        while store.dispatched_offset() < store.commitlog_max_offset() {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        (dir, store)
    }

    fn spec<'a>(filter: &'a TagFilter, batch: usize, renew: Option<&'a str>) -> ReceiveSpec<'a> {
        ReceiveSpec {
            group: "g",
            topic: "t",
            read_queues: 1,
            filter,
            batch,
            invisible_ms: 60_000,
            auto_renew_client: renew,
        }
    }

    #[tokio::test]
    async fn due_messages_come_back_and_others_stay_invisible() {
        let (_dir, store) = store_with(50).await;
        let pop = Pop::new(store);
        let all = TagFilter::All;
        let first = pop.receive(&spec(&all, 50, None), &|_| true).unwrap();
        assert_eq!(first.len(), 50);
        assert!(pop.receive(&spec(&all, 50, None), &|_| true).unwrap().is_empty());
        // Make message 7 visible now: only it comes back, as attempt 2.
        let h = pop.change_invisible("g", "t", &first[7].receipt_handle, 0).unwrap();
        assert!(pop.next_visible("g", "t").unwrap() <= now_millis());
        let again = pop.receive(&spec(&all, 50, None), &|_| true).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].message.message_id(), Some("id7"));
        assert_eq!(again[0].delivery_attempt, 2);
        assert!(pop.ack("g", "t", &h).is_err(), "superseded handle");
        pop.ack("g", "t", &again[0].receipt_handle).unwrap();
        assert!(pop.receive(&spec(&all, 50, None), &|_| true).unwrap().is_empty());
    }

    #[tokio::test]
    async fn auto_renew_holds_messages_while_the_client_lives() {
        let (_dir, store) = store_with(3).await;
        let pop = Pop::new(store);
        let all = TagFilter::All;
        let got = pop.receive(&spec(&all, 3, Some("push-1")), &|_| true).unwrap();
        assert_eq!(got.len(), 3);
        // Force them due, as if 60 s passed.
        for d in &got {
            pop.change_invisible("g", "t", &d.receipt_handle, 0).unwrap();
        }
        // change_invisible ends auto-renewal (a nack): they come back to anyone.
        assert_eq!(pop.receive(&spec(&all, 3, Some("push-2")), &|_| true).unwrap().len(), 3);
        // push-2 holds them now; while it lives nothing is redelivered...
        pop.release_client("nobody");
        assert!(pop.receive(&spec(&all, 3, None), &|_| true).unwrap().is_empty());
        // ...and when it goes away, everything it held is delivered again.
        pop.release_client("push-2");
        assert_eq!(pop.receive(&spec(&all, 3, None), &|_| true).unwrap().len(), 3);
    }
}
