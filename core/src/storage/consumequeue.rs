//! ConsumeQueue: the per-(topic, queue) index into the CommitLog. Fixed 20-byte entries
//! `(commitlog offset u64, size u32, tag hash u64)`, little-endian, in files named by the
//! 20-digit queue offset of their first entry, holding at most `entries_per_file` entries.
//! Entry `n` of the queue lives at a computable place, so lookup by queue offset is O(1).
//!
//! Files grow as entries are appended (nothing is preallocated), so a queue costs disk and page
//! cache in proportion to what it holds, and opening one reads only its last entries. A queue
//! holds no file descriptor: reads and writes borrow one from the store's bounded
//! [`OpenFiles`].
//!
//! Files are written behind: the dispatcher appends entries to the queue's in-memory tail and
//! publishes them (readable at once, from memory); the checkpoint thread writes tails to the
//! files (creating them: the costly part of a burst of new queues), and the dispatcher itself
//! only when a tail grows past `WRITE_BEHIND_BYTES`. The CommitLog stays the source of truth:
//! the checkpoint never claims an entry that is not written and synced, and recovery
//! re-dispatches from there.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::storage::commitlog::record::{u32_at, u64_at};
use crate::storage::error::Result;
use crate::storage::fs::{self, DataFile};
use crate::storage::mapped::{list_offset_files, offset_file_name};
use crate::storage::open_files::OpenFiles;

/// Size of one entry, bytes.
pub const ENTRY_SIZE: usize = 20;

/// Entries read with one `pread` when scanning.
const READ_CHUNK: u64 = 256;

/// A queue's in-memory tail past this size is written by the dispatcher at once.
const WRITE_BEHIND_BYTES: usize = 64 << 10;

/// Past this much in the in-memory tails of all queues together, the dispatcher writes each
/// tail it publishes: memory stays bounded when the checkpoint thread falls behind.
const MAX_TAIL_BYTES: usize = 64 << 20;

/// What every queue of a store shares: the open files and the size of the in-memory tails.
#[derive(Debug)]
pub(crate) struct QueueIo {
    pub(crate) files: OpenFiles,
    tail_bytes: std::sync::atomic::AtomicUsize,
}

impl QueueIo {
    pub(crate) fn new(files: OpenFiles) -> Self {
        QueueIo { files, tail_bytes: std::sync::atomic::AtomicUsize::new(0) }
    }

    /// Bytes held in the in-memory tails of all queues.
    pub(crate) fn tail_bytes(&self) -> usize {
        self.tail_bytes.load(Ordering::Relaxed)
    }
}

/// Holes (lost entries) the dispatcher fills with zeros in memory; a larger gap is written.
const MAX_GAP_FILL: u64 = 4096;

/// One ConsumeQueue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CqEntry {
    /// Offset of the message in the CommitLog.
    pub commitlog_offset: u64,
    /// Size of the record, bytes.
    pub size: u32,
    /// `tag_hash` of the message's tag, 0 if untagged.
    pub tag_hash: u64,
}

impl CqEntry {
    fn encode(&self) -> [u8; ENTRY_SIZE] {
        let mut b = [0u8; ENTRY_SIZE];
        b[..8].copy_from_slice(&self.commitlog_offset.to_le_bytes());
        b[8..12].copy_from_slice(&self.size.to_le_bytes());
        b[12..].copy_from_slice(&self.tag_hash.to_le_bytes());
        b
    }

    /// Decodes an entry; `None` for zeros ("not written") or a short slice.
    pub fn decode(b: &[u8]) -> Option<Self> {
        let e = CqEntry {
            commitlog_offset: u64_at(b, 0)?,
            size: u32_at(b, 8)?,
            tag_hash: u64_at(b, 12)?,
        };
        // A real entry always has a size: zeros are "not written".
        (e.size != 0).then_some(e)
    }
}

/// The in-memory tail: entries not in the files yet, a contiguous run from `start` (zeros for
/// holes).
#[derive(Debug, Default)]
struct Pending {
    start: u64,
    buf: Vec<u8>,
    /// Whether the dispatcher has this queue on its list to publish.
    queued: bool,
}

impl Pending {
    fn end(&self) -> u64 {
        self.start + (self.buf.len() / ENTRY_SIZE) as u64
    }
}

fn decode_run(bytes: &[u8], first: u64) -> Vec<(u64, CqEntry)> {
    bytes
        .chunks_exact(ENTRY_SIZE)
        .enumerate()
        .filter_map(|(i, b)| CqEntry::decode(b).map(|e| (first + i as u64, e)))
        .collect()
}

/// Names created by a write, which the checkpoint must make durable (fsync of these
/// directories) before it claims the entries are.
#[derive(Debug, Default)]
pub(crate) struct NewNames {
    pub(crate) dirs: Vec<PathBuf>,
}

/// The ConsumeQueue of one (topic, queue id).
#[derive(Debug)]
pub struct ConsumeQueue {
    id: u64,
    topic: String,
    queue_id: u32,
    dir: PathBuf,
    entries_per_file: u64,
    io: Arc<QueueIo>,
    /// Queue offsets of the files' first entries, ascending.
    bases: RwLock<Vec<u64>>,
    min: AtomicU64,
    max: AtomicU64,
    /// Entries below this are in the files (changed under the `pending` lock).
    written: AtomicU64,
    /// Entries below this are durable.
    synced: AtomicU64,
    /// Whether the queue is on the store's list of queues to sync.
    pub(crate) dirty: AtomicBool,
    /// Set when the queue's files are deleted.
    deleted: AtomicBool,
    pending: Mutex<Pending>,
    notify: tokio::sync::Notify,
}

impl ConsumeQueue {
    /// Opens the queue under `root/<topic>/<queue id>/` (nothing is created until the first
    /// entry). Entries at the tail that `valid` rejects (unwritten, or left by a life whose
    /// CommitLog tail recovery cut) are dropped: only the tail can hold them, since each life
    /// opens a queue, and so cleans it, before it appends to it.
    pub(crate) fn open(
        id: u64,
        root: &Path,
        topic: &str,
        queue_id: u32,
        entries_per_file: u64,
        io: Arc<QueueIo>,
        valid: &dyn Fn(u64, &CqEntry) -> bool,
    ) -> Result<Self> {
        let dir = root.join(topic).join(queue_id.to_string());
        let mut bases = Vec::new();
        for (base, path) in list_offset_files(&dir)? {
            if base % entries_per_file != 0 {
                tracing::warn!(path = %path.display(), "ignoring misnamed consume queue file");
                continue;
            }
            bases.push(base);
        }
        let cq = ConsumeQueue {
            id,
            topic: topic.to_owned(),
            queue_id,
            dir,
            entries_per_file,
            io,
            min: AtomicU64::new(bases.first().copied().unwrap_or(0)),
            bases: RwLock::new(bases),
            max: AtomicU64::new(0),
            written: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            dirty: AtomicBool::new(false),
            deleted: AtomicBool::new(false),
            pending: Mutex::new(Pending::default()),
            notify: tokio::sync::Notify::new(),
        };
        let max = cq.recover_tail(valid)?;
        cq.max.store(max, Ordering::Release);
        cq.written.store(max, Ordering::Release);
        cq.lock_pending().start = max;
        cq.synced.store(max, Ordering::Release);
        if cq.min_offset() > max {
            cq.min.store(max, Ordering::Release);
        }
        Ok(cq)
    }

    /// Finds the end of the valid entries, reading only the tail: cuts the entries `valid`
    /// rejects, removing files that end up empty.
    fn recover_tail(&self, valid: &dyn Fn(u64, &CqEntry) -> bool) -> Result<u64> {
        loop {
            let Some(base) = self.read_bases().last().copied() else { return Ok(0) };
            let file = self.file(base, false)?;
            let len = file.len()?;
            let mut n = (len / ENTRY_SIZE as u64).min(self.entries_per_file);
            let mut cut = len != n * ENTRY_SIZE as u64;
            // Walk back over bad entries, a chunk at a time.
            'scan: while n > 0 {
                let from = n.saturating_sub(READ_CHUNK);
                let mut buf = vec![0u8; ((n - from) as usize) * ENTRY_SIZE];
                let got = file.read_at(from * ENTRY_SIZE as u64, &mut buf)?;
                buf.truncate(got);
                for i in (0..(n - from) as usize).rev() {
                    let e = buf.get(i * ENTRY_SIZE..(i + 1) * ENTRY_SIZE).and_then(CqEntry::decode);
                    if e.is_some_and(|e| valid(base + from + i as u64, &e)) {
                        break 'scan;
                    }
                    n -= 1;
                    cut = true;
                }
            }
            if n == 0 && self.read_bases().len() > 1 {
                tracing::warn!(
                    topic = self.topic,
                    queue = self.queue_id,
                    base,
                    "consume queue file holds no valid entry: removed"
                );
                self.io.files.forget((self.id, base));
                drop(file);
                fs::remove_file(&self.path_of(base))?;
                fs::fsync_dir(&self.dir)?;
                self.write_bases().pop();
                continue;
            }
            if cut {
                let dropped = len / ENTRY_SIZE as u64 - n;
                tracing::warn!(
                    topic = self.topic,
                    queue = self.queue_id,
                    dropped,
                    "consume queue entries with no matching commitlog record dropped"
                );
                file.set_len(n * ENTRY_SIZE as u64)?;
                file.sync_data()?;
            }
            return Ok(base + n);
        }
    }

    fn read_bases(&self) -> std::sync::RwLockReadGuard<'_, Vec<u64>> {
        self.bases.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_bases(&self) -> std::sync::RwLockWriteGuard<'_, Vec<u64>> {
        self.bases.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn path_of(&self, base: u64) -> PathBuf {
        self.dir.join(offset_file_name(base))
    }

    fn file(&self, base: u64, create: bool) -> Result<Arc<DataFile>> {
        self.io.files.get((self.id, base), &self.path_of(base), create).map(|(f, _)| f)
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The queue id.
    pub fn queue_id(&self) -> u32 {
        self.queue_id
    }

    /// Smallest readable queue offset.
    pub fn min_offset(&self) -> u64 {
        self.min.load(Ordering::Acquire)
    }

    /// One past the last entry: the next message of this queue gets this offset.
    pub fn max_offset(&self) -> u64 {
        self.max.load(Ordering::Acquire)
    }

    /// The entry at `offset`, if it is in `[min, max)`.
    pub fn get(&self, offset: u64) -> Option<CqEntry> {
        self.get_range(offset, 1).ok()?.into_iter().next().map(|(_, e)| e)
    }

    /// Up to `count` entries from `offset` on, within `[min, max)` and one file (one read) or
    /// the in-memory tail: `(queue offset, entry)` pairs, ascending, unwritten holes left out.
    pub fn get_range(&self, offset: u64, count: u64) -> Result<Vec<(u64, CqEntry)>> {
        self.scan(offset, count).map(|(entries, _)| entries)
    }

    /// Like [`ConsumeQueue::get_range`], also saying where the part it looked at ends: a
    /// reader continues there even when it held only holes.
    pub fn scan(&self, offset: u64, count: u64) -> Result<(Vec<(u64, CqEntry)>, u64)> {
        let max = self.max_offset();
        if offset < self.min_offset() || offset >= max || count == 0 {
            return Ok((Vec::new(), offset));
        }
        let stop = max.min(offset.saturating_add(count));
        if offset >= self.written.load(Ordering::Acquire) {
            let p = self.lock_pending();
            if offset >= p.start {
                let from = ((offset - p.start) as usize).saturating_mul(ENTRY_SIZE);
                let end = stop.min(p.end()).max(offset);
                let to = ((end - p.start) as usize).saturating_mul(ENTRY_SIZE);
                let entries = decode_run(p.buf.get(from..to).unwrap_or_default(), offset);
                return Ok((entries, end.max(offset + 1)));
            }
            // Written to the files meanwhile.
        }
        let base = offset - offset % self.entries_per_file;
        let file_end = stop.min(base + self.entries_per_file);
        if self.read_bases().binary_search(&base).is_err() {
            // No file here (lost, or never written): nothing to read up to its end.
            return Ok((Vec::new(), file_end));
        }
        let end = file_end.min(self.written.load(Ordering::Acquire)).max(offset + 1);
        let mut buf = vec![0u8; (end - offset) as usize * ENTRY_SIZE];
        let file = self.file(base, false)?;
        let got = file.read_at((offset - base) * ENTRY_SIZE as u64, &mut buf)?;
        Ok((decode_run(buf.get(..got).unwrap_or_default(), offset), end))
    }

    /// Takes the entry for `offset` (dispatcher only); it becomes readable at the next
    /// [`ConsumeQueue::publish`]. An entry the queue already has is skipped, which makes
    /// re-dispatch after a crash idempotent. Returns whether the queue had nothing pending
    /// before (so the caller publishes it once).
    pub(crate) fn put(&self, offset: u64, entry: CqEntry, names: &mut NewNames) -> Result<bool> {
        let mut p = self.lock_pending();
        let have = if p.buf.is_empty() { self.max_offset().max(p.start) } else { p.end() };
        if offset < have {
            return Ok(false);
        }
        if offset > have && !p.buf.is_empty() {
            // A gap: entries lost to a torn write. Holes read as "not written".
            if offset - have <= MAX_GAP_FILL {
                let holes = (offset - have) as usize * ENTRY_SIZE;
                let len = p.buf.len() + holes;
                p.buf.resize(len, 0);
                self.io.tail_bytes.fetch_add(holes, Ordering::Relaxed);
            } else {
                self.write_locked(&mut p, names)?;
            }
        }
        if p.buf.is_empty() {
            p.start = offset;
        }
        p.buf.extend_from_slice(&entry.encode());
        self.io.tail_bytes.fetch_add(ENTRY_SIZE, Ordering::Relaxed);
        Ok(!std::mem::replace(&mut p.queued, true))
    }

    /// Makes the taken entries readable and wakes long-polling readers; writes the tail to
    /// the files if it grew large. Returns whether there were new entries.
    pub(crate) fn publish(&self, names: &mut NewNames) -> Result<bool> {
        let mut p = self.lock_pending();
        p.queued = false;
        // Taken entries may have been written behind already: the end is the same.
        let end = p.end();
        if end <= self.max_offset() {
            return Ok(false);
        }
        self.max.store(end, Ordering::Release);
        let write_now = p.buf.len() >= WRITE_BEHIND_BYTES || self.io.tail_bytes() >= MAX_TAIL_BYTES;
        let result = if write_now { self.write_locked(&mut p, names) } else { Ok(()) };
        drop(p);
        self.notify.notify_waiters();
        result.map(|()| true)
    }

    /// Writes the in-memory tail to the files (checkpoint, or the dispatcher for a big tail).
    pub(crate) fn write_behind(&self, names: &mut NewNames) -> Result<()> {
        let mut p = self.lock_pending();
        self.write_locked(&mut p, names)
    }

    /// The CommitLog offset of the first entry not in the files yet, if any.
    pub(crate) fn first_unwritten(&self) -> Option<u64> {
        let p = self.lock_pending();
        p.buf.chunks_exact(ENTRY_SIZE).find_map(CqEntry::decode).map(|e| e.commitlog_offset)
    }

    fn write_locked(&self, p: &mut Pending, names: &mut NewNames) -> Result<()> {
        if p.buf.is_empty() {
            return Ok(());
        }
        if self.deleted.load(Ordering::Acquire) {
            self.io.tail_bytes.fetch_sub(p.buf.len(), Ordering::Relaxed);
            p.buf.clear();
            return Ok(());
        }
        let mut offset = p.start;
        let mut rest: &[u8] = &p.buf;
        while !rest.is_empty() {
            let base = offset - offset % self.entries_per_file;
            let room = (base + self.entries_per_file - offset) as usize * ENTRY_SIZE;
            let (chunk, tail) = rest.split_at(room.min(rest.len()));
            let file = self.file_for_write(base, names)?;
            file.write_at((offset - base) * ENTRY_SIZE as u64, chunk)?;
            offset += (chunk.len() / ENTRY_SIZE) as u64;
            rest = tail;
        }
        self.written.store(offset, Ordering::Release);
        self.io.tail_bytes.fetch_sub(p.buf.len(), Ordering::Relaxed);
        p.start = offset;
        if p.buf.capacity() > WRITE_BEHIND_BYTES * 2 {
            p.buf = Vec::new();
        } else {
            p.buf.clear();
        }
        Ok(())
    }

    fn file_for_write(&self, base: u64, names: &mut NewNames) -> Result<Arc<DataFile>> {
        if self.read_bases().binary_search(&base).is_ok() {
            return self.file(base, false);
        }
        names.dirs.extend(fs::create_dir_all(&self.dir)?);
        let (file, created) = self.io.files.get((self.id, base), &self.path_of(base), true)?;
        if created {
            names.dirs.push(self.dir.clone());
        }
        let mut bases = self.write_bases();
        if let Err(at) = bases.binary_search(&base) {
            bases.insert(at, base);
        }
        Ok(file)
    }

    /// Waits until the queue holds an entry at `offset` or `timeout` passes. Returns whether it
    /// does.
    pub async fn wait_for(&self, offset: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.max_offset() > offset {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.max_offset() > offset;
            }
        }
    }

    /// Writes the in-memory tail and makes the entries durable (`fdatasync` of each file
    /// they touched).
    pub(crate) fn sync(&self, names: &mut NewNames) -> Result<()> {
        match self.sync_files(names) {
            // Deleted meanwhile: its files are gone, and nothing of it needs to last.
            Err(_) if self.deleted.load(Ordering::Acquire) => Ok(()),
            other => other,
        }
    }

    fn sync_files(&self, names: &mut NewNames) -> Result<()> {
        self.write_behind(names)?;
        let from = self.synced.load(Ordering::Acquire);
        let to = self.written.load(Ordering::Acquire);
        if to <= from || self.deleted.load(Ordering::Acquire) {
            return Ok(());
        }
        let bases: Vec<u64> = self
            .read_bases()
            .iter()
            .copied()
            .filter(|b| b + self.entries_per_file > from && *b < to)
            .collect();
        for base in bases {
            self.file(base, false)?.sync_data()?;
        }
        self.synced.store(to, Ordering::Release);
        Ok(())
    }

    /// Records that everything written is durable (the whole file system was synced).
    pub(crate) fn mark_synced(&self) {
        self.synced.fetch_max(self.written.load(Ordering::Acquire), Ordering::AcqRel);
    }

    /// Retention: removes whole files whose entries all point below `commitlog_min`, never the
    /// last file, then moves `min` to the first entry at or above `commitlog_min`.
    pub(crate) fn delete_below(&self, commitlog_min: u64) -> Result<usize> {
        let bases: Vec<u64> = self.read_bases().clone();
        let mut removed = 0;
        for base in bases.iter().take(bases.len().saturating_sub(1)) {
            let last_offset = base + self.entries_per_file - 1;
            let last = self.get_range(last_offset, 1)?.into_iter().next().map(|(_, e)| e);
            if last.is_some_and(|e| e.commitlog_offset >= commitlog_min) {
                break;
            }
            self.write_bases().retain(|b| b != base);
            self.io.files.forget((self.id, *base));
            fs::remove_file(&self.path_of(*base))?;
            removed += 1;
        }
        if removed > 0 {
            fs::fsync_dir(&self.dir)?;
        }
        let max = self.max_offset();
        // No file yet is no entry lost: they may all be in the in-memory tail.
        let first_file = self.read_bases().first().copied().unwrap_or(0);
        let mut min = first_file.max(self.min_offset());
        'advance: while min < max {
            let (entries, scanned) = self.scan(min, READ_CHUNK)?;
            if entries.is_empty() {
                min = scanned.max(min + 1);
                continue;
            }
            for (offset, e) in entries {
                if e.commitlog_offset >= commitlog_min {
                    min = offset;
                    break 'advance;
                }
                min = offset + 1;
            }
        }
        self.min.store(min, Ordering::Release);
        Ok(removed)
    }

    /// Closes the queue's files: it is being deleted.
    pub(crate) fn close_files(&self) {
        // Under the tail's lock: a write behind either finished before, or sees the flag and
        // does not create the directory again.
        let mut p = self.lock_pending();
        self.deleted.store(true, Ordering::Release);
        self.io.tail_bytes.fetch_sub(p.buf.len(), Ordering::Relaxed);
        p.buf.clear();
        drop(p);
        self.io.files.forget_queue(self.id);
    }
}
