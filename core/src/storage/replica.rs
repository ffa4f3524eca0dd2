//! What replication needs from the store: a master reads its CommitLog as raw chunks of whole
//! records, a slave appends them at the very same offsets (its dispatcher then builds
//! ConsumeQueues and indexes exactly as the master's did), and both keep the log's *epochs*,
//! so a slave whose tail diverged from its master's finds where their logs agree.
//!
//! An epoch is one run of a master: `(id, start offset)`, a new one each time a master opens
//! its store. A slave keeps its master's epochs for what it copied. Where a slave's last epoch
//! ends in the master's history, the two logs stop agreeing (RocketMQ 5's controller mode
//! compares epoch files the same way): everything up to there is the same bytes, written by the
//! same master run. A tail past it (bytes the master lost in a crash, then wrote again
//! differently) is cut offline, before the store opens ([`truncate_log`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::storage::checkpoint::Checkpoint;
use crate::storage::commitlog::Next;
use crate::storage::commitlog::record::{self, BLANK_MAGIC, MESSAGE_MAGIC};
use crate::storage::error::{Result, StorageError};
use crate::storage::mapped::list_offset_files;
use crate::storage::persist::{load_json, save_json};

/// One master run: its id (unique: ms at its start, above every earlier id) and the CommitLog
/// offset its writes began at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Epoch {
    /// Unique id, increasing.
    pub id: u64,
    /// First offset written in it.
    pub start: u64,
}

/// The epochs of a store's log, oldest first, in `config/epochs.json`.
#[derive(Debug)]
pub struct Epochs {
    path: PathBuf,
    list: Mutex<Vec<Epoch>>,
}

impl Epochs {
    pub(crate) fn open(path: PathBuf) -> Result<Epochs> {
        let list = load_json(&path)?.unwrap_or_default();
        Ok(Epochs { path, list: Mutex::new(list) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Epoch>> {
        self.list.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every epoch, oldest first.
    pub fn list(&self) -> Vec<Epoch> {
        self.lock().clone()
    }

    /// Starts a master run at `end` (saved before it returns): a new epoch, or the last one
    /// renamed if nothing was written in it.
    pub fn begin(&self, end: u64, now_ms: u64) -> Result<Epoch> {
        let mut list = self.lock();
        let id = list.last().map_or(now_ms, |e| now_ms.max(e.id + 1));
        let epoch = Epoch { id, start: end };
        if list.last().is_some_and(|e| e.start == end) {
            list.pop();
        }
        list.push(epoch);
        save_json(&self.path, &*list)?;
        Ok(epoch)
    }

    /// A slave: takes the master's epochs that begin at or below `end` (what it holds), and
    /// saves them if they changed.
    pub fn mirror(&self, master: &[Epoch], end: u64) -> Result<()> {
        let held: Vec<Epoch> = master.iter().copied().filter(|e| e.start <= end).collect();
        let mut list = self.lock();
        if *list != held && !held.is_empty() {
            *list = held;
            save_json(&self.path, &*list)?;
        }
        Ok(())
    }
}

/// Where a slave's log (`slave`, ending at `slave_end`) stops agreeing with its master's
/// (`master`, ending at `master_end`): the slave keeps `[0, answer)` and copies from there.
/// `None` when they share no epoch (the slave starts over).
pub fn agreed_end(
    master: &[Epoch],
    master_end: u64,
    slave: &[Epoch],
    slave_end: u64,
) -> Option<u64> {
    // The last epoch both know; where each history leaves it.
    let (i, e) = slave.iter().enumerate().rev().find(|(_, e)| master.contains(e))?;
    let slave_leaves = slave.get(i + 1).map_or(slave_end, |n| n.start);
    let m = master.iter().position(|m| m == e)?;
    let master_leaves = master.get(m + 1).map_or(master_end, |n| n.start);
    Some(slave_leaves.min(master_leaves).min(slave_end))
}

/// A chunk of a master's CommitLog for a slave: whole records, and the blank that ends a
/// segment when the chunk reaches it; never across a segment boundary.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Offset of the first byte.
    pub offset: u64,
    /// The bytes, as stored (zero-copy from the master's mapping).
    pub data: Bytes,
}

impl crate::storage::MessageStore {
    /// The log's epochs.
    pub fn epochs(&self) -> &Epochs {
        &self.shared().epochs
    }

    /// Master: up to about `max_bytes` of the CommitLog from `from` (a record start), as one
    /// chunk; `None` when `from` is the end. At least one record even if it is larger.
    pub fn replication_chunk(&self, from: u64, max_bytes: usize) -> Result<Option<Chunk>> {
        let log = &self.shared().log;
        if from < log.min_offset() {
            // Retention deleted what the slave needs next: it has to start over.
            return Err(StorageError::OffsetOutOfRange {
                offset: from,
                min: log.min_offset(),
                max: log.write_pos(),
            });
        }
        let mut end = from;
        loop {
            match log.next(end) {
                Next::Record(off, rec) if off == end => {
                    if end > from && (end - from) as usize + rec.len() > max_bytes {
                        break;
                    }
                    end += rec.len() as u64;
                }
                // The blank that ends the segment: included, and the chunk stops there.
                Next::Skip(next) if next > end && same_segment(log.segment_size(), end, next) => {
                    end = next;
                    break;
                }
                Next::End | Next::Skip(_) | Next::Record(..) => break,
            }
        }
        if end == from {
            return Ok(None);
        }
        let data = log.read_raw(from, (end - from) as usize)?;
        Ok(Some(Chunk { offset: from, data }))
    }

    /// Slave: appends a master's chunk at its offset (which must be this log's end; an empty
    /// log may start at a segment boundary), after checking every record's CRC and offset.
    /// Returns the new end once written (and, with sync flush, durable).
    pub async fn append_replicated(&self, chunk: Chunk) -> Result<u64> {
        check_chunk(&chunk, self.shared().log.segment_size())?;
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.inner
            .tx
            .send(crate::storage::writer::Request::Replicate(chunk, reply))
            .await
            .map_err(|_| StorageError::Closed)?;
        rx.await.map_err(|_| StorageError::Closed)?
    }
}

fn log_segment_base(segment_size: usize, offset: u64) -> u64 {
    offset - offset % segment_size as u64
}

/// Whether `end` is the end of the segment holding `offset`.
fn same_segment(segment_size: usize, offset: u64, end: u64) -> bool {
    log_segment_base(segment_size, offset) + segment_size as u64 == end
}

/// Checks that `chunk` is whole records stored at their own offsets, then at most a blank that
/// ends its segment exactly.
pub(crate) fn check_chunk(chunk: &Chunk, segment_size: usize) -> Result<()> {
    let bad = |pos: usize, reason: String| {
        StorageError::InvalidMessage(format!(
            "replicated chunk at offset {}: byte {pos}: {reason}",
            chunk.offset
        ))
    };
    let seg_end = log_segment_base(segment_size, chunk.offset) + segment_size as u64;
    if chunk.offset + chunk.data.len() as u64 > seg_end {
        return Err(bad(0, format!("crosses the segment boundary at {seg_end}")));
    }
    let buf = &chunk.data[..];
    let mut pos = 0;
    while pos < buf.len() {
        let rest = &buf[pos..];
        let (Some(len), Some(magic)) = (record::u32_at(rest, 0), record::u32_at(rest, 8)) else {
            return Err(bad(pos, "cut short".to_owned()));
        };
        let len = len as usize;
        match magic {
            MESSAGE_MAGIC => {
                let rec = rest
                    .get(..len)
                    .ok_or_else(|| bad(pos, format!("record of {len} bytes cut short")))?;
                record::verify(rec).map_err(|e| bad(pos, e))?;
                let at = chunk.offset + pos as u64;
                if record::commitlog_offset_of(rec) != Some(at) {
                    return Err(bad(
                        pos,
                        format!(
                            "record claims offset {:?}, sits at {at}",
                            record::commitlog_offset_of(rec)
                        ),
                    ));
                }
                pos += len;
            }
            BLANK_MAGIC if chunk.offset + buf.len() as u64 == seg_end => {
                // The blank fills the rest of the segment; its bytes past the header are zeros
                // or whatever the master's file held, never read.
                return Ok(());
            }
            other => return Err(bad(pos, format!("unexpected magic {other:#010x}"))),
        }
    }
    Ok(())
}

/// Cuts the CommitLog in `dir` (a closed store's directory) at `to`: the rest of its segment is
/// zeroed, later segments deleted, the checkpoint lowered, epochs past it dropped. The next
/// open rebuilds ConsumeQueues and the index to match. Returns the bytes dropped.
pub fn truncate_log(dir: &Path, segment_size: usize, to: u64) -> Result<u64> {
    let log_dir = dir.join("commitlog");
    let mut dropped = 0u64;
    for (base, path) in list_offset_files(&log_dir)? {
        if base + segment_size as u64 <= to {
            continue;
        }
        if base >= to && base != log_segment_base(segment_size, to) {
            dropped += std::fs::metadata(&path).map_or(0, |m| m.len());
            crate::storage::fs::remove_file(&path)?;
            continue;
        }
        // The segment holding `to`: zero from there on.
        let keep = (to - base) as usize;
        let file = crate::storage::mapped::MappedFile::open(&path, segment_size)?;
        let tail = file.slice(keep, segment_size - keep);
        dropped += tail.iter().filter(|b| **b != 0).count() as u64;
        let zeros = vec![0u8; segment_size - keep];
        file.write_at(keep, &zeros)?;
        file.sync()?;
    }
    crate::storage::fs::fsync_dir(&log_dir)?;
    let cp_path = dir.join("checkpoint");
    let cp = Checkpoint::load(&cp_path);
    Checkpoint {
        flushed: cp.flushed.min(to),
        dispatched: cp.dispatched.min(to),
        timestamp: cp.timestamp,
    }
    .save(&cp_path)?;
    let epochs = dir.join("config").join("epochs.json");
    if let Some(list) = load_json::<Vec<Epoch>>(&epochs)? {
        let kept: Vec<Epoch> = list.into_iter().filter(|e| e.start <= to).collect();
        save_json(&epochs, &kept)?;
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn e(id: u64, start: u64) -> Epoch {
        Epoch { id, start }
    }

    #[test]
    fn a_slave_in_step_keeps_everything() {
        let m = [e(1, 0), e(5, 100)];
        assert_eq!(agreed_end(&m, 300, &m, 250), Some(250));
        assert_eq!(agreed_end(&m, 300, &m[..1], 80), Some(80));
    }

    #[test]
    fn a_tail_the_master_lost_and_rewrote_is_cut() {
        // The master ran epoch 1 to 500, crashed losing 400..500, and restarted at 400
        // (epoch 7). The slave had copied epoch 1 up to 480.
        let master = [e(1, 0), e(7, 400)];
        let slave = [e(1, 0)];
        assert_eq!(agreed_end(&master, 900, &slave, 480), Some(400));
        // A slave that had copied less keeps what it has.
        assert_eq!(agreed_end(&master, 900, &slave, 350), Some(350));
    }

    #[test]
    fn a_slave_ahead_of_its_master_is_cut_to_the_master_end() {
        let m = [e(1, 0)];
        assert_eq!(agreed_end(&m, 100, &m, 180), Some(100));
    }

    #[test]
    fn no_shared_epoch_starts_over() {
        assert_eq!(agreed_end(&[e(9, 0)], 100, &[e(1, 0)], 50), None);
        assert_eq!(agreed_end(&[e(9, 0)], 100, &[], 0), None);
    }

    #[test]
    fn epochs_begin_and_mirror() {
        let dir = tempfile::tempdir().unwrap();
        let ep = Epochs::open(dir.path().join("epochs.json")).unwrap();
        let a = ep.begin(0, 1000).unwrap();
        // Nothing written: the run replaces its empty predecessor.
        let b = ep.begin(0, 999).unwrap();
        assert!(b.id > a.id);
        assert_eq!(ep.list(), vec![b]);
        let c = ep.begin(64, 2000).unwrap();
        assert_eq!(ep.list(), vec![b, c]);
        let reopened = Epochs::open(dir.path().join("epochs.json")).unwrap();
        assert_eq!(reopened.list(), vec![b, c]);
        reopened.mirror(&[b, c, e(3000, 128)], 100).unwrap();
        assert_eq!(reopened.list(), vec![b, c]);
    }
}
