//! `GET /metrics` and `GET /health` of the real binary, read after a known load: the counts
//! operators alert on (RocketMQ 5's metric names and labels) are the ones the load made.
//!
//! Unlike the other process-level tests, this one stays on the raw gRPC test client
//! (`orbitmq_tests::Client`): it asserts RPC counts per request, and the SDK's own Telemetry,
//! route and heartbeat RPCs would change those counts.
#![allow(clippy::unwrap_used)]
// Counts are integers, exact in an f64.
#![allow(clippy::float_cmp)]

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use orbitmq_core::protocol::v2::{self, Code};
use orbitmq_tests::process::ServerProcess;
use orbitmq_tests::{Client, code, message, sys};

const INVISIBLE: Option<Duration> = Some(Duration::from_secs(60));
const POLL: Duration = Duration::from_secs(5);

/// `GET path` over HTTP/1.1: (status, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// The samples of an `OpenMetrics` text: `name{labels}` (labels as written) → value. Fails on a
/// line that is neither a comment nor `series value`.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        assert!(samples.insert(series.to_owned(), value).is_none(), "{series} twice");
    }
    samples
}

/// The value of the series named `name` whose labels include every one of `labels`.
fn value(samples: &HashMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = samples
        .iter()
        .filter(|(series, _)| {
            series.split_once('{').is_some_and(|(n, rest)| {
                n == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
            })
        })
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_known_load() {
    let dir = tempfile::tempdir().unwrap();
    // One queue per topic: acks in offset order make the group's offset exact.
    let config = dir.path().join("orbitmq.toml");
    std::fs::write(&config, "[broker]\ndefault_queues = 1\ncluster_name = \"c1\"\n").unwrap();
    let data = dir.path().join("data");
    let bin = Path::new(env!("CARGO_BIN_EXE_orbitmq"));
    let mut server =
        ServerProcess::start(bin, &data, &["--config", config.to_str().unwrap()], None);
    let http = server.metrics.expect("a `metrics on` line");
    assert_eq!(get(http, "/health"), (200, "ready\n".to_owned()));

    let mut c = Client::connect(server.addr, "metrics-test").await;
    let mut bytes = 0;
    for i in 0..100 {
        let body = "x".repeat(if i < 90 { 100 } else { 2000 });
        bytes += body.len();
        let r = c.send(message("mt", &format!("01MT{i:03}"), &body)).await;
        assert_eq!(code(r.status.as_ref()), Code::Ok);
    }
    // Refused: counted by the RPC histogram under its code, not as a message in.
    let r = c.send(message("mt", "01MTEMPTY", "")).await;
    assert_eq!(code(r.status.as_ref()), Code::MessageBodyEmpty);
    let mut got: Vec<v2::Message> = Vec::new();
    while got.len() < 40 {
        let want = (40 - got.len()) as i32;
        got.extend(c.receive("mg", "mt", "*", want.min(32), INVISIBLE, POLL).await.1);
    }
    got.sort_by_key(|m| sys(m).queue_offset);
    for m in &got[..30] {
        assert_eq!(c.ack("mg", "mt", m).await, Code::Ok);
    }

    let (status, text) = get(http, "/metrics");
    assert_eq!(status, 200);
    assert!(text.ends_with("# EOF\n"), "not OpenMetrics text");
    let m = parse(&text);
    let node = [("cluster", "c1"), ("node_type", "broker"), ("node_id", "broker-a")];
    let normal = [("topic", "mt"), ("message_type", "normal")];
    let group = [("topic", "mt"), ("consumer_group", "mg")];
    assert_eq!(value(&m, "rocketmq_messages_in_total", &[&node[..], &normal[..]].concat()), 100.0);
    assert_eq!(value(&m, "rocketmq_throughput_in_total", &normal), bytes as f64);
    assert_eq!(value(&m, "rocketmq_message_size_count", &normal), 100.0);
    assert_eq!(
        value(&m, "rocketmq_message_size_bucket", &[&normal[..], &[("le", "1024.0")]].concat()),
        90.0
    );
    assert_eq!(
        value(&m, "rocketmq_message_size_bucket", &[&normal[..], &[("le", "4096.0")]].concat()),
        100.0
    );
    assert_eq!(value(&m, "rocketmq_messages_out_total", &group), 40.0);
    assert_eq!(value(&m, "rocketmq_consumer_inflight_messages", &group), 10.0);
    assert_eq!(value(&m, "rocketmq_consumer_lag_messages", &group), 70.0);
    assert_eq!(value(&m, "rocketmq_consumer_ready_messages", &group), 60.0);
    assert!(value(&m, "rocketmq_consumer_lag_latency", &group) >= 0.0);
    let sends = [("request_code", "SendMessage"), ("response_code", "ok")];
    assert_eq!(value(&m, "rocketmq_rpc_latency_count", &sends), 100.0);
    let empty = [("request_code", "SendMessage"), ("response_code", "message_body_empty")];
    assert_eq!(value(&m, "rocketmq_rpc_latency_count", &empty), 1.0);
    let acks = [("request_code", "AckMessage"), ("response_code", "ok")];
    assert_eq!(value(&m, "rocketmq_rpc_latency_count", &acks), 30.0);
    assert_eq!(value(&m, "rocketmq_topic_number", &node), 1.0);
    assert!(value(&m, "rocketmq_storage_size", &[("storage_type", "local")]) > 0.0);
    assert!(m["process_resident_memory_bytes"] > 0.0);
    assert!(m["process_cpu_seconds_total"] >= 0.0);

    drop(c);
    assert!(server.stop().success());
}
