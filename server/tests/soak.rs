//! Memory stays bounded under churn, measured on the real binary: 10,000 auto-created topics
//! (created first and measured apart: they stay), then rounds of 5,000 short-lived clients
//! with the longest id allowed that heartbeat once and go away (20,000 in all), consumer
//! groups that are created (by receiving) and deleted, topics that are created and deleted,
//! and sends. The server's anonymous RSS after N more rounds must stay within a bound of what
//! it was after a warm-up round: everything a round leaves behind (expired clients, deleted
//! groups and topics, idle consumption state) is released.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::Path;
use std::time::{Duration, Instant};

use orbitmq_core::protocol::admin::{self as pb, admin_client::AdminClient};
use orbitmq_core::protocol::v2::messaging_service_client::MessagingServiceClient;
use orbitmq_core::protocol::v2::{self, Code};
use orbitmq_tests::process::ServerProcess;
use orbitmq_tests::{message, resource};
use tokio::task::JoinSet;
use tonic::transport::Channel;

const TOPICS: usize = 10_000;
const CLIENTS_PER_ROUND: usize = 5_000;
const GROUPS_PER_ROUND: usize = 50;
const TEMP_TOPICS_PER_ROUND: usize = 20;
/// Topics each round sends to again.
const TOPICS_RESENT: usize = 200;
const ROUNDS_AFTER_WARM_UP: usize = 3;
const CLIENT_EXPIRY_MS: u64 = 500;
/// Calls in flight at once.
const CONCURRENCY: usize = 32;
/// The longest client id the broker accepts by default (`max_client_id_len`).
const ID_LEN: usize = 512;

/// (`VmRSS`, `RssAnon`) of `pid`, KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("RssAnon:"))
}

fn request<T>(client_id: &str, body: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(body);
    req.metadata_mut().insert("x-mq-client-id", client_id.parse().unwrap());
    req.metadata_mut().insert("x-mq-language", "RUST".parse().unwrap());
    req
}

/// A client id as long as allowed, unique per (round, index).
fn long_id(round: usize, i: usize) -> String {
    let tail = format!("@{}@{round}@{i}", std::process::id());
    format!("{}{tail}", "h".repeat(ID_LEN - tail.len()))
}

/// Runs `f(i)` for `i` in `0..n`, `CONCURRENCY` at a time.
async fn run_all<F, Fut>(n: usize, f: F)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut set = JoinSet::new();
    for i in 0..n {
        if set.len() >= CONCURRENCY {
            set.join_next().await.unwrap().unwrap();
        }
        set.spawn(f(i));
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
}

async fn send(c: MessagingServiceClient<Channel>, client_id: String, topic: String) {
    let mut c = c;
    let m = message(&topic, &format!("01{topic}"), "soak");
    let r = c
        .send_message(request(&client_id, v2::SendMessageRequest { messages: vec![m] }))
        .await
        .unwrap()
        .into_inner();
    let code = Code::try_from(r.status.unwrap().code).unwrap();
    assert_eq!(code, Code::Ok, "send to {topic}");
}

/// One round: a message to each of the first `TOPICS_RESENT` topics, a heartbeat from each
/// of `CLIENTS_PER_ROUND` new clients, groups that receive, ack and are deleted, topics that
/// are created and deleted.
async fn round(c: &MessagingServiceClient<Channel>, admin: &AdminClient<Channel>, r: usize) {
    let producer = format!("producer@{r}");
    run_all(TOPICS_RESENT, |i| send(c.clone(), producer.clone(), format!("soak-{i:05}"))).await;
    run_all(CLIENTS_PER_ROUND, |i| {
        let mut c = c.clone();
        async move {
            let st = c
                .heartbeat(request(&long_id(r, i), v2::HeartbeatRequest::default()))
                .await
                .unwrap()
                .into_inner()
                .status
                .unwrap();
            assert_eq!(Code::try_from(st.code).unwrap(), Code::Ok, "{st:?}");
        }
    })
    .await;
    run_all(GROUPS_PER_ROUND, |i| {
        let mut c = c.clone();
        let mut admin = admin.clone();
        async move {
            let (group, topic, id) = (format!("g-{r}-{i}"), format!("soak-{i:05}"), long_id(r, i));
            let req = v2::ReceiveMessageRequest {
                group: Some(resource(&group)),
                message_queue: Some(v2::MessageQueue {
                    topic: Some(resource(&topic)),
                    ..Default::default()
                }),
                batch_size: 32,
                invisible_duration: Some(prost_types::Duration { seconds: 30, nanos: 0 }),
                long_polling_timeout: Some(prost_types::Duration { seconds: 5, nanos: 0 }),
                ..Default::default()
            };
            let mut stream = c.receive_message(request(&id, req)).await.unwrap().into_inner();
            let mut handles = Vec::new();
            while let Some(item) = stream.message().await.unwrap() {
                if let Some(v2::receive_message_response::Content::Message(m)) = item.content {
                    let sys = m.system_properties.unwrap();
                    handles.push((sys.message_id, sys.receipt_handle.unwrap()));
                }
            }
            assert!(!handles.is_empty(), "{group} received nothing from {topic}");
            let entries = handles
                .into_iter()
                .map(|(message_id, receipt_handle)| v2::AckMessageEntry {
                    message_id,
                    receipt_handle,
                    lite_topic: None,
                })
                .collect();
            let ack = v2::AckMessageRequest {
                group: Some(resource(&group)),
                topic: Some(resource(&topic)),
                entries,
            };
            c.ack_message(request(&id, ack)).await.unwrap();
            admin.delete_group(pb::DeleteGroupRequest { group }).await.unwrap();
        }
    })
    .await;
    run_all(TEMP_TOPICS_PER_ROUND, |i| {
        let c = c.clone();
        let mut admin = admin.clone();
        let producer = producer.clone();
        async move {
            let topic = format!("tmp-{r}-{i}");
            send(c, producer, topic.clone()).await;
            admin.delete_topic(pb::DeleteTopicRequest { topic }).await.unwrap();
        }
    })
    .await;
}

/// Lets the broker forget this round's clients (they expire after `CLIENT_EXPIRY_MS`, swept
/// twice as often) and its idle consumption state.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(CLIENT_EXPIRY_MS * 2 + 500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rss_stays_flat_under_topic_client_and_group_churn() {
    // tmpfs when there is one: creating and deleting thousands of small files on a disk
    // mounted with `discard` takes minutes, and only memory is measured here.
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
    let config = dir.path().join("orbitmq.toml");
    std::fs::write(
        &config,
        format!(
            "[broker]\nclient_expiry_ms = {CLIENT_EXPIRY_MS}\nconsumption_idle_ms = {CLIENT_EXPIRY_MS}\n\
             max_topics = 20000\nmax_clients = 100000\ndefault_queues = 1\n\
             [store]\nsegment_size = 67108864\ncq_entries_per_file = 1024\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let mut server = ServerProcess::start(
        Path::new(env!("CARGO_BIN_EXE_orbitmq")),
        &data,
        &["--config", config.to_str().unwrap()],
        Some(&log),
    );
    let pid = server.child.id();
    let channel =
        Channel::from_shared(format!("http://{}", server.addr)).unwrap().connect().await.unwrap();
    let c = MessagingServiceClient::new(channel.clone());
    let admin = AdminClient::new(channel);
    let started = Instant::now();

    let before = rss_kib(pid);
    // The topics first, measured apart: they stay (with their ConsumeQueue files), so their
    // memory is part of the baseline, not of what a round must give back.
    run_all(TOPICS, |i| send(c.clone(), "creator".to_owned(), format!("soak-{i:05}"))).await;
    let topics = rss_kib(pid);
    round(&c, &admin, 0).await;
    settle().await;
    let warm = rss_kib(pid);
    let mut after = warm;
    for r in 1..=ROUNDS_AFTER_WARM_UP {
        round(&c, &admin, r).await;
        settle().await;
        after = rss_kib(pid);
        println!("round {r}: VmRSS {} KiB, RssAnon {} KiB", after.0, after.1);
    }
    println!(
        "soak: start VmRSS {} / RssAnon {} KiB; after {TOPICS} topics {} / {} KiB; after \
         warm-up {} / {} KiB; after {} more rounds {} / {} KiB; {:.1} s",
        before.0,
        before.1,
        topics.0,
        topics.1,
        warm.0,
        warm.1,
        ROUNDS_AFTER_WARM_UP,
        after.0,
        after.1,
        started.elapsed().as_secs_f64()
    );
    assert!(server.stop().success());
    // Each round registers 5,000 clients with 512-byte ids, 50 groups and 20 topics: kept
    // (expiry and pruning disabled), RssAnon grew about 8 MiB a round (27 -> 51 MiB over 3
    // rounds). Released, it stays within allocator noise (a few MiB).
    let bound = warm.1 + (warm.1 / 10).max(10 << 10);
    assert!(
        after.1 <= bound,
        "RssAnon grew from {} KiB after the warm-up to {} KiB after {ROUNDS_AFTER_WARM_UP} \
         more rounds (bound {bound} KiB)",
        warm.1,
        after.1
    );
}
