//! `Admin`: topics, groups, offsets and consumer progress.

use std::collections::HashMap;
use std::convert::identity;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use orbitmq_core::client as core;

use crate::error::{bad_request, check, promise};
use crate::message::{Credentials, connection};

/// How to reach the servers.
#[napi(object, object_to_js = false)]
pub struct AdminOptions {
    pub endpoints: String,
    pub namespace: Option<String>,
    pub credentials: Option<Credentials>,
    pub tls: Option<Either<bool, String>>,
    pub request_timeout: Option<u32>,
}

/// A topic's configuration.
#[napi(object)]
pub struct TopicConfig {
    pub name: String,
    /// Default 8.
    pub read_queues: Option<u32>,
    /// Default 8.
    pub write_queues: Option<u32>,
    /// 6 read-write (default), 4 read-only, 2 write-only.
    pub perm: Option<u32>,
    /// `NORMAL` (default), `FIFO`, `DELAY` or `TRANSACTION`.
    pub message_type: Option<String>,
}

impl From<TopicConfig> for core::TopicConfig {
    fn from(t: TopicConfig) -> core::TopicConfig {
        let d = core::TopicConfig::new(t.name);
        core::TopicConfig {
            read_queues: t.read_queues.unwrap_or(d.read_queues),
            write_queues: t.write_queues.unwrap_or(d.write_queues),
            perm: t.perm.unwrap_or(d.perm),
            message_type: t.message_type.unwrap_or(d.message_type),
            name: d.name,
        }
    }
}

impl From<core::TopicConfig> for TopicConfig {
    fn from(t: core::TopicConfig) -> TopicConfig {
        TopicConfig {
            name: t.name,
            read_queues: Some(t.read_queues),
            write_queues: Some(t.write_queues),
            perm: Some(t.perm),
            message_type: Some(t.message_type),
        }
    }
}

/// Options of a new group.
#[napi(object)]
pub struct GroupOptions {
    /// Each message group consumed in order.
    pub fifo: Option<bool>,
    /// Deliveries before the dead-letter queue.
    pub max_delivery_attempts: Option<u32>,
    /// Where a new group starts: `LAST` or `FIRST`, …
    pub consume_from: Option<String>,
}

/// A group's configuration.
#[napi(object)]
pub struct GroupConfig {
    pub name: String,
    pub max_delivery_attempts: u32,
    pub fifo: bool,
    pub consume_from: String,
    /// `createGroup`: whether it was created (false: it existed).
    pub created: Option<bool>,
}

fn group(g: core::GroupConfig, created: Option<bool>) -> GroupConfig {
    GroupConfig {
        name: g.name,
        max_delivery_attempts: g.max_delivery_attempts,
        fifo: g.fifo,
        consume_from: g.consume_from,
        created,
    }
}

/// The offsets of one queue.
#[napi(object)]
pub struct QueueStatus {
    pub broker_name: String,
    pub queue_id: u32,
    pub min_offset: i64,
    pub max_offset: i64,
    pub last_store_timestamp: i64,
}

/// How far a group is in one queue.
#[napi(object)]
pub struct QueueProgress {
    pub topic: String,
    pub broker_name: String,
    pub queue_id: u32,
    pub broker_offset: i64,
    pub consumer_offset: i64,
    pub lag: i64,
}

/// How far a group is.
#[napi(object)]
pub struct ConsumerProgress {
    pub group: String,
    pub queues: Vec<QueueProgress>,
    pub total_lag: i64,
    pub dead_letters: i64,
    pub inflight: i64,
}

/// A queue offset moved by `resetOffset`.
#[napi(object)]
pub struct QueueOffsetReset {
    pub queue_id: u32,
    pub old_offset: i64,
    pub new_offset: i64,
}

/// One queue of a topic's route.
#[napi(object)]
pub struct QueueRoute {
    pub broker_name: String,
    pub broker_id: i32,
    pub address: String,
    pub queue_id: u32,
    /// `RW`, `R-`, `-W` or `--`.
    pub perm: String,
}

/// A message as the broker stores it (the admin queries' answer).
#[napi(object)]
pub struct StoredMessage {
    pub topic: String,
    pub queue_id: u32,
    pub queue_offset: i64,
    pub commitlog_offset: i64,
    pub message_id: String,
    pub offset_msg_id: String,
    pub tag: Option<String>,
    pub keys: Vec<String>,
    pub properties: HashMap<String, String>,
    pub body: Buffer,
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
            queue_offset: m.queue_offset as i64,
            commitlog_offset: m.commitlog_offset as i64,
            message_id: m.message_id,
            offset_msg_id: m.offset_msg_id,
            tag: m.tag,
            keys: m.keys,
            properties: m.properties,
            body: Buffer::from(m.body.to_vec()),
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
#[napi(object)]
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

/// One broker's message counters (since it started) and disk use.
#[napi(object)]
pub struct BrokerStat {
    pub broker_name: String,
    pub broker_id: i64,
    pub address: String,
    pub messages_in: i64,
    pub messages_out: i64,
    pub disk_bytes: i64,
}

fn stored(list: Vec<core::StoredMessage>) -> Vec<StoredMessage> {
    list.into_iter().map(StoredMessage::from).collect()
}

/// Administers topics and groups.
#[napi]
pub struct Admin {
    inner: core::Admin,
}

#[napi]
impl Admin {
    #[napi(constructor)]
    pub fn new(env: Env, options: AdminOptions) -> Result<Admin> {
        Ok(Admin { inner: check(env, core::Admin::new(connection!(options).config()))? })
    }

    #[napi]
    pub fn create_topic<'e>(
        &self,
        env: &'e Env,
        topic: TopicConfig,
    ) -> Result<PromiseRaw<'e, TopicConfig>> {
        let (a, t) = (self.inner.clone(), topic.into());
        promise(env, async move { a.create_topic(t).await }, TopicConfig::from)
    }

    #[napi]
    pub fn update_topic<'e>(
        &self,
        env: &'e Env,
        topic: TopicConfig,
    ) -> Result<PromiseRaw<'e, TopicConfig>> {
        let (a, t) = (self.inner.clone(), topic.into());
        promise(env, async move { a.update_topic(t).await }, TopicConfig::from)
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn delete_topic<'e>(&self, env: &'e Env, topic: String) -> Result<PromiseRaw<'e, ()>> {
        let a = self.inner.clone();
        promise(env, async move { a.delete_topic(&topic).await }, identity)
    }

    #[napi]
    pub fn list_topics<'e>(
        &self,
        env: &'e Env,
        include_system: Option<bool>,
    ) -> Result<PromiseRaw<'e, Vec<TopicConfig>>> {
        let a = self.inner.clone();
        promise(env, async move { a.list_topics(include_system.unwrap_or(false)).await }, |l| {
            l.into_iter().map(TopicConfig::from).collect()
        })
    }

    #[napi]
    pub fn topic<'e>(&self, env: &'e Env, topic: String) -> Result<PromiseRaw<'e, TopicConfig>> {
        let a = self.inner.clone();
        promise(env, async move { a.topic(&topic).await }, TopicConfig::from)
    }

    /// The min and max offsets of each queue of `topic`.
    #[napi]
    pub fn topic_status<'e>(
        &self,
        env: &'e Env,
        topic: String,
    ) -> Result<PromiseRaw<'e, Vec<QueueStatus>>> {
        let a = self.inner.clone();
        promise(env, async move { a.topic_status(&topic).await }, |s| {
            s.queues
                .into_iter()
                .map(|q| QueueStatus {
                    broker_name: q.broker_name,
                    queue_id: q.queue_id,
                    min_offset: q.min_offset as i64,
                    max_offset: q.max_offset as i64,
                    last_store_timestamp: q.last_store_timestamp,
                })
                .collect()
        })
    }

    /// Where each queue of `topic` is.
    #[napi]
    pub fn topic_route<'e>(
        &self,
        env: &'e Env,
        topic: String,
    ) -> Result<PromiseRaw<'e, Vec<QueueRoute>>> {
        let a = self.inner.clone();
        promise(env, async move { a.topic_route(&topic).await }, |r| {
            r.queues
                .into_iter()
                .map(|q| QueueRoute {
                    broker_name: q.broker_name,
                    broker_id: q.broker_id,
                    address: q.address,
                    queue_id: q.queue_id,
                    perm: q.perm,
                })
                .collect()
        })
    }

    /// The messages with this id (a message id or an offset message id).
    #[napi]
    pub fn query_message_by_id<'e>(
        &self,
        env: &'e Env,
        id: String,
    ) -> Result<PromiseRaw<'e, Vec<StoredMessage>>> {
        let a = self.inner.clone();
        promise(env, async move { a.query_message_by_id(&id).await }, stored)
    }

    /// The messages of `topic` with `key`, stored between the timestamps (ms), `max` at most.
    #[napi]
    pub fn query_message_by_key<'e>(
        &self,
        env: &'e Env,
        topic: String,
        key: String,
        begin_timestamp: Option<i64>,
        end_timestamp: Option<i64>,
        max: Option<u32>,
    ) -> Result<PromiseRaw<'e, Vec<StoredMessage>>> {
        let a = self.inner.clone();
        let fut = async move {
            a.query_message_by_key(&topic, &key, begin_timestamp, end_timestamp, max).await
        };
        promise(env, fut, stored)
    }

    /// The message at `offset` of queue `queueId` of `topic`; through a name server, in the
    /// queue of broker group `brokerName` when given (needed when several brokers have a
    /// message there).
    #[napi]
    pub fn query_message_by_offset<'e>(
        &self,
        env: &'e Env,
        topic: String,
        queue_id: u32,
        offset: i64,
        broker_name: Option<String>,
    ) -> Result<PromiseRaw<'e, StoredMessage>> {
        let a = self.inner.clone();
        let offset = u64::try_from(offset).map_err(|_| bad_request("the offset is negative"));
        let offset = check(*env, offset)?;
        let fut = async move {
            a.query_message_by_offset_on(broker_name.as_deref(), &topic, queue_id, offset).await
        };
        promise(env, fut, StoredMessage::from)
    }

    /// Delivers a stored message (by message id or offset message id) once more to `group`
    /// only.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn resend_message<'e>(
        &self,
        env: &'e Env,
        group: String,
        topic: String,
        message_id: String,
    ) -> Result<PromiseRaw<'e, ()>> {
        let a = self.inner.clone();
        promise(env, async move { a.resend_message(&group, &topic, &message_id).await }, identity)
    }

    /// The clients of `group` connected to the brokers.
    #[napi]
    pub fn group_members<'e>(
        &self,
        env: &'e Env,
        group: String,
    ) -> Result<PromiseRaw<'e, Vec<GroupMember>>> {
        let a = self.inner.clone();
        promise(env, async move { a.group_members(&group).await }, |list| {
            list.into_iter()
                .map(|m| GroupMember {
                    client_id: m.client_id,
                    client_type: m.client_type,
                    language: m.language,
                    version: m.version,
                    host: m.host,
                    last_seen: m.last_seen,
                    topics: m.topics,
                })
                .collect()
        })
    }

    /// Each broker's message counters and disk use (through a name server: every registered
    /// broker that answers).
    #[napi]
    pub fn broker_stats<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, Vec<BrokerStat>>> {
        let a = self.inner.clone();
        promise(env, async move { a.broker_stats().await }, |list| {
            list.into_iter()
                .map(|s| BrokerStat {
                    broker_name: s.broker_name,
                    broker_id: s.broker_id as i64,
                    address: s.address,
                    messages_in: s.messages_in as i64,
                    messages_out: s.messages_out as i64,
                    disk_bytes: s.disk_bytes as i64,
                })
                .collect()
        })
    }

    #[napi]
    pub fn create_group<'e>(
        &self,
        env: &'e Env,
        name: String,
        options: Option<GroupOptions>,
    ) -> Result<PromiseRaw<'e, GroupConfig>> {
        let a = self.inner.clone();
        let o = options.map_or_else(core::GroupOptions::default, |o| core::GroupOptions {
            fifo: o.fifo,
            max_delivery_attempts: o.max_delivery_attempts,
            consume_from: o.consume_from,
        });
        promise(env, async move { a.create_group(&name, o).await }, |g| {
            group(g.group, Some(g.created))
        })
    }

    #[napi]
    pub fn list_groups<'e>(&self, env: &'e Env) -> Result<PromiseRaw<'e, Vec<GroupConfig>>> {
        let a = self.inner.clone();
        promise(env, async move { a.list_groups().await }, |l| {
            l.into_iter().map(|g| group(g, None)).collect()
        })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn delete_group<'e>(&self, env: &'e Env, name: String) -> Result<PromiseRaw<'e, ()>> {
        let a = self.inner.clone();
        promise(env, async move { a.delete_group(&name).await }, identity)
    }

    /// The group's offsets against the broker's, per queue (of `topic`, or of every topic).
    #[napi]
    pub fn consumer_progress<'e>(
        &self,
        env: &'e Env,
        group: String,
        topic: Option<String>,
    ) -> Result<PromiseRaw<'e, ConsumerProgress>> {
        let a = self.inner.clone();
        let fut = async move { a.consumer_progress(&group, topic.as_deref()).await };
        promise(env, fut, |p| ConsumerProgress {
            group: p.group,
            queues: p
                .queues
                .into_iter()
                .map(|q| QueueProgress {
                    topic: q.topic,
                    broker_name: q.broker_name,
                    queue_id: q.queue_id,
                    broker_offset: q.broker_offset as i64,
                    consumer_offset: q.consumer_offset as i64,
                    lag: q.lag as i64,
                })
                .collect(),
            total_lag: p.total_lag as i64,
            dead_letters: p.dead_letters as i64,
            inflight: p.inflight as i64,
        })
    }

    /// Moves the group's offsets in `topic` to the first message stored at or after
    /// `timestamp` (ms).
    #[napi]
    pub fn reset_offset<'e>(
        &self,
        env: &'e Env,
        group: String,
        topic: String,
        timestamp: i64,
    ) -> Result<PromiseRaw<'e, Vec<QueueOffsetReset>>> {
        let a = self.inner.clone();
        promise(env, async move { a.reset_offset(&group, &topic, timestamp).await }, |l| {
            l.into_iter()
                .map(|r| QueueOffsetReset {
                    queue_id: r.queue_id,
                    old_offset: r.old_offset as i64,
                    new_offset: r.new_offset as i64,
                })
                .collect()
        })
    }
}
