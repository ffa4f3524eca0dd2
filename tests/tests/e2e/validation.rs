//! Each validation rule of PROTOCOL.md §2.6 answers its code, and bad input changes nothing.

use std::collections::HashMap;

use orbitmq_core::broker::BrokerConfig;
use orbitmq_core::protocol::v2::{self, Code};
use orbitmq_tests::{Client, TestBroker, code, message, resource};

async fn send_code(client: &mut Client, m: v2::Message) -> (Code, Code) {
    let r = client.send(m).await;
    let entry = r.entries.first().map_or(Code::Unspecified, |e| code(e.status.as_ref()));
    (code(r.status.as_ref()), entry)
}

#[tokio::test]
async fn every_send_rule_answers_its_code_and_stores_nothing() {
    let b = TestBroker::start().await;
    let mut c = b.client("validator").await;
    let ok = message("vt", "01AA", "fine");
    assert_eq!(send_code(&mut c, ok.clone()).await, (Code::Ok, Code::Ok));
    let before = b.broker.store().commitlog_max_offset();

    let with_sys = |f: &dyn Fn(&mut v2::SystemProperties)| {
        let mut m = ok.clone();
        f(m.system_properties.as_mut().unwrap());
        m
    };
    let mut cases: Vec<(&str, v2::Message, Code)> = vec![
        (
            "empty body",
            {
                let mut m = ok.clone();
                m.body = Vec::new().into();
                m
            },
            Code::MessageBodyEmpty,
        ),
        (
            "body over 4 MiB",
            {
                let mut m = ok.clone();
                m.body = vec![b'x'; (4 << 20) + 1].into();
                m
            },
            Code::MessageBodyTooLarge,
        ),
        ("blank message id", with_sys(&|s| s.message_id = "  ".into()), Code::IllegalMessageId),
        ("tag with |", with_sys(&|s| s.tag = Some("a|b".into())), Code::IllegalMessageTag),
        (
            "tag with control char",
            with_sys(&|s| s.tag = Some("a\u{7}".into())),
            Code::IllegalMessageTag,
        ),
        ("blank key", with_sys(&|s| s.keys = vec!["   ".into()]), Code::IllegalMessageKey),
        (
            "message group of 64 bytes",
            with_sys(&|s| s.message_group = Some("g".repeat(64))),
            Code::IllegalMessageGroup,
        ),
        (
            "bad topic name",
            {
                let mut m = ok.clone();
                m.topic = Some(resource("no spaces"));
                m
            },
            Code::IllegalTopic,
        ),
        (
            "topic over 127 chars",
            {
                let mut m = ok.clone();
                m.topic = Some(resource(&"t".repeat(128)));
                m
            },
            Code::IllegalTopic,
        ),
        (
            "system topic",
            {
                let mut m = ok.clone();
                m.topic = Some(resource("TBW102"));
                m
            },
            Code::IllegalTopic,
        ),
        (
            "delivery time beyond the 24 h maximum",
            with_sys(&|s| {
                s.delivery_timestamp = Some(prost_types::Timestamp {
                    seconds: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs() as i64
                        + 25 * 3600,
                    nanos: 0,
                });
            }),
            Code::IllegalDeliveryTime,
        ),
        (
            "DELAY type without a delivery time",
            with_sys(&|s| s.message_type = v2::MessageType::Delay as i32),
            Code::IllegalDeliveryTime,
        ),
        (
            "transaction with a message group",
            with_sys(&|s| {
                s.message_type = v2::MessageType::Transaction as i32;
                s.message_group = Some("g1".into());
            }),
            Code::MessagePropertyConflictWithType,
        ),
        ("unknown message type", with_sys(&|s| s.message_type = 99), Code::BadRequest),
    ];
    let reserved = {
        let mut m = ok.clone();
        m.user_properties = HashMap::from([("UNIQ_KEY".to_owned(), "x".to_owned())]);
        m
    };
    cases.push(("reserved property key", reserved, Code::IllegalMessagePropertyKey));
    let many = {
        let mut m = ok.clone();
        m.user_properties = (0..129).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        m
    };
    cases.push(("129 user properties", many, Code::MessagePropertiesTooLarge));
    let big = {
        let mut m = ok.clone();
        m.user_properties = HashMap::from([("k".to_owned(), "v".repeat(16 * 1024))]);
        m
    };
    cases.push(("16 KiB of properties", big, Code::MessagePropertiesTooLarge));
    for (what, key, value) in [
        ("empty property key", "", "v"),
        ("blank property key", "  ", "v"),
        ("property key with a control char", "k\u{1}", "v"),
        ("property value with a control char", "k", "v\u{7f}"),
        ("property value with a C1 control char", "k", "v\u{85}"),
    ] {
        let mut m = ok.clone();
        m.user_properties = HashMap::from([(key.to_owned(), value.to_owned())]);
        cases.push((what, m, Code::IllegalMessagePropertyKey));
    }

    for (what, m, want) in cases {
        let (top, entry) = send_code(&mut c, m).await;
        assert_eq!((top, entry), (want, want), "{what}");
    }
    assert_eq!(b.broker.store().commitlog_max_offset(), before, "a refused send stored something");
    // A valid one still goes through, at the next queue offset of its queue.
    assert_eq!(send_code(&mut c, ok).await, (Code::Ok, Code::Ok));
    b.stop().await;
}

#[tokio::test]
async fn type_conflicts_unknown_topics_and_missing_client_ids() {
    let config = BrokerConfig {
        auto_create_topics: false,
        auto_create_groups: false,
        ..BrokerConfig::default()
    };
    let b = TestBroker::start_with(config).await;
    let mut c = b.client("strict").await;
    let r = c.send(message("nope", "01AB", "x")).await;
    assert_eq!(code(r.status.as_ref()), Code::TopicNotFound);
    assert!(r.status.unwrap().message.contains("nope"));
    let route = c
        .raw
        .query_route(v2::QueryRouteRequest { topic: Some(resource("nope")), endpoints: None })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(route.status.as_ref()), Code::TopicNotFound);
    let (st, _) = c
        .receive(
            "g",
            "nope",
            "*",
            1,
            Some(std::time::Duration::from_secs(30)),
            std::time::Duration::from_secs(5),
        )
        .await;
    assert_eq!(st, Code::ConsumerGroupNotFound);

    // A FIFO topic refuses a normal message.
    b.broker.store().topics().put(
        "fifo-only",
        orbitmq_core::storage::TopicConfig {
            read_queues: 2,
            write_queues: 2,
            perm: 6,
            message_type: "FIFO".into(),
        },
    );
    let r = c.send(message("fifo-only", "01AC", "x")).await;
    assert_eq!(code(r.status.as_ref()), Code::MessagePropertyConflictWithType);
    let mut fifo = message("fifo-only", "01AD", "x");
    let sys = fifo.system_properties.as_mut().unwrap();
    sys.message_type = v2::MessageType::Fifo as i32;
    sys.message_group = Some("order-1".into());
    assert_eq!(code(c.send(fifo).await.status.as_ref()), Code::Ok);

    let mut anon = b.client("").await;
    let r = anon.send(message("fifo-only", "01AE", "x")).await;
    assert_eq!(code(r.status.as_ref()), Code::ClientIdRequired);
    b.stop().await;
}

#[tokio::test]
async fn end_transaction_recall_and_forward_refuse_bad_input_with_a_reason() {
    let b = TestBroker::start().await;
    let mut c = b.client("u").await;
    let r = c
        .raw
        .end_transaction(v2::EndTransactionRequest {
            topic: Some(resource("t")),
            resolution: v2::TransactionResolution::Commit as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(r.status.as_ref()), Code::InvalidTransactionId);
    let r = c
        .raw
        .end_transaction(v2::EndTransactionRequest {
            topic: Some(resource("t")),
            transaction_id: "01NOSUCH".into(),
            resolution: v2::TransactionResolution::Commit as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(r.status.as_ref()), Code::InvalidTransactionId);
    assert!(r.status.unwrap().message.contains("no open transaction"));
    let r = c
        .raw
        .recall_message(v2::RecallMessageRequest {
            topic: Some(resource("t")),
            recall_handle: "not a handle".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(r.status.as_ref()), Code::BadRequest);
    let r = c
        .raw
        .forward_message_to_dead_letter_queue(v2::ForwardMessageToDeadLetterQueueRequest {
            group: Some(resource("g")),
            topic: Some(resource("t")),
            receipt_handle: "garbage".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(r.status.as_ref()), Code::InvalidReceiptHandle);
    let r = c
        .raw
        .sync_lite_subscription(v2::SyncLiteSubscriptionRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(r.status.as_ref()), Code::Unsupported);
    b.stop().await;
}

/// The admin API, for `query_message_by_id`.
async fn admin(
    b: &TestBroker,
) -> orbitmq_core::protocol::admin::admin_client::AdminClient<tonic::transport::Channel> {
    orbitmq_core::protocol::admin::admin_client::AdminClient::connect(format!("http://{}", b.addr))
        .await
        .unwrap()
}

#[tokio::test]
async fn numbers_near_the_integer_limits_are_answered_not_overflowed() {
    use orbitmq_core::protocol::admin as pb;
    let b = TestBroker::start().await;
    let mut c = b.client("limits").await;
    assert_eq!(send_code(&mut c, message("lim", "01LIM", "x")).await, (Code::Ok, Code::Ok));
    let mut a = admin(&b).await;

    // An offset_msg_id of this broker whose CommitLog offset is near u64::MAX: reading there
    // computed `offset + len` unchecked (a panic in debug builds, so no answer at all).
    let host = b.broker.store().config().store_host;
    for offset in [u64::MAX, u64::MAX - 3, u64::MAX - 200, 1 << 63] {
        let id = orbitmq_core::storage::msg_id::encode(host, offset);
        let err = a
            .query_message_by_id(pb::QueryMessageByIdRequest { id: id.clone() })
            .await
            .expect_err("no message there");
        assert_eq!(err.code(), tonic::Code::NotFound, "{id}: {err:?}");
        assert!(err.message().contains(&offset.to_string()), "{id}: {err:?}");
    }

    // A delivery time at the far past (i64::MIN ms): "at - now" overflowed. A time in the
    // past is due now, as in RocketMQ: stored in its topic at once.
    let mut past = message("lim", "01PAST", "x");
    past.system_properties.as_mut().unwrap().delivery_timestamp =
        Some(prost_types::Timestamp { seconds: i64::MIN, nanos: 0 });
    assert_eq!(send_code(&mut c, past).await, (Code::Ok, Code::Ok));

    // A grpc-timeout beyond the spec's 8 digits: "n * 3600" overflowed. It is ignored.
    for timeout in ["18446744073709551615H", "999999999999M", "99999999H"] {
        let mut req = tonic::Request::new(v2::QueryRouteRequest {
            topic: Some(resource("lim")),
            endpoints: None,
        });
        req.metadata_mut().insert("grpc-timeout", timeout.parse().unwrap());
        let r = c.raw.query_route(req).await.unwrap().into_inner();
        assert_eq!(code(r.status.as_ref()), Code::Ok, "grpc-timeout {timeout}");
    }
    b.stop().await;
}

#[tokio::test]
async fn change_invisible_duration_refuses_negative_invalid_and_huge_durations() {
    let b = TestBroker::start().await;
    let mut c = b.client("inv").await;
    assert_eq!(send_code(&mut c, message("inv", "01INV", "x")).await, (Code::Ok, Code::Ok));
    b.wait_dispatched().await;
    let (st, got) =
        c.receive("g", "inv", "*", 1, Some(std::time::Duration::from_secs(30)), SECOND).await;
    assert_eq!((st, got.len()), (Code::Ok, 1));
    let handle = got[0].system_properties.as_ref().unwrap().receipt_handle.clone().unwrap();
    let change = |seconds: i64, nanos: i32| v2::ChangeInvisibleDurationRequest {
        group: Some(resource("g")),
        topic: Some(resource("inv")),
        receipt_handle: handle.clone(),
        invisible_duration: Some(prost_types::Duration { seconds, nanos }),
        message_id: "01INV".into(),
        ..Default::default()
    };
    for (seconds, nanos, why) in [
        (-5, 0, "too small"),
        (-1, -500_000_000, "too small"),
        (i64::MIN, 0, "too small"),
        (1, -1, "not a valid"),
        (0, 2_000_000_000, "not a valid"),
        (12 * 3600 + 1, 0, "too large"),
        (i64::MAX, 0, "too large"),
    ] {
        let r = c.raw.change_invisible_duration(change(seconds, nanos)).await.unwrap().into_inner();
        assert_eq!(code(r.status.as_ref()), Code::IllegalInvisibleTime, "{seconds} s {nanos} ns");
        assert!(r.status.unwrap().message.contains(why), "{seconds} s {nanos} ns");
        assert!(r.receipt_handle.is_empty());
    }
    // The refusals changed nothing: the handle is still current, and 0 (visible now) is
    // allowed, as the proxy allows it.
    let r = c.raw.change_invisible_duration(change(0, 0)).await.unwrap().into_inner();
    assert_eq!(code(r.status.as_ref()), Code::Ok);
    assert!(!r.receipt_handle.is_empty());
    b.stop().await;
}

/// An auto-renewed receive takes its invisible duration as the first window, kept within the
/// limits: a huge one (fuzzing found `now + i64::MAX` overflowing) holds the message 12 h, a
/// tiny one 10 s; neither makes it visible again at once.
#[tokio::test]
async fn auto_renew_receive_keeps_its_invisible_duration_within_the_limits() {
    let b = TestBroker::start().await;
    let mut c = b.client("renew").await;
    for (i, seconds) in [(0, i64::MAX), (1, 0)] {
        let topic = format!("renew{i}");
        let id = format!("01RENEW{i}");
        assert_eq!(send_code(&mut c, message(&topic, &id, "x")).await, (Code::Ok, Code::Ok));
        b.wait_dispatched().await;
        let req = |invisible: Option<prost_types::Duration>| v2::ReceiveMessageRequest {
            group: Some(resource("g")),
            message_queue: Some(v2::MessageQueue {
                topic: Some(resource(&topic)),
                id: 0,
                ..Default::default()
            }),
            filter_expression: Some(v2::FilterExpression {
                r#type: v2::FilterType::Tag as i32,
                expression: "*".into(),
            }),
            batch_size: 1,
            invisible_duration: invisible,
            auto_renew: true,
            long_polling_timeout: Some(prost_types::Duration { seconds: 1, nanos: 0 }),
            attempt_id: None,
        };
        let (st, got) =
            c.receive_with(req(Some(prost_types::Duration { seconds, nanos: 0 }))).await;
        assert_eq!((st, got.len()), (Code::Ok, 1), "{seconds} s");
        let window = got[0].system_properties.as_ref().unwrap().invisible_duration.unwrap();
        let want = if seconds == 0 { 10 } else { 12 * 3600 };
        assert_eq!(window.seconds, want, "{seconds} s");
        // Still in flight: a second receive finds nothing.
        let (st, again) = c.receive_with(req(None)).await;
        assert_eq!((st, again.len()), (Code::MessageNotFound, 0), "{seconds} s");
    }
    b.stop().await;
}

const SECOND: std::time::Duration = std::time::Duration::from_secs(1);

#[tokio::test]
async fn offset_msg_id_not_at_a_record_start_is_message_not_found() {
    use orbitmq_core::protocol::admin as pb;
    let b = TestBroker::start().await;
    let mut c = b.client("byid").await;
    let r = c.send(message("byid", "01BYID", "x")).await;
    assert_eq!(code(r.status.as_ref()), Code::Ok);
    b.wait_dispatched().await;
    let host = b.broker.store().config().store_host;
    let max = b.broker.store().commitlog_max_offset();
    let mut a = admin(&b).await;
    for offset in [1, 7, max / 2, max - 1, max] {
        let id = orbitmq_core::storage::msg_id::encode(host, offset);
        let err = a
            .query_message_by_id(pb::QueryMessageByIdRequest { id: id.clone() })
            .await
            .expect_err("not a record start");
        assert_eq!(err.code(), tonic::Code::NotFound, "offset {offset}: {err:?}");
        let msg = err.message();
        assert!(
            msg.contains(&format!("no message starts at commit-log offset {offset}"))
                && msg.contains("SendMessage receipts"),
            "offset {offset}: {msg}"
        );
        assert!(!msg.contains("out of range") && !msg.contains("corrupt"), "{msg}");
    }
    // The record start itself is found.
    let id = orbitmq_core::storage::msg_id::encode(host, 0);
    let found = a.query_message_by_id(pb::QueryMessageByIdRequest { id }).await.unwrap();
    assert_eq!(found.into_inner().messages.len(), 1);
    b.stop().await;
}

#[tokio::test]
async fn requests_over_the_size_limit_are_resource_exhausted_bodies_over_4_mib_too_large() {
    // The default limits: max_request_size 16 MiB, max_body_size 4 MiB.
    let b = TestBroker::start().await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", b.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = v2::messaging_service_client::MessagingServiceClient::new(channel)
        .max_encoding_message_size(usize::MAX);
    let request = |bodies: usize, size: usize| {
        let mut req = tonic::Request::new(v2::SendMessageRequest {
            messages: (0..bodies)
                .map(|i| {
                    let mut m = message("big", &format!("01BIG{i}"), "");
                    m.body = vec![b'x'; size].into();
                    m
                })
                .collect(),
        });
        req.metadata_mut().insert("x-mq-client-id", "big".parse().unwrap());
        req
    };
    // Over the 16 MiB request limit (three 6 MiB bodies; one 125 MiB body): refused from the
    // length prefix with gRPC's RESOURCE_EXHAUSTED (tonic itself says OUT_OF_RANGE).
    for (bodies, size) in [(3, 6 << 20), (1, 125 << 20)] {
        let err = raw.send_message(request(bodies, size)).await.expect_err("over the limit");
        assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
        assert!(err.message().contains("max_request_size"), "{err:?}");
    }
    assert_eq!(b.broker.store().commitlog_max_offset(), 0);
    // One body over 4 MiB, in a request under the limit: RocketMQ's own code, as before.
    let r = raw.send_message(request(1, (4 << 20) + 1)).await.unwrap().into_inner();
    assert_eq!(code(r.status.as_ref()), Code::MessageBodyTooLarge);
    // A batch under the limit goes through, and the connection still works.
    let r = raw.send_message(request(3, 3 << 20)).await.unwrap().into_inner();
    assert_eq!(code(r.status.as_ref()), Code::Ok);
    assert!(b.broker.store().commitlog_max_offset() > 9 << 20);
    b.stop().await;
}
