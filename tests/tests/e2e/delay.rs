//! Delay messages: not delivered before their time, delivered within 1 s after it, across a
//! restart too; a recall handle cancels one that has not fired.

use std::time::{Duration, Instant};

use orbitmq_core::broker::BrokerConfig;
use orbitmq_core::protocol::v2::{self, Code};
use orbitmq_tests::{TestBroker, code, delay_message, now_ms, resource, sys};

const INVISIBLE: Option<Duration> = Some(Duration::from_secs(30));
const POLL: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_delay_message_arrives_at_its_time_not_before() {
    let b = TestBroker::start().await;
    let mut c = b.client("c").await;
    let at = now_ms() + 2_000;
    let r = c.send(delay_message("dt", "01D1", at)).await;
    assert_eq!(code(r.status.as_ref()), Code::Ok);
    assert!(!r.entries[0].recall_handle.is_empty(), "a delay message gets a recall handle");
    let started = Instant::now();
    let (st, got) = c.receive("g", "dt", "*", 32, INVISIBLE, POLL).await;
    let arrived = now_ms();
    assert_eq!((st, got.len()), (Code::Ok, 1), "received {got:?}");
    assert!(arrived >= at, "delivered {} ms early", at - arrived);
    assert!(arrived - at < 1_000, "delivered {} ms late", arrived - at);
    assert!(started.elapsed() >= Duration::from_millis(1_500));
    let s = sys(&got[0]);
    assert_eq!(s.message_type, v2::MessageType::Delay as i32);
    assert_eq!(
        s.delivery_timestamp.as_ref().map(orbitmq_core::protocol::time::timestamp_ms),
        Some(at)
    );
    assert_eq!(s.message_id, "01D1");
    // A delivery time already passed is delivered at once, without a recall handle.
    let r = c.send(delay_message("dt", "01D2", now_ms() - 1_000)).await;
    assert!(r.entries[0].recall_handle.is_empty());
    let (st, got) = c.receive("g", "dt", "*", 32, INVISIBLE, POLL).await;
    assert_eq!((st, got.len()), (Code::Ok, 1));
    b.stop().await;
}

#[tokio::test]
async fn recall_cancels_a_message_that_has_not_fired() {
    let b = TestBroker::start().await;
    let mut c = b.client("c").await;
    let recall = |handle: String| v2::RecallMessageRequest {
        topic: Some(resource("rt")),
        recall_handle: handle,
    };
    let r = c.send(delay_message("rt", "01R1", now_ms() + 1_500)).await;
    let handle = r.entries[0].recall_handle.clone();
    let r = c.raw.recall_message(recall(handle.clone())).await.unwrap().into_inner();
    assert_eq!((code(r.status.as_ref()), r.message_id.as_str()), (Code::Ok, "01R1"));
    // Recalling again is fine.
    let r = c.raw.recall_message(recall(handle)).await.unwrap().into_inner();
    assert_eq!(code(r.status.as_ref()), Code::Ok);
    // Another one fires; the recalled one never comes.
    let r = c.send(delay_message("rt", "01R2", now_ms() + 1_000)).await;
    let fired = r.entries[0].recall_handle.clone();
    let (st, got) = c.receive("g", "rt", "*", 32, INVISIBLE, POLL).await;
    assert_eq!(st, Code::Ok);
    assert_eq!(got.iter().map(|m| sys(m).message_id.as_str()).collect::<Vec<_>>(), ["01R2"]);
    let (st, got) = c.receive("g", "rt", "*", 32, INVISIBLE, POLL).await;
    assert_eq!((st, got.len()), (Code::MessageNotFound, 0), "{got:?}");
    // Too late to recall a delivered one.
    let r = c.raw.recall_message(recall(fired)).await.unwrap().into_inner();
    assert_eq!(code(r.status.as_ref()), Code::NotFound);
    b.stop().await;
}

#[tokio::test]
async fn pending_delay_messages_survive_a_restart() {
    let b = TestBroker::start().await;
    let mut c = b.client("c").await;
    let at = now_ms() + 2_500;
    c.send(delay_message("rdt", "01P1", at)).await;
    let r = c.send(delay_message("rdt", "01P2", now_ms() + 2_000)).await;
    let recalled = r.entries[0].recall_handle.clone();
    let r = c
        .raw
        .recall_message(v2::RecallMessageRequest {
            topic: Some(resource("rdt")),
            recall_handle: recalled,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(r.status.as_ref()), Code::Ok);
    let dir = b.stop_keeping_data().await;
    let b = TestBroker::start_in(dir, BrokerConfig::default()).await;
    assert_eq!(b.broker.timer().pending(), 1);
    let mut c = b.client("c").await;
    let (st, got) = c.receive("g", "rdt", "*", 32, INVISIBLE, POLL).await;
    assert_eq!(st, Code::Ok);
    assert_eq!(got.iter().map(|m| sys(m).message_id.as_str()).collect::<Vec<_>>(), ["01P1"]);
    let late = now_ms() - at;
    assert!((0..1_000).contains(&late), "delivered {late} ms after its time");
    let (st, got) = c.receive("g", "rdt", "*", 32, INVISIBLE, POLL).await;
    assert_eq!((st, got.len()), (Code::MessageNotFound, 0), "the recalled one stays recalled");
    b.stop().await;
}
