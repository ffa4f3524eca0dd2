//! Process crash of the real binary: with sync flush, producers record every acknowledged
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

use orbitmq_core::protocol::v2::Code;
use orbitmq_tests::process::ServerProcess;
use orbitmq_tests::{Client, code, message};

fn start(dir: &Path) -> ServerProcess {
    ServerProcess::start_sync(Path::new(env!("CARGO_BIN_EXE_orbitmq")), dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_then_restart_serves_every_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = start(dir.path());
    let addr = broker.addr;

    // Four producers send until the broker dies; each records what was acknowledged.
    let mut producers = Vec::new();
    for p in 0..4 {
        producers.push(tokio::spawn(async move {
            let mut c = Client::connect(addr, &format!("producer-{p}")).await;
            let mut acked = Vec::new();
            for i in 0.. {
                let id = format!("01DUR{p}X{i:08}");
                let r = c.raw.send_message(orbitmq_core::protocol::v2::SendMessageRequest {
                    messages: vec![message("durable", &id, &format!("payload {id}"))],
                });
                match tokio::time::timeout(Duration::from_secs(5), r).await {
                    Ok(Ok(resp)) if code(resp.get_ref().status.as_ref()) == Code::Ok => {
                        acked.push(id);
                    }
                    _ => break, // the broker is gone
                }
            }
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
    let mut c = Client::connect(broker.addr, "consumer").await;
    let mut found = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !acked.is_subset(&found) && Instant::now() < deadline {
        let (st, got) = c
            .receive("g", "durable", "*", 32, Some(Duration::from_secs(60)), Duration::from_secs(5))
            .await;
        assert!(matches!(st, Code::Ok | Code::MessageNotFound), "{st:?}");
        for m in got {
            found.insert(m.system_properties.unwrap().message_id);
        }
    }
    let lost: Vec<&String> = acked.difference(&found).take(5).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged messages lost, e.g. {lost:?}",
        acked.difference(&found).count()
    );
    drop(broker);
}
