//! The append thread: the single writer of the CommitLog tail.
//!
//! Callers encode a request's records into one buffer on their own threads (the CRC of the
//! bulk included) and send it over a bounded channel; this thread drains whatever is queued, assigns
//! CommitLog and queue offsets, seals each record in place (offsets, store time, header CRC),
//! writes each request's records with one `pwrite`, publishes the new end to readers and wakes
//! the dispatcher. With sync flush it then flushes once for the whole drained batch (group
//! commit) before answering anyone; with async flush it answers at once.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::storage::Shared;
use crate::storage::commitlog::record::{self, BLANK_LEN};
use crate::storage::commitlog::{CommitLog, Segment};
use crate::storage::config::FlushDiskType;
use crate::storage::error::{Result, StorageError};
use crate::storage::message::now_millis;

/// One record inside an [`EncodedBatch`] buffer.
pub(crate) struct EncodedRecord {
    pub(crate) len: usize,
    pub(crate) queue_id: u32,
    /// Index into [`EncodedBatch::topics`].
    pub(crate) topic: usize,
}

/// The records of one append request, encoded back to back in one buffer.
#[derive(Default)]
pub(crate) struct EncodedBatch {
    pub(crate) buf: Vec<u8>,
    pub(crate) records: Vec<EncodedRecord>,
    pub(crate) topics: Vec<String>,
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
    Append(EncodedBatch, Reply),
    /// A slave's copy of its master's bytes, at their offset (answered with the new end).
    Replicate(crate::storage::replica::Chunk, oneshot::Sender<Result<u64>>),
    /// Forget a deleted topic's next queue offsets (answered once done).
    Forget(String, oneshot::Sender<()>),
    Stop,
}

/// Most requests one drain takes, so one huge backlog cannot delay every answer.
const MAX_DRAIN: usize = 1024;

pub(crate) struct Writer {
    log: Arc<CommitLog>,
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Request>,
    flush: FlushDiskType,
    flush_dirty_bytes: u64,
    queue_offsets: HashMap<String, HashMap<u32, u64>>,
    active: Option<Arc<Segment>>,
    /// End of what this thread has written (published after each drain).
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
        let mut batch: Vec<(EncodedBatch, Reply)> = Vec::new();
        let mut stopping = false;
        while !stopping {
            match self.rx.blocking_recv() {
                Some(Request::Append(recs, reply)) => batch.push((recs, reply)),
                Some(Request::Forget(topic, done)) => {
                    self.queue_offsets.remove(&topic);
                    let _ = done.send(());
                    continue;
                }
                Some(Request::Replicate(chunk, reply)) => {
                    let _ = reply.send(self.replicate(&chunk));
                    continue;
                }
                Some(Request::Stop) | None => break,
            }
            while batch.len() < MAX_DRAIN {
                match self.rx.try_recv() {
                    Ok(Request::Append(recs, reply)) => batch.push((recs, reply)),
                    Ok(Request::Forget(topic, done)) => {
                        // Appends taken before it are written first.
                        self.write_batch(&mut batch);
                        self.queue_offsets.remove(&topic);
                        let _ = done.send(());
                    }
                    Ok(Request::Replicate(chunk, reply)) => {
                        self.write_batch(&mut batch);
                        let _ = reply.send(self.replicate(&chunk));
                    }
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

    fn write_batch(&mut self, batch: &mut Vec<(EncodedBatch, Reply)>) {
        if self.shared.refusal().is_some() {
            for (_, reply) in batch.drain(..) {
                let _ = reply.send(Err(self.shared.refusal().unwrap_or(StorageError::Closed)));
            }
            return;
        }
        let store_ts = now_millis();
        let mut results: Vec<Result<Vec<PutResult>>> = Vec::with_capacity(batch.len());
        for (req, _) in batch.iter_mut() {
            if let Some(refusal) = self.shared.refusal() {
                results.push(Err(refusal));
                continue;
            }
            let before = self.end;
            let result = self.append(req, store_ts);
            if let Err(e) = &result {
                // Failing here is I/O on the log itself: publish none of this request and stop
                // taking writes.
                self.end = before;
                self.shared.poison(&e.to_string());
            }
            results.push(result);
        }
        let end = self.end;
        self.log.publish(end);
        self.shared.wake_dispatcher();
        self.shared.appended.notify_waiters();
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

    /// Places one request's records at the tail, rotating to a new segment when one does not
    /// fit, and writes each run of records that lands in one segment with one `pwrite`.
    fn append(&mut self, req: &mut EncodedBatch, store_ts: i64) -> Result<Vec<PutResult>> {
        let seg_size = self.log.segment_size();
        let mut out = Vec::with_capacity(req.records.len());
        let mut seg = self.segment()?;
        // The run of sealed records not yet written: buffer range and file position.
        let (mut run_start, mut run_end, mut run_pos) = (0usize, 0usize, self.end - seg.base);
        for rec in &req.records {
            if rec.len + BLANK_LEN > seg_size {
                return Err(StorageError::MessageTooLarge {
                    size: rec.len,
                    limit: seg_size - BLANK_LEN,
                });
            }
            let pos = (self.end - seg.base) as usize;
            if pos + rec.len + BLANK_LEN > seg_size {
                let run = req.buf.get(run_start..run_end).unwrap_or_default();
                seg.file.write_at(run_pos as usize, run)?;
                seg.file.write_at(pos, &record::blank(seg_size - pos))?;
                self.end = seg.end();
                seg = self.log.create_segment(self.end)?;
                self.active = Some(Arc::clone(&seg));
                (run_start, run_pos) = (run_end, 0);
            }
            let topic = req.topics.get(rec.topic).map_or("", String::as_str);
            let queue_offset = self.next_queue_offset(topic, rec.queue_id);
            let bytes = req.buf.get_mut(run_end..run_end + rec.len).ok_or(StorageError::Closed)?;
            record::seal(bytes, queue_offset, self.end, store_ts);
            out.push(PutResult {
                commitlog_offset: self.end,
                size: rec.len as u32,
                queue_id: rec.queue_id,
                queue_offset,
                store_timestamp: store_ts,
            });
            self.end += rec.len as u64;
            run_end += rec.len;
        }
        let run = req.buf.get(run_start..run_end).unwrap_or_default();
        seg.file.write_at(run_pos as usize, run)?;
        Ok(out)
    }

    /// Writes a master's bytes (checked by the caller: whole records at their own offsets,
    /// within one segment) at the tail, publishes them and wakes the dispatcher; flushes them
    /// first under sync flush. An empty log may begin at the chunk's segment boundary (a slave
    /// of a master whose older segments retention deleted).
    fn replicate(&mut self, chunk: &crate::storage::replica::Chunk) -> Result<u64> {
        if let Some(refusal) = self.shared.refusal() {
            return Err(refusal);
        }
        let seg_size = self.log.segment_size() as u64;
        let empty = self.log.read_segments().is_empty();
        if chunk.offset != self.end {
            if !(empty && chunk.offset.is_multiple_of(seg_size)) {
                return Err(StorageError::InvalidMessage(format!(
                    "replicated bytes start at offset {}, but this log ends at {}",
                    chunk.offset, self.end
                )));
            }
            self.active = Some(self.log.create_segment(chunk.offset)?);
            self.end = chunk.offset;
        }
        let seg = self.segment()?;
        let pos = (self.end - seg.base) as usize;
        if pos + chunk.data.len() > seg_size as usize {
            return Err(StorageError::InvalidMessage(format!(
                "replicated bytes at {} cross the segment end {}",
                chunk.offset,
                seg.end()
            )));
        }
        if let Err(e) = seg.file.write_at(pos, &chunk.data) {
            self.shared.poison(&e.to_string());
            return Err(e);
        }
        self.end += chunk.data.len() as u64;
        let end = self.end;
        self.log.publish(end);
        self.shared.wake_dispatcher();
        self.shared.appended.notify_waiters();
        match self.flush {
            FlushDiskType::Sync => {
                if let Err(e) = self.log.flush_to(end) {
                    self.shared.poison(&e.to_string());
                    return Err(StorageError::Poisoned(format!("flush failed: {e}")));
                }
            }
            FlushDiskType::Async => {
                if end.saturating_sub(self.log.flushed_pos()) >= self.flush_dirty_bytes {
                    self.shared.wake_flusher();
                }
            }
        }
        Ok(end)
    }

    /// The segment the tail is in, creating it when the tail is at a segment boundary.
    fn segment(&mut self) -> Result<Arc<Segment>> {
        if let Some(s) = &self.active
            && self.end < s.end()
        {
            return Ok(Arc::clone(s));
        }
        let mut seg = self.log.active_segment()?;
        if self.end >= seg.end() {
            seg = self.log.create_segment(self.end)?;
        }
        self.active = Some(Arc::clone(&seg));
        Ok(seg)
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
