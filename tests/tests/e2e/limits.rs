//! Bounded resources: clients expire (`[broker] client_expiry_ms`), idle consumption state is
//! dropped (`consumption_idle_ms`), deleted topics and groups take their state with them.

use std::time::Duration;

use orbitmq_core::broker::BrokerConfig;
use orbitmq_core::protocol::v2::{self, Code};
use orbitmq_tests::{Client, TestBroker, code, message, resource};

const INVISIBLE: Option<Duration> = Some(Duration::from_secs(30));
const POLL: Duration = Duration::from_secs(5);

async fn heartbeat(c: &mut Client) -> v2::Status {
    c.raw.heartbeat(v2::HeartbeatRequest::default()).await.unwrap().into_inner().status.unwrap()
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

/// Polls `f` every 20 ms for up to 5 s until it holds.
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

    b.broker.delete_topic("t").unwrap();
    assert_eq!(b.broker.pop().states(), 1);
    assert_eq!(store.consumer_offsets().groups(), [("g".to_owned(), "u".to_owned())]);
    assert!(store.queues().iter().all(|(t, _)| t == "u"));
    assert!(!b.dir.path().join("consumequeue/t").exists());
    assert!(store.topics().get("t").is_none());
    assert_eq!(b.broker.delete_topic("t").unwrap_err().code, Code::TopicNotFound);

    b.broker.delete_group("g").unwrap();
    assert_eq!(b.broker.pop().states(), 0);
    assert!(store.consumer_offsets().groups().is_empty());
    assert!(store.groups().get("g").is_none());
    assert_eq!(b.broker.delete_group("g").unwrap_err().code, Code::ConsumerGroupNotFound);
    b.stop().await;
}
