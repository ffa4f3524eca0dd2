//! `Admin`: topics, groups and consumer progress.

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
}
