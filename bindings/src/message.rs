//! Messages, the views consumers get, send receipts and the small enums around them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use orbitmq_core::client as core;

/// A message to send (`Message::builder` of the SDK).
// The SDK's field names, in every language.
#[allow(clippy::struct_field_names)]
#[derive(uniffi::Record)]
pub struct Message {
    pub topic: String,
    pub body: Vec<u8>,
    /// One tag consumers can filter on.
    #[uniffi(default = None)]
    pub tag: Option<String>,
    /// Keys to look the message up by.
    #[uniffi(default = [])]
    pub keys: Vec<String>,
    /// User properties.
    #[uniffi(default)]
    pub properties: HashMap<String, String>,
    /// The FIFO group: messages of one group are delivered in order.
    #[uniffi(default = None)]
    pub message_group: Option<String>,
    /// Deliver at this time (milliseconds since the Unix epoch): a delay message.
    #[uniffi(default = None)]
    pub delivery_timestamp: Option<i64>,
    /// Deliver after this delay from now: a delay message.
    #[uniffi(default = None)]
    pub delay: Option<Duration>,
}

impl From<Message> for core::Message {
    fn from(m: Message) -> core::Message {
        let mut b = core::Message::builder(m.topic).body(m.body).keys(m.keys);
        for (k, v) in m.properties {
            b = b.property(k, v);
        }
        if let Some(tag) = m.tag {
            b = b.tag(tag);
        }
        if let Some(group) = m.message_group {
            b = b.message_group(group);
        }
        if let Some(at) = m.delivery_timestamp {
            b = b.delivery_timestamp(at);
        }
        if let Some(delay) = m.delay {
            b = b.delay(delay);
        }
        b.build()
    }
}

/// What the server answered to a send.
#[derive(uniffi::Record)]
pub struct SendReceipt {
    pub message_id: String,
    pub offset_msg_id: Option<String>,
    pub topic: String,
    pub queue_id: Option<i32>,
    pub queue_offset: i64,
    pub transaction_id: Option<String>,
    /// Give it to `Producer.recall` to cancel a delay message.
    pub recall_handle: Option<String>,
    pub endpoint: String,
}

impl From<core::SendReceipt> for SendReceipt {
    fn from(r: core::SendReceipt) -> SendReceipt {
        SendReceipt {
            message_id: r.message_id,
            offset_msg_id: r.offset_msg_id,
            topic: r.topic,
            queue_id: r.queue_id,
            queue_offset: r.queue_offset,
            transaction_id: r.transaction_id,
            recall_handle: r.recall_handle,
            endpoint: r.endpoint,
        }
    }
}

/// A received message.
#[derive(uniffi::Record)]
pub struct MessageView {
    pub message_id: String,
    pub offset_msg_id: Option<String>,
    pub topic: String,
    pub tag: Option<String>,
    pub keys: Vec<String>,
    pub properties: HashMap<String, String>,
    pub body: Vec<u8>,
    pub queue_id: i32,
    pub queue_offset: i64,
    pub born_timestamp: i64,
    pub store_timestamp: i64,
    pub delivery_timestamp: Option<i64>,
    /// 1 on the first delivery.
    pub delivery_attempt: u32,
    pub message_group: Option<String>,
    pub born_host: String,
    pub receipt_handle: String,
    /// What `SimpleConsumer.ack` and `changeInvisibleDuration` need: the SDK's view itself.
    pub delivery: Arc<Delivery>,
}

/// The SDK's view of a received message, kept for acknowledging it.
#[derive(uniffi::Object)]
pub struct Delivery(pub(crate) tokio::sync::Mutex<core::MessageView>);

impl From<core::MessageView> for MessageView {
    fn from(m: core::MessageView) -> MessageView {
        MessageView {
            message_id: m.message_id.clone(),
            offset_msg_id: m.offset_msg_id.clone(),
            topic: m.topic.clone(),
            tag: m.tag.clone(),
            keys: m.keys.clone(),
            properties: m.properties.clone(),
            body: m.body.to_vec(),
            queue_id: m.queue_id,
            queue_offset: m.queue_offset,
            born_timestamp: m.born_timestamp,
            store_timestamp: m.store_timestamp,
            delivery_timestamp: m.delivery_timestamp,
            delivery_attempt: m.delivery_attempt,
            message_group: m.message_group.clone(),
            born_host: m.born_host.clone(),
            receipt_handle: m.receipt_handle.clone(),
            delivery: Arc::new(Delivery(tokio::sync::Mutex::new(m))),
        }
    }
}

/// The SDK views of `messages`, for acknowledging them.
pub(crate) fn views(messages: Vec<core::MessageView>) -> Vec<MessageView> {
    messages.into_iter().map(MessageView::from).collect()
}

/// A listener's answer.
#[derive(uniffi::Enum)]
pub enum ConsumeResult {
    /// Acknowledge the message.
    Success,
    /// Have it redelivered.
    Failure,
}

impl From<ConsumeResult> for core::ConsumeResult {
    fn from(r: ConsumeResult) -> core::ConsumeResult {
        match r {
            ConsumeResult::Success => core::ConsumeResult::Success,
            ConsumeResult::Failure => core::ConsumeResult::Failure,
        }
    }
}

/// A transaction checker's answer.
#[derive(uniffi::Enum)]
pub enum TransactionResolution {
    Commit,
    Rollback,
    Unknown,
}

impl From<TransactionResolution> for core::TransactionResolution {
    fn from(r: TransactionResolution) -> core::TransactionResolution {
        match r {
            TransactionResolution::Commit => core::TransactionResolution::Commit,
            TransactionResolution::Rollback => core::TransactionResolution::Rollback,
            TransactionResolution::Unknown => core::TransactionResolution::Unknown,
        }
    }
}

/// Which messages a subscription takes.
#[derive(uniffi::Enum)]
pub enum FilterExpression {
    /// Tags, `*` for all or `a || b`.
    Tag { expression: String },
    /// An SQL92 expression over properties.
    Sql { expression: String },
}

impl From<FilterExpression> for core::FilterExpression {
    fn from(f: FilterExpression) -> core::FilterExpression {
        match f {
            FilterExpression::Tag { expression } => core::FilterExpression::Tag(expression),
            FilterExpression::Sql { expression } => core::FilterExpression::Sql(expression),
        }
    }
}

/// A topic and its filter.
#[derive(uniffi::Record)]
pub struct Subscription {
    pub topic: String,
    #[uniffi(default = None)]
    pub filter: Option<FilterExpression>,
}

impl Subscription {
    /// The SDK's pair; all tags when no filter is given.
    pub(crate) fn into_core(self) -> (String, core::FilterExpression) {
        (self.topic, self.filter.map_or_else(core::FilterExpression::all, Into::into))
    }
}

/// Clustering shares a group's messages among its members; broadcasting gives every member all.
#[derive(uniffi::Enum)]
pub enum ConsumerModel {
    Clustering,
    Broadcasting,
}

impl From<ConsumerModel> for core::ConsumerModel {
    fn from(m: ConsumerModel) -> core::ConsumerModel {
        match m {
            ConsumerModel::Clustering => core::ConsumerModel::Clustering,
            ConsumerModel::Broadcasting => core::ConsumerModel::Broadcasting,
        }
    }
}

/// One message queue of a topic.
#[derive(uniffi::Record)]
pub struct MessageQueue {
    pub topic: String,
    pub broker: String,
    pub queue_id: i32,
}

impl From<MessageQueue> for core::MessageQueue {
    fn from(q: MessageQueue) -> core::MessageQueue {
        core::MessageQueue { topic: q.topic, broker: q.broker, queue_id: q.queue_id }
    }
}

impl From<core::MessageQueue> for MessageQueue {
    fn from(q: core::MessageQueue) -> MessageQueue {
        MessageQueue { topic: q.topic, broker: q.broker, queue_id: q.queue_id }
    }
}
