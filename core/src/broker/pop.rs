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
            for (&offset, inf) in &mut qs.inflight {
                if out.len() >= spec.batch {
                    break;
                }
                if inf.visible_at > now {
                    continue;
                }
                if let Some((client, until)) = &inf.renew
                    && now < *until
                    && alive(client)
                {
                    inf.visible_at = now + AUTO_RENEW_INVISIBLE_MS;
                    continue;
                }
                let Ok(message) = self.store.read_at(inf.commitlog_offset) else {
                    // Deleted by retention while invisible: nothing left to redeliver.
                    inf.visible_at = i64::MAX;
                    continue;
                };
                inf.seq = self.next_seq();
                inf.attempt += 1;
                inf.visible_at = now + spec.invisible_ms;
                inf.renew.clone_from(&renew);
                out.push(Delivery {
                    receipt_handle: self.handle(Handle { queue_id, offset, seq: inf.seq }),
                    delivery_attempt: inf.attempt + message.reconsume_times,
                    invisible_ms: spec.invisible_ms,
                    message,
                });
            }
            // Forget what retention removed for good.
            qs.inflight.retain(|_, inf| inf.visible_at != i64::MAX);
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
        QueueState { next, committed: next, inflight: BTreeMap::new() }
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
        let inf = st
            .queues
            .get_mut(&h.queue_id)
            .and_then(|qs| qs.inflight.get_mut(&h.offset))
            .filter(|inf| inf.seq == h.seq)
            .ok_or_else(|| stale(handle))?;
        inf.seq = self.next_seq();
        inf.visible_at = now_millis() + invisible_ms;
        inf.renew = None;
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
            .flat_map(|q| q.inflight.values())
            .map(|i| i.visible_at)
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
