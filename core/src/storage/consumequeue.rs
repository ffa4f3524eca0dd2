//! ConsumeQueue: the per-(topic, queue) index into the CommitLog. Fixed 20-byte entries
//! `(commitlog offset u64, size u32, tag hash u64)`, little-endian, in fixed-size mapped files
//! named by the 20-digit queue offset of their first entry. Entry `n` of the queue lives at a
//! computable place, so lookup by queue offset is O(1). Only the dispatcher writes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::storage::commitlog::record::{u32_at, u64_at};
use crate::storage::error::{Result, StorageError};
use crate::storage::mapped::{MappedFile, list_offset_files, offset_file_name};

/// Size of one entry, bytes.
pub const ENTRY_SIZE: usize = 20;

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

    fn decode(b: &[u8]) -> Option<Self> {
        let e = CqEntry {
            commitlog_offset: u64_at(b, 0)?,
            size: u32_at(b, 8)?,
            tag_hash: u64_at(b, 12)?,
        };
        // A real entry always has a size: zeros are "not written".
        (e.size != 0).then_some(e)
    }
}

#[derive(Debug)]
struct CqFile {
    /// Queue offset of the first entry.
    base: u64,
    file: MappedFile,
}

/// The ConsumeQueue of one (topic, queue id).
#[derive(Debug)]
pub struct ConsumeQueue {
    topic: String,
    queue_id: u32,
    dir: PathBuf,
    entries_per_file: u64,
    files: RwLock<Vec<Arc<CqFile>>>,
    min: AtomicU64,
    max: AtomicU64,
    flushed: AtomicU64,
    notify: tokio::sync::Notify,
}

impl ConsumeQueue {
    /// Opens (or prepares to create) the queue under `root/<topic>/<queue id>/`.
    pub(crate) fn open(
        root: &Path,
        topic: &str,
        queue_id: u32,
        entries_per_file: u64,
    ) -> Result<Self> {
        let dir = root.join(topic).join(queue_id.to_string());
        let file_len = entries_per_file as usize * ENTRY_SIZE;
        let mut files = Vec::new();
        for (base, path) in list_offset_files(&dir)? {
            if base % entries_per_file != 0 {
                tracing::warn!(path = %path.display(), "ignoring misnamed consume queue file");
                continue;
            }
            files.push(Arc::new(CqFile { base, file: MappedFile::open(&path, file_len)? }));
        }
        let cq = ConsumeQueue {
            topic: topic.to_owned(),
            queue_id,
            dir,
            entries_per_file,
            files: RwLock::new(files),
            min: AtomicU64::new(0),
            max: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
            notify: tokio::sync::Notify::new(),
        };
        let (min, max) = cq.scan_bounds();
        cq.min.store(min, Ordering::Release);
        cq.max.store(max, Ordering::Release);
        cq.flushed.store(max, Ordering::Release);
        Ok(cq)
    }

    /// (first file base, one past the last written entry), from the files.
    fn scan_bounds(&self) -> (u64, u64) {
        let files = self.read_files();
        let min = files.first().map_or(0, |f| f.base);
        let Some(last) = files.last() else { return (0, 0) };
        let n = self.entries_per_file as usize;
        let written = (0..n)
            .rev()
            .find(|i| CqEntry::decode(last.file.slice(i * ENTRY_SIZE, ENTRY_SIZE)).is_some())
            .map_or(0, |i| i + 1);
        (min, last.base + written as u64)
    }

    fn read_files(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<CqFile>>> {
        self.files.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_files(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<CqFile>>> {
        self.files.write().unwrap_or_else(std::sync::PoisonError::into_inner)
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

    fn file_for(&self, offset: u64) -> Option<Arc<CqFile>> {
        let files = self.read_files();
        let first = files.first()?.base;
        let idx = usize::try_from(offset.checked_sub(first)? / self.entries_per_file).ok()?;
        files
            .get(idx)
            .filter(|f| f.base <= offset && offset < f.base + self.entries_per_file)
            .map(Arc::clone)
    }

    /// The entry at `offset`, if it is in `[min, max)`.
    pub fn get(&self, offset: u64) -> Option<CqEntry> {
        if offset < self.min_offset() || offset >= self.max_offset() {
            return None;
        }
        self.entry_unchecked(offset)
    }

    fn entry_unchecked(&self, offset: u64) -> Option<CqEntry> {
        let f = self.file_for(offset)?;
        let pos = (offset - f.base) as usize * ENTRY_SIZE;
        CqEntry::decode(f.file.slice(pos, ENTRY_SIZE))
    }

    /// Writes the entry for `offset` (dispatcher only). Writing the same entry again is
    /// harmless, which makes re-dispatch after a crash idempotent.
    pub(crate) fn put(&self, offset: u64, entry: CqEntry) -> Result<()> {
        let f = match self.file_for(offset) {
            Some(f) => f,
            None => self.create_file(offset - offset % self.entries_per_file)?,
        };
        let pos = (offset - f.base) as usize * ENTRY_SIZE;
        // SAFETY: the dispatcher is the only writer, and this entry is at or above `max`, which
        // readers do not read, or it is rewritten with identical bytes during re-dispatch.
        unsafe { f.file.write(pos, &entry.encode()) };
        if offset >= self.max_offset() {
            self.max.store(offset + 1, Ordering::Release);
        }
        Ok(())
    }

    fn create_file(&self, base: u64) -> Result<Arc<CqFile>> {
        std::fs::create_dir_all(&self.dir)
            .map_err(StorageError::io("create directory", &self.dir))?;
        let path = self.dir.join(offset_file_name(base));
        let len = self.entries_per_file as usize * ENTRY_SIZE;
        let file = match MappedFile::create(&path, len) {
            Ok(f) => f,
            // Left by an earlier life past a truncation: reuse it.
            Err(StorageError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                MappedFile::open(&path, len)?
            }
            Err(e) => return Err(e),
        };
        let f = Arc::new(CqFile { base, file });
        let mut files = self.write_files();
        files.push(Arc::clone(&f));
        files.sort_by_key(|f| f.base);
        if files.len() == 1 {
            self.min.store(base, Ordering::Release);
        }
        Ok(f)
    }

    /// Wakes the long-polling readers waiting for new entries.
    pub(crate) fn wake(&self) {
        self.notify.notify_waiters();
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

    /// Recovery: drops entries that point at or past `commitlog_end` (the log was cut there).
    pub(crate) fn truncate_beyond(&self, commitlog_end: u64) -> u64 {
        let mut max = self.max_offset();
        let min = self.min_offset();
        let mut dropped = 0;
        while max > min {
            let Some(e) = self.entry_unchecked(max - 1) else { break };
            if e.commitlog_offset + u64::from(e.size) <= commitlog_end {
                break;
            }
            if let Some(f) = self.file_for(max - 1) {
                // SAFETY: recovery runs before any reader exists.
                unsafe { f.file.write((max - 1 - f.base) as usize * ENTRY_SIZE, &[0; ENTRY_SIZE]) };
            }
            max -= 1;
            dropped += 1;
        }
        self.max.store(max, Ordering::Release);
        self.flushed.store(self.flushed.load(Ordering::Acquire).min(max), Ordering::Release);
        dropped
    }

    /// Makes the entries written since the last flush durable.
    pub(crate) fn flush(&self) -> Result<()> {
        let from = self.flushed.load(Ordering::Acquire);
        let to = self.max_offset();
        if to <= from {
            return Ok(());
        }
        let files: Vec<Arc<CqFile>> = self
            .read_files()
            .iter()
            .filter(|f| f.base + self.entries_per_file > from && f.base < to)
            .map(Arc::clone)
            .collect();
        for f in files {
            f.file.sync()?;
        }
        self.flushed.store(to, Ordering::Release);
        Ok(())
    }

    /// Retention: removes whole files whose entries all point below `commitlog_min`, never the
    /// last file, then moves `min` to the first entry at or above `commitlog_min`.
    pub(crate) fn delete_below(&self, commitlog_min: u64) -> Result<usize> {
        let removed: Vec<Arc<CqFile>> = {
            let mut files = self.write_files();
            let keep_last = files.len().saturating_sub(1);
            let n = files
                .iter()
                .take(keep_last)
                .take_while(|f| {
                    let last = (0..self.entries_per_file as usize)
                        .rev()
                        .find_map(|i| CqEntry::decode(f.file.slice(i * ENTRY_SIZE, ENTRY_SIZE)));
                    last.is_none_or(|e| e.commitlog_offset < commitlog_min)
                })
                .count();
            files.drain(..n).collect()
        };
        for f in &removed {
            std::fs::remove_file(f.file.path())
                .map_err(StorageError::io("delete", f.file.path()))?;
        }
        let mut min =
            self.read_files().first().map_or(self.max_offset(), |f| f.base).max(self.min_offset());
        let max = self.max_offset();
        while min < max
            && self.entry_unchecked(min).is_some_and(|e| e.commitlog_offset < commitlog_min)
        {
            min += 1;
        }
        self.min.store(min, Ordering::Release);
        Ok(removed.len())
    }
}
