//! Storage engine behaviours, against the real engine on temp directories.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::cast_possible_truncation)]

mod corruption;
mod crash;
mod delete_topic;
mod fuzz_regressions;
mod many_queues;
mod metadata;
mod queries;
mod replica;
mod retention;
mod roundtrip;

use std::path::Path;

use bytes::Bytes;
use orbitmq_core::storage::{MessageStore, PutMessage, StoreConfig};

/// A config with small files, so rotation and retention happen in tests.
pub fn small_config(dir: &Path) -> StoreConfig {
    StoreConfig {
        segment_size: 64 * 1024,
        max_message_size: 16 * 1024,
        cq_entries_per_file: 100,
        index_slots: 64,
        index_max_entries: 500,
        flush_interval_ms: 50,
        retention_check_interval_ms: 3_600_000,
        disk_force_clean_ratio: 1.0,
        disk_refuse_ratio: 1.0,
        ..StoreConfig::new(dir)
    }
}

pub fn msg(topic: &str, queue: u32, i: usize) -> PutMessage {
    PutMessage::new(topic, queue, Bytes::from(format!("body-{i}-{}", "x".repeat(i % 300))))
        .with_tag(if i.is_multiple_of(2) { "even" } else { "odd" })
        .with_keys([format!("key-{i}"), format!("group-{}", i % 10)])
        .with_message_id(format!("01ID{i:030}"))
}

pub async fn fill(store: &MessageStore, topic: &str, queues: u32, n: usize) {
    for i in 0..n {
        store.put(msg(topic, i as u32 % queues, i)).await.unwrap();
    }
}

/// Waits (bounded) until dispatch has caught up with the CommitLog end.
pub async fn settle(store: &MessageStore) {
    for _ in 0..500 {
        if store.dispatched_offset() == store.commitlog_max_offset() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("dispatch did not catch up");
}
