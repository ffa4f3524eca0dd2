//! The CommitLog: one append-only log of every message, in fixed-size mapped segment files
//! named by their 20-digit start offset. One writer (the store's append thread) owns the tail;
//! readers read published records by offset, zero-copy.

pub mod record;
mod recovery;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;

use crate::storage::error::{Result, StorageError};
use crate::storage::mapped::{MappedFile, offset_file_name};
use crate::storage::message::StoredMessage;
use record::BLANK_LEN;
pub(crate) use recovery::Recovered;

/// One segment file of the CommitLog.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base: u64,
    pub(crate) file: MappedFile,
}

impl Segment {
    pub(crate) fn end(&self) -> u64 {
        self.base + self.file.len() as u64
    }
}

/// A read-only view of part of a segment, kept alive by the `Arc`: backs zero-copy `Bytes`.
struct SegmentView {
    seg: Arc<Segment>,
    pos: usize,
    len: usize,
}

impl AsRef<[u8]> for SegmentView {
    fn as_ref(&self) -> &[u8] {
        self.seg.file.slice(self.pos, self.len)
    }
}

/// The shared side of the CommitLog: segment list and the published positions.
#[derive(Debug)]
pub(crate) struct CommitLog {
    dir: PathBuf,
    segment_size: usize,
    segments: RwLock<Vec<Arc<Segment>>>,
    /// End of the published (fully written) data; readers never look past it.
    write_pos: AtomicU64,
    /// End of the data known durable.
    flushed_pos: AtomicU64,
    /// Serialises flushes (the writer in sync mode, the flusher in async mode, close).
    flush_lock: Mutex<()>,
}

/// What follows a position in the log, for sequential readers (dispatch, recovery checks).
pub(crate) enum Next {
    /// A record and its offset.
    Record(u64, Bytes),
    /// Nothing here (a blank or a segment end): continue at this offset.
    Skip(u64),
    /// The published end is reached.
    End,
}

impl CommitLog {
    /// Opens the log in `dir`, validating and truncating the tail (see `recovery`).
    pub(crate) fn open(
        dir: &Path,
        segment_size: usize,
        validate_from: u64,
    ) -> Result<(Arc<Self>, Recovered)> {
        crate::storage::fs::create_dir_all_durable(dir)?;
        let (segments, recovered) = recovery::recover(dir, segment_size, validate_from)?;
        let log = CommitLog {
            dir: dir.to_owned(),
            segment_size,
            segments: RwLock::new(segments),
            write_pos: AtomicU64::new(recovered.end),
            flushed_pos: AtomicU64::new(recovered.end),
            flush_lock: Mutex::new(()),
        };
        Ok((Arc::new(log), recovered))
    }

    pub(crate) fn segment_size(&self) -> usize {
        self.segment_size
    }

    /// End of published data: the next record goes here.
    pub(crate) fn write_pos(&self) -> u64 {
        self.write_pos.load(Ordering::Acquire)
    }

    pub(crate) fn flushed_pos(&self) -> u64 {
        self.flushed_pos.load(Ordering::Acquire)
    }

    /// Smallest offset still held (the first segment's base).
    pub(crate) fn min_offset(&self) -> u64 {
        self.read_segments().first().map_or_else(|| self.write_pos(), |s| s.base)
    }

    pub(crate) fn read_segments(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Segment>>> {
        self.segments.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_segments(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<Segment>>> {
        self.segments.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn segment_for(&self, offset: u64) -> Option<Arc<Segment>> {
        let segs = self.read_segments();
        let idx = segs.partition_point(|s| s.base <= offset).checked_sub(1)?;
        segs.get(idx).filter(|s| offset < s.end()).map(Arc::clone)
    }

    /// The last segment, creating the first one if the log is empty (writer only).
    pub(crate) fn active_segment(&self) -> Result<Arc<Segment>> {
        if let Some(s) = self.read_segments().last() {
            return Ok(Arc::clone(s));
        }
        self.create_segment(self.write_pos())
    }

    /// Creates the segment starting at `base` and appends it to the list (writer only).
    pub(crate) fn create_segment(&self, base: u64) -> Result<Arc<Segment>> {
        let path = self.dir.join(offset_file_name(base));
        let file = MappedFile::create(&path, self.segment_size)?;
        file.advise_sequential();
        let seg = Arc::new(Segment { base, file });
        self.write_segments().push(Arc::clone(&seg));
        tracing::debug!(base, path = %path.display(), "created commitlog segment");
        Ok(seg)
    }

    /// Publishes data up to `pos` to readers (writer only).
    pub(crate) fn publish(&self, pos: u64) {
        self.write_pos.store(pos, Ordering::Release);
    }

    /// Reads the record at `offset` of `size` bytes and checks it: a record handed out is
    /// always whole, CRC-valid and really stored at that offset.
    pub(crate) fn read(&self, offset: u64, size: u32) -> Result<StoredMessage> {
        let bytes = self.read_raw(offset, size as usize)?;
        let corrupt = |reason: String| StorageError::Corrupted {
            segment: self.dir.join(offset_file_name(offset - offset % self.segment_size as u64)),
            pos: offset % self.segment_size as u64,
            reason,
        };
        record::verify(&bytes).map_err(corrupt)?;
        let msg = record::decode(&bytes).map_err(corrupt)?;
        if msg.commitlog_offset != offset {
            return Err(corrupt(format!("record claims offset {}", msg.commitlog_offset)));
        }
        Ok(msg)
    }

    /// The raw bytes `[offset, offset + len)`, zero-copy, if published and inside one segment.
    pub(crate) fn read_raw(&self, offset: u64, len: usize) -> Result<Bytes> {
        let max = self.write_pos();
        let out_of_range =
            || StorageError::OffsetOutOfRange { offset, min: self.min_offset(), max };
        if offset.checked_add(len as u64).is_none_or(|end| end > max) {
            return Err(out_of_range());
        }
        let seg = self.segment_for(offset).ok_or_else(out_of_range)?;
        let pos = (offset - seg.base) as usize;
        if pos + len > seg.file.len() {
            return Err(out_of_range());
        }
        Ok(Bytes::from_owner(SegmentView { seg, pos, len }))
    }

    /// Whether the record at `offset`, `size` bytes long, is message `queue_offset` of
    /// `(topic, queue_id)`: how a ConsumeQueue entry is checked against the log.
    pub(crate) fn holds(
        &self,
        offset: u64,
        size: u32,
        topic: &str,
        queue_id: u32,
        queue_offset: u64,
    ) -> bool {
        let Ok(bytes) = self.read_raw(offset, size as usize) else { return false };
        record::u32_at(&bytes, 0) == Some(size)
            && record::dispatch_view(&bytes).is_some_and(|v| {
                v.topic == topic && v.queue_id == queue_id && v.queue_offset == queue_offset
            })
    }

    /// The store timestamp of the record at `offset` (header read only).
    pub(crate) fn store_timestamp_at(&self, offset: u64) -> Option<i64> {
        let head = self.read_raw(offset, record::HEADER_LEN).ok()?;
        record::store_timestamp(&head)
    }

    /// What follows `offset`, reading only published data.
    pub(crate) fn next(&self, offset: u64) -> Next {
        let end = self.write_pos();
        if offset >= end {
            return Next::End;
        }
        let Some(seg) = self.segment_for(offset) else {
            // Below the minimum (deleted) or a gap: continue at the next segment start.
            let next = self.read_segments().iter().map(|s| s.base).find(|b| *b > offset);
            return next.map_or(Next::End, Next::Skip);
        };
        let pos = (offset - seg.base) as usize;
        let avail = (end.min(seg.end()) - offset) as usize;
        let head = seg.file.slice(pos, avail.min(BLANK_LEN));
        let len = record::u32_at(head, 0).unwrap_or(0) as usize;
        let magic = record::u32_at(head, 8).unwrap_or(0);
        if magic == record::BLANK_MAGIC || len == 0 || len > avail {
            return Next::Skip(seg.end());
        }
        Next::Record(offset, Bytes::from_owner(SegmentView { seg, pos, len }))
    }

    /// Makes everything up to `target` durable. The caller poisons the store on error.
    pub(crate) fn flush_to(&self, target: u64) -> Result<u64> {
        let _guard = self.flush_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let from = self.flushed_pos();
        if target <= from {
            return Ok(from);
        }
        let segs: Vec<Arc<Segment>> = self
            .read_segments()
            .iter()
            .filter(|s| s.end() > from && s.base < target)
            .cloned()
            .collect();
        for seg in segs {
            seg.file.sync()?;
        }
        self.flushed_pos.store(target, Ordering::Release);
        Ok(target)
    }

    /// Removes up to `max` of the oldest segments that `pick` selects, never the active one.
    /// Returns the segments removed, oldest first.
    pub(crate) fn delete_oldest(
        &self,
        max: usize,
        mut pick: impl FnMut(&Segment) -> bool,
    ) -> Result<Vec<Arc<Segment>>> {
        let removed: Vec<Arc<Segment>> = {
            let mut segs = self.write_segments();
            let deletable = segs.len().saturating_sub(1);
            let n = segs.iter().take(deletable.min(max)).take_while(|s| pick(s)).count();
            segs.drain(..n).collect()
        };
        for seg in &removed {
            crate::storage::fs::remove_file(seg.file.path())?;
        }
        if !removed.is_empty() {
            crate::storage::fs::fsync_dir(&self.dir)?;
        }
        Ok(removed)
    }
}
