//! Push consumer: clustering, failure → retry → DLQ, panics, orderly, graceful shutdown, the
//! cache bound.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orbitmq_core::client::{
    ConsumeResult, FilterExpression, Message, MessageListener, MessageView, PushConsumer,
};
use orbitmq_tests::TestBroker;

use crate::{config, consumer, producer};

/// Records what it consumes; fails (or panics) on the bodies it is told to.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<MessageView>>,
    fail: HashSet<String>,
    panic_first: HashSet<String>,
    delay: Option<Duration>,
}

impl Recorder {
    fn bodies(&self) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        seen.iter().map(|m| String::from_utf8(m.body.to_vec()).unwrap()).collect()
    }
}

#[async_trait::async_trait]
impl MessageListener for Recorder {
    async fn consume(&self, message: MessageView) -> ConsumeResult {
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
        let body = String::from_utf8(message.body.to_vec()).unwrap();
        let attempt = message.delivery_attempt;
        self.seen.lock().unwrap().push(message);
        assert!(!(self.panic_first.contains(&body) && attempt == 1), "listener bug on {body}");
        if self.fail.contains(&body) { ConsumeResult::Failure } else { ConsumeResult::Success }
    }
}

async fn push(tb: &TestBroker, group: &str, topic: &str, listener: Arc<Recorder>) -> PushConsumer {
    let c = PushConsumer::builder(config(tb), group)
        .subscribe(topic, FilterExpression::all())
        .listener(listener)
        .build()
        .unwrap();
    c.start().await.unwrap();
    c
}

/// Waits until `done` holds, 30 s at most.
async fn until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_members_split_a_group_none_lost_none_twice() {
    let tb = TestBroker::start().await;
    let p = producer(&tb, &["work"]).await;
    let recorders: Vec<Arc<Recorder>> = (0..3).map(|_| Arc::new(Recorder::default())).collect();
    let mut members = Vec::new();
    for r in &recorders {
        members.push(push(&tb, "workers", "work", Arc::clone(r)).await);
    }
    let sent: HashSet<String> = (0..90).map(|i| format!("m{i}")).collect();
    for body in &sent {
        p.send(Message::new("work", body.clone())).await.unwrap();
    }
    until("all 90", || recorders.iter().map(|r| r.bodies().len()).sum::<usize>() >= 90).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all: Vec<String> = recorders.iter().flat_map(|r| r.bodies()).collect();
    let unique: HashSet<String> = all.iter().cloned().collect();
    assert_eq!(unique, sent, "none lost");
    assert_eq!(all.len(), 90, "none twice");
    let busy = recorders.iter().filter(|r| !r.bodies().is_empty()).count();
    assert!(busy >= 2, "the work is spread over the members (busy: {busy})");
    for m in members {
        m.shutdown().await;
    }
    p.shutdown().await;
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failure_is_retried_then_dead_lettered_and_a_panic_is_a_failure() {
    let tb = TestBroker::start().await;
    tb.group("fails", false, 2);
    let p = producer(&tb, &["jobs"]).await;
    let r = Arc::new(Recorder {
        fail: ["bad".to_owned()].into(),
        panic_first: ["flaky".to_owned()].into(),
        ..Recorder::default()
    });
    let c = push(&tb, "fails", "jobs", Arc::clone(&r)).await;
    let bad = p.send(Message::new("jobs", "bad")).await.unwrap();
    p.send(Message::new("jobs", "flaky")).await.unwrap();
    p.send(Message::new("jobs", "good")).await.unwrap();
    // "flaky" panics on its first delivery and succeeds on its second.
    until("flaky twice", || r.bodies().iter().filter(|b| *b == "flaky").count() >= 2).await;
    // "bad" fails both of its 2 attempts, then lands in the group's dead-letter queue.
    until("bad twice", || r.bodies().iter().filter(|b| *b == "bad").count() >= 2).await;
    let dlq = consumer(&tb, "dlq-reader", "%DLQ%fails").await;
    let mut dead = Vec::new();
    let start = Instant::now();
    while dead.is_empty() && start.elapsed() < Duration::from_secs(30) {
        dead = dlq.receive(32, Duration::from_secs(30)).await.unwrap();
    }
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].message_id, bad.message_id);
    let counts: HashMap<String, usize> = r.bodies().into_iter().fold(HashMap::new(), |mut m, b| {
        *m.entry(b).or_default() += 1;
        m
    });
    assert_eq!(counts.get("good"), Some(&1));
    assert_eq!(counts.get("bad"), Some(&2), "max attempts 2: {counts:?}");
    c.shutdown().await;
    dlq.shutdown().await;
    p.shutdown().await;
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn orderly_consumption_keeps_each_groups_order_across_a_failure() {
    let tb = TestBroker::start().await;
    tb.group("ordered", true, 16);
    let p = producer(&tb, &["seq"]).await;
    // The second message of group a fails once (panics), and is retried before a's third.
    let r = Arc::new(Recorder { panic_first: ["a1".to_owned()].into(), ..Recorder::default() });
    let c = push(&tb, "ordered", "seq", Arc::clone(&r)).await;
    for i in 0..5 {
        for g in ["a", "b"] {
            let m = Message::builder("seq").body(format!("{g}{i}")).message_group(g).build();
            p.send(m).await.unwrap();
        }
    }
    until("11 deliveries", || r.bodies().len() >= 11).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bodies = r.bodies();
    for g in ["a", "b"] {
        let mine: Vec<&String> = bodies.iter().filter(|b| b.starts_with(g)).collect();
        let mut expected: Vec<String> = (0..5).map(|i| format!("{g}{i}")).collect();
        if g == "a" {
            expected.insert(2, "a1".to_owned()); // the retry, right after the failure
        }
        assert_eq!(mine, expected.iter().collect::<Vec<_>>(), "group {g}: {bodies:?}");
    }
    c.shutdown().await;
    p.shutdown().await;
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_lets_the_listener_finish_and_acks_its_message() {
    let tb = TestBroker::start().await;
    let p = producer(&tb, &["slow"]).await;
    let r = Arc::new(Recorder { delay: Some(Duration::from_millis(1500)), ..Recorder::default() });
    let c = push(&tb, "slow-g", "slow", Arc::clone(&r)).await;
    p.send(Message::new("slow", "x")).await.unwrap();
    // Wait until it is in the listener (cached), then shut down mid-call.
    until("the message in flight", || c.cached_messages() == 1).await;
    c.shutdown().await;
    assert_eq!(r.bodies(), ["x"], "the call in flight finished before shutdown returned");
    // It was acknowledged: the group has nothing left.
    let check = consumer(&tb, "slow-g", "slow").await;
    assert!(check.receive(32, Duration::from_secs(30)).await.unwrap().is_empty());
    check.shutdown().await;
    p.shutdown().await;
    tb.stop().await;
}

/// Blocks every call until released; counts calls.
struct Gate {
    calls: AtomicUsize,
    open: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl MessageListener for Gate {
    async fn consume(&self, _message: MessageView) -> ConsumeResult {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.open.notified().await;
        ConsumeResult::Success
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cache_and_the_consumption_threads_bound_what_is_held() {
    let tb = TestBroker::start().await;
    let p = producer(&tb, &["many"]).await;
    let gate = Arc::new(Gate { calls: AtomicUsize::new(0), open: tokio::sync::Notify::new() });
    let c = PushConsumer::builder(config(&tb), "bounded")
        .subscribe("many", FilterExpression::all())
        .listener(Arc::clone(&gate) as Arc<dyn MessageListener>)
        .consumption_threads(2)
        .max_cached_messages(5)
        .build()
        .unwrap();
    c.start().await.unwrap();
    let batch: Vec<Message> = (0..40).map(|i| Message::new("many", format!("{i}"))).collect();
    p.send_batch(batch).await.unwrap();
    until("two calls running", || gate.calls.load(Ordering::SeqCst) == 2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(gate.calls.load(Ordering::SeqCst), 2, "at most consumption_threads at once");
    assert!(c.cached_messages() <= 5, "held {} > max_cached_messages", c.cached_messages());
    // Released, everything flows.
    let opener = {
        let gate = Arc::clone(&gate);
        tokio::spawn(async move {
            loop {
                gate.open.notify_waiters();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    until("all 40", || gate.calls.load(Ordering::SeqCst) >= 40).await;
    opener.abort();
    gate.open.notify_waiters();
    c.shutdown().await;
    p.shutdown().await;
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_consumer_needs_a_listener_and_sane_limits() {
    let tb = TestBroker::start().await;
    let e = PushConsumer::builder(config(&tb), "g").build().unwrap_err();
    assert!(e.message().contains("listener"), "{e}");
    let r = Arc::new(Recorder::default());
    let e = PushConsumer::builder(config(&tb), "g")
        .listener(r)
        .consumption_threads(0)
        .build()
        .unwrap_err();
    assert!(e.message().contains("consumption_threads"), "{e}");
    tb.stop().await;
}

fn broadcaster(tb: &TestBroker, dir: &std::path::Path, listener: Arc<Recorder>) -> PushConsumer {
    PushConsumer::builder(config(tb), "everyone")
        .subscribe("news", FilterExpression::tags(["keep"]))
        .listener(listener)
        .model(orbitmq_core::client::ConsumerModel::Broadcasting)
        .offset_store(orbitmq_core::client::OffsetStore::Local(dir.to_owned()))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn broadcasting_gives_every_member_everything_and_a_restart_resumes() {
    let tb = TestBroker::start().await;
    let p = producer(&tb, &["news"]).await;
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let recorders: Vec<Arc<Recorder>> = (0..3).map(|_| Arc::new(Recorder::default())).collect();
    let mut members = Vec::new();
    for (d, r) in dirs.iter().zip(&recorders) {
        let c = broadcaster(&tb, d.path(), Arc::clone(r));
        c.start().await.unwrap();
        members.push(c);
    }
    let want: Vec<String> = (0..20).map(|i| format!("n{i}")).collect();
    for (i, body) in want.iter().enumerate() {
        p.send(Message::builder("news").body(body.clone()).tag("keep").build()).await.unwrap();
        if i % 5 == 0 {
            p.send(Message::builder("news").body("noise").tag("drop").build()).await.unwrap();
        }
    }
    let wanted: HashSet<String> = want.iter().cloned().collect();
    for r in &recorders {
        until("every member has all 20", || r.bodies().len() >= 20).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for r in &recorders {
        let got = r.bodies();
        assert_eq!(got.len(), 20, "each message once, no filtered one: {got:?}");
        assert_eq!(got.into_iter().collect::<HashSet<_>>(), wanted);
    }
    // Member 0 leaves and comes back on its own offsets: only what was sent meanwhile arrives.
    let first = members.remove(0);
    first.shutdown().await;
    p.send(Message::builder("news").body("later").tag("keep").build()).await.unwrap();
    let again = Arc::new(Recorder::default());
    let back = broadcaster(&tb, dirs[0].path(), Arc::clone(&again));
    back.start().await.unwrap();
    until("the message sent while away", || !again.bodies().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(again.bodies(), ["later"], "resumed after its committed positions");
    back.shutdown().await;
    for m in members {
        m.shutdown().await;
    }
    p.shutdown().await;
    tb.stop().await;
}
