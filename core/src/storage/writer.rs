//! The append thread: the single writer of the CommitLog tail.
//!
//! Callers encode their records on their own threads and send them over a bounded channel; this
//! thread drains whatever is queued, assigns CommitLog and queue offsets, seals each record
//! (offsets, store time, CRC), copies it into the mapped segment, publishes the new end to
//! readers and wakes the dispatcher. With sync flush it then flushes once for the whole drained
//! batch (group commit) before answering anyone; with async flush it answers at once.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::storage::Shared;
use crate::storage::commitlog::record::{self, BLANK_LEN};
use crate::storage::commitlog::{CommitLog, Segment};
use crate::storage::config::FlushDiskType;
use crate::storage::error::{Result, StorageError};
use crate::storage::message::now_millis;

/// A record encoded by the caller, waiting for its place.
pub(crate) struct Encoded {
    pub(crate) topic: String,
    pub(crate) queue_id: u32,
    pub(crate) bytes: Vec<u8>,
}

/// Where a message was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutResult {
    /// Offset of the record in the CommitLog.
    pub commitlog_offset: u64,
    /// Size of the record, bytes.
    pub size: u32,
    /// Queue id.
    pub queue_id: u32,
    /// Offset within the queue.
    pub queue_offset: u64,
    /// Store time, ms since the epoch.
    pub store_timestamp: i64,
}

/// Where the append thread answers one request.
pub(crate) type Reply = oneshot::Sender<Result<Vec<PutResult>>>;

pub(crate) enum Request {
    Append(Vec<Encoded>, Reply),
    Stop,
}

/// Most requests one drain takes, so one huge backlog cannot delay every answer.
const MAX_DRAIN: usize = 1024;

pub(crate) struct Writer {
    pub(crate) log: Arc<CommitLog>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) rx: mpsc::Receiver<Request>,
    pub(crate) flush: FlushDiskType,
    pub(crate) flush_dirty_bytes: u64,
    queue_offsets: HashMap<String, HashMap<u32, u64>>,
    active: Option<Arc<Segment>>,
    /// End of what this thread has written (published after each batch).
    end: u64,
}

impl Writer {
    pub(crate) fn new(
        log: Arc<CommitLog>,
        shared: Arc<Shared>,
        rx: mpsc::Receiver<Request>,
        flush: FlushDiskType,
        flush_dirty_bytes: u64,
    ) -> Self {
        let end = log.write_pos();
        Writer {
            log,
            shared,
            rx,
            flush,
            flush_dirty_bytes,
            queue_offsets: HashMap::new(),
            active: None,
            end,
        }
    }

    pub(crate) fn run(mut self) {
        let mut batch: Vec<(Vec<Encoded>, Reply)> = Vec::new();
        let mut stopping = false;
        while !stopping {
            match self.rx.blocking_recv() {
                Some(Request::Append(recs, reply)) => batch.push((recs, reply)),
                Some(Request::Stop) | None => break,
            }
            while batch.len() < MAX_DRAIN {
                match self.rx.try_recv() {
                    Ok(Request::Append(recs, reply)) => batch.push((recs, reply)),
                    Ok(Request::Stop) => {
                        stopping = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.write_batch(&mut batch);
        }
        tracing::debug!("append thread stopped");
    }

    fn write_batch(&mut self, batch: &mut Vec<(Vec<Encoded>, Reply)>) {
        let mut results: Vec<Result<Vec<PutResult>>> = Vec::with_capacity(batch.len());
        if self.shared.refusal().is_some() {
            for (_, reply) in batch.drain(..) {
                let _ = reply.send(Err(self.shared.refusal().unwrap_or(StorageError::Closed)));
            }
            return;
        }
        let store_ts = now_millis();
        for (recs, _) in batch.iter_mut() {
            let mut out = Vec::with_capacity(recs.len());
            let mut failed = None;
            for rec in recs.iter_mut() {
                match self.append(rec, store_ts) {
                    Ok(r) => out.push(r),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            results.push(match failed {
                None => Ok(out),
                Some(e) => {
                    // An append failing here is I/O on the log itself: stop taking writes.
                    self.shared.poison(&e.to_string());
                    Err(e)
                }
            });
        }
        let end = self.log_end();
        self.log.publish(end);
        self.shared.wake_dispatcher();
        match self.flush {
            FlushDiskType::Sync => {
                if let Err(e) = self.log.flush_to(end) {
                    let msg = e.to_string();
                    self.shared.poison(&msg);
                    for r in &mut results {
                        if r.is_ok() {
                            *r = Err(StorageError::Poisoned(format!("flush failed: {msg}")));
                        }
                    }
                }
            }
            FlushDiskType::Async => {
                if end.saturating_sub(self.log.flushed_pos()) >= self.flush_dirty_bytes {
                    self.shared.wake_flusher();
                }
            }
        }
        for ((_, reply), result) in batch.drain(..).zip(results) {
            let _ = reply.send(result);
        }
    }

    fn log_end(&self) -> u64 {
        self.end
    }

    /// Places one record at the tail, rotating to a new segment when it does not fit.
    fn append(&mut self, rec: &mut Encoded, store_ts: i64) -> Result<PutResult> {
        let len = rec.bytes.len();
        let seg_size = self.log.segment_size();
        if len + BLANK_LEN > seg_size {
            return Err(StorageError::MessageTooLarge { size: len, limit: seg_size - BLANK_LEN });
        }
        let mut end = self.log_end();
        let mut seg = match &self.active {
            Some(s) if end < s.end() => Arc::clone(s),
            _ => self.log.active_segment()?,
        };
        if end >= seg.end() {
            seg = self.log.create_segment(end)?;
        }
        let mut pos = (end - seg.base) as usize;
        if pos + len + BLANK_LEN > seg_size {
            let filler = record::blank(seg_size - pos);
            // SAFETY: this thread is the only writer and `pos` is above the published end.
            unsafe { seg.file.write(pos, &filler) };
            end = seg.end();
            seg = self.log.create_segment(end)?;
            pos = 0;
        }
        let queue_offset = self.next_queue_offset(&rec.topic, rec.queue_id);
        record::seal(&mut rec.bytes, queue_offset, end, store_ts);
        // SAFETY: as above.
        unsafe { seg.file.write(pos, &rec.bytes) };
        self.active = Some(seg);
        self.end = end + len as u64;
        Ok(PutResult {
            commitlog_offset: end,
            size: len as u32,
            queue_id: rec.queue_id,
            queue_offset,
            store_timestamp: store_ts,
        })
    }

    fn next_queue_offset(&mut self, topic: &str, queue_id: u32) -> u64 {
        let shared = &self.shared;
        let queues = match self.queue_offsets.get_mut(topic) {
            Some(q) => q,
            None => self.queue_offsets.entry(topic.to_owned()).or_default(),
        };
        let next = queues
            .entry(queue_id)
            .or_insert_with(|| shared.queue(topic, queue_id).map_or(0, |q| q.max_offset()));
        let assigned = *next;
        *next += 1;
        assigned
    }
}
