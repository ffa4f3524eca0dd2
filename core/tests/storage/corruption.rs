//! Torn and bit-flipped tails: open succeeds, the valid prefix is kept, nothing after the first
//! bad record is served. Seeded loops, so a failure names its seed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use orbitmq_core::storage::{MessageStore, TagFilter};

use crate::{msg, small_config};

/// xorshift64*: deterministic, dependency-free randomness.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn last_segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> =
        std::fs::read_dir(dir.join("commitlog")).unwrap().map(|e| e.unwrap().path()).collect();
    segs.sort();
    segs.pop().unwrap()
}

/// (commitlog offset, end) of every record written.
async fn write_some(dir: &Path, n: usize) -> Vec<(u64, u64)> {
    let store = MessageStore::open(small_config(dir)).unwrap();
    let mut recs = Vec::new();
    for i in 0..n {
        let r = store.put(msg("c", (i % 3) as u32, i)).await.unwrap();
        recs.push((r.commitlog_offset, r.commitlog_offset + u64::from(r.size)));
    }
    store.close().unwrap();
    recs
}

fn served(store: &MessageStore) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    for q in 0..3 {
        let mut off = 0;
        loop {
            let r = store.get_messages("c", q, off, 100, &TagFilter::All).unwrap();
            out.extend(r.messages.iter().map(|m| m.commitlog_offset));
            if r.messages.is_empty() {
                break;
            }
            off = r.next_offset;
        }
    }
    out
}

async fn damaged_open_keeps_valid_prefix(seed: u64, flip: bool) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let dir = tempfile::tempdir().unwrap();
    let n = 100 + rng.below(300) as usize;
    let recs = write_some(dir.path(), n).await;
    let seg_path = last_segment(dir.path());
    let seg_base: u64 = seg_path.file_name().unwrap().to_str().unwrap().parse().unwrap();
    let data_end = recs.last().unwrap().1;
    let mut bytes = std::fs::read(&seg_path).unwrap();
    let span = data_end - seg_base + 64; // also hit the zeros just after the data
    let damage_at = if flip {
        let mut first = u64::MAX;
        for _ in 0..=rng.below(4) {
            let p = rng.below(span);
            bytes[p as usize] ^= 1 << rng.below(8);
            first = first.min(seg_base + p);
        }
        std::fs::write(&seg_path, &bytes).unwrap();
        first
    } else {
        let p = rng.below(span);
        std::fs::OpenOptions::new().write(true).open(&seg_path).unwrap().set_len(p).unwrap();
        seg_base + p
    };

    let (store, report) = MessageStore::open_with_report(small_config(dir.path()))
        .unwrap_or_else(|e| panic!("seed {seed}: open failed: {e}"));
    let expected: BTreeSet<u64> =
        recs.iter().filter(|(_, end)| *end <= damage_at).map(|(off, _)| *off).collect();
    let got = served(&store);
    assert_eq!(got, expected, "seed {seed} flip={flip} damage at {damage_at}: {report:?}");
    // The log ends after the last kept record, or at the damaged segment's start when that
    // segment kept nothing.
    let kept_end =
        recs.iter().map(|r| r.1).filter(|e| *e <= damage_at).max().unwrap_or(0).max(seg_base);
    assert_eq!(store.commitlog_max_offset(), kept_end, "seed {seed}");
    // The store is usable: new appends land at the cut and are served.
    let r = store.put(msg("c", 0, 1)).await.unwrap();
    assert_eq!(r.commitlog_offset, kept_end, "seed {seed}");
    store.close().unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    assert_eq!(served(&store).len(), expected.len() + 1, "seed {seed}: reopen after repair");
}

#[tokio::test]
async fn truncated_tail_keeps_the_valid_prefix() {
    for seed in 0..40 {
        damaged_open_keeps_valid_prefix(seed, false).await;
    }
}

#[tokio::test]
async fn flipped_bits_cut_at_the_first_bad_record() {
    for seed in 0..40 {
        damaged_open_keeps_valid_prefix(seed, true).await;
    }
}

#[tokio::test]
async fn garbage_in_every_other_file_never_panics() {
    for seed in 0..10u64 {
        let mut rng = Rng(seed + 7);
        let dir = tempfile::tempdir().unwrap();
        write_some(dir.path(), 150).await;
        let mut files = Vec::new();
        for sub in ["consumequeue/c/0", "consumequeue/c/1", "index"] {
            for e in std::fs::read_dir(dir.path().join(sub)).unwrap() {
                files.push(e.unwrap().path());
            }
        }
        files.push(dir.path().join("checkpoint"));
        for f in &files {
            let mut b = std::fs::read(f).unwrap();
            for _ in 0..50 {
                let p = rng.below(b.len().min(8192) as u64) as usize;
                b[p] = rng.next() as u8;
            }
            std::fs::write(f, &b).unwrap();
        }
        // Opening must not panic; reads may report corruption but must not panic either.
        if let Ok(store) = MessageStore::open(small_config(dir.path())) {
            for q in 0..3 {
                let _ = store.get_messages("c", q, 0, 500, &TagFilter::All);
            }
            let _ = store.query_by_key("c", "key-3", 0, i64::MAX, 10);
        }
    }
}
