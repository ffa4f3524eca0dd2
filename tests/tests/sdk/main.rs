//! The Rust client SDK (`orbitmq_core::client`) end to end against a real in-process broker on
//! 127.0.0.1: what an application using it relies on.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod admin;
mod apache;
mod credentials;
mod producer;
mod pull;
mod push;
mod simple;

use std::time::Duration;

use orbitmq_core::client::{ClientConfig, FilterExpression, Producer, SimpleConsumer};
use orbitmq_tests::TestBroker;

/// A client configuration for `broker`.
pub fn config(broker: &TestBroker) -> ClientConfig {
    ClientConfig::new(broker.addr.to_string())
}

/// A started producer of `topics` on `broker`.
pub async fn producer(broker: &TestBroker, topics: &[&str]) -> Producer {
    let p = Producer::builder(config(broker)).topics(topics.iter().copied()).build().unwrap();
    p.start().await.unwrap();
    p
}

/// A started simple consumer of `group` subscribed to all of `topic`, polling 5 s (the
/// broker's shortest) when there is nothing.
pub async fn consumer(broker: &TestBroker, group: &str, topic: &str) -> SimpleConsumer {
    let c = SimpleConsumer::builder(config(broker), group)
        .subscribe(topic, FilterExpression::all())
        .await_duration(Duration::from_secs(5))
        .build()
        .unwrap();
    c.start().await.unwrap();
    c
}
