use std::time::{Duration, SystemTime};

use orbitmq_core::storage::{MessageStore, StorageError, StoreConfig, TagFilter};

use crate::{fill, msg, settle, small_config};

fn age_segments(dir: &std::path::Path, count: usize, age: Duration) -> Vec<u64> {
    let mut segs: Vec<_> =
        std::fs::read_dir(dir.join("commitlog")).unwrap().map(|e| e.unwrap().path()).collect();
    segs.sort();
    let then = SystemTime::now() - age;
    let mut bases = Vec::new();
    for p in segs.iter().take(count) {
        std::fs::File::options().write(true).open(p).unwrap().set_modified(then).unwrap();
        bases.push(p.file_name().unwrap().to_str().unwrap().parse().unwrap());
    }
    bases
}

#[tokio::test]
async fn deletes_only_expired_segments_in_batches_and_advances_min_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig { delete_batch: 2, retention_hours: 72, ..small_config(dir.path()) };
    let store = MessageStore::open(cfg).unwrap();
    fill(&store, "r", 2, 1500).await;
    settle(&store).await;
    store.checkpoint().unwrap();
    let total = std::fs::read_dir(dir.path().join("commitlog")).unwrap().count();
    assert!(total >= 6, "{total} segments");
    // The three oldest are 73 hours old; the rest are fresh.
    let old = age_segments(dir.path(), 3, Duration::from_secs(73 * 3600));
    let now = SystemTime::now();

    // Not the scheduled hour and no disk pressure: nothing happens.
    let r = store.run_retention(now, false).unwrap();
    assert_eq!(r.deleted_segments, 0);

    // Scheduled: a batch of at most 2, then the third, then nothing more is expired.
    let r = store.run_retention(now, true).unwrap();
    assert_eq!(r.deleted_segments, 2);
    assert_eq!(r.commitlog_min_offset, old[2]);
    let r = store.run_retention(now, true).unwrap();
    assert_eq!(r.deleted_segments, 1);
    let min = r.commitlog_min_offset;
    assert_eq!(min, old[2] + 64 * 1024);
    assert_eq!(store.run_retention(now, true).unwrap().deleted_segments, 0);
    assert_eq!(std::fs::read_dir(dir.path().join("commitlog")).unwrap().count(), total - 3);
    assert_eq!(store.commitlog_min_offset(), min);

    // ConsumeQueues follow: min offsets moved, reads below them say so, the rest is intact.
    for q in 0..2 {
        let qmin = store.min_offset("r", q);
        assert!(qmin > 0, "queue {q} min offset did not move");
        let first = store.get_messages("r", q, qmin, 1, &TagFilter::All).unwrap();
        assert!(first.messages[0].commitlog_offset >= min);
        let below = store.get_messages("r", q, 0, 1, &TagFilter::All).unwrap();
        assert_eq!(below.next_offset, qmin);
        assert_eq!(store.max_offset("r", q), 750);
    }
    // Keys of deleted messages are gone, later ones still found.
    assert!(store.query_by_key("r", "key-0", 0, i64::MAX, 10).is_empty());
    assert_eq!(store.query_by_key("r", "key-1499", 0, i64::MAX, 10).len(), 1);
    // CQ files below the new minimum were deleted too (100 entries each).
    let cq_files = std::fs::read_dir(dir.path().join("consumequeue/r/0")).unwrap().count();
    assert!(cq_files < 8, "{cq_files} consume queue files left");
}

#[tokio::test]
async fn disk_pressure_forces_deletion_and_refusal_ratio_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    fill(&store, "d", 1, 800).await;
    settle(&store).await;
    store.checkpoint().unwrap();
    let before = std::fs::read_dir(dir.path().join("commitlog")).unwrap().count();
    // Deleting old segments never moves the end: the refused write below must not either.
    let end = store.commitlog_max_offset();
    store.close().unwrap();

    // Any real disk is more than 0.01% used: both ratios trip.
    let cfg = StoreConfig {
        disk_force_clean_ratio: 0.0001,
        disk_refuse_ratio: 0.0001,
        delete_batch: 1,
        ..small_config(dir.path())
    };
    let store = MessageStore::open(cfg).unwrap();
    let r = store.run_retention(SystemTime::now(), false).unwrap();
    assert!(r.writes_refused);
    assert_eq!(r.deleted_segments, 1, "fresh segments deleted under disk pressure");
    assert_eq!(std::fs::read_dir(dir.path().join("commitlog")).unwrap().count(), before - 1);
    let err = store.put(msg("d", 0, 1)).await.unwrap_err();
    assert!(matches!(err, StorageError::DiskFull { .. }), "{err}");
    assert!(err.to_string().contains("full"), "{err}");
    assert_eq!(store.commitlog_max_offset(), end, "a refused write moved the CommitLog end");
    assert_eq!(store.max_offset("d", 0), 800, "a refused write took a queue offset");
}
