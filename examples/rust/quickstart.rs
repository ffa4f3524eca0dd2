//! Quickstart with the OrbitMQ Rust SDK: send three messages, receive and acknowledge them with a
//! simple consumer. Works against `orbitmq standalone` and Apache RocketMQ 5's proxy alike.
//!
//! `ORBITMQ_ENDPOINT=127.0.0.1:8081 cargo run -p orbitmq-examples --example quickstart`
#![allow(clippy::print_stdout)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use orbitmq_core::client::{ClientConfig, FilterExpression, Message, Producer, SimpleConsumer};
use orbitmq_examples::{endpoint, run_id};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = ClientConfig::new(endpoint());
    let topic = "quickstart";
    let run = run_id(); // tells this run's messages from older ones

    let producer = Producer::builder(config.clone()).topics([topic]).build()?;
    producer.start().await?;
    let mut sent = HashSet::new();
    for i in 0..3 {
        let body = format!("order {i} created ({run})");
        let message =
            Message::builder(topic).body(body.clone()).tag("created").keys([format!("order-{i}")]);
        let receipt = producer.send(message.build()).await?;
        println!("sent {} to queue offset {}", receipt.message_id, receipt.queue_offset);
        sent.insert(body);
    }

    let consumer = SimpleConsumer::builder(config, "quickstart-group")
        .subscribe(topic, FilterExpression::tags(["created"]))
        .await_duration(Duration::from_secs(5))
        .build()?;
    let mut received = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while received != sent && Instant::now() < deadline {
        // At most 16 messages, invisible to the rest of the group for 15 s unless acked.
        for message in consumer.receive(16, Duration::from_secs(15)).await? {
            let body = String::from_utf8_lossy(&message.body).into_owned();
            consumer.ack(&message).await?;
            if sent.contains(&body) {
                println!("received and acked {} ({body})", message.message_id);
                received.insert(body);
            }
        }
    }
    producer.shutdown().await;
    consumer.shutdown().await;
    anyhow::ensure!(received == sent, "received {} of {} messages", received.len(), sent.len());
    println!("quickstart OK");
    Ok(())
}
