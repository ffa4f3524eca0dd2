//! Replication at the store level: a slave store fed a master's chunks holds the same log,
//! byte for byte, and serves the same queues and keys; bad chunks change nothing; a diverged
//! tail is cut offline and the store reopens consistent.

use orbitmq_core::storage::replica::{Chunk, agreed_end, truncate_log};
use orbitmq_core::storage::{MessageStore, StorageError, TagFilter};

use crate::{msg, small_config};

/// Copies everything the master holds past the slave's end; returns the chunks copied.
async fn catch_up(master: &MessageStore, slave: &MessageStore) -> usize {
    let mut n = 0;
    while let Some(chunk) =
        master.replication_chunk(slave.commitlog_max_offset(), 16 * 1024).unwrap()
    {
        let end = slave.append_replicated(chunk).await.unwrap();
        assert_eq!(end, slave.commitlog_max_offset());
        n += 1;
    }
    n
}

/// Waits until the slave's dispatcher built its queues up to its log end.
async fn dispatched(store: &MessageStore, topic: &str, queue: u32, want: u64) {
    for _ in 0..500 {
        if store.max_offset(topic, queue) >= want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("queue {topic}:{queue} stuck at {} of {want}", store.max_offset(topic, queue));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_copies_every_segment_and_serves_the_same_messages() {
    let (md, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let master = MessageStore::open(small_config(md.path())).unwrap();
    let slave = MessageStore::open(small_config(sd.path())).unwrap();
    // Several 64 KiB segments, so chunks end at blanks and the slave rotates with them.
    for i in 0..600 {
        master.put(msg("t", (i % 3) as u32, i)).await.unwrap();
    }
    assert!(master.commitlog_max_offset() > 3 * 64 * 1024);
    let chunks = catch_up(&master, &slave).await;
    assert!(chunks > 3, "{chunks} chunks");
    assert_eq!(slave.commitlog_max_offset(), master.commitlog_max_offset());
    for q in 0..3 {
        dispatched(&slave, "t", q, master.max_offset("t", q)).await;
        let a = master.get_messages("t", q, 0, 1000, &TagFilter::All).unwrap().messages;
        let b = slave.get_messages("t", q, 0, 1000, &TagFilter::All).unwrap().messages;
        assert_eq!(a.len(), 200);
        assert_eq!(a, b, "queue {q}");
    }
    let by_key = slave.query_by_key("t", "key-42", 0, i64::MAX, 10);
    assert_eq!(by_key.len(), 1);
    assert_eq!(by_key[0].body, master.read_at(by_key[0].commitlog_offset).unwrap().body);

    // More on the master later: the slave continues where it was.
    for i in 600..650 {
        master.put(msg("t", 0, i)).await.unwrap();
    }
    catch_up(&master, &slave).await;
    assert_eq!(slave.commitlog_max_offset(), master.commitlog_max_offset());
    master.close().unwrap();
    slave.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_chunks_are_refused_and_change_nothing() {
    let (md, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let master = MessageStore::open(small_config(md.path())).unwrap();
    let slave = MessageStore::open(small_config(sd.path())).unwrap();
    for i in 0..20 {
        master.put(msg("t", 0, i)).await.unwrap();
    }
    let chunk = master.replication_chunk(0, 1 << 20).unwrap().unwrap();
    // A flipped byte in a body.
    let mut flipped = chunk.data.to_vec();
    let at = flipped.len() / 2;
    flipped[at] ^= 0x40;
    let err = slave.append_replicated(Chunk { offset: 0, data: flipped.into() }).await.unwrap_err();
    assert!(matches!(err, StorageError::InvalidMessage(_)), "{err}");
    // The right bytes at the wrong offset.
    let moved = Chunk { offset: 0, data: chunk.data.slice(..) };
    slave.append_replicated(moved.clone()).await.unwrap();
    let err = slave.append_replicated(moved).await.unwrap_err();
    assert!(err.to_string().contains("ends at"), "{err}");
    // A chunk cut in the middle of a record.
    let end = slave.commitlog_max_offset();
    for i in 20..25 {
        master.put(msg("t", 0, i)).await.unwrap();
    }
    let next = master.replication_chunk(end, 1 << 20).unwrap().unwrap();
    let cut = Chunk { offset: end, data: next.data.slice(..next.data.len() - 3) };
    assert!(slave.append_replicated(cut).await.is_err());
    assert_eq!(slave.commitlog_max_offset(), end, "nothing of a refused chunk is kept");
    slave.append_replicated(next).await.unwrap();
    assert_eq!(slave.commitlog_max_offset(), master.commitlog_max_offset());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diverged_tail_is_cut_and_the_store_reopens_consistent() {
    let (md, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let master = MessageStore::open(small_config(md.path())).unwrap();
    let slave = MessageStore::open(small_config(sd.path())).unwrap();
    let e1 = master.epochs().begin(master.commitlog_max_offset(), 1).unwrap();
    for i in 0..300 {
        master.put(msg("t", 0, i)).await.unwrap();
    }
    catch_up(&master, &slave).await;
    slave.epochs().mirror(&master.epochs().list(), slave.commitlog_max_offset()).unwrap();
    let copied = slave.commitlog_max_offset();
    dispatched(&slave, "t", 0, 300).await;

    // The master "lost" its tail after message 199 (as after an OS crash under async flush)
    // and a new run wrote other messages there: same offsets, different bytes.
    let keep =
        master.get_messages("t", 0, 200, 1, &TagFilter::All).unwrap().messages[0].commitlog_offset;
    let cfg = small_config(md.path());
    master.close().unwrap();
    drop(master);
    truncate_log(md.path(), cfg.segment_size, keep).unwrap();
    let master = MessageStore::open(cfg).unwrap();
    assert_eq!(master.commitlog_max_offset(), keep);
    let e2 = master.epochs().begin(keep, 2).unwrap();
    assert_eq!(master.epochs().list(), vec![e1, e2]);
    for i in 1000..1150 {
        master.put(msg("t", 0, i)).await.unwrap();
    }

    // Where do they agree? Up to the second run's start: the slave's tail past it goes.
    let to = agreed_end(
        &master.epochs().list(),
        master.commitlog_max_offset(),
        &slave.epochs().list(),
        copied,
    )
    .unwrap();
    assert_eq!(to, keep);
    let scfg = small_config(sd.path());
    slave.close().unwrap();
    drop(slave);
    let dropped = truncate_log(sd.path(), scfg.segment_size, to).unwrap();
    assert!(dropped > 0);
    let slave = MessageStore::open(scfg).unwrap();
    assert_eq!(slave.commitlog_max_offset(), keep);
    assert_eq!(slave.max_offset("t", 0), 200, "queue entries past the cut are gone");
    catch_up(&master, &slave).await;
    dispatched(&slave, "t", 0, 350).await;
    let a = master.get_messages("t", 0, 0, 1000, &TagFilter::All).unwrap().messages;
    let b = slave.get_messages("t", 0, 0, 1000, &TagFilter::All).unwrap().messages;
    assert_eq!(a.len(), 350);
    assert_eq!(a, b);
    assert!(slave.query_by_key("t", "key-250", 0, i64::MAX, 10).is_empty(), "lost key gone");
    assert_eq!(slave.query_by_key("t", "key-1100", 0, i64::MAX, 10).len(), 1);
}
