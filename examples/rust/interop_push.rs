//! A push consumer for interoperability tests: consumes `TOPIC` in consumer group `GROUP` for
//! up to `SECONDS` seconds (or until its standard input closes), printing `READY` once it is
//! consuming and then the body of every message it consumed, one per line. Run beside an
//! official client's consumer in the same group, the two split the group's messages between
//! them (`tests/compat/python/test_interop_rust_sdk.py`).
//!
//! `ORBITMQ_ENDPOINT=127.0.0.1:8081 cargo run -p orbitmq-examples --example interop_push -- TOPIC GROUP SECONDS`
//!
//! It consumes slowly on purpose (2 consumption threads, 8 cached messages, 20 ms a message),
//! so that a faster consumer in the group gets its share too.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use orbitmq_core::client::{
    ClientConfig, ConsumeResult, FilterExpression, MessageListener, MessageView, PushConsumer,
};
use orbitmq_examples::endpoint;

/// Prints each body (a line on stdout, flushed with the newline).
struct Print;

#[async_trait::async_trait]
impl MessageListener for Print {
    async fn consume(&self, message: MessageView) -> ConsumeResult {
        tokio::time::sleep(Duration::from_millis(20)).await;
        println!("{}", String::from_utf8_lossy(&message.body));
        ConsumeResult::Success
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [topic, group, seconds] = args.as_slice() else {
        anyhow::bail!("usage: interop_push TOPIC GROUP SECONDS");
    };
    let seconds: u64 = seconds.parse()?;
    let consumer = PushConsumer::builder(ClientConfig::new(endpoint()), group.clone())
        .subscribe(topic.clone(), FilterExpression::all())
        .listener(Arc::new(Print))
        .consumption_threads(2)
        .max_cached_messages(8)
        .build()?;
    consumer.start().await?;
    println!("READY");
    // Standard input closing (the test is done with us) ends the run early.
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        let _ = closed_tx.send(());
    });
    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs(seconds)) => {}
        _ = closed_rx => {}
    }
    // Lets the listener calls in flight finish and acknowledges them, then leaves the group.
    consumer.shutdown().await;
    eprintln!("interop_push: stopped");
    Ok(())
}
