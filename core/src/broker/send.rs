//! SendMessage: validate every message first (bad input changes nothing), pick queues, append
//! them as one batch, answer one entry per message.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use crate::broker::convert::{PROPERTY_SHARDING_KEY, to_put};
use crate::broker::error::{BrokerError, Result};
use crate::broker::topics::{PERM_WRITE, kind_of};
use crate::broker::{Broker, validate};
use crate::protocol::v2::{self, Code, MessageType};
use crate::storage::PutResult;

impl Broker {
    /// Stores `messages` (all for one topic) and returns where each went, in order.
    pub async fn send(
        &self,
        messages: &[v2::Message],
        remote: Option<SocketAddr>,
    ) -> Result<Vec<PutResult>> {
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
        let mut puts = Vec::with_capacity(messages.len());
        for m in messages {
            if m.topic.as_ref() != Some(&topic) {
                return Err(BrokerError::new(
                    Code::MessageCorrupted,
                    "all messages of one request must have the same topic",
                ));
            }
            self.check_message(m, &kind_of(&cfg).accepts())?;
            let put = to_put(m, 0, remote);
            puts.push(put);
        }
        let write_queues = u64::from(cfg.write_queues.max(1));
        for put in &mut puts {
            put.queue_id = match put.properties.get(PROPERTY_SHARDING_KEY) {
                // One queue per message group keeps the group's order.
                Some(group) => (u64::from(crc32c::crc32c(group.as_bytes())) % write_queues) as u32,
                None => {
                    (self.inner.send_cursor.fetch_add(1, Ordering::Relaxed) % write_queues) as u32
                }
            };
        }
        Ok(self.store().put_batch(puts).await?)
    }

    fn check_message(&self, m: &v2::Message, accepts: &[MessageType]) -> Result<()> {
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
        let kind = MessageType::try_from(sys.message_type).unwrap_or(MessageType::Unspecified);
        match kind {
            MessageType::Delay | MessageType::Transaction => {
                return Err(BrokerError::new(
                    Code::Unsupported,
                    format!("{} messages are not supported by this broker yet", kind.as_str_name()),
                ));
            }
            MessageType::Lite | MessageType::Priority => {
                return Err(BrokerError::new(
                    Code::Unsupported,
                    format!("{} messages are not supported", kind.as_str_name()),
                ));
            }
            _ => {}
        }
        if sys.delivery_timestamp.is_some() {
            return Err(BrokerError::new(
                Code::Unsupported,
                "delivery_timestamp (delay messages) is not supported by this broker yet",
            ));
        }
        let effective = match kind {
            MessageType::Unspecified if group.is_empty() => MessageType::Normal,
            MessageType::Unspecified => MessageType::Fifo,
            k => k,
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
        Ok(())
    }
}
