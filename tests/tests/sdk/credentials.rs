//! Credentials: against a broker that requires an access key and secret key, the SDK with the
//! right ones produces, consumes and administers; with wrong or no keys every handle fails
//! with `ErrorKind::Unauthorized` and the cause. A broker without credentials takes signed
//! requests too.

use std::time::Duration;

use orbitmq_core::broker::BrokerConfig;
use orbitmq_core::client::{
    Admin, ClientConfig, Credentials, ErrorKind, FilterExpression, Message, Producer,
    SimpleConsumer,
};
use orbitmq_core::protocol::auth::ServerCredentials;
use orbitmq_tests::TestBroker;

async fn guarded() -> TestBroker {
    let config = BrokerConfig {
        credentials: Some(ServerCredentials::new("app", "s3cret")),
        ..BrokerConfig::default()
    };
    TestBroker::start_with(config).await
}

fn config(tb: &TestBroker, creds: Option<(&str, &str)>) -> ClientConfig {
    let c = ClientConfig::new(tb.addr.to_string());
    match creds {
        Some((ak, sk)) => c.credentials(Credentials::new(ak, sk)),
        None => c,
    }
}

async fn round_trip(config: &ClientConfig, topic: &str, group: &str) {
    let p = Producer::builder(config.clone()).topics([topic]).build().unwrap();
    p.start().await.unwrap();
    let sent = p.send(Message::new(topic, "signed")).await.unwrap();
    let c = SimpleConsumer::builder(config.clone(), group)
        .subscribe(topic, FilterExpression::all())
        .await_duration(Duration::from_secs(5))
        .build()
        .unwrap();
    c.start().await.unwrap();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while got.is_empty() && std::time::Instant::now() < deadline {
        got = c.receive(8, Duration::from_secs(30)).await.unwrap();
    }
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].message_id, sent.message_id);
    assert_eq!(&got[0].body[..], b"signed");
    c.ack(&got[0]).await.unwrap();
    p.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_right_keys_produce_consume_and_administer() {
    let tb = guarded().await;
    let config = config(&tb, Some(("app", "s3cret")));
    round_trip(&config, "cred-sdk", "cred-sdk-g").await;
    let admin = Admin::new(config).unwrap();
    let topics = admin.list_topics(false).await.unwrap();
    assert!(topics.iter().any(|t| t.name == "cred-sdk"), "{topics:?}");
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_or_missing_keys_are_unauthorized_with_the_cause() {
    let tb = guarded().await;
    for (creds, cause) in [
        (Some(("app", "guess")), "signature does not match (wrong secret key?)"),
        (Some(("intruder", "s3cret")), "unknown access key \"intruder\""),
        (None, "no authorization header"),
    ] {
        let config = config(&tb, creds);
        let p = Producer::builder(config.clone()).topics(["cred-sdk"]).build().unwrap();
        let e = p.start().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthorized, "{creds:?}: {e}");
        assert!(e.message().contains(cause), "{creds:?}: {e}");
        assert!(!e.to_string().contains("s3cret"), "{e}");

        let c = SimpleConsumer::builder(config.clone(), "cred-sdk-g")
            .subscribe("cred-sdk", FilterExpression::all())
            .build()
            .unwrap();
        let e = c.start().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthorized, "{creds:?}: {e}");
        assert!(e.message().contains(cause), "{creds:?}: {e}");

        // The admin API answers gRPC UNAUTHENTICATED, the same kind to the SDK.
        let e = Admin::new(config).unwrap().list_topics(false).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthorized, "{creds:?}: {e}");
        assert!(e.message().contains(cause), "{creds:?}: {e}");
    }
    // Nothing was created or stored by the refused calls.
    assert_eq!(tb.broker.store().commitlog_max_offset(), 0);
    assert!(tb.broker.store().topics().get("cred-sdk").is_none());
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_without_credentials_accepts_signed_clients() {
    let tb = TestBroker::start().await;
    round_trip(&config(&tb, Some(("any", "thing"))), "open-t", "open-g").await;
    let admin = Admin::new(config(&tb, Some(("any", "thing")))).unwrap();
    admin.list_topics(false).await.unwrap();
    tb.stop().await;
}
