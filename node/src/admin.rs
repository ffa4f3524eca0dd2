//! `Admin`: topics, groups, offsets and consumer progress.

use std::convert::identity;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use orbitmq_core::client as core;

use crate::error::{check, promise};
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
