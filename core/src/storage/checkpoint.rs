//! The checkpoint: how far the CommitLog is durable and how far ConsumeQueues and the index are
//! durably built from it. Recovery re-validates and re-dispatches from there. 32 bytes,
//! CRC-protected, replaced atomically.

use std::path::Path;

use crate::storage::commitlog::record::{u32_at, u64_at};
use crate::storage::error::Result;
use crate::storage::persist::atomic_write;

/// The recovery starting points.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    /// CommitLog bytes below this are durable.
    pub(crate) flushed: u64,
    /// ConsumeQueue and index entries for records below this are durable.
    pub(crate) dispatched: u64,
    /// When it was written, ms.
    pub(crate) timestamp: i64,
}

impl Checkpoint {
    /// Reads the checkpoint; a missing or damaged one reads as zeros (full re-validation).
    pub(crate) fn load(path: &Path) -> Checkpoint {
        let Ok(Some(b)) = crate::storage::fs::read(path) else { return Checkpoint::default() };
        let parsed = (|| {
            let crc = u32_at(&b, 24)?;
            (b.len() == 32 && crc32c::crc32c(b.get(..24)?) == crc).then_some(())?;
            Some(Checkpoint {
                flushed: u64_at(&b, 0)?,
                dispatched: u64_at(&b, 8)?,
                timestamp: u64_at(&b, 16)? as i64,
            })
        })();
        parsed.unwrap_or_else(|| {
            tracing::warn!(path = %path.display(), "checkpoint is damaged: recovering from the start");
            Checkpoint::default()
        })
    }

    pub(crate) fn save(&self, path: &Path) -> Result<()> {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&self.flushed.to_le_bytes());
        b[8..16].copy_from_slice(&self.dispatched.to_le_bytes());
        b[16..24].copy_from_slice(&self.timestamp.to_le_bytes());
        let crc = crc32c::crc32c(&b[..24]);
        b[24..28].copy_from_slice(&crc.to_le_bytes());
        atomic_write(path, &b)
    }
}
