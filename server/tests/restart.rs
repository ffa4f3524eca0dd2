//! Consumption, delay and transaction state across restarts of the real binary: a clean stop
//! (SIGTERM) keeps every ack, in-flight message and receipt handle; a SIGKILL under sync flush
//! replays at most what changed since the last checkpoint, and keeps delay and transaction state.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use orbitmq_core::client::{
    ClientConfig, FilterExpression, Message, MessageView, Producer, SimpleConsumer,
    TransactionChecker, TransactionResolution,
};
use orbitmq_tests::now_ms;
use orbitmq_tests::process::ServerProcess;

const INVISIBLE: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_secs(5);

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_orbitmq"))
}

/// Leaves an open transaction open when the server checks back, so only an explicit commit
/// can deliver it.
struct KeepOpen;

#[async_trait::async_trait]
impl TransactionChecker for KeepOpen {
    async fn check(&self, _message: MessageView) -> TransactionResolution {
        TransactionResolution::Unknown
    }
}

fn config(server: &ServerProcess) -> ClientConfig {
    ClientConfig::new(server.addr.to_string())
}

async fn producer(server: &ServerProcess, topics: &[&str]) -> Producer {
    let p = Producer::builder(config(server))
        .topics(topics.iter().copied())
        .transaction_checker(std::sync::Arc::new(KeepOpen))
        .build()
        .unwrap();
    p.start().await.unwrap();
    p
}

fn consumer(server: &ServerProcess, group: &str, topics: &[&str]) -> SimpleConsumer {
    let mut b = SimpleConsumer::builder(config(server), group).await_duration(POLL);
    for t in topics {
        b = b.subscribe(*t, FilterExpression::all());
    }
    b.build().unwrap()
}

/// Sends `n` messages to `topic`; their message ids, in order.
async fn send_n(p: &Producer, topic: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let r = p.send(Message::builder(topic).body("x").keys([format!("{i}")]).build()).await;
        ids.push(r.unwrap().message_id);
    }
    ids
}

async fn receive_all(c: &SimpleConsumer, n: usize) -> Vec<MessageView> {
    let mut got = Vec::new();
    for _ in 0..10 {
        if got.len() >= n {
            break;
        }
        got.extend(c.receive(32, INVISIBLE).await.unwrap());
    }
    assert_eq!(got.len(), n);
    got
}

/// Every message id received (and acked) by `c` until a receive comes back empty after the
/// invisible time of anything received before the call has passed.
async fn drain(c: &SimpleConsumer) -> Vec<String> {
    let mut ids = Vec::new();
    let quiet_after = std::time::Instant::now() + INVISIBLE;
    loop {
        let got = c.receive(32, INVISIBLE).await.unwrap();
        if got.is_empty() {
            if std::time::Instant::now() >= quiet_after {
                return ids;
            }
            continue;
        }
        for m in &got {
            ids.push(m.message_id.clone());
            c.ack(m).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_restart_keeps_acks_inflight_messages_and_handles() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start_sync(bin(), dir.path());
    let p = producer(&server, &["clean"]).await;
    let ids = send_n(&p, "clean", 20).await;
    let c = consumer(&server, "g", &["clean"]);
    let got = receive_all(&c, 20).await;
    // Ack every other message: acks above unacked offsets must stay acked too.
    let (acked, unacked): (Vec<&MessageView>, Vec<&MessageView>) =
        got.iter().partition(|m| ids.iter().position(|i| *i == m.message_id).unwrap() % 2 == 0);
    for m in &acked {
        c.ack(m).await.unwrap();
    }
    p.shutdown().await;
    c.shutdown().await;
    assert!(server.stop().success(), "SIGTERM must stop it cleanly");

    // The same address again, as a restarted server has for its clients.
    let server = ServerProcess::start_sync_at(bin(), &server.addr.to_string(), dir.path());
    let c = consumer(&server, "g", &["clean"]);
    // A handle from before the restart still acks.
    c.ack(unacked[0]).await.unwrap();
    // The other unacked messages come back after their invisible time; nothing acked does.
    let mut back: Vec<String> = drain(&c).await;
    back.sort();
    let mut want: Vec<String> = unacked[1..].iter().map(|m| m.message_id.clone()).collect();
    want.sort();
    assert_eq!(back, want);
    c.shutdown().await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_replays_at_most_the_last_checkpoint_and_keeps_delay_and_transaction_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start_sync(bin(), dir.path());
    // The producer lives through the crash, as an application would: its open transaction
    // is committed after the restart.
    let p = producer(&server, &["kd", "kt", "kc"]).await;

    // Delay: one due in 6 s, one recalled.
    let due = now_ms() + 6_000;
    let kdue = p.send(Message::builder("kd").body("due").delivery_timestamp(due).build()).await;
    let kdue = kdue.unwrap().message_id;
    let r = p
        .send(Message::builder("kd").body("recalled").delivery_timestamp(now_ms() + 5_000).build())
        .await
        .unwrap();
    p.recall("kd", r.recall_handle.as_deref().unwrap()).await.unwrap();
    // Transactions: one committed, one rolled back, one left open.
    let mut tc = p.begin_transaction().unwrap();
    let ktc = tc.send(Message::builder("kt").body("c").build()).await.unwrap().message_id;
    let mut tr = p.begin_transaction().unwrap();
    tr.send(Message::builder("kt").body("r").build()).await.unwrap();
    let mut to = p.begin_transaction().unwrap();
    let kto = to.send(Message::builder("kt").body("o").build()).await.unwrap().message_id;
    tc.commit().await.unwrap();
    tr.rollback().await.unwrap();

    // Consumption over 8 queues: ids 8..20 acked (above the unacked ids 0..5 in their
    // queues), then a checkpoint interval passes, then ids 5..8 acked, then the kill.
    let ids = send_n(&p, "kc", 20).await;
    let c = consumer(&server, "g", &["kc"]);
    let got = receive_all(&c, 20).await;
    let pos = |m: &MessageView| ids.iter().position(|i| *i == m.message_id).unwrap();
    for m in got.iter().filter(|m| pos(m) >= 8) {
        c.ack(m).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    for m in got.iter().filter(|m| (5..8).contains(&pos(m))) {
        c.ack(m).await.unwrap();
    }
    c.shutdown().await;
    server.kill();

    let server = ServerProcess::start_sync_at(bin(), &server.addr.to_string(), dir.path());
    let c = consumer(&server, "g", &["kc"]);
    // At-least-once: every unacked message comes back; of the acked ones, only those acked
    // after the last checkpoint may.
    let back: HashSet<String> = drain(&c).await.into_iter().collect();
    c.shutdown().await;
    let unacked: HashSet<String> = ids[..5].iter().cloned().collect();
    let replayable: HashSet<String> = ids[..8].iter().cloned().collect();
    assert!(unacked.is_subset(&back), "lost unacked messages: {:?}", unacked.difference(&back));
    assert!(
        back.is_subset(&replayable),
        "acked before the checkpoint but replayed: {:?}",
        back.difference(&replayable)
    );

    // The delay message fires at its time, the recalled one never.
    let c = consumer(&server, "g", &["kd"]);
    let mut delayed = drain(&c).await;
    while now_ms() < due + 2_000 {
        delayed.extend(drain(&c).await);
    }
    c.shutdown().await;
    assert_eq!(delayed, [kdue]);
    // The open transaction is still open: committing it now delivers it; the committed one
    // was delivered, the rolled-back one never.
    to.commit().await.unwrap();
    let c = consumer(&server, "g", &["kt"]);
    let mut tx = drain(&c).await;
    tx.sort();
    let mut want = vec![ktc, kto];
    want.sort();
    assert_eq!(tx, want);
    c.shutdown().await;
    p.shutdown().await;
    drop(server);
}
