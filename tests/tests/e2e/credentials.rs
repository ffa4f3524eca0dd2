//! A broker with credentials answers every `MessagingService` RPC that is not signed with
//! them `UNAUTHORIZED` in the body, as Apache's proxy does, and ends a Telemetry stream with
//! one command carrying that status.
// Empty requests on purpose: the credentials are checked before anything in them.
#![allow(clippy::default_trait_access)]

use orbitmq_core::broker::BrokerConfig;
use orbitmq_core::protocol::auth::{ServerCredentials, authorization, date_time};
use orbitmq_core::protocol::v2::{self, Code, receive_message_response::Content};
use orbitmq_tests::{Client, TestBroker, code, message, resource};

/// Adds (or not) an authorization to a request's metadata.
type Signer = dyn Fn(&mut tonic::metadata::MetadataMap);

async fn guarded() -> TestBroker {
    let config = BrokerConfig {
        credentials: Some(ServerCredentials::new("app", "s3cret")),
        ..BrokerConfig::default()
    };
    TestBroker::start_with(config).await
}

/// `msg` signed as a client with `ak`/`sk` signs it (the date-time it covers included).
fn signed<T>(msg: T, ak: &str, sk: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    let date = date_time(std::time::SystemTime::now());
    let m = req.metadata_mut();
    m.insert("authorization", authorization(ak, sk, &date).parse().unwrap());
    m.insert("x-mq-date-time", date.parse().unwrap());
    req
}

/// The status of every unary RPC (and the first status of ReceiveMessage) for requests made by
/// `sign` (which may sign them or not).
async fn statuses(
    c: &mut Client,
    sign: impl Fn(&mut tonic::metadata::MetadataMap),
) -> Vec<(&'static str, v2::Status)> {
    fn req<T>(msg: T, sign: &impl Fn(&mut tonic::metadata::MetadataMap)) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        sign(r.metadata_mut());
        r
    }
    let st = |s: Option<v2::Status>| s.expect("a status");
    let r = &mut c.raw;
    let mut out = vec![
        (
            "QueryRoute",
            st(r.query_route(req(Default::default(), &sign)).await.unwrap().into_inner().status),
        ),
        (
            "Heartbeat",
            st(r.heartbeat(req(Default::default(), &sign)).await.unwrap().into_inner().status),
        ),
        (
            "SendMessage",
            st(r.send_message(req(
                v2::SendMessageRequest { messages: vec![message("cred-t", "01AA", "x")] },
                &sign,
            ))
            .await
            .unwrap()
            .into_inner()
            .status),
        ),
        (
            "QueryAssignment",
            st(r.query_assignment(req(Default::default(), &sign))
                .await
                .unwrap()
                .into_inner()
                .status),
        ),
        (
            "AckMessage",
            st(r.ack_message(req(Default::default(), &sign)).await.unwrap().into_inner().status),
        ),
        (
            "ForwardMessageToDeadLetterQueue",
            st(r.forward_message_to_dead_letter_queue(req(Default::default(), &sign))
                .await
                .unwrap()
                .into_inner()
                .status),
        ),
        ("PullMessage", {
            let mut s = r.pull_message(req(Default::default(), &sign)).await.unwrap().into_inner();
            let mut found = None;
            while let Some(item) = s.message().await.unwrap() {
                if let Some(v2::pull_message_response::Content::Status(x)) = item.content {
                    found.get_or_insert(x);
                }
            }
            st(found)
        }),
        (
            "UpdateOffset",
            st(r.update_offset(req(Default::default(), &sign)).await.unwrap().into_inner().status),
        ),
        (
            "GetOffset",
            st(r.get_offset(req(Default::default(), &sign)).await.unwrap().into_inner().status),
        ),
        (
            "QueryOffset",
            st(r.query_offset(req(Default::default(), &sign)).await.unwrap().into_inner().status),
        ),
        (
            "EndTransaction",
            st(r.end_transaction(req(Default::default(), &sign))
                .await
                .unwrap()
                .into_inner()
                .status),
        ),
        (
            "NotifyClientTermination",
            st(r.notify_client_termination(req(Default::default(), &sign))
                .await
                .unwrap()
                .into_inner()
                .status),
        ),
        (
            "ChangeInvisibleDuration",
            st(r.change_invisible_duration(req(Default::default(), &sign))
                .await
                .unwrap()
                .into_inner()
                .status),
        ),
        (
            "RecallMessage",
            st(r.recall_message(req(Default::default(), &sign)).await.unwrap().into_inner().status),
        ),
        (
            "SyncLiteSubscription",
            st(r.sync_lite_subscription(req(Default::default(), &sign))
                .await
                .unwrap()
                .into_inner()
                .status),
        ),
    ];
    let receive = v2::ReceiveMessageRequest {
        group: Some(resource("cred-g")),
        message_queue: Some(v2::MessageQueue {
            topic: Some(resource("cred-t")),
            ..Default::default()
        }),
        batch_size: 1,
        ..Default::default()
    };
    let mut s = r.receive_message(req(receive, &sign)).await.unwrap().into_inner();
    let mut found = None;
    while let Some(item) = s.message().await.unwrap() {
        if let Some(Content::Status(x)) = item.content {
            found.get_or_insert(x);
        }
    }
    out.push(("ReceiveMessage", st(found)));
    out
}

#[tokio::test]
async fn every_rpc_without_valid_credentials_answers_unauthorized_in_the_body() {
    let b = guarded().await;
    let mut c = b.client("cred-client").await;
    let date = date_time(std::time::SystemTime::now());
    let cases: [(&str, Box<Signer>); 4] = [
        ("no authorization header", Box::new(|_| {})),
        (
            "signature does not match (wrong secret key?)",
            Box::new(move |m| {
                m.insert("authorization", authorization("app", "guess", &date).parse().unwrap());
                m.insert("x-mq-date-time", date.parse().unwrap());
            }),
        ),
        (
            "unknown access key \"intruder\"",
            Box::new(|m| {
                let d = date_time(std::time::SystemTime::now());
                m.insert("authorization", authorization("intruder", "s3cret", &d).parse().unwrap());
                m.insert("x-mq-date-time", d.parse().unwrap());
            }),
        ),
        (
            // What the official Python client sends when no credentials are configured.
            "empty access key",
            Box::new(|m| {
                let d = date_time(std::time::SystemTime::now());
                m.insert("authorization", authorization("", "", &d).parse().unwrap());
                m.insert("x-mq-date-time", d.parse().unwrap());
            }),
        ),
    ];
    for (cause, sign) in cases {
        let got = statuses(&mut c, sign).await;
        assert_eq!(got.len(), 16, "every RPC but Telemetry");
        for (rpc, st) in got {
            assert_eq!(Code::try_from(st.code), Ok(Code::Unauthorized), "{rpc}: {st:?}");
            assert!(st.message.contains(cause), "{rpc}: {:?} does not say {cause:?}", st.message);
            assert!(!st.message.contains("s3cret"), "{rpc} echoes the secret: {:?}", st.message);
        }
    }
    // Nothing reached the store.
    assert_eq!(b.broker.store().commitlog_max_offset(), 0);
    b.stop().await;
}

#[tokio::test]
async fn signed_requests_pass_and_the_check_comes_before_the_client_id() {
    let b = guarded().await;
    let mut c = b.client("cred-ok").await;
    let r = c
        .raw
        .send_message(signed(
            v2::SendMessageRequest { messages: vec![message("cred-t", "01AB", "hello")] },
            "app",
            "s3cret",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(r.status.as_ref()), Code::Ok, "{r:?}");
    // Apache's authentication pipeline runs before its client id check.
    let mut anonymous = b.client("").await;
    let r = anonymous.raw.heartbeat(v2::HeartbeatRequest::default()).await.unwrap().into_inner();
    assert_eq!(code(r.status.as_ref()), Code::Unauthorized, "{r:?}");
    let r = anonymous
        .raw
        .heartbeat(signed(v2::HeartbeatRequest::default(), "app", "s3cret"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(r.status.as_ref()), Code::ClientIdRequired, "{r:?}");
    b.stop().await;
}

#[tokio::test]
async fn a_telemetry_stream_without_credentials_gets_one_unauthorized_command_and_ends() {
    let b = guarded().await;
    let mut c = b.client("cred-telemetry").await;
    let settings = v2::Settings {
        client_type: Some(v2::ClientType::Producer as i32),
        pub_sub: Some(v2::settings::PubSub::Publishing(v2::Publishing::default())),
        ..Default::default()
    };
    let (_tx, mut stream) = c.telemetry(settings.clone()).await;
    let first = stream.message().await.unwrap().expect("one command");
    assert_eq!(code(first.status.as_ref()), Code::Unauthorized, "{first:?}");
    assert!(first.command.is_none());
    assert!(first.status.unwrap().message.contains("no authorization header"));
    // Then the stream completes with gRPC status OK, as Apache's proxy completes it.
    assert!(stream.message().await.unwrap().is_none());
    assert!(b.broker.clients().is_empty(), "a refused client is not registered");

    // Signed, the same stream gets the settings.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(v2::TelemetryCommand {
        status: None,
        command: Some(v2::telemetry_command::Command::Settings(settings)),
    })
    .await
    .unwrap();
    let mut stream = c
        .raw
        .telemetry(signed(tokio_stream::wrappers::ReceiverStream::new(rx), "app", "s3cret"))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().expect("settings");
    assert_eq!(code(first.status.as_ref()), Code::Ok, "{first:?}");
    assert!(matches!(first.command, Some(v2::telemetry_command::Command::Settings(_))));

    // A refused stream whose client never sends holds up no shutdown: it gets its refusal then.
    let (_silent_tx, rx) = tokio::sync::mpsc::channel(1);
    let mut silent = c
        .raw
        .telemetry(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let stopped = tokio::spawn(b.stop());
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), silent.message())
        .await
        .expect("the refusal when the broker stops")
        .unwrap()
        .expect("one command");
    assert_eq!(code(first.status.as_ref()), Code::Unauthorized, "{first:?}");
    tokio::time::timeout(std::time::Duration::from_secs(10), stopped).await.unwrap().unwrap();
}
