//! The messages the store takes (`PutMessage`) and gives back (`StoredMessage`), and the
//! reserved property names the store itself reads (tags, keys, the client's message id).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use bytes::Bytes;

/// Property holding the message's tag (one per message).
pub const PROPERTY_TAGS: &str = "TAGS";
/// Property holding the message's keys, separated by [`KEY_SEPARATOR`].
pub const PROPERTY_KEYS: &str = "KEYS";
/// Property holding the client-generated message id.
pub const PROPERTY_UNIQ_KEY: &str = "UNIQ_KEY";
/// Separator between keys in [`PROPERTY_KEYS`] (RocketMQ's).
pub const KEY_SEPARATOR: char = ' ';

/// A message handed to the store for appending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutMessage {
    /// Topic (also the ConsumeQueue directory name).
    pub topic: String,
    /// Queue within the topic on this broker.
    pub queue_id: u32,
    /// Opaque flags kept for the broker (message type bits and the like).
    pub flags: u32,
    /// The payload; never parsed.
    pub body: Bytes,
    /// User and system properties; see the `PROPERTY_*` constants for the ones the store reads.
    pub properties: BTreeMap<String, String>,
    /// When the producer created the message, ms since the epoch.
    pub born_timestamp: i64,
    /// The producer's address.
    pub born_host: SocketAddr,
    /// How many times the message was redelivered before it was written (retry topics).
    pub reconsume_times: u32,
    /// CommitLog offset of the prepared (half) message, for transaction op records; else 0.
    pub prepared_offset: u64,
}

impl PutMessage {
    /// A message with no properties, born now on 0.0.0.0:0.
    pub fn new(topic: impl Into<String>, queue_id: u32, body: impl Into<Bytes>) -> Self {
        PutMessage {
            topic: topic.into(),
            queue_id,
            flags: 0,
            body: body.into(),
            properties: BTreeMap::new(),
            born_timestamp: now_millis(),
            born_host: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
            reconsume_times: 0,
            prepared_offset: 0,
        }
    }

    /// Sets the tag.
    #[must_use]
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.properties.insert(PROPERTY_TAGS.to_owned(), tag.into());
        self
    }

    /// Sets the keys.
    #[must_use]
    pub fn with_keys<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, keys: I) -> Self {
        let joined: Vec<String> = keys.into_iter().map(|k| k.as_ref().to_owned()).collect();
        self.properties.insert(PROPERTY_KEYS.to_owned(), joined.join(&KEY_SEPARATOR.to_string()));
        self
    }

    /// Sets the client-generated message id.
    #[must_use]
    pub fn with_message_id(mut self, id: impl Into<String>) -> Self {
        self.properties.insert(PROPERTY_UNIQ_KEY.to_owned(), id.into());
        self
    }

    /// Sets one property.
    #[must_use]
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }
}

/// A message read back from the CommitLog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Topic.
    pub topic: String,
    /// Queue id.
    pub queue_id: u32,
    /// Offset within the queue.
    pub queue_offset: u64,
    /// Offset of the record in the CommitLog.
    pub commitlog_offset: u64,
    /// Size of the record in the CommitLog, bytes.
    pub size: u32,
    /// Flags as given.
    pub flags: u32,
    /// Payload (zero-copy view into the segment).
    pub body: Bytes,
    /// Properties.
    pub properties: BTreeMap<String, String>,
    /// Producer's creation time, ms.
    pub born_timestamp: i64,
    /// When the broker stored it, ms.
    pub store_timestamp: i64,
    /// Producer's address.
    pub born_host: SocketAddr,
    /// The storing broker's address.
    pub store_host: SocketAddr,
    /// Redeliveries before it was written.
    pub reconsume_times: u32,
    /// Prepared (half) message offset, or 0.
    pub prepared_offset: u64,
}

impl StoredMessage {
    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.properties.get(PROPERTY_TAGS).map(String::as_str)
    }

    /// The keys (empty if none).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.properties
            .get(PROPERTY_KEYS)
            .map(String::as_str)
            .unwrap_or_default()
            .split(KEY_SEPARATOR)
            .filter(|k| !k.is_empty())
    }

    /// The client-generated message id, if any.
    pub fn message_id(&self) -> Option<&str> {
        self.properties.get(PROPERTY_UNIQ_KEY).map(String::as_str)
    }
}

/// The 64-bit hash of a tag stored in ConsumeQueue entries (FNV-1a). 0 means "no tag".
pub fn tag_hash(tag: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in tag.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // 0 is reserved for "no tag".
    if h == 0 { 1 } else { h }
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
