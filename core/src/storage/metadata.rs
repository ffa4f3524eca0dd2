//! Broker metadata kept by the store: consumer offsets `(group, topic, queue) → next offset`,
//! topic configs and consumer group configs. Each is a small JSON file under `config/`,
//! saved atomically (see `persist`) when changed, by the flush thread and on close.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::storage::error::Result;
use crate::storage::persist::{load_json, save_json};

/// A table of named records persisted as one JSON file.
#[derive(Debug)]
pub struct Table<T> {
    path: PathBuf,
    rows: Mutex<BTreeMap<String, T>>,
    dirty: AtomicBool,
    /// Bumped by every change (a broker re-registers its topics when it moves).
    version: AtomicU64,
    /// One save at a time, so an older snapshot never lands after a newer one.
    save_lock: Mutex<()>,
}

impl<T: Serialize + DeserializeOwned + Clone> Table<T> {
    pub(crate) fn open(path: PathBuf) -> Result<Self> {
        let rows = load_json(&path)?.unwrap_or_default();
        Ok(Table {
            path,
            rows: Mutex::new(rows),
            dirty: AtomicBool::new(false),
            version: AtomicU64::new(0),
            save_lock: Mutex::new(()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, T>> {
        self.rows.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many records there are.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there is no record.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The record named `name`.
    pub fn get(&self, name: &str) -> Option<T> {
        self.lock().get(name).cloned()
    }

    /// All records, by name.
    pub fn all(&self) -> BTreeMap<String, T> {
        self.lock().clone()
    }

    /// Inserts or replaces a record; saved by the next [`Table::save`].
    pub fn put(&self, name: impl Into<String>, value: T) {
        self.lock().insert(name.into(), value);
        self.changed();
    }

    fn changed(&self) {
        self.dirty.store(true, Ordering::Release);
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// A number every change moves on.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Changes a record in place (inserting `T::default()` first if absent).
    pub fn update(&self, name: &str, f: impl FnOnce(&mut T))
    where
        T: Default,
    {
        f(self.lock().entry(name.to_owned()).or_default());
        self.changed();
    }

    /// Removes a record.
    pub fn remove(&self, name: &str) -> Option<T> {
        let old = self.lock().remove(name);
        self.changed();
        old
    }

    /// Saves the table now, atomically, if it changed.
    pub fn save(&self) -> Result<()> {
        let _one_at_a_time =
            self.save_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let snapshot = self.all();
        save_json(&self.path, &snapshot).inspect_err(|_| self.dirty.store(true, Ordering::Release))
    }

    /// The file backing this table.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Consumer offsets of one group on one topic: queue id → next offset to consume.
pub type QueueOffsets = BTreeMap<u32, u64>;

/// Consumer offsets, keyed `"group@topic"`.
#[derive(Debug)]
pub struct ConsumerOffsets {
    table: Table<QueueOffsets>,
}

impl ConsumerOffsets {
    pub(crate) fn open(path: PathBuf) -> Result<Self> {
        Ok(ConsumerOffsets { table: Table::open(path)? })
    }

    fn key(group: &str, topic: &str) -> String {
        format!("{group}@{topic}")
    }

    /// Records that `group` has consumed `topic`/`queue_id` up to (not including) `offset`.
    pub fn commit(&self, group: &str, topic: &str, queue_id: u32, offset: u64) {
        self.table.update(&Self::key(group, topic), |q| {
            q.insert(queue_id, offset);
        });
    }

    /// The committed offset, if any.
    pub fn get(&self, group: &str, topic: &str, queue_id: u32) -> Option<u64> {
        self.table.get(&Self::key(group, topic)).and_then(|q| q.get(&queue_id).copied())
    }

    /// All committed offsets of `group` on `topic`.
    pub fn queues(&self, group: &str, topic: &str) -> QueueOffsets {
        self.table.get(&Self::key(group, topic)).unwrap_or_default()
    }

    /// Every `(group, topic)` with committed offsets.
    pub fn groups(&self) -> Vec<(String, String)> {
        self.table
            .all()
            .into_keys()
            .filter_map(|k| k.split_once('@').map(|(g, t)| (g.to_owned(), t.to_owned())))
            .collect()
    }

    /// Forgets the offsets of `group` on `topic`.
    pub fn remove(&self, group: &str, topic: &str) {
        self.table.remove(&Self::key(group, topic));
    }

    /// Saves the offsets now, if they changed.
    pub fn save(&self) -> Result<()> {
        self.table.save()
    }
}

/// A topic's configuration on this broker.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TopicConfig {
    /// Queues consumers read (`0..read_queues`).
    pub read_queues: u32,
    /// Queues producers write (`0..write_queues`).
    pub write_queues: u32,
    /// Permission bits, RocketMQ's: 2 = write, 4 = read, 6 = both.
    pub perm: u32,
    /// Message type: "NORMAL", "FIFO", "DELAY", "TRANSACTION" or "MIXED".
    pub message_type: String,
}

/// A consumer group's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct GroupConfig {
    /// Deliveries before a message goes to the dead-letter queue.
    pub max_delivery_attempts: u32,
    /// Whether the group consumes FIFO topics in order.
    pub fifo: bool,
    /// Where the group starts on a queue it has never consumed.
    #[serde(default)]
    pub consume_from: ConsumeFrom,
}

/// Where a consumer group starts on a queue it has no offset for yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsumeFrom {
    /// Apache RocketMQ's rule for pop consumers: from the start while nothing was ever deleted
    /// from the queue, else from its last message on.
    #[default]
    Auto,
    /// The queue's first message still held (everything already stored is consumed).
    First,
    /// The queue's end: only messages stored from the group's first receive on.
    Last,
}

impl ConsumeFrom {
    /// The name `admin` shows and takes.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumeFrom::Auto => "auto",
            ConsumeFrom::First => "first",
            ConsumeFrom::Last => "last",
        }
    }
}

impl std::str::FromStr for ConsumeFrom {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(ConsumeFrom::Auto),
            "first" => Ok(ConsumeFrom::First),
            "last" => Ok(ConsumeFrom::Last),
            other => Err(format!("unknown start position {other:?} (auto, first or last)")),
        }
    }
}
