//! Pull-style consumption: PullMessage from an offset (filters, long polling, illegal
//! offsets), UpdateOffset / GetOffset / QueryOffset, and how pull consumers share a topic's
//! queues through QueryAssignment.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use orbitmq_core::broker::BrokerConfig;
use orbitmq_core::protocol::v2::{self, Code, pull_message_response::Content, settings::PubSub};
use orbitmq_tests::{Client, TestBroker, code, duration, message, resource};

use crate::route::{endpoints, settings_reply};

const POLL: Duration = Duration::from_secs(5);

/// A broker whose auto-created topics have one queue, so every send lands in queue 0.
async fn one_queue_broker() -> TestBroker {
    TestBroker::start_with(BrokerConfig { default_queues: 1, ..BrokerConfig::default() }).await
}

fn tagged(topic: &str, id: &str, tag: &str) -> v2::Message {
    let mut m = message(topic, id, &format!("body of {id}"));
    m.system_properties.as_mut().unwrap().tag = Some(tag.to_owned());
    m
}

fn sys(m: &v2::Message) -> &v2::SystemProperties {
    m.system_properties.as_ref().unwrap()
}

fn ids(messages: &[v2::Message]) -> Vec<String> {
    messages.iter().map(|m| sys(m).message_id.clone()).collect()
}

/// Sends `ids` to queue 0 of `topic` (tag `A`) and waits until they are in the queue
/// (dispatch is asynchronous).
async fn send_all(b: &TestBroker, c: &mut Client, topic: &str, ids: &[&str]) {
    let before = b.broker.store().max_offset(topic, 0);
    for id in ids {
        let r = c.send(tagged(topic, id, "A")).await;
        assert_eq!(code(r.status.as_ref()), Code::Ok);
    }
    wait_dispatched(b, topic, before + ids.len() as u64).await;
}

async fn wait_dispatched(b: &TestBroker, topic: &str, n: u64) {
    let t = Instant::now();
    while b.broker.store().max_offset(topic, 0) < n {
        assert!(t.elapsed() < Duration::from_secs(5), "messages were not dispatched");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn queue(topic: &str, id: i32) -> v2::MessageQueue {
    v2::MessageQueue { topic: Some(resource(topic)), id, ..Default::default() }
}

/// What one PullMessage stream carried.
struct Pulled {
    code: Code,
    message: String,
    messages: Vec<v2::Message>,
    next_offset: Option<i64>,
}

#[allow(clippy::too_many_arguments)]
async fn pull(
    c: &mut Client,
    group: &str,
    topic: &str,
    queue_id: i32,
    offset: i64,
    batch: i32,
    filter: &str,
    polling: Duration,
) -> Pulled {
    let req = v2::PullMessageRequest {
        group: Some(resource(group)),
        message_queue: Some(queue(topic, queue_id)),
        offset,
        batch_size: batch,
        filter_expression: Some(v2::FilterExpression {
            r#type: v2::FilterType::Tag as i32,
            expression: filter.to_owned(),
        }),
        long_polling_timeout: Some(duration(polling)),
    };
    let mut stream = c.raw.pull_message(req).await.unwrap().into_inner();
    let mut items = Vec::new();
    while let Some(item) = stream.message().await.unwrap() {
        items.push(item.content.unwrap());
    }
    // The stream is: one status, then the messages, then (unless refused) the next offset.
    let mut items = items.into_iter();
    let Some(Content::Status(st)) = items.next() else {
        panic!("a pull stream starts with a status")
    };
    let mut out = Pulled {
        code: Code::try_from(st.code).unwrap(),
        message: st.message,
        messages: Vec::new(),
        next_offset: None,
    };
    for item in items {
        assert!(out.next_offset.is_none(), "next_offset must come last");
        match item {
            Content::Message(m) => out.messages.push(m),
            Content::NextOffset(n) => out.next_offset = Some(n),
            Content::Status(_) => panic!("a second status"),
        }
    }
    out
}

async fn get_offset(c: &mut Client, group: &str, topic: &str, queue_id: i32) -> (Code, i64) {
    let r = c
        .raw
        .get_offset(v2::GetOffsetRequest {
            group: Some(resource(group)),
            message_queue: Some(queue(topic, queue_id)),
        })
        .await
        .unwrap()
        .into_inner();
    (code(r.status.as_ref()), r.offset)
}

async fn update_offset(c: &mut Client, group: &str, topic: &str, offset: i64) -> Code {
    let r = c
        .raw
        .update_offset(v2::UpdateOffsetRequest {
            group: Some(resource(group)),
            message_queue: Some(queue(topic, 0)),
            offset,
        })
        .await
        .unwrap()
        .into_inner();
    code(r.status.as_ref())
}

async fn query_offset(
    c: &mut Client,
    topic: &str,
    policy: v2::QueryOffsetPolicy,
    timestamp_ms: Option<i64>,
) -> (Code, i64) {
    let r = c
        .raw
        .query_offset(v2::QueryOffsetRequest {
            message_queue: Some(queue(topic, 0)),
            query_offset_policy: policy as i32,
            timestamp: timestamp_ms.map(|ms| prost_types::Timestamp {
                seconds: ms / 1000,
                nanos: (ms % 1000) as i32 * 1_000_000,
            }),
        })
        .await
        .unwrap()
        .into_inner();
    (code(r.status.as_ref()), r.offset)
}

#[tokio::test]
async fn pull_reads_in_order_from_an_offset_and_says_where_to_go_next() {
    let b = one_queue_broker().await;
    let mut c = b.client("pull-1").await;
    let sent: Vec<String> = (0..40).map(|i| format!("01P{i:02}")).collect();
    send_all(&b, &mut c, "pt", &sent.iter().map(String::as_str).collect::<Vec<_>>()).await;

    let p = pull(&mut c, "g", "pt", 0, 3, 4, "*", POLL).await;
    assert_eq!(p.code, Code::Ok, "{}", p.message);
    assert_eq!(ids(&p.messages), sent[3..7]);
    assert_eq!(p.next_offset, Some(7));
    for (m, offset) in p.messages.iter().zip(3..) {
        let s = sys(m);
        assert_eq!(s.queue_id, 0);
        assert_eq!(s.queue_offset, Some(offset));
        assert_eq!(s.delivery_attempt, Some(1));
        assert_eq!(s.receipt_handle, None, "pulled messages are not held: nothing to ack");
        assert_eq!(s.tag.as_deref(), Some("A"));
        assert_eq!(m.topic.as_ref().unwrap().name, "pt");
    }
    // Batches are capped at 32.
    let p = pull(&mut c, "g", "pt", 0, 7, 100, "*", POLL).await;
    assert_eq!((p.code, p.messages.len(), p.next_offset), (Code::Ok, 32, Some(39)));
    assert_eq!(ids(&p.messages), sent[7..39]);
    // Pulls do not commit anything: the group still has no offset, and pulls again from 0.
    assert_eq!(get_offset(&mut c, "g", "pt", 0).await.0, Code::OffsetNotFound);
    let p = pull(&mut c, "g", "pt", 0, 0, 2, "*", POLL).await;
    assert_eq!(ids(&p.messages), sent[0..2]);

    // Argument rules.
    let p = pull(&mut c, "g", "pt", 0, 0, 0, "*", POLL).await;
    assert_eq!((p.code, p.next_offset), (Code::BadRequest, None), "batch_size 0");
    let p = pull(&mut c, "g", "pt", 1, 0, 1, "*", POLL).await;
    assert_eq!(p.code, Code::BadRequest, "the topic has one queue");
    assert!(p.message.contains("0..1"), "says the range: {}", p.message);
    let p = pull(&mut c, "g", "pt", -1, 0, 1, "*", POLL).await;
    assert_eq!(p.code, Code::BadRequest, "queue id -1 (any) means nothing to a pull");
    let p = pull(&mut c, "bad group!", "pt", 0, 0, 1, "*", POLL).await;
    assert_eq!(p.code, Code::IllegalConsumerGroup);
    let p = pull(&mut c, "g", "bad topic!", 0, 0, 1, "*", POLL).await;
    assert_eq!(p.code, Code::IllegalTopic);
    b.stop().await;
}

#[tokio::test]
async fn pull_filters_by_tag_and_keeps_scanning_past_what_does_not_match() {
    let b = one_queue_broker().await;
    let mut c = b.client("pull-1").await;
    for (i, tag) in ["A", "B", "C", "A", "B"].iter().enumerate() {
        c.send(tagged("pf", &format!("01F{i}"), tag)).await;
    }
    wait_dispatched(&b, "pf", 5).await;
    let p = pull(&mut c, "g", "pf", 0, 0, 32, "A", POLL).await;
    assert_eq!(p.code, Code::Ok);
    assert_eq!(ids(&p.messages), ["01F0", "01F3"]);
    assert_eq!(p.next_offset, Some(5));
    let p = pull(&mut c, "g", "pf", 0, 0, 32, "B || C", POLL).await;
    assert_eq!(ids(&p.messages), ["01F1", "01F2", "01F4"]);

    // Nothing tagged Z yet: the pull skips the five entries and waits for one that matches.
    let mut sender = b.client("sender").await;
    let send = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        sender.send(tagged("pf", "01F5", "B")).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        sender.send(tagged("pf", "01F6", "Z")).await
    });
    let t = Instant::now();
    let p = pull(&mut c, "g", "pf", 0, 0, 32, "Z", Duration::from_secs(20)).await;
    assert_eq!(p.code, Code::Ok, "{}", p.message);
    assert_eq!(ids(&p.messages), ["01F6"]);
    assert_eq!(p.next_offset, Some(7));
    assert!(t.elapsed() < Duration::from_secs(10), "woke after {:?}", t.elapsed());
    send.await.unwrap();
    b.stop().await;
}

#[tokio::test]
async fn pull_long_polls_until_a_message_arrives_or_polling_ends() {
    let b = one_queue_broker().await;
    let mut c = b.client("pull-1").await;
    // An empty queue: MESSAGE_NOT_FOUND after the polling time, to pull again from 0.
    let t = Instant::now();
    let p = pull(&mut c, "g", "lp", 0, 0, 32, "*", POLL).await;
    assert_eq!((p.code, p.next_offset), (Code::MessageNotFound, Some(0)));
    assert!(t.elapsed() >= Duration::from_millis(4500), "polled only {:?}", t.elapsed());
    // Only non-matching messages: MESSAGE_NOT_FOUND too, but past what was skipped.
    send_all(&b, &mut c, "lp", &["01L0", "01L1"]).await;
    let t = Instant::now();
    let p = pull(&mut c, "g", "lp", 0, 0, 32, "Z", POLL).await;
    assert_eq!((p.code, p.next_offset), (Code::MessageNotFound, Some(2)));
    assert!(t.elapsed() >= Duration::from_millis(4500), "polled only {:?}", t.elapsed());
    // At the end: returns as soon as a message arrives.
    let mut sender = b.client("sender").await;
    let send = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        sender.send(message("lp", "01L2", "late")).await
    });
    let t = Instant::now();
    let p = pull(&mut c, "g", "lp", 0, 2, 32, "*", Duration::from_secs(20)).await;
    assert_eq!(p.code, Code::Ok, "{}", p.message);
    assert_eq!((ids(&p.messages), p.next_offset), (vec!["01L2".to_owned()], Some(3)));
    assert!(t.elapsed() < Duration::from_secs(10), "woke after {:?}", t.elapsed());
    send.await.unwrap();
    b.stop().await;
}

#[tokio::test]
async fn offsets_outside_the_queue_are_illegal_and_name_the_nearest_valid_one() {
    let b = one_queue_broker().await;
    let mut c = b.client("pull-1").await;
    // Three 3 MiB messages: the first two fill the first 8 MiB segment, the third starts the
    // next, so retention can delete the first two.
    let big = "x".repeat(3 << 20);
    for i in 0..3 {
        let r = c.send(message("io", &format!("01I{i}"), &big)).await;
        assert_eq!(code(r.status.as_ref()), Code::Ok);
    }
    wait_dispatched(&b, "io", 3).await;
    let p = pull(&mut c, "g", "io", 0, 4, 1, "*", POLL).await;
    assert_eq!((p.code, p.next_offset), (Code::IllegalOffset, Some(3)), "{}", p.message);
    assert!(p.message.contains("past the end"), "{}", p.message);
    assert!(p.messages.is_empty());
    let p = pull(&mut c, "g", "io", 0, -1, 1, "*", POLL).await;
    assert_eq!((p.code, p.next_offset), (Code::IllegalOffset, Some(0)), "{}", p.message);

    let later = SystemTime::now() + Duration::from_secs(1000 * 24 * 3600);
    let r = b.broker.store().run_retention(later, true).unwrap();
    assert_eq!(r.deleted_segments, 1);
    assert_eq!(b.broker.store().min_offset("io", 0), 2);
    for offset in [0, 1] {
        let p = pull(&mut c, "g", "io", 0, offset, 1, "*", POLL).await;
        assert_eq!((p.code, p.next_offset), (Code::IllegalOffset, Some(2)), "{}", p.message);
        assert!(p.message.contains("below the first offset 2"), "{}", p.message);
    }
    assert_eq!(update_offset(&mut c, "g", "io", 1).await, Code::IllegalOffset);
    assert_eq!(update_offset(&mut c, "g", "io", 2).await, Code::Ok);
    let (st, offset) = query_offset(&mut c, "io", v2::QueryOffsetPolicy::Beginning, None).await;
    assert_eq!((st, offset), (Code::Ok, 2));
    b.stop().await;
}

#[tokio::test]
async fn update_offset_commits_and_get_offset_reads_it_back() {
    let b = one_queue_broker().await;
    let mut c = b.client("pull-1").await;
    send_all(&b, &mut c, "uo", &["01U0", "01U1", "01U2", "01U3", "01U4"]).await;
    assert_eq!(get_offset(&mut c, "fresh", "uo", 0).await.0, Code::OffsetNotFound);
    assert_eq!(update_offset(&mut c, "g", "uo", 3).await, Code::Ok);
    assert_eq!(get_offset(&mut c, "g", "uo", 0).await, (Code::Ok, 3));
    // The end is a valid offset (nothing left to consume); past it and below 0 are not.
    assert_eq!(update_offset(&mut c, "g", "uo", 5).await, Code::Ok);
    assert_eq!(get_offset(&mut c, "g", "uo", 0).await, (Code::Ok, 5));
    assert_eq!(update_offset(&mut c, "g", "uo", 6).await, Code::IllegalOffset);
    assert_eq!(update_offset(&mut c, "g", "uo", -1).await, Code::IllegalOffset);
    assert_eq!(get_offset(&mut c, "g", "uo", 0).await, (Code::Ok, 5), "refused: unchanged");
    assert_eq!(get_offset(&mut c, "fresh", "uo", 0).await.0, Code::OffsetNotFound);
    assert_eq!(get_offset(&mut c, "g", "uo", 1).await.0, Code::BadRequest, "one queue");
    b.stop().await;
}

#[tokio::test]
async fn update_offset_moves_where_receive_starts() {
    let b = one_queue_broker().await;
    let mut c = b.client("pull-1").await;
    send_all(&b, &mut c, "ur", &["01R0", "01R1", "01R2", "01R3", "01R4"]).await;
    let invisible = Some(Duration::from_secs(30));
    // A fresh group starts where UpdateOffset put it.
    assert_eq!(update_offset(&mut c, "g", "ur", 3).await, Code::Ok);
    let (st, got) = c.receive("g", "ur", "*", 32, invisible, POLL).await;
    assert_eq!(st, Code::Ok);
    assert_eq!(ids(&got), ["01R3", "01R4"]);
    for m in &got {
        assert_eq!(c.ack("g", "ur", m).await, Code::Ok);
    }
    // A group that already consumed goes back.
    assert_eq!(update_offset(&mut c, "g", "ur", 1).await, Code::Ok);
    let (st, got) = c.receive("g", "ur", "*", 32, invisible, POLL).await;
    assert_eq!(st, Code::Ok);
    assert_eq!(ids(&got), ["01R1", "01R2", "01R3", "01R4"]);
    b.stop().await;
}

#[tokio::test]
async fn query_offset_finds_the_beginning_the_end_and_a_time() {
    use v2::QueryOffsetPolicy::{Beginning, End, Timestamp};
    let b = one_queue_broker().await;
    let mut c = b.client("pull-1").await;
    assert_eq!(query_offset(&mut c, "qo", End, None).await, (Code::Ok, 0), "an empty queue");
    send_all(&b, &mut c, "qo", &["01Q0", "01Q1", "01Q2"]).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let between = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    tokio::time::sleep(Duration::from_millis(20)).await;
    send_all(&b, &mut c, "qo", &["01Q3", "01Q4"]).await;
    assert_eq!(query_offset(&mut c, "qo", Beginning, None).await, (Code::Ok, 0));
    assert_eq!(query_offset(&mut c, "qo", End, None).await, (Code::Ok, 5));
    assert_eq!(query_offset(&mut c, "qo", Timestamp, Some(between)).await, (Code::Ok, 3));
    assert_eq!(query_offset(&mut c, "qo", Timestamp, Some(0)).await, (Code::Ok, 0));
    let future = between + 3_600_000;
    assert_eq!(query_offset(&mut c, "qo", Timestamp, Some(future)).await, (Code::Ok, 5));
    assert_eq!(query_offset(&mut c, "qo", Timestamp, None).await.0, Code::BadRequest);
    b.stop().await;
}

/// Registers `client_id` through Telemetry as a client of `client_type` in `group`.
async fn join(b: &TestBroker, client_id: &str, group: &str, client_type: v2::ClientType) {
    let settings = v2::Settings {
        client_type: Some(client_type as i32),
        access_point: Some(endpoints(b.addr.port())),
        pub_sub: Some(PubSub::Subscription(v2::Subscription {
            group: Some(resource(group)),
            subscriptions: vec![v2::SubscriptionEntry {
                topic: Some(resource("pa")),
                expression: Some(v2::FilterExpression {
                    r#type: v2::FilterType::Tag as i32,
                    expression: "*".into(),
                }),
            }],
            ..Default::default()
        })),
        ..Default::default()
    };
    let reply = settings_reply(b, client_id, settings).await;
    assert_eq!(code(reply.status.as_ref()), Code::Ok);
}

/// The queue ids QueryAssignment gives `client_id` for topic `pa`, group `pg`.
async fn assigned(b: &TestBroker, client_id: &str) -> Vec<i32> {
    let mut c = b.client(client_id).await;
    let r = c
        .raw
        .query_assignment(v2::QueryAssignmentRequest {
            topic: Some(resource("pa")),
            group: Some(resource("pg")),
            endpoints: Some(endpoints(b.addr.port())),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(r.status.as_ref()), Code::Ok);
    r.assignments
        .iter()
        .map(|a| {
            let q = a.message_queue.as_ref().unwrap();
            assert_eq!(q.topic.as_ref().unwrap().name, "pa");
            assert_eq!(q.permission, v2::Permission::ReadWrite as i32);
            let broker = q.broker.as_ref().unwrap();
            assert_eq!((broker.name.as_str(), broker.id), ("broker-a", 0));
            assert_eq!(broker.endpoints.as_ref().unwrap(), &endpoints(b.addr.port()));
            q.id
        })
        .collect()
}

/// Checks that the members' shares have the sizes `sizes` and together cover queues 0..8
/// exactly once.
fn assert_split(shares: &[Vec<i32>], sizes: &[usize]) {
    assert_eq!(shares.iter().map(Vec::len).collect::<Vec<_>>(), sizes, "{shares:?}");
    let all: BTreeSet<i32> = shares.iter().flatten().copied().collect();
    assert_eq!(all.len(), 8, "overlap: {shares:?}");
    assert_eq!(all, (0..8).collect(), "{shares:?}");
}

#[tokio::test]
async fn pull_consumers_of_a_group_share_its_queues() {
    use v2::ClientType::{PullConsumer, PushConsumer};
    let b = TestBroker::start().await;
    join(&b, "pull-a", "pg", PullConsumer).await;
    join(&b, "pull-b", "pg", PullConsumer).await;
    // Neither a push consumer of the group nor a pull consumer of another group takes a share.
    join(&b, "push-x", "pg", PushConsumer).await;
    join(&b, "pull-other", "other", PullConsumer).await;
    let (a, bb) = (assigned(&b, "pull-a").await, assigned(&b, "pull-b").await);
    assert_split(&[a.clone(), bb.clone()], &[4, 4]);
    assert_eq!(a, [0, 1, 2, 3], "contiguous ranges in client id order");
    // The push consumer keeps the pop answer: any queue of the broker.
    assert_eq!(assigned(&b, "push-x").await, [-1]);
    // A pull consumer asking for a group it is not in gets nothing.
    assert_eq!(assigned(&b, "pull-other").await, Vec::<i32>::new());

    join(&b, "pull-c", "pg", PullConsumer).await;
    let shares =
        [assigned(&b, "pull-a").await, assigned(&b, "pull-b").await, assigned(&b, "pull-c").await];
    assert_split(&shares, &[3, 3, 2]);

    let mut leaving = b.client("pull-b").await;
    let r = leaving
        .raw
        .notify_client_termination(v2::NotifyClientTerminationRequest {
            group: Some(resource("pg")),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(r.status.as_ref()), Code::Ok);
    let shares = [assigned(&b, "pull-a").await, assigned(&b, "pull-c").await];
    assert_split(&shares, &[4, 4]);
    b.stop().await;
}
