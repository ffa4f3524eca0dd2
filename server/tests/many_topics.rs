//! Many topics under a small open-file limit: the real binary under `ulimit -n 4096` takes a
//! burst of 10,000 new topics (a message on each of their 8 queues), keeps a fresh topic
//! receivable within a second, stops on SIGTERM within seconds, and restarts on that data.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::Path;
use std::time::{Duration, Instant};

use orbitmq_core::client::{ClientConfig, FilterExpression, Message, Producer, SimpleConsumer};
use orbitmq_tests::process::ServerProcess;

const TOPICS: usize = 10_000;
const NOFILE: u64 = 4096;

fn start(dir: &Path, log: &Path) -> ServerProcess {
    let bin = Path::new(env!("CARGO_BIN_EXE_orbitmq"));
    ServerProcess::start_with_nofile(bin, dir, &[], Some(log), NOFILE)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

fn consumer(config: &ClientConfig, group: &str, topic: &str, wait: Duration) -> SimpleConsumer {
    SimpleConsumer::builder(config.clone(), group)
        .subscribe(topic, FilterExpression::all())
        .await_duration(wait)
        .build()
        .unwrap()
}

/// Sends one message to `topic` and receives it: how long from the send's acknowledgement
/// until the consumer got it.
async fn send_then_receive(config: &ClientConfig, topic: &str) -> Duration {
    let p = Producer::builder(config.clone()).topics([topic]).build().unwrap();
    p.start().await.unwrap();
    let c = consumer(config, "fresh-group", topic, Duration::from_secs(2));
    c.start().await.unwrap();
    p.send(Message::builder(topic).body("fresh").build()).await.unwrap();
    let acked = Instant::now();
    let deadline = acked + Duration::from_secs(10);
    let mut latency = None;
    while latency.is_none() && Instant::now() < deadline {
        if !c.receive(1, Duration::from_secs(30)).await.unwrap().is_empty() {
            latency = Some(acked.elapsed());
        }
    }
    p.shutdown().await;
    c.shutdown().await;
    latency.unwrap_or_else(|| {
        panic!("a message to the fresh topic {topic} was not receivable within 10 s")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_topics_under_ulimit_4096() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let mut server = start(&data, &log);
    let addr = server.addr;
    let pid = server.child.id();

    // The burst: 16 producers, each sending one batch of 8 messages per topic (the broker
    // spreads a request's messages over the topic's 8 queues, whatever queue the SDK named).
    let config = ClientConfig::new(addr.to_string());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..16 {
        let config = config.clone();
        tasks.push(tokio::spawn(async move {
            let p = Producer::builder(config).build().unwrap();
            p.start().await.unwrap();
            for t in (w..TOPICS).step_by(16) {
                let topic = format!("many-{t}");
                let batch = (0..8).map(|_| Message::new(topic.as_str(), "x")).collect();
                let receipts = p.send_batch(batch).await;
                let receipts = receipts.unwrap_or_else(|e| panic!("topic {topic}: {e}"));
                assert_eq!(receipts.len(), 8, "topic {topic}");
            }
            p.shutdown().await;
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

    let latency = send_then_receive(&config, "fresh-after-burst").await;
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
    let config = ClientConfig::new(server.addr.to_string());
    for t in [0, TOPICS / 2, TOPICS - 1] {
        let topic = format!("many-{t}");
        let c = consumer(&config, "g", &topic, Duration::from_secs(2));
        let mut seen = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while seen < 8 && Instant::now() < deadline {
            seen += c.receive(8, Duration::from_secs(30)).await.unwrap().len();
        }
        c.shutdown().await;
        assert_eq!(seen, 8, "topic {topic} after the restart");
    }
    send_then_receive(&config, "fresh-after-restart").await;
    assert!(open_fds(server.child.id()) < NOFILE as usize / 2);
}
