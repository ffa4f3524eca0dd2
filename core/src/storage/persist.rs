//! Atomic small-file persistence for the broker's metadata (consumer offsets, topics, groups,
//! the checkpoint): write `name.tmp`, fsync it, rename over `name`, fsync the directory. A
//! crash leaves either the old or the new file; a half-written `.tmp` is ignored on load.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::storage::error::{Result, StorageError};
pub(crate) use crate::storage::fs::atomic_write;

/// Saves `value` as pretty JSON, atomically.
pub(crate) fn save_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| {
        StorageError::InvalidConfig(format!("cannot serialise {}: {e}", path.display()))
    })?;
    atomic_write(path, &bytes)
}

/// Loads JSON from `path`; `None` if the file does not exist. A file that does not parse is an
/// error naming the file: silently starting empty would lose consumer progress.
pub(crate) fn load_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let Some(bytes) = crate::storage::fs::read(path)? else { return Ok(None) };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| StorageError::Corrupted {
        segment: path.to_owned(),
        pos: e.column() as u64,
        reason: format!("not valid JSON: {e}"),
    })
}

/// Saves `value` as compact JSON, atomically (for state files that can hold many entries).
pub(crate) fn save_json_compact<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec(value).map_err(|e| {
        StorageError::InvalidConfig(format!("cannot serialise {}: {e}", path.display()))
    })?;
    atomic_write(path, &bytes)
}
