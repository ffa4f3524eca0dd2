//! Simple consumer: receive, ack, invisible time, redelivery, groups, namespaces, TLS.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use orbitmq_core::client::{
    ClientConfig, ClientTls, ErrorKind, FilterExpression, Message, SimpleConsumer,
};
use orbitmq_core::tls::server::{ServerTls, self_signed_names};
use orbitmq_tests::TestBroker;

use crate::{config, consumer, producer};

#[tokio::test(flavor = "multi_thread")]
async fn an_unacked_message_comes_back_and_an_acked_one_does_not() {
    let tb = TestBroker::start().await;
    let p = producer(&tb, &["r"]).await;
    let acked = p.send(Message::new("r", "acked")).await.unwrap();
    let dropped = p.send(Message::new("r", "dropped")).await.unwrap();
    let c = consumer(&tb, "retry-g", "r").await;
    let mut got = Vec::new();
    while got.len() < 2 {
        got.extend(c.receive(32, Duration::from_secs(10)).await.unwrap());
    }
    for m in &got {
        if m.message_id == acked.message_id {
            c.ack(m).await.unwrap();
        }
    }
    // Not acked within its 10 s: delivered again, as attempt 2; the acked one never.
    let start = Instant::now();
    let mut again = Vec::new();
    while again.is_empty() && start.elapsed() < Duration::from_secs(30) {
        again = c.receive(32, Duration::from_secs(30)).await.unwrap();
    }
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0].message_id, dropped.message_id);
    assert_eq!(again[0].delivery_attempt, 2);
    c.ack(&again[0]).await.unwrap();
    // An ack with a receipt handle the broker never gave fails, naming why.
    let mut forged = again[0].clone();
    forged.receipt_handle = "not-a-handle".to_owned();
    let e = c.ack(&forged).await.unwrap_err();
    assert_eq!(e.operation(), Some("ack"));
    assert!(matches!(e.kind(), ErrorKind::PreconditionFailed | ErrorKind::BadRequest), "{e}");
    p.shutdown().await;
    c.shutdown().await;
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_invisible_duration_gives_a_new_handle_that_acks() {
    let tb = TestBroker::start().await;
    let p = producer(&tb, &["inv"]).await;
    p.send(Message::new("inv", "x")).await.unwrap();
    let c = consumer(&tb, "inv-g", "inv").await;
    let mut got = c.receive(1, Duration::from_secs(10)).await.unwrap();
    let mut m = got.pop().unwrap();
    let old = m.receipt_handle.clone();
    let new = c.change_invisible_duration(&mut m, Duration::from_secs(60)).await.unwrap();
    assert_ne!(new, old);
    assert_eq!(m.receipt_handle, new);
    c.ack(&m).await.unwrap();
    p.shutdown().await;
    c.shutdown().await;
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn members_of_a_group_split_the_messages_and_tags_filter() {
    let tb = TestBroker::start().await;
    let p = producer(&tb, &["split"]).await;
    let mut want = HashSet::new();
    for i in 0..60 {
        let tag = if i % 3 == 0 { "skip" } else { "take" };
        let r = p.send(Message::builder("split").body(format!("{i}")).tag(tag).build()).await;
        if tag == "take" {
            want.insert(r.unwrap().message_id);
        }
    }
    let member = |_| {
        SimpleConsumer::builder(config(&tb), "split-g")
            .subscribe("split", FilterExpression::tags(["take"]))
            .await_duration(Duration::from_secs(5))
            .build()
            .unwrap()
    };
    let (a, b) = (member(0), member(1));
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    let start = Instant::now();
    while got_a.len() + got_b.len() < want.len() && start.elapsed() < Duration::from_secs(60) {
        let (ra, rb) = tokio::join!(
            a.receive(8, Duration::from_secs(60)),
            b.receive(8, Duration::from_secs(60))
        );
        for m in ra.unwrap() {
            a.ack(&m).await.unwrap();
            got_a.push(m.message_id);
        }
        for m in rb.unwrap() {
            b.ack(&m).await.unwrap();
            got_b.push(m.message_id);
        }
    }
    let all: HashSet<String> = got_a.iter().chain(&got_b).cloned().collect();
    assert_eq!(all, want, "every tagged message, none of the others");
    assert_eq!(got_a.len() + got_b.len(), want.len(), "none twice");
    assert!(!got_a.is_empty() && !got_b.is_empty(), "both members got work");
    for c in [a, b] {
        c.shutdown().await;
    }
    p.shutdown().await;
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn namespaces_isolate_topics() {
    let tb = TestBroker::start().await;
    let in_ns = |ns: &str| config(&tb).namespace(ns);
    let pa = orbitmq_core::client::Producer::builder(in_ns("a")).build().unwrap();
    pa.send(Message::new("shared", "from a")).await.unwrap();
    let cb = SimpleConsumer::builder(in_ns("b"), "g")
        .subscribe("shared", FilterExpression::all())
        .await_duration(Duration::from_secs(5))
        .build()
        .unwrap();
    assert!(cb.receive(32, Duration::from_secs(10)).await.unwrap().is_empty());
    let ca = SimpleConsumer::builder(in_ns("a"), "g")
        .subscribe("shared", FilterExpression::all())
        .build()
        .unwrap();
    let got = ca.receive(32, Duration::from_secs(10)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].topic, "shared", "the namespace is not part of the name a client sees");
    for c in [ca, cb] {
        c.shutdown().await;
    }
    pa.shutdown().await;
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_works_and_plaintext_is_refused_where_tls_is_required() {
    let tls = ServerTls::self_signed(&self_signed_names("127.0.0.1:0".parse().unwrap())).unwrap();
    let tb = TestBroker::start_tls(&tls, true).await;
    let over_tls = ClientConfig::new(tb.addr.to_string()).tls(ClientTls::AcceptAny);
    let p = orbitmq_core::client::Producer::builder(over_tls).build().unwrap();
    let r = p.send(Message::new("secure", "x")).await.unwrap();
    assert!(!r.message_id.is_empty());
    let plain = orbitmq_core::client::Producer::builder(config(&tb)).build().unwrap();
    let e = plain.send(Message::new("secure", "x")).await.unwrap_err();
    assert!(e.is_retryable() || e.kind() == ErrorKind::Internal, "{e}");
    p.shutdown().await;
    plain.shutdown().await;
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn receive_checks_its_arguments_before_calling() {
    let tb = TestBroker::start().await;
    let c = consumer(&tb, "args-g", "a").await;
    let e = c.receive(0, Duration::from_secs(30)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadRequest);
    let e = c.receive(33, Duration::from_secs(30)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadRequest);
    let e = c.receive(1, Duration::from_secs(1)).await.unwrap_err();
    assert!(e.message().contains("invisible"), "{e}");
    c.shutdown().await;
    let e = c.receive(1, Duration::from_secs(30)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed);
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ack_batch_acks_a_whole_receive_in_one_call() {
    let tb = TestBroker::start().await;
    let p = producer(&tb, &["ab"]).await;
    let sent: Vec<Message> = (0..40).map(|i| Message::new("ab", format!("{i}"))).collect();
    p.send_batch(sent).await.unwrap();
    let c = consumer(&tb, "ab-g", "ab").await;
    let mut got = Vec::new();
    while got.len() < 40 {
        got.extend(c.receive(32, Duration::from_secs(60)).await.unwrap());
    }
    assert_eq!(got.len(), 40);
    let admin = orbitmq_core::client::Admin::new(config(&tb)).unwrap();
    assert_eq!(admin.consumer_progress("ab-g", Some("ab")).await.unwrap().inflight, 40);
    // Nothing to ack is no request and no error.
    c.ack_batch(&[]).await.unwrap();
    c.ack_batch(&got).await.unwrap();
    // All acknowledged: none in flight, none left to receive.
    let progress = admin.consumer_progress("ab-g", Some("ab")).await.unwrap();
    assert_eq!((progress.inflight, progress.total_lag), (0, 0), "{progress:?}");
    // A handle the broker never gave fails the call, naming the operation; one without a
    // handle fails before any call.
    let mut forged = got[0].clone();
    forged.receipt_handle = "not-a-handle".to_owned();
    let e = c.ack_batch(&[forged.clone()]).await.unwrap_err();
    assert_eq!(e.operation(), Some("ack"));
    forged.receipt_handle.clear();
    let e = c.ack_batch(&[forged]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadRequest);
    p.shutdown().await;
    c.shutdown().await;
    tb.stop().await;
}
