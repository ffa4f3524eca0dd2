//! The store's background threads besides append and dispatch: the flusher (async CommitLog
//! flush, ConsumeQueue/index flush, checkpoint, metadata saves) and retention (disk-use checks
//! and deletion of expired segments in batches).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::storage::checkpoint::Checkpoint;
use crate::storage::config::FlushDiskType;
use crate::storage::consumequeue::NewNames;
use crate::storage::error::{Result, StorageError};
use crate::storage::fs;
use crate::storage::message::now_millis;
use crate::storage::{Shared, lock};

/// The flush thread: async CommitLog flushes.
pub(crate) fn run_flusher(shared: &Arc<Shared>) {
    let interval = shared.config.flush_interval();
    loop {
        std::thread::park_timeout(interval);
        let stopping = shared.stop_background.load(Ordering::Acquire);
        if shared.config.flush_disk_type == FlushDiskType::Async {
            let end = shared.log.write_pos();
            if let Err(e) = shared.log.flush_to(end) {
                shared.poison(&e.to_string());
            }
        }
        if stopping {
            break;
        }
    }
}

/// The checkpoint thread: writes ConsumeQueue tails behind the dispatcher and checkpoints,
/// every flush interval. Apart from the flusher, so that a burst of new queues (file creates)
/// never delays CommitLog flushes.
pub(crate) fn run_checkpointer(shared: &Arc<Shared>) {
    let interval = shared.config.flush_interval();
    loop {
        std::thread::park_timeout(interval);
        if shared.stop_background.load(Ordering::Acquire) {
            break;
        }
        match checkpoint(shared, None) {
            // Poisoned: said once, when it happened; the checkpoint stays where it was.
            Ok(_) | Err(StorageError::Poisoned(_)) => {}
            Err(e) => tracing::error!(error = %e, "checkpoint failed"),
        }
    }
}

/// Above this many queues or directories to sync, one `syncfs` replaces an fsync each.
const SYNCFS_ABOVE: usize = 256;

/// Writes ConsumeQueue tails, flushes them, the index and the metadata tables, then records
/// the checkpoint. With a `deadline` (closing), queues not written by then are left to the
/// next open's re-dispatch: the checkpoint stops before their first unwritten entry.
///
/// A failed ConsumeQueue or index flush poisons the store: after an fsync error the kernel may
/// have dropped the dirty pages (and a retried fsync succeeds without them), so the in-memory
/// queues and index may no longer match the files. A poisoned store never advances the
/// checkpoint again, so the restart re-dispatches from the last one that was true and rebuilds
/// what was lost from the CommitLog.
pub(crate) fn checkpoint(shared: &Shared, deadline: Option<Instant>) -> Result<Checkpoint> {
    let _one_at_a_time =
        shared.checkpoint_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let dispatched = shared.dispatched.load(Ordering::Acquire);
    // Once poisoned, the queue and index files are never synced again: a failed fsync may
    // have dropped some of their pages, and a later one that succeeds would make the entries
    // written after the lost ones durable, leaving a hole that looks like a valid file.
    let synced = match shared.poisoned.get() {
        Some(_) => Ok(None),
        None => sync_derived(shared, deadline),
    };
    if let Err(e) = &synced {
        shared.poison(&format!("consume queue or index flush failed: {e}"));
    }
    // Consumer progress and metadata do not depend on the queues: still saved when poisoned.
    shared.offsets.save()?;
    shared.topics.save()?;
    shared.groups.save()?;
    if let Some(reason) = shared.poisoned.get() {
        return Err(StorageError::Poisoned(reason.clone()));
    }
    let unwritten = synced?;
    let cp = Checkpoint {
        flushed: shared.log.flushed_pos(),
        dispatched: unwritten.map_or(dispatched, |u| u.min(dispatched)),
        timestamp: now_millis(),
    };
    cp.save(&shared.checkpoint_path())?;
    Ok(cp)
}

/// Writes and syncs the ConsumeQueue entries and index entries dispatched so far, with the
/// new names (files, directories) they created. Returns the smallest CommitLog offset whose
/// entry is still unwritten (past the deadline), if any.
fn sync_derived(shared: &Shared, deadline: Option<Instant>) -> Result<Option<u64>> {
    let dirty = std::mem::take(&mut *lock(&shared.dirty_queues));
    let mut names = NewNames::default();
    let mut unwritten: Option<u64> = None;
    let mut left = Vec::new();
    for cq in &dirty {
        // Cleared first: a queue written from now on is listed again for the next round.
        cq.dirty.store(false, Ordering::Release);
        // A checkpoint without a deadline stops writing when the store starts closing: the
        // closing checkpoint takes over, with its own.
        let out_of_time = match deadline {
            Some(d) => Instant::now() >= d,
            None => shared.stop_background.load(Ordering::Acquire),
        };
        if out_of_time {
            if let Some(first) = cq.first_unwritten() {
                unwritten = Some(unwritten.map_or(first, |u| u.min(first)));
            }
            left.push(Arc::clone(cq));
            continue;
        }
        cq.write_behind(&mut names)?;
    }
    if !left.is_empty() {
        tracing::warn!(
            queues = left.len(),
            "closing: consume queues not written in time are rebuilt from the commitlog at the next start"
        );
    }
    let mut dirs = std::mem::take(&mut *lock(&shared.new_dirs));
    dirs.append(&mut names.dirs);
    if dirty.len() + dirs.len() > SYNCFS_ABOVE {
        // A burst of new queues: one journal commit for every file and directory, instead of
        // one per fsync.
        fs::sync_filesystem(&shared.cq_root())?;
        for cq in &dirty {
            cq.mark_synced();
        }
    } else {
        for cq in &dirty {
            cq.sync(&mut names)?;
        }
        dirs.append(&mut names.dirs);
        dirs.sort_unstable();
        dirs.dedup();
        for dir in dirs {
            match fs::fsync_dir(&dir) {
                // Removed since (its topic was deleted): nothing to keep.
                Err(StorageError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
    }
    for cq in &left {
        shared.mark_dirty(cq);
    }
    shared.index.flush()?;
    Ok(unwritten)
}

/// The retention thread.
pub(crate) fn run_retention(shared: &Arc<Shared>) {
    let every = Duration::from_millis(shared.config.retention_check_interval_ms.max(10));
    loop {
        std::thread::park_timeout(every);
        if shared.stop_background.load(Ordering::Acquire) {
            break;
        }
        match retention_pass(shared, SystemTime::now(), false) {
            Ok(r) if r.deleted_segments > 0 => tracing::info!(
                deleted = r.deleted_segments,
                min_offset = r.commitlog_min_offset,
                disk_used = r.disk_used_ratio,
                "retention deleted commitlog segments"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "retention pass failed"),
        }
    }
}

/// What one retention pass did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetentionReport {
    /// CommitLog segments deleted.
    pub deleted_segments: usize,
    /// The CommitLog's smallest offset afterwards.
    pub commitlog_min_offset: u64,
    /// Disk use of the data directory's file system, 0..1.
    pub disk_used_ratio: f64,
    /// Whether appends are now refused for lack of disk.
    pub writes_refused: bool,
}

/// One retention pass at `now`: measures disk use (refusing writes above
/// `disk_refuse_ratio`), and, at the scheduled hour, when disk use passes
/// `disk_force_clean_ratio` or when `force` is set, deletes up to `delete_batch` of the
/// oldest segments that are expired (older than `retention_hours`; any age when disk use
/// forces it), then lets ConsumeQueues and the index follow the new minimum.
pub(crate) fn retention_pass(
    shared: &Shared,
    now: SystemTime,
    force: bool,
) -> Result<RetentionReport> {
    let cfg = &shared.config;
    let (ratio, refuse) = check_disk(shared)?;
    let hour = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 3600 % 24);
    let scheduled = hour == u64::from(cfg.delete_when_hour);
    let disk_pressure = ratio >= cfg.disk_force_clean_ratio;
    let mut report = RetentionReport {
        deleted_segments: 0,
        commitlog_min_offset: shared.log.min_offset(),
        disk_used_ratio: ratio,
        writes_refused: refuse,
    };
    if !(scheduled || disk_pressure || force) {
        return Ok(report);
    }
    let retention = Duration::from_secs(cfg.retention_hours.saturating_mul(3600));
    let dispatched = shared.dispatched.load(Ordering::Acquire);
    let removed = shared.log.delete_oldest(cfg.delete_batch, |seg| {
        // Never delete what is not yet indexed: readers would lose it without a trace.
        if seg.end() > dispatched {
            return false;
        }
        let expired = std::fs::metadata(seg.file.path())
            .and_then(|m| m.modified())
            .is_ok_and(|m| now.duration_since(m).is_ok_and(|age| age >= retention));
        expired || disk_pressure
    })?;
    if removed.is_empty() {
        return Ok(report);
    }
    let min = shared.log.min_offset();
    for cq in shared.every_queue()? {
        cq.delete_below(min)?;
    }
    shared.index.delete_below(min)?;
    report.deleted_segments = removed.len();
    report.commitlog_min_offset = min;
    Ok(report)
}

/// Measures disk use and refuses or re-allows writes accordingly.
pub(crate) fn check_disk(shared: &Shared) -> Result<(f64, bool)> {
    let ratio = disk_used_ratio(&shared.config.dir)?;
    let refuse = ratio >= shared.config.disk_refuse_ratio;
    shared.set_disk_use(ratio, refuse);
    Ok((ratio, refuse))
}

/// Used fraction of the file system holding `dir`, as `df` counts it.
fn disk_used_ratio(dir: &std::path::Path) -> Result<f64> {
    let st = rustix::fs::statvfs(dir)
        .map_err(|e| StorageError::io("statvfs", dir)(std::io::Error::from(e)))?;
    let total = st.f_blocks as f64;
    if total <= 0.0 {
        return Ok(0.0);
    }
    let used = total - st.f_bfree as f64;
    let avail_to_users = used + st.f_bavail as f64;
    Ok(if avail_to_users > 0.0 { used / avail_to_users } else { 0.0 })
}
