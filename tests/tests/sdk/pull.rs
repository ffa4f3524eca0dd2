//! Pull consumer: reading queues by offset, committing to the broker or a local file,
//! assignment and rebalancing across members, seeks, filters, argument checks.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use orbitmq_core::broker::BrokerConfig;
use orbitmq_core::client::{
    ClientConfig, ErrorKind, FilterExpression, Message, MessageQueue, MessageView, OffsetStore,
    PullConsumer,
};
use orbitmq_tests::TestBroker;

use crate::{config, producer};

/// A broker whose auto-created topics have one queue.
async fn one_queue_broker() -> TestBroker {
    TestBroker::start_with(BrokerConfig { default_queues: 1, ..BrokerConfig::default() }).await
}

/// Sends `n` messages to `topic` (bodies `prefix0`, `prefix1`, …) and returns their ids.
async fn send(tb: &TestBroker, topic: &str, prefix: &str, n: usize) -> Vec<String> {
    let p = producer(tb, &[topic]).await;
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(p.send(Message::new(topic, format!("{prefix}{i}"))).await.unwrap().message_id);
    }
    p.shutdown().await;
    tb.wait_dispatched().await;
    ids
}

/// A started consumer of `group` subscribed to all of `topic`.
async fn subscriber(tb: &TestBroker, group: &str, topic: &str, store: OffsetStore) -> PullConsumer {
    let c = PullConsumer::builder(config(tb), group)
        .subscribe(topic, FilterExpression::all())
        .offset_store(store)
        .build()
        .unwrap();
    c.start().await.unwrap();
    c
}

/// Polls `c` until it has `n` messages or `limit` passed.
async fn poll_n(c: &PullConsumer, n: usize, limit: Duration) -> Vec<MessageView> {
    let start = Instant::now();
    let mut got = Vec::new();
    while got.len() < n && start.elapsed() < limit {
        got.extend(c.poll(Duration::from_secs(1)).await.unwrap());
    }
    got
}

fn ids(messages: &[MessageView]) -> Vec<String> {
    messages.iter().map(|m| m.message_id.clone()).collect()
}

/// Checks that per queue the offsets come in order, each once.
fn assert_queue_order(messages: &[MessageView]) {
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for m in messages {
        if let Some(prev) = last.insert(m.queue_id, m.queue_offset) {
            assert!(m.queue_offset > prev, "queue {}: {} after {prev}", m.queue_id, m.queue_offset);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn poll_returns_every_message_once_in_queue_order() {
    let tb = TestBroker::start().await;
    let sent = send(&tb, "pall", "m", 100).await;
    let c = subscriber(&tb, "pall-g", "pall", OffsetStore::Broker).await;
    assert_eq!(c.assignment().len(), 8, "alone in the group: every queue");
    let got = poll_n(&c, 100, Duration::from_secs(10)).await;
    assert_queue_order(&got);
    let queues: HashSet<i32> = got.iter().map(|m| m.queue_id).collect();
    assert!(queues.len() > 1, "read more than one queue: {queues:?}");
    assert!(got.iter().all(|m| m.receipt_handle.is_empty() && m.topic == "pall"));
    assert_eq!(got.len(), 100, "none twice");
    assert_eq!(ids(&got).into_iter().collect::<HashSet<_>>(), sent.into_iter().collect());
    assert!(c.poll(Duration::from_millis(500)).await.unwrap().is_empty(), "nothing left");
    // Positions stand after the last message of each queue.
    for q in c.assignment() {
        let last = got.iter().filter(|m| m.queue_id == q.queue_id).map(|m| m.queue_offset).max();
        assert_eq!(c.position(&q), Some(last.map_or(0, |o| o + 1)), "{q:?}");
    }
    c.shutdown().await;
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_consumer_resumes_after_the_committed_offset() {
    let tb = one_queue_broker().await;
    let sent = send(&tb, "resume", "m", 20).await;
    let first = PullConsumer::builder(config(&tb), "resume-g")
        .subscribe("resume", FilterExpression::all())
        .max_batch(4)
        .auto_commit_interval(Duration::ZERO)
        .build()
        .unwrap();
    let committed = first.poll(Duration::from_secs(5)).await.unwrap();
    assert_eq!(ids(&committed), sent[..4], "one batch of 4, from the start");
    first.commit().await.unwrap();
    // Read on without committing (auto-commit is off, so shutdown commits nothing either).
    assert_eq!(first.poll(Duration::from_secs(5)).await.unwrap().len(), 4);
    first.shutdown().await;
    assert_eq!(first.poll(Duration::from_secs(1)).await.unwrap_err().kind(), ErrorKind::Closed);

    let second = subscriber(&tb, "resume-g", "resume", OffsetStore::Broker).await;
    let got = poll_n(&second, 16, Duration::from_secs(10)).await;
    assert_eq!(ids(&got), sent[4..], "from the committed offset on, not the read one");
    second.shutdown().await;
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_offset_store_survives_a_restart_and_is_the_consumers_own() {
    let tb = one_queue_broker().await;
    let dir = tempfile::tempdir().unwrap();
    let local = OffsetStore::Local(dir.path().join("offsets"));
    let sent = send(&tb, "local", "m", 10).await;
    let first = subscriber(&tb, "local-g", "local", local.clone()).await;
    assert_eq!(ids(&poll_n(&first, 10, Duration::from_secs(10)).await), sent);
    // Shutdown commits (auto-commit is on).
    first.shutdown().await;
    let file = dir.path().join("offsets").join("local-g.offsets");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("local\tbroker-a\t0\t10"), "{text}");

    let later = send(&tb, "local", "n", 3).await;
    let second = subscriber(&tb, "local-g", "local", local).await;
    let got = poll_n(&second, 3, Duration::from_secs(10)).await;
    assert_eq!(ids(&got), later, "resumes after what the first one read");
    assert!(second.poll(Duration::from_millis(500)).await.unwrap().is_empty());
    second.commit().await.unwrap();
    assert!(std::fs::read_to_string(&file).unwrap().contains("local\tbroker-a\t0\t13"));
    second.shutdown().await;
    // Nothing went to the broker: the group there starts from the beginning.
    let on_broker = subscriber(&tb, "local-g", "local", OffsetStore::Broker).await;
    assert_eq!(poll_n(&on_broker, 13, Duration::from_secs(10)).await.len(), 13);
    on_broker.shutdown().await;
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn members_split_the_queues_and_one_takes_over_when_the_other_leaves() {
    let tb = TestBroker::start().await;
    let a = subscriber(&tb, "share-g", "share", OffsetStore::Broker).await;
    let b = subscriber(&tb, "share-g", "share", OffsetStore::Broker).await;
    // `a` learns of `b` at its next rebalance.
    let start = Instant::now();
    while a.assignment().len() != 4 || b.assignment().len() != 4 {
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "{:?} {:?}",
            a.assignment(),
            b.assignment()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (qa, qb): (HashSet<_>, HashSet<_>) =
        (a.assignment().into_iter().collect(), b.assignment().into_iter().collect());
    assert!(qa.is_disjoint(&qb), "{qa:?} {qb:?}");
    assert_eq!(qa.len() + qb.len(), 8);

    let sent = send(&tb, "share", "m", 40).await;
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    let start = Instant::now();
    while got_a.len() + got_b.len() < 40 && start.elapsed() < Duration::from_secs(8) {
        let (ra, rb) = tokio::join!(a.poll(Duration::from_secs(1)), b.poll(Duration::from_secs(1)));
        got_a.extend(ra.unwrap());
        got_b.extend(rb.unwrap());
    }
    assert!(got_a.iter().all(|m| qa.iter().any(|q| q.queue_id == m.queue_id)));
    assert!(got_b.iter().all(|m| qb.iter().any(|q| q.queue_id == m.queue_id)));
    assert!(!got_a.is_empty() && !got_b.is_empty(), "both members read");
    let all: Vec<String> = ids(&got_a).into_iter().chain(ids(&got_b)).collect();
    assert_eq!(all.len(), 40, "none twice");
    assert_eq!(all.iter().cloned().collect::<HashSet<_>>(), sent.into_iter().collect());

    // `b` leaves (committing); `a` takes its queues over and resumes where `b` stopped.
    b.shutdown().await;
    let start = Instant::now();
    while a.assignment().len() != 8 {
        assert!(start.elapsed() < Duration::from_secs(8), "no takeover: {:?}", a.assignment());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let more = send(&tb, "share", "n", 16).await;
    let got = poll_n(&a, 16, Duration::from_secs(5)).await;
    assert_eq!(ids(&got).into_iter().collect::<HashSet<_>>(), more.into_iter().collect());
    assert_eq!(got.len(), 16, "nothing `b` had read comes again");
    a.shutdown().await;
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn seeks_move_the_position() {
    let tb = one_queue_broker().await;
    let early = send(&tb, "seek", "early", 5).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let between = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let late = send(&tb, "seek", "late", 5).await;
    let all: Vec<String> = early.iter().chain(&late).cloned().collect();

    let c = PullConsumer::builder(config(&tb), "seek-g").build().unwrap();
    let queues = c.queues("seek").await.unwrap();
    let q = MessageQueue { topic: "seek".into(), broker: "broker-a".into(), queue_id: 0 };
    assert_eq!(queues, std::slice::from_ref(&q));
    c.assign(queues).await.unwrap();
    assert_eq!(c.assignment(), std::slice::from_ref(&q));
    assert_eq!(ids(&poll_n(&c, 10, Duration::from_secs(5)).await), all);
    assert_eq!(c.position(&q), Some(10));

    c.seek_to_beginning("seek").await.unwrap();
    assert_eq!(c.position(&q), Some(0));
    assert_eq!(ids(&poll_n(&c, 10, Duration::from_secs(5)).await), all);
    c.seek_to_timestamp("seek", between).await.unwrap();
    assert_eq!(ids(&poll_n(&c, 5, Duration::from_secs(5)).await), late);
    c.seek(&q, 2).unwrap();
    assert_eq!(ids(&poll_n(&c, 8, Duration::from_secs(5)).await), all[2..]);
    c.seek_queue_to_beginning(&q).await.unwrap();
    assert_eq!(c.position(&q), Some(0));
    c.seek_to_end("seek").await.unwrap();
    assert_eq!(c.position(&q), Some(10));
    assert!(c.poll(Duration::from_millis(500)).await.unwrap().is_empty());
    c.seek(&q, 7).unwrap();
    c.seek_queue_to_end(&q).await.unwrap();
    assert_eq!(c.position(&q), Some(10));
    // Past the end: the next poll moves to the end rather than failing.
    c.seek(&q, 1000).unwrap();
    assert!(c.poll(Duration::from_millis(500)).await.unwrap().is_empty());
    assert_eq!(c.position(&q), Some(10));
    let other = MessageQueue { queue_id: 3, ..q.clone() };
    assert_eq!(c.seek(&other, 0).unwrap_err().kind(), ErrorKind::BadRequest, "not read");
    let e = c.assign(vec![other]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    c.shutdown().await;
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tag_filter_passes_only_its_tags() {
    let tb = TestBroker::start().await;
    let p = producer(&tb, &["tags"]).await;
    let mut want = HashSet::new();
    for i in 0..30 {
        let tag = if i % 3 == 0 { "skip" } else { "take" };
        let r = p.send(Message::builder("tags").body(format!("{i}")).tag(tag).build()).await;
        if tag == "take" {
            want.insert(r.unwrap().message_id);
        }
    }
    p.shutdown().await;
    tb.wait_dispatched().await;
    let c = PullConsumer::builder(config(&tb), "tags-g")
        .subscribe("tags", FilterExpression::tags(["take"]))
        .build()
        .unwrap();
    let got = poll_n(&c, want.len(), Duration::from_secs(10)).await;
    assert!(c.poll(Duration::from_millis(500)).await.unwrap().is_empty(), "nothing else");
    assert!(got.iter().all(|m| m.tag.as_deref() == Some("take")));
    assert_eq!(got.len(), want.len());
    assert_eq!(ids(&got).into_iter().collect::<HashSet<_>>(), want);
    c.shutdown().await;
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_arguments_fail_before_any_call() {
    // Nothing listens there: any call would fail as UNAVAILABLE, not BAD_REQUEST.
    let nowhere = ClientConfig::new("127.0.0.1:1");
    let builder = || PullConsumer::builder(nowhere.clone(), "g");
    let kind = |r: Result<PullConsumer, orbitmq_core::client::Error>| r.unwrap_err().kind();
    assert_eq!(kind(builder().max_batch(0).build()), ErrorKind::BadRequest);
    assert_eq!(kind(builder().max_batch(33).build()), ErrorKind::BadRequest);
    assert_eq!(
        kind(PullConsumer::builder(nowhere.clone(), "bad group!").build()),
        ErrorKind::BadRequest
    );
    assert_eq!(
        kind(builder().subscribe("bad topic!", FilterExpression::all()).build()),
        ErrorKind::BadRequest
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    let e = builder().offset_store(OffsetStore::Local(file.path().into())).build().unwrap_err();
    assert!(e.message().contains("not a directory"), "{e}");

    let c = builder().subscribe("t", FilterExpression::all()).build().unwrap();
    let q = MessageQueue { topic: "t".into(), broker: "broker-a".into(), queue_id: 0 };
    let bad = |e: orbitmq_core::client::Error| {
        assert_eq!(e.kind(), ErrorKind::BadRequest, "{e}");
        e
    };
    let e = bad(c.poll(Duration::ZERO).await.unwrap_err());
    assert_eq!(e.operation(), Some("poll"));
    bad(c.seek(&q, -1).unwrap_err());
    bad(c.seek_to_timestamp("t", -5).await.unwrap_err());
    bad(c.seek_to_beginning("bad topic!").await.unwrap_err());
    bad(c.queues("bad topic!").await.unwrap_err());
    bad(c.subscribe("bad topic!", FilterExpression::all()).await.unwrap_err());
    bad(c.assign(vec![MessageQueue { queue_id: -1, ..q.clone() }]).await.unwrap_err());
    let e = bad(c.assign(vec![q.clone()]).await.unwrap_err());
    assert!(e.message().contains("subscribes"), "{e}");
    c.shutdown().await;
    assert_eq!(c.poll(Duration::from_secs(1)).await.unwrap_err().kind(), ErrorKind::Closed);
}
