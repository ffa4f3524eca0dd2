//! FIFO messages: every order is a message group whose events must be handled in the order they
//! happened; different orders are independent. The producer sets each message's message group;
//! a consumer group created as FIFO then gets a message group's next message only after the
//! previous one was consumed, so a push consumer with several consumption threads still sees
//! each order's events in order.
//!
//! `ORBITMQ_ENDPOINT=127.0.0.1:8081 cargo run -p orbitmq-examples --example fifo`
//!
//! The consumer group must be FIFO before the consumer starts: the example creates it with the
//! SDK's `Admin` (OrbitMQ only; creating it again on a later run is fine). Against a server
//! without OrbitMQ's admin RPCs (Apache RocketMQ), create the group as FIFO with its own tools
//! (`mqadmin updateSubGroup -g fifo-example-group -o true`) and the topic as a FIFO topic, and
//! run with `SKIP_GROUP_CREATE=1`.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use orbitmq_core::client::{
    Admin, ClientConfig, ConsumeResult, FilterExpression, GroupOptions, Message, MessageListener,
    MessageView, Producer, PushConsumer,
};
use orbitmq_examples::{endpoint, run_id};

const EVENTS: [&str; 5] = ["created", "paid", "packed", "shipped", "delivered"];

/// Records, per order (message group), the events of this run in the order they were consumed.
struct Listener {
    run: String,
    seen: Mutex<BTreeMap<String, Vec<String>>>,
}

#[async_trait::async_trait]
impl MessageListener for Listener {
    async fn consume(&self, message: MessageView) -> ConsumeResult {
        let body = String::from_utf8_lossy(&message.body).into_owned();
        let Some(group) = message.message_group.clone() else {
            println!("not a FIFO message: {body}");
            return ConsumeResult::Success;
        };
        if !group.ends_with(&self.run) {
            return ConsumeResult::Success; // an older run's message
        }
        // Take a little time, so a consumer that did not keep the order would show it.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let event = body.rsplit(' ').next().unwrap_or_default().to_owned();
        println!("consumed {body} (attempt {})", message.delivery_attempt);
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(group)
            .or_default()
            .push(event);
        ConsumeResult::Success
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = ClientConfig::new(endpoint());
    let topic = "fifo-example";
    let group = "fifo-example-group";
    let run = run_id();
    let orders: Vec<String> = (1..=2).map(|n| format!("order-{n}-{run}")).collect();

    if std::env::var_os("SKIP_GROUP_CREATE").is_some_and(|v| v == "1") {
        println!("SKIP_GROUP_CREATE=1: {group} must already be a FIFO group");
    } else {
        let admin = Admin::new(config.clone())?;
        let options = GroupOptions { fifo: Some(true), ..GroupOptions::default() };
        let created = admin.create_group(group, options).await?;
        println!("group {group}: fifo {} (created: {})", created.group.fifo, created.created);
    }

    let listener = Arc::new(Listener { run: run.clone(), seen: Mutex::new(BTreeMap::new()) });
    let consumer = PushConsumer::builder(config.clone(), group)
        .subscribe(topic, FilterExpression::all())
        .listener(Arc::clone(&listener) as Arc<dyn MessageListener>)
        .consumption_threads(4)
        .build()?;
    consumer.start().await?;
    let producer = Producer::builder(config).topics([topic]).build()?;
    producer.start().await?;
    // Both orders' events, interleaved: order-1 created, order-2 created, order-1 paid, ...
    for event in EVENTS {
        for order in &orders {
            let message = Message::builder(topic)
                .body(format!("{order} {event}"))
                .tag(event)
                .keys([order.clone()])
                .message_group(order.clone());
            producer.send(message.build()).await?;
        }
    }
    println!("sent {} events of {} orders", EVENTS.len() * orders.len(), orders.len());

    let expected: BTreeMap<String, Vec<String>> = orders
        .iter()
        .map(|o| (o.clone(), EVENTS.iter().map(|e| (*e).to_owned()).collect()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = || {
        let seen = listener.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.values().map(Vec::len).sum::<usize>() >= EVENTS.len() * orders.len()
    };
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    consumer.shutdown().await;
    producer.shutdown().await;
    let seen = listener.seen.lock().unwrap_or_else(PoisonError::into_inner).clone();
    anyhow::ensure!(seen == expected, "expected every order's events in order: {seen:?}");
    println!("fifo OK");
    Ok(())
}
