//! The bounded set of open ConsumeQueue files: an LRU of file descriptors shared by every queue.
//! A queue holds no descriptor of its own; each read or write borrows one from here, opening the
//! file on a miss and closing the least recently used one past the budget. A file closed while
//! a reader still holds its `Arc` closes when that reader is done, so the budget can be passed
//! for the length of one read, never for good. Dirty data of a closed file stays in the page
//! cache; the checkpoint reopens it to sync it.

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lru::LruCache;
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

use crate::storage::error::{Result, StorageError};
use crate::storage::fs::DataFile;

/// Which file: (queue id, queue offset of the file's first entry).
pub(crate) type FileKey = (u64, u64);

/// Descriptors kept for other uses (CommitLog segments, index files, sockets, the runtime)
/// when the budget is derived from `RLIMIT_NOFILE`: ConsumeQueues get a quarter of the limit.
const SHARE_OF_LIMIT: u64 = 4;
/// Bounds of the derived budget.
const MIN_BUDGET: u64 = 16;
const MAX_BUDGET: u64 = 16_384;

#[derive(Debug)]
pub(crate) struct OpenFiles {
    cache: Mutex<LruCache<FileKey, Arc<DataFile>>>,
    capacity: usize,
    opened: AtomicU64,
}

/// How many ConsumeQueue files may be open at once: `configured` if non-zero, else a quarter
/// of the process's open-file limit (raised to its hard limit first), within 16..=16384.
pub(crate) fn budget(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = Rlimit { current: limit.maximum, maximum: limit.maximum };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            limit = getrlimit(Resource::Nofile);
        }
    }
    let soft = limit.current.unwrap_or(u64::MAX);
    let budget = (soft / SHARE_OF_LIMIT).clamp(MIN_BUDGET, MAX_BUDGET) as usize;
    tracing::debug!(open_file_limit = soft, consume_queue_files = budget, "open file budget");
    budget
}

impl OpenFiles {
    pub(crate) fn new(capacity: usize) -> Self {
        let cap = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        OpenFiles { cache: Mutex::new(LruCache::new(cap)), capacity, opened: AtomicU64::new(0) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<FileKey, Arc<DataFile>>> {
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The open file for `key` at `path`, opening it on a miss. With `create`, a missing file
    /// is created empty (the bool says so: its name is not durable until its directory is
    /// synced); without, a missing file is an error.
    pub(crate) fn get(
        &self,
        key: FileKey,
        path: &Path,
        create: bool,
    ) -> Result<(Arc<DataFile>, bool)> {
        let mut cache = self.lock();
        if let Some(f) = cache.get(&key) {
            return Ok((Arc::clone(f), false));
        }
        let (file, created) = match DataFile::open(path) {
            Ok(f) => (f, false),
            Err(StorageError::Io { source, .. })
                if create && source.kind() == std::io::ErrorKind::NotFound =>
            {
                match DataFile::create_new(path) {
                    Ok(f) => (f, true),
                    Err(StorageError::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::AlreadyExists =>
                    {
                        (DataFile::open(path)?, false)
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        let file = Arc::new(file);
        self.opened.fetch_add(1, Ordering::Relaxed);
        // `push` evicts (and so closes) the least recently used file when full.
        cache.push(key, Arc::clone(&file));
        Ok((file, created))
    }

    /// Closes the file of `key`, if open (it is being deleted).
    pub(crate) fn forget(&self, key: FileKey) {
        self.lock().pop(&key);
    }

    /// Closes every open file of queue `queue`.
    pub(crate) fn forget_queue(&self, queue: u64) {
        let mut cache = self.lock();
        let keys: Vec<FileKey> = cache.iter().map(|(k, _)| *k).filter(|k| k.0 == queue).collect();
        for k in keys {
            cache.pop(&k);
        }
    }

    /// Files open now.
    pub(crate) fn open_count(&self) -> usize {
        self.lock().len()
    }

    /// The most files kept open.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Files opened since start (misses).
    #[cfg(test)]
    pub(crate) fn opened_total(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_capacity_files_open_and_reopens_evicted_ones() {
        let dir = tempfile::tempdir().unwrap();
        let files = OpenFiles::new(3);
        for i in 0..10u64 {
            let path = dir.path().join(format!("f{i}"));
            let (f, created) = files.get((1, i), &path, true).unwrap();
            assert!(created);
            f.write_at(0, &i.to_le_bytes()).unwrap();
            assert!(files.open_count() <= 3);
        }
        assert_eq!(files.open_count(), 3);
        // An evicted file opens again, with its data.
        let (f, created) = files.get((1, 0), &dir.path().join("f0"), false).unwrap();
        assert!(!created);
        let mut b = [0u8; 8];
        f.read_at(0, &mut b).unwrap();
        assert_eq!(u64::from_le_bytes(b), 0);
        assert_eq!(files.opened_total(), 11);
        // Without `create`, a missing file is an error.
        assert!(files.get((2, 0), &dir.path().join("missing"), false).is_err());
        files.forget_queue(1);
        assert_eq!(files.open_count(), 0);
    }
}
