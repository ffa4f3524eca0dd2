//! The storage engine on its own: append, read a queue by offset, find by key and by
//! `offset_msg_id`, commit a consumer offset, and reopen.
//!
//! `cargo run -p orbitmq-examples --example store -- /tmp/orbitmq-example`
#![allow(clippy::print_stdout)]

use orbitmq_core::storage::{MessageStore, PutMessage, StoreConfig, TagFilter};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "./orbitmq-example-data".into());
    let store = MessageStore::open(StoreConfig::new(&dir))?;

    let first = store.max_offset("orders", 0);
    for i in 0..3 {
        let msg = PutMessage::new("orders", 0, format!("order #{i}"))
            .with_tag(if i == 1 { "paid" } else { "created" })
            .with_keys([format!("order-{i}")]);
        let r = store.put(msg).await?;
        println!(
            "stored at queue offset {} as {}",
            r.queue_offset,
            store.offset_msg_id(r.commitlog_offset)
        );
    }
    // Dispatch builds ConsumeQueues asynchronously; long-poll until ours is there.
    store.wait_for("orders", 0, first + 2, std::time::Duration::from_secs(5)).await?;

    let paid = store.get_messages("orders", 0, first, 32, &TagFilter::parse("paid"))?;
    for m in &paid.messages {
        println!(
            "tag paid: {} (next offset {})",
            String::from_utf8_lossy(&m.body),
            paid.next_offset
        );
    }
    let by_key = store.query_by_key("orders", "order-2", 0, i64::MAX, 10);
    println!("by key order-2: {} message(s)", by_key.len());

    store.consumer_offsets().commit("billing", "orders", 0, paid.next_offset);
    store.close()?;

    let store = MessageStore::open(StoreConfig::new(&dir))?;
    println!(
        "after reopen: queue end {}, billing offset {:?}",
        store.max_offset("orders", 0),
        store.consumer_offsets().get("billing", "orders", 0)
    );
    store.close()?;
    Ok(())
}
