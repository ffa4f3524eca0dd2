//! Pull-style consumption (PullMessage, UpdateOffset, GetOffset, QueryOffset; PROTOCOL.md §3):
//! the consumer names one queue and an offset and keeps its own position. A pull reads from
//! that offset, long-polling at the queue's end, and never moves the group's committed offset;
//! UpdateOffset commits one (through the pop state, so a later ReceiveMessage of the group
//! starts there) and GetOffset reads it back. Apache's proxy does not serve these RPCs; no
//! released official client calls them.
//!
//! Pull consumers share a topic's queues by RocketMQ's allocate-averagely over the group's
//! live pull-consumer members ([`Broker::pull_assignments`]).

use std::ops::Range;
use std::time::Duration;

use crate::broker::error::{BrokerError, Result};
use crate::broker::receive::{MAX_BATCH, filter};
use crate::broker::topics::PERM_READ;
use crate::broker::{Broker, validate};
use crate::protocol::v2::{self, ClientType, Code, QueryOffsetPolicy};
use crate::storage::{GetStatus, StoredMessage, TopicConfig};

/// What one pull found.
#[derive(Debug, Clone)]
pub enum Pulled {
    /// Messages from the asked offset on, in queue order; the next pull starts at
    /// `next_offset`.
    Found {
        /// The messages.
        messages: Vec<StoredMessage>,
        /// Where the next pull starts.
        next_offset: u64,
    },
    /// Nothing (matching the filter) before polling ended; pull again from `next_offset`
    /// (past any entries the filter skipped).
    NotFound {
        /// Where the next pull starts.
        next_offset: u64,
    },
    /// The offset is outside the queue (`ILLEGAL_OFFSET`); `next_offset` is the nearest valid
    /// one: the queue's minimum when below it, its end when past it.
    IllegalOffset {
        /// Why, for people.
        error: BrokerError,
        /// Where to pull from instead.
        next_offset: u64,
    },
}

/// The queue a pull-style request names, checked.
struct QueueRef<'a> {
    topic: &'a str,
    queue_id: u32,
    config: TopicConfig,
}

impl Broker {
    /// Serves one PullMessage. `deadline` is what is left of the call's gRPC deadline.
    pub async fn pull(
        &self,
        req: &v2::PullMessageRequest,
        client_id: &str,
        deadline: Option<Duration>,
    ) -> Result<Pulled> {
        let group = group_name(req.group.as_ref());
        let q = self.offset_queue(group, req.message_queue.as_ref())?;
        if q.config.perm & PERM_READ == 0 {
            return Err(BrokerError::new(
                Code::Forbidden,
                format!("topic {:?} is not readable", q.topic),
            ));
        }
        let filter = filter(req.filter_expression.as_ref())?;
        let batch = usize::try_from(req.batch_size)
            .ok()
            .filter(|b| *b > 0)
            .ok_or_else(|| {
                BrokerError::new(
                    Code::BadRequest,
                    format!("batch_size {} must be > 0", req.batch_size),
                )
            })?
            .min(MAX_BATCH);
        let polling = self.polling_time(req.long_polling_timeout.as_ref(), client_id, deadline)?;
        let until = tokio::time::Instant::now() + polling;
        let Ok(mut offset) = u64::try_from(req.offset) else {
            let min = self.store().min_offset(q.topic, q.queue_id);
            return Ok(Pulled::IllegalOffset {
                error: below_min(req.offset, min, &q),
                next_offset: min,
            });
        };
        // Taken before the first wait, held until the answer.
        let mut parked = None;
        loop {
            let got = self.store().get_messages(q.topic, q.queue_id, offset, batch, &filter)?;
            match got.status {
                GetStatus::Found => {
                    return Ok(Pulled::Found {
                        messages: got.messages,
                        next_offset: got.next_offset,
                    });
                }
                GetStatus::OffsetTooSmall => {
                    return Ok(Pulled::IllegalOffset {
                        error: below_min(req.offset, got.min_offset, &q),
                        next_offset: got.min_offset,
                    });
                }
                GetStatus::OffsetOverflow => {
                    return Ok(Pulled::IllegalOffset {
                        error: BrokerError::new(
                            Code::IllegalOffset,
                            format!(
                                "offset {} is past the end {} of {}:{}; pull from next_offset",
                                req.offset, got.max_offset, q.topic, q.queue_id
                            ),
                        ),
                        next_offset: got.max_offset,
                    });
                }
                // Skipped entries need not be scanned again.
                GetStatus::NoMatchedMessage => offset = got.next_offset,
                GetStatus::NoNewMessage => {}
            }
            let now = tokio::time::Instant::now();
            if now >= until {
                return Ok(Pulled::NotFound { next_offset: offset });
            }
            if got.status == GetStatus::NoNewMessage {
                if parked.is_none() {
                    parked = Some(self.park()?);
                }
                self.store().wait_for(q.topic, q.queue_id, offset, until - now).await?;
            } else {
                // A long run of entries the filter skips is scanned a slice at a time: let the
                // worker serve other calls between slices.
                tokio::task::yield_now().await;
            }
        }
    }

    /// Serves UpdateOffset: commits `offset` as where `group` resumes on the queue. It goes
    /// through the pop state, so a later ReceiveMessage of the group starts there too.
    pub fn update_offset(&self, req: &v2::UpdateOffsetRequest) -> Result<()> {
        let group = group_name(req.group.as_ref());
        let q = self.offset_queue(group, req.message_queue.as_ref())?;
        let (min, max) = (
            self.store().min_offset(q.topic, q.queue_id),
            self.store().max_offset(q.topic, q.queue_id),
        );
        let offset = u64::try_from(req.offset)
            .ok()
            .filter(|o| (min..=max).contains(o))
            .ok_or_else(|| {
                BrokerError::new(
                    Code::IllegalOffset,
                    format!(
                        "offset {} is outside [{min}, {max}], the offsets of {}:{}",
                        req.offset, q.topic, q.queue_id
                    ),
                )
            })?;
        self.pop().reset_to(group, q.topic, &[(q.queue_id, offset)])?;
        Ok(())
    }

    /// Serves GetOffset: the offset `group` committed on the queue, `OFFSET_NOT_FOUND` when
    /// it never committed one.
    pub fn get_offset(&self, req: &v2::GetOffsetRequest) -> Result<u64> {
        let group = group_name(req.group.as_ref());
        let q = self.offset_queue(group, req.message_queue.as_ref())?;
        self.store().consumer_offsets().get(group, q.topic, q.queue_id).ok_or_else(|| {
            BrokerError::new(
                Code::OffsetNotFound,
                format!(
                    "consumer group {group:?} has no committed offset on {}:{}",
                    q.topic, q.queue_id
                ),
            )
        })
    }

    /// Serves QueryOffset: the queue's first offset, its end, or the first offset stored at
    /// or after a time (the end when there is none).
    pub fn query_offset(&self, req: &v2::QueryOffsetRequest) -> Result<u64> {
        let mq = req.message_queue.as_ref();
        let topic = mq.and_then(|q| q.topic.as_ref()).map(|t| t.name.as_str()).unwrap_or_default();
        validate::topic(topic)?;
        let config = self.topic_or_create(topic)?;
        let q = QueueRef { topic, queue_id: queue_id(mq, topic, &config)?, config };
        let store = self.store();
        match QueryOffsetPolicy::try_from(req.query_offset_policy) {
            Ok(QueryOffsetPolicy::Beginning) => Ok(store.min_offset(q.topic, q.queue_id)),
            Ok(QueryOffsetPolicy::End) => Ok(store.max_offset(q.topic, q.queue_id)),
            Ok(QueryOffsetPolicy::Timestamp) => {
                let ts = req.timestamp.as_ref().ok_or_else(|| {
                    BrokerError::new(
                        Code::BadRequest,
                        "query_offset_policy TIMESTAMP requires a timestamp",
                    )
                })?;
                let ms = crate::protocol::time::timestamp_ms(ts);
                Ok(store.offset_for_timestamp(q.topic, q.queue_id, ms))
            }
            Err(_) => Err(BrokerError::new(
                Code::BadRequest,
                format!(
                    "unknown query_offset_policy {} (BEGINNING, END or TIMESTAMP)",
                    req.query_offset_policy
                ),
            )),
        }
    }

    /// Whether `client_id` told us (Telemetry settings) that it is a pull consumer.
    pub fn is_pull_consumer(&self, client_id: &str) -> bool {
        self.clients()
            .settings(client_id)
            .is_some_and(|s| s.client_type == Some(ClientType::PullConsumer as i32))
    }

    /// QueryAssignment for a pull consumer: its share of the topic's readable queues, spread
    /// over the group's live pull consumers by RocketMQ's allocate-averagely. A client that is
    /// not among them (its settings name another group) gets none.
    pub fn pull_assignments(
        &self,
        client_id: &str,
        group: &str,
        readable: &[v2::MessageQueue],
    ) -> Vec<v2::Assignment> {
        let members = self.clients().members(group, ClientType::PullConsumer);
        let mine = allocate_averagely(readable.len(), &members, client_id);
        readable[mine].iter().map(|q| v2::Assignment { message_queue: Some(q.clone()) }).collect()
    }

    /// Validates the group and the queue of a pull-style request (group first, as receive
    /// does), creating them when auto-creation is on.
    fn offset_queue<'a>(
        &self,
        group: &str,
        mq: Option<&'a v2::MessageQueue>,
    ) -> Result<QueueRef<'a>> {
        validate::group(group)?;
        let topic = mq.and_then(|q| q.topic.as_ref()).map(|t| t.name.as_str()).unwrap_or_default();
        validate::topic(topic)?;
        self.group_or_create(group)?;
        let config = self.topic_or_create(topic)?;
        Ok(QueueRef { topic, queue_id: queue_id(mq, topic, &config)?, config })
    }
}

fn group_name(group: Option<&v2::Resource>) -> &str {
    group.map(|g| g.name.as_str()).unwrap_or_default()
}

/// The queue id a request names, which must be one of the topic's readable queues.
fn queue_id(mq: Option<&v2::MessageQueue>, topic: &str, config: &TopicConfig) -> Result<u32> {
    let id = mq.map_or(-1, |q| q.id);
    u32::try_from(id).ok().filter(|id| *id < config.read_queues).ok_or_else(|| {
        BrokerError::new(
            Code::BadRequest,
            format!(
                "queue id {id} is not a readable queue of topic {topic:?} (0..{})",
                config.read_queues
            ),
        )
    })
}

fn below_min(offset: i64, min: u64, q: &QueueRef<'_>) -> BrokerError {
    BrokerError::new(
        Code::IllegalOffset,
        format!(
            "offset {offset} is below the first offset {min} of {}:{} (older messages were deleted); pull from next_offset",
            q.topic, q.queue_id
        ),
    )
}

/// RocketMQ's `AllocateMessageQueueAveragely`: with the members sorted, each takes a contiguous
/// range of the `queues`; the first `queues % members` take one more. A client not among the
/// members gets nothing, as does every member past the queue count.
fn allocate_averagely(queues: usize, members: &[String], me: &str) -> Range<usize> {
    let Some(index) = members.iter().position(|m| m == me) else { return 0..0 };
    let n = members.len();
    let (base, extra) = (queues / n, queues % n);
    let start = index * base + index.min(extra);
    let len = base + usize::from(index < extra);
    start.min(queues)..(start + len).min(queues)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    #[test]
    fn allocate_averagely_matches_rocketmq() {
        let three = ids(3);
        let got: Vec<_> = three.iter().map(|m| allocate_averagely(8, &three, m)).collect();
        assert_eq!(got, [0..3, 3..6, 6..8]);
        let two = ids(2);
        let got: Vec<_> = two.iter().map(|m| allocate_averagely(8, &two, m)).collect();
        assert_eq!(got, [0..4, 4..8]);
        // More members than queues: one each, the rest idle.
        let five = ids(5);
        let got: Vec<_> = five.iter().map(|m| allocate_averagely(3, &five, m)).collect();
        assert_eq!(got, [0..1, 1..2, 2..3, 3..3, 3..3]);
        assert_eq!(allocate_averagely(8, &three, "stranger"), 0..0);
        // Every split covers every queue exactly once.
        for queues in 0..20 {
            for n in 1..10 {
                let members = ids(n);
                let mut next = 0;
                for m in &members {
                    let r = allocate_averagely(queues, &members, m);
                    if !r.is_empty() {
                        assert_eq!(r.start, next, "{queues} queues, {n} members");
                        next = r.end;
                    }
                }
                assert_eq!(next, queues, "{queues} queues, {n} members");
            }
        }
    }
}
