//! Retry and dead letters: after the group's max attempts a message moves to `%DLQ%<group>`,
//! keeping its message id and properties, whether a consumer asks again or not; consumers can
//! read it there; `ForwardMessageToDeadLetterQueue` does the same on request.

use std::time::Duration;

use orbitmq_core::protocol::v2::{self, Code};
use orbitmq_tests::{TestBroker, code, message, resource, sys};

const INVISIBLE: Option<Duration> = Some(Duration::from_secs(30));
const POLL: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_message_that_fails_max_attempts_times_goes_to_the_dead_letter_topic() {
    let b = TestBroker::start().await;
    b.group("dg", false, 2);
    let mut c = b.client("c").await;
    let mut m = message("dt", "01DL", "poison");
    m.system_properties.as_mut().unwrap().tag = Some("TagP".into());
    m.user_properties.insert("k".into(), "v".into());
    c.send(m).await;
    c.send(message("dt", "01OK", "fine")).await;
    let mut got = Vec::new();
    for _ in 0..5 {
        if got.len() < 2 {
            got.extend(c.receive("dg", "dt", "*", 32, INVISIBLE, POLL).await.1);
        }
    }
    assert_eq!(got.len(), 2);
    let poison = got.iter().find(|m| sys(m).message_id == "01DL").unwrap();
    let fine = got.iter().find(|m| sys(m).message_id == "01OK").unwrap();
    assert_eq!(c.ack("dg", "dt", fine).await, Code::Ok);
    // Attempt 1 fails; attempt 2 comes, fails too.
    assert_eq!(c.change_invisible("dg", "dt", poison, Duration::ZERO).await.0, Code::Ok);
    let (_, again) = c.receive("dg", "dt", "*", 32, INVISIBLE, POLL).await;
    assert_eq!(again.len(), 1);
    assert_eq!(sys(&again[0]).delivery_attempt, Some(2));
    assert_eq!(c.change_invisible("dg", "dt", &again[0], Duration::ZERO).await.0, Code::Ok);
    // No third delivery: nobody receives, and the background sweep moves it anyway.
    let mut moved = false;
    for _ in 0..50 {
        if b.broker.store().max_offset("%DLQ%dg", 0) == 1 {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(moved, "not moved to %DLQ%dg within 5 s");
    let (st, none) = c.receive("dg", "dt", "*", 32, INVISIBLE, POLL).await;
    assert_eq!((st, none.len()), (Code::MessageNotFound, 0), "{none:?}");
    // The group's offsets are past it: nothing holds them back.
    let committed: u64 =
        (0..8).map(|q| b.broker.store().consumer_offsets().get("dg", "dt", q).unwrap_or(0)).sum();
    assert_eq!(committed, 2);
    // Consumers read the dead letter like any message, with its id, tag and properties.
    let (st, dead) = c.receive("dlq-reader", "%DLQ%dg", "*", 32, INVISIBLE, POLL).await;
    assert_eq!((st, dead.len()), (Code::Ok, 1));
    let d = sys(&dead[0]);
    assert_eq!(d.message_id, "01DL");
    assert_eq!(d.tag.as_deref(), Some("TagP"));
    assert_eq!(dead[0].user_properties.get("k").map(String::as_str), Some("v"));
    assert_eq!(dead[0].body.as_ref(), b"poison");
    let origin = d.dead_letter_queue.as_ref().expect("dead_letter_queue is filled");
    assert_eq!((origin.topic.as_str(), origin.message_id.as_str()), ("dt", "01DL"));
    // `admin consumer progress` counts it.
    let mut admin = orbitmq_core::protocol::admin::admin_client::AdminClient::connect(format!(
        "http://{}",
        b.addr
    ))
    .await
    .unwrap();
    let progress = admin
        .consumer_progress(orbitmq_core::protocol::admin::ConsumerProgressRequest {
            group: "dg".into(),
            topic: "dt".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((progress.dead_letters, progress.total_lag, progress.inflight), (1, 0, 0));
    // Admin queries find it there by message id.
    let found = b.broker.store().query_by_message_id("01DL", 0, i64::MAX, 8);
    assert!(found.iter().any(|m| m.topic == "%DLQ%dg"), "{found:?}");
    b.stop().await;
}

#[tokio::test]
async fn forward_to_dead_letter_queue_moves_the_message_and_acks_it() {
    let b = TestBroker::start().await;
    let mut c = b.client("c").await;
    c.send(message("ft", "01FW", "give up")).await;
    let (_, got) = c.receive("fg", "ft", "*", 32, INVISIBLE, POLL).await;
    assert_eq!(got.len(), 1);
    let s = sys(&got[0]);
    let forward = v2::ForwardMessageToDeadLetterQueueRequest {
        group: Some(resource("fg")),
        topic: Some(resource("ft")),
        receipt_handle: s.receipt_handle.clone().unwrap(),
        message_id: s.message_id.clone(),
        delivery_attempt: 1,
        max_delivery_attempts: 16,
        lite_topic: None,
    };
    let r = c.raw.forward_message_to_dead_letter_queue(forward).await.unwrap().into_inner();
    assert_eq!(code(r.status.as_ref()), Code::Ok);
    // Stored; readable once dispatched into the topic's queue.
    let (st, dead) = c.receive("dlq-reader", "%DLQ%fg", "*", 32, INVISIBLE, POLL).await;
    assert_eq!((st, dead.len()), (Code::Ok, 1));
    assert_eq!(sys(&dead[0]).message_id, "01FW");
    // It is done with in its topic: an ack of the old handle is harmless, nothing comes back.
    assert_eq!(c.ack("fg", "ft", &got[0]).await, Code::Ok);
    assert_eq!(
        c.change_invisible("fg", "ft", &got[0], Duration::ZERO).await.0,
        Code::InvalidReceiptHandle
    );
    let (st, none) = c.receive("fg", "ft", "*", 32, INVISIBLE, POLL).await;
    assert_eq!((st, none.len()), (Code::MessageNotFound, 0));
    b.stop().await;
}
