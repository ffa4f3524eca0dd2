//! The index file reader, through the store's public API (index.rs is private): a store
//! holding a few keyed messages is made once per process; for each input its index file is
//! replaced by the fuzz bytes (the layout fields of the header set more often than not, so
//! the chains get read), the store is reopened, and keys and ids are looked up. Never a
//! panic, and an answer only ever names a stored message.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use orbitmq_core::storage::{MessageStore, PutMessage, StoreConfig};

const SLOTS: u32 = 8;
const MAX_ENTRIES: u32 = 16;
/// Header 48 bytes, SLOTS u32 heads, MAX_ENTRIES 20-byte entries (index.rs).
const FILE_LEN: usize = 48 + SLOTS as usize * 4 + MAX_ENTRIES as usize * 20;
const KEYS: [&str; 3] = ["k", "order-1", "k2"];

fn config(dir: &Path) -> StoreConfig {
    StoreConfig {
        segment_size: 1 << 20,
        max_message_size: 64 << 10,
        index_slots: SLOTS,
        index_max_entries: MAX_ENTRIES,
        ..StoreConfig::new(dir)
    }
}

/// The store directory: three messages with keys and ids, closed cleanly.
fn store_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = orbitmq_fuzz::store_dir();
        let store = MessageStore::open(config(&dir)).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        for (i, key) in KEYS.iter().enumerate() {
            let put = PutMessage::new("t", 0, format!("body {i}"))
                .with_keys([*key])
                .with_message_id(format!("ID{i}"));
            rt.block_on(store.put(put)).unwrap();
        }
        store.close().unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else { return };
    let mut file = bytes.to_vec();
    if mode & 1 == 0 {
        file.resize(FILE_LEN, 0);
        file[32..36].copy_from_slice(&SLOTS.to_le_bytes());
        file[40..44].copy_from_slice(&MAX_ENTRIES.to_le_bytes());
        file[44..48].copy_from_slice(&0x4F52_4931_u32.to_le_bytes());
    }
    let dir = store_dir();
    let index = dir.join("index");
    for entry in std::fs::read_dir(&index).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    std::fs::write(index.join("00000000000000000000"), &file).unwrap();
    let store = MessageStore::open(config(dir)).unwrap();
    for key in KEYS {
        for m in store.query_by_key("t", key, i64::MIN, i64::MAX, 16) {
            assert!(m.keys().any(|k| k == key), "{key:?} found {m:?}");
        }
    }
    for i in 0..3 {
        let id = format!("ID{i}");
        for m in store.query_by_message_id(&id, i64::MIN, i64::MAX, 16) {
            assert_eq!(m.message_id(), Some(id.as_str()));
        }
    }
    store.close().unwrap();
});
