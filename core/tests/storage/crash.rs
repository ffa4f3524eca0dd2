//! Process crash: a child process appends with sync flush and is killed with SIGKILL; the
//! reopened store recovers from the unclean shutdown (abort marker seen, the kernel released
//! the directory lock, ConsumeQueues and the index rebuilt past the checkpoint) and serves every
//! append the child saw acknowledged, through every read path, then takes appends again.
//!
//! This is not a durability test: SIGKILL keeps the page cache, so everything the child wrote
//! survives whether or not it was ever flushed (it passes with `CommitLog::flush_to` not
//! syncing at all). What a power loss keeps is tested with the fault-injecting file layer, in
//! the core crate's `storage::fault_tests`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use orbitmq_core::storage::{FlushDiskType, MessageStore, StoreConfig, TagFilter};

use crate::{msg, small_config};

const DIR_ENV: &str = "ORBITMQ_CRASH_CHILD_DIR";

/// Run by `sigkill_then_reopen_recovers_and_serves_every_acked_append` in a child process;
/// never on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child half of sigkill_then_reopen_recovers_and_serves_every_acked_append"]
async fn crash_child_appender() {
    let dir = std::env::var(DIR_ENV).expect("run by the crash test only");
    let cfg = StoreConfig { flush_disk_type: FlushDiskType::Sync, ..small_config(dir.as_ref()) };
    let store = MessageStore::open(cfg).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for w in 0..4usize {
        let store = store.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            for i in 0.. {
                let n = i * 4 + w;
                let r = store.put(msg("crash", (n % 3) as u32, n)).await.unwrap();
                tx.send(format!(
                    "ACK {n} {} {} {}",
                    r.queue_id, r.queue_offset, r.commitlog_offset
                ))
                .unwrap();
            }
        });
    }
    let mut out = std::io::stdout().lock();
    while let Some(line) = rx.recv().await {
        writeln!(out, "{line}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn sigkill_then_reopen_recovers_and_serves_every_acked_append() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash::crash_child_appender",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acks = Vec::new();
    while acks.len() < 400 {
        let line = lines.next().expect("child ended early").unwrap();
        if let Some(rest) = line.strip_prefix("ACK ") {
            acks.push(rest.to_owned());
        }
    }
    child.kill().unwrap(); // SIGKILL
    // Everything the child printed before it died was acknowledged too.
    for line in lines.map_while(Result::ok) {
        if let Some(rest) = line.strip_prefix("ACK ") {
            acks.push(rest.to_owned());
        }
    }
    child.wait().unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (store, report) = MessageStore::open_with_report(small_config(dir.path())).unwrap();
        assert!(report.unclean_shutdown);
        for ack in &acks {
            let f: Vec<u64> = ack.split(' ').map(|x| x.parse().unwrap()).collect();
            let (n, queue, queue_offset, offset) = (f[0] as usize, f[1] as u32, f[2], f[3]);
            let expected = msg("crash", queue, n);
            let by_queue =
                store.get_messages("crash", queue, queue_offset, 1, &TagFilter::All).unwrap();
            let m = by_queue.messages.first().unwrap_or_else(|| panic!("ack {ack} lost"));
            assert_eq!((m.commitlog_offset, &m.body), (offset, &expected.body));
            let by_id = store.read_by_offset_msg_id(&store.offset_msg_id(offset)).unwrap();
            assert_eq!(by_id.body, expected.body);
            let by_key = store.query_by_message_id(&format!("01ID{n:030}"), 0, i64::MAX, 4);
            assert!(by_key.iter().any(|m| m.commitlog_offset == offset), "index lost {ack}");
        }
        // The store takes writes again, continuing every queue where it was.
        let before = store.max_offset("crash", 0);
        let r = store.put(msg("crash", 0, 1)).await.unwrap();
        assert_eq!(r.queue_offset, before);
    });
}
