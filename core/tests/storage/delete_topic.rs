//! `MessageStore::delete_topic`: the topic's ConsumeQueues go from memory and disk, the others
//! stay, and the topic starts again at offset 0 if it is written to again.

use orbitmq_core::storage::{MessageStore, TagFilter};

use crate::{fill, msg, settle, small_config};

#[tokio::test]
async fn deleting_a_topic_removes_its_queues_and_a_new_message_starts_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    // 150 messages over 2 queues: two ConsumeQueue files per queue (100 entries each).
    fill(&store, "gone", 2, 300).await;
    fill(&store, "kept", 2, 10).await;
    settle(&store).await;
    // Written behind: the checkpoint puts every queue's entries in its files.
    store.checkpoint().unwrap();
    let cq = dir.path().join("consumequeue");
    assert!(cq.join("gone/0").is_dir());
    assert_eq!(store.max_offset("gone", 0), 150);

    assert_eq!(store.delete_topic("gone").await.unwrap(), 2);
    assert!(!cq.join("gone").exists());
    assert!(store.queue("gone", 0).is_none());
    assert_eq!(store.max_offset("gone", 1), 0);
    assert!(store.queues().unwrap().iter().all(|(t, _)| t == "kept"));
    assert_eq!(store.max_offset("kept", 0), 5);
    assert_eq!(store.get_messages("kept", 1, 0, 32, &TagFilter::All).unwrap().messages.len(), 5);
    // Nothing to delete: 0 queues, no error.
    assert_eq!(store.delete_topic("gone").await.unwrap(), 0);

    // Written again, the topic is a new one: its first message is at offset 0 and readable.
    let put = store.put(msg("gone", 0, 7)).await.unwrap();
    assert_eq!(put.queue_offset, 0);
    settle(&store).await;
    let got = store.get_messages("gone", 0, 0, 32, &TagFilter::All).unwrap();
    assert_eq!(got.messages.len(), 1);
    assert_eq!(got.messages[0].commitlog_offset, put.commitlog_offset);

    // After a restart the old entries do not come back.
    store.close().unwrap();
    drop(store);
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    assert_eq!(store.max_offset("gone", 0), 1);
    assert_eq!(store.max_offset("gone", 1), 0);
    assert_eq!(store.max_offset("kept", 0), 5);
}
