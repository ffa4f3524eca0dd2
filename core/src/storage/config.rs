//! `StoreConfig`: every knob of the storage engine, with RocketMQ-like defaults. Deserialises
//! from the `[store]` table of the server's TOML (names follow RocketMQ's `broker.conf`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::storage::error::{Result, StorageError};

/// When appends become durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlushDiskType {
    /// Acknowledge after the write reaches the page cache; flush in the background every
    /// `flush_interval_ms` or when `flush_dirty_bytes` accumulate.
    #[default]
    Async,
    /// Acknowledge only after the bytes are durable (group commit: one flush releases every
    /// append that waited for it).
    Sync,
}

impl std::str::FromStr for FlushDiskType {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "async" | "async_flush" => Ok(FlushDiskType::Async),
            "sync" | "sync_flush" => Ok(FlushDiskType::Sync),
            other => Err(format!("unknown flush disk type {other:?} (expected async or sync)")),
        }
    }
}

impl std::fmt::Display for FlushDiskType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FlushDiskType::Async => "async",
            FlushDiskType::Sync => "sync",
        })
    }
}

/// Storage engine configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Data directory (`commitlog/`, `consumequeue/`, `index/`, `config/`, `checkpoint`).
    pub dir: PathBuf,
    /// CommitLog segment size, bytes (default 1 GiB).
    pub segment_size: usize,
    /// Flush policy.
    pub flush_disk_type: FlushDiskType,
    /// Async flush: flush at least this often, ms.
    pub flush_interval_ms: u64,
    /// Async flush: flush early once this many bytes are unflushed.
    pub flush_dirty_bytes: u64,
    /// Entries per ConsumeQueue file (20 bytes each; default 300 000, 6 MB files).
    pub cq_entries_per_file: u64,
    /// ConsumeQueue files kept open at once, at most; 0 derives it from the process's
    /// open-file limit (a quarter of it, within 16..=16384).
    pub max_open_queue_files: usize,
    /// Hash slots per index file.
    pub index_slots: u32,
    /// Entries per index file.
    pub index_max_entries: u32,
    /// Largest encoded message accepted, bytes (default 4 MiB).
    pub max_message_size: usize,
    /// Segments whose last write is older than this are deleted.
    pub retention_hours: u64,
    /// The UTC hour (0-23) at which expired segments are deleted.
    pub delete_when_hour: u8,
    /// Above this disk use (0..1), deletion runs now, oldest segments first, expired or not.
    pub disk_force_clean_ratio: f64,
    /// Above this disk use (0..1), appends are refused.
    pub disk_refuse_ratio: f64,
    /// Segments deleted per retention pass, at most.
    pub delete_batch: usize,
    /// How often retention and the disk check run, ms.
    pub retention_check_interval_ms: u64,
    /// The broker's address as written into records and `offset_msg_id`s.
    pub store_host: SocketAddr,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            dir: PathBuf::from("./orbitmq-data"),
            segment_size: 1 << 30,
            flush_disk_type: FlushDiskType::Async,
            flush_interval_ms: 500,
            flush_dirty_bytes: 64 << 20,
            cq_entries_per_file: 300_000,
            max_open_queue_files: 0,
            index_slots: 1 << 20,
            index_max_entries: 4 << 20,
            max_message_size: 4 << 20,
            retention_hours: 72,
            delete_when_hour: 4,
            disk_force_clean_ratio: 0.75,
            disk_refuse_ratio: 0.90,
            delete_batch: 10,
            retention_check_interval_ms: 10_000,
            store_host: SocketAddr::from(([127, 0, 0, 1], 8081)),
        }
    }
}

impl StoreConfig {
    /// Defaults with `dir` as the data directory.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StoreConfig { dir: dir.into(), ..StoreConfig::default() }
    }

    /// Checks that the values make sense together.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(StorageError::InvalidConfig(m));
        if self.segment_size < 4096 || self.segment_size > u32::MAX as usize {
            return bad(format!("segment_size {} must be in 4 KiB..4 GiB", self.segment_size));
        }
        if self.max_message_size + 64 > self.segment_size {
            return bad(format!(
                "max_message_size {} does not fit in a segment of {} bytes",
                self.max_message_size, self.segment_size
            ));
        }
        if self.cq_entries_per_file == 0 || self.index_slots == 0 || self.index_max_entries == 0 {
            return bad("cq_entries_per_file, index_slots and index_max_entries must be > 0".into());
        }
        if !(0.0..=1.0).contains(&self.disk_force_clean_ratio)
            || !(0.0..=1.0).contains(&self.disk_refuse_ratio)
        {
            return bad("disk ratios must be between 0 and 1".into());
        }
        if self.delete_when_hour > 23 {
            return bad(format!("delete_when_hour {} must be 0..=23", self.delete_when_hour));
        }
        if self.delete_batch == 0 {
            return bad("delete_batch must be > 0".into());
        }
        Ok(())
    }

    pub(crate) fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms.max(1))
    }
}
