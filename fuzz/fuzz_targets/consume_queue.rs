//! The ConsumeQueue reader, through the store's public API: a store holding messages on one
//! queue is made once per process; for each input the queue's file is replaced by the fuzz
//! bytes (often a valid prefix of entries followed by fuzz), the store is reopened, and the
//! queue is read from its minimum to its maximum. Never a panic, and every message served is
//! a whole stored message of that queue at the offset it was asked for.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use orbitmq_core::storage::{GetStatus, MessageStore, PutMessage, StoreConfig, TagFilter};

const MESSAGES: usize = 6;

fn config(dir: &Path) -> StoreConfig {
    StoreConfig {
        segment_size: 1 << 20,
        max_message_size: 64 << 10,
        cq_entries_per_file: 64,
        index_slots: 8,
        index_max_entries: 64,
        ..StoreConfig::new(dir)
    }
}

/// The store directory and the queue file's bytes as the store wrote them.
fn store_dir() -> &'static (PathBuf, Vec<u8>) {
    static DIR: OnceLock<(PathBuf, Vec<u8>)> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = orbitmq_fuzz::store_dir();
        let store = MessageStore::open(config(&dir)).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        for i in 0..MESSAGES {
            let tag = if i % 2 == 0 { "even" } else { "odd" };
            let put = PutMessage::new("t", 0, format!("body {i}")).with_tag(tag);
            rt.block_on(store.put(put)).unwrap();
        }
        store.close().unwrap();
        let good = std::fs::read(queue_file(&dir)).unwrap();
        (dir, good)
    })
}

fn queue_file(dir: &Path) -> PathBuf {
    dir.join("consumequeue/t/0/00000000000000000000")
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else { return };
    let (dir, good) = store_dir();
    // Mode: how many of the real entries come first (0..=MESSAGES), then the fuzz bytes.
    let keep = (usize::from(mode) % (MESSAGES + 1)) * 20;
    let mut file = good.get(..keep).unwrap_or(good).to_vec();
    file.extend_from_slice(bytes);
    std::fs::write(queue_file(dir), &file).unwrap();
    let store = MessageStore::open(config(dir)).unwrap();
    let (min, max) = (store.min_offset("t", 0), store.max_offset("t", 0));
    assert!(min <= max, "min {min} > max {max}");
    for filter in [TagFilter::All, TagFilter::parse("odd")] {
        let mut offset = min;
        while offset < max {
            let r = store.get_messages("t", 0, offset, 4, &filter).unwrap();
            for m in &r.messages {
                assert_eq!((m.topic.as_str(), m.queue_id), ("t", 0), "{m:?}");
                assert!(filter.matches(m.tag()), "{m:?}");
            }
            if r.status != GetStatus::Found && r.status != GetStatus::NoMatchedMessage {
                break;
            }
            assert!(r.next_offset > offset, "no progress at {offset}: {r:?}");
            offset = r.next_offset;
        }
    }
    store.close().unwrap();
});
