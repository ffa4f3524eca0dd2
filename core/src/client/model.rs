//! The plain records of the SDK's API: what is sent ([`Message`]), what a send gives back
//! ([`SendReceipt`]), what is received ([`MessageView`]), and the small enums around them. Owned,
//! FFI-friendly types only (`String`, `Bytes`, integers, `Option`, `HashMap`): every binding
//! converts them field by field. Times are milliseconds since the Unix epoch.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::client::error::{Error, ErrorKind, Result};
use crate::protocol::time::{now_ms, timestamp, timestamp_ms};
use crate::protocol::v2;
use crate::protocol::validate;

/// A message to send: a body and a topic, plus an optional tag, keys, properties, message
/// group (FIFO) or delivery time (delay).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// The topic to send to.
    pub topic: String,
    /// The payload.
    pub body: Bytes,
    /// One tag, for consumers to filter on.
    pub tag: Option<String>,
    /// Keys to look the message up by.
    pub keys: Vec<String>,
    /// User properties.
    pub properties: HashMap<String, String>,
    /// FIFO: messages of one group are consumed one at a time, in send order.
    pub message_group: Option<String>,
    /// Delay: deliver at this time (ms since the epoch), not before.
    pub delivery_timestamp: Option<i64>,
}

impl Message {
    /// A message to `topic` with `body`.
    pub fn new(topic: impl Into<String>, body: impl Into<Bytes>) -> Message {
        Message { topic: topic.into(), body: body.into(), ..Message::default() }
    }

    /// Starts a message to `topic`.
    pub fn builder(topic: impl Into<String>) -> MessageBuilder {
        MessageBuilder { message: Message { topic: topic.into(), ..Message::default() } }
    }

    /// Checks the message against RocketMQ's rules, as a server would, with the body limit
    /// `max_body_size` (bytes).
    pub fn validate(&self, max_body_size: usize) -> Result<()> {
        validate::topic(&self.topic)?;
        if self.body.is_empty() {
            return Err(Error::new(ErrorKind::BadRequest, "message body cannot be empty"));
        }
        if self.body.len() > max_body_size {
            return Err(Error::new(
                ErrorKind::PayloadTooLarge,
                format!(
                    "message body of {} bytes exceeds the limit of {max_body_size} bytes",
                    self.body.len()
                ),
            ));
        }
        let tag = self.tag.as_deref().unwrap_or_default();
        validate::tag(tag)?;
        for key in &self.keys {
            validate::key(key)?;
        }
        validate::user_properties(&self.properties, tag, &self.keys)?;
        if let Some(group) = &self.message_group {
            if group.is_empty() {
                return Err(Error::bad_request("message group cannot be empty (use None)"));
            }
            validate::message_group(group)?;
            if self.delivery_timestamp.is_some() {
                return Err(Error::bad_request(
                    "a message cannot have both a message group (FIFO) and a delivery time (delay)",
                ));
            }
        }
        Ok(())
    }

    /// The RocketMQ message type the message's fields make it.
    #[must_use]
    pub fn message_type(&self) -> MessageType {
        if self.delivery_timestamp.is_some() {
            MessageType::Delay
        } else if self.message_group.is_some() {
            MessageType::Fifo
        } else {
            MessageType::Normal
        }
    }

    /// The wire message for queue `queue_id`, its topic in `namespace`.
    pub(crate) fn to_wire(
        &self,
        namespace: &str,
        w: &WireMessage<'_>,
        queue_id: i32,
    ) -> v2::Message {
        let sys = v2::SystemProperties {
            tag: self.tag.clone(),
            keys: self.keys.clone(),
            message_id: w.id.clone(),
            body_digest: None,
            body_encoding: v2::Encoding::Identity as i32,
            message_type: w.kind.to_wire() as i32,
            born_timestamp: Some(timestamp(w.born)),
            born_host: w.born_host.to_owned(),
            queue_id,
            delivery_timestamp: self.delivery_timestamp.map(timestamp),
            message_group: self.message_group.clone(),
            ..Default::default()
        };
        v2::Message {
            topic: Some(resource(namespace, &self.topic)),
            user_properties: self.properties.clone(),
            system_properties: Some(sys),
            body: self.body.clone(),
        }
    }
}

/// What the producer adds to a message on the wire.
pub(crate) struct WireMessage<'a> {
    /// The message id (fixed across retries).
    pub(crate) id: String,
    pub(crate) kind: MessageType,
    pub(crate) born_host: &'a str,
    /// Born timestamp, ms.
    pub(crate) born: i64,
}

/// Builds a [`Message`].
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    message: Message,
}

impl MessageBuilder {
    /// The payload.
    #[must_use]
    pub fn body(mut self, body: impl Into<Bytes>) -> MessageBuilder {
        self.message.body = body.into();
        self
    }

    /// The tag.
    #[must_use]
    pub fn tag(mut self, tag: impl Into<String>) -> MessageBuilder {
        self.message.tag = Some(tag.into());
        self
    }

    /// The keys.
    #[must_use]
    pub fn keys<I: IntoIterator<Item = S>, S: Into<String>>(mut self, keys: I) -> MessageBuilder {
        self.message.keys = keys.into_iter().map(Into::into).collect();
        self
    }

    /// One user property.
    #[must_use]
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> MessageBuilder {
        self.message.properties.insert(key.into(), value.into());
        self
    }

    /// The message group (FIFO).
    #[must_use]
    pub fn message_group(mut self, group: impl Into<String>) -> MessageBuilder {
        self.message.message_group = Some(group.into());
        self
    }

    /// Deliver at `ms` since the epoch.
    #[must_use]
    pub fn delivery_timestamp(mut self, ms: i64) -> MessageBuilder {
        self.message.delivery_timestamp = Some(ms);
        self
    }

    /// Deliver `delay` from now.
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> MessageBuilder {
        let delay = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        self.message.delivery_timestamp = Some(now_ms().saturating_add(delay));
        self
    }

    /// The message.
    #[must_use]
    pub fn build(self) -> Message {
        self.message
    }
}

/// RocketMQ's message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Plain.
    Normal,
    /// Ordered within its message group.
    Fifo,
    /// Delivered at a given time.
    Delay,
    /// Half of a transaction until committed.
    Transaction,
}

impl MessageType {
    pub(crate) fn to_wire(self) -> v2::MessageType {
        match self {
            MessageType::Normal => v2::MessageType::Normal,
            MessageType::Fifo => v2::MessageType::Fifo,
            MessageType::Delay => v2::MessageType::Delay,
            MessageType::Transaction => v2::MessageType::Transaction,
        }
    }
}

/// What a successful send gives back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReceipt {
    /// The message id (the client's unique key), for look-ups and acks.
    pub message_id: String,
    /// The broker's id of the stored copy (store host + CommitLog offset), when the server
    /// reports it (OrbitMQ does; Apache's proxy does not).
    pub offset_msg_id: Option<String>,
    /// The topic, without the namespace.
    pub topic: String,
    /// The queue it was stored in, when the server reports it.
    pub queue_id: Option<i32>,
    /// Its offset in that queue.
    pub queue_offset: i64,
    /// The transaction id, for transactional messages.
    pub transaction_id: Option<String>,
    /// The handle to recall a delay message with, when the server gives one.
    pub recall_handle: Option<String>,
    /// The endpoint that took it.
    pub endpoint: String,
}

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageView {
    /// The message id.
    pub message_id: String,
    /// The broker's id of the stored copy, when the server reports it.
    pub offset_msg_id: Option<String>,
    /// The topic, without the namespace.
    pub topic: String,
    /// The tag.
    pub tag: Option<String>,
    /// The keys.
    pub keys: Vec<String>,
    /// User properties.
    pub properties: HashMap<String, String>,
    /// The payload.
    pub body: Bytes,
    /// The queue it came from.
    pub queue_id: i32,
    /// Its offset in that queue.
    pub queue_offset: i64,
    /// When the producer made it, ms since the epoch.
    pub born_timestamp: i64,
    /// When the broker stored it, ms since the epoch.
    pub store_timestamp: i64,
    /// For delay messages: when it was due.
    pub delivery_timestamp: Option<i64>,
    /// 1 on the first delivery, 2 on the first redelivery, …
    pub delivery_attempt: u32,
    /// Its message group (FIFO).
    pub message_group: Option<String>,
    /// The producer's host.
    pub born_host: String,
    /// Acknowledges this delivery (simple and push consumers; empty for pull).
    pub receipt_handle: String,
    /// The endpoint it came from (acks go back there); shared by the messages of one answer.
    pub(crate) endpoint: Arc<str>,
}

impl MessageView {
    /// A view of a wire message received from `endpoint`, the namespace taken off the topic.
    pub(crate) fn from_wire(m: v2::Message, endpoint: &Arc<str>) -> Result<MessageView> {
        let sys = m.system_properties.unwrap_or_default();
        let body = check_digest(m.body, sys.body_digest.as_ref(), &sys.message_id)?;
        Ok(MessageView {
            message_id: sys.message_id,
            offset_msg_id: None,
            topic: m.topic.map(|t| t.name).unwrap_or_default(),
            tag: sys.tag,
            keys: sys.keys,
            properties: m.user_properties,
            body,
            queue_id: sys.queue_id,
            queue_offset: sys.queue_offset.unwrap_or(-1),
            born_timestamp: sys.born_timestamp.as_ref().map_or(0, timestamp_ms),
            store_timestamp: sys.store_timestamp.as_ref().map_or(0, timestamp_ms),
            delivery_timestamp: sys.delivery_timestamp.as_ref().map(timestamp_ms),
            delivery_attempt: u32::try_from(sys.delivery_attempt.unwrap_or(1)).unwrap_or(1),
            message_group: sys.message_group,
            born_host: sys.born_host,
            receipt_handle: sys.receipt_handle.unwrap_or_default(),
            endpoint: Arc::clone(endpoint),
        })
    }

    /// The endpoint the message came from.
    #[must_use]
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

/// Checks the body against the digest the server sent (CRC32 or MD5; others are not
/// checked). A body that does not match was damaged on the way: an error, never a message.
fn check_digest(body: Bytes, digest: Option<&v2::Digest>, id: &str) -> Result<Bytes> {
    let Some(d) = digest else { return Ok(body) };
    let ok = match v2::DigestType::try_from(d.r#type) {
        Ok(v2::DigestType::Crc32) => {
            let crc = crc32fast::hash(&body);
            // Each server formats it its own way: upper hex, padded or not, or decimal.
            u32::from_str_radix(&d.checksum, 16).is_ok_and(|v| v == crc)
                || d.checksum.parse::<u32>().is_ok_and(|v| v == crc)
        }
        Ok(v2::DigestType::Md5) => {
            use md5::Digest as _;
            let sum = md5::Md5::digest(&body);
            crate::client::rpc::hex_upper(&sum).eq_ignore_ascii_case(&d.checksum)
        }
        _ => true,
    };
    if ok {
        Ok(body)
    } else {
        Err(Error::new(
            ErrorKind::Internal,
            format!("message {id}: the body does not match its digest {:?}", d.checksum),
        ))
    }
}

/// Which messages of a topic a consumer gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterExpression {
    /// Tag expression: `*` for all, or `TagA || TagB`.
    Tag(String),
    /// SQL92 over properties (servers that support it).
    Sql(String),
}

impl FilterExpression {
    /// Every message.
    #[must_use]
    pub fn all() -> FilterExpression {
        FilterExpression::Tag("*".to_owned())
    }

    /// Messages with one of `tags`.
    pub fn tags<I: IntoIterator<Item = S>, S: AsRef<str>>(tags: I) -> FilterExpression {
        let tags: Vec<String> = tags.into_iter().map(|t| t.as_ref().to_owned()).collect();
        FilterExpression::Tag(if tags.is_empty() { "*".to_owned() } else { tags.join(" || ") })
    }

    /// Whether a message tagged `tag` passes (SQL expressions are the server's to evaluate:
    /// they pass here).
    #[must_use]
    pub fn matches_tag(&self, tag: Option<&str>) -> bool {
        let FilterExpression::Tag(expr) = self else { return true };
        let expr = expr.trim();
        if expr.is_empty() || expr == "*" {
            return true;
        }
        tag.is_some_and(|tag| expr.split("||").map(str::trim).any(|t| t == tag))
    }

    pub(crate) fn to_wire(&self) -> v2::FilterExpression {
        match self {
            FilterExpression::Tag(e) => {
                v2::FilterExpression { r#type: v2::FilterType::Tag as i32, expression: e.clone() }
            }
            FilterExpression::Sql(e) => {
                v2::FilterExpression { r#type: v2::FilterType::Sql as i32, expression: e.clone() }
            }
        }
    }
}

impl Default for FilterExpression {
    fn default() -> Self {
        FilterExpression::all()
    }
}

/// What a push consumer's listener says about a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsumeResult {
    /// Consumed: acknowledge it.
    Success,
    /// Not consumed: redeliver it after the group's back-off (to the DLQ after max attempts).
    Failure,
}

/// How a consumer group shares messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ConsumerModel {
    /// Each message to one member of the group.
    #[default]
    Clustering,
    /// Each message to every member.
    Broadcasting,
}

/// One message queue of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageQueue {
    /// The topic, without the namespace.
    pub topic: String,
    /// The broker that holds it.
    pub broker: String,
    /// The queue id on that broker.
    pub queue_id: i32,
}

/// A named resource in `namespace`.
pub(crate) fn resource(namespace: &str, name: &str) -> v2::Resource {
    v2::Resource { resource_namespace: namespace.to_owned(), name: name.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_fails_as_the_server_would_and_names_the_field() {
        let ok = Message::builder("T").body("x").tag("A").keys(["k"]).build();
        assert!(ok.validate(4 << 20).is_ok());
        let kind = |m: Message| m.validate(16).unwrap_err().kind();
        assert_eq!(kind(Message::new("a b", "x")), ErrorKind::BadRequest);
        assert_eq!(kind(Message::new("T", "")), ErrorKind::BadRequest);
        assert_eq!(kind(Message::new("T", vec![0u8; 17])), ErrorKind::PayloadTooLarge);
        assert_eq!(kind(Message::builder("T").body("x").tag("a|b").build()), ErrorKind::BadRequest);
        let reserved = Message::builder("T").body("x").property("UNIQ_KEY", "v").build();
        let e = reserved.validate(16).unwrap_err();
        assert_eq!(e.status_code(), Some(v2::Code::IllegalMessagePropertyKey as i32));
        let both = Message::builder("T").body("x").message_group("g").delivery_timestamp(1).build();
        assert!(both.validate(16).unwrap_err().message().contains("both"));
    }

    #[test]
    fn the_type_follows_the_fields() {
        assert_eq!(Message::new("T", "x").message_type(), MessageType::Normal);
        let fifo = Message::builder("T").body("x").message_group("g").build();
        assert_eq!(fifo.message_type(), MessageType::Fifo);
        let delay = Message::builder("T").body("x").delay(Duration::from_secs(5)).build();
        assert_eq!(delay.message_type(), MessageType::Delay);
        assert!(delay.delivery_timestamp.unwrap() >= now_ms() + 4_000);
    }

    #[test]
    fn a_body_that_does_not_match_its_digest_is_refused() {
        let body = Bytes::from_static(b"hello");
        let crc = format!("{:X}", crc32fast::hash(b"hello"));
        let d = |t: v2::DigestType, c: &str| v2::Digest { r#type: t as i32, checksum: c.into() };
        assert!(check_digest(body.clone(), Some(&d(v2::DigestType::Crc32, &crc)), "m").is_ok());
        let dec = crc32fast::hash(b"hello").to_string();
        assert!(check_digest(body.clone(), Some(&d(v2::DigestType::Crc32, &dec)), "m").is_ok());
        let md5 = "5D41402ABC4B2A76B9719D911017C592";
        assert!(check_digest(body.clone(), Some(&d(v2::DigestType::Md5, md5)), "m").is_ok());
        let e = check_digest(body, Some(&d(v2::DigestType::Md5, "00")), "m").unwrap_err();
        assert!(e.message().contains("digest"), "{e}");
    }

    #[test]
    fn tag_filters() {
        assert_eq!(FilterExpression::tags(["A", "B"]), FilterExpression::Tag("A || B".into()));
        let ab = FilterExpression::tags(["A", "B"]);
        assert!(ab.matches_tag(Some("B")) && !ab.matches_tag(Some("C")) && !ab.matches_tag(None));
        assert!(FilterExpression::all().matches_tag(None));
        assert_eq!(FilterExpression::tags(Vec::<String>::new()), FilterExpression::all());
    }
}
