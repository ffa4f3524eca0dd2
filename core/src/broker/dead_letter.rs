//! Dead letters: a message whose deliveries are used up (or that a consumer gave up on, with
//! `ForwardMessageToDeadLetterQueue`) moves to its group's dead-letter topic `%DLQ%<group>`,
//! keeping its message id, tag, keys and properties, plus where it came from. Consumers read
//! that topic like any other; admin queries find the message in it.

use std::collections::BTreeMap;

use crate::broker::Broker;
use crate::broker::error::{BrokerError, Result};
use crate::broker::pop::DeadLetter;
use crate::broker::topics::{PERM_READ, PERM_WRITE, TopicKind};
use crate::protocol::v2::Code;
use crate::storage::{PutMessage, TopicConfig};

/// Prefix of a group's dead-letter topic.
pub const DLQ_PREFIX: &str = "%DLQ%";
/// The topic a dead letter was consumed from.
pub const PROPERTY_DLQ_ORIGIN_TOPIC: &str = "DLQ_ORIGIN_TOPIC";
/// The message id a dead letter had there.
pub const PROPERTY_DLQ_ORIGIN_MESSAGE_ID: &str = "DLQ_ORIGIN_MESSAGE_ID";

/// The dead-letter topic of `group`.
pub fn dlq_topic(group: &str) -> String {
    format!("{DLQ_PREFIX}{group}")
}

impl Broker {
    /// The dead-letter topic of `group`, created (one queue, readable) on first use whatever
    /// the auto-creation policy: it belongs to the broker.
    fn dlq_topic_or_create(&self, group: &str) -> String {
        let topic = dlq_topic(group);
        if self.store().topics().get(&topic).is_none() {
            self.store().topics().put(
                &topic,
                TopicConfig {
                    read_queues: 1,
                    write_queues: 1,
                    perm: PERM_READ | PERM_WRITE,
                    message_type: TopicKind::Mixed.as_str().to_owned(),
                },
            );
            tracing::info!(topic, "created dead-letter topic");
        }
        topic
    }

    /// Moves `letters` to their groups' dead-letter topics and settles them in the pop state
    /// (moved: gone from the group; failed: delivered again later, to be retried).
    pub(crate) async fn move_to_dead_letter_queue(&self, letters: Vec<DeadLetter>) -> Result<()> {
        let mut by_group: BTreeMap<String, Vec<DeadLetter>> = BTreeMap::new();
        for d in letters {
            by_group.entry(d.group.clone()).or_default().push(d);
        }
        let mut first_error = None;
        for (group, letters) in by_group {
            let result = self.write_dead_letters(&group, &letters).await;
            for d in &letters {
                self.pop().settle_dead(d, result.is_ok());
            }
            match result {
                Ok(()) => tracing::info!(
                    group,
                    count = letters.len(),
                    attempts = letters.first().map_or(0, |d| d.attempts),
                    "moved messages to the dead-letter queue"
                ),
                Err(e) => {
                    tracing::warn!(group, error = %e, "moving messages to the dead-letter queue failed; will retry");
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn write_dead_letters(&self, group: &str, letters: &[DeadLetter]) -> Result<()> {
        let topic = self.dlq_topic_or_create(group);
        let mut puts = Vec::with_capacity(letters.len());
        for d in letters {
            let m = self.store().read_at(d.commitlog_offset)?;
            let mut put = PutMessage::new(topic.clone(), 0, m.body.clone());
            put.flags = m.flags;
            put.properties.clone_from(&m.properties);
            put.properties.insert(PROPERTY_DLQ_ORIGIN_TOPIC.to_owned(), d.topic.clone());
            if let Some(id) = m.message_id() {
                put.properties.insert(PROPERTY_DLQ_ORIGIN_MESSAGE_ID.to_owned(), id.to_owned());
            }
            put.born_timestamp = m.born_timestamp;
            put.born_host = m.born_host;
            put.reconsume_times = d.attempts;
            puts.push(put);
        }
        self.store().put_batch(puts).await?;
        for d in letters {
            self.metrics().sent_to_dead_letters(&d.topic, group);
        }
        Ok(())
    }

    /// Dead-letters what is due in every group (the background sweep).
    pub(crate) async fn dead_letter_due(&self) {
        let store = self.store().clone();
        let default = self.config().max_delivery_attempts;
        let due = self.pop().due_dead_letters(&|g| {
            store.groups().get(g).map_or(default, |c| c.max_delivery_attempts)
        });
        if !due.is_empty() {
            let _ = self.move_to_dead_letter_queue(due).await;
        }
    }

    /// `ForwardMessageToDeadLetterQueue`: the consumer gave up on the message a current handle
    /// names (FIFO push consumers retry locally, then forward).
    pub async fn forward_to_dead_letter_queue(
        &self,
        group: &str,
        topic: &str,
        handle: &str,
    ) -> Result<()> {
        self.check_writable("ForwardMessageToDeadLetterQueue")?;
        let letter = self.pop().take_for_dead_letter(group, topic, handle)?;
        self.move_to_dead_letter_queue(vec![letter]).await.map_err(|e| {
            BrokerError::new(
                Code::InternalServerError,
                format!("moving the message to the dead-letter queue failed: {}", e.message),
            )
        })
    }
}
