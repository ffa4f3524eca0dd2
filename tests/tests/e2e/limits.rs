//! Resource limits (`[broker] max_*`): past each one a client sees its code and a message
//! naming the limit and its config key, and the broker's memory does not grow; clients expire,
//! idle consumption state is dropped, deleted topics and groups take their state with them.

use std::time::Duration;

use orbitmq_core::broker::BrokerConfig;
use orbitmq_core::protocol::v2::{self, Code};
use orbitmq_tests::{Client, TestBroker, code, message, resource};

const INVISIBLE: Option<Duration> = Some(Duration::from_secs(30));
const POLL: Duration = Duration::from_secs(5);

async fn heartbeat(c: &mut Client) -> v2::Status {
    c.raw.heartbeat(v2::HeartbeatRequest::default()).await.unwrap().into_inner().status.unwrap()
}

fn assert_limit(st: &v2::Status, code: Code, key: &str) {
    assert_eq!(Code::try_from(st.code).unwrap(), code, "{st:?}");
    assert!(st.message.contains(&format!("[broker] {key}")), "{st:?}");
}

fn consumer_settings(group: &str) -> v2::Settings {
    v2::Settings {
        client_type: Some(v2::ClientType::SimpleConsumer as i32),
        pub_sub: Some(v2::settings::PubSub::Subscription(v2::Subscription {
            group: Some(resource(group)),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Opens a Telemetry stream with `settings` and returns the error it ends with.
async fn telemetry_error(c: &mut Client, settings: v2::Settings) -> tonic::Status {
    let first = v2::TelemetryCommand {
        status: None,
        command: Some(v2::telemetry_command::Command::Settings(settings)),
    };
    match c.raw.telemetry(tokio_stream::iter([first])).await {
        Err(e) => e,
        Ok(r) => r.into_inner().message().await.expect_err("the stream is refused"),
    }
}

/// Polls `f` every 20 ms for up to 5 s until it holds.
/// The status a raw receive starts with (what the test helpers' receive does not show).
async fn receive_status(c: &mut Client, group: &str, topic: &str, batch: i32) -> v2::Status {
    let mut stream = c
        .raw
        .receive_message(v2::ReceiveMessageRequest {
            group: Some(resource(group)),
            message_queue: Some(v2::MessageQueue {
                topic: Some(resource(topic)),
                ..Default::default()
            }),
            batch_size: batch,
            invisible_duration: INVISIBLE.map(orbitmq_tests::duration),
            long_polling_timeout: Some(orbitmq_tests::duration(POLL)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let Some(v2::receive_message_response::Content::Status(st)) =
        stream.message().await.unwrap().unwrap().content
    else {
        panic!("a receive starts with its status")
    };
    st
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..250 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}: not within 5 s");
}

#[tokio::test]
async fn a_client_id_longer_than_the_limit_is_refused() {
    let b = TestBroker::start().await;
    let max = BrokerConfig::default().max_client_id_len;
    // What the official clients send: host@pid@index@base36 time.
    let mut official = b.client("orbit-host-01.example.internal@48211@0@2o1ja8k2pz").await;
    assert_eq!(Code::try_from(heartbeat(&mut official).await.code).unwrap(), Code::Ok);
    let mut longest = b.client(&"i".repeat(max)).await;
    assert_eq!(Code::try_from(heartbeat(&mut longest).await.code).unwrap(), Code::Ok);

    let mut c = b.client(&"x".repeat(8 << 10)).await;
    let st = heartbeat(&mut c).await;
    assert_limit(&st, Code::RequestHeaderFieldsTooLarge, "max_client_id_len");
    assert!(st.message.contains("8192 bytes"), "{st:?}");
    let r = c.send(message("t", "01AA", "x")).await;
    assert_eq!(code(r.status.as_ref()), Code::RequestHeaderFieldsTooLarge);
    // Refused before anything is kept.
    assert_eq!(b.broker.clients().len(), 2);
    let err = telemetry_error(&mut c, consumer_settings("g")).await;
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("max_client_id_len"), "{err:?}");
    b.stop().await;
}

#[tokio::test]
async fn a_silent_client_expires_and_a_heartbeating_one_stays() {
    let config = BrokerConfig { client_expiry_ms: 600, ..BrokerConfig::default() };
    let b = TestBroker::start_with(config).await;
    let mut c1 = b.client("c1").await;
    let mut c2 = b.client("c2").await;
    assert_eq!(Code::try_from(heartbeat(&mut c1).await.code).unwrap(), Code::Ok);
    assert_eq!(Code::try_from(heartbeat(&mut c2).await.code).unwrap(), Code::Ok);
    assert_eq!(b.broker.clients().len(), 2);
    // c2 goes silent and expires; c1 keeps heartbeating and stays.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(Code::try_from(heartbeat(&mut c1).await.code).unwrap(), Code::Ok);
    }
    let ids: Vec<String> = b.broker.clients().all().into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["c1"]);
    // A heartbeat registers it again.
    assert_eq!(Code::try_from(heartbeat(&mut c2).await.code).unwrap(), Code::Ok);
    assert_eq!(b.broker.clients().len(), 2);
    b.stop().await;
}

#[tokio::test]
async fn clients_beyond_the_limit_are_refused_until_one_expires() {
    let config = BrokerConfig { max_clients: 2, client_expiry_ms: 600, ..BrokerConfig::default() };
    let b = TestBroker::start_with(config).await;
    let mut c1 = b.client("c1").await;
    let mut c2 = b.client("c2").await;
    let mut c3 = b.client("c3").await;
    assert_eq!(Code::try_from(heartbeat(&mut c1).await.code).unwrap(), Code::Ok);
    assert_eq!(Code::try_from(heartbeat(&mut c2).await.code).unwrap(), Code::Ok);
    let st = heartbeat(&mut c3).await;
    assert_limit(&st, Code::TooManyRequests, "max_clients");
    // The known ones go on.
    assert_eq!(Code::try_from(heartbeat(&mut c1).await.code).unwrap(), Code::Ok);
    let err = telemetry_error(&mut c3, consumer_settings("g")).await;
    assert_eq!(err.code(), tonic::Code::ResourceExhausted);
    assert!(err.message().contains("max_clients"), "{err:?}");

    // c2 goes silent and expires; c1 keeps heartbeating and stays.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(Code::try_from(heartbeat(&mut c1).await.code).unwrap(), Code::Ok);
    }
    let ids: Vec<String> = b.broker.clients().all().into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["c1"]);
    assert_eq!(Code::try_from(heartbeat(&mut c3).await.code).unwrap(), Code::Ok);
    b.stop().await;
}

#[tokio::test]
async fn an_expired_client_releases_its_settings_stream_and_auto_renewed_messages() {
    let config = BrokerConfig { client_expiry_ms: 500, ..BrokerConfig::default() };
    let b = TestBroker::start_with(config).await;
    let mut push = b.client("push").await;
    let (tx, mut commands) = push.telemetry(consumer_settings("g")).await;
    assert_eq!(code(commands.message().await.unwrap().unwrap().status.as_ref()), Code::Ok);
    assert!(b.broker.clients().settings("push").is_some());
    assert_eq!(code(push.send(message("t", "01AA", "held")).await.status.as_ref()), Code::Ok);
    b.wait_dispatched().await;
    let mut req = v2::ReceiveMessageRequest {
        group: Some(resource("g")),
        message_queue: Some(v2::MessageQueue { topic: Some(resource("t")), ..Default::default() }),
        batch_size: 1,
        auto_renew: true,
        long_polling_timeout: Some(orbitmq_tests::duration(POLL)),
        ..Default::default()
    };
    let (st, got) = push.receive_with(req.clone()).await;
    assert_eq!((st, got.len()), (Code::Ok, 1));

    // An open Telemetry stream alone does not keep a client (Apache expires by last heartbeat).
    eventually("push expired", || b.broker.clients().is_empty()).await;
    assert!(b.broker.clients().settings("push").is_none());
    drop(tx);
    // What it held under auto-renewal is visible again, to another consumer of the group.
    let mut other = b.client("other").await;
    req.auto_renew = false;
    req.invisible_duration = INVISIBLE.map(orbitmq_tests::duration);
    let (st, again) = other.receive_with(req).await;
    assert_eq!((st, again.len()), (Code::Ok, 1));
    let sys = again[0].system_properties.as_ref().unwrap();
    assert_eq!(sys.message_id, "01AA");
    assert_eq!(sys.delivery_attempt, Some(2));
    b.stop().await;
}

#[tokio::test]
async fn topics_beyond_the_limit_are_refused_and_a_deleted_topic_makes_room() {
    let b = TestBroker::start_with(BrokerConfig { max_topics: 3, ..BrokerConfig::default() }).await;
    let mut c = b.client("p").await;
    let mut codes = Vec::new();
    for i in 0..5 {
        let r = c.send(message(&format!("t{i}"), &format!("01A{i}"), "x")).await;
        codes.push(code(r.status.as_ref()));
        if i == 4 {
            assert_limit(r.status.as_ref().unwrap(), Code::TooManyRequests, "max_topics");
        }
    }
    assert_eq!(b.broker.store().topics().len(), 3);
    assert_eq!(codes.iter().filter(|c| **c == Code::TooManyRequests).count(), 5 - 3, "{codes:?}");
    // Route queries auto-create too.
    let r = c
        .raw
        .query_route(v2::QueryRouteRequest { topic: Some(resource("t9")), endpoints: None })
        .await
        .unwrap()
        .into_inner();
    assert_limit(r.status.as_ref().unwrap(), Code::TooManyRequests, "max_topics");

    let first = b.broker.store().topics().all().into_keys().next().unwrap();
    b.broker.delete_topic(&first).await.unwrap();
    let r = c.send(message("t9", "01B9", "x")).await;
    assert_eq!(code(r.status.as_ref()), Code::Ok);
    b.stop().await;
}

#[tokio::test]
async fn groups_beyond_the_limit_are_refused_and_a_deleted_group_makes_room() {
    let b = TestBroker::start_with(BrokerConfig { max_groups: 2, ..BrokerConfig::default() }).await;
    let mut c = b.client("c").await;
    for g in ["g1", "g2"] {
        let (st, _) = c.receive(g, "t", "*", 1, INVISIBLE, POLL).await;
        assert_eq!(st, Code::MessageNotFound);
    }
    let mut req = v2::ReceiveMessageRequest {
        group: Some(resource("g3")),
        message_queue: Some(v2::MessageQueue { topic: Some(resource("t")), ..Default::default() }),
        batch_size: 1,
        invisible_duration: INVISIBLE.map(orbitmq_tests::duration),
        long_polling_timeout: Some(orbitmq_tests::duration(POLL)),
        ..Default::default()
    };
    let mut stream = c.raw.receive_message(req.clone()).await.unwrap().into_inner();
    let Some(v2::receive_message_response::Content::Status(st)) =
        stream.message().await.unwrap().unwrap().content
    else {
        panic!("a receive starts with its status")
    };
    assert_limit(&st, Code::TooManyRequests, "max_groups");
    assert_eq!(b.broker.store().groups().len(), 2);

    b.broker.delete_group("g1").unwrap();
    req.group = Some(resource("g3"));
    let (st, _) = c.receive_with(req).await;
    assert_eq!(st, Code::MessageNotFound);
    b.stop().await;
}

#[tokio::test]
async fn a_group_cannot_hold_more_messages_in_flight_than_the_limit() {
    let config = BrokerConfig { max_inflight_per_group: 5, ..BrokerConfig::default() };
    let b = TestBroker::start_with(config).await;
    let mut c = b.client("c").await;
    for i in 0..8 {
        assert_eq!(
            code(c.send(message("t", &format!("01A{i}"), "x")).await.status.as_ref()),
            Code::Ok
        );
        assert_eq!(
            code(c.send(message("u", &format!("01B{i}"), "x")).await.status.as_ref()),
            Code::Ok
        );
    }
    b.wait_dispatched().await;
    let (st, got) = c.receive("g", "t", "*", 3, INVISIBLE, POLL).await;
    assert_eq!((st, got.len()), (Code::Ok, 3));
    // The limit is per group, over all its topics: 2 more fit.
    let (st, more) = c.receive("g", "u", "*", 32, INVISIBLE, POLL).await;
    assert_eq!((st, more.len()), (Code::Ok, 2));
    let st = receive_status(&mut c, "g", "t", 32).await;
    assert_limit(&st, Code::TooManyRequests, "max_inflight_per_group");
    assert!(st.message.contains("5 messages received and not yet acked"), "{st:?}");
    assert_eq!(
        b.broker.pop().inflight_count("g", "t").0 + b.broker.pop().inflight_count("g", "u").0,
        5
    );
    // Another group is not affected; acks make room.
    let (st, other) = c.receive("h", "t", "*", 32, INVISIBLE, POLL).await;
    assert_eq!((st, other.len()), (Code::Ok, 5));
    assert_eq!(c.ack("g", "t", &got[0]).await, Code::Ok);
    assert_eq!(c.ack("g", "t", &got[1]).await, Code::Ok);
    let (st, after) = c.receive("g", "t", "*", 32, INVISIBLE, POLL).await;
    assert_eq!((st, after.len()), (Code::Ok, 2));
    b.stop().await;
}

#[tokio::test]
async fn long_polls_beyond_the_limit_answer_at_once() {
    let b =
        TestBroker::start_with(BrokerConfig { max_long_polls: 1, ..BrokerConfig::default() }).await;
    let mut c1 = b.client("c1").await;
    let mut c2 = b.client("c2").await;
    let parked = tokio::spawn(async move { c1.receive("g1", "t", "*", 1, INVISIBLE, POLL).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let st = receive_status(&mut c2, "g2", "t", 1).await;
    assert_limit(&st, Code::TooManyRequests, "max_long_polls");
    assert!(started.elapsed() < Duration::from_secs(2));
    // The parked one still gets its message.
    assert_eq!(code(c2.send(message("t", "01AA", "x")).await.status.as_ref()), Code::Ok);
    let (st, got) = parked.await.unwrap();
    assert_eq!((st, got.len()), (Code::Ok, 1));
    // Its place is free again.
    let (st, _) = c2.receive("g2", "t", "*", 1, INVISIBLE, Duration::from_secs(5)).await;
    assert_eq!(st, Code::Ok);
    b.stop().await;
}

#[tokio::test]
async fn sends_beyond_the_pending_limit_are_refused_not_queued() {
    // No room at all: every send finds the append queue "full".
    let b =
        TestBroker::start_with(BrokerConfig { max_pending_sends: 0, ..BrokerConfig::default() })
            .await;
    let mut c = b.client("p").await;
    let r = c.send(message("t", "01AA", "x")).await;
    assert_limit(r.status.as_ref().unwrap(), Code::TooManyRequests, "max_pending_sends");
    assert_eq!(b.broker.store().max_offset("t", 0) + b.broker.store().max_offset("t", 1), 0);
    b.stop().await;

    let b =
        TestBroker::start_with(BrokerConfig { max_pending_sends: 1, ..BrokerConfig::default() })
            .await;
    let mut c = b.client("p").await;
    for i in 0..3 {
        let r = c.send(message("t", &format!("01A{i}"), "x")).await;
        assert_eq!(code(r.status.as_ref()), Code::Ok, "one at a time always fits");
    }
    b.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed() {
    use tokio::io::AsyncReadExt as _;
    let b = TestBroker::start_with(BrokerConfig { max_connections: 2, ..BrokerConfig::default() })
        .await;
    let mut c1 = b.client("c1").await;
    let mut c2 = b.client("c2").await;
    assert_eq!(Code::try_from(heartbeat(&mut c1).await.code).unwrap(), Code::Ok);
    assert_eq!(Code::try_from(heartbeat(&mut c2).await.code).unwrap(), Code::Ok);
    assert_eq!(b.broker.connections(), 2);
    let mut third = tokio::net::TcpStream::connect(b.addr).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf)).await.unwrap();
    assert!(matches!(n, Ok(0) | Err(_)), "closed by the server: {n:?}");
    assert_eq!(b.broker.connections(), 2);
    // A closed connection frees its place.
    drop(c2);
    eventually("connection released", || b.broker.connections() == 1).await;
    let mut c3 = b.client("c3").await;
    assert_eq!(Code::try_from(heartbeat(&mut c3).await.code).unwrap(), Code::Ok);
    b.stop().await;
}

#[tokio::test]
async fn idle_consumption_state_is_dropped_and_rebuilt_from_the_offsets() {
    let config = BrokerConfig { consumption_idle_ms: 300, ..BrokerConfig::default() };
    let b = TestBroker::start_with(config).await;
    let mut c = b.client("c").await;
    for i in 0..3 {
        assert_eq!(
            code(c.send(message("t", &format!("01A{i}"), "x")).await.status.as_ref()),
            Code::Ok
        );
    }
    b.wait_dispatched().await;
    let (_, got) = c.receive("g", "t", "*", 32, INVISIBLE, POLL).await;
    assert_eq!(got.len(), 3);
    // In flight: kept however long it is idle.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(b.broker.pop().states(), 1);
    for m in &got {
        assert_eq!(c.ack("g", "t", m).await, Code::Ok);
    }
    eventually("idle state dropped", || b.broker.pop().states() == 0).await;
    // Rebuilt from the committed offsets: nothing old again, the new message next.
    assert_eq!(code(c.send(message("t", "01A9", "new")).await.status.as_ref()), Code::Ok);
    b.wait_dispatched().await;
    let (st, next) = c.receive("g", "t", "*", 32, INVISIBLE, POLL).await;
    assert_eq!(st, Code::Ok);
    let ids: Vec<&str> =
        next.iter().map(|m| m.system_properties.as_ref().unwrap().message_id.as_str()).collect();
    assert_eq!(ids, ["01A9"]);
    b.stop().await;
}

#[tokio::test]
async fn deleting_a_topic_or_a_group_drops_its_state_offsets_and_queues() {
    let b = TestBroker::start().await;
    let mut c = b.client("c").await;
    for t in ["t", "u"] {
        assert_eq!(
            code(c.send(message(t, &format!("01{t}"), "x")).await.status.as_ref()),
            Code::Ok
        );
    }
    b.wait_dispatched().await;
    for (g, t) in [("g", "t"), ("g", "u"), ("h", "t")] {
        let (_, got) = c.receive(g, t, "*", 32, INVISIBLE, POLL).await;
        assert_eq!(c.ack(g, t, &got[0]).await, Code::Ok);
    }
    let store = b.broker.store();
    assert_eq!(b.broker.pop().states(), 3);
    assert_eq!(store.consumer_offsets().groups().len(), 3);

    b.broker.delete_topic("t").await.unwrap();
    assert_eq!(b.broker.pop().states(), 1);
    assert_eq!(store.consumer_offsets().groups(), [("g".to_owned(), "u".to_owned())]);
    assert!(store.queues().unwrap().iter().all(|(t, _)| t == "u"));
    assert!(!b.dir.path().join("consumequeue/t").exists());
    assert!(store.topics().get("t").is_none());
    assert_eq!(b.broker.delete_topic("t").await.unwrap_err().code, Code::TopicNotFound);

    b.broker.delete_group("g").unwrap();
    assert_eq!(b.broker.pop().states(), 0);
    assert!(store.consumer_offsets().groups().is_empty());
    assert!(store.groups().get("g").is_none());
    assert_eq!(b.broker.delete_group("g").unwrap_err().code, Code::ConsumerGroupNotFound);
    b.stop().await;
}
