//! Conversions between the wire messages of `apache.rocketmq.v2` and the store's messages:
//! a sent `Message` becomes a `PutMessage` (system properties kept as RocketMQ's property
//! names), and a `StoredMessage` becomes the `Message` a consumer receives.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use md5::{Digest as _, Md5};

use crate::broker::dead_letter::{PROPERTY_DLQ_ORIGIN_MESSAGE_ID, PROPERTY_DLQ_ORIGIN_TOPIC};
use crate::protocol::time::{duration, timestamp, timestamp_ms};
use crate::protocol::v2::{self, DigestType, Encoding, MessageType};
use crate::protocol::validate::RESERVED_PROPERTIES;
use crate::storage::message::{KEY_SEPARATOR, PROPERTY_KEYS, PROPERTY_TAGS, PROPERTY_UNIQ_KEY};
use crate::storage::{PutMessage, StoredMessage};

/// The message group (FIFO sharding key).
pub const PROPERTY_SHARDING_KEY: &str = "__SHARDINGKEY";
/// The producer's host as it reported it.
pub const PROPERTY_BORN_HOST: &str = "__BORNHOST";
/// Trace context.
pub const PROPERTY_TRACE_CONTEXT: &str = "TRACE_CONTEXT";
/// Delivery time of a delay message, ms.
pub const PROPERTY_TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";
/// Marks a transaction half message.
pub const PROPERTY_TRANSACTION_PREPARED: &str = "TRAN_MSG";

/// Record flag: the body is gzip-compressed (RocketMQ's `COMPRESSED_FLAG`).
pub const FLAG_COMPRESSED: u32 = 0x1;

/// Builds what the store appends from a validated wire message.
pub fn to_put(msg: &v2::Message, queue_id: u32, remote: Option<SocketAddr>) -> PutMessage {
    let default = v2::SystemProperties::default();
    let sys = msg.system_properties.as_ref().unwrap_or(&default);
    let topic = msg.topic.as_ref().map(|t| t.name.clone()).unwrap_or_default();
    let mut put = PutMessage::new(topic, queue_id, msg.body.clone());
    put.properties.extend(msg.user_properties.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(tag) = sys.tag.as_ref().filter(|t| !t.is_empty()) {
        put.properties.insert(PROPERTY_TAGS.to_owned(), tag.clone());
    }
    let keys: Vec<&str> = sys.keys.iter().map(String::as_str).filter(|k| !k.is_empty()).collect();
    if !keys.is_empty() {
        put.properties.insert(PROPERTY_KEYS.to_owned(), keys.join(&KEY_SEPARATOR.to_string()));
    }
    put.properties.insert(PROPERTY_UNIQ_KEY.to_owned(), sys.message_id.clone());
    if let Some(group) = sys.message_group.as_ref().filter(|g| !g.is_empty()) {
        put.properties.insert(PROPERTY_SHARDING_KEY.to_owned(), group.clone());
    }
    if let Some(at) = sys.delivery_timestamp.as_ref() {
        put.properties.insert(PROPERTY_TIMER_DELIVER_MS.to_owned(), timestamp_ms(at).to_string());
    }
    if sys.message_type == MessageType::Transaction as i32 {
        put.properties.insert(PROPERTY_TRANSACTION_PREPARED.to_owned(), "true".to_owned());
    }
    if let Some(trace) = sys.trace_context.as_ref().filter(|t| !t.is_empty()) {
        put.properties.insert(PROPERTY_TRACE_CONTEXT.to_owned(), trace.clone());
    }
    if !sys.born_host.is_empty() {
        put.properties.insert(PROPERTY_BORN_HOST.to_owned(), sys.born_host.clone());
    }
    if let Some(born) = sys.born_timestamp.as_ref() {
        put.born_timestamp = timestamp_ms(born);
    }
    put.born_host = sys
        .born_host
        .parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, 0))
        .or(remote)
        .unwrap_or(put.born_host);
    if sys.body_encoding == Encoding::Gzip as i32 {
        put.flags |= FLAG_COMPRESSED;
    }
    put
}

/// The message type a stored message was sent as.
pub fn message_type(m: &StoredMessage) -> MessageType {
    if m.properties.contains_key(PROPERTY_TRANSACTION_PREPARED) {
        MessageType::Transaction
    } else if m.properties.contains_key(PROPERTY_TIMER_DELIVER_MS) {
        MessageType::Delay
    } else if m.properties.contains_key(PROPERTY_SHARDING_KEY) {
        MessageType::Fifo
    } else {
        MessageType::Normal
    }
}

/// The body digest a consumer is sent, in the form its client checks.
///
/// Every official RocketMQ 5 client recomputes the digest of each message it receives and marks
/// a mismatch `corrupted` (push consumers then fail it). Apache's proxy sends MD5, which costs
/// ~1.5 µs per KiB on every delivery; CRC32 costs a few ns. All the clients check CRC32, but
/// each compares it to a string of its own format, so CRC32 goes to the clients whose format
/// is known (from `x-mq-language`) and MD5 to any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyDigest {
    /// MD5, upper-case hex (what the proxy sends; every client checks it).
    Md5,
    /// CRC32 (IEEE) in upper-case hex without leading zeros: Java (`Long.toHexString`), Go
    /// (`FormatInt(.., 16)`) and C# (`ToString("X")`).
    Crc32Hex,
    /// CRC32 in upper-case hex, 8 digits: Python (`format(crc, "08X")`), and OrbitMQ's clients.
    Crc32Hex8,
    /// CRC32 in decimal: Node.js (`${crc32(bytes)}`).
    Crc32Decimal,
}

impl BodyDigest {
    /// The digest a client of this `x-mq-language` checks cheapest.
    pub fn for_language(language: &str) -> BodyDigest {
        match language {
            "JAVA" | "GOLANG" | "DOT_NET" => BodyDigest::Crc32Hex,
            "PYTHON" | "RUST" => BodyDigest::Crc32Hex8,
            // The Node.js client sends `HTTP`.
            "HTTP" => BodyDigest::Crc32Decimal,
            _ => BodyDigest::Md5,
        }
    }

    /// The digest of `body`.
    pub fn of(self, body: &[u8]) -> v2::Digest {
        let (kind, checksum) = match self {
            BodyDigest::Md5 => {
                let digest = Md5::digest(body);
                let hex = digest.iter().fold(String::with_capacity(32), |mut s, b| {
                    let _ = write!(s, "{b:02X}");
                    s
                });
                (DigestType::Md5, hex)
            }
            BodyDigest::Crc32Hex => (DigestType::Crc32, format!("{:X}", crc32fast::hash(body))),
            BodyDigest::Crc32Hex8 => (DigestType::Crc32, format!("{:08X}", crc32fast::hash(body))),
            BodyDigest::Crc32Decimal => (DigestType::Crc32, crc32fast::hash(body).to_string()),
        };
        v2::Digest { r#type: kind as i32, checksum }
    }
}

/// What a consumer receives for a stored message.
pub struct Delivered<'a> {
    /// The stored message.
    pub message: &'a StoredMessage,
    /// Receipt handle, if handed out by pop.
    pub receipt_handle: Option<String>,
    /// 1 on first delivery.
    pub delivery_attempt: u32,
    /// Invisible time, ms, if handed out by pop.
    pub invisible_ms: Option<i64>,
    /// How the body digest is computed and written.
    pub digest: BodyDigest,
}

/// Builds the wire message for a delivery, system properties filled in as the proxy does.
pub fn to_wire(d: &Delivered<'_>) -> v2::Message {
    let m = d.message;
    let user_properties: HashMap<String, String> = m
        .properties
        .iter()
        .filter(|(k, _)| !RESERVED_PROPERTIES.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let born_host = m
        .properties
        .get(PROPERTY_BORN_HOST)
        .cloned()
        .unwrap_or_else(|| m.born_host.ip().to_string());
    let system_properties = v2::SystemProperties {
        tag: m.tag().map(str::to_owned),
        keys: m.keys().map(str::to_owned).collect(),
        message_id: m.message_id().unwrap_or_default().to_owned(),
        body_digest: Some(d.digest.of(&m.body)),
        body_encoding: if m.flags & FLAG_COMPRESSED != 0 {
            Encoding::Gzip
        } else {
            Encoding::Identity
        } as i32,
        message_type: message_type(m) as i32,
        born_timestamp: Some(timestamp(m.born_timestamp)),
        born_host,
        store_timestamp: Some(timestamp(m.store_timestamp)),
        store_host: m.store_host.to_string(),
        delivery_timestamp: m
            .properties
            .get(PROPERTY_TIMER_DELIVER_MS)
            .and_then(|v| v.parse().ok())
            .map(timestamp),
        receipt_handle: d.receipt_handle.clone(),
        queue_id: m.queue_id as i32,
        queue_offset: Some(m.queue_offset as i64),
        invisible_duration: d.invisible_ms.map(duration),
        delivery_attempt: Some(d.delivery_attempt as i32),
        message_group: m.properties.get(PROPERTY_SHARDING_KEY).cloned(),
        trace_context: m.properties.get(PROPERTY_TRACE_CONTEXT).cloned(),
        dead_letter_queue: m.properties.get(PROPERTY_DLQ_ORIGIN_TOPIC).map(|origin| {
            v2::DeadLetterQueue {
                topic: crate::broker::namespace::unwrap(origin).1,
                message_id: m
                    .properties
                    .get(PROPERTY_DLQ_ORIGIN_MESSAGE_ID)
                    .cloned()
                    .unwrap_or_default(),
            }
        }),
        ..Default::default()
    };
    v2::Message {
        topic: Some(crate::broker::namespace::resource(&m.topic)),
        user_properties,
        system_properties: Some(system_properties),
        body: m.body.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checksum(d: BodyDigest, body: &[u8]) -> (i32, String) {
        let v2::Digest { r#type, checksum } = d.of(body);
        (r#type, checksum)
    }

    /// The strings each official client computes itself (see `BodyDigest`'s variants):
    /// "body 32" has a CRC32 below 0x10000000, where padded and unpadded hex differ.
    #[test]
    fn digests_in_each_clients_format() {
        let (crc, md5) = (DigestType::Crc32 as i32, DigestType::Md5 as i32);
        let lang = BodyDigest::for_language;
        assert_eq!(checksum(lang("JAVA"), b"body 32"), (crc, "69373F6".to_owned()));
        assert_eq!(checksum(lang("GOLANG"), b"123456789"), (crc, "CBF43926".to_owned()));
        assert_eq!(checksum(lang("PYTHON"), b"body 32"), (crc, "069373F6".to_owned()));
        assert_eq!(checksum(lang("HTTP"), b"body 32"), (crc, "110326774".to_owned()));
        assert_eq!(checksum(lang("HTTP"), b"123456789"), (crc, "3421780262".to_owned()));
        for unknown in ["", "CPP", "PHP"] {
            assert_eq!(
                checksum(lang(unknown), b"123456789"),
                (md5, "25F9E794323B453885F5181F1B624D0B".to_owned())
            );
        }
    }
}
