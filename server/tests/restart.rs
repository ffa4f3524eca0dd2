//! Consumption, delay and transaction state across restarts of the real binary: a clean stop
//! (SIGTERM) keeps every ack, in-flight message and receipt handle; a SIGKILL under sync flush
//! replays at most what changed since the last checkpoint, and keeps delay and transaction state.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use orbitmq_core::protocol::v2::{self, Code};
use orbitmq_tests::process::ServerProcess;
use orbitmq_tests::{
    Client, code, delay_message, message, now_ms, resource, sys, transaction_message,
};

const INVISIBLE: Option<Duration> = Some(Duration::from_secs(10));
const POLL: Duration = Duration::from_secs(5);

fn start(dir: &Path) -> ServerProcess {
    ServerProcess::start_sync(Path::new(env!("CARGO_BIN_EXE_orbitmq")), dir)
}

async fn send_n(c: &mut Client, topic: &str, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("01{prefix}{i:04}");
        let r = c.send(message(topic, &id, "x")).await;
        assert_eq!(code(r.status.as_ref()), Code::Ok);
        ids.push(id);
    }
    ids
}

async fn receive_all(c: &mut Client, group: &str, topic: &str, n: usize) -> Vec<v2::Message> {
    let mut got = Vec::new();
    for _ in 0..10 {
        if got.len() >= n {
            break;
        }
        got.extend(c.receive(group, topic, "*", 32, INVISIBLE, POLL).await.1);
    }
    assert_eq!(got.len(), n);
    got
}

/// Every message id received (and acked) for `group` until a receive comes back empty after
/// the invisible time of anything received before the call has passed.
async fn drain(c: &mut Client, group: &str, topic: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let quiet_after = std::time::Instant::now() + INVISIBLE.unwrap();
    loop {
        let (st, got) = c.receive(group, topic, "*", 32, INVISIBLE, POLL).await;
        if got.is_empty() {
            assert_eq!(st, Code::MessageNotFound);
            if std::time::Instant::now() >= quiet_after {
                return ids;
            }
            continue;
        }
        for m in &got {
            ids.push(sys(m).message_id.clone());
            assert_eq!(c.ack(group, topic, m).await, Code::Ok);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_restart_keeps_acks_inflight_messages_and_handles() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let mut c = Client::connect(server.addr, "c1").await;
    let ids = send_n(&mut c, "clean", "CL", 20).await;
    let got = receive_all(&mut c, "g", "clean", 20).await;
    // Ack every other message: acks above unacked offsets must stay acked too.
    let (acked, unacked): (Vec<&v2::Message>, Vec<&v2::Message>) = got
        .iter()
        .partition(|m| ids.iter().position(|i| *i == sys(m).message_id).unwrap() % 2 == 0);
    for m in &acked {
        assert_eq!(c.ack("g", "clean", m).await, Code::Ok);
    }
    assert!(server.stop().success(), "SIGTERM must stop it cleanly");

    let server = start(dir.path());
    let mut c = Client::connect(server.addr, "c2").await;
    // A handle from before the restart still acks.
    assert_eq!(c.ack("g", "clean", unacked[0]).await, Code::Ok);
    // The other unacked messages come back after their invisible time; nothing acked does.
    let mut back: Vec<String> = drain(&mut c, "g", "clean").await;
    back.sort();
    let mut want: Vec<String> = unacked[1..].iter().map(|m| sys(m).message_id.clone()).collect();
    want.sort();
    assert_eq!(back, want);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_replays_at_most_the_last_checkpoint_and_keeps_delay_and_transaction_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let mut c = Client::connect(server.addr, "c1").await;

    // Delay: one due in 6 s, one recalled.
    let due = now_ms() + 6_000;
    c.send(delay_message("kd", "01KDUE", due)).await;
    let r = c.send(delay_message("kd", "01KREC", now_ms() + 5_000)).await;
    let recall = v2::RecallMessageRequest {
        topic: Some(resource("kd")),
        recall_handle: r.entries[0].recall_handle.clone(),
    };
    assert_eq!(
        code(c.raw.recall_message(recall).await.unwrap().get_ref().status.as_ref()),
        Code::Ok
    );
    // Transactions: one committed, one rolled back, one left open.
    for id in ["01KTC", "01KTR", "01KTO"] {
        assert_eq!(code(c.send(transaction_message("kt", id)).await.status.as_ref()), Code::Ok);
    }
    assert_eq!(
        c.end_transaction(
            "kt",
            "01KTC",
            v2::TransactionResolution::Commit,
            v2::TransactionSource::SourceClient
        )
        .await,
        Code::Ok
    );
    assert_eq!(
        c.end_transaction(
            "kt",
            "01KTR",
            v2::TransactionResolution::Rollback,
            v2::TransactionSource::SourceClient
        )
        .await,
        Code::Ok
    );

    // Consumption over 8 queues: ids 8..20 acked (above the unacked ids 0..5 in their
    // queues), then a checkpoint interval passes, then ids 5..8 acked, then the kill.
    let ids = send_n(&mut c, "kc", "KC", 20).await;
    let got = receive_all(&mut c, "g", "kc", 20).await;
    let pos = |m: &v2::Message| ids.iter().position(|i| *i == sys(m).message_id).unwrap();
    for m in got.iter().filter(|m| pos(m) >= 8) {
        assert_eq!(c.ack("g", "kc", m).await, Code::Ok);
    }
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    for m in got.iter().filter(|m| (5..8).contains(&pos(m))) {
        assert_eq!(c.ack("g", "kc", m).await, Code::Ok);
    }
    server.kill();

    let server = start(dir.path());
    let mut c = Client::connect(server.addr, "c2").await;
    // At-least-once: every unacked message comes back; of the acked ones, only those acked
    // after the last checkpoint may.
    let back: HashSet<String> = drain(&mut c, "g", "kc").await.into_iter().collect();
    let unacked: HashSet<String> = ids[..5].iter().cloned().collect();
    let replayable: HashSet<String> = ids[..8].iter().cloned().collect();
    assert!(unacked.is_subset(&back), "lost unacked messages: {:?}", unacked.difference(&back));
    assert!(
        back.is_subset(&replayable),
        "acked before the checkpoint but replayed: {:?}",
        back.difference(&replayable)
    );

    // The delay message fires at its time, the recalled one never.
    let mut delayed = drain(&mut c, "g", "kd").await;
    while now_ms() < due + 2_000 {
        delayed.extend(drain(&mut c, "g", "kd").await);
    }
    assert_eq!(delayed, ["01KDUE"]);
    // The open transaction is still open: committing it now delivers it; the committed one
    // was delivered, the rolled-back one never.
    assert_eq!(
        c.end_transaction(
            "kt",
            "01KTO",
            v2::TransactionResolution::Commit,
            v2::TransactionSource::SourceClient
        )
        .await,
        Code::Ok
    );
    let mut tx = drain(&mut c, "g", "kt").await;
    tx.sort();
    assert_eq!(tx, ["01KTC", "01KTO"]);
    drop(server);
}
