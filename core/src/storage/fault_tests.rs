//! Crash tests on the fault-injecting file layer ([`super::fs::fault`]): the store runs with
//! every file operation recorded, the machine "loses power" after a random (seeded) operation,
//! the directory is turned into what a disk could hold afterwards (unsynced writes dropped, or
//! a random subset of dirty pages written back), and the store is reopened without the fault
//! layer and checked. A failure prints the seed; `ORBITMQ_FAULT_SEED=<seed>` replays one
//! iteration (the same crash point and torn-page choices; the threads' interleaving still
//! varies, so a timing-dependent failure may take a few runs), and
//! `ORBITMQ_FAULT_ITERATIONS=<n>` runs more (or fewer) iterations than the default.
//!
//! Unlike killing the process (which keeps the page cache), these fail when a flush is
//! missing: what no completed `fdatasync` covered is gone.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::fs::fault::{Fault, Mode, Rng};
use super::{
    ConsumerOffsets, FlushDiskType, GetStatus, MessageStore, PutMessage, PutResult, StorageError,
    StoreConfig, Table, TagFilter, TopicConfig,
};

const TOPIC: &str = "f";
const QUEUES: u32 = 3;

/// A data directory on tmpfs when there is one: syncs cost nothing there, and the fault layer,
/// not the device, decides what survives.
fn tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() { tempfile::tempdir_in(shm).unwrap() } else { tempfile::tempdir().unwrap() }
}

/// Small files, so segments, ConsumeQueue and index files rotate within a test.
fn config(dir: &Path, flush: FlushDiskType) -> StoreConfig {
    StoreConfig {
        segment_size: 64 * 1024,
        max_message_size: 16 * 1024,
        // 5000-byte ConsumeQueue and 6304-byte index files: two pages each, so a torn
        // write-back can split them (an entry straddles the page boundary).
        cq_entries_per_file: 250,
        index_slots: 64,
        index_max_entries: 300,
        flush_disk_type: flush,
        flush_interval_ms: 3,
        flush_dirty_bytes: 16 * 1024,
        retention_check_interval_ms: 3_600_000,
        disk_force_clean_ratio: 1.0,
        disk_refuse_ratio: 1.0,
        ..StoreConfig::new(dir)
    }
}

/// The seeds to run: `count` derived from `base`, or the one in `ORBITMQ_FAULT_SEED`.
fn seeds(base: u64, count: u64) -> Vec<u64> {
    if let Ok(s) = std::env::var("ORBITMQ_FAULT_SEED") {
        return vec![s.parse().expect("ORBITMQ_FAULT_SEED is a number")];
    }
    let count =
        std::env::var("ORBITMQ_FAULT_ITERATIONS").map_or(count, |n| n.parse().expect("a number"));
    let mut rng = Rng(base);
    (0..count).map(|_| rng.next()).collect()
}

fn id(w: usize, i: usize) -> String {
    format!("ID-{w}-{i}")
}

/// Message `i` of writer `w`. Its id names it, so a stored copy can be matched to what was
/// submitted.
fn message(w: usize, i: usize) -> PutMessage {
    let body = format!("w{w} i{i} {}", "x".repeat((i * 37 + w * 11) % 900));
    PutMessage::new(TOPIC, (w + i) as u32 % QUEUES, Bytes::from(body))
        .with_tag(if i.is_multiple_of(2) { "even" } else { "odd" })
        .with_keys([format!("k{w}-{i}"), format!("shared-{}", i % 5)])
        .with_message_id(id(w, i))
}

/// An acknowledged append.
#[derive(Debug, Clone)]
struct Ack {
    id: String,
    r: PutResult,
    /// The CommitLog's flushed position, sampled just after the ack.
    flushed_after: u64,
}

impl Ack {
    fn end(&self) -> u64 {
        self.r.commitlog_offset + u64::from(self.r.size)
    }
}

/// What a run submitted and what it got acknowledged.
#[derive(Debug, Default)]
struct Run {
    /// Whether the store opened (and so marked the directory in use) before the crash.
    opened: bool,
    submitted: HashMap<String, PutMessage>,
    acks: Vec<Ack>,
}

/// Opens the store on `dir` (under the fault layer), appends from `writers` tasks until the
/// crash (or `per_writer` each, then crashes), and drops the store.
async fn append_until_crash(
    cfg: &StoreConfig,
    fault: &Fault,
    writers: usize,
    per_writer: usize,
) -> Run {
    let Ok(store) = MessageStore::open(cfg.clone()) else {
        assert!(fault.crashed(), "open failed without a crash");
        return Run::default();
    };
    let run = Arc::new(Mutex::new(Run { opened: true, ..Run::default() }));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        let run = Arc::clone(&run);
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                let m = message(w, i);
                run.lock().unwrap().submitted.insert(id(w, i), m.clone());
                match store.put(m).await {
                    Ok(r) => {
                        let flushed_after = store.inner.shared.log.flushed_pos();
                        run.lock().unwrap().acks.push(Ack { id: id(w, i), r, flushed_after });
                    }
                    Err(_) => break,
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    fault.crash();
    drop(store);
    Arc::into_inner(run).unwrap().into_inner().unwrap()
}

/// What recovery serves, by message id: (commitlog offset, queue id, queue offset).
type Served = HashMap<String, (u64, u32, u64)>;

/// Checks what every reader may rely on after any crash, and returns what is served:
/// - every queue reads from min to max without an error or a gap, each message at its own
///   queue offset, byte-identical to one that was submitted, with a valid CRC (reads check);
/// - the ConsumeQueues and the CommitLog agree: every record in the log is in its queue at the
///   offset it claims, and nothing else is;
/// - lookups by key and by message id return only messages with that key or id;
/// - the store takes appends again, each queue continuing at its end.
async fn check_consistent(store: &MessageStore, run: &Run, ctx: &str) -> Served {
    let mut served = Served::new();
    for q in 0..QUEUES {
        let (min, max) = (store.min_offset(TOPIC, q), store.max_offset(TOPIC, q));
        assert_eq!(min, 0, "{ctx}: queue {q} lost its head");
        let mut off = min;
        while off < max {
            let got = store
                .get_messages(TOPIC, q, off, 32, &TagFilter::All)
                .unwrap_or_else(|e| panic!("{ctx}: queue {q} offset {off}: {e}"));
            assert_eq!(got.status, GetStatus::Found, "{ctx}: queue {q} offset {off} of {max}");
            for m in &got.messages {
                assert_eq!((m.queue_id, m.queue_offset), (q, off), "{ctx}: a gap in queue {q}");
                let id = m.message_id().unwrap_or_else(|| panic!("{ctx}: no id at {off}"));
                let sent = run
                    .submitted
                    .get(id)
                    .unwrap_or_else(|| panic!("{ctx}: {id} was never submitted"));
                assert_eq!(
                    (&m.topic, m.queue_id, &m.body, &m.properties, m.born_timestamp, m.flags),
                    (
                        &sent.topic,
                        sent.queue_id,
                        &sent.body,
                        &sent.properties,
                        sent.born_timestamp,
                        sent.flags
                    ),
                    "{ctx}: {id} differs from what was submitted"
                );
                let dup = served.insert(id.to_owned(), (m.commitlog_offset, q, off));
                assert!(dup.is_none(), "{ctx}: {id} is served twice");
                off += 1;
            }
            assert_eq!(got.next_offset, off, "{ctx}");
        }
    }
    // The CommitLog holds exactly what the queues point at.
    let log = &store.inner.shared.log;
    let mut pos = log.min_offset();
    let mut in_log = 0;
    loop {
        match log.next(pos) {
            super::commitlog::Next::Record(offset, bytes) => {
                let m =
                    store.read_at(offset).unwrap_or_else(|e| panic!("{ctx}: log at {offset}: {e}"));
                let id = m.message_id().unwrap_or_default();
                assert_eq!(
                    served.get(id),
                    Some(&(offset, m.queue_id, m.queue_offset)),
                    "{ctx}: record {id} at {offset} is not where its queue says"
                );
                in_log += 1;
                pos = offset + bytes.len() as u64;
            }
            super::commitlog::Next::Skip(next) => pos = next,
            super::commitlog::Next::End => break,
        }
    }
    assert_eq!(in_log, served.len(), "{ctx}: queues point at records the log does not hold");
    // Lookups never return another key's message.
    for id in run.submitted.keys().take(40) {
        for m in store.query_by_message_id(id, 0, i64::MAX, 8) {
            assert_eq!(m.message_id(), Some(id.as_str()), "{ctx}: lookup of {id}");
        }
    }
    for key in ["shared-0", "shared-3", "k0-1", "k1-7"] {
        for m in store.query_by_key(TOPIC, key, 0, i64::MAX, 64) {
            assert!(m.keys().any(|k| k == key), "{ctx}: lookup of key {key} returned {m:?}");
        }
    }
    // The store goes on where it left off.
    for q in 0..QUEUES {
        let end = store.max_offset(TOPIC, q);
        let r = store.put(PutMessage::new(TOPIC, q, Bytes::from_static(b"after"))).await;
        assert_eq!(r.unwrap().queue_offset, end, "{ctx}: queue {q} does not continue at its end");
    }
    served
}

/// Every ack in `acks` is served at the offsets it was acknowledged with, and found by its id.
fn assert_served(store: &MessageStore, served: &Served, acks: &[&Ack], ctx: &str) {
    for a in acks {
        let at = served.get(&a.id);
        assert_eq!(
            at,
            Some(&(a.r.commitlog_offset, a.r.queue_id, a.r.queue_offset)),
            "{ctx}: acknowledged {} (ends at {}) lost or moved",
            a.id,
            a.end()
        );
        let by_id = store.query_by_message_id(&a.id, 0, i64::MAX, 4);
        assert!(
            by_id.iter().any(|m| m.commitlog_offset == a.r.commitlog_offset),
            "{ctx}: acknowledged {} not found by its id",
            a.id
        );
    }
}

/// Runs one crash iteration: appends, crash after a random operation, `mode`, reopen. Returns
/// the run, the reopened store and what it serves.
async fn crash_iteration(
    seed: u64,
    flush: FlushDiskType,
    mode: Mode,
    writers: usize,
    per_writer: usize,
    max_ops: u64,
) -> Crashed {
    let dir = tempdir();
    let cfg = config(dir.path(), flush);
    let mut rng = Rng(seed);
    let crash_at = 1 + rng.below(max_ops);
    // Every third run crashes right after a checkpoint became durable, the moment a checkpoint
    // that claims too much (entries or bytes not yet synced) would be found out.
    let after_checkpoint = rng.below(3) == 0;
    let crash = if after_checkpoint {
        format!("crash after the {}th fsync of the data directory", crash_at % 40 + 1)
    } else {
        format!("crash after op {crash_at}")
    };
    let ctx = format!("seed {seed} ({flush:?}, {mode:?}, {crash})");
    let run = {
        let fault = Fault::register(dir.path());
        if after_checkpoint {
            fault.crash_after_dir_sync(dir.path(), crash_at % 40 + 1);
        } else {
            fault.crash_after(crash_at);
        }
        let run = append_until_crash(&cfg, &fault, writers, per_writer).await;
        fault.apply(mode).unwrap();
        run
    };
    let (store, report) = MessageStore::open_with_report(config(dir.path(), flush))
        .unwrap_or_else(|e| panic!("{ctx}: reopen failed: {e}"));
    assert_eq!(report.unclean_shutdown, run.opened, "{ctx}: clean or not");
    let served = check_consistent(&store, &run, &ctx).await;
    Crashed { run, store, served, ctx, cut: report.truncated_at.is_some(), _dir: dir }
}

/// One crash iteration, reopened and checked for consistency.
struct Crashed {
    run: Run,
    store: MessageStore,
    served: Served,
    ctx: String,
    /// Whether recovery cut a torn or partly written CommitLog tail.
    cut: bool,
    _dir: tempfile::TempDir,
}

/// Sync flush: every acknowledged append survives any crash, with its offsets, through every
/// read path; queues stay contiguous and agree with the CommitLog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_flush_loses_no_acknowledged_append_at_any_crash_point() {
    let started = Instant::now();
    let mut acked = 0;
    for seed in seeds(0x5EED_0001, 300) {
        let c = crash_iteration(seed, FlushDiskType::Sync, Mode::DropAll, 3, 40, 1200).await;
        let acks: Vec<&Ack> = c.run.acks.iter().collect();
        assert_served(&c.store, &c.served, &acks, &c.ctx);
        acked += acks.len();
    }
    assert!(acked > 500, "too few appends were acknowledged before the crashes: {acked}");
    eprintln!("sync flush: {acked} acks checked in {:?}", started.elapsed());
}

/// Async flush: a crash loses at most the unflushed tail. What survives is a prefix of the
/// acknowledged appends in CommitLog order, and it holds every append that ended at or below a
/// flushed position the CommitLog reported before the crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_flush_loses_at_most_the_unflushed_tail() {
    let started = Instant::now();
    let (mut lost, mut kept) = (0, 0);
    for seed in seeds(0x5EED_0002, 300) {
        let c = crash_iteration(seed, FlushDiskType::Async, Mode::DropAll, 3, 60, 900).await;
        check_prefix_and_flushed(&c.store, &c.run, &c.served, &c.ctx);
        let survived = c.run.acks.iter().filter(|a| c.served.contains_key(&a.id)).count();
        kept += survived;
        lost += c.run.acks.len() - survived;
    }
    assert!(kept > 500, "too few appends survived to test anything: {kept}");
    assert!(lost > 0, "no crash ever lost an unflushed append: the test does not crash early");
    eprintln!("async flush: {kept} acks kept, {lost} lost, in {:?}", started.elapsed());
}

fn check_prefix_and_flushed(store: &MessageStore, run: &Run, served: &Served, ctx: &str) {
    let mut acks: Vec<&Ack> = run.acks.iter().collect();
    acks.sort_by_key(|a| a.r.commitlog_offset);
    let kept = acks.iter().take_while(|a| served.contains_key(&a.id)).count();
    if let Some(hole) = acks.get(kept)
        && let Some(later) = acks.iter().skip(kept).find(|a| served.contains_key(&a.id))
    {
        panic!(
            "{ctx}: {} at {} lost but {} at {} kept",
            hole.id, hole.r.commitlog_offset, later.id, later.r.commitlog_offset
        );
    }
    let flushed = run.acks.iter().map(|a| a.flushed_after).max().unwrap_or(0);
    let durable: Vec<&Ack> = acks.iter().copied().filter(|a| a.end() <= flushed).collect();
    assert_served(store, served, &durable, &format!("{ctx}, flushed to {flushed}"));
}

/// Torn writes: after a crash that wrote back a random subset of the dirty pages, recovery
/// serves only whole, CRC-valid records that were submitted, every queue reads from min to max
/// without an error, lookups return only their own key, and everything flushed survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_writes_never_serve_a_partial_record() {
    let started = Instant::now();
    let mut cuts = 0;
    for seed in seeds(0x5EED_0003, 150) {
        let flush = if seed % 2 == 0 { FlushDiskType::Sync } else { FlushDiskType::Async };
        let mode = Mode::Torn(seed);
        let c = crash_iteration(seed, flush, mode, 3, 250, 5000).await;
        let flushed = c.run.acks.iter().map(|a| a.flushed_after).max().unwrap_or(0);
        let durable: Vec<&Ack> = match flush {
            FlushDiskType::Sync => c.run.acks.iter().collect(),
            FlushDiskType::Async => c.run.acks.iter().filter(|a| a.end() <= flushed).collect(),
        };
        assert_served(&c.store, &c.served, &durable, &c.ctx);
        cuts += usize::from(c.cut);
    }
    if std::env::var("ORBITMQ_FAULT_SEED").is_err() {
        assert!(cuts > 0, "no crash left a torn CommitLog tail to cut: nothing was tested");
    }
    eprintln!("torn writes: {cuts} torn tails cut, in {:?}", started.elapsed());
}

/// A ConsumeQueue file written back without the one before it (one outcome of a torn
/// write-back), for records the CommitLog lost, must not leave the queue claiming entries it
/// does not have: readers would stall at the hole and new messages would get offsets past it.
/// The dispatcher writes a queue's tail itself once it passes 64 KiB (3,277 entries), so 4,000
/// appends put ConsumeQueue files on disk while nothing is synced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_file_written_back_alone_leaves_no_hole() {
    let dir = tempdir();
    // No background flush or checkpoint: only the creation of files is durable.
    let cfg = StoreConfig {
        cq_entries_per_file: 64,
        flush_interval_ms: 3_600_000,
        flush_dirty_bytes: u64::MAX / 2,
        ..config(dir.path(), FlushDiskType::Async)
    };
    let second = dir.path().join("consumequeue/f/0/00000000000000000064");
    {
        let fault = Fault::register(dir.path());
        let store = MessageStore::open(cfg.clone()).unwrap();
        let batch: Vec<PutMessage> =
            (0..4000).map(|i| PutMessage::new(TOPIC, 0, Bytes::from(format!("m{i}")))).collect();
        for chunk in batch.chunks(500) {
            store.put_batch(chunk.to_vec()).await.unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.dispatched_offset() < store.commitlog_max_offset() {
            assert!(Instant::now() < deadline, "dispatch did not catch up");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(second.exists(), "the dispatcher wrote the queue's tail behind");
        fault.crash();
        drop(store);
        // The second queue file (entries 64..128) reached the disk; nothing else did.
        fault.apply(Mode::KeepOnly("/consumequeue/f/0/00000000000000000064")).unwrap();
    }
    let store = MessageStore::open(cfg).unwrap();
    assert_eq!(store.commitlog_max_offset(), 0, "nothing of the CommitLog was synced");
    let (min, max) = (store.min_offset(TOPIC, 0), store.max_offset(TOPIC, 0));
    assert_eq!(min, max, "the queue claims entries [{min}, {max}) for records the CommitLog lost");
    let r = store.put(PutMessage::new(TOPIC, 0, Bytes::from_static(b"next"))).await.unwrap();
    assert_eq!(r.queue_offset, max, "a new message follows the queue's end");
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.dispatched_offset() < store.commitlog_max_offset() {
        assert!(Instant::now() < deadline, "dispatch did not catch up");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let got = store.get_messages(TOPIC, 0, r.queue_offset, 1, &TagFilter::All).unwrap();
    assert_eq!(
        got.messages.len(),
        1,
        "the new message is readable at its offset: {:?}",
        got.status
    );
}

/// Sync flush means durable at the ack: appends from many writers, then a crash right after
/// the last ack, before any background flush or close: all of them are there. (A reopen after
/// a clean close could not tell: close flushes everything.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_flush_acknowledges_only_durable_appends() {
    let dir = tempdir();
    // A background flush or checkpoint must not hide a missing sync: make them rare.
    let cfg =
        StoreConfig { flush_interval_ms: 3_600_000, ..config(dir.path(), FlushDiskType::Sync) };
    let run = {
        let fault = Fault::register(dir.path());
        let run = append_until_crash(&cfg, &fault, 8, 50).await;
        fault.apply(Mode::DropAll).unwrap();
        run
    };
    assert_eq!(run.acks.len(), 400);
    let store = MessageStore::open(cfg).unwrap();
    let served = check_consistent(&store, &run, "sync crash").await;
    assert_served(&store, &served, &run.acks.iter().collect::<Vec<_>>(), "sync crash");
}

/// Consumer offsets and topic configs (saved with `atomic_write`) read back after any crash as
/// one version that was saved, never torn, and never older than the last save that returned.
#[test]
fn metadata_is_the_old_or_the_new_version_never_torn() {
    for seed in seeds(0x5EED_0004, 300) {
        let dir = tempdir();
        let offsets_path = dir.path().join("consumer_offsets.json");
        let topics_path = dir.path().join("topics.json");
        let mut rng = Rng(seed);
        let mode = if rng.coin() { Mode::DropAll } else { Mode::Torn(seed) };
        let crash_at = 1 + rng.below(120);
        let ctx = format!("seed {seed} ({mode:?}, crash after op {crash_at})");
        let mut saved = 0u64;
        {
            let fault = Fault::register(dir.path());
            fault.crash_after(crash_at);
            let offsets = ConsumerOffsets::open(offsets_path.clone()).unwrap();
            let topics: Table<TopicConfig> = Table::open(topics_path.clone()).unwrap();
            for v in 1..=40u64 {
                offsets.commit("g", "t", 0, v);
                offsets.commit("g", "t", 1, v * 1000);
                topics.put("t", topic_config(v));
                if offsets.save().is_err() || topics.save().is_err() {
                    break;
                }
                saved = v;
            }
            fault.crash();
            fault.apply(mode).unwrap();
        }
        let offsets = ConsumerOffsets::open(offsets_path)
            .unwrap_or_else(|e| panic!("{ctx}: offsets torn: {e}"));
        let topics: Table<TopicConfig> =
            Table::open(topics_path).unwrap_or_else(|e| panic!("{ctx}: topics torn: {e}"));
        let v = offsets.get("g", "t", 0).unwrap_or(0);
        assert_eq!(offsets.get("g", "t", 1).unwrap_or(0), v * 1000, "{ctx}: mixed versions");
        assert!(v >= saved, "{ctx}: offsets at version {v}, but version {saved} was saved");
        assert!(v <= saved + 1, "{ctx}: offsets at version {v}, never saved");
        let t = topics.get("t").map_or(0, |t| u64::from(t.read_queues));
        assert!(t >= saved && t <= saved + 1, "{ctx}: topics at version {t}, saved {saved}");
        if t > 0 {
            assert_eq!(topics.get("t"), Some(topic_config(t)), "{ctx}: topic config torn");
        }
    }
}

fn topic_config(v: u64) -> TopicConfig {
    TopicConfig {
        read_queues: v as u32,
        write_queues: v as u32,
        perm: 6,
        message_type: format!("NORMAL-{v}"),
    }
}

/// After a failed ConsumeQueue or index flush the kernel may have dropped the dirty pages, so
/// the store stops taking appends (poisoned) and does not advance the checkpoint; the restart
/// rebuilds the queues and the index from the CommitLog, and every acknowledged append is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_queue_or_index_flush_poisons_the_store() {
    for target in ["/consumequeue/", "/index/"] {
        let dir = tempdir();
        let cfg = config(dir.path(), FlushDiskType::Sync);
        let fault = Fault::register(dir.path());
        let store = MessageStore::open(cfg.clone()).unwrap();
        let mut run = Run::default();
        let put = async |i: usize, run: &mut Run| {
            let m = message(0, i);
            run.submitted.insert(id(0, i), m.clone());
            let r = store.put(m).await;
            if let Ok(r) = &r {
                let flushed_after = store.inner.shared.log.flushed_pos();
                run.acks.push(Ack { id: id(0, i), r: *r, flushed_after });
            }
            r
        };
        // Enough that the index has rotated: the restart must rebuild from the checkpoint, not
        // from the start of the only index file.
        for i in 0..250 {
            put(i, &mut run).await.unwrap();
        }
        // Dispatch runs behind the appends: the checkpoint must cover all 250.
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.dispatched_offset() < store.commitlog_max_offset() {
            assert!(Instant::now() < deadline, "dispatch did not catch up");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        store.checkpoint().unwrap();
        assert!(std::fs::read_dir(dir.path().join("index")).unwrap().count() > 1);
        fault.fail_next_sync(target);
        // Append until the failed flush refuses appends (bounded).
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut i = 250;
        let refusal = loop {
            match put(i, &mut run).await {
                Ok(_) => i += 1,
                Err(e) => break e,
            }
            assert!(
                Instant::now() < deadline,
                "{target}: still taking appends after a failed flush"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        assert_eq!(fault.failed_syncs(), 1, "{target}");
        assert!(matches!(refusal, StorageError::Poisoned(_)), "{target}: {refusal}");
        // Never synced again: a sync that succeeds after a failed one would make entries
        // written after the dropped pages durable, a hole in a file that looks whole.
        let derived = || fault.syncs_of("/consumequeue/") + fault.syncs_of("/index/");
        let synced = derived();
        assert!(matches!(store.checkpoint(), Err(StorageError::Poisoned(_))), "{target}");
        assert_eq!(derived(), synced, "{target}: a poisoned store synced queue or index files");
        drop(store);
        fault.apply(Mode::DropAll).unwrap();
        drop(fault);
        let (store, report) = MessageStore::open_with_report(cfg).unwrap();
        assert!(report.unclean_shutdown, "{target}: a poisoned store must not close cleanly");
        let ctx = format!("after a failed flush of {target}");
        let served = check_consistent(&store, &run, &ctx).await;
        assert_served(&store, &served, &run.acks.iter().collect::<Vec<_>>(), &ctx);
    }
}

/// The fault layer itself: an unsynced write is undone, a synced one kept, a torn crash keeps
/// some pages of a multi-page write and undoes others, new names vanish without a directory
/// fsync, and a rename is undone to what the target held.
#[test]
fn the_fault_layer_undoes_exactly_what_no_sync_covered() {
    use super::fs::{self, DataFile};
    let dir = tempdir();
    let root = dir.path();
    let durable = root.join("durable");
    let fresh = root.join("fresh");
    std::fs::write(root.join("meta"), b"old").unwrap();
    {
        let fault = Fault::register(root);
        let f = DataFile::create_new(&durable).unwrap();
        fs::sync_parent(&durable).unwrap();
        f.write_at(0, b"synced").unwrap();
        f.sync_data().unwrap();
        f.write_at(0, b"lost!!").unwrap();
        f.write_at(100, b"grown").unwrap();
        fs::atomic_write(&root.join("meta"), b"new").unwrap();
        let g = DataFile::create_new(&fresh).unwrap();
        g.write_at(0, b"x").unwrap();
        g.sync_data().unwrap();
        fault.crash();
        assert!(f.write_at(0, b"after").is_err(), "writes after the crash must fail");
        fault.apply(Mode::DropAll).unwrap();
    }
    assert_eq!(std::fs::read(&durable).unwrap(), b"synced");
    assert!(!fresh.exists(), "a name whose directory was never fsynced survived");
    assert_eq!(std::fs::read(root.join("meta")).unwrap(), b"new", "a synced rename was undone");

    // Torn: over seeds, a 4-page unsynced write keeps some pages and undoes others.
    let (mut kept, mut undone) = (0, 0);
    for seed in 1..20u64 {
        let dir = tempdir();
        let path = dir.path().join("torn");
        std::fs::write(&path, vec![0u8; 4 * 4096]).unwrap();
        {
            let fault = Fault::register(dir.path());
            let f = DataFile::open(&path).unwrap();
            f.write_at(0, &vec![1u8; 4 * 4096]).unwrap();
            fault.crash();
            fault.apply(Mode::Torn(seed)).unwrap();
        }
        let b = std::fs::read(&path).unwrap();
        for page in b.chunks(4096) {
            assert!(page.iter().all(|x| *x == page[0]), "a page was torn inside");
            if page[0] == 1 { kept += 1 } else { undone += 1 }
        }
    }
    assert!(kept > 0 && undone > 0, "kept {kept} pages, undid {undone}");

    // A rename not followed by a directory fsync is undone to the old content.
    let dir = tempdir();
    let meta = dir.path().join("meta");
    std::fs::write(&meta, b"old").unwrap();
    {
        let fault = Fault::register(dir.path());
        let tmp = dir.path().join("meta.tmp");
        let f = DataFile::create_new(&tmp).unwrap();
        f.write_at(0, b"new").unwrap();
        f.sync_data().unwrap();
        fault.rename(&tmp, &meta).unwrap();
        fault.crash();
        fault.apply(Mode::DropAll).unwrap();
    }
    assert_eq!(std::fs::read(&meta).unwrap(), b"old");
    assert!(!dir.path().join("meta.tmp").exists());

    // The crash point: the N-th operation completes, every later one fails.
    let mut rng = Rng(7);
    for _ in 0..10 {
        let dir = tempdir();
        let n = 1 + rng.below(6);
        let fault = Fault::register(dir.path());
        fault.crash_after(n);
        let f = DataFile::create_new(&dir.path().join("a")).unwrap();
        let done = (0..8u64).take_while(|i| f.write_at(*i, b"x").is_ok()).count() as u64;
        assert_eq!(done + 1, n, "crash after op {n}");
        assert!(fault.crashed());
    }

    // A failed sync drops the unsynced writes (the kernel's view after a failed writeback), and
    // a retried sync succeeds without them.
    let dir = tempdir();
    let path = dir.path().join("b");
    std::fs::write(&path, b"old").unwrap();
    {
        let fault = Fault::register(dir.path());
        let f = DataFile::open(&path).unwrap();
        f.write_at(0, b"new").unwrap();
        fault.fail_next_sync("/b");
        assert!(f.sync_data().is_err());
        assert_eq!(fault.failed_syncs(), 1);
        f.sync_data().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }
}
