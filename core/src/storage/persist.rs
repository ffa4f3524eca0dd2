//! Atomic small-file persistence for the broker's metadata (consumer offsets, topics, groups,
//! the checkpoint): write `name.tmp`, fsync it, rename over `name`, fsync the directory. A
//! crash leaves either the old or the new file; a half-written `.tmp` is ignored on load.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::storage::error::{Result, StorageError};
use crate::storage::mapped::fsync_dir;

/// Writes `bytes` to `path` atomically and durably.
pub(crate) fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    {
        let mut f = std::fs::File::create(&tmp).map_err(StorageError::io("create", &tmp))?;
        f.write_all(bytes).map_err(StorageError::io("write", &tmp))?;
        f.sync_all().map_err(StorageError::io("fsync", &tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(StorageError::io("rename", path))?;
    if let Some(dir) = path.parent() {
        fsync_dir(dir)?;
    }
    Ok(())
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

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
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io("read", path)(e)),
    };
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
