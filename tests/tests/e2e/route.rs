//! Routes, assignments and the Telemetry settings handshake, as the official clients need them.

use orbitmq_core::protocol::v2::{
    self, Code, retry_policy::Strategy, settings::PubSub, telemetry_command::Command,
};
use orbitmq_tests::{TestBroker, code, resource};

pub(crate) fn endpoints(port: u16) -> v2::Endpoints {
    v2::Endpoints {
        scheme: v2::AddressScheme::IPv4 as i32,
        addresses: vec![v2::Address { host: "127.0.0.1".into(), port: i32::from(port) }],
    }
}

#[tokio::test]
async fn route_lists_master_queues_from_zero_at_the_access_point() {
    let b = TestBroker::start().await;
    let mut c = b.client("r").await;
    let r = c
        .raw
        .query_route(v2::QueryRouteRequest {
            topic: Some(resource("rt")),
            endpoints: Some(endpoints(b.addr.port())),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(r.status.as_ref()), Code::Ok);
    assert_eq!(r.message_queues.len(), 8);
    for (i, q) in r.message_queues.iter().enumerate() {
        assert_eq!(q.id, i as i32);
        assert_eq!(q.permission, v2::Permission::ReadWrite as i32);
        let broker = q.broker.as_ref().unwrap();
        assert_eq!(broker.id, 0, "clients use only master queues");
        assert_eq!(broker.endpoints.as_ref().unwrap(), &endpoints(b.addr.port()));
        assert_eq!(q.topic.as_ref().unwrap().name, "rt");
        // An auto-created topic takes every message type old clients can parse.
        assert_eq!(q.accept_message_types.len(), 4);
        assert!(!q.accept_message_types.contains(&(v2::MessageType::Lite as i32)));
    }
    let a = c
        .raw
        .query_assignment(v2::QueryAssignmentRequest {
            topic: Some(resource("rt")),
            group: Some(resource("g")),
            endpoints: Some(endpoints(b.addr.port())),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(a.status.as_ref()), Code::Ok);
    assert_eq!(a.assignments.len(), 1);
    let q = a.assignments[0].message_queue.as_ref().unwrap();
    assert!(q.broker.as_ref().unwrap().endpoints.is_some());
    b.stop().await;
}

pub(crate) async fn settings_reply(
    b: &TestBroker,
    client_id: &str,
    settings: v2::Settings,
) -> v2::TelemetryCommand {
    let mut c = b.client(client_id).await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(v2::TelemetryCommand { status: None, command: Some(Command::Settings(settings)) })
        .await
        .unwrap();
    let mut replies = c
        .raw
        .telemetry(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let reply = tokio::time::timeout(std::time::Duration::from_secs(5), replies.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    drop(tx);
    reply
}

#[tokio::test]
async fn telemetry_answers_producer_settings_as_the_clients_require() {
    let b = TestBroker::start().await;
    let producer = v2::Settings {
        client_type: Some(v2::ClientType::Producer as i32),
        access_point: Some(endpoints(b.addr.port())),
        pub_sub: Some(PubSub::Publishing(v2::Publishing {
            topics: vec![resource("p")],
            max_body_size: 0,
            validate_message_type: false,
        })),
        ..Default::default()
    };
    let reply = settings_reply(&b, "p1", producer).await;
    assert_eq!(code(reply.status.as_ref()), Code::Ok, "Python ignores settings without status OK");
    let Some(Command::Settings(s)) = reply.command else { panic!("no settings in the reply") };
    let Some(PubSub::Publishing(p)) = s.pub_sub else { panic!("publishing missing") };
    assert_eq!(p.max_body_size, 4 << 20);
    assert!(p.validate_message_type);
    assert_eq!(p.topics, vec![resource("p")]);
    let backoff = s.backoff_policy.unwrap();
    assert_eq!(backoff.max_attempts, 3);
    assert!(
        matches!(backoff.strategy, Some(Strategy::ExponentialBackoff(_))),
        "Java and Node need exponential"
    );
    assert!(!s.metric.unwrap().on);
    b.stop().await;
}

#[tokio::test]
async fn telemetry_answers_consumer_settings_with_group_policy() {
    let b = TestBroker::start().await;
    let consumer = v2::Settings {
        client_type: Some(v2::ClientType::PushConsumer as i32),
        pub_sub: Some(PubSub::Subscription(v2::Subscription {
            group: Some(resource("cg")),
            subscriptions: vec![v2::SubscriptionEntry {
                topic: Some(resource("t")),
                expression: Some(v2::FilterExpression {
                    r#type: v2::FilterType::Tag as i32,
                    expression: "*".into(),
                }),
            }],
            ..Default::default()
        })),
        ..Default::default()
    };
    let reply = settings_reply(&b, "c1", consumer).await;
    assert_eq!(code(reply.status.as_ref()), Code::Ok);
    let Some(Command::Settings(s)) = reply.command else { panic!("no settings") };
    let Some(PubSub::Subscription(sub)) = s.pub_sub else { panic!("subscription missing") };
    assert_eq!(sub.receive_batch_size, Some(32));
    assert_eq!(sub.long_polling_timeout.unwrap().seconds, 20);
    assert_eq!(sub.fifo, Some(false));
    let backoff = s.backoff_policy.unwrap();
    assert_eq!(backoff.max_attempts, 17);
    assert!(
        matches!(backoff.strategy, Some(Strategy::CustomizedBackoff(ref c)) if c.next.len() == 18)
    );
    // The group now exists.
    assert!(b.broker.store().groups().get("cg").is_some());
    b.stop().await;
}
