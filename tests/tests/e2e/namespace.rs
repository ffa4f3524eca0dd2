//! Namespaces: `x-mq-namespace` (or a resource's own namespace) isolates topics and groups,
//! stored as Apache stores them (`NS%name`); deliveries name the topic as the client knows it.

use std::time::Duration;

use orbitmq_core::protocol::v2::{self, Code, settings::PubSub, telemetry_command::Command};
use orbitmq_tests::{TestBroker, code, message, resource, sys};

const INVISIBLE: Option<Duration> = Some(Duration::from_secs(30));
const POLL: Duration = Duration::from_secs(5);

#[tokio::test]
async fn namespaces_isolate_topics_and_groups() {
    let b = TestBroker::start().await;
    let mut a = b.client_in("a", "ns-a").await;
    let mut other = b.client_in("b", "ns-b").await;
    let mut plain = b.client("p").await;
    let r = a.send(message("orders", "01NA", "in a")).await;
    assert_eq!(code(r.status.as_ref()), Code::Ok);
    assert!(b.broker.store().topics().get("ns-a%orders").is_some(), "stored as NS%topic");
    assert!(b.broker.store().topics().get("orders").is_none());
    // Same topic and group names elsewhere see nothing of it.
    let (st, got) = other.receive("g", "orders", "*", 32, INVISIBLE, POLL).await;
    assert_eq!((st, got.len()), (Code::MessageNotFound, 0));
    let (st, got) = plain.receive("g", "orders", "*", 32, INVISIBLE, POLL).await;
    assert_eq!((st, got.len()), (Code::MessageNotFound, 0));
    let (st, got) = a.receive("g", "orders", "*", 32, INVISIBLE, POLL).await;
    assert_eq!((st, got.len()), (Code::Ok, 1));
    let topic = got[0].topic.as_ref().unwrap();
    assert_eq!((topic.resource_namespace.as_str(), topic.name.as_str()), ("ns-a", "orders"));
    assert_eq!(sys(&got[0]).message_id, "01NA");
    assert_eq!(a.ack("g", "orders", &got[0]).await, Code::Ok);
    assert!(
        b.broker
            .store()
            .consumer_offsets()
            .groups()
            .contains(&("ns-a%g".into(), "ns-a%orders".into()))
    );
    b.stop().await;
}

#[tokio::test]
async fn a_consumer_gets_the_settings_of_its_namespaced_group() {
    let b = TestBroker::start().await;
    b.group("ns-a%fg", true, 3);
    let mut c = b.client_in("c", "ns-a").await;
    let settings = v2::Settings {
        client_type: Some(v2::ClientType::SimpleConsumer as i32),
        pub_sub: Some(PubSub::Subscription(v2::Subscription {
            group: Some(resource("fg")),
            subscriptions: vec![v2::SubscriptionEntry {
                topic: Some(resource("orders")),
                expression: None,
            }],
            ..Default::default()
        })),
        ..Default::default()
    };
    let (keep, mut replies) = c.telemetry(settings).await;
    let reply = replies.message().await.unwrap().unwrap();
    let Some(Command::Settings(s)) = reply.command else { panic!("{reply:?}") };
    let Some(PubSub::Subscription(sub)) = s.pub_sub else { panic!("no subscription") };
    assert_eq!(sub.fifo, Some(true), "the group of namespace ns-a is FIFO");
    assert_eq!(s.backoff_policy.unwrap().max_attempts, 3);
    assert!(b.broker.store().groups().get("fg").is_none(), "no group outside the namespace");
    drop(keep);
    drop(replies);
    b.stop().await;
}
