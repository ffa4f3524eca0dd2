//! Consumer progress: how far each group is on each queue of the topics it consumes. One
//! implementation for `orbitmq admin group progress` and the lag metrics.

use std::collections::BTreeMap;

use crate::broker::Broker;
use crate::broker::metrics::TopicProgress;
use crate::storage::TagFilter;

/// A group's position on one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueProgress {
    /// Topic.
    pub topic: String,
    /// Queue id.
    pub queue_id: u32,
    /// Where the next message will be stored.
    pub broker_offset: u64,
    /// Where the group will resume (acknowledged up to here).
    pub consumer_offset: u64,
    /// `broker_offset - consumer_offset`.
    pub lag: u64,
}

impl Broker {
    /// Topics `group` has consumed from (has offsets on).
    fn consumed_topics(&self, group: &str) -> Vec<String> {
        let offsets = self.store().consumer_offsets();
        offsets.groups().into_iter().filter(|(g, _)| g == group).map(|(_, t)| t).collect()
    }

    /// `group`'s position on every read queue of `topic`. A queue it never consumed counts
    /// from the first message the queue still holds (where it would start).
    pub fn queue_progress(&self, group: &str, topic: &str) -> Vec<QueueProgress> {
        let store = self.store();
        let Some(cfg) = store.topics().get(topic) else { return Vec::new() };
        let committed = store.consumer_offsets().queues(group, topic);
        (0..cfg.read_queues)
            .map(|queue_id| {
                let broker_offset = store.max_offset(topic, queue_id);
                let consumer_offset = committed
                    .get(&queue_id)
                    .copied()
                    .unwrap_or_else(|| store.min_offset(topic, queue_id));
                QueueProgress {
                    topic: topic.to_owned(),
                    queue_id,
                    broker_offset,
                    consumer_offset,
                    lag: broker_offset.saturating_sub(consumer_offset),
                }
            })
            .collect()
    }

    /// `group`'s queues: on `topic`, or (`None`) on every topic it consumed.
    pub fn group_progress(&self, group: &str, topic: Option<&str>) -> Vec<QueueProgress> {
        let topics = match topic {
            Some(t) => vec![t.to_owned()],
            None => self.consumed_topics(group),
        };
        topics.iter().flat_map(|t| self.queue_progress(group, t)).collect()
    }

    /// Lag, in-flight messages and the oldest unacknowledged message of every (group, topic)
    /// with consumer offsets. Reads one message per lagging queue.
    pub fn all_consumer_progress(&self) -> BTreeMap<(String, String), TopicProgress> {
        let mut all = BTreeMap::new();
        for (group, topic) in self.store().consumer_offsets().groups() {
            let mut p = TopicProgress {
                inflight: self.pop().inflight_count(&group, &topic).0 as u64,
                ..TopicProgress::default()
            };
            for q in self.queue_progress(&group, &topic) {
                p.lag += q.lag;
                if q.lag == 0 {
                    continue;
                }
                let first = self
                    .store()
                    .get_messages(&topic, q.queue_id, q.consumer_offset, 1, &TagFilter::All)
                    .ok()
                    .and_then(|r| r.messages.first().map(|m| m.store_timestamp));
                if let Some(t) = first {
                    p.oldest_unacked_ms = Some(p.oldest_unacked_ms.map_or(t, |o: i64| o.min(t)));
                }
            }
            all.insert((group, topic), p);
        }
        all
    }
}
