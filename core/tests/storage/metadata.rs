use orbitmq_core::storage::{GroupConfig, MessageStore, TopicConfig};

use crate::{fill, small_config};

#[tokio::test]
async fn offsets_and_metadata_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = MessageStore::open(small_config(dir.path())).unwrap();
        fill(&store, "m", 2, 10).await;
        store.consumer_offsets().commit("g1", "m", 0, 4);
        store.consumer_offsets().commit("g1", "m", 1, 5);
        store.consumer_offsets().commit("g2", "m", 0, 1);
        let topic =
            TopicConfig { read_queues: 8, write_queues: 4, perm: 6, message_type: "FIFO".into() };
        store.topics().put("m", topic);
        store.groups().put(
            "g1",
            GroupConfig { max_delivery_attempts: 16, fifo: true, ..GroupConfig::default() },
        );
        store.close().unwrap();
    }
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    assert_eq!(store.consumer_offsets().get("g1", "m", 0), Some(4));
    assert_eq!(store.consumer_offsets().get("g1", "m", 1), Some(5));
    assert_eq!(store.consumer_offsets().get("g2", "m", 0), Some(1));
    assert_eq!(store.consumer_offsets().get("g2", "m", 1), None);
    assert_eq!(store.topics().get("m").unwrap().read_queues, 8);
    assert_eq!(store.topics().get("m").unwrap().message_type, "FIFO");
    assert!(store.groups().get("g1").unwrap().fifo);
    assert_eq!(store.max_offset("m", 0), 5);
}

#[tokio::test]
async fn offsets_are_saved_by_the_flusher_without_a_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    store.consumer_offsets().commit("g", "t", 3, 77);
    let path = dir.path().join("config/consumer_offsets.json");
    for _ in 0..200 {
        if std::fs::read_to_string(&path).is_ok_and(|s| s.contains("77")) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("offsets were not saved by the background flush");
}

#[tokio::test]
async fn a_half_written_temp_file_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = MessageStore::open(small_config(dir.path())).unwrap();
        store.consumer_offsets().commit("g", "t", 0, 9);
        store.close().unwrap();
    }
    // A crash in the middle of the next save leaves a partial temp file beside the real one.
    std::fs::write(dir.path().join("config/consumer_offsets.json.tmp"), b"{\"g@t\": {\"0\": 12")
        .unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    assert_eq!(store.consumer_offsets().get("g", "t", 0), Some(9));
    store.consumer_offsets().commit("g", "t", 0, 10);
    store.close().unwrap();
    let store = MessageStore::open(small_config(dir.path())).unwrap();
    assert_eq!(store.consumer_offsets().get("g", "t", 0), Some(10));
}

#[tokio::test]
async fn a_corrupt_metadata_file_is_a_clear_error_not_a_silent_reset() {
    let dir = tempfile::tempdir().unwrap();
    MessageStore::open(small_config(dir.path())).unwrap().close().unwrap();
    std::fs::write(dir.path().join("config/topics.json"), b"{not json").unwrap();
    let err = MessageStore::open(small_config(dir.path())).unwrap_err().to_string();
    assert!(err.contains("topics.json") && err.contains("JSON"), "{err}");
}
