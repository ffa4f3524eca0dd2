//! A pull consumer reads queues by offset and keeps its own position, committing it to the
//! broker; a broadcasting push consumer (every member gets every message) runs on the same pull
//! RPCs, with its positions in a local offset store.
//!
//! `ORBITMQ_ENDPOINT=127.0.0.1:8081 cargo run -p orbitmq-examples --example pull_consumer`
//!
//! Apache RocketMQ's proxy serves no pull RPCs (PullMessage, UpdateOffset, GetOffset,
//! QueryOffset): there both fail with `ErrorKind::Unsupported`, saying why. With
//! `EXPECT_UNSUPPORTED=1` the example checks exactly that instead of reading messages.
#![allow(clippy::print_stdout)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use orbitmq_core::client::{
    ClientConfig, ConsumeResult, ConsumerModel, ErrorKind, FilterExpression, Message,
    MessageListener, MessageView, OffsetStore, Producer, PullConsumer, PushConsumer,
};
use orbitmq_examples::{endpoint, run_id};

const TOPIC: &str = "pull-example";

/// Collects the bodies of this run's messages.
struct Collect {
    run: String,
    bodies: Mutex<HashSet<String>>,
}

#[async_trait::async_trait]
impl MessageListener for Collect {
    async fn consume(&self, message: MessageView) -> ConsumeResult {
        let body = String::from_utf8_lossy(&message.body).into_owned();
        if body.ends_with(&self.run) {
            println!("broadcast member got {body}");
            self.bodies.lock().unwrap_or_else(PoisonError::into_inner).insert(body);
        }
        ConsumeResult::Success
    }
}

/// Where a broadcasting member keeps its positions: a directory of its own for this run.
fn local_store(run: &str) -> OffsetStore {
    OffsetStore::Local(std::env::temp_dir().join(format!("orbitmq-pull-example-{run}")))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::var_os("EXPECT_UNSUPPORTED").is_some_and(|v| v == "1") {
        return expect_unsupported().await;
    }
    let config = ClientConfig::new(endpoint());
    let run = run_id();
    let producer = Producer::builder(config.clone()).topics([TOPIC]).build()?;
    producer.start().await?;

    // A pull consumer: the broker assigns it a share of the topic's queues (all of them while
    // it is the group's only member); it starts where the group's committed positions are.
    let pull = PullConsumer::builder(config.clone(), "pull-example-group")
        .subscribe(TOPIC, FilterExpression::all())
        .build()?;
    pull.start().await?;
    // A broadcasting push consumer: gets every message, whatever else is in its group.
    let collect = Arc::new(Collect { run: run.clone(), bodies: Mutex::new(HashSet::new()) });
    let broadcast = PushConsumer::builder(config, "pull-example-broadcast")
        .subscribe(TOPIC, FilterExpression::all())
        .model(ConsumerModel::Broadcasting)
        .offset_store(local_store(&run))
        .listener(Arc::clone(&collect) as Arc<dyn MessageListener>)
        .build()?;
    broadcast.start().await?;

    let mut sent = HashSet::new();
    for i in 0..3 {
        let body = format!("reading {i} of {run}");
        producer.send(Message::new(TOPIC, body.clone())).await?;
        sent.insert(body);
    }
    let mut read = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while read != sent && Instant::now() < deadline {
        for m in pull.poll(Duration::from_secs(2)).await? {
            let body = String::from_utf8_lossy(&m.body).into_owned();
            if sent.contains(&body) {
                println!("pulled {body} from queue {} offset {}", m.queue_id, m.queue_offset);
                read.insert(body);
            }
        }
    }
    // Makes the positions the group's: a restarted consumer goes on from here.
    pull.commit().await?;
    while *collect.bodies.lock().unwrap_or_else(PoisonError::into_inner) != sent
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pull.shutdown().await;
    broadcast.shutdown().await;
    producer.shutdown().await;
    let _ =
        std::fs::remove_dir_all(std::env::temp_dir().join(format!("orbitmq-pull-example-{run}")));
    anyhow::ensure!(read == sent, "pulled {} of {} messages", read.len(), sent.len());
    let got = collect.bodies.lock().unwrap_or_else(PoisonError::into_inner).len();
    anyhow::ensure!(got == sent.len(), "the broadcast member got {got} of {}", sent.len());
    println!("pull consumer OK");
    Ok(())
}

/// Against a server without the pull RPCs: subscribing, polling and committing, and starting a
/// broadcasting push consumer, must fail with `Unsupported` and say why.
async fn expect_unsupported() -> anyhow::Result<()> {
    let config = ClientConfig::new(endpoint());
    let run = run_id();
    let pull = PullConsumer::builder(config.clone(), "pull-example-group")
        .subscribe(TOPIC, FilterExpression::all())
        .build()?;
    let mut errors = Vec::new();
    match pull.start().await {
        Err(e) => errors.push(("pull consumer start", e)),
        Ok(()) => match pull.poll(Duration::from_secs(2)).await {
            Err(e) => errors.push(("pull consumer poll", e)),
            Ok(got) => {
                anyhow::bail!("poll answered {} messages: the server serves pulls", got.len())
            }
        },
    }
    pull.shutdown().await;
    let broadcast = PushConsumer::builder(config, "pull-example-broadcast")
        .subscribe(TOPIC, FilterExpression::all())
        .model(ConsumerModel::Broadcasting)
        .offset_store(local_store(&run))
        .listener(Arc::new(Collect { run: run.clone(), bodies: Mutex::new(HashSet::new()) }))
        .build()?;
    if let Err(e) = broadcast.start().await {
        errors.push(("broadcasting push consumer start", e));
    } else {
        broadcast.shutdown().await;
        anyhow::bail!("a broadcasting push consumer started: the server serves pulls");
    }
    broadcast.shutdown().await;
    let _ =
        std::fs::remove_dir_all(std::env::temp_dir().join(format!("orbitmq-pull-example-{run}")));
    for (what, e) in &errors {
        println!("{what}: {:?}: {e}", e.kind());
        anyhow::ensure!(e.kind() == ErrorKind::Unsupported, "{what}: expected Unsupported: {e}");
        anyhow::ensure!(
            e.message().contains("does not support pull"),
            "{what}: the error does not say why: {e}"
        );
    }
    println!("pull consumer and broadcasting answer Unsupported, as expected");
    Ok(())
}
