//! Admin: topics, groups, progress, message queries and offset resets, checked against what
//! producers and consumers of the same SDK really did.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use orbitmq_core::client::{
    Admin, ErrorKind, GroupOptions, Message, MessageView, SimpleConsumer, StoredMessage,
    TopicConfig,
};
use orbitmq_tests::TestBroker;

use crate::{config, consumer, producer};

fn admin(tb: &TestBroker) -> Admin {
    Admin::new(config(tb)).unwrap()
}

fn topic(name: &str, queues: u32, message_type: &str) -> TopicConfig {
    TopicConfig {
        read_queues: queues,
        write_queues: queues,
        message_type: message_type.to_owned(),
        ..TopicConfig::new(name)
    }
}

/// Receives until `n` messages came or 20 s passed.
async fn receive(c: &SimpleConsumer, n: usize) -> Vec<MessageView> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < n && Instant::now() < deadline {
        got.extend(c.receive(32, Duration::from_secs(30)).await.unwrap());
    }
    got
}

#[tokio::test(flavor = "multi_thread")]
async fn topics_are_created_updated_routed_listed_and_deleted() {
    let tb = TestBroker::start().await;
    let a = admin(&tb);
    let created = a.create_topic(topic("adm-t", 4, "FIFO")).await.unwrap();
    assert_eq!(created, topic("adm-t", 4, "FIFO"));
    let again = a.create_topic(topic("adm-t", 4, "FIFO")).await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::BadRequest, "{again}");
    assert!(again.message().contains("already exists"), "{again}");
    assert_eq!(again.operation(), Some("create topic"));
    let listed = a.list_topics(false).await.unwrap();
    assert_eq!(listed.iter().find(|t| t.name == "adm-t"), Some(&created), "{listed:?}");

    let route = a.topic_route("adm-t").await.unwrap();
    assert_eq!(route.topic, "adm-t");
    let ids: Vec<u32> = route.queues.iter().map(|q| q.queue_id).collect();
    assert_eq!(ids, [0, 1, 2, 3]);
    for q in &route.queues {
        assert_eq!((q.perm.as_str(), q.broker_id), ("RW", 0), "{q:?}");
        assert_eq!(q.address, tb.addr.to_string());
    }

    // Six read queues, two write queues: the route follows.
    let changed = TopicConfig { read_queues: 6, write_queues: 2, ..created.clone() };
    assert_eq!(a.update_topic(changed.clone()).await.unwrap(), changed);
    assert_eq!(a.topic("adm-t").await.unwrap(), changed);
    let perms: Vec<String> =
        a.topic_route("adm-t").await.unwrap().queues.into_iter().map(|q| q.perm).collect();
    assert_eq!(perms, ["RW", "RW", "R", "R", "R", "R"]);

    a.delete_topic("adm-t").await.unwrap();
    assert!(a.list_topics(true).await.unwrap().iter().all(|t| t.name != "adm-t"));
    assert_eq!(a.topic_route("adm-t").await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(a.topic("adm-t").await.unwrap_err().kind(), ErrorKind::NotFound);
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn topic_status_counts_what_was_sent() {
    let tb = TestBroker::start().await;
    let a = admin(&tb);
    a.create_topic(topic("adm-s", 2, "NORMAL")).await.unwrap();
    let empty = a.topic_status("adm-s").await.unwrap();
    assert!(empty.queues.iter().all(|q| q.max_offset == 0 && q.last_store_timestamp == 0));
    let p = producer(&tb, &["adm-s"]).await;
    for i in 0..10 {
        p.send(Message::new("adm-s", format!("m{i}"))).await.unwrap();
    }
    tb.wait_dispatched().await;
    let status = a.topic_status("adm-s").await.unwrap();
    assert_eq!(status.queues.iter().map(|q| q.queue_id).collect::<Vec<_>>(), [0, 1]);
    let held: u64 = status.queues.iter().map(|q| q.max_offset - q.min_offset).sum();
    assert_eq!(held, 10, "{status:?}");
    // Sends go round the queues: both got some, and say when.
    for q in &status.queues {
        assert!(q.max_offset > 0 && q.last_store_timestamp > 0, "{status:?}");
    }
    p.shutdown().await;
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_are_created_changed_listed_and_deleted() {
    let tb = TestBroker::start().await;
    let a = admin(&tb);
    let fifo = GroupOptions {
        fifo: Some(true),
        max_delivery_attempts: Some(5),
        consume_from: Some("first".into()),
    };
    let made = a.create_group("adm-g", fifo).await.unwrap();
    assert!(made.created);
    assert_eq!(
        (made.group.name.as_str(), made.group.fifo, made.group.max_delivery_attempts),
        ("adm-g", true, 5)
    );
    assert_eq!(made.group.consume_from, "first");
    // Again, changing one setting: updated, the others kept.
    let seven = GroupOptions { max_delivery_attempts: Some(7), ..GroupOptions::default() };
    let changed = a.create_group("adm-g", seven).await.unwrap();
    assert!(!changed.created);
    assert_eq!((changed.group.fifo, changed.group.max_delivery_attempts), (true, 7));
    let plain = a.create_group("adm-plain", GroupOptions::default()).await.unwrap().group;
    // RocketMQ's default: 16 retries after the first delivery.
    assert_eq!((plain.fifo, plain.max_delivery_attempts), (false, 17));

    let groups = a.list_groups().await.unwrap();
    assert_eq!(groups.iter().find(|g| g.name == "adm-g"), Some(&changed.group), "{groups:?}");
    assert!(groups.iter().any(|g| g.name == "adm-plain"), "{groups:?}");
    a.delete_group("adm-plain").await.unwrap();
    assert!(a.list_groups().await.unwrap().iter().all(|g| g.name != "adm-plain"));
    assert_eq!(a.delete_group("adm-plain").await.unwrap_err().kind(), ErrorKind::NotFound);
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn consumer_progress_lag_falls_as_a_consumer_acks() {
    let tb = TestBroker::start().await;
    let a = admin(&tb);
    a.create_topic(topic("adm-p", 2, "NORMAL")).await.unwrap();
    a.create_group("adm-pg", GroupOptions::default()).await.unwrap();
    let p = producer(&tb, &["adm-p"]).await;
    for i in 0..6 {
        p.send(Message::new("adm-p", format!("m{i}"))).await.unwrap();
    }
    tb.wait_dispatched().await;
    let before = a.consumer_progress("adm-pg", Some("adm-p")).await.unwrap();
    assert_eq!(before.group, "adm-pg");
    assert_eq!(before.total_lag, 6, "{before:?}");
    assert!(before.queues.iter().all(|q| q.consumer_offset == 0 && q.lag == q.broker_offset));

    let c = consumer(&tb, "adm-pg", "adm-p").await;
    let got = receive(&c, 6).await;
    assert_eq!(got.len(), 6);
    // Hold back the message at offset 0 of one queue: that queue's lag stays whole.
    let held = got.iter().find(|m| m.queue_offset == 0).unwrap();
    for m in got.iter().filter(|m| m.message_id != held.message_id) {
        c.ack(m).await.unwrap();
    }
    let mid = a.consumer_progress("adm-pg", None).await.unwrap();
    let held_queue = mid.queues.iter().find(|q| q.queue_id == held.queue_id as u32).unwrap();
    assert_eq!(held_queue.consumer_offset, 0, "{mid:?}");
    assert_eq!(mid.total_lag, held_queue.broker_offset, "{mid:?}");
    assert_eq!((mid.inflight, mid.dead_letters), (1, 0), "{mid:?}");
    c.ack(held).await.unwrap();
    let after = a.consumer_progress("adm-pg", Some("adm-p")).await.unwrap();
    assert_eq!((after.total_lag, after.inflight), (0, 0), "{after:?}");
    assert_eq!(after.queues.len(), 2, "{after:?}");
    for q in &after.queues {
        assert_eq!((q.consumer_offset, q.lag), (q.broker_offset, 0), "{after:?}");
    }
    p.shutdown().await;
    c.shutdown().await;
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_are_found_by_id_key_and_queue_offset() {
    let tb = TestBroker::start().await;
    let a = admin(&tb);
    let p = producer(&tb, &["adm-q"]).await;
    let mut receipts = Vec::new();
    for i in 0..5 {
        let m = Message::builder("adm-q")
            .body(format!("order {i}"))
            .tag("T")
            .keys([format!("order-{i}"), "batch".to_owned()])
            .property("n", i.to_string())
            .build();
        receipts.push(p.send(m).await.unwrap());
    }
    let check = |m: &StoredMessage, i: usize| {
        assert_eq!(m.message_id, receipts[i].message_id);
        assert_eq!(m.body, format!("order {i}").as_bytes());
        assert_eq!(m.tag.as_deref(), Some("T"));
        assert_eq!(m.keys, [format!("order-{i}"), "batch".to_owned()]);
        assert_eq!(m.properties.get("n"), Some(&i.to_string()));
        assert_eq!(m.topic, "adm-q");
        assert!(m.store_timestamp > 0);
    };

    // By key: the index is built in the background.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut batch = Vec::new();
    while batch.len() < 5 && Instant::now() < deadline {
        batch = a.query_message_by_key("adm-q", "batch", None, None, None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ids: HashSet<&str> = batch.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(ids, receipts.iter().map(|r| r.message_id.as_str()).collect());
    let three = a.query_message_by_key("adm-q", "order-3", None, None, None).await.unwrap();
    assert_eq!(three.len(), 1);
    check(&three[0], 3);
    let limited = a.query_message_by_key("adm-q", "batch", None, None, Some(2)).await.unwrap();
    assert_eq!(limited.len(), 2);
    let later = a.query_message_by_key("adm-q", "batch", Some(i64::MAX / 2), None, None).await;
    assert_eq!(later.unwrap(), []);
    assert_eq!(a.query_message_by_key("adm-q", "none", None, None, None).await.unwrap(), []);

    // By (topic, queue, offset), where a consumer got it from.
    let c = consumer(&tb, "adm-qg", "adm-q").await;
    let got = receive(&c, 5).await;
    let one = got.iter().find(|m| m.message_id == receipts[1].message_id).unwrap();
    let queue = u32::try_from(one.queue_id).unwrap();
    let offset = u64::try_from(one.queue_offset).unwrap();
    let at = a.query_message_by_offset("adm-q", queue, offset).await.unwrap();
    check(&at, 1);
    assert_eq!((at.queue_id, at.queue_offset), (queue, offset));
    let e = a.query_message_by_offset("adm-q", queue, 9999).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    // By the client's message id and by the broker's offset message id.
    check(&a.query_message_by_id(&receipts[2].message_id).await.unwrap()[0], 2);
    let four = batch.iter().find(|m| m.message_id == receipts[4].message_id).unwrap();
    let by_offset_id = a.query_message_by_id(&four.offset_msg_id).await.unwrap();
    assert_ne!(four.offset_msg_id, four.message_id);
    check(&by_offset_id[0], 4);
    assert_eq!(by_offset_id[0].commitlog_offset, four.commitlog_offset);
    let e = a.query_message_by_id("01NOSUCHMESSAGE").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    p.shutdown().await;
    c.shutdown().await;
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_offset_reset_by_time_makes_a_consumer_read_again() {
    let tb = TestBroker::start().await;
    let a = admin(&tb);
    a.create_topic(topic("adm-r", 2, "NORMAL")).await.unwrap();
    a.create_group("adm-rg", GroupOptions::default()).await.unwrap();
    let p = producer(&tb, &["adm-r"]).await;
    let mut sent = HashSet::new();
    for i in 0..4 {
        sent.insert(p.send(Message::new("adm-r", format!("m{i}"))).await.unwrap().message_id);
    }
    let c = consumer(&tb, "adm-rg", "adm-r").await;
    for m in receive(&c, 4).await {
        c.ack(&m).await.unwrap();
    }
    assert_eq!(a.consumer_progress("adm-rg", Some("adm-r")).await.unwrap().total_lag, 0);

    // To the end (a time after every message): nothing moves.
    let end = a.reset_offset("adm-rg", "adm-r", i64::MAX / 2).await.unwrap();
    assert!(end.iter().all(|q| q.old_offset == q.new_offset), "{end:?}");
    // To the beginning: every queue back to 0, and the messages come again.
    let reset = a.reset_offset("adm-rg", "adm-r", 0).await.unwrap();
    assert_eq!(reset.iter().map(|q| q.queue_id).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(reset.iter().map(|q| q.old_offset).sum::<u64>(), 4, "{reset:?}");
    assert!(reset.iter().all(|q| q.new_offset == 0), "{reset:?}");
    assert_eq!(a.consumer_progress("adm-rg", Some("adm-r")).await.unwrap().total_lag, 4);
    let again: HashSet<String> = receive(&c, 4).await.into_iter().map(|m| m.message_id).collect();
    assert_eq!(again, sent);
    p.shutdown().await;
    c.shutdown().await;
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_things_are_not_found_and_bad_input_is_a_bad_request() {
    let tb = TestBroker::start().await;
    let a = admin(&tb);
    a.create_topic(topic("adm-e", 1, "NORMAL")).await.unwrap();
    for (what, e) in [
        ("status", a.topic_status("adm-missing").await.unwrap_err()),
        ("update", a.update_topic(topic("adm-missing", 1, "NORMAL")).await.unwrap_err()),
        ("delete", a.delete_topic("adm-missing").await.unwrap_err()),
        ("progress", a.consumer_progress("adm-nobody", None).await.unwrap_err()),
        ("reset", a.reset_offset("adm-nobody", "adm-e", 0).await.unwrap_err()),
    ] {
        assert_eq!(e.kind(), ErrorKind::NotFound, "{what}: {e}");
        assert_eq!(e.endpoint(), Some(tb.addr.to_string().as_str()), "{what}: {e}");
    }
    let e = a.topic_status("adm-missing").await.unwrap_err();
    assert_eq!(e.operation(), Some("topic status"));
    assert!(e.message().contains("adm-missing"), "{e}");

    for (what, e) in [
        ("no queues", a.create_topic(topic("adm-b1", 0, "NORMAL")).await.unwrap_err()),
        ("bad type", a.create_topic(topic("adm-b2", 1, "WEIRD")).await.unwrap_err()),
        ("bad name", a.create_topic(topic("a b", 1, "NORMAL")).await.unwrap_err()),
        ("bad group", a.create_group("bad/group", GroupOptions::default()).await.unwrap_err()),
        (
            "bad start",
            a.create_group(
                "adm-g",
                GroupOptions { consume_from: Some("middle".into()), ..GroupOptions::default() },
            )
            .await
            .unwrap_err(),
        ),
    ] {
        assert_eq!(e.kind(), ErrorKind::BadRequest, "{what}: {e}");
    }
    // Nothing of it was made.
    let topics = a.list_topics(true).await.unwrap();
    assert!(topics.iter().all(|t| !t.name.starts_with("adm-b")), "{topics:?}");
    tb.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_namespace_folds_into_names_as_producers_see_them() {
    let tb = TestBroker::start().await;
    let shop = Admin::new(config(&tb).namespace("shop")).unwrap();
    let made = shop.create_topic(topic("orders", 1, "NORMAL")).await.unwrap();
    assert_eq!(made.name, "shop%orders");
    let p = orbitmq_core::client::Producer::builder(config(&tb).namespace("shop"))
        .topics(["orders"])
        .build()
        .unwrap();
    p.start().await.unwrap();
    p.send(Message::new("orders", "x")).await.unwrap();
    tb.wait_dispatched().await;
    // The namespaced admin and a plain one with the stored name see the same queue.
    let status = shop.topic_status("orders").await.unwrap();
    assert_eq!(status.topic, "shop%orders");
    assert_eq!(status.queues[0].max_offset, 1);
    assert_eq!(admin(&tb).topic_status("shop%orders").await.unwrap(), status);
    assert_eq!(admin(&tb).topic_status("orders").await.unwrap_err().kind(), ErrorKind::NotFound);
    p.shutdown().await;
    tb.stop().await;
}
