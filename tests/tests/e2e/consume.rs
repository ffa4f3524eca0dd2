//! Receive, ack, change of invisible time, redelivery, long polling, tag filters, restarts.

use std::time::{Duration, Instant};

use orbitmq_core::protocol::v2::{self, Code};
use orbitmq_tests::{Client, TestBroker, code, duration, message, resource};

const INVISIBLE: Option<Duration> = Some(Duration::from_secs(30));
const POLL: Duration = Duration::from_secs(5);

fn tagged(topic: &str, id: &str, tag: &str) -> v2::Message {
    let mut m = message(topic, id, &format!("body of {id}"));
    m.system_properties.as_mut().unwrap().tag = Some(tag.to_owned());
    m
}

fn sys(m: &v2::Message) -> &v2::SystemProperties {
    m.system_properties.as_ref().unwrap()
}

/// Receives until `n` messages arrived (a receive returns as soon as any message is there, and
/// dispatch into queues is asynchronous, as in RocketMQ), failing if they do not within 5 tries.
async fn receive_n(
    c: &mut Client,
    group: &str,
    topic: &str,
    filter: &str,
    n: usize,
) -> Vec<v2::Message> {
    let mut got = Vec::new();
    for _ in 0..5 {
        let (st, mut more) = c.receive(group, topic, filter, 32, INVISIBLE, POLL).await;
        assert!(matches!(st, Code::Ok | Code::MessageNotFound), "{st:?}");
        got.append(&mut more);
        if got.len() >= n {
            break;
        }
    }
    assert_eq!(got.len(), n, "received {} of {n}", got.len());
    got
}

/// A body digest as a client computes it.
type Expected = fn(&v2::Message) -> String;

fn hex(m: &v2::Message) -> String {
    format!("{:X}", crc32fast::hash(&m.body))
}
fn hex8(m: &v2::Message) -> String {
    format!("{:08X}", crc32fast::hash(&m.body))
}
fn dec(m: &v2::Message) -> String {
    crc32fast::hash(&m.body).to_string()
}
fn md5(m: &v2::Message) -> String {
    <md5::Md5 as md5::Digest>::digest(&m.body)
        .iter()
        .fold(String::new(), |s, b| s + &format!("{b:02X}"))
}

/// Each official client checks the body digest in its own format (a mismatch marks the message
/// corrupted): CRC32 in that format for the known ones, MD5 for any other.
#[tokio::test]
async fn body_digest_in_the_format_of_the_client() {
    let b = TestBroker::start().await;
    let mut p = b.client("p").await;
    for i in 0..40 {
        assert_eq!(
            code(p.send(tagged("t", &format!("01D{i:02}"), "A")).await.status.as_ref()),
            Code::Ok
        );
    }
    let cases: [(&str, v2::DigestType, Expected); 6] = [
        ("JAVA", v2::DigestType::Crc32, hex),
        ("GOLANG", v2::DigestType::Crc32, hex),
        ("PYTHON", v2::DigestType::Crc32, hex8),
        ("HTTP", v2::DigestType::Crc32, dec),
        ("CPP", v2::DigestType::Md5, md5),
        ("", v2::DigestType::Md5, md5),
    ];
    let mut padded = false;
    for (i, (language, kind, expected)) in cases.into_iter().enumerate() {
        let mut c = Client::connect_as(b.addr, &format!("c{i}"), "", language).await;
        let got = receive_n(&mut c, &format!("g{i}"), "t", "*", 40).await;
        for m in &got {
            let digest = sys(m).body_digest.clone().unwrap();
            assert_eq!((digest.r#type, digest.checksum), (kind as i32, expected(m)), "{language}");
            padded |= hex(m) != hex8(m);
        }
    }
    // Some body's CRC32 has a leading zero nibble, where the hex formats differ.
    assert!(padded, "no body told padded from unpadded hex");
    b.stop().await;
}

#[tokio::test]
async fn receive_ack_and_nothing_left() {
    let b = TestBroker::start().await;
    let mut c = b.client("c1").await;
    for i in 0..5 {
        let r = c.send(tagged("t", &format!("01ID{i}"), "A")).await;
        assert_eq!(code(r.status.as_ref()), Code::Ok);
        assert_eq!(r.entries[0].message_id, format!("01ID{i}"));
    }
    let got = receive_n(&mut c, "g", "t", "*", 5).await;
    for m in &got {
        let s = sys(m);
        assert_eq!(s.delivery_attempt, Some(1));
        assert!(
            s.receipt_handle.is_some() && s.store_timestamp.is_some() && s.queue_offset.is_some()
        );
        // The test client says it is `RUST`: CRC32, 8 upper-case hex digits.
        let digest = s.body_digest.as_ref().unwrap();
        assert_eq!(digest.r#type, v2::DigestType::Crc32 as i32);
        assert_eq!(digest.checksum, format!("{:08X}", crc32fast::hash(&m.body)));
        assert_eq!(s.tag.as_deref(), Some("A"));
        assert!(m.body.starts_with(b"body of 01ID"));
        assert_eq!(c.ack("g", "t", m).await, Code::Ok);
    }
    // Acked twice: acks are idempotent, as in RocketMQ.
    assert_eq!(c.ack("g", "t", &got[0]).await, Code::Ok);
    assert_eq!(c.ack_handle("g", "t", "x", "garbage").await, Code::InvalidReceiptHandle);
    let t = Instant::now();
    let (st, got) = c.receive("g", "t", "*", 32, INVISIBLE, POLL).await;
    assert_eq!((st, got.len()), (Code::MessageNotFound, 0));
    assert!(t.elapsed() >= Duration::from_secs(4), "long polling waited only {:?}", t.elapsed());
    // Another group gets everything again.
    receive_n(&mut c, "g2", "t", "*", 5).await;
    b.stop().await;
}

#[tokio::test]
async fn long_poll_returns_as_soon_as_a_message_arrives() {
    let b = TestBroker::start().await;
    let mut c = b.client("c1").await;
    c.send(message("lp", "01X0", "warm-up")).await;
    let (_, got) = c.receive("g", "lp", "*", 32, INVISIBLE, POLL).await;
    c.ack("g", "lp", &got[0]).await;
    let mut sender = b.client("c2").await;
    let send = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        sender.send(message("lp", "01X1", "late")).await
    });
    let t = Instant::now();
    let (st, got) = c.receive("g", "lp", "*", 32, INVISIBLE, Duration::from_secs(20)).await;
    assert_eq!((st, got.len()), (Code::Ok, 1));
    assert!(t.elapsed() < Duration::from_secs(10), "woke after {:?}", t.elapsed());
    send.await.unwrap();
    b.stop().await;
}

#[tokio::test]
async fn tag_filters_select_messages() {
    let b = TestBroker::start().await;
    let mut c = b.client("c1").await;
    for (i, tag) in ["A", "B", "C", "A", "B"].iter().enumerate() {
        c.send(tagged("tf", &format!("01T{i}"), tag)).await;
    }
    let a = receive_n(&mut c, "ga", "tf", "A", 2).await;
    assert_eq!(a.iter().map(|m| sys(m).tag.clone().unwrap()).collect::<Vec<_>>(), ["A", "A"]);
    let ab = receive_n(&mut c, "gab", "tf", "A || B", 4).await;
    assert!(ab.iter().all(|m| sys(m).tag.as_deref() != Some("C")));
    b.stop().await;
}

#[tokio::test]
async fn change_invisible_gives_a_new_handle_and_redelivery_counts_attempts() {
    let b = TestBroker::start().await;
    let mut c = b.client("c1").await;
    c.send(message("ci", "01C0", "x")).await;
    let (_, got) = c.receive("g", "ci", "*", 1, INVISIBLE, POLL).await;
    let old = sys(&got[0]).receipt_handle.clone().unwrap();
    let resp = c
        .raw
        .change_invisible_duration(v2::ChangeInvisibleDurationRequest {
            group: Some(resource("g")),
            topic: Some(resource("ci")),
            receipt_handle: old.clone(),
            invisible_duration: Some(duration(Duration::from_secs(1))),
            message_id: "01C0".into(),
            lite_topic: None,
            suspend: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(resp.status.as_ref()), Code::Ok);
    assert_ne!(resp.receipt_handle, old);
    assert_eq!(
        c.ack_handle("g", "ci", "01C0", &old).await,
        Code::InvalidReceiptHandle,
        "old handle is stale"
    );
    // After the new invisible second the message comes back, attempt 2.
    let (st, again) = c.receive("g", "ci", "*", 1, INVISIBLE, POLL).await;
    assert_eq!(st, Code::Ok);
    assert_eq!(sys(&again[0]).message_id, "01C0");
    assert_eq!(sys(&again[0]).delivery_attempt, Some(2));
    assert_eq!(
        c.ack_handle("g", "ci", "01C0", &resp.receipt_handle).await,
        Code::InvalidReceiptHandle,
        "superseded by the redelivery"
    );
    assert_eq!(c.ack("g", "ci", &again[0]).await, Code::Ok);
    b.stop().await;
}

#[tokio::test]
async fn receive_argument_rules() {
    let b = TestBroker::start().await;
    let mut c = b.client("c1").await;
    c.send(message("ra", "01R0", "x")).await;
    let (st, _) = c.receive("g", "ra", "*", 1, Some(Duration::from_secs(1)), POLL).await;
    assert_eq!(st, Code::IllegalInvisibleTime, "below the 10 s minimum");
    let (st, _) = c.receive("g", "ra", "*", 1, Some(Duration::from_secs(13 * 3600)), POLL).await;
    assert_eq!(st, Code::IllegalInvisibleTime, "above 12 h");
    let (st, _) = c.receive("g", "ra", "*", 1, None, POLL).await;
    assert_eq!(st, Code::IllegalInvisibleTime, "simple consumers must say how long");
    let (st, _) = c.receive("bad group!", "ra", "*", 1, INVISIBLE, POLL).await;
    assert_eq!(st, Code::IllegalConsumerGroup);
    // A call whose deadline leaves under 5 s for polling.
    let mut req = tonic::Request::new(v2::ReceiveMessageRequest {
        group: Some(resource("g")),
        message_queue: Some(v2::MessageQueue { topic: Some(resource("ra")), ..Default::default() }),
        batch_size: 1,
        invisible_duration: INVISIBLE.map(duration),
        long_polling_timeout: Some(duration(POLL)),
        ..Default::default()
    });
    req.set_timeout(Duration::from_secs(3));
    let mut s = c.raw.receive_message(req).await.unwrap().into_inner();
    let first = s.message().await.unwrap().unwrap();
    assert!(
        matches!(first.content, Some(v2::receive_message_response::Content::Status(st)) if st.code == Code::IllegalPollingTime as i32)
    );
    // None of that consumed anything.
    let (st, got) = c.receive("g", "ra", "*", 1, INVISIBLE, POLL).await;
    assert_eq!((st, got.len()), (Code::Ok, 1));
    b.stop().await;
}

#[tokio::test]
async fn a_clean_restart_keeps_acks_inflight_messages_and_their_handles() {
    let b = TestBroker::start().await;
    let mut c = b.client("c1").await;
    for i in 0..6 {
        c.send(message("rs", &format!("01S{i}"), "x")).await;
    }
    let got = receive_n(&mut c, "g", "rs", "*", 6).await;
    let by_id = |id: &str| got.iter().find(|m| sys(m).message_id == id).unwrap().clone();
    // Acked in any order (also above unacked ones); 01S3 made visible in 1 s; 01S5 left in
    // flight for 30 s.
    for id in ["01S0", "01S1", "01S2", "01S4"] {
        assert_eq!(c.ack("g", "rs", &by_id(id)).await, Code::Ok);
    }
    let handle3 = sys(&by_id("01S3")).receipt_handle.clone().unwrap();
    let r = c
        .raw
        .change_invisible_duration(v2::ChangeInvisibleDurationRequest {
            group: Some(resource("g")),
            topic: Some(resource("rs")),
            receipt_handle: handle3,
            invisible_duration: Some(duration(Duration::from_secs(1))),
            message_id: "01S3".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(r.status.as_ref()), Code::Ok);
    let dir = b.stop_keeping_data().await;
    let b = TestBroker::start_in(dir, orbitmq_core::broker::BrokerConfig::default()).await;
    let mut c = b.client("c2").await;
    let (st, again) = c.receive("g", "rs", "*", 32, INVISIBLE, POLL).await;
    assert_eq!(st, Code::Ok);
    let ids: Vec<String> = again.iter().map(|m| sys(m).message_id.clone()).collect();
    assert_eq!(ids, ["01S3"], "only the message whose invisible time passed comes back");
    assert_eq!(sys(&again[0]).delivery_attempt, Some(2), "attempts survive the restart");
    // The handle 01S5 got before the restart still acks; an old ack repeated answers OK.
    assert_eq!(c.ack("g", "rs", &by_id("01S5")).await, Code::Ok);
    assert_eq!(c.ack("g", "rs", &by_id("01S0")).await, Code::Ok);
    assert_eq!(c.ack("g", "rs", &again[0]).await, Code::Ok);
    let (st, more) = c.receive("g", "rs", "*", 32, INVISIBLE, POLL).await;
    assert_eq!((st, more.len()), (Code::MessageNotFound, 0), "{more:?}");
    b.stop().await;
}
