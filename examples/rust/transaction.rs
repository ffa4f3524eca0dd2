//! Transactions: a committed message is delivered, a rolled-back one never; a transaction left
//! open is settled by the checker when the broker checks back.
//!
//! `ORBITMQ_ENDPOINT=127.0.0.1:8081 cargo run -p orbitmq-examples --example transaction`
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use orbitmq_core::client::{
    ClientConfig, FilterExpression, Message, MessageView, Producer, SimpleConsumer,
    TransactionChecker, TransactionResolution,
};
use orbitmq_examples::{endpoint, run_id};

/// Looks the order up in "the database": here, the body says what happened.
struct OrderChecker;

#[async_trait::async_trait]
impl TransactionChecker for OrderChecker {
    async fn check(&self, message: MessageView) -> TransactionResolution {
        println!("the broker checks back on {}", message.message_id);
        if message.body.starts_with(b"paid") {
            TransactionResolution::Commit
        } else {
            TransactionResolution::Rollback
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = ClientConfig::new(endpoint());
    let topic = "transaction-example";
    let run = run_id();
    let producer = Producer::builder(config.clone())
        .topics([topic])
        .transaction_checker(Arc::new(OrderChecker))
        .build()?;
    producer.start().await?;

    let mut tx = producer.begin_transaction()?;
    let committed = tx.send(Message::new(topic, format!("paid order {run}"))).await?;
    tx.commit().await?;
    let mut tx = producer.begin_transaction()?;
    tx.send(Message::new(topic, format!("cancelled order {run}"))).await?;
    tx.rollback().await?;
    println!("committed {}, rolled one back", committed.message_id);

    let consumer = SimpleConsumer::builder(config, "transaction-example-group")
        .subscribe(topic, FilterExpression::all())
        .await_duration(Duration::from_secs(5))
        .build()?;
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && got.is_empty() {
        for m in consumer.receive(16, Duration::from_secs(15)).await? {
            consumer.ack(&m).await?;
            if String::from_utf8_lossy(&m.body).ends_with(&run) {
                got.push(m.message_id);
            }
        }
    }
    producer.shutdown().await;
    consumer.shutdown().await;
    anyhow::ensure!(got == [committed.message_id], "expected the committed message only: {got:?}");
    println!("transaction OK");
    Ok(())
}
