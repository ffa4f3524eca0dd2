//! Many topics under a small open-file limit: the real binary under `ulimit -n 4096` takes a
//! burst of 10,000 new topics (a message on each of their 8 queues), keeps a fresh topic
//! receivable within a second, stops on SIGTERM within seconds, and restarts on that data.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::Path;
use std::time::{Duration, Instant};

use orbitmq_core::protocol::v2::{self, Code};
use orbitmq_tests::process::ServerProcess;
use orbitmq_tests::{Client, code, message};

const TOPICS: usize = 10_000;
const NOFILE: u64 = 4096;

fn start(dir: &Path, log: &Path) -> ServerProcess {
    let bin = Path::new(env!("CARGO_BIN_EXE_orbitmq"));
    ServerProcess::start_with_nofile(bin, dir, &[], Some(log), NOFILE)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// Sends one message to `topic` and receives it: how long from the send's acknowledgement
/// until the consumer got it.
async fn send_then_receive(c: &mut Client, topic: &str) -> Duration {
    let r = c.send(message(topic, &format!("01FRESH{topic}"), "fresh")).await;
    assert_eq!(code(r.status.as_ref()), Code::Ok, "{:?}", r.status);
    let acked = Instant::now();
    let deadline = acked + Duration::from_secs(10);
    while Instant::now() < deadline {
        let (st, got) = c
            .receive(
                "fresh-group",
                topic,
                "*",
                1,
                Some(Duration::from_secs(30)),
                Duration::from_secs(2),
            )
            .await;
        assert!(matches!(st, Code::Ok | Code::MessageNotFound), "{st:?}");
        if !got.is_empty() {
            return acked.elapsed();
        }
    }
    panic!("a message to the fresh topic {topic} was not receivable within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_topics_under_ulimit_4096() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let mut server = start(&data, &log);
    let addr = server.addr;
    let pid = server.child.id();

    // The burst: 16 connections, each sending one request of 8 messages per topic (the
    // broker spreads a request's messages over the topic's 8 queues).
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..16 {
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr, &format!("burst-{w}")).await;
            for t in (w..TOPICS).step_by(16) {
                let topic = format!("many-{t}");
                let messages =
                    (0..8).map(|q| message(&topic, &format!("01M{t:06}Q{q}"), "x")).collect();
                let r = c.raw.send_message(v2::SendMessageRequest { messages }).await.unwrap();
                let st = r.into_inner().status;
                assert_eq!(code(st.as_ref()), Code::Ok, "topic {topic}: {st:?}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let burst = started.elapsed();
    let fds = open_fds(pid);
    assert!(
        fds < NOFILE as usize / 2,
        "{fds} open descriptors after {TOPICS} topics; the limit is {NOFILE}"
    );

    let mut c = Client::connect(addr, "fresh").await;
    let latency = send_then_receive(&mut c, "fresh-after-burst").await;
    println!("burst of {TOPICS} topics took {burst:?}; {fds} fds open; fresh topic in {latency:?}");
    assert!(latency <= Duration::from_secs(1), "fresh topic receivable after {latency:?}");

    let status = server.stop_within(Duration::from_secs(10));
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let status =
        status.unwrap_or_else(|| panic!("no exit within 10 s of SIGTERM; log:\n{log_text}"));
    assert!(status.success(), "exit {status:?}; log:\n{log_text}");
    assert!(!log_text.contains("Too many open files"), "log:\n{log_text}");

    // A restart under the same limit serves the old topics and new ones.
    let restart = Instant::now();
    let server = start(&data, &log);
    println!("restart took {:?}", restart.elapsed());
    let mut c = Client::connect(server.addr, "after-restart").await;
    for t in [0, TOPICS / 2, TOPICS - 1] {
        let topic = format!("many-{t}");
        let mut seen = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while seen < 8 && Instant::now() < deadline {
            let (st, got) = c
                .receive("g", &topic, "*", 8, Some(Duration::from_secs(30)), Duration::from_secs(1))
                .await;
            assert!(matches!(st, Code::Ok | Code::MessageNotFound), "{st:?}");
            seen += got.len();
        }
        assert_eq!(seen, 8, "topic {topic} after the restart");
    }
    send_then_receive(&mut c, "fresh-after-restart").await;
    assert!(open_fds(server.child.id()) < NOFILE as usize / 2);
}
