//! FIFO groups: a message group's next message reaches nobody while the previous one is in
//! flight; it comes after the ack or after the previous one dead-letters; order holds across
//! redeliveries; a retried receive (same `attempt_id`) gets the same messages; QueryAssignment
//! lists every readable queue; a receive waiting behind a full read-ahead lets acks through.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use orbitmq_core::broker::pop::MAX_HELD_PER_QUEUE;
use orbitmq_core::protocol::v2::{self, Code};
use orbitmq_tests::{Client, TestBroker, code, duration, fifo_message, resource, sys};

const INVISIBLE: Option<Duration> = Some(Duration::from_secs(30));
const POLL: Duration = Duration::from_secs(5);

fn body(m: &v2::Message) -> String {
    String::from_utf8(m.body.to_vec()).unwrap()
}

async fn send_groups(c: &mut Client, topic: &str, groups: &[&str], per_group: usize) {
    for i in 0..per_group {
        for g in groups {
            let r = c.send(fifo_message(topic, &format!("01{g}{i}"), g, &format!("{g}-{i}"))).await;
            assert_eq!(code(r.status.as_ref()), Code::Ok);
        }
    }
}

fn receive_req(group: &str, topic: &str, attempt_id: Option<&str>) -> v2::ReceiveMessageRequest {
    v2::ReceiveMessageRequest {
        group: Some(resource(group)),
        message_queue: Some(v2::MessageQueue {
            topic: Some(resource(topic)),
            ..Default::default()
        }),
        filter_expression: None,
        batch_size: 32,
        invisible_duration: INVISIBLE.map(duration),
        auto_renew: false,
        long_polling_timeout: Some(duration(POLL)),
        attempt_id: attempt_id.map(str::to_owned),
    }
}

#[tokio::test]
async fn one_message_per_group_in_flight_and_groups_consumed_in_order() {
    let b = TestBroker::start().await;
    b.group("fg", true, 16);
    let mut a = b.client("consumer-a").await;
    let mut other = b.client("consumer-b").await;
    send_groups(&mut a, "ft", &["ga", "gb", "gc"], 5).await;
    b.wait_dispatched().await;

    let mut order: HashMap<String, Vec<String>> = HashMap::new();
    let mut delivered = 0;
    while delivered < 15 {
        let (st, got) = a.receive("fg", "ft", "*", 32, INVISIBLE, POLL).await;
        assert_eq!(st, Code::Ok);
        // At most one message of each group at a time.
        let mut groups: Vec<&str> =
            got.iter().map(|m| sys(m).message_group.as_deref().unwrap()).collect();
        groups.sort_unstable();
        let before = groups.len();
        groups.dedup();
        assert_eq!(groups.len(), before, "two messages of one group handed out together");
        // While they are in flight, another consumer of the group gets none of their groups.
        let (st, more) = other.receive("fg", "ft", "*", 32, INVISIBLE, POLL).await;
        assert_eq!((st, more.len()), (Code::MessageNotFound, 0), "{more:?}");
        for m in &got {
            order.entry(sys(m).message_group.clone().unwrap()).or_default().push(body(m));
            assert_eq!(a.ack("fg", "ft", m).await, Code::Ok);
        }
        delivered += got.len();
    }
    for g in ["ga", "gb", "gc"] {
        let want: Vec<String> = (0..5).map(|i| format!("{g}-{i}")).collect();
        assert_eq!(order[g], want, "group {g} out of order");
    }
    b.stop().await;
}

#[tokio::test]
async fn order_holds_across_redeliveries_and_dead_letters() {
    let b = TestBroker::start().await;
    b.group("fg2", true, 2);
    let mut c = b.client("c").await;
    send_groups(&mut c, "ft2", &["g1"], 3).await;

    // First delivery, then a nack: the same message comes back, not the next one.
    let (_, got) = c.receive("fg2", "ft2", "*", 32, INVISIBLE, POLL).await;
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), ["g1-0"]);
    assert_eq!(c.change_invisible("fg2", "ft2", &got[0], Duration::ZERO).await.0, Code::Ok);
    let (_, again) = c.receive("fg2", "ft2", "*", 32, INVISIBLE, POLL).await;
    assert_eq!(again.iter().map(body).collect::<Vec<_>>(), ["g1-0"]);
    assert_eq!(sys(&again[0]).delivery_attempt, Some(2));
    // Its second (last) attempt fails too: it goes to the dead-letter queue, and only then does
    // the group's next message come.
    assert_eq!(c.change_invisible("fg2", "ft2", &again[0], Duration::ZERO).await.0, Code::Ok);
    let (_, next) = c.receive("fg2", "ft2", "*", 32, INVISIBLE, POLL).await;
    assert_eq!(next.iter().map(body).collect::<Vec<_>>(), ["g1-1"]);
    let (st, dlq) = c.receive("dlq-reader", "%DLQ%fg2", "*", 32, INVISIBLE, POLL).await;
    assert_eq!(st, Code::Ok);
    assert_eq!(dlq.iter().map(body).collect::<Vec<_>>(), ["g1-0"]);
    b.stop().await;
}

#[tokio::test]
async fn a_retried_receive_with_the_same_attempt_id_gets_the_same_messages() {
    let b = TestBroker::start().await;
    b.group("fg3", true, 16);
    let mut c = b.client("c").await;
    send_groups(&mut c, "ft3", &["x", "y"], 2).await;
    b.wait_dispatched().await;
    let (st, first) = c.receive_with(receive_req("fg3", "ft3", Some("attempt-1"))).await;
    assert_eq!((st, first.len()), (Code::Ok, 2));
    // The answer was "lost": the client retries with the same attempt id.
    let (st, retry) = c.receive_with(receive_req("fg3", "ft3", Some("attempt-1"))).await;
    assert_eq!(st, Code::Ok);
    let ids = |v: &[v2::Message]| {
        let mut ids: Vec<(String, String)> = v
            .iter()
            .map(|m| (sys(m).message_id.clone(), sys(m).receipt_handle.clone().unwrap()))
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&retry), ids(&first), "same messages, same handles");
    for m in &retry {
        assert_eq!(sys(m).delivery_attempt, Some(1), "a replay is not a new attempt");
        assert_eq!(c.ack("fg3", "ft3", m).await, Code::Ok);
    }
    // A new attempt id moves on.
    let (_, next) = c.receive_with(receive_req("fg3", "ft3", Some("attempt-2"))).await;
    let mut bodies: Vec<String> = next.iter().map(body).collect();
    bodies.sort();
    assert_eq!(bodies, ["x-1", "y-1"]);
    b.stop().await;
}

#[tokio::test]
async fn fifo_groups_are_assigned_every_readable_queue() {
    let b = TestBroker::start().await;
    b.group("fg4", true, 16);
    b.group("plain", false, 16);
    let mut c = b.client("c").await;
    let ask = |group: &str| v2::QueryAssignmentRequest {
        topic: Some(resource("ft4")),
        group: Some(resource(group)),
        endpoints: Some(v2::Endpoints {
            scheme: v2::AddressScheme::IPv4 as i32,
            addresses: vec![v2::Address { host: "127.0.0.1".into(), port: 8081 }],
        }),
    };
    let r = c.raw.query_assignment(ask("fg4")).await.unwrap().into_inner();
    assert_eq!(code(r.status.as_ref()), Code::Ok);
    let ids: Vec<i32> =
        r.assignments.iter().map(|a| a.message_queue.as_ref().unwrap().id).collect();
    assert_eq!(ids, (0..8).collect::<Vec<_>>());
    let r = c.raw.query_assignment(ask("plain")).await.unwrap().into_inner();
    let ids: Vec<i32> =
        r.assignments.iter().map(|a| a.message_queue.as_ref().unwrap().id).collect();
    assert_eq!(ids, [-1]);
    b.stop().await;
}

#[tokio::test]
async fn a_receive_waiting_behind_a_full_read_ahead_lets_the_ack_through() {
    let b = TestBroker::start().await;
    b.group("fg5", true, 16);
    let mut c = b.client("c").await;
    // One message group, more messages than its queue reads ahead.
    let n = MAX_HELD_PER_QUEUE + 300;
    for first in (0..n).step_by(256) {
        let messages = (first..(first + 256).min(n))
            .map(|i| fifo_message("ft5", &format!("01F{i:06}"), "one", &format!("m{i}")))
            .collect();
        let r = c.raw.send_message(v2::SendMessageRequest { messages }).await.unwrap();
        assert_eq!(code(r.into_inner().status.as_ref()), Code::Ok);
    }
    let (_, first) = c.receive("fg5", "ft5", "*", 32, INVISIBLE, POLL).await;
    assert_eq!(first.iter().map(body).collect::<Vec<_>>(), ["m0"]);
    // Another consumer waits: the group is busy, and the read-ahead fills up behind it. Its long
    // poll used to spin (the queue still held unread messages, so waiting on its growth
    // returned at once), keeping the runtime from serving the ack that would free the group.
    let mut other = b.client("other").await;
    let waiting = tokio::spawn(async move {
        let t = Instant::now();
        let (st, got) = other.receive("fg5", "ft5", "*", 32, INVISIBLE, POLL).await;
        (st, got.iter().map(body).collect::<Vec<_>>(), t.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    assert_eq!(c.ack("fg5", "ft5", &first[0]).await, Code::Ok);
    assert!(t.elapsed() < Duration::from_secs(2), "the ack took {:?}", t.elapsed());
    let (st, got, waited) = waiting.await.unwrap();
    assert_eq!((st, got), (Code::Ok, vec!["m1".to_owned()]));
    assert!(waited < POLL, "the waiting receive answered after {waited:?}");
    b.stop().await;
}
