//! SendMessage: validate every message first (bad input changes nothing), pick queues, route
//! delay messages to the timer and transaction messages to the half queue, append everything
//! as one batch, answer one entry per message.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use crate::broker::convert::{PROPERTY_SHARDING_KEY, PROPERTY_TIMER_DELIVER_MS, to_put};
use crate::broker::error::{BrokerError, Result};
use crate::broker::timer::{self, PROPERTY_REAL_QID, PROPERTY_REAL_TOPIC, TIMER_TOPIC};
use crate::broker::topics::{PERM_WRITE, kind_of};
use crate::broker::transaction::{HALF_TOPIC, PROPERTY_PRODUCER_GROUP};
use crate::broker::{Broker, validate};
use crate::protocol::time::timestamp_ms;
use crate::protocol::v2::{self, Code, MessageType};
use crate::storage::message::now_millis;
use crate::storage::{PutMessage, PutResult};

/// Where one sent message went.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Where it was stored (for delay and transaction messages: the system queue).
    pub put: PutResult,
    /// Transaction messages: the id to end the transaction with (the message id).
    pub transaction_id: String,
    /// Delay messages due later: the handle to recall them with.
    pub recall_handle: String,
}

/// How a message is stored.
enum Route {
    Topic,
    Timer { at: i64, bucket: u32 },
    Half,
}

impl Route {
    /// The message's type (RocketMQ's `message_type` label).
    fn message_type(&self, put: &PutMessage) -> MessageType {
        match self {
            Route::Timer { .. } => MessageType::Delay,
            Route::Half => MessageType::Transaction,
            Route::Topic if put.properties.contains_key(PROPERTY_SHARDING_KEY) => MessageType::Fifo,
            Route::Topic => MessageType::Normal,
        }
    }
}

impl Broker {
    /// Counts stored `messages` of `topic` in the metrics, by type.
    fn count_in(&self, topic: &str, types: &[MessageType], messages: &[v2::Message]) {
        for kind in
            [MessageType::Normal, MessageType::Fifo, MessageType::Delay, MessageType::Transaction]
        {
            if types.contains(&kind) {
                let of_kind = types.iter().zip(messages).filter(|(t, _)| **t == kind);
                self.metrics().messages_in(topic, kind, of_kind.map(|(_, m)| m.body.len()));
            }
        }
    }

    /// Stores `messages` (all for one topic) and returns where each went, in order.
    pub async fn send(
        &self,
        messages: &[v2::Message],
        remote: Option<SocketAddr>,
    ) -> Result<Vec<Sent>> {
        self.check_writable("SendMessage")?;
        let Some(first) = messages.first() else {
            return Err(BrokerError::new(Code::MessageCorrupted, "no message to send"));
        };
        let topic = first.topic.clone().unwrap_or_default();
        // Validates the name too.
        let cfg = self.topic_or_create(&topic.name)?;
        if cfg.perm & PERM_WRITE == 0 {
            return Err(BrokerError::new(
                Code::Forbidden,
                format!("topic {:?} is not writable", topic.name),
            ));
        }
        let accepts = kind_of(&cfg).accepts();
        let now = now_millis();
        let mut puts = Vec::with_capacity(messages.len());
        let mut routes = Vec::with_capacity(messages.len());
        for m in messages {
            if m.topic.as_ref() != Some(&topic) {
                return Err(BrokerError::new(
                    Code::MessageCorrupted,
                    "all messages of one request must have the same topic",
                ));
            }
            let kind = self.check_message(m, &accepts, now)?;
            puts.push(to_put(m, 0, remote));
            routes.push(kind);
        }
        let write_queues = u64::from(cfg.write_queues.max(1));
        for (put, route) in puts.iter_mut().zip(&mut routes) {
            put.queue_id = match put.properties.get(PROPERTY_SHARDING_KEY) {
                // One queue per message group keeps the group's order.
                Some(group) => (u64::from(crc32c::crc32c(group.as_bytes())) % write_queues) as u32,
                None => {
                    (self.inner.send_cursor.fetch_add(1, Ordering::Relaxed) % write_queues) as u32
                }
            };
            let to = match route {
                Route::Topic => continue,
                Route::Timer { bucket, .. } => (TIMER_TOPIC, *bucket),
                Route::Half => {
                    put.properties.insert(PROPERTY_PRODUCER_GROUP.to_owned(), topic.name.clone());
                    (HALF_TOPIC, 0)
                }
            };
            put.properties.insert(PROPERTY_REAL_TOPIC.to_owned(), topic.name.clone());
            put.properties.insert(PROPERTY_REAL_QID.to_owned(), put.queue_id.to_string());
            to.0.clone_into(&mut put.topic);
            put.queue_id = to.1;
        }
        let types: Vec<MessageType> =
            routes.iter().zip(&puts).map(|(route, put)| route.message_type(put)).collect();
        let pending = self.pending_send()?;
        let results = self.store().put_batch(puts).await?;
        drop(pending);
        self.count_in(&topic.name, &types, messages);
        let mut sent = Vec::with_capacity(results.len());
        for ((put, route), m) in results.into_iter().zip(routes).zip(messages) {
            let id =
                m.system_properties.as_ref().map(|s| s.message_id.as_str()).unwrap_or_default();
            let mut s = Sent { put, transaction_id: String::new(), recall_handle: String::new() };
            match route {
                Route::Topic => {}
                Route::Timer { at, bucket } => {
                    self.timer().add(at, bucket, s.put.queue_offset, s.put.commitlog_offset);
                    s.recall_handle = timer::recall_handle(
                        &topic.name,
                        &self.config().broker_name,
                        at,
                        id,
                        bucket,
                        s.put.queue_offset,
                    );
                }
                Route::Half => {
                    self.transactions().add(
                        id,
                        &topic.name,
                        s.put.queue_offset,
                        s.put.commitlog_offset,
                        self.config().transaction_check_first_ms,
                    );
                    id.clone_into(&mut s.transaction_id);
                }
            }
            sent.push(s);
        }
        // A sync_master answers once a slave has the bytes too (or says it does not).
        if let Some(end) = sent.iter().map(|s| s.put.commitlog_offset + u64::from(s.put.size)).max()
        {
            self.wait_replicated(end).await?;
        }
        Ok(sent)
    }

    /// Validates one message and says how it is stored. The message's type follows from its
    /// properties as in RocketMQ: transaction, else delay (a delivery time), else FIFO (a
    /// message group), else normal; the topic must accept it.
    fn check_message(&self, m: &v2::Message, accepts: &[MessageType], now: i64) -> Result<Route> {
        let sys = m.system_properties.clone().unwrap_or_default();
        if m.body.is_empty() {
            return Err(BrokerError::new(Code::MessageBodyEmpty, "message body cannot be empty"));
        }
        if m.body.len() > self.config().max_body_size {
            return Err(BrokerError::new(
                Code::MessageBodyTooLarge,
                format!(
                    "message body of {} bytes exceeds the limit of {} bytes",
                    m.body.len(),
                    self.config().max_body_size
                ),
            ));
        }
        let tag = sys.tag.clone().unwrap_or_default();
        validate::tag(&tag)?;
        for key in &sys.keys {
            validate::key(key)?;
        }
        validate::user_properties(&m.user_properties, &tag, &sys.keys)?;
        if sys.message_id.trim().is_empty() {
            return Err(BrokerError::new(Code::IllegalMessageId, "message id cannot be empty"));
        }
        let group = sys.message_group.clone().unwrap_or_default();
        validate::message_group(&group)?;
        let declared = MessageType::try_from(sys.message_type).map_err(|_| {
            BrokerError::new(
                Code::BadRequest,
                format!("message_type {} is not a RocketMQ message type", sys.message_type),
            )
        })?;
        if matches!(declared, MessageType::Lite | MessageType::Priority) {
            return Err(BrokerError::new(
                Code::Unsupported,
                format!("{} messages are not supported", declared.as_str_name()),
            ));
        }
        let at = sys.delivery_timestamp.as_ref().map(timestamp_ms);
        let effective = if declared == MessageType::Transaction {
            if at.is_some() || !group.is_empty() {
                return Err(BrokerError::new(
                    Code::MessagePropertyConflictWithType,
                    "a TRANSACTION message cannot have a delivery time or a message group",
                ));
            }
            MessageType::Transaction
        } else if at.is_some() {
            MessageType::Delay
        } else if declared == MessageType::Delay {
            return Err(BrokerError::new(
                Code::IllegalDeliveryTime,
                "a DELAY message needs a delivery_timestamp",
            ));
        } else if !group.is_empty() {
            MessageType::Fifo
        } else {
            MessageType::Normal
        };
        if !accepts.contains(&effective) {
            return Err(BrokerError::new(
                Code::MessagePropertyConflictWithType,
                format!(
                    "a {} message cannot go to a topic that accepts {}",
                    effective.as_str_name(),
                    accepts.iter().map(MessageType::as_str_name).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        if m.user_properties.contains_key(PROPERTY_TIMER_DELIVER_MS) {
            return Err(BrokerError::new(
                Code::IllegalMessagePropertyKey,
                "TIMER_DELIVER_MS is set by the broker",
            ));
        }
        Ok(match (effective, at) {
            (MessageType::Transaction, _) => Route::Half,
            (_, Some(at)) => {
                let max = self.config().max_delay_ms;
                // Saturating: a client's timestamp may be anything down to i64::MIN ms.
                let ahead = at.saturating_sub(now);
                if ahead > max {
                    return Err(BrokerError::new(
                        Code::IllegalDeliveryTime,
                        format!(
                            "delivery time {at} is {ahead} ms ahead; at most {max} ms ahead is allowed"
                        ),
                    ));
                }
                // Due already: stored in its topic at once, as RocketMQ does.
                if at <= now {
                    Route::Topic
                } else {
                    Route::Timer { at, bucket: timer::bucket(ahead) }
                }
            }
            _ => Route::Topic,
        })
    }
}
