//! Delay messages: one delivered 3 s after it was sent, one recalled before it was due.
//!
//! `ORBITMQ_ENDPOINT=127.0.0.1:8081 cargo run -p orbitmq-examples --example delay_and_recall`
//!
//! Against Apache RocketMQ 5.3: the topic must be a DELAY topic, and recalls are refused unless
//! the broker runs with `recallMessageEnable=true` (`mqadmin updateBrokerConfig`).
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use orbitmq_core::client::{ClientConfig, FilterExpression, Message, Producer, SimpleConsumer};
use orbitmq_examples::{endpoint, run_id};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = ClientConfig::new(endpoint());
    let topic = "delay-example";
    let run = run_id();
    let producer = Producer::builder(config.clone()).topics([topic]).build()?;
    let sent_at = Instant::now();
    let due = Message::builder(topic).body(format!("due {run}")).delay(Duration::from_secs(3));
    let due = producer.send(due.build()).await?;
    let recalled =
        Message::builder(topic).body(format!("recalled {run}")).delay(Duration::from_secs(3));
    let recalled = producer.send(recalled.build()).await?;
    let handle =
        recalled.recall_handle.clone().ok_or_else(|| anyhow::anyhow!("no recall handle"))?;
    match producer.recall(topic, &handle).await {
        Ok(id) => println!("recalled {id}"),
        Err(e) => {
            // Apache RocketMQ (5.3.x) has recalls off unless its broker runs with
            // recallMessageEnable=true, and then answers INTERNAL_SERVER_ERROR "recall failed,
            // operation is forbidden".
            println!("the server refused the recall: {e}");
            if e.message().contains("forbidden") {
                println!(
                    "(Apache RocketMQ refuses recalls unless its broker has recallMessageEnable=true)"
                );
            }
            producer.shutdown().await;
            return Err(e.into());
        }
    }

    let consumer = SimpleConsumer::builder(config, "delay-example-group")
        .subscribe(topic, FilterExpression::all())
        .await_duration(Duration::from_secs(5))
        .build()?;
    let mut got = Vec::new();
    while sent_at.elapsed() < Duration::from_secs(8) {
        for m in consumer.receive(16, Duration::from_secs(15)).await? {
            consumer.ack(&m).await?;
            if String::from_utf8_lossy(&m.body).ends_with(&run) {
                println!(
                    "{} arrived {:.1} s after it was sent",
                    m.message_id,
                    sent_at.elapsed().as_secs_f64()
                );
                got.push(m.message_id);
            }
        }
    }
    producer.shutdown().await;
    consumer.shutdown().await;
    anyhow::ensure!(got == [due.message_id], "expected only the due message, got {got:?}");
    println!("delay and recall OK");
    Ok(())
}
