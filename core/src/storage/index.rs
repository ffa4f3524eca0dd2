//! The index: finds CommitLog offsets by `(topic, key)` and by the client's message id, within
//! a time range. Hash-slot files like RocketMQ's IndexFile: a header, `slots` u32 heads of
//! chains, then 20-byte entries `(key hash u32, commitlog offset u64, ms since the file's begin
//! u32, previous entry u32)`. Files are named by the 20-digit CommitLog offset of their first
//! entry and rotate when full. Hash collisions are resolved by the caller, which reads the
//! message back and compares. Only the dispatcher writes; queries take the same short lock.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::storage::commitlog::record::{u32_at, u64_at};
use crate::storage::error::{Result, StorageError};
use crate::storage::fs::{self, DataFile, fsync_dir, remove_file};
use crate::storage::mapped::{MappedFile, list_offset_files, offset_file_name};

const MAGIC: u32 = 0x4F52_4931; // "ORI1"
const HEADER_LEN: usize = 48;
const ENTRY_LEN: usize = 20;

/// Index key of a message key within a topic.
pub(crate) fn key_of(topic: &str, key: &str) -> String {
    format!("K{topic}#{key}")
}

/// Index key of a client message id (unique across topics).
pub(crate) fn id_key(message_id: &str) -> String {
    format!("I#{message_id}")
}

#[derive(Debug, Clone, Copy, Default)]
struct Header {
    begin_ts: i64,
    end_ts: i64,
    begin_phy: u64,
    end_phy: u64,
    entries: u32,
}

#[derive(Debug)]
struct IndexFile {
    /// CommitLog offset of the first entry (the file's name).
    base: u64,
    file: MappedFile,
    header: Header,
    dirty: bool,
}

#[derive(Debug)]
pub(crate) struct Index {
    dir: PathBuf,
    slots: u32,
    max_entries: u32,
    files: Mutex<Vec<IndexFile>>,
}

impl Index {
    pub(crate) fn open(dir: &Path, slots: u32, max_entries: u32) -> Result<Self> {
        fs::create_dir_all_durable(dir)?;
        let len = file_len(slots, max_entries);
        let mut files = Vec::new();
        for (base, path) in list_offset_files(dir)? {
            let file = MappedFile::open(&path, len)?;
            let h = file.slice(0, HEADER_LEN);
            let valid = u32_at(h, 44) == Some(MAGIC)
                && u32_at(h, 32) == Some(slots)
                && u32_at(h, 40) == Some(max_entries);
            if !valid {
                tracing::warn!(path = %path.display(), "index file has another layout or is corrupt: removed; lookups by key miss what it held");
                drop(file);
                remove_file(&path)?;
                continue;
            }
            let header = Header {
                begin_ts: u64_at(h, 0).unwrap_or(0) as i64,
                end_ts: u64_at(h, 8).unwrap_or(0) as i64,
                begin_phy: u64_at(h, 16).unwrap_or(0),
                end_phy: u64_at(h, 24).unwrap_or(0),
                entries: u32_at(h, 36).unwrap_or(0).min(max_entries),
            };
            files.push(IndexFile { base, file, header, dirty: false });
        }
        // Only the last file is written: the others keep their mapping, not a descriptor.
        let sealed = files.len().saturating_sub(1);
        for f in files.iter_mut().take(sealed) {
            f.file.release_descriptor()?;
        }
        Ok(Index { dir: dir.to_owned(), slots, max_entries, files: Mutex::new(files) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<IndexFile>> {
        self.files.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds `keys` of the message at `phy` stored at `ts`. A message already indexed (at or
    /// below the last indexed offset) is skipped, so re-dispatch is idempotent.
    pub(crate) fn add(&self, keys: &[String], phy: u64, ts: i64) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut files = self.lock();
        if files.last().is_some_and(|f| f.header.entries > 0 && phy <= f.header.end_phy) {
            return Ok(());
        }
        let need_new = files.last().is_none_or(|f| {
            f.header.entries as usize + keys.len() > self.max_entries as usize
                || ts.saturating_sub(f.header.begin_ts) > i64::from(u32::MAX)
        });
        if need_new {
            let path = self.dir.join(offset_file_name(phy));
            let file = match MappedFile::create(&path, file_len(self.slots, self.max_entries)) {
                Ok(f) => f,
                Err(StorageError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists =>
                {
                    // A stale file from before a truncation: start it over.
                    remove_file(&path)?;
                    MappedFile::create(&path, file_len(self.slots, self.max_entries))?
                }
                Err(e) => return Err(e),
            };
            let header =
                Header { begin_ts: ts, end_ts: ts, begin_phy: phy, end_phy: phy, entries: 0 };
            if let Some(prev) = files.last_mut() {
                // Full: synced and sealed.
                prev.file.release_descriptor()?;
                prev.dirty = false;
            }
            files.push(IndexFile { base: phy, file, header, dirty: true });
        }
        let Some(f) = files.last_mut() else { return Ok(()) };
        for key in keys {
            let hash = crc32c::crc32c(key.as_bytes());
            let slot_pos = HEADER_LEN + (hash % self.slots) as usize * 4;
            let prev = u32_at(f.file.slice(slot_pos, 4), 0).unwrap_or(0);
            let idx = f.header.entries;
            let mut e = [0u8; ENTRY_LEN];
            e[..4].copy_from_slice(&hash.to_le_bytes());
            e[4..12].copy_from_slice(&phy.to_le_bytes());
            e[12..16].copy_from_slice(&(ts.saturating_sub(f.header.begin_ts) as u32).to_le_bytes());
            e[16..20].copy_from_slice(&prev.to_le_bytes());
            let entry_pos = entries_start(self.slots) + idx as usize * ENTRY_LEN;
            // SAFETY: the index is written only under its lock, and readers take the same lock.
            unsafe {
                f.file.write(entry_pos, &e);
                f.file.write(slot_pos, &(idx + 1).to_le_bytes());
            }
            f.header.entries += 1;
        }
        f.header.end_ts = f.header.end_ts.max(ts);
        f.header.end_phy = phy;
        write_header(f, self.slots, self.max_entries);
        f.dirty = true;
        Ok(())
    }

    /// CommitLog offsets indexed under `key` with a store time in `[begin, end]`, newest
    /// first, at most `max`. May include hash collisions: the caller checks each message.
    pub(crate) fn lookup(&self, key: &str, begin: i64, end: i64, max: usize) -> Vec<u64> {
        let hash = crc32c::crc32c(key.as_bytes());
        let files = self.lock();
        let mut out = Vec::new();
        for f in files.iter().rev() {
            if f.header.entries == 0 || f.header.end_ts < begin || f.header.begin_ts > end {
                continue;
            }
            let slot_pos = HEADER_LEN + (hash % self.slots) as usize * 4;
            let mut next = u32_at(f.file.slice(slot_pos, 4), 0).unwrap_or(0);
            // Each step must go strictly down, so a corrupt chain cannot loop.
            let mut bound = f.header.entries + 1;
            while next != 0 && next < bound && out.len() < max {
                let e = f
                    .file
                    .slice(entries_start(self.slots) + (next - 1) as usize * ENTRY_LEN, ENTRY_LEN);
                let (Some(h), Some(phy), Some(dt), Some(prev)) =
                    (u32_at(e, 0), u64_at(e, 4), u32_at(e, 12), u32_at(e, 16))
                else {
                    break;
                };
                let ts = f.header.begin_ts.saturating_add(i64::from(dt));
                if h == hash && ts >= begin && ts <= end && !out.contains(&phy) {
                    out.push(phy);
                }
                bound = next;
                next = prev;
            }
            if out.len() >= max {
                break;
            }
        }
        out
    }

    /// The CommitLog offset after which messages are not yet indexed durably is tracked by the
    /// store's checkpoint; this makes what was added durable.
    ///
    /// The `fdatasync`s run without the index lock, through second descriptors, so dispatch
    /// (which adds keys under it) and lookups do not wait for the disk. A file written again
    /// meanwhile is dirty again, for the next flush.
    pub(crate) fn flush(&self) -> Result<()> {
        let pending: Vec<(u64, DataFile)> = {
            let mut files = self.lock();
            let mut pending = Vec::new();
            for f in files.iter_mut().filter(|f| f.dirty) {
                if let Some(handle) = f.file.sync_handle()? {
                    pending.push((f.base, handle));
                }
                f.dirty = false;
            }
            pending
        };
        for (i, (_, handle)) in pending.iter().enumerate() {
            if let Err(e) = handle.sync_data() {
                // Not durable: dirty again, from this file on.
                let mut files = self.lock();
                for (base, _) in &pending[i..] {
                    if let Some(f) = files.iter_mut().find(|f| f.base == *base) {
                        f.dirty = true;
                    }
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Recovery after a crash: removes the files that may have been written since the
    /// checkpoint (which made everything indexed below `dispatched` durable) and returns where
    /// re-dispatch must start to rebuild them (`None` if there are no files).
    ///
    /// Their unsynced pages may have been written back in any order: a slot head that reached
    /// the disk without the entry it points at cuts the chain, losing durable entries behind
    /// it, and a header may count entries that were never written. Such a file cannot be
    /// repaired in place, so it is rebuilt from the CommitLog (Apache RocketMQ likewise
    /// destroys index files newer than its checkpoint after an abnormal exit). That is the file
    /// holding `dispatched` (the last one starting at or below it) and every later one; earlier
    /// files were complete, and synced, before the checkpoint.
    pub(crate) fn discard_unsynced(&self, dispatched: u64) -> Result<Option<u64>> {
        let mut files = self.lock();
        let first = files.partition_point(|f| f.base <= dispatched).saturating_sub(1);
        let Some(from) = files.get(first).map(|f| f.base) else { return Ok(None) };
        for f in files.drain(first..) {
            tracing::info!(path = %f.file.path().display(), "index file written since the checkpoint: rebuilding it");
            remove_file(f.file.path())?;
        }
        fsync_dir(&self.dir)?;
        if let Some(f) = files.last_mut() {
            // The last file again: it may be written (a file rotated early by time).
            f.file.reopen_descriptor()?;
        }
        Ok(Some(from))
    }

    /// Recovery: the CommitLog was cut at `end`; forget index files that start at or past it
    /// and let offsets from `end` on be indexed again. Entries left pointing past `end` are
    /// harmless: lookups read each message back and compare.
    pub(crate) fn truncate_beyond(&self, end: u64) -> Result<()> {
        let mut files = self.lock();
        while files.last().is_some_and(|f| f.header.begin_phy >= end && f.header.entries > 0) {
            if let Some(f) = files.pop() {
                remove_file(f.file.path())?;
            }
        }
        if let Some(f) = files.last_mut() {
            // The last file is written again from here on.
            f.file.reopen_descriptor()?;
        }
        if let Some(f) = files.last_mut()
            && f.header.end_phy >= end
        {
            f.header.end_phy = end.saturating_sub(1);
            write_header(f, self.slots, self.max_entries);
            f.dirty = true;
        }
        Ok(())
    }

    /// Retention: removes files whose entries all point below `commitlog_min`, never the last.
    pub(crate) fn delete_below(&self, commitlog_min: u64) -> Result<usize> {
        let mut files = self.lock();
        let n = files
            .iter()
            .take(files.len().saturating_sub(1))
            .take_while(|f| f.header.end_phy < commitlog_min)
            .count();
        for f in files.drain(..n) {
            remove_file(f.file.path())?;
        }
        if n > 0 {
            fsync_dir(&self.dir)?;
        }
        Ok(n)
    }
}

fn entries_start(slots: u32) -> usize {
    HEADER_LEN + slots as usize * 4
}

fn file_len(slots: u32, max_entries: u32) -> usize {
    entries_start(slots) + max_entries as usize * ENTRY_LEN
}

fn write_header(f: &IndexFile, slots: u32, max_entries: u32) {
    let h = f.header;
    let mut b = [0u8; HEADER_LEN];
    b[..8].copy_from_slice(&h.begin_ts.to_le_bytes());
    b[8..16].copy_from_slice(&h.end_ts.to_le_bytes());
    b[16..24].copy_from_slice(&h.begin_phy.to_le_bytes());
    b[24..32].copy_from_slice(&h.end_phy.to_le_bytes());
    b[32..36].copy_from_slice(&slots.to_le_bytes());
    b[36..40].copy_from_slice(&h.entries.to_le_bytes());
    b[40..44].copy_from_slice(&max_entries.to_le_bytes());
    b[44..48].copy_from_slice(&MAGIC.to_le_bytes());
    // SAFETY: written under the index lock, as every access is.
    unsafe { f.file.write(0, &b) };
}
