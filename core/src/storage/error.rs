//! `StorageError`: everything the storage engine can refuse or fail with. The broker maps these
//! to RocketMQ status codes at its edge; nothing in here knows about the wire.

use std::io;
use std::path::PathBuf;

/// Result alias for the storage engine.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// An error from the storage engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// An I/O call failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What the engine was doing.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A flush failed earlier; the store no longer accepts writes because it cannot promise
    /// durability. Restart the broker (recovery re-validates the tail).
    #[error("store is poisoned and refuses writes: {0}")]
    Poisoned(String),
    /// Disk use is above the refusal ratio.
    #[error("disk {} is {used_pct:.1}% full (writes refused above {limit_pct:.1}%)", dir.display())]
    DiskFull {
        /// The data directory.
        dir: PathBuf,
        /// Current use, percent.
        used_pct: f64,
        /// The refusal threshold, percent.
        limit_pct: f64,
    },
    /// A record failed its checks where the engine expected a valid one.
    #[error("corrupt data in {} at byte {pos}: {reason}", segment.display())]
    Corrupted {
        /// The file.
        segment: PathBuf,
        /// Byte position within the file.
        pos: u64,
        /// What check failed.
        reason: String,
    },
    /// The message is larger than `max_message_size` or than a segment can hold.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    MessageTooLarge {
        /// Encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The message is not acceptable (empty topic, too-long field...).
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    /// The offset is outside what the store holds (deleted by retention, or never written).
    #[error("offset {offset} is out of range [{min}, {max})")]
    OffsetOutOfRange {
        /// Requested offset.
        offset: u64,
        /// Smallest readable offset.
        min: u64,
        /// One past the largest readable offset.
        max: u64,
    },
    /// An id or key could not be parsed.
    #[error("invalid id {id:?}: {reason}")]
    InvalidId {
        /// The id as given.
        id: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// A configuration value is out of range.
    #[error("invalid storage config: {0}")]
    InvalidConfig(String),
    /// The store was closed.
    #[error("store is closed")]
    Closed,
}

impl StorageError {
    /// Wraps an `io::Error` with the operation and path that failed.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| StorageError::Io { op, path, source }
    }
}
