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
            "delay message",
            with_sys(&|s| {
                s.delivery_timestamp =
                    Some(prost_types::Timestamp { seconds: 2_000_000_000, nanos: 0 });
            }),
            Code::Unsupported,
        ),
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
async fn unimplemented_rpcs_answer_unsupported_with_a_reason() {
    let b = TestBroker::start().await;
    let mut c = b.client("u").await;
    let r = c.raw.end_transaction(v2::EndTransactionRequest::default()).await.unwrap().into_inner();
    assert_eq!(code(r.status.as_ref()), Code::Unsupported);
    assert!(!r.status.unwrap().message.is_empty());
    let r = c.raw.recall_message(v2::RecallMessageRequest::default()).await.unwrap().into_inner();
    assert_eq!(code(r.status.as_ref()), Code::Unsupported);
    let r = c
        .raw
        .forward_message_to_dead_letter_queue(v2::ForwardMessageToDeadLetterQueueRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(r.status.as_ref()), Code::Unsupported);
    b.stop().await;
}
