//! `Admin`: topics, groups and consumer progress.

use std::collections::HashMap;
use std::sync::Arc;

use orbitmq_core::client as core;

use crate::config::ClientConfig;
use crate::error::OrbitMqError;
use crate::runtime::{Guarded, run};

/// A topic's settings.
#[derive(uniffi::Record)]
pub struct TopicConfig {
    pub name: String,
    #[uniffi(default = 8)]
    pub read_queues: u32,
    #[uniffi(default = 8)]
    pub write_queues: u32,
    /// 6 = read and write, 4 = read only, 2 = write only.
    #[uniffi(default = 6)]
    pub perm: u32,
    /// `NORMAL`, `FIFO`, `DELAY`, `TRANSACTION` or `MIXED`.
    #[uniffi(default = "NORMAL")]
    pub message_type: String,
}

impl From<TopicConfig> for core::TopicConfig {
    fn from(t: TopicConfig) -> core::TopicConfig {
        core::TopicConfig {
            name: t.name,
            read_queues: t.read_queues,
            write_queues: t.write_queues,
            perm: t.perm,
            message_type: t.message_type,
        }
    }
}

impl From<core::TopicConfig> for TopicConfig {
    fn from(t: core::TopicConfig) -> TopicConfig {
        TopicConfig {
            name: t.name,
            read_queues: t.read_queues,
            write_queues: t.write_queues,
            perm: t.perm,
            message_type: t.message_type,
        }
    }
}

/// One queue's offsets.
#[derive(uniffi::Record)]
pub struct QueueStatus {
    pub broker_name: String,
    pub queue_id: u32,
    pub min_offset: u64,
    pub max_offset: u64,
    pub last_store_timestamp: i64,
}

/// A topic's queues and their offsets.
#[derive(uniffi::Record)]
pub struct TopicStatus {
    pub topic: String,
    pub queues: Vec<QueueStatus>,
}

impl From<core::TopicStatus> for TopicStatus {
    fn from(s: core::TopicStatus) -> TopicStatus {
        let queues = s
            .queues
            .into_iter()
            .map(|q| QueueStatus {
                broker_name: q.broker_name,
                queue_id: q.queue_id,
                min_offset: q.min_offset,
                max_offset: q.max_offset,
                last_store_timestamp: q.last_store_timestamp,
            })
            .collect();
        TopicStatus { topic: s.topic, queues }
    }
}

/// A consumer group's settings.
#[derive(uniffi::Record)]
pub struct GroupConfig {
    pub name: String,
    pub max_delivery_attempts: u32,
    pub fifo: bool,
    /// `auto`, `first` or `last`.
    pub consume_from: String,
}

impl From<core::GroupConfig> for GroupConfig {
    fn from(g: core::GroupConfig) -> GroupConfig {
        GroupConfig {
            name: g.name,
            max_delivery_attempts: g.max_delivery_attempts,
            fifo: g.fifo,
            consume_from: g.consume_from,
        }
    }
}

/// What `Admin.createGroup` sets; a missing value keeps the current one.
#[derive(uniffi::Record)]
pub struct GroupOptions {
    #[uniffi(default = None)]
    pub fifo: Option<bool>,
    #[uniffi(default = None)]
    pub max_delivery_attempts: Option<u32>,
    #[uniffi(default = None)]
    pub consume_from: Option<String>,
}

/// What `Admin.createGroup` did.
#[derive(uniffi::Record)]
pub struct GroupCreated {
    pub group: GroupConfig,
    /// False when the group existed (and was updated).
    pub created: bool,
}

/// One queue's consumption progress.
#[derive(uniffi::Record)]
pub struct QueueProgress {
    pub topic: String,
    pub broker_name: String,
    pub queue_id: u32,
    pub broker_offset: u64,
    pub consumer_offset: u64,
    pub lag: u64,
}

/// How far a consumer group is behind.
#[derive(uniffi::Record)]
pub struct ConsumerProgress {
    pub group: String,
    pub queues: Vec<QueueProgress>,
    pub total_lag: u64,
    pub dead_letters: u64,
    pub inflight: u64,
}

impl From<core::ConsumerProgress> for ConsumerProgress {
    fn from(p: core::ConsumerProgress) -> ConsumerProgress {
        let queues = p
            .queues
            .into_iter()
            .map(|q| QueueProgress {
                topic: q.topic,
                broker_name: q.broker_name,
                queue_id: q.queue_id,
                broker_offset: q.broker_offset,
                consumer_offset: q.consumer_offset,
                lag: q.lag,
            })
            .collect();
        ConsumerProgress {
            group: p.group,
            queues,
            total_lag: p.total_lag,
            dead_letters: p.dead_letters,
            inflight: p.inflight,
        }
    }
}

/// Where one queue of a topic lives.
#[derive(uniffi::Record)]
pub struct QueueRoute {
    pub broker_name: String,
    pub broker_id: i32,
    pub address: String,
    pub queue_id: u32,
    /// `RW`, `R`, `W` or `-`.
    pub perm: String,
}

/// A topic's queues and the brokers holding them.
#[derive(uniffi::Record)]
pub struct TopicRoute {
    pub topic: String,
    pub queues: Vec<QueueRoute>,
}

impl From<core::TopicRoute> for TopicRoute {
    fn from(r: core::TopicRoute) -> TopicRoute {
        let queues = r
            .queues
            .into_iter()
            .map(|q| QueueRoute {
                broker_name: q.broker_name,
                broker_id: q.broker_id,
                address: q.address,
                queue_id: q.queue_id,
                perm: q.perm,
            })
            .collect();
        TopicRoute { topic: r.topic, queues }
    }
}

/// A message as the broker stores it, found by a query.
#[derive(uniffi::Record)]
pub struct StoredMessage {
    pub topic: String,
    pub queue_id: u32,
    pub queue_offset: u64,
    pub commitlog_offset: u64,
    pub message_id: String,
    pub offset_msg_id: String,
    pub tag: Option<String>,
    pub keys: Vec<String>,
    pub properties: HashMap<String, String>,
    pub body: Vec<u8>,
    pub born_timestamp: i64,
    pub store_timestamp: i64,
    pub born_host: String,
    pub store_host: String,
    pub reconsume_times: u32,
    pub size: u32,
    /// The broker group that stores it (each broker of a topic has its own queues).
    pub broker_name: String,
}

impl From<core::StoredMessage> for StoredMessage {
    fn from(m: core::StoredMessage) -> StoredMessage {
        StoredMessage {
            topic: m.topic,
            queue_id: m.queue_id,
            queue_offset: m.queue_offset,
            commitlog_offset: m.commitlog_offset,
            message_id: m.message_id,
            offset_msg_id: m.offset_msg_id,
            tag: m.tag,
            keys: m.keys,
            properties: m.properties,
            body: m.body.to_vec(),
            born_timestamp: m.born_timestamp,
            store_timestamp: m.store_timestamp,
            born_host: m.born_host,
            store_host: m.store_host,
            reconsume_times: m.reconsume_times,
            size: m.size,
            broker_name: m.broker_name,
        }
    }
}

/// A client of a consumer group connected to a broker.
#[derive(uniffi::Record)]
pub struct GroupMember {
    pub client_id: String,
    /// `PUSH_CONSUMER`, `SIMPLE_CONSUMER` or `PULL_CONSUMER`.
    pub client_type: String,
    pub language: String,
    pub version: String,
    pub host: String,
    /// When a broker last heard from it, ms since the epoch.
    pub last_seen: i64,
    pub topics: Vec<String>,
}

impl From<core::GroupMember> for GroupMember {
    fn from(m: core::GroupMember) -> GroupMember {
        GroupMember {
            client_id: m.client_id,
            client_type: m.client_type,
            language: m.language,
            version: m.version,
            host: m.host,
            last_seen: m.last_seen,
            topics: m.topics,
        }
    }
}

/// One broker's message counters (since it started) and disk use.
#[derive(uniffi::Record)]
pub struct BrokerStat {
    pub broker_name: String,
    pub broker_id: u64,
    pub address: String,
    pub messages_in: u64,
    pub messages_out: u64,
    pub disk_bytes: u64,
}

impl From<core::BrokerStat> for BrokerStat {
    fn from(s: core::BrokerStat) -> BrokerStat {
        BrokerStat {
            broker_name: s.broker_name,
            broker_id: s.broker_id,
            address: s.address,
            messages_in: s.messages_in,
            messages_out: s.messages_out,
            disk_bytes: s.disk_bytes,
        }
    }
}

/// One queue's offset moved by `Admin.resetOffset`.
#[derive(uniffi::Record)]
pub struct QueueOffsetReset {
    pub queue_id: u32,
    pub old_offset: u64,
    pub new_offset: u64,
}

/// Manages topics and groups.
#[derive(uniffi::Object)]
pub struct Admin(Guarded<core::Admin>);

#[uniffi::export]
impl Admin {
    #[uniffi::constructor]
    pub fn new(config: ClientConfig) -> Result<Arc<Admin>, OrbitMqError> {
        let _entered = crate::runtime::handle().enter();
        Ok(Arc::new(Admin(Guarded::new(core::Admin::new(config.into())?))))
    }

    pub async fn create_topic(&self, topic: TopicConfig) -> Result<TopicConfig, OrbitMqError> {
        let a = self.0.clone();
        run(async move { a.create_topic(topic.into()).await.map(Into::into) }).await
    }

    pub async fn update_topic(&self, topic: TopicConfig) -> Result<TopicConfig, OrbitMqError> {
        let a = self.0.clone();
        run(async move { a.update_topic(topic.into()).await.map(Into::into) }).await
    }

    pub async fn delete_topic(&self, topic: String) -> Result<(), OrbitMqError> {
        let a = self.0.clone();
        run(async move { a.delete_topic(&topic).await }).await
    }

    #[uniffi::method(default(include_system = false))]
    pub async fn list_topics(
        &self,
        include_system: bool,
    ) -> Result<Vec<TopicConfig>, OrbitMqError> {
        let a = self.0.clone();
        run(async move {
            Ok(a.list_topics(include_system).await?.into_iter().map(Into::into).collect())
        })
        .await
    }

    pub async fn topic(&self, topic: String) -> Result<TopicConfig, OrbitMqError> {
        let a = self.0.clone();
        run(async move { a.topic(&topic).await.map(Into::into) }).await
    }

    /// Each queue's min and max offsets.
    pub async fn topic_status(&self, topic: String) -> Result<TopicStatus, OrbitMqError> {
        let a = self.0.clone();
        run(async move { a.topic_status(&topic).await.map(Into::into) }).await
    }

    pub async fn create_group(
        &self,
        group: String,
        options: GroupOptions,
    ) -> Result<GroupCreated, OrbitMqError> {
        let a = self.0.clone();
        let options = core::GroupOptions {
            fifo: options.fifo,
            max_delivery_attempts: options.max_delivery_attempts,
            consume_from: options.consume_from,
        };
        run(async move {
            let c = a.create_group(&group, options).await?;
            Ok(GroupCreated { group: c.group.into(), created: c.created })
        })
        .await
    }

    pub async fn list_groups(&self) -> Result<Vec<GroupConfig>, OrbitMqError> {
        let a = self.0.clone();
        run(async move { Ok(a.list_groups().await?.into_iter().map(Into::into).collect()) }).await
    }

    pub async fn delete_group(&self, group: String) -> Result<(), OrbitMqError> {
        let a = self.0.clone();
        run(async move { a.delete_group(&group).await }).await
    }

    /// Each queue's lag, on `topic` or every topic the group has offsets on.
    #[uniffi::method(default(topic = None))]
    pub async fn consumer_progress(
        &self,
        group: String,
        topic: Option<String>,
    ) -> Result<ConsumerProgress, OrbitMqError> {
        let a = self.0.clone();
        run(async move { a.consumer_progress(&group, topic.as_deref()).await.map(Into::into) })
            .await
    }

    /// The topic's queues and brokers.
    pub async fn topic_route(&self, topic: String) -> Result<TopicRoute, OrbitMqError> {
        let a = self.0.clone();
        run(async move { a.topic_route(&topic).await.map(Into::into) }).await
    }

    /// The messages with this message id or offset message id.
    pub async fn query_message_by_id(
        &self,
        id: String,
    ) -> Result<Vec<StoredMessage>, OrbitMqError> {
        let a = self.0.clone();
        run(async move { Ok(a.query_message_by_id(&id).await?.into_iter().map(Into::into).collect()) })
            .await
    }

    /// The messages of `topic` with `key`, stored in the time range (ms), `max` at most.
    #[uniffi::method(default(begin_timestamp = None, end_timestamp = None, max = None))]
    pub async fn query_message_by_key(
        &self,
        topic: String,
        key: String,
        begin_timestamp: Option<i64>,
        end_timestamp: Option<i64>,
        max: Option<u32>,
    ) -> Result<Vec<StoredMessage>, OrbitMqError> {
        let a = self.0.clone();
        run(async move {
            let found = a.query_message_by_key(&topic, &key, begin_timestamp, end_timestamp, max);
            Ok(found.await?.into_iter().map(Into::into).collect())
        })
        .await
    }

    /// The message at `offset` in queue `queue_id` of `topic`; through a name server, in the
    /// queue of broker group `broker_name` when given (needed when several brokers have a
    /// message there).
    #[uniffi::method(default(broker_name = None))]
    pub async fn query_message_by_offset(
        &self,
        topic: String,
        queue_id: u32,
        offset: u64,
        broker_name: Option<String>,
    ) -> Result<StoredMessage, OrbitMqError> {
        let a = self.0.clone();
        run(async move {
            a.query_message_by_offset_on(broker_name.as_deref(), &topic, queue_id, offset)
                .await
                .map(Into::into)
        })
        .await
    }

    /// Delivers a stored message (by message id or offset message id) once more to `group`
    /// only.
    pub async fn resend_message(
        &self,
        group: String,
        topic: String,
        message_id: String,
    ) -> Result<(), OrbitMqError> {
        let a = self.0.clone();
        run(async move { a.resend_message(&group, &topic, &message_id).await }).await
    }

    /// The clients of `group` connected to the brokers.
    pub async fn group_members(&self, group: String) -> Result<Vec<GroupMember>, OrbitMqError> {
        let a = self.0.clone();
        run(async move { Ok(a.group_members(&group).await?.into_iter().map(Into::into).collect()) })
            .await
    }

    /// Each broker's message counters and disk use (through a name server: every registered
    /// broker that answers).
    pub async fn broker_stats(&self) -> Result<Vec<BrokerStat>, OrbitMqError> {
        let a = self.0.clone();
        run(async move { Ok(a.broker_stats().await?.into_iter().map(Into::into).collect()) }).await
    }

    /// Moves `group`'s offsets on `topic` to the first message stored at or after `timestamp`
    /// (ms).
    pub async fn reset_offset(
        &self,
        group: String,
        topic: String,
        timestamp: i64,
    ) -> Result<Vec<QueueOffsetReset>, OrbitMqError> {
        let a = self.0.clone();
        run(async move {
            let moved = a.reset_offset(&group, &topic, timestamp).await?;
            Ok(moved
                .into_iter()
                .map(|r| QueueOffsetReset {
                    queue_id: r.queue_id,
                    old_offset: r.old_offset,
                    new_offset: r.new_offset,
                })
                .collect())
        })
        .await
    }
}
