//! Many queues: bounded open files, lazy opening, files that grow with their contents, and
//! ConsumeQueue tails checked against the CommitLog when a queue opens.

use std::path::Path;

use orbitmq_core::storage::{GetStatus, MessageStore, StoreConfig, TagFilter};

use crate::{msg, settle, small_config};

fn config(dir: &Path, open_files: usize) -> StoreConfig {
    StoreConfig { max_open_queue_files: open_files, ..small_config(dir) }
}

fn cq_file(dir: &Path, topic: &str, queue: u32) -> std::path::PathBuf {
    dir.join("consumequeue").join(topic).join(queue.to_string()).join(format!("{:020}", 0))
}

#[tokio::test]
async fn a_thousand_queues_stay_within_the_open_file_budget() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(config(dir.path(), 8)).unwrap();
    for t in 0..250 {
        for q in 0..4 {
            store.put(msg(&format!("T{t}"), q, t * 4 + q as usize)).await.unwrap();
        }
    }
    settle(&store).await;
    let (open, cap) = store.open_queue_files();
    assert_eq!(cap, 8);
    assert!(open <= 8, "{open} ConsumeQueue files open, budget 8");
    // Every queue is readable, through files opened again after eviction.
    for t in 0..250 {
        for q in 0..4 {
            let r = store.get_messages(&format!("T{t}"), q, 0, 10, &TagFilter::All).unwrap();
            assert_eq!(r.status, GetStatus::Found, "T{t}/{q}");
            assert_eq!(r.messages.len(), 1);
            assert_eq!(&r.messages[0].body[..], msg("x", 0, t * 4 + q as usize).body.as_ref());
        }
    }
    assert!(store.open_queue_files().0 <= 8);
    // Entries not written yet are held in memory, and the checkpoint writes them all.
    assert!(store.queue_tail_bytes() <= 1000 * 20);
    store.checkpoint().unwrap();
    assert_eq!(store.queue_tail_bytes(), 0);
    // Files hold what was written and no more: nothing is preallocated.
    let len = std::fs::metadata(cq_file(dir.path(), "T7", 2)).unwrap().len();
    assert_eq!(len, 20, "one entry is 20 bytes");
    store.close().unwrap();
}

#[tokio::test]
async fn queues_open_lazily_after_a_restart_and_keep_their_offsets() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = MessageStore::open(config(dir.path(), 4)).unwrap();
        for i in 0..30 {
            store.put(msg("Lazy", i as u32 % 3, i)).await.unwrap();
        }
        store.close().unwrap();
    }
    let store = MessageStore::open(config(dir.path(), 4)).unwrap();
    assert_eq!(store.open_queue_files().0, 0, "no ConsumeQueue file is opened at start");
    assert_eq!(store.max_offset("Lazy", 1), 10);
    let r = store.get_messages("Lazy", 1, 0, 100, &TagFilter::All).unwrap();
    assert_eq!(r.messages.len(), 10);
    let put = store.put(msg("Lazy", 1, 99)).await.unwrap();
    assert_eq!(put.queue_offset, 10, "a reopened queue continues where it was");
    store.close().unwrap();
}

#[tokio::test]
async fn entries_without_their_record_are_dropped_when_the_queue_opens() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = MessageStore::open(config(dir.path(), 4)).unwrap();
        for i in 0..5 {
            store.put(msg("Stale", 0, i)).await.unwrap();
        }
        store.put(msg("Other", 0, 5)).await.unwrap();
        store.close().unwrap();
    }
    // A life that crashed after dispatch left entries whose records recovery cut: entries
    // pointing past the log's end, and one pointing at another topic's record.
    let path = cq_file(dir.path(), "Stale", 0);
    let mut bytes = std::fs::read(&path).unwrap();
    let other = std::fs::read(cq_file(dir.path(), "Other", 0)).unwrap();
    bytes.extend_from_slice(&other[..20]);
    let mut past_end = other[..20].to_vec();
    past_end[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    bytes.extend_from_slice(&past_end);
    std::fs::write(&path, &bytes).unwrap();

    let store = MessageStore::open(config(dir.path(), 4)).unwrap();
    assert_eq!(store.max_offset("Stale", 0), 5, "the two stale entries are gone");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 100);
    let put = store.put(msg("Stale", 0, 6)).await.unwrap();
    assert_eq!(put.queue_offset, 5);
    settle(&store).await;
    let r = store.get_messages("Stale", 0, 0, 100, &TagFilter::All).unwrap();
    assert_eq!(r.messages.len(), 6);
    store.close().unwrap();
}

/// Descriptors this process holds on files under `dir`.
fn fds_under(dir: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

/// Descriptors under `dir` once the background flush is done with them: a sync in progress
/// holds a duplicate of the descriptor it syncs (`Index::flush` syncs outside the index lock)
/// for as long as the fsync takes. What must hold is the steady state, so this waits up to 5 s
/// for the count to fall to `want` and returns the last count seen.
async fn settled_fds_under(dir: &Path, want: usize) -> usize {
    let mut n = fds_under(dir);
    for _ in 0..500 {
        if n <= want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        n = fds_under(dir);
    }
    n
}

#[tokio::test]
async fn sealed_index_files_hold_no_descriptor_and_stay_searchable() {
    let dir = tempfile::tempdir().unwrap();
    let index_dir = dir.path().join("index");
    let mut n = 0;
    {
        let store = MessageStore::open(config(dir.path(), 4)).unwrap();
        // 3 keys per message, 500 entries per index file: several files.
        while std::fs::read_dir(&index_dir).unwrap().count() < 4 {
            store.put(msg("Keys", 0, n)).await.unwrap();
            n += 1;
            if n.is_multiple_of(50) {
                settle(&store).await;
            }
        }
        settle(&store).await;
        assert_eq!(
            settled_fds_under(&index_dir, 1).await,
            1,
            "only the index file being written is open"
        );
        store.close().unwrap();
    }
    let store = MessageStore::open(config(dir.path(), 4)).unwrap();
    assert_eq!(settled_fds_under(&index_dir, 1).await, 1, "after a restart too");
    for i in [0, n / 2, n - 1] {
        let found = store.query_by_key("Keys", &format!("key-{i}"), 0, i64::MAX, 4);
        assert_eq!(found.len(), 1, "key-{i}");
    }
    store.close().unwrap();
}

#[tokio::test]
async fn readers_skip_holes_left_by_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = MessageStore::open(config(dir.path(), 4)).unwrap();
        for i in 0..30 {
            store.put(msg("Holes", 0, i)).await.unwrap();
        }
        store.close().unwrap();
    }
    // Entries 2..26 never reached the disk; the ones around them did.
    let path = cq_file(dir.path(), "Holes", 0);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[2 * 20..26 * 20].fill(0);
    std::fs::write(&path, &bytes).unwrap();

    let store = MessageStore::open(config(dir.path(), 4)).unwrap();
    assert_eq!(store.max_offset("Holes", 0), 30);
    // A reader asking for one message at the hole reads past more holes than one read spans.
    let r = store.get_messages("Holes", 0, 2, 1, &TagFilter::All).unwrap();
    assert_eq!(r.status, GetStatus::Found, "a reader at the hole moves past it: {r:?}");
    assert_eq!(r.messages[0].queue_offset, 26);
    let all = store.get_messages("Holes", 0, 0, 100, &TagFilter::All).unwrap();
    let offsets: Vec<u64> = all.messages.iter().map(|m| m.queue_offset).collect();
    assert_eq!(offsets, [0, 1, 26, 27, 28, 29]);
    store.close().unwrap();
}

#[tokio::test]
async fn retention_moves_queue_minimums_of_entries_not_yet_in_files() {
    let dir = tempfile::tempdir().unwrap();
    // No checkpoint runs: every entry stays in its queue's in-memory tail.
    let cfg = StoreConfig { flush_interval_ms: 3_600_000, ..config(dir.path(), 4) };
    let store = MessageStore::open(cfg).unwrap();
    let mut last = 0;
    while store.commitlog_max_offset() < 3 * 64 * 1024 {
        store.put(msg("Tail", 0, last)).await.unwrap();
        last += 1;
    }
    settle(&store).await;
    assert!(!cq_file(dir.path(), "Tail", 0).exists(), "nothing written behind yet");
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(1000 * 24 * 3600);
    let r = store.run_retention(later, true).unwrap();
    assert!(r.deleted_segments > 0);
    let min = store.min_offset("Tail", 0);
    assert!(min > 0 && min < last as u64, "queue min {min} of {last}");
    let first = store.get_messages("Tail", 0, min, 1, &TagFilter::All).unwrap();
    assert!(first.messages[0].commitlog_offset >= store.commitlog_min_offset());
    let below = store.get_messages("Tail", 0, min - 1, 1, &TagFilter::All).unwrap();
    assert_eq!(below.status, GetStatus::OffsetTooSmall);
    store.close().unwrap();
}
