//! Pop-style consumption (what `ReceiveMessage` serves): a consumer group takes messages from a
//! topic's queues; each taken message is invisible to the group until it is acked or its
//! invisible time passes, after which it is delivered again with `delivery_attempt` + 1, until
//! the group's maximum attempts send it to the dead-letter queue.
//!
//! State per (group, topic, queue): `next`, the first offset never looked at; `inflight`, the
//! handed-out-but-unacked offsets; and, for FIFO groups, `held`: messages read but not handed out
//! because an earlier message of their message group is still in flight. Everything between the
//! lowest unacked offset and `next` that is in neither map was acked. The group's committed
//! offset (the store's consumer offsets) is the lowest unacked offset.
//!
//! The state is saved to `config/pop_state.json` every checkpoint interval and on close, so a
//! restart keeps in-flight messages, their delivery attempts, their receipt handles and the acks
//! above the lowest unacked offset. After a crash, what changed since the last save is replayed
//! (at-least-once): bounded by the checkpoint interval.
//!
//! A receipt handle names one hand-out: `<store id>.<queue>.<offset>.<seq>`. A newer hand-out or
//! a change of invisible time makes older handles of the message stale; an ack of a message that
//! is no longer in flight answers OK (acks are idempotent).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::broker::convert::PROPERTY_SHARDING_KEY;
use crate::broker::error::{BrokerError, Limit, Result};
use crate::broker::lock;
use crate::protocol::v2::Code;
use crate::storage::message::now_millis;
use crate::storage::persist::{load_json, save_json_compact};
use crate::storage::{ConsumeFrom, MessageStore, StoredMessage, TagFilter};

/// How long a push consumer's message stays invisible between renewals, ms.
pub const AUTO_RENEW_INVISIBLE_MS: i64 = 60_000;
/// Auto-renewal stops this long after the first delivery, ms (the proxy's 3 h).
pub const AUTO_RENEW_MAX_MS: i64 = 3 * 3600 * 1000;
/// Most messages of one queue a FIFO group reads ahead while their message groups are busy.
pub const MAX_HELD_PER_QUEUE: usize = 2048;
/// Receive attempts (`attempt_id`) remembered per (group, topic), for retried receives.
const MAX_REMEMBERED_ATTEMPTS: usize = 256;
/// Seq numbers carry the broker run in their high bits, so a run never reissues a handle an
/// earlier run gave out, even after a crash lost the earlier run's last hand-outs.
const SEQ_RUN_SHIFT: u32 = 40;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Inflight {
    seq: u64,
    visible_at: i64,
    /// Deliveries to this group so far (1 after the first).
    attempt: u32,
    commitlog_offset: u64,
    /// Push consumers: the client whose liveness keeps the message invisible, and until when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    renew: Option<(String, i64)>,
    /// FIFO groups: the hash of the message group this message keeps busy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fifo_key: Option<u64>,
    /// Being moved to the dead-letter queue: delivered to nobody meanwhile.
    #[serde(skip)]
    dead: bool,
}

/// A FIFO message read ahead, waiting for its message group to be free.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Held {
    commitlog_offset: u64,
    key: u64,
}

/// A queue's FIFO read-ahead: the held messages by offset, and how many each message group
/// has, so a receive finds the groups' first messages without scanning all of them (up to
/// [`MAX_HELD_PER_QUEUE`]) every time. Saved as the map of held messages alone.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "BTreeMap<u64, Held>", into = "BTreeMap<u64, Held>")]
struct ReadAhead {
    by_offset: BTreeMap<u64, Held>,
    /// Held messages per message group key.
    groups: HashMap<u64, usize>,
}

impl From<BTreeMap<u64, Held>> for ReadAhead {
    fn from(by_offset: BTreeMap<u64, Held>) -> Self {
        let mut groups = HashMap::new();
        for h in by_offset.values() {
            *groups.entry(h.key).or_insert(0) += 1;
        }
        ReadAhead { by_offset, groups }
    }
}

impl From<ReadAhead> for BTreeMap<u64, Held> {
    fn from(r: ReadAhead) -> Self {
        r.by_offset
    }
}

impl ReadAhead {
    fn len(&self) -> usize {
        self.by_offset.len()
    }

    fn is_empty(&self) -> bool {
        self.by_offset.is_empty()
    }

    fn first_offset(&self) -> Option<u64> {
        self.by_offset.keys().next().copied()
    }

    fn contains(&self, offset: u64) -> bool {
        self.by_offset.contains_key(&offset)
    }

    fn insert(&mut self, offset: u64, held: Held) {
        if let Some(old) = self.by_offset.insert(offset, held) {
            self.forget_group(old.key);
        }
        *self.groups.entry(held.key).or_insert(0) += 1;
    }

    fn remove(&mut self, offset: u64) -> Option<Held> {
        let held = self.by_offset.remove(&offset)?;
        self.forget_group(held.key);
        Some(held)
    }

    fn forget_group(&mut self, key: u64) {
        if let Some(n) = self.groups.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.groups.remove(&key);
            }
        }
    }

    /// Keeps the messages at or above `offset`.
    fn drop_below(&mut self, offset: u64) {
        if self.first_offset().is_some_and(|first| first < offset) {
            *self = ReadAhead::from(self.by_offset.split_off(&offset));
        }
    }

    /// The first held message of each message group not in `busy`, oldest first, at most
    /// `max`. Stops as soon as every group held here was seen.
    fn first_of_free_groups(&self, busy: &HashSet<u64>, max: usize) -> Vec<(u64, Held)> {
        let mut seen = HashSet::with_capacity(self.groups.len());
        let mut free = Vec::new();
        for (&offset, &h) in &self.by_offset {
            if free.len() >= max || seen.len() == self.groups.len() {
                break;
            }
            if seen.insert(h.key) && !busy.contains(&h.key) {
                free.push((offset, h));
            }
        }
        free
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct QueueState {
    next: u64,
    #[serde(default)]
    inflight: BTreeMap<u64, Inflight>,
    #[serde(default, skip_serializing_if = "ReadAhead::is_empty")]
    held: ReadAhead,
    /// The offset last committed to the store's consumer offsets.
    #[serde(skip)]
    committed: u64,
    /// No inflight message of this queue becomes visible before this time (a lower bound),
    /// ms: a receive skips the queue's inflight scan until then.
    #[serde(skip)]
    next_due: i64,
    /// The receive reading this queue's fresh messages now, outside the lock (its token).
    /// Others skip the queue meanwhile; a reset replaces the state, and the read is dropped.
    #[serde(skip)]
    reader: Option<u64>,
}

impl QueueState {
    fn lowest_unacked(&self) -> u64 {
        let first_inflight = self.inflight.keys().next().copied().unwrap_or(u64::MAX);
        let first_held = self.held.first_offset().unwrap_or(u64::MAX);
        first_inflight.min(first_held).min(self.next)
    }

    /// Forgets everything below `offset` (consumed elsewhere, or reset).
    fn drop_below(&mut self, offset: u64) {
        self.inflight = self.inflight.split_off(&offset);
        self.held.drop_below(offset);
        self.next = self.next.max(offset);
    }
}

/// One receive's hand-outs, remembered under its `attempt_id`.
#[derive(Debug)]
struct Attempt {
    id: String,
    expires: i64,
    handed: Vec<(u32, u64, u64)>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TopicState {
    queues: BTreeMap<u32, QueueState>,
    /// Where the next fresh read starts, for fairness across queues.
    #[serde(skip)]
    cursor: u32,
    #[serde(skip)]
    attempts: VecDeque<Attempt>,
    /// Last call that used this state, ms (for dropping idle state).
    #[serde(skip)]
    last_used: i64,
}

/// (consumer group, topic).
type GroupTopic = (String, String);

/// A queue claimed by a receive reading it outside the lock: released on drop if the read
/// ended early (an error or a panic), so the queue is never left claimed.
struct Claim<'a> {
    state: &'a Mutex<TopicState>,
    queue_id: u32,
    token: u64,
    released: bool,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        if let Some(qs) = lock(self.state).queues.get_mut(&self.queue_id)
            && qs.reader == Some(self.token)
        {
            qs.reader = None;
        }
    }
}

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

/// A message whose deliveries are used up: the broker moves it to the group's dead-letter
/// queue, then calls [`Pop::settle_dead`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Consumer group.
    pub group: String,
    /// Topic it was consumed from.
    pub topic: String,
    /// Queue id.
    pub queue_id: u32,
    /// Queue offset.
    pub offset: u64,
    /// CommitLog offset of the message.
    pub commitlog_offset: u64,
    /// Deliveries it had.
    pub attempts: u32,
    seq: u64,
}

/// What one receive gives: deliveries, and messages to dead-letter.
#[derive(Debug, Default)]
pub struct Received {
    /// Messages handed out.
    pub deliveries: Vec<Delivery>,
    /// Messages that used up their attempts.
    pub dead: Vec<DeadLetter>,
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
    /// Deliveries before a message goes to the dead-letter queue.
    pub max_attempts: u32,
    /// FIFO group: one message per message group in flight at a time, in order.
    pub fifo: bool,
    /// The client's id for this receive: a retry with the same id gets the same messages.
    pub attempt_id: Option<&'a str>,
    /// Most messages the group may have in flight over all its topics.
    pub max_inflight: usize,
}

/// A parsed receipt handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Handle {
    queue_id: u32,
    offset: u64,
    seq: u64,
}

/// What `config/pop_state.json` holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    /// Random per data directory: handles of another data directory are recognisably foreign.
    store_id: u32,
    /// Incremented on every start.
    run: u64,
    states: Vec<SavedState>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedState {
    group: String,
    topic: String,
    state: TopicState,
}

/// The pop state of every (group, topic).
#[derive(Debug)]
pub struct Pop {
    store: MessageStore,
    path: PathBuf,
    store_id: u32,
    run: u64,
    seq: AtomicU64,
    topics: Mutex<HashMap<GroupTopic, Arc<Mutex<TopicState>>>>,
    dirty: AtomicBool,
    /// One save at a time.
    save_lock: Mutex<()>,
    /// Signalled when a message may have become available without a queue growing (an ack
    /// freed a FIFO message group, a message was made visible): long polls look again.
    changed: tokio::sync::Notify,
}

/// The key a message group is tracked by.
fn group_key(message_group: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    message_group.hash(&mut h);
    h.finish()
}

impl Pop {
    /// Loads the saved state of `store` (if any) and starts a new run.
    pub(crate) fn open(store: MessageStore) -> Result<Self> {
        let path = store.config().dir.join("config").join("pop_state.json");
        let saved: Saved = load_json(&path)?.unwrap_or_else(|| Saved {
            store_id: (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.subsec_nanos() ^ (d.as_secs() as u32)))
                | 1,
            ..Saved::default()
        });
        let run = saved.run + 1;
        let mut topics = HashMap::new();
        let offsets = store.consumer_offsets();
        let now = now_millis();
        let mut restored = 0usize;
        for SavedState { group, topic, mut state } in saved.states {
            for (&queue_id, qs) in &mut state.queues {
                // The consumer offsets may have been saved after this state: what they say was
                // consumed stays consumed.
                if let Some(committed) = offsets.get(&group, &topic, queue_id) {
                    qs.drop_below(committed);
                }
                qs.committed = qs.lowest_unacked();
                qs.next_due = now;
                restored += qs.inflight.len();
            }
            topics.insert((group, topic), Arc::new(Mutex::new(state)));
        }
        let pop = Pop {
            store,
            path,
            store_id: saved.store_id,
            run,
            seq: AtomicU64::new(run << SEQ_RUN_SHIFT | 1),
            topics: Mutex::new(topics),
            dirty: AtomicBool::new(true),
            save_lock: Mutex::new(()),
            changed: tokio::sync::Notify::new(),
        };
        // The new run number must be durable before any handle carries it.
        pop.save()?;
        if restored > 0 {
            tracing::info!(inflight = restored, run, "restored consumption state");
        }
        Ok(pop)
    }

    fn state(&self, group: &str, topic: &str) -> Arc<Mutex<TopicState>> {
        let mut map = lock(&self.topics);
        let state = Arc::clone(map.entry((group.to_owned(), topic.to_owned())).or_default());
        drop(map);
        lock(&state).last_used = now_millis();
        state
    }

    /// Messages `group` has in flight on topics other than `topic`.
    fn inflight_elsewhere(&self, group: &str, topic: &str) -> usize {
        let states: Vec<Arc<Mutex<TopicState>>> = lock(&self.topics)
            .iter()
            .filter(|((g, t), _)| g == group && t != topic)
            .map(|(_, s)| Arc::clone(s))
            .collect();
        states
            .iter()
            .map(|s| lock(s).queues.values().map(|q| q.inflight.len()).sum::<usize>())
            .sum()
    }

    fn existing(&self, group: &str, topic: &str) -> Option<Arc<Mutex<TopicState>>> {
        lock(&self.topics).get(&(group.to_owned(), topic.to_owned())).cloned()
    }

    fn touched(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    /// Resolves when a message may have become available other than by a queue growing.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    fn handle(&self, h: Handle) -> String {
        format!("{:x}.{}.{}.{:x}", self.store_id, h.queue_id, h.offset, h.seq)
    }

    fn parse_handle(&self, s: &str) -> Result<Handle> {
        let invalid = || {
            BrokerError::new(
                Code::InvalidReceiptHandle,
                format!("receipt handle {s:?} is not valid on this broker"),
            )
        };
        let mut parts = s.split('.');
        let (Some(id), Some(q), Some(off), Some(seq), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        if u32::from_str_radix(id, 16).ok() != Some(self.store_id) {
            return Err(invalid());
        }
        Ok(Handle {
            queue_id: q.parse().map_err(|_| invalid())?,
            offset: off.parse().map_err(|_| invalid())?,
            seq: u64::from_str_radix(seq, 16).map_err(|_| invalid())?,
        })
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Hands out up to `spec.batch` messages: a retried attempt's messages, then those whose
    /// invisible time passed, then (FIFO groups) read-ahead messages whose message group is
    /// free, then new ones. `alive` says whether a client is still there (for auto-renewal).
    pub fn receive(
        &self,
        spec: &ReceiveSpec<'_>,
        alive: &dyn Fn(&str) -> bool,
    ) -> Result<Received> {
        let elsewhere = self.inflight_elsewhere(spec.group, spec.topic);
        let state = self.state(spec.group, spec.topic);
        let mut guard = lock(&state);
        let mut st = &mut *guard;
        let now = now_millis();
        let mut out = Received::default();
        let renew = spec.auto_renew_client.map(|c| (c.to_owned(), now + AUTO_RENEW_MAX_MS));

        if let Some(id) = spec.attempt_id.filter(|id| !id.is_empty()) {
            self.replay_attempt(st, id, spec, now, &mut out);
            if !out.deliveries.is_empty() {
                self.touched();
                return Ok(out);
            }
        }

        self.redeliver_due(st, spec, now, renew.as_ref(), alive, &mut out);
        // Redeliveries stay in flight under a new handle; new hand-outs need room under the
        // group's limit.
        let inflight = elsewhere + st.queues.values().map(|q| q.inflight.len()).sum::<usize>();
        let room = spec.max_inflight.saturating_sub(inflight);
        if room == 0 && out.deliveries.is_empty() && out.dead.is_empty() {
            return Err(BrokerError::limit(
                Limit::InflightPerGroup,
                spec.max_inflight,
                format!(
                    "group {:?} has {inflight} messages received and not yet acked",
                    spec.group
                ),
            ));
        }
        let capped;
        let spec = if out.deliveries.len() + room < spec.batch {
            capped = ReceiveSpec { batch: out.deliveries.len() + room, ..spec.clone() };
            &capped
        } else {
            spec
        };
        // Message groups with a message in flight (FIFO groups only).
        let mut busy: HashSet<u64> = if spec.fifo {
            st.queues
                .values()
                .flat_map(|q| q.inflight.values().filter_map(|i| i.fifo_key))
                .collect()
        } else {
            HashSet::new()
        };
        if spec.fifo {
            self.hand_out_held(st, spec, now, renew.as_ref(), &mut busy, &mut out);
        } else if st.queues.values().any(|q| !q.held.is_empty()) {
            // The group stopped being FIFO: what it read ahead goes out without waiting.
            self.hand_out_held(st, spec, now, renew.as_ref(), &mut HashSet::new(), &mut out);
        }
        if spec.fifo {
            // What is free depends on the parked read-ahead: FIFO reads stay under the lock.
            self.read_fresh(st, spec, now, renew.as_ref(), &mut busy, &mut out)?;
        } else {
            drop(guard);
            self.read_fresh_unlocked(&state, spec, now, renew.as_ref(), &mut out)?;
            guard = lock(&state);
            st = &mut *guard;
        }
        if let Some(id) = spec.attempt_id.filter(|id| !id.is_empty()) {
            remember_attempt(st, id, &out.deliveries, now + spec.invisible_ms);
        }
        self.commit_all(spec.group, spec.topic, st);
        // An empty poll changes nothing worth saving (FIFO reads may have parked messages).
        if !out.deliveries.is_empty() || !out.dead.is_empty() || spec.fifo {
            self.touched();
        }
        Ok(out)
    }

    /// Messages whose invisible time passed: delivered again, or dead-lettered when their
    /// attempts are used up; push consumers' messages stay invisible while their client lives.
    fn redeliver_due(
        &self,
        st: &mut TopicState,
        spec: &ReceiveSpec<'_>,
        now: i64,
        renew: Option<&(String, i64)>,
        alive: &dyn Fn(&str) -> bool,
        out: &mut Received,
    ) {
        for (&queue_id, qs) in &mut st.queues {
            if qs.next_due > now || qs.inflight.is_empty() {
                continue;
            }
            let (mut due, mut complete, mut gone) = (i64::MAX, true, false);
            for (&offset, inf) in &mut qs.inflight {
                if inf.dead {
                    continue;
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
                if inf.attempt >= spec.max_attempts {
                    inf.dead = true;
                    out.dead.push(dead_letter(spec.group, spec.topic, queue_id, offset, inf));
                    continue;
                }
                if out.deliveries.len() >= spec.batch {
                    complete = false;
                    break;
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
                inf.renew = renew.cloned();
                due = due.min(inf.visible_at);
                out.deliveries.push(Delivery {
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
    }

    /// FIFO: read-ahead messages whose message group came free, oldest first.
    fn hand_out_held(
        &self,
        st: &mut TopicState,
        spec: &ReceiveSpec<'_>,
        now: i64,
        renew: Option<&(String, i64)>,
        busy: &mut HashSet<u64>,
        out: &mut Received,
    ) {
        for (&queue_id, qs) in &mut st.queues {
            if out.deliveries.len() >= spec.batch {
                break;
            }
            let room = spec.batch - out.deliveries.len();
            let free: Vec<(u64, Held)> = if spec.fifo {
                qs.held.first_of_free_groups(busy, room)
            } else {
                // The group stopped being FIFO: what it read ahead goes out in order.
                qs.held.by_offset.iter().take(room).map(|(&o, &h)| (o, h)).collect()
            };
            for (offset, held) in free {
                qs.held.remove(offset);
                let Ok(message) = self.store.read_at(held.commitlog_offset) else {
                    continue;
                };
                let key = spec.fifo.then_some(held.key);
                if let Some(k) = key {
                    busy.insert(k);
                }
                out.deliveries.push(self.hand_out(qs, queue_id, message, key, spec, now, renew));
            }
            // Any held message not handed out keeps its group busy for fresh reads.
            busy.extend(qs.held.groups.keys().copied());
        }
    }

    /// New messages, round-robin over the readable queues (FIFO groups park a message whose
    /// group is busy).
    fn read_fresh(
        &self,
        st: &mut TopicState,
        spec: &ReceiveSpec<'_>,
        now: i64,
        renew: Option<&(String, i64)>,
        busy: &mut HashSet<u64>,
        out: &mut Received,
    ) -> Result<()> {
        let queues = spec.read_queues.max(1);
        let start = st.cursor % queues;
        st.cursor = st.cursor.wrapping_add(1);
        for i in 0..queues {
            if out.deliveries.len() >= spec.batch {
                break;
            }
            let queue_id = (start + i) % queues;
            let qs = st
                .queues
                .entry(queue_id)
                .or_insert_with(|| self.initial(spec.group, spec.topic, queue_id));
            let min = self.store.min_offset(spec.topic, queue_id);
            if qs.next < min {
                qs.drop_below(min);
            }
            // FIFO reads may park messages instead of handing them out: read on, a bounded
            // number of times, while the batch has room and the read-ahead is not full.
            for _ in 0..if spec.fifo { 8 } else { 1 } {
                let room = spec.batch - out.deliveries.len();
                if room == 0 || qs.held.len() >= MAX_HELD_PER_QUEUE {
                    break;
                }
                let want = if spec.fifo { room.max(32) } else { room };
                let got =
                    self.store.get_messages(spec.topic, queue_id, qs.next, want, spec.filter)?;
                let read_all = got.messages.len() < want;
                let mut next = qs.next.max(got.next_offset);
                for message in got.messages {
                    let offset = message.queue_offset;
                    if out.deliveries.len() >= spec.batch || qs.held.len() >= MAX_HELD_PER_QUEUE {
                        // Not looked at: the next read starts here.
                        next = next.min(offset);
                        break;
                    }
                    let key = if spec.fifo {
                        message.properties.get(PROPERTY_SHARDING_KEY).map(|g| group_key(g))
                    } else {
                        None
                    };
                    if let Some(k) = key
                        && busy.contains(&k)
                    {
                        qs.held.insert(
                            offset,
                            Held { commitlog_offset: message.commitlog_offset, key: k },
                        );
                        continue;
                    }
                    if let Some(k) = key {
                        busy.insert(k);
                    }
                    out.deliveries
                        .push(self.hand_out(qs, queue_id, message, key, spec, now, renew));
                }
                qs.next = next;
                if read_all || !spec.fifo {
                    break;
                }
            }
        }
        Ok(())
    }

    /// New messages of a non-FIFO group, round-robin over the readable queues, read from the
    /// store without the state's lock: each queue is claimed (one reader at a time; a claimed
    /// queue is skipped), read, and its messages handed out under the lock again. Sends,
    /// acks and other receives of the group go on while the store is read.
    fn read_fresh_unlocked(
        &self,
        state: &Mutex<TopicState>,
        spec: &ReceiveSpec<'_>,
        now: i64,
        renew: Option<&(String, i64)>,
        out: &mut Received,
    ) -> Result<()> {
        let queues = spec.read_queues.max(1);
        let start = {
            let mut st = lock(state);
            st.cursor = st.cursor.wrapping_add(1);
            st.cursor.wrapping_sub(1) % queues
        };
        for i in 0..queues {
            let room = spec.batch.saturating_sub(out.deliveries.len());
            if room == 0 {
                break;
            }
            let queue_id = (start + i) % queues;
            let min = self.store.min_offset(spec.topic, queue_id);
            let token = self.next_seq();
            let from = {
                let mut st = lock(state);
                let qs = st
                    .queues
                    .entry(queue_id)
                    .or_insert_with(|| self.initial(spec.group, spec.topic, queue_id));
                if qs.reader.is_some() {
                    continue;
                }
                if qs.next < min {
                    qs.drop_below(min);
                }
                qs.reader = Some(token);
                qs.next
            };
            let mut claim = Claim { state, queue_id, token, released: false };
            let got = self.store.get_messages(spec.topic, queue_id, from, room, spec.filter);
            let mut st = lock(state);
            claim.released = true;
            let Some(qs) = st.queues.get_mut(&queue_id).filter(|qs| qs.reader == Some(token))
            else {
                // Reset while read: the read is stale.
                continue;
            };
            qs.reader = None;
            let got = got?;
            qs.next = qs.next.max(got.next_offset);
            for message in got.messages {
                out.deliveries.push(self.hand_out(qs, queue_id, message, None, spec, now, renew));
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn hand_out(
        &self,
        qs: &mut QueueState,
        queue_id: u32,
        message: StoredMessage,
        fifo_key: Option<u64>,
        spec: &ReceiveSpec<'_>,
        now: i64,
        renew: Option<&(String, i64)>,
    ) -> Delivery {
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
                renew: renew.cloned(),
                fifo_key,
                dead: false,
            },
        );
        Delivery {
            receipt_handle: self.handle(Handle { queue_id, offset, seq }),
            delivery_attempt: 1 + message.reconsume_times,
            invisible_ms: spec.invisible_ms,
            message,
        }
    }

    /// A retried receive (same `attempt_id`): the messages the first try handed out that are
    /// still in flight under the same hand-out, with the same handles, invisible anew.
    fn replay_attempt(
        &self,
        st: &mut TopicState,
        id: &str,
        spec: &ReceiveSpec<'_>,
        now: i64,
        out: &mut Received,
    ) {
        st.attempts.retain(|a| a.expires > now);
        let Some(attempt) = st.attempts.iter().find(|a| a.id == id) else { return };
        let handed = attempt.handed.clone();
        for (queue_id, offset, seq) in handed {
            let Some(inf) = st
                .queues
                .get_mut(&queue_id)
                .and_then(|q| q.inflight.get_mut(&offset))
                .filter(|inf| inf.seq == seq && !inf.dead)
            else {
                continue;
            };
            let Ok(message) = self.store.read_at(inf.commitlog_offset) else { continue };
            inf.visible_at = inf.visible_at.max(now + spec.invisible_ms);
            out.deliveries.push(Delivery {
                receipt_handle: self.handle(Handle { queue_id, offset, seq }),
                delivery_attempt: inf.attempt + message.reconsume_times,
                invisible_ms: spec.invisible_ms,
                message,
            });
        }
    }

    /// Where a group with no state yet starts on a queue: its committed offset, else where its
    /// `consume_from` setting says.
    fn initial(&self, group: &str, topic: &str, queue_id: u32) -> QueueState {
        let next = self.store.consumer_offsets().get(group, topic, queue_id).unwrap_or_else(|| {
            let from = self.store.groups().get(group).map(|g| g.consume_from).unwrap_or_default();
            let (min, max) =
                (self.store.min_offset(topic, queue_id), self.store.max_offset(topic, queue_id));
            match from {
                ConsumeFrom::First => min,
                ConsumeFrom::Last => max,
                ConsumeFrom::Auto if min == 0 => 0,
                ConsumeFrom::Auto => max.saturating_sub(1).max(min),
            }
        });
        QueueState { next, committed: next, next_due: i64::MAX, ..QueueState::default() }
    }

    fn commit_all(&self, group: &str, topic: &str, st: &mut TopicState) {
        for (&queue_id, qs) in &mut st.queues {
            let committed = qs.lowest_unacked();
            if committed != qs.committed {
                qs.committed = committed;
                self.store.consumer_offsets().commit(group, topic, queue_id, committed);
            }
        }
    }

    /// Acknowledges the message a handle names. Acking a message that is no longer in flight
    /// (acked already, dead-lettered, or its offsets reset) answers OK, as RocketMQ does; a
    /// handle superseded by a newer hand-out of the same message is stale.
    pub fn ack(&self, group: &str, topic: &str, handle: &str) -> Result<()> {
        let h = self.parse_handle(handle)?;
        let state = self.state(group, topic);
        let mut guard = lock(&state);
        let st = &mut *guard;
        let Some(qs) = st.queues.get_mut(&h.queue_id) else {
            // Never handed out by this group here: only a reset can have forgotten it.
            return match self.store.consumer_offsets().get(group, topic, h.queue_id) {
                Some(committed) if h.offset < committed => Ok(()),
                _ => Err(stale(handle)),
            };
        };
        match qs.inflight.get(&h.offset) {
            Some(inf) if inf.seq == h.seq => {
                let freed = inf.fifo_key.is_some();
                qs.inflight.remove(&h.offset);
                self.commit_all(group, topic, st);
                self.touched();
                if freed {
                    self.changed.notify_waiters();
                }
                Ok(())
            }
            None if h.offset < qs.next && !qs.held.contains(h.offset) => Ok(()),
            _ => Err(stale(handle)),
        }
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
        let mut st = lock(&state);
        let qs = st.queues.get_mut(&h.queue_id).ok_or_else(|| stale(handle))?;
        let inf = qs
            .inflight
            .get_mut(&h.offset)
            .filter(|inf| inf.seq == h.seq && !inf.dead)
            .ok_or_else(|| stale(handle))?;
        inf.seq = self.next_seq();
        inf.visible_at = now_millis() + invisible_ms;
        inf.renew = None;
        qs.next_due = qs.next_due.min(inf.visible_at);
        let new = self.handle(Handle { seq: inf.seq, ..h });
        drop(st);
        self.touched();
        if invisible_ms == 0 {
            self.changed.notify_waiters();
        }
        Ok(new)
    }

    /// Takes the message a current handle names out of delivery, for the dead-letter queue
    /// (`ForwardMessageToDeadLetterQueue`). Settle it with [`Pop::settle_dead`].
    pub fn take_for_dead_letter(
        &self,
        group: &str,
        topic: &str,
        handle: &str,
    ) -> Result<DeadLetter> {
        let h = self.parse_handle(handle)?;
        let state = self.state(group, topic);
        let mut st = lock(&state);
        let inf = st
            .queues
            .get_mut(&h.queue_id)
            .and_then(|qs| qs.inflight.get_mut(&h.offset))
            .filter(|inf| inf.seq == h.seq && !inf.dead)
            .ok_or_else(|| stale(handle))?;
        inf.dead = true;
        Ok(dead_letter(group, topic, h.queue_id, h.offset, inf))
    }

    /// Finishes a dead letter: `moved` (it is in the dead-letter queue) removes it like an ack;
    /// otherwise it becomes deliverable again shortly, to be tried again.
    pub fn settle_dead(&self, d: &DeadLetter, moved: bool) {
        let Some(state) = self.existing(&d.group, &d.topic) else { return };
        let mut guard = lock(&state);
        let st = &mut *guard;
        let Some(qs) = st.queues.get_mut(&d.queue_id) else { return };
        if qs.inflight.get(&d.offset).is_none_or(|inf| inf.seq != d.seq) {
            return;
        }
        if moved {
            qs.inflight.remove(&d.offset);
            self.commit_all(&d.group, &d.topic, st);
        } else if let Some(inf) = qs.inflight.get_mut(&d.offset) {
            inf.dead = false;
            inf.visible_at = now_millis() + 1000;
            qs.next_due = qs.next_due.min(inf.visible_at);
        }
        drop(guard);
        self.touched();
        self.changed.notify_waiters();
    }

    /// Every in-flight message that is due and has used up its attempts, marked for the
    /// dead-letter queue: so a group nobody receives for does not keep them (and its committed
    /// offset) forever. `max_attempts` gives a group's limit.
    pub fn due_dead_letters(&self, max_attempts: &dyn Fn(&str) -> u32) -> Vec<DeadLetter> {
        let states: Vec<(GroupTopic, Arc<Mutex<TopicState>>)> =
            lock(&self.topics).iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect();
        let now = now_millis();
        let mut out = Vec::new();
        for ((group, topic), state) in states {
            let max = max_attempts(&group);
            let mut st = lock(&state);
            for (&queue_id, qs) in &mut st.queues {
                if qs.next_due > now {
                    continue;
                }
                for (&offset, inf) in &mut qs.inflight {
                    if !inf.dead
                        && inf.visible_at <= now
                        && inf.attempt >= max
                        && inf.renew.as_ref().is_none_or(|(_, until)| now >= *until)
                    {
                        inf.dead = true;
                        out.push(dead_letter(&group, &topic, queue_id, offset, inf));
                    }
                }
            }
        }
        out
    }

    /// A client went away: what it held under auto-renewal becomes visible now.
    pub fn release_client(&self, client_id: &str) {
        let states: Vec<Arc<Mutex<TopicState>>> = lock(&self.topics).values().cloned().collect();
        let now = now_millis();
        for state in states {
            let mut st = lock(&state);
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
        self.touched();
        self.changed.notify_waiters();
    }

    /// When the earliest invisible message of (group, topic) becomes visible, ms.
    pub fn next_visible(&self, group: &str, topic: &str) -> Option<i64> {
        let state = self.existing(group, topic)?;
        let st = lock(&state);
        st.queues
            .values()
            .filter(|q| !q.inflight.is_empty())
            .map(|q| q.next_due)
            .filter(|t| *t != i64::MAX)
            .min()
    }

    /// For long polling: the queues whose growth could give `group` a message, with the offset
    /// a fresh read of each starts at. A FIFO group's queue whose read-ahead is full is left
    /// out: nothing more is read there until an ack frees a message group (which signals
    /// [`Pop::changed`]), and as it still holds unread messages a wait on its growth would
    /// return at once, turning the long poll into a busy loop.
    pub fn next_offsets(
        &self,
        group: &str,
        topic: &str,
        read_queues: u32,
        fifo: bool,
    ) -> Vec<(u32, u64)> {
        let state = self.state(group, topic);
        let mut st = lock(&state);
        (0..read_queues.max(1))
            .filter_map(|q| {
                let qs = st.queues.entry(q).or_insert_with(|| self.initial(group, topic, q));
                let blocked = fifo && qs.held.len() >= MAX_HELD_PER_QUEUE;
                (!blocked).then_some((q, qs.next))
            })
            .collect()
    }

    /// Moves the group's offsets of the given queues of `topic` to `targets` (queue id, offset)
    /// and forgets what it had in flight there: the next receive starts at the new offsets.
    /// Done under the state's lock, so a receive or ack running meanwhile cannot write the old
    /// offsets back. Saved before it returns. Returns (queue id, old committed offset, new
    /// offset).
    pub fn reset_to(
        &self,
        group: &str,
        topic: &str,
        targets: &[(u32, u64)],
    ) -> Result<Vec<(u32, u64, u64)>> {
        let state = self.state(group, topic);
        let mut st = lock(&state);
        let offsets = self.store.consumer_offsets();
        let changed = targets
            .iter()
            .map(|&(queue_id, new)| {
                let old = offsets.get(group, topic, queue_id).unwrap_or(0);
                st.queues.insert(
                    queue_id,
                    QueueState {
                        next: new,
                        committed: new,
                        next_due: i64::MAX,
                        ..QueueState::default()
                    },
                );
                offsets.commit(group, topic, queue_id, new);
                (queue_id, old, new)
            })
            .collect();
        drop(st);
        self.touched();
        self.save()?;
        offsets.save()?;
        self.changed.notify_waiters();
        Ok(changed)
    }

    /// Makes the message at `offset` of queue `queue_id` (CommitLog offset `commitlog_offset`)
    /// visible to `group` again, for one more delivery to that group alone (`admin message
    /// resend`). A message the group acked is put back in flight, visible now, so the group's
    /// committed offset steps back to it until it is acked again (what lies between stays
    /// acked); one in flight becomes visible now; one the group has not read yet is delivered
    /// anyway. Its delivery attempts start again, so a message near its maximum is not
    /// dead-lettered at once. In a FIFO group it does not hold up its message group: it is a
    /// copy of what was already consumed in order. Returns whether the message was handed back
    /// (false: not read yet).
    pub fn resend(
        &self,
        group: &str,
        topic: &str,
        queue_id: u32,
        offset: u64,
        commitlog_offset: u64,
    ) -> bool {
        let state = self.state(group, topic);
        let mut st = lock(&state);
        let qs = st.queues.entry(queue_id).or_insert_with(|| self.initial(group, topic, queue_id));
        if offset >= qs.next || qs.held.contains(offset) {
            return false;
        }
        let now = now_millis();
        let seq = self.next_seq();
        let inf = qs.inflight.entry(offset).or_insert(Inflight {
            seq,
            visible_at: now,
            attempt: 0,
            commitlog_offset,
            renew: None,
            fifo_key: None,
            dead: false,
        });
        if !inf.dead {
            inf.visible_at = now;
            inf.attempt = 0;
            inf.renew = None;
        }
        qs.next_due = now;
        self.commit_all(group, topic, &mut st);
        drop(st);
        self.touched();
        self.changed.notify_waiters();
        true
    }

    /// Forgets every (group, topic) state of a deleted topic.
    pub fn forget_topic(&self, topic: &str) {
        lock(&self.topics).retain(|(_, t), _| t != topic);
        self.touched();
    }

    /// Forgets every (group, topic) state of a deleted consumer group.
    pub fn forget_group(&self, group: &str) {
        lock(&self.topics).retain(|(g, _), _| g != group);
        self.touched();
    }

    /// How many (group, topic) states are in memory.
    pub fn states(&self) -> usize {
        lock(&self.topics).len()
    }

    /// Drops from memory the (group, topic) states that hold nothing the consumer offsets do
    /// not (no message in flight or read ahead, no receive attempt to replay) and that no call
    /// used for `idle_ms`; each queue's position is committed to the consumer offsets first.
    /// The next call rebuilds the state from those offsets. Returns how many were dropped.
    pub fn prune_idle(&self, idle_ms: u64) -> usize {
        let now = now_millis();
        let idle = i64::try_from(idle_ms).unwrap_or(i64::MAX);
        let offsets = self.store.consumer_offsets();
        let mut map = lock(&self.topics);
        let before = map.len();
        map.retain(|(group, topic), state| {
            // A call under way holds a clone; with the map locked, no new one can start.
            if Arc::strong_count(state) > 1 {
                return true;
            }
            let st = lock(state);
            let settled = now - st.last_used >= idle
                && st.attempts.iter().all(|a| a.expires <= now)
                && st.queues.values().all(|q| q.inflight.is_empty() && q.held.is_empty());
            if settled {
                for (&queue_id, qs) in &st.queues {
                    if offsets.get(group, topic, queue_id) != Some(qs.next) {
                        offsets.commit(group, topic, queue_id, qs.next);
                    }
                }
            }
            !settled
        });
        let dropped = before - map.len();
        if dropped > 0 {
            tracing::debug!(dropped, left = map.len(), "dropped idle consumption state");
        }
        dropped
    }

    /// How many messages of (group, topic) are in flight and read ahead.
    pub fn inflight_count(&self, group: &str, topic: &str) -> (usize, usize) {
        self.existing(group, topic).map_or((0, 0), |state| {
            let st = lock(&state);
            st.queues.values().fold((0, 0), |(i, h), q| (i + q.inflight.len(), h + q.held.len()))
        })
    }

    /// Saves the state to `config/pop_state.json` if it changed since the last save.
    pub fn save(&self) -> Result<()> {
        let _one = lock(&self.save_lock);
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let states: Vec<(GroupTopic, Arc<Mutex<TopicState>>)> =
            lock(&self.topics).iter().map(|(k, v)| (k.clone(), Arc::clone(v))).collect();
        let mut saved = Saved { store_id: self.store_id, run: self.run, states: Vec::new() };
        for ((group, topic), state) in states {
            let st = lock(&state);
            let queues: BTreeMap<u32, QueueState> = st
                .queues
                .iter()
                .filter(|(_, q)| !q.inflight.is_empty() || !q.held.is_empty())
                .map(|(&id, q)| {
                    (
                        id,
                        QueueState {
                            next: q.next,
                            inflight: q.inflight.clone(),
                            held: q.held.clone(),
                            ..QueueState::default()
                        },
                    )
                })
                .collect();
            if queues.is_empty() {
                // Nothing beyond the consumer offsets to remember.
                continue;
            }
            saved.states.push(SavedState {
                group,
                topic,
                state: TopicState { queues, ..TopicState::default() },
            });
        }
        save_json_compact(&self.path, &saved).map_err(|e| {
            self.dirty.store(true, Ordering::Release);
            BrokerError::from(e)
        })
    }
}

fn dead_letter(group: &str, topic: &str, queue_id: u32, offset: u64, inf: &Inflight) -> DeadLetter {
    DeadLetter {
        group: group.to_owned(),
        topic: topic.to_owned(),
        queue_id,
        offset,
        commitlog_offset: inf.commitlog_offset,
        attempts: inf.attempt,
        seq: inf.seq,
    }
}

fn remember_attempt(st: &mut TopicState, id: &str, deliveries: &[Delivery], expires: i64) {
    if deliveries.is_empty() {
        return;
    }
    let handed = deliveries
        .iter()
        .filter_map(|d| {
            let mut parts = d.receipt_handle.rsplit('.');
            let seq = u64::from_str_radix(parts.next()?, 16).ok()?;
            Some((d.message.queue_id, d.message.queue_offset, seq))
        })
        .collect();
    st.attempts.retain(|a| a.id != id);
    if st.attempts.len() >= MAX_REMEMBERED_ATTEMPTS {
        st.attempts.pop_front();
    }
    st.attempts.push_back(Attempt { id: id.to_owned(), expires, handed });
}

fn stale(handle: &str) -> BrokerError {
    BrokerError::new(
        Code::InvalidReceiptHandle,
        format!(
            "receipt handle {handle:?} is stale: the message was re-delivered or its invisible time changed"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{PutMessage, StoreConfig};

    async fn store_with(dir: &std::path::Path, groups: &[&str], per_group: usize) -> MessageStore {
        let store =
            MessageStore::open(StoreConfig { segment_size: 8 << 20, ..StoreConfig::new(dir) })
                .unwrap();
        for i in 0..per_group {
            for g in groups {
                let m = PutMessage::new("t", 0, format!("{g}-{i}"))
                    .with_message_id(format!("{g}{i}"))
                    .with_property(PROPERTY_SHARDING_KEY, *g);
                store.put(m).await.unwrap();
            }
        }
        while store.dispatched_offset() < store.commitlog_max_offset() {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        store
    }

    fn spec(filter: &TagFilter, fifo: bool) -> ReceiveSpec<'_> {
        ReceiveSpec {
            group: "g",
            topic: "t",
            read_queues: 1,
            filter,
            batch: 32,
            invisible_ms: 60_000,
            auto_renew_client: None,
            max_attempts: 3,
            fifo,
            attempt_id: None,
            max_inflight: usize::MAX,
        }
    }

    fn bodies(r: &Received) -> Vec<String> {
        r.deliveries.iter().map(|d| String::from_utf8(d.message.body.to_vec()).unwrap()).collect()
    }

    #[tokio::test]
    async fn fifo_state_survives_a_reopen_with_held_messages_and_handles() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), &["a", "b"], 3).await;
        let all = TagFilter::All;
        let pop = Pop::open(store.clone()).unwrap();
        let first = pop.receive(&spec(&all, true), &|_| true).unwrap();
        assert_eq!(bodies(&first), ["a-0", "b-0"]);
        // Ack b-0 only: b-1 is next for b; a stays busy.
        pop.ack("g", "t", &first.deliveries[1].receipt_handle).unwrap();
        pop.save().unwrap();
        drop(pop);

        let pop = Pop::open(store.clone()).unwrap();
        let (inflight, held) = pop.inflight_count("g", "t");
        assert_eq!((inflight, held), (1, 4), "a-0 in flight; a-1, a-2, b-1, b-2 read ahead");
        let next = pop.receive(&spec(&all, true), &|_| true).unwrap();
        assert_eq!(bodies(&next), ["b-1"], "a is still busy with a-0");
        // The handle from before the reopen still acks, and frees a.
        pop.ack("g", "t", &first.deliveries[0].receipt_handle).unwrap();
        let next = pop.receive(&spec(&all, true), &|_| true).unwrap();
        assert_eq!(bodies(&next), ["a-1"]);
        // Repeated acks answer OK; a handle of a later run never matches an earlier one.
        pop.ack("g", "t", &first.deliveries[0].receipt_handle).unwrap();
        assert!(next.deliveries[0].receipt_handle != first.deliveries[0].receipt_handle);
    }

    #[tokio::test]
    async fn a_group_that_stops_being_fifo_releases_what_it_read_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), &["a"], 3).await;
        let all = TagFilter::All;
        let pop = Pop::open(store).unwrap();
        assert_eq!(bodies(&pop.receive(&spec(&all, true), &|_| true).unwrap()), ["a-0"]);
        assert_eq!(pop.inflight_count("g", "t"), (1, 2));
        assert_eq!(bodies(&pop.receive(&spec(&all, false), &|_| true).unwrap()), ["a-1", "a-2"]);
        assert_eq!(pop.inflight_count("g", "t"), (3, 0));
    }

    #[tokio::test]
    async fn used_up_attempts_become_dead_letters_not_deliveries() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), &["x"], 1).await;
        let all = TagFilter::All;
        let pop = Pop::open(store).unwrap();
        let mut handle = pop.receive(&spec(&all, false), &|_| true).unwrap().deliveries[0]
            .receipt_handle
            .clone();
        for attempt in 2..=3 {
            pop.change_invisible("g", "t", &handle, 0).unwrap();
            let r = pop.receive(&spec(&all, false), &|_| true).unwrap();
            assert_eq!(r.deliveries[0].delivery_attempt, attempt);
            handle = r.deliveries[0].receipt_handle.clone();
        }
        pop.change_invisible("g", "t", &handle, 0).unwrap();
        let r = pop.receive(&spec(&all, false), &|_| true).unwrap();
        assert!(r.deliveries.is_empty());
        assert_eq!(r.dead.len(), 1);
        assert_eq!(r.dead[0].attempts, 3);
        // Being moved: delivered to nobody; settled: gone, offsets move past it.
        assert!(pop.receive(&spec(&all, false), &|_| true).unwrap().dead.is_empty());
        pop.settle_dead(&r.dead[0], true);
        assert_eq!(pop.inflight_count("g", "t"), (0, 0));
        assert_eq!(pop.store.consumer_offsets().get("g", "t", 0), Some(1));
    }

    #[tokio::test]
    async fn a_resent_message_comes_back_once_to_its_group_alone_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), &["x"], 3).await;
        let all = TagFilter::All;
        let pop = Pop::open(store.clone()).unwrap();
        let other = ReceiveSpec { group: "other", ..spec(&all, false) };
        let got = pop.receive(&spec(&all, false), &|_| true).unwrap();
        assert_eq!(bodies(&got), ["x-0", "x-1", "x-2"]);
        assert_eq!(bodies(&pop.receive(&other, &|_| true).unwrap()).len(), 3);
        for d in &got.deliveries {
            pop.ack("g", "t", &d.receipt_handle).unwrap();
        }
        let offsets = store.consumer_offsets();
        assert_eq!(offsets.get("g", "t", 0), Some(3));
        // Not read yet: nothing to hand back.
        assert!(!pop.resend("g", "t", 0, 7, 0));

        let m1 = &got.deliveries[1].message;
        assert!(pop.resend("g", "t", 0, m1.queue_offset, m1.commitlog_offset));
        // In flight again: the committed offset steps back to it; x-2 stays acked.
        assert_eq!(offsets.get("g", "t", 0), Some(1));
        pop.save().unwrap();
        drop(pop);
        let pop = Pop::open(store.clone()).unwrap();
        let again = pop.receive(&spec(&all, false), &|_| true).unwrap();
        assert_eq!(bodies(&again), ["x-1"]);
        assert_eq!(again.deliveries[0].delivery_attempt, 1, "attempts start again");
        assert!(pop.receive(&other, &|_| true).unwrap().deliveries.is_empty(), "g alone");
        pop.ack("g", "t", &again.deliveries[0].receipt_handle).unwrap();
        assert_eq!(offsets.get("g", "t", 0), Some(3));
        assert!(pop.receive(&spec(&all, false), &|_| true).unwrap().deliveries.is_empty());
    }

    fn held(key: u64) -> Held {
        Held { commitlog_offset: key * 1000, key }
    }

    #[test]
    fn read_ahead_counts_groups_and_finds_their_first_messages() {
        let mut r = ReadAhead::default();
        for (offset, key) in [(10, 1), (11, 2), (12, 1), (13, 3), (14, 2)] {
            r.insert(offset, held(key));
        }
        assert_eq!(r.groups.len(), 3);
        let firsts = |r: &ReadAhead, busy: &[u64], max| {
            let busy: HashSet<u64> = busy.iter().copied().collect();
            r.first_of_free_groups(&busy, max).into_iter().map(|(o, _)| o).collect::<Vec<_>>()
        };
        assert_eq!(firsts(&r, &[], 32), [10, 11, 13]);
        assert_eq!(firsts(&r, &[1], 32), [11, 13]);
        assert_eq!(firsts(&r, &[], 2), [10, 11]);
        assert_eq!(r.remove(10).map(|h| h.key), Some(1));
        assert_eq!(firsts(&r, &[], 32), [11, 12, 13]);
        r.remove(13);
        assert!(!r.groups.contains_key(&3));
        r.drop_below(12);
        assert_eq!((r.first_offset(), r.len()), (Some(12), 2));
        assert_eq!(r.groups, HashMap::from([(1, 1), (2, 1)]));
    }

    #[test]
    fn read_ahead_is_saved_as_the_map_of_held_messages() {
        let mut r = ReadAhead::default();
        r.insert(7, held(4));
        r.insert(8, held(4));
        let json = serde_json::to_string(&r).unwrap();
        let plain: BTreeMap<u64, Held> = serde_json::from_str(&json).unwrap();
        assert_eq!(plain.len(), 2);
        let back: ReadAhead = serde_json::from_str(&json).unwrap();
        assert_eq!(back.groups, HashMap::from([(4, 2)]));
    }
}
