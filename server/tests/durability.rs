//! Process crash of the real binary: with sync flush, SDK producers record every acknowledged
//! message id; the broker gets SIGKILL mid-stream and restarts on the same data (unclean
//! shutdown recovery, lock released by the kernel); a consumer finds every acknowledged id.
//!
//! Not a durability test: SIGKILL keeps the page cache, so this passes even if nothing is ever
//! flushed. What a power loss keeps is tested with the fault-injecting file layer in the core
//! crate (`storage::fault_tests`).
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use orbitmq_core::client::{ClientConfig, FilterExpression, Message, Producer, SimpleConsumer};
use orbitmq_tests::process::ServerProcess;

fn start(dir: &Path) -> ServerProcess {
    ServerProcess::start_sync(Path::new(env!("CARGO_BIN_EXE_orbitmq")), dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_then_restart_serves_every_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = start(dir.path());
    // Each send is bounded at 5 s: after the kill, a send fails rather than hangs.
    let config = ClientConfig::new(broker.addr.to_string()).request_timeout(Duration::from_secs(5));

    // Four producers send until the broker dies; each records the message id of every send
    // it got a receipt for. The first failed send ends its loop (the broker is gone).
    let mut producers = Vec::new();
    for p in 0..4 {
        let config = config.clone();
        producers.push(tokio::spawn(async move {
            let producer = Producer::builder(config).topics(["durable"]).build().unwrap();
            producer.start().await.unwrap();
            let mut acked = Vec::new();
            for i in 0.. {
                let key = format!("p{p}-{i}");
                let m =
                    Message::builder("durable").body(format!("payload {key}")).keys([key]).build();
                match producer.send(m).await {
                    Ok(receipt) => acked.push(receipt.message_id),
                    Err(_) => break,
                }
            }
            producer.shutdown().await;
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    broker.kill(); // SIGKILL
    let mut acked = HashSet::new();
    for p in producers {
        acked.extend(p.await.unwrap());
    }
    assert!(acked.len() > 50, "only {} sends were acknowledged before the kill", acked.len());

    let broker = start(dir.path());
    let c = SimpleConsumer::builder(ClientConfig::new(broker.addr.to_string()), "g")
        .subscribe("durable", FilterExpression::all())
        .await_duration(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut found = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !acked.is_subset(&found) && Instant::now() < deadline {
        for m in c.receive(32, Duration::from_secs(60)).await.unwrap() {
            found.insert(m.message_id);
        }
    }
    c.shutdown().await;
    let lost: Vec<&String> = acked.difference(&found).take(5).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged messages lost, e.g. {lost:?}",
        acked.difference(&found).count()
    );
    drop(broker);
}
