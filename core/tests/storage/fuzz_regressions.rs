//! Inputs the fuzz targets (fuzz/, tests/fuzz.sh) found panicking, kept here because
//! `cargo test` does not run fuzz corpora. Each corrupts an index file the way the crashing
//! input did (index.rs layout: 48-byte header, `index_slots` u32 heads, 20-byte entries
//! `hash u32, commitlog offset u64, ms since begin u32, previous u32`), reopens the store and
//! looks keys up: no panic, and nothing but stored messages comes back.

use std::path::Path;

use orbitmq_core::storage::MessageStore;

use crate::{fill, settle, small_config};

const HEADER_LEN: usize = 48;
const ENTRY_LEN: usize = 20;

/// A closed store of 30 keyed messages; returns its one index file.
async fn store_with_index(dir: &Path) -> std::path::PathBuf {
    let store = MessageStore::open(small_config(dir)).unwrap();
    fill(&store, "fz", 2, 30).await;
    settle(&store).await;
    store.close().unwrap();
    let mut files: Vec<_> =
        std::fs::read_dir(dir.join("index")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1);
    files.pop().unwrap()
}

fn patch(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(path).unwrap();
    f(&mut bytes);
    std::fs::write(path, bytes).unwrap();
}

fn lookups(dir: &Path) -> MessageStore {
    let store = MessageStore::open(small_config(dir)).unwrap();
    for i in 0..30 {
        for m in store.query_by_key("fz", &format!("key-{i}"), i64::MIN, i64::MAX, 10) {
            assert!(m.keys().any(|k| k == format!("key-{i}")));
        }
        let id = format!("01ID{i:030}");
        for m in store.query_by_message_id(&id, i64::MIN, i64::MAX, 10) {
            assert_eq!(m.message_id(), Some(id.as_str()));
        }
    }
    store
}

/// Found by the `index_file` target (crash-99f8f5d9…): an entry's `CommitLog` offset near
/// `u64::MAX` made `read_at` overflow in `CommitLog::read_raw` (`offset + len`).
#[tokio::test]
async fn index_entries_pointing_near_u64_max_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let index = store_with_index(dir.path()).await;
    let slots = small_config(dir.path()).index_slots as usize;
    patch(&index, |b| {
        let entries = u32::from_le_bytes(b[36..40].try_into().unwrap()) as usize;
        assert!(entries > 0);
        for e in 0..entries {
            let at = HEADER_LEN + slots * 4 + e * ENTRY_LEN + 4;
            let off = u64::MAX - (e as u64 % 4) * 50;
            b[at..at + 8].copy_from_slice(&off.to_le_bytes());
        }
    });
    let store = lookups(dir.path());
    assert!(store.query_by_key("fz", "key-1", i64::MIN, i64::MAX, 10).is_empty());
    // The same offsets straight through the API.
    for off in [u64::MAX, u64::MAX - 3, u64::MAX - 107, u64::MAX - 4096] {
        assert!(store.read_at(off).is_err(), "{off}");
    }
    store.close().unwrap();
}

/// Found by the `index_file` target (now the seed `begin-ts-near-max`): a header begin time
/// near `i64::MAX` made `begin + dt` overflow in the index lookup.
#[tokio::test]
async fn index_header_times_near_i64_max_do_not_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let index = store_with_index(dir.path()).await;
    let slots = small_config(dir.path()).index_slots as usize;
    patch(&index, |b| {
        b[0..8].copy_from_slice(&(i64::MAX - 5).to_le_bytes());
        b[8..16].copy_from_slice(&i64::MAX.to_le_bytes());
        let entries = u32::from_le_bytes(b[36..40].try_into().unwrap()) as usize;
        for e in 0..entries {
            let at = HEADER_LEN + slots * 4 + e * ENTRY_LEN + 12;
            b[at..at + 4].copy_from_slice(&(1000 + e as u32).to_le_bytes());
        }
    });
    lookups(dir.path()).close().unwrap();
}
