//! A push consumer: the SDK receives, your listener consumes; `Failure` (or a panic) has the
//! message redelivered after the group's back-off.
//!
//! `ORBITMQ_ENDPOINT=127.0.0.1:8081 cargo run -p orbitmq-examples --example push_consumer`
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use orbitmq_core::client::{
    ClientConfig, ConsumeResult, FilterExpression, Message, MessageListener, MessageView, Producer,
    PushConsumer,
};
use orbitmq_examples::{endpoint, run_id};

/// Consumes this run's messages; fails each one the first time, to show a redelivery.
struct Listener {
    run: String,
    done: AtomicUsize,
}

#[async_trait::async_trait]
impl MessageListener for Listener {
    async fn consume(&self, message: MessageView) -> ConsumeResult {
        let body = String::from_utf8_lossy(&message.body);
        if !body.ends_with(&self.run) {
            return ConsumeResult::Success; // an older run's message
        }
        if message.delivery_attempt == 1 {
            println!("attempt 1 of {body}: failing it, it comes back");
            return ConsumeResult::Failure;
        }
        println!("attempt {} of {body}: consumed", message.delivery_attempt);
        self.done.fetch_add(1, Ordering::SeqCst);
        ConsumeResult::Success
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = ClientConfig::new(endpoint());
    let topic = "push-example";
    let run = run_id();
    let listener = Arc::new(Listener { run: run.clone(), done: AtomicUsize::new(0) });
    let consumer = PushConsumer::builder(config.clone(), "push-example-group")
        .subscribe(topic, FilterExpression::all())
        .listener(Arc::clone(&listener) as Arc<dyn MessageListener>)
        .consumption_threads(4)
        .build()?;
    let producer = Producer::builder(config).topics([topic]).build()?;
    producer.start().await?;
    consumer.start().await?;
    for i in 0..3 {
        producer.send(Message::new(topic, format!("job {i} of {run}"))).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while listener.done.load(Ordering::SeqCst) < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Lets listener calls in flight finish and acknowledges them, then leaves the group.
    consumer.shutdown().await;
    producer.shutdown().await;
    anyhow::ensure!(listener.done.load(Ordering::SeqCst) == 3, "not every job was consumed");
    println!("push consumer OK");
    Ok(())
}
