//! The broker's storage engine.
//!
//! Data flows one way: callers encode messages and hand them to the append thread
//! (`writer`), which places them in the CommitLog (`commitlog`) and publishes the new end; the
//! dispatch thread (`dispatch`) turns published records into ConsumeQueue entries
//! (`consumequeue`) and index entries (`index`) and wakes long-polling readers; readers go
//! ConsumeQueue → CommitLog by offset, zero-copy. The flusher and retention threads
//! (`background`) make things durable, checkpoint, and delete expired segments. On open,
//! `commitlog::recovery` validates the tail and dispatch rebuilds what the checkpoint lacks.
//!
//! ```text
//! <dir>/commitlog/<20-digit offset>        segments
//! <dir>/consumequeue/<topic>/<queue>/<20-digit queue offset>
//! <dir>/index/<20-digit offset>            key → offset hash files
//! <dir>/config/{consumer_offsets,topics,groups}.json
//! <dir>/checkpoint  <dir>/abort  <dir>/lock
//! ```

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod background;
mod checkpoint;
pub mod commitlog;
pub mod config;
pub mod consumequeue;
mod dispatch;
pub mod error;
#[cfg(test)]
mod fault_tests;
pub(crate) mod fs;
mod index;
mod mapped;
pub mod message;
pub mod metadata;
pub mod msg_id;
mod open_files;
pub(crate) mod persist;
pub mod replica;
mod writer;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc::error::TrySendError;

pub use background::RetentionReport;
use checkpoint::Checkpoint;
use commitlog::CommitLog;
pub use config::{FlushDiskType, StoreConfig};
use consumequeue::NewNames;
use consumequeue::QueueIo;
pub use consumequeue::{ConsumeQueue, CqEntry};
pub use error::{Result, StorageError};
use index::Index;
pub use message::{PutMessage, StoredMessage, tag_hash};
pub use metadata::{ConsumeFrom, ConsumerOffsets, GroupConfig, Table, TopicConfig};
use open_files::OpenFiles;
use tokio::sync::{mpsc, oneshot};
pub use writer::PutResult;
use writer::{EncodedBatch, EncodedRecord, Request, Writer};

/// State shared by the store handle and its threads.
#[derive(Debug)]
pub(crate) struct Shared {
    config: StoreConfig,
    /// The log's master runs (replication finds where a slave's log and its master's agree).
    epochs: replica::Epochs,
    /// Woken whenever the log's published end moves (replication streams follow it).
    appended: tokio::sync::Notify,
    log: Arc<CommitLog>,
    queues: RwLock<HashMap<String, HashMap<u32, Arc<ConsumeQueue>>>>,
    /// The open ConsumeQueue files, bounded, and the size of the in-memory tails.
    queue_io: Arc<QueueIo>,
    next_queue_id: AtomicU64,
    /// Queues written since the last checkpoint.
    dirty_queues: Mutex<Vec<Arc<ConsumeQueue>>>,
    /// Directories that gained names since the last checkpoint.
    new_dirs: Mutex<Vec<PathBuf>>,
    /// Queues whose taken entries a failed dispatch round did not publish.
    unpublished: Mutex<Vec<Arc<ConsumeQueue>>>,
    index: Index,
    offsets: ConsumerOffsets,
    topics: Table<TopicConfig>,
    groups: Table<GroupConfig>,
    /// CommitLog offset up to which ConsumeQueues and the index are built.
    dispatched: AtomicU64,
    poisoned: OnceLock<String>,
    disk_full: AtomicBool,
    disk_used_bits: AtomicU64,
    stop_dispatch: AtomicBool,
    stop_background: AtomicBool,
    dispatcher: OnceLock<std::thread::Thread>,
    flusher: OnceLock<std::thread::Thread>,
    checkpoint_lock: Mutex<()>,
}

impl Shared {
    fn cq_root(&self) -> PathBuf {
        self.config.dir.join("consumequeue")
    }

    fn checkpoint_path(&self) -> PathBuf {
        self.config.dir.join("checkpoint")
    }

    /// The ConsumeQueue of `(topic, queue_id)`, opened or created on first use. Opening
    /// checks the queue's tail against the CommitLog and drops entries it does not hold.
    pub(crate) fn queue(&self, topic: &str, queue_id: u32) -> Result<Arc<ConsumeQueue>> {
        if let Some(q) = self.opened_queue(topic, queue_id) {
            return Ok(q);
        }
        let mut queues = self.queues.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(q) = queues.get(topic).and_then(|q| q.get(&queue_id)) {
            return Ok(Arc::clone(q));
        }
        let log = &self.log;
        let valid = |queue_offset: u64, e: &CqEntry| {
            // Entries below the log's start point at deleted data and cannot be checked.
            e.commitlog_offset < log.min_offset()
                || log.holds(e.commitlog_offset, e.size, topic, queue_id, queue_offset)
        };
        let cq = Arc::new(ConsumeQueue::open(
            self.next_queue_id.fetch_add(1, Ordering::Relaxed),
            &self.cq_root(),
            topic,
            queue_id,
            self.config.cq_entries_per_file,
            Arc::clone(&self.queue_io),
            &valid,
        )?);
        queues.entry(topic.to_owned()).or_default().insert(queue_id, Arc::clone(&cq));
        Ok(cq)
    }

    fn opened_queue(&self, topic: &str, queue_id: u32) -> Option<Arc<ConsumeQueue>> {
        let queues = self.queues.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        queues.get(topic).and_then(|q| q.get(&queue_id)).map(Arc::clone)
    }

    /// The ConsumeQueue of `(topic, queue_id)` if it holds (or held) messages: opened now if
    /// it is on disk but was not used yet in this run.
    fn find_queue(&self, topic: &str, queue_id: u32) -> Option<Arc<ConsumeQueue>> {
        if let Some(q) = self.opened_queue(topic, queue_id) {
            return Some(q);
        }
        if !valid_dir_name(topic) || !self.cq_root().join(topic).join(queue_id.to_string()).is_dir()
        {
            return None;
        }
        match self.queue(topic, queue_id) {
            Ok(q) => Some(q),
            Err(e) => {
                tracing::error!(topic, queue = queue_id, error = %e, "cannot open consume queue");
                None
            }
        }
    }

    /// The queues opened in this run.
    pub(crate) fn all_queues(&self) -> Vec<Arc<ConsumeQueue>> {
        let queues = self.queues.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        queues.values().flat_map(|q| q.values().map(Arc::clone)).collect()
    }

    /// Every queue on disk or opened, opening those not used yet (retention).
    pub(crate) fn every_queue(&self) -> Result<Vec<Arc<ConsumeQueue>>> {
        let root = self.cq_root();
        let topics = std::fs::read_dir(&root).map_err(StorageError::io("list", &root))?;
        for topic in topics.flatten() {
            let Some(name) = topic.file_name().to_str().map(str::to_owned) else { continue };
            let Ok(queues) = std::fs::read_dir(topic.path()) else { continue };
            for q in queues.flatten() {
                if let Some(id) = q.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) {
                    self.queue(&name, id)?;
                }
            }
        }
        Ok(self.all_queues())
    }

    /// Dispatcher: publishes what `cq` took, noting it for the next checkpoint.
    pub(crate) fn publish_queue(&self, cq: &Arc<ConsumeQueue>) -> Result<()> {
        let mut names = NewNames::default();
        let result = cq.publish(&mut names);
        self.note_names(names);
        if result? {
            self.mark_dirty(cq);
        }
        Ok(())
    }

    /// Dispatcher: takes one entry into `cq`; true if `cq` must now be published.
    pub(crate) fn put_entry(&self, cq: &ConsumeQueue, offset: u64, entry: CqEntry) -> Result<bool> {
        let mut names = NewNames::default();
        let result = cq.put(offset, entry, &mut names);
        self.note_names(names);
        result
    }

    /// Lists `cq` for the next checkpoint to write and sync, once.
    pub(crate) fn mark_dirty(&self, cq: &Arc<ConsumeQueue>) {
        if !cq.dirty.swap(true, Ordering::AcqRel) {
            lock(&self.dirty_queues).push(Arc::clone(cq));
        }
    }

    /// Keeps directories that gained names for the next checkpoint to fsync.
    fn note_names(&self, names: NewNames) {
        if !names.dirs.is_empty() {
            lock(&self.new_dirs).extend(names.dirs);
        }
    }

    pub(crate) fn poison(&self, reason: &str) {
        if self.poisoned.set(reason.to_owned()).is_ok() {
            tracing::error!(reason, "storage poisoned: refusing writes until restart");
        }
    }

    /// Why appends are refused right now, if they are.
    pub(crate) fn refusal(&self) -> Option<StorageError> {
        if let Some(reason) = self.poisoned.get() {
            return Some(StorageError::Poisoned(reason.clone()));
        }
        if self.disk_full.load(Ordering::Acquire) {
            return Some(StorageError::DiskFull {
                dir: self.config.dir.clone(),
                used_pct: f64::from_bits(self.disk_used_bits.load(Ordering::Acquire)) * 100.0,
                limit_pct: self.config.disk_refuse_ratio * 100.0,
            });
        }
        None
    }

    pub(crate) fn set_disk_use(&self, ratio: f64, refuse: bool) {
        self.disk_used_bits.store(ratio.to_bits(), Ordering::Release);
        let was = self.disk_full.swap(refuse, Ordering::AcqRel);
        if refuse && !was {
            tracing::error!(
                used_pct = ratio * 100.0,
                limit_pct = self.config.disk_refuse_ratio * 100.0,
                "disk nearly full: refusing writes"
            );
        } else if was && !refuse {
            tracing::info!(
                used_pct = ratio * 100.0,
                "disk use back under the limit: accepting writes"
            );
        }
    }

    pub(crate) fn wake_dispatcher(&self) {
        if let Some(t) = self.dispatcher.get() {
            t.unpark();
        }
    }

    pub(crate) fn wake_flusher(&self) {
        if let Some(t) = self.flusher.get() {
            t.unpark();
        }
    }
}

/// Which messages a read returns, by tag.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TagFilter {
    /// Every message (`*`).
    #[default]
    All,
    /// Messages whose tag is one of these (`TagA || TagB`).
    Tags(Vec<String>),
}

impl TagFilter {
    /// Parses a RocketMQ tag expression: `*` (or empty) for all, or `a || b || c`.
    pub fn parse(expr: &str) -> TagFilter {
        let expr = expr.trim();
        if expr.is_empty() || expr == "*" {
            return TagFilter::All;
        }
        TagFilter::Tags(
            expr.split("||").map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect(),
        )
    }

    fn matches_hash(&self, hash: u64, hashes: &[u64]) -> bool {
        match self {
            TagFilter::All => true,
            TagFilter::Tags(_) => hashes.contains(&hash),
        }
    }

    /// Whether the message's tag passes the filter (the exact check after the hash check).
    pub fn matches(&self, tag: Option<&str>) -> bool {
        match self {
            TagFilter::All => true,
            TagFilter::Tags(tags) => tag.is_some_and(|t| tags.iter().any(|x| x == t)),
        }
    }
}

/// How a queue read went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetStatus {
    /// Messages were found.
    Found,
    /// Entries were scanned but none passed the filter; continue from `next_offset`.
    NoMatchedMessage,
    /// The offset is the queue's end: nothing new yet.
    NoNewMessage,
    /// The offset is below the queue's minimum (deleted by retention); `next_offset` is the min.
    OffsetTooSmall,
    /// The offset is past the queue's end; `next_offset` is the end.
    OffsetOverflow,
}

/// The result of reading a queue.
#[derive(Debug, Clone)]
pub struct GetResult {
    /// What happened.
    pub status: GetStatus,
    /// The messages, in queue order.
    pub messages: Vec<StoredMessage>,
    /// Where the next read should start.
    pub next_offset: u64,
    /// The queue's minimum offset.
    pub min_offset: u64,
    /// The queue's end offset.
    pub max_offset: u64,
}

/// How long closing spends writing ConsumeQueue tails; the rest is re-dispatched at the next
/// open, so a stop never waits on a burst of new queues.
const CLOSE_WRITE_BUDGET: Duration = Duration::from_secs(3);

/// Most ConsumeQueue entries one read scans while filtering.
const MAX_SCAN: u64 = 4096;

/// The storage engine: CommitLog, ConsumeQueues, index, consumer offsets and metadata, with
/// their threads. Cheap to clone; the last clone dropped closes it.
#[derive(Debug, Clone)]
pub struct MessageStore {
    inner: Arc<Handle>,
}

#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Request>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    closed: AtomicBool,
    /// The data directory lock, released by `close`.
    lock: Mutex<Option<File>>,
}

/// What opening the store found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenReport {
    /// Whether the previous run ended without a clean close.
    pub unclean_shutdown: bool,
    /// Where the CommitLog was cut (torn or corrupt tail), if it was.
    pub truncated_at: Option<u64>,
    /// Bytes dropped by that cut.
    pub dropped_bytes: u64,
    /// Records re-dispatched into ConsumeQueues and the index.
    pub redispatched: u64,
    /// The CommitLog's end after recovery.
    pub commitlog_end: u64,
}

impl MessageStore {
    /// Opens (creating if needed) the store in `config.dir`, recovering from a crash if the
    /// last run did not close cleanly, and starts its threads.
    pub fn open(config: StoreConfig) -> Result<Self> {
        Self::open_with_report(config).map(|(s, _)| s)
    }

    /// Like [`MessageStore::open`], also saying what recovery did.
    pub fn open_with_report(config: StoreConfig) -> Result<(Self, OpenReport)> {
        config.validate()?;
        let dir = config.dir.clone();
        for sub in ["commitlog", "consumequeue", "index", "config"] {
            fs::create_dir_all_durable(&dir.join(sub))?;
        }
        let lock = lock_dir(&dir)?;
        let abort = dir.join("abort");
        let unclean = abort.exists();
        let cp = Checkpoint::load(&dir.join("checkpoint"));
        let validate_from = if unclean { cp.flushed.min(cp.dispatched) } else { u64::MAX };
        let (log, recovered) =
            CommitLog::open(&dir.join("commitlog"), config.segment_size, validate_from)?;
        let index = Index::open(&dir.join("index"), config.index_slots, config.index_max_entries)?;
        let cfg_dir = dir.join("config");
        let shared = Arc::new(Shared {
            offsets: ConsumerOffsets::open(cfg_dir.join("consumer_offsets.json"))?,
            topics: Table::open(cfg_dir.join("topics.json"))?,
            groups: Table::open(cfg_dir.join("groups.json"))?,
            epochs: replica::Epochs::open(cfg_dir.join("epochs.json"))?,
            appended: tokio::sync::Notify::new(),
            log: Arc::clone(&log),
            queues: RwLock::new(HashMap::new()),
            queue_io: Arc::new(QueueIo::new(OpenFiles::new(open_files::budget(
                config.max_open_queue_files,
            )))),
            next_queue_id: AtomicU64::new(0),
            dirty_queues: Mutex::new(Vec::new()),
            new_dirs: Mutex::new(Vec::new()),
            unpublished: Mutex::new(Vec::new()),
            index,
            dispatched: AtomicU64::new(0),
            poisoned: OnceLock::new(),
            disk_full: AtomicBool::new(false),
            disk_used_bits: AtomicU64::new(0),
            stop_dispatch: AtomicBool::new(false),
            stop_background: AtomicBool::new(false),
            dispatcher: OnceLock::new(),
            flusher: OnceLock::new(),
            checkpoint_lock: Mutex::new(()),
            config,
        });

        // Rebuild ConsumeQueues and the index up to the recovered end. ConsumeQueues are
        // opened lazily, each checking its tail against the log as it opens.
        let end = recovered.end;
        shared.index.truncate_beyond(end)?;
        let redispatch_from = if unclean || recovered.truncated_at.is_some() {
            let index = if unclean { shared.index.discard_unsynced(cp.dispatched)? } else { None };
            cp.dispatched.min(end).min(index.unwrap_or(u64::MAX))
        } else {
            cp.dispatched.min(end).max(shared.log.min_offset())
        };
        shared.dispatched.store(redispatch_from.max(shared.log.min_offset()), Ordering::Release);
        let redispatched = dispatch::dispatch_available(&shared)?;
        if redispatched > 0 {
            tracing::info!(
                redispatched,
                from = redispatch_from,
                "rebuilt consume queues and index"
            );
        }
        // Records the recovery; the re-dispatched entries are written behind, after start.
        background::checkpoint(&shared, Some(std::time::Instant::now()))?;
        // Refuse writes from the start if the disk is already too full.
        background::check_disk(&shared)?;

        fs::touch_durable(&abort)?;

        let (tx, rx) = mpsc::channel(4096);
        let writer = Writer::new(
            Arc::clone(&log),
            Arc::clone(&shared),
            rx,
            shared.config.flush_disk_type,
            shared.config.flush_dirty_bytes,
        );
        let mut threads = Vec::new();
        threads.push(spawn("orbitmq-append", move || writer.run())?);
        let s = Arc::clone(&shared);
        let t = spawn("orbitmq-dispatch", move || dispatch::run(&s))?;
        let _ = shared.dispatcher.set(t.thread().clone());
        threads.push(t);
        let s = Arc::clone(&shared);
        let t = spawn("orbitmq-flush", move || background::run_flusher(&s))?;
        let _ = shared.flusher.set(t.thread().clone());
        threads.push(t);
        let s = Arc::clone(&shared);
        threads.push(spawn("orbitmq-checkpoint", move || background::run_checkpointer(&s))?);
        let s = Arc::clone(&shared);
        threads.push(spawn("orbitmq-retention", move || background::run_retention(&s))?);

        let report = OpenReport {
            unclean_shutdown: unclean,
            truncated_at: recovered.truncated_at,
            dropped_bytes: recovered.dropped_bytes,
            redispatched,
            commitlog_end: end,
        };
        let handle = Handle {
            shared,
            tx,
            threads: Mutex::new(threads),
            closed: AtomicBool::new(false),
            lock: Mutex::new(Some(lock)),
        };
        Ok((MessageStore { inner: Arc::new(handle) }, report))
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Resolves once the log's published end moved after this call (create it before
    /// looking at the end, then await it).
    pub fn appended(&self) -> tokio::sync::futures::Notified<'_> {
        self.shared().appended.notified()
    }

    /// The configuration the store runs with.
    pub fn config(&self) -> &StoreConfig {
        &self.shared().config
    }

    /// Appends one message. Resolves once it is stored (and, with sync flush, durable).
    pub async fn put(&self, msg: PutMessage) -> Result<PutResult> {
        let mut r = self.put_batch(vec![msg]).await?;
        r.pop().ok_or(StorageError::Closed)
    }

    /// Appends several messages, contiguously and in order, in one request.
    pub async fn put_batch(&self, msgs: Vec<PutMessage>) -> Result<Vec<PutResult>> {
        let encoded = self.encode(&msgs)?;
        let (reply, rx) = oneshot::channel();
        self.inner
            .tx
            .send(Request::Append(encoded, reply))
            .await
            .map_err(|_| StorageError::Closed)?;
        rx.await.map_err(|_| StorageError::Closed)?
    }

    fn encode(&self, msgs: &[PutMessage]) -> Result<EncodedBatch> {
        if let Some(refusal) = self.shared().refusal() {
            return Err(refusal);
        }
        let cfg = &self.shared().config;
        let mut batch = EncodedBatch::default();
        for m in msgs {
            let start = batch.buf.len();
            commitlog::record::encode_into(m, cfg.store_host, &mut batch.buf)?;
            let len = batch.buf.len() - start;
            if len > cfg.max_message_size {
                return Err(StorageError::MessageTooLarge {
                    size: len,
                    limit: cfg.max_message_size,
                });
            }
            let topic = batch.topics.iter().position(|t| *t == m.topic).unwrap_or_else(|| {
                batch.topics.push(m.topic.clone());
                batch.topics.len() - 1
            });
            batch.records.push(EncodedRecord { len, queue_id: m.queue_id, topic });
        }
        Ok(batch)
    }

    /// Reads the message at a CommitLog offset.
    pub fn read_at(&self, commitlog_offset: u64) -> Result<StoredMessage> {
        let head = self.shared().log.read_raw(commitlog_offset, 4)?;
        let size = commitlog::record::u32_at(&head, 0).unwrap_or(0);
        self.shared().log.read(commitlog_offset, size)
    }

    /// Reads up to `max` messages of `(topic, queue_id)` from queue offset `offset` that pass
    /// `filter`.
    pub fn get_messages(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
        max: usize,
        filter: &TagFilter,
    ) -> Result<GetResult> {
        let Some(cq) = self.shared().find_queue(topic, queue_id) else {
            let status =
                if offset == 0 { GetStatus::NoNewMessage } else { GetStatus::OffsetOverflow };
            return Ok(GetResult {
                status,
                messages: Vec::new(),
                next_offset: 0,
                min_offset: 0,
                max_offset: 0,
            });
        };
        let (min, max_off) = (cq.min_offset(), cq.max_offset());
        let result = |status, messages, next_offset| GetResult {
            status,
            messages,
            next_offset,
            min_offset: min,
            max_offset: max_off,
        };
        if offset < min {
            return Ok(result(GetStatus::OffsetTooSmall, Vec::new(), min));
        }
        if offset == max_off {
            return Ok(result(GetStatus::NoNewMessage, Vec::new(), offset));
        }
        if offset > max_off {
            return Ok(result(GetStatus::OffsetOverflow, Vec::new(), max_off));
        }
        let hashes: Vec<u64> = match filter {
            TagFilter::All => Vec::new(),
            TagFilter::Tags(tags) => tags.iter().map(|t| tag_hash(t)).collect(),
        };
        let log_min = self.shared().log.min_offset();
        let mut messages = Vec::new();
        let mut next = offset;
        let stop = max_off.min(offset.saturating_add(MAX_SCAN));
        'scan: while next < stop && messages.len() < max {
            // Read a few more entries than messages wanted: some may be filtered out.
            let want = (max - messages.len()) as u64 * 2 + 8;
            let (entries, scanned) = cq.scan(next, want.min(stop - next))?;
            if entries.is_empty() {
                // Only holes (entries lost to a crash): skip them.
                next = scanned.max(next + 1).min(stop);
                continue;
            }
            for (at, e) in entries {
                if messages.len() >= max {
                    break 'scan;
                }
                next = at + 1;
                if e.commitlog_offset < log_min || !filter.matches_hash(e.tag_hash, &hashes) {
                    continue;
                }
                let msg = self.shared().log.read(e.commitlog_offset, e.size)?;
                if filter.matches(msg.tag()) {
                    messages.push(msg);
                }
            }
        }
        let status =
            if messages.is_empty() { GetStatus::NoMatchedMessage } else { GetStatus::Found };
        Ok(result(status, messages, next))
    }

    /// Waits until `(topic, queue_id)` has a message at `offset` or `timeout` passes (long
    /// polling). Returns whether it has.
    pub async fn wait_for(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
        timeout: Duration,
    ) -> Result<bool> {
        let cq = self.shared().queue(topic, queue_id)?;
        Ok(cq.wait_for(offset, timeout).await)
    }

    /// The ConsumeQueue of `(topic, queue_id)`, if it has ever held a message.
    pub fn queue(&self, topic: &str, queue_id: u32) -> Option<Arc<ConsumeQueue>> {
        self.shared().find_queue(topic, queue_id)
    }

    /// Every `(topic, queue id)` with a ConsumeQueue (opening them all).
    pub fn queues(&self) -> Result<Vec<(String, u32)>> {
        let mut v: Vec<(String, u32)> = self
            .shared()
            .every_queue()?
            .iter()
            .map(|q| (q.topic().to_owned(), q.queue_id()))
            .collect();
        v.sort();
        Ok(v)
    }

    /// Deletes the ConsumeQueues of `topic` (its messages stay in the CommitLog until
    /// retention, unreachable by queue offset). Returns how many queues were removed. A topic
    /// created again under the same name starts at queue offset 0.
    pub async fn delete_topic(&self, topic: &str) -> Result<usize> {
        let s = self.shared();
        // The append thread forgets the topic's offsets after writing what it took before...
        let (done, rx) = oneshot::channel();
        self.inner
            .tx
            .send(Request::Forget(topic.to_owned(), done))
            .await
            .map_err(|_| StorageError::Closed)?;
        rx.await.map_err(|_| StorageError::Closed)?;
        // ...and dispatch takes that into the old queues before they go.
        let end = s.log.write_pos();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while s.dispatched.load(Ordering::Acquire) < end && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let removed = {
            let mut queues = s.queues.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            queues.remove(topic).unwrap_or_default()
        };
        for cq in removed.values() {
            cq.close_files();
        }
        let dir = s.cq_root().join(topic);
        let on_disk = if valid_dir_name(topic) && dir.is_dir() {
            std::fs::read_dir(&dir).map_or(0, Iterator::count)
        } else {
            0
        };
        if valid_dir_name(topic) {
            fs::remove_dir_all(&dir)?;
        }
        Ok(on_disk.max(removed.len()))
    }

    /// Open ConsumeQueue files now, and the most kept open.
    pub fn open_queue_files(&self) -> (usize, usize) {
        let files = &self.shared().queue_io.files;
        (files.open_count(), files.capacity())
    }

    /// Bytes of ConsumeQueue entries held in memory, not yet written to their files.
    pub fn queue_tail_bytes(&self) -> usize {
        self.shared().queue_io.tail_bytes()
    }

    /// Smallest readable offset of a queue (0 if it has none).
    pub fn min_offset(&self, topic: &str, queue_id: u32) -> u64 {
        self.queue(topic, queue_id).map_or(0, |q| q.min_offset())
    }

    /// End offset of a queue: the offset its next message will get.
    pub fn max_offset(&self, topic: &str, queue_id: u32) -> u64 {
        self.queue(topic, queue_id).map_or(0, |q| q.max_offset())
    }

    /// The first queue offset whose message was stored at or after `timestamp` (ms); the end
    /// offset if there is none.
    pub fn offset_for_timestamp(&self, topic: &str, queue_id: u32, timestamp: i64) -> u64 {
        let Some(cq) = self.queue(topic, queue_id) else { return 0 };
        let log = &self.shared().log;
        let (mut lo, mut hi) = (cq.min_offset(), cq.max_offset());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let ts = cq.get(mid).and_then(|e| log.store_timestamp_at(e.commitlog_offset));
            match ts {
                Some(ts) if ts >= timestamp => hi = mid,
                // A message lost to retention counts as older than anything asked for.
                _ => lo = mid + 1,
            }
        }
        lo
    }

    /// Messages of `topic` with key `key`, stored within `[begin, end]` ms, at most `max`,
    /// oldest first.
    pub fn query_by_key(
        &self,
        topic: &str,
        key: &str,
        begin: i64,
        end: i64,
        max: usize,
    ) -> Vec<StoredMessage> {
        self.lookup(&index::key_of(topic, key), begin, end, max, |m| {
            m.topic == topic && m.keys().any(|k| k == key)
        })
    }

    /// Messages with client message id `id`, stored within `[begin, end]` ms, at most `max`
    /// (more than one when a producer retried a send).
    pub fn query_by_message_id(
        &self,
        id: &str,
        begin: i64,
        end: i64,
        max: usize,
    ) -> Vec<StoredMessage> {
        self.lookup(&index::id_key(id), begin, end, max, |m| m.message_id() == Some(id))
    }

    fn lookup(
        &self,
        key: &str,
        begin: i64,
        end: i64,
        max: usize,
        is_match: impl Fn(&StoredMessage) -> bool,
    ) -> Vec<StoredMessage> {
        // Ask for more than `max` offsets: some may be hash collisions.
        let offsets = self.shared().index.lookup(key, begin, end, max.saturating_mul(4).max(32));
        let mut found: Vec<StoredMessage> = offsets
            .into_iter()
            .filter_map(|off| self.read_at(off).ok())
            .filter(|m| m.store_timestamp >= begin && m.store_timestamp <= end && is_match(m))
            .collect();
        found.sort_by_key(|m| m.commitlog_offset);
        found.dedup_by_key(|m| m.commitlog_offset);
        found.truncate(max);
        found
    }

    /// The broker-assigned `offset_msg_id` of the message at `commitlog_offset`.
    pub fn offset_msg_id(&self, commitlog_offset: u64) -> String {
        msg_id::encode(self.shared().config.store_host, commitlog_offset)
    }

    /// Reads the message an `offset_msg_id` points at. The id must name this store's host.
    pub fn read_by_offset_msg_id(&self, id: &str) -> Result<StoredMessage> {
        let (host, offset) = msg_id::decode(id)?;
        if host != self.shared().config.store_host {
            return Err(StorageError::InvalidId {
                id: id.to_owned(),
                reason: "names another broker's address",
            });
        }
        self.read_at(offset)
    }

    /// Consumer offsets.
    pub fn consumer_offsets(&self) -> &ConsumerOffsets {
        &self.shared().offsets
    }

    /// Topic configs.
    pub fn topics(&self) -> &Table<TopicConfig> {
        &self.shared().topics
    }

    /// Consumer group configs.
    pub fn groups(&self) -> &Table<GroupConfig> {
        &self.shared().groups
    }

    /// Smallest CommitLog offset still held.
    pub fn commitlog_min_offset(&self) -> u64 {
        self.shared().log.min_offset()
    }

    /// CommitLog end: where the next record goes.
    pub fn commitlog_max_offset(&self) -> u64 {
        self.shared().log.write_pos()
    }

    /// CommitLog offset up to which the log is on disk.
    pub fn commitlog_flushed_offset(&self) -> u64 {
        self.shared().log.flushed_pos()
    }

    /// CommitLog offset up to which ConsumeQueues and the index are built.
    pub fn dispatched_offset(&self) -> u64 {
        self.shared().dispatched.load(Ordering::Acquire)
    }

    /// Runs one retention pass now, as the scheduled hour would (`force`), or only if disk
    /// pressure asks for it. `now` decides what is expired.
    pub fn run_retention(&self, now: SystemTime, force: bool) -> Result<RetentionReport> {
        background::retention_pass(self.shared(), now, force)
    }

    /// Flushes everything and records a checkpoint now.
    pub fn checkpoint(&self) -> Result<()> {
        let s = self.shared();
        s.log.flush_to(s.log.write_pos())?;
        background::checkpoint(s, None).map(|_| ())
    }

    /// Stops the threads after the queued appends, flushes, checkpoints and marks the shutdown
    /// clean. Blocks for as long as that takes (call it from `spawn_blocking` in async code,
    /// as `Broker::close` does); later calls do nothing.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }
}

impl Handle {
    fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let s = &self.shared;
        // Not `blocking_send`: it panics on a runtime's thread, and the last handle may well be
        // dropped on one. A full channel drains as the append thread works.
        while let Err(TrySendError::Full(_)) = self.tx.try_send(Request::Stop) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut threads = std::mem::take(
            &mut *self.threads.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        // The append thread is first: wait for it, then flush what it wrote.
        if !threads.is_empty() {
            let _ = threads.remove(0).join();
        }
        let flushed = s.log.flush_to(s.log.write_pos());
        s.stop_dispatch.store(true, Ordering::Release);
        s.stop_background.store(true, Ordering::Release);
        for t in &threads {
            t.thread().unpark();
        }
        for t in threads {
            let _ = t.join();
        }
        flushed?;
        background::checkpoint(s, Some(std::time::Instant::now() + CLOSE_WRITE_BUDGET))?;
        if s.poisoned.get().is_none() {
            let abort = s.config.dir.join("abort");
            fs::remove_durable(&abort)?;
        }
        self.lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        Ok(())
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(error = %e, "closing the store failed");
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .map_err(StorageError::io("spawn thread", name))
}

/// Locks `m`, going on past a panic of another holder (the data it guards stays valid).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether `name` can be used as one directory name (topics are validated at the edge; this
/// keeps a bad name from reaching outside the data directory).
fn valid_dir_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// Takes an exclusive lock on `<dir>/lock`, so two processes never open one store.
fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join("lock");
    let f = File::create(&path).map_err(StorageError::io("create", &path))?;
    // A predecessor that is still exiting (or a child process between fork and exec that
    // inherited the descriptor) holds the lock for a moment: wait up to 2 s before failing.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(f),
            Err(e)
                if e == rustix::io::Errno::WOULDBLOCK && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => {
                return Err(StorageError::io(
                    "lock (is another orbitmq using this data directory?)",
                    &path,
                )(std::io::Error::from(e)));
            }
        }
    }
}
