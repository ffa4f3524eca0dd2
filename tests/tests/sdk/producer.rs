//! Producer: send, batches, concurrency, FIFO, delay and recall, transactions, failures.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use orbitmq_core::broker::BrokerConfig;
use orbitmq_core::client::{
    ClientConfig, ErrorKind, Message, MessageView, Producer, TransactionChecker,
    TransactionResolution,
};
use orbitmq_tests::TestBroker;

use crate::{config, consumer, producer};

#[tokio::test(flavor = "multi_thread")]
async fn a_sent_message_arrives_whole_with_its_tag_keys_and_properties() {
    let tb = TestBroker::start().await;
    let p = producer(&tb, &["orders"]).await;
    let msg = Message::builder("orders")
        .body("hello")
        .tag("new")
        .keys(["order-1", "customer-7"])
        .property("region", "eu")
        .build();
    let r = p.send(msg).await.unwrap();
    assert_eq!(r.topic, "orders");
    assert_eq!(r.message_id.len(), 34, "{}", r.message_id);
    assert_eq!(r.queue_offset, 0);

    let c = consumer(&tb, "billing", "orders").await;
    let got = c.receive(16, Duration::from_secs(30)).await.unwrap();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.message_id, r.message_id);
    assert_eq!(&m.body[..], b"hello");
    assert_eq!(m.tag.as_deref(), Some("new"));
    assert_eq!(m.keys, ["order-1", "customer-7"]);
    assert_eq!(m.properties.get("region").map(String::as_str), Some("eu"));
    assert_eq!(m.delivery_attempt, 1);
    // OrbitMQ also says where the message is stored: its offset_msg_id finds it.
    assert_eq!(r.queue_id, Some(m.queue_id));
    let offset_id = r.offset_msg_id.clone().expect("OrbitMQ reports the offset_msg_id");
    assert_eq!(m.offset_msg_id.as_deref(), Some(offset_id.as_str()));
    let stored = tb.broker.store().read_by_offset_msg_id(&offset_id).unwrap();
    assert_eq!(stored.message_id(), Some(r.message_id.as_str()));
    assert!(m.born_timestamp > 0 && m.store_timestamp >= m.born_timestamp - 1000);
    c.ack(m).await.unwrap();
    p.shutdown().await;
    c.shutdown().await;
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_is_one_request_and_many_sends_run_at_once() {
    let tb = TestBroker::start().await;
    let p = producer(&tb, &["t"]).await;
    let batch: Vec<Message> = (0..10).map(|i| Message::new("t", format!("b{i}"))).collect();
    let receipts = p.send_batch(batch).await.unwrap();
    assert_eq!(receipts.len(), 10);
    let ids: HashSet<&str> = receipts.iter().map(|r| r.message_id.as_str()).collect();
    assert_eq!(ids.len(), 10);

    // 200 sends in flight from clones of one producer.
    let sends = (0..200).map(|i| {
        let p = p.clone();
        tokio::spawn(async move { p.send(Message::new("t", format!("m{i}"))).await })
    });
    let mut ids = HashSet::new();
    for s in sends {
        ids.insert(s.await.unwrap().unwrap().message_id);
    }
    assert_eq!(ids.len(), 200);
    tb.wait_dispatched().await;
    let stored: u64 =
        (0..8).map(|q| tb.broker.store().queue("t", q).map_or(0, |cq| cq.max_offset())).sum();
    assert_eq!(stored, 210, "every acknowledged send is stored, once");
    p.shutdown().await;
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_group_keeps_one_queue_and_its_order() {
    let tb = TestBroker::start().await;
    tb.group("fifo-g", true, 16);
    let p = producer(&tb, &["f"]).await;
    let mut queues = HashSet::new();
    for i in 0..20 {
        let m = Message::builder("f").body(format!("{i}")).message_group("order-42").build();
        p.send(m).await.unwrap();
    }
    let c = consumer(&tb, "fifo-g", "f").await;
    let mut seen = Vec::new();
    while seen.len() < 20 {
        let got = c.receive(32, Duration::from_secs(30)).await.unwrap();
        assert!(!got.is_empty(), "all 20 are there");
        for m in got {
            queues.insert(m.queue_id);
            assert_eq!(m.message_group.as_deref(), Some("order-42"));
            seen.push(String::from_utf8(m.body.to_vec()).unwrap().parse::<u32>().unwrap());
            c.ack(&m).await.unwrap();
        }
    }
    assert_eq!(seen, (0..20).collect::<Vec<_>>(), "in send order");
    assert_eq!(queues.len(), 1, "one queue per message group");
    p.shutdown().await;
    c.shutdown().await;
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delay_message_waits_and_a_recalled_one_never_comes() {
    let tb = TestBroker::start().await;
    let p = producer(&tb, &["d"]).await;
    let sent_at = orbitmq_core::protocol::time::now_ms();
    let due = Message::builder("d").body("due").delay(Duration::from_secs(2)).build();
    let due = p.send(due).await.unwrap();
    let recalled = Message::builder("d").body("recalled").delay(Duration::from_secs(2)).build();
    let recalled = p.send(recalled).await.unwrap();
    let handle = recalled.recall_handle.clone().expect("a delay message has a recall handle");
    assert_eq!(p.recall("d", &handle).await.unwrap(), recalled.message_id);

    let c = consumer(&tb, "delayed", "d").await;
    let mut got: Vec<MessageView> = Vec::new();
    while got.is_empty() {
        got = c.receive(32, Duration::from_secs(30)).await.unwrap();
    }
    let arrived = orbitmq_core::protocol::time::now_ms();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].message_id, due.message_id);
    assert!(arrived - sent_at >= 1900, "delivered after {} ms", arrived - sent_at);
    c.ack(&got[0]).await.unwrap();
    // The recalled one was due at the same time: nothing else comes.
    assert!(c.receive(32, Duration::from_secs(30)).await.unwrap().is_empty());
    p.shutdown().await;
    c.shutdown().await;
    tb.stop().await;
}

/// Commits transactions whose body says "commit", rolls back the rest; counts its calls.
struct Checker(AtomicUsize);

#[async_trait::async_trait]
impl TransactionChecker for Checker {
    async fn check(&self, message: MessageView) -> TransactionResolution {
        self.0.fetch_add(1, Ordering::SeqCst);
        if &message.body[..] == b"commit" {
            TransactionResolution::Commit
        } else {
            TransactionResolution::Rollback
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn transactions_commit_roll_back_and_are_checked_back_when_left_open() {
    let config = BrokerConfig {
        transaction_check_first_ms: 500,
        transaction_check_interval_ms: 500,
        ..BrokerConfig::default()
    };
    let tb = TestBroker::start_with(config).await;
    let checker = Arc::new(Checker(AtomicUsize::new(0)));
    let p = Producer::builder(self::config(&tb))
        .topics(["tx"])
        .transaction_checker(Arc::clone(&checker) as Arc<dyn TransactionChecker>)
        .build()
        .unwrap();
    p.start().await.unwrap();

    let mut t = p.begin_transaction().unwrap();
    let committed = t.send(Message::new("tx", "committed")).await.unwrap();
    assert!(committed.transaction_id.is_some());
    t.commit().await.unwrap();
    let mut t = p.begin_transaction().unwrap();
    t.send(Message::new("tx", "rolled back")).await.unwrap();
    t.rollback().await.unwrap();
    // Left open: the broker asks the checker, which commits this one…
    let mut t = p.begin_transaction().unwrap();
    let by_checker = t.send(Message::new("tx", "commit")).await.unwrap();
    drop(t);
    // …and rolls this one back.
    let mut t = p.begin_transaction().unwrap();
    t.send(Message::new("tx", "abandon")).await.unwrap();
    drop(t);

    let c = consumer(&tb, "tx-g", "tx").await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        for m in c.receive(32, Duration::from_secs(30)).await.unwrap() {
            ids.push((String::from_utf8(m.body.to_vec()).unwrap(), m.message_id.clone()));
            c.ack(&m).await.unwrap();
        }
        if ids.len() >= 2 {
            break;
        }
    }
    ids.sort();
    assert_eq!(
        ids,
        [
            ("commit".to_owned(), by_checker.message_id),
            ("committed".to_owned(), committed.message_id)
        ]
    );
    assert!(checker.0.load(Ordering::SeqCst) >= 2, "both open transactions were checked");
    p.shutdown().await;
    c.shutdown().await;
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_say_what_went_wrong() {
    let tb = TestBroker::start_with(BrokerConfig {
        auto_create_topics: false,
        ..BrokerConfig::default()
    })
    .await;
    // A topic that does not exist: NOT_FOUND, from the server, at start.
    let p = Producer::builder(config(&tb)).topics(["missing"]).build().unwrap();
    let e = p.start().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(e.status_code(), Some(40402), "{e}");
    // Nothing listening: UNAVAILABLE, naming the endpoint.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let p = Producer::builder(ClientConfig::new(dead.to_string())).build().unwrap();
    let e = p.send(Message::new("t", "x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.to_string().contains(&dead.to_string()), "{e}");
    // After shutdown: CLOSED.
    let p = producer(&tb, &[]).await;
    p.shutdown().await;
    let e = p.send(Message::new("t", "x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed, "{e}");
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_endpoint_in_the_list_is_skipped_and_avoided() {
    let tb = TestBroker::start().await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    // The dead endpoint first: routes and settings come from the live one.
    let endpoints = format!("{dead};{}", tb.addr);
    let p = Producer::builder(ClientConfig::new(endpoints)).topics(["fo"]).build().unwrap();
    p.start().await.unwrap();
    let r = p.send(Message::new("fo", "x")).await.unwrap();
    assert_eq!(r.endpoint, tb.addr.to_string());
    // The consumer side too.
    let c = orbitmq_core::client::SimpleConsumer::builder(
        ClientConfig::new(format!("{dead};{}", tb.addr)),
        "fo-g",
    )
    .subscribe("fo", orbitmq_core::client::FilterExpression::all())
    .await_duration(Duration::from_secs(5))
    .build()
    .unwrap();
    let got = c.receive(8, Duration::from_secs(30)).await.unwrap();
    assert_eq!(got.len(), 1);
    c.ack(&got[0]).await.unwrap();
    c.shutdown().await;
    p.shutdown().await;
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_that_gets_no_answer_times_out_with_the_configured_timeout() {
    // A listener that accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let keep = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let config = ClientConfig::new(addr.to_string()).request_timeout(Duration::from_millis(300));
    let p = Producer::builder(config).build().unwrap();
    let start = std::time::Instant::now();
    let e = p.send(Message::new("t", "x")).await.unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Timeout | ErrorKind::Unavailable), "{e}");
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
    keep.abort();
}
