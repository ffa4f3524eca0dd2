use std::time::Duration;

use orbitmq_core::storage::{MessageStore, TagFilter, msg_id};

use crate::{fill, msg, settle, small_config};

#[tokio::test]
async fn finds_messages_by_key_and_message_id_within_time_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    // 1200 messages: index files (500 entries, 3 keys each) rotate several times.
    fill(&store, "idx", 4, 1200).await;
    fill(&store, "other", 1, 20).await;
    settle(&store).await;
    let all = (0, i64::MAX);

    let found = store.query_by_key("idx", "key-777", all.0, all.1, 10);
    assert_eq!(found.len(), 1);
    assert!(found[0].body.starts_with(b"body-777-"));
    // "group-3" is on 120 messages of idx (and 2 of "other", which must not show).
    let group = store.query_by_key("idx", "group-3", all.0, all.1, 1000);
    assert_eq!(group.len(), 120);
    assert!(group.iter().all(|m| m.topic == "idx" && m.keys().any(|k| k == "group-3")));
    assert_eq!(store.query_by_key("idx", "group-3", all.0, all.1, 7).len(), 7);
    assert!(store.query_by_key("idx", "nope", all.0, all.1, 10).is_empty());
    assert!(store.query_by_key("missing-topic", "key-1", all.0, all.1, 10).is_empty());

    // Message ids 0..20 are on both topics (as when a producer re-sends), 42 only on idx.
    let by_id = store.query_by_message_id(&format!("01ID{:030}", 42), all.0, all.1, 10);
    assert_eq!(by_id.len(), 1);
    assert_eq!(by_id[0].queue_offset, 42 / 4);
    let twice = store.query_by_message_id(&format!("01ID{:030}", 5), all.0, all.1, 10);
    let mut topics: Vec<&str> = twice.iter().map(|m| m.topic.as_str()).collect();
    topics.sort_unstable();
    assert_eq!(topics, ["idx", "other"]);
}

#[tokio::test]
async fn time_range_bounds_key_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    let first = store.put(msg("tr", 0, 1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let second = store.put(msg("tr", 0, 11)).await.unwrap();
    settle(&store).await;
    // key "group-1" is on both.
    let both = store.query_by_key("tr", "group-1", 0, i64::MAX, 10);
    assert_eq!(both.len(), 2);
    let late = store.query_by_key("tr", "group-1", second.store_timestamp, i64::MAX, 10);
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].commitlog_offset, second.commitlog_offset);
    let early = store.query_by_key("tr", "group-1", 0, first.store_timestamp, 10);
    assert_eq!(early.len(), 1);
    assert_eq!(early[0].commitlog_offset, first.commitlog_offset);
}

#[tokio::test]
async fn offset_msg_id_reads_the_message_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    fill(&store, "ids", 2, 30).await;
    let r = store.put(msg("ids", 1, 99)).await.unwrap();
    let id = store.offset_msg_id(r.commitlog_offset);
    assert_eq!(id.len(), 32);
    assert_eq!(msg_id::decode(&id).unwrap(), (store.config().store_host, r.commitlog_offset));
    let m = store.read_by_offset_msg_id(&id).unwrap();
    assert!(m.body.starts_with(b"body-99-"));
    assert_eq!(m.queue_offset, r.queue_offset);
    // Another broker's id, a wrong offset and garbage are errors, not panics.
    let other = msg_id::encode("10.9.9.9:10911".parse().unwrap(), r.commitlog_offset);
    assert!(store.read_by_offset_msg_id(&other).is_err());
    assert!(store.read_by_offset_msg_id(&store.offset_msg_id(r.commitlog_offset + 1)).is_err());
    assert!(store.read_by_offset_msg_id(&store.offset_msg_id(1 << 40)).is_err());
    assert!(store.read_by_offset_msg_id("zz").is_err());
}

#[tokio::test]
async fn finds_the_first_offset_at_or_after_a_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    fill(&store, "ts", 1, 10).await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mark = store.put(msg("ts", 0, 10)).await.unwrap();
    fill(&store, "ts", 1, 5).await;
    settle(&store).await;
    assert_eq!(store.offset_for_timestamp("ts", 0, mark.store_timestamp), 10);
    assert_eq!(store.offset_for_timestamp("ts", 0, 0), 0);
    assert_eq!(store.offset_for_timestamp("ts", 0, i64::MAX), 16);
    let r = store.get_messages("ts", 0, 10, 1, &TagFilter::All).unwrap();
    assert!(r.messages[0].store_timestamp >= mark.store_timestamp);
}
