//! Dispatch ("reput"): reads the CommitLog from the last dispatched offset and appends the
//! ConsumeQueue and index entries for each record, then wakes the long-polling readers of every
//! queue that grew. Runs on its own thread, woken by the append thread; recovery calls the same
//! code to rebuild what the checkpoint does not cover.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::storage::commitlog::{Next, record};
use crate::storage::consumequeue::{ConsumeQueue, CqEntry};
use crate::storage::error::Result;
use crate::storage::index;
use crate::storage::message::{KEY_SEPARATOR, tag_hash};
use crate::storage::{Shared, lock};

/// Dispatches every record from `shared.dispatched` up to the published end.
pub(crate) fn dispatch_available(shared: &Shared) -> Result<u64> {
    let mut touched = std::mem::take(&mut *lock(&shared.unpublished));
    let result = dispatch_from(shared, &mut touched);
    // Left only by a failure: publish those queues at the next attempt.
    lock(&shared.unpublished).append(&mut touched);
    result
}

fn dispatch_from(shared: &Shared, touched: &mut Vec<Arc<ConsumeQueue>>) -> Result<u64> {
    let mut pos = shared.dispatched.load(Ordering::Acquire);
    let mut count = 0u64;
    let mut last: Option<Arc<ConsumeQueue>> = None;
    loop {
        match shared.log.next(pos) {
            Next::Record(offset, bytes) => {
                let next = offset + bytes.len() as u64;
                match record::dispatch_view(&bytes) {
                    Some(view) => {
                        let cq = match &last {
                            Some(q) if q.topic() == view.topic && q.queue_id() == view.queue_id => {
                                Arc::clone(q)
                            }
                            _ => shared.queue(view.topic, view.queue_id)?,
                        };
                        let entry = CqEntry {
                            commitlog_offset: offset,
                            size: bytes.len() as u32,
                            tag_hash: view.tag.map_or(0, tag_hash),
                        };
                        if shared.put_entry(&cq, view.queue_offset, entry)? {
                            touched.push(Arc::clone(&cq));
                        }
                        last = Some(cq);
                        if view.keys.is_some() || view.message_id.is_some() {
                            let mut keys: Vec<String> = view
                                .keys
                                .unwrap_or_default()
                                .split(KEY_SEPARATOR)
                                .filter(|k| !k.is_empty())
                                .map(|k| index::key_of(view.topic, k))
                                .collect();
                            if let Some(id) = view.message_id {
                                keys.push(index::id_key(id));
                            }
                            shared.index.add(&keys, offset, view.store_timestamp)?;
                        }
                    }
                    None => {
                        // Only our own writer or recovery-validated data is here, so this is a
                        // bug or memory corruption: skip the record rather than stall forever.
                        tracing::error!(offset, "undecodable record skipped by dispatch");
                    }
                }
                pos = next;
                count += 1;
                if count.is_multiple_of(4096) {
                    publish(shared, touched)?;
                    shared.dispatched.store(pos, Ordering::Release);
                }
            }
            Next::Skip(next) => pos = next,
            Next::End => break,
        }
    }
    publish(shared, touched)?;
    shared.dispatched.store(pos, Ordering::Release);
    Ok(count)
}

/// Writes the entries each touched queue took, makes them readable and wakes its readers.
/// A queue that fails stays touched, so the next attempt writes it again.
fn publish(shared: &Shared, touched: &mut Vec<Arc<ConsumeQueue>>) -> Result<()> {
    while let Some(cq) = touched.last() {
        shared.publish_queue(cq)?;
        touched.pop();
    }
    Ok(())
}

/// The dispatch thread: dispatch whatever is published, sleep until woken (or 100 ms). A
/// failure (a full disk, say) is retried with backoff, and never keeps the store from
/// stopping: what is not dispatched is rebuilt from the CommitLog at the next open.
pub(crate) fn run(shared: &Arc<Shared>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let end = shared.log.write_pos();
        if shared.dispatched.load(Ordering::Acquire) < end {
            match dispatch_available(shared) {
                Ok(_) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::error!(error = %e, retry_in = ?backoff, "dispatch failed; retrying");
                    if shared.stop_dispatch.load(Ordering::Acquire) {
                        break;
                    }
                    std::thread::park_timeout(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
            continue;
        }
        if shared.stop_dispatch.load(Ordering::Acquire) {
            break;
        }
        std::thread::park_timeout(Duration::from_millis(100));
    }
    tracing::debug!("dispatch thread stopped");
}
