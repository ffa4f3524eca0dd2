//! A stored message as JSON: one shape for `orbitmq admin message … --json` and the console's
//! API, which differ only in how they carry the body (`B`, flattened into the object).

use std::collections::BTreeMap;

use orbitmq_core::client::StoredMessage;
use serde::Serialize;

/// A stored message's fields, and its body as `B`.
#[derive(Debug, Serialize)]
pub struct MessageJson<B> {
    pub topic: String,
    pub broker_name: String,
    pub queue_id: u32,
    pub queue_offset: u64,
    pub commitlog_offset: u64,
    pub message_id: String,
    pub offset_msg_id: String,
    pub tag: Option<String>,
    pub keys: Vec<String>,
    pub properties: BTreeMap<String, String>,
    pub born_timestamp: i64,
    pub store_timestamp: i64,
    pub born_host: String,
    pub store_host: String,
    pub reconsume_times: u32,
    pub size: u32,
    #[serde(flatten)]
    pub body: B,
}

impl<B> MessageJson<B> {
    /// `m`, its body made into `B` by `body`.
    pub fn new(m: StoredMessage, body: impl FnOnce(&[u8]) -> B) -> Self {
        MessageJson {
            body: body(&m.body),
            topic: m.topic,
            broker_name: m.broker_name,
            queue_id: m.queue_id,
            queue_offset: m.queue_offset,
            commitlog_offset: m.commitlog_offset,
            message_id: m.message_id,
            offset_msg_id: m.offset_msg_id,
            tag: m.tag,
            keys: m.keys,
            properties: m.properties.into_iter().collect(),
            born_timestamp: m.born_timestamp,
            store_timestamp: m.store_timestamp,
            born_host: m.born_host,
            store_host: m.store_host,
            reconsume_times: m.reconsume_times,
            size: m.size,
        }
    }
}
