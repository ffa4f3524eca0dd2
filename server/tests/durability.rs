//! Durability of the real binary: with sync flush, a producer records every acknowledged
//! message id; the broker gets SIGKILL mid-stream and restarts on the same data; a consumer
//! finds every acknowledged id.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use orbitmq_core::protocol::v2::Code;
use orbitmq_tests::{Client, code, message};

/// Starts `orbitmq standalone` on a free port over `dir`; returns the child and its address.
fn start(dir: &std::path::Path, flush: &str) -> (Child, std::net::SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_orbitmq"))
        .args(["standalone", "--listen", "127.0.0.1:0", "--flush-disk-type", flush, "--data-dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("ready on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    (child, addr.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let (mut broker, addr) = start(dir.path(), "sync");

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
    broker.kill().unwrap(); // SIGKILL
    broker.wait().unwrap();
    let mut acked = HashSet::new();
    for p in producers {
        acked.extend(p.await.unwrap());
    }
    assert!(acked.len() > 50, "only {} sends were acknowledged before the kill", acked.len());

    let (mut broker, addr) = start(dir.path(), "sync");
    let mut c = Client::connect(addr, "consumer").await;
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
    broker.kill().unwrap();
    broker.wait().unwrap();
}
