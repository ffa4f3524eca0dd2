//! The admin client: topics, consumer groups, consumer progress, message look-ups and offset
//! resets, through the `orbitmq.v1.Admin` service an OrbitMQ broker serves on its client port.
//! `orbitmq admin` is a thin command line over it.
//!
//! It takes and returns plain records (no generated protobuf types), so every binding wraps it
//! as it is. It runs no background task, so it needs no runtime until its first call.
//!
//! Names: with a namespace configured, every topic and group name given is sent as its stored
//! name `NS%name`, as Apache RocketMQ stores it; names come back as stored (`NS%name`), and
//! giving a stored name again is harmless. Errors are the service's gRPC statuses as [`Error`]s:
//! a missing topic, group or message is [`ErrorKind::NotFound`], invalid input (a bad name,
//! queue count, permission, message type; a topic that already exists) is
//! [`ErrorKind::BadRequest`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use crate::client::config::ClientConfig;
use crate::client::error::{Error, ErrorKind, Result};
use crate::client::rpc::{AdminStub, Rpc};
use crate::protocol::admin as pb;

/// Largest answer accepted, bytes: message look-ups return whole bodies (up to 4 MiB each, 64
/// messages by default), far more than tonic's 4 MiB default.
const MAX_RESPONSE: usize = 1 << 30;

/// A topic's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicConfig {
    /// The name (stored name, `NS%name`, in a namespace).
    pub name: String,
    /// Queues consumers read from.
    pub read_queues: u32,
    /// Queues producers write to.
    pub write_queues: u32,
    /// RocketMQ permission bits: 2 write, 4 read, 6 read and write.
    pub perm: u32,
    /// What it takes: `NORMAL`, `FIFO`, `DELAY`, `TRANSACTION` or `MIXED`.
    pub message_type: String,
}

impl TopicConfig {
    /// `name` with RocketMQ's defaults: 8 read and 8 write queues, read and write, `NORMAL`.
    pub fn new(name: impl Into<String>) -> TopicConfig {
        TopicConfig {
            name: name.into(),
            read_queues: 8,
            write_queues: 8,
            perm: 6,
            message_type: "NORMAL".to_owned(),
        }
    }
}

/// Where one queue of a topic lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueRoute {
    /// The broker holding it.
    pub broker_name: String,
    /// That broker's id (0: master).
    pub broker_id: i32,
    /// The broker's `host:port`.
    pub address: String,
    /// The queue id on that broker.
    pub queue_id: u32,
    /// What it allows: `RW`, `R`, `W` or `-`.
    pub perm: String,
}

/// Where a topic's queues live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicRoute {
    /// The topic.
    pub topic: String,
    /// Its queues, by broker name and queue id.
    pub queues: Vec<QueueRoute>,
}

/// One queue's offsets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueStatus {
    /// The broker holding it.
    pub broker_name: String,
    /// The queue id on that broker.
    pub queue_id: u32,
    /// The offset of its oldest message still stored.
    pub min_offset: u64,
    /// The offset the next message gets.
    pub max_offset: u64,
    /// When its last message was stored, ms since the epoch; 0 if it is empty.
    pub last_store_timestamp: i64,
}

/// A topic's queues and their offsets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicStatus {
    /// The topic.
    pub topic: String,
    /// Its queues, by broker name and queue id.
    pub queues: Vec<QueueStatus>,
}

/// A consumer group's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupConfig {
    /// The name (stored name, `NS%name`, in a namespace).
    pub name: String,
    /// Deliveries before a message goes to the dead-letter topic `%DLQ%<group>`.
    pub max_delivery_attempts: u32,
    /// Whether FIFO topics are consumed in order.
    pub fifo: bool,
    /// Where the group starts on a queue it never consumed: `auto` (from the start while
    /// nothing was deleted from the queue, else from its last message), `first` or `last`.
    pub consume_from: String,
}

/// What [`Admin::create_group`] sets; `None` keeps the current value (the broker's default for
/// a new group).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupOptions {
    /// Consume FIFO topics in order.
    pub fifo: Option<bool>,
    /// Deliveries before the dead-letter topic (at least 1).
    pub max_delivery_attempts: Option<u32>,
    /// `auto`, `first` or `last`.
    pub consume_from: Option<String>,
}

/// What [`Admin::create_group`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupCreated {
    /// The group's settings now.
    pub group: GroupConfig,
    /// True if it was created, false if it existed and was updated.
    pub created: bool,
}

/// How far a consumer group is behind on one queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueProgress {
    /// The topic.
    pub topic: String,
    /// The broker holding the queue.
    pub broker_name: String,
    /// The queue id.
    pub queue_id: u32,
    /// The queue's max offset.
    pub broker_offset: u64,
    /// The group's committed offset (the lowest it has not acked).
    pub consumer_offset: u64,
    /// Messages not consumed yet: `broker_offset - consumer_offset`.
    pub lag: u64,
}

/// How far a consumer group is behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsumerProgress {
    /// The group.
    pub group: String,
    /// Each queue it has offsets on, by topic, broker name and queue id.
    pub queues: Vec<QueueProgress>,
    /// The sum of the queues' lag.
    pub total_lag: u64,
    /// Messages in its dead-letter topic `%DLQ%<group>`.
    pub dead_letters: u64,
    /// Messages handed out and not acked yet.
    pub inflight: u64,
}

/// A message as the broker stores it, found by a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// The topic (stored name).
    pub topic: String,
    /// The queue it is in.
    pub queue_id: u32,
    /// Its offset in that queue.
    pub queue_offset: u64,
    /// Where it is in the CommitLog.
    pub commitlog_offset: u64,
    /// The client's message id.
    pub message_id: String,
    /// The broker's id of it (store host and CommitLog offset).
    pub offset_msg_id: String,
    /// The tag, if it has one.
    pub tag: Option<String>,
    /// The keys.
    pub keys: Vec<String>,
    /// User properties.
    pub properties: HashMap<String, String>,
    /// The payload.
    pub body: Bytes,
    /// When the producer made it, ms since the epoch.
    pub born_timestamp: i64,
    /// When the broker stored it, ms since the epoch.
    pub store_timestamp: i64,
    /// The producer's address.
    pub born_host: String,
    /// The broker's address.
    pub store_host: String,
    /// Redeliveries so far.
    pub reconsume_times: u32,
    /// Its stored size, bytes.
    pub size: u32,
    /// The broker group that stores it (`broker_name`; the same on its master and slaves).
    pub broker_name: String,
}

impl From<pb::MessageRecord> for StoredMessage {
    fn from(m: pb::MessageRecord) -> StoredMessage {
        StoredMessage {
            topic: m.topic,
            queue_id: m.queue_id,
            queue_offset: m.queue_offset,
            commitlog_offset: m.commitlog_offset,
            message_id: m.message_id,
            offset_msg_id: m.offset_msg_id,
            tag: Some(m.tag).filter(|t| !t.is_empty()),
            keys: m.keys,
            properties: m.properties,
            body: m.body,
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

/// Where one queue's offset of a group was moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueOffsetReset {
    /// The queue id.
    pub queue_id: u32,
    /// The group's offset before.
    pub old_offset: u64,
    /// Its offset now.
    pub new_offset: u64,
    /// The broker holding the queue.
    pub broker_name: String,
}

/// A broker as a cluster listing shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokerInfo {
    /// Its cluster.
    pub cluster: String,
    /// Its group's name.
    pub broker_name: String,
    /// 0: the master; > 0: a slave.
    pub broker_id: u64,
    /// `host:port` clients reach it at.
    pub address: String,
    /// `async_master`, `sync_master` or `slave`.
    pub role: String,
    /// Its version.
    pub version: String,
    /// When it started, ms since the epoch.
    pub started_at: i64,
    /// When the name server last heard from it, ms since the epoch.
    pub last_heartbeat: i64,
    /// Topics it holds (system topics included).
    pub topics: u32,
    /// End of its CommitLog.
    pub commitlog_max_offset: u64,
    /// A slave: bytes behind its master (`-1`: its master is not registered); 0 for masters.
    pub replication_lag: i64,
}

/// The brokers a name server (or a lone server) knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterInfo {
    /// The server that answered.
    pub name_server: String,
    /// Its live brokers, by group name and id.
    pub brokers: Vec<BrokerInfo>,
}

/// A client of a consumer group connected to a broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupMember {
    /// Its `x-mq-client-id`.
    pub client_id: String,
    /// `PUSH_CONSUMER`, `SIMPLE_CONSUMER` or `PULL_CONSUMER`.
    pub client_type: String,
    /// The SDK's language as it reports it (`JAVA`, `GOLANG`, `RUST`, …).
    pub language: String,
    /// The SDK's version; empty if it sent none.
    pub version: String,
    /// Its host name; empty if it sent none.
    pub host: String,
    /// When a broker last heard from it, ms since the epoch.
    pub last_seen: i64,
    /// The topics it subscribes to (stored names); empty if it did not say.
    pub topics: Vec<String>,
}

/// One broker's message counters and disk use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokerStat {
    /// Its group.
    pub broker_name: String,
    /// Its id in the group (0: the master).
    pub broker_id: u64,
    /// The `host:port` it serves on.
    pub address: String,
    /// Messages stored since it started.
    pub messages_in: u64,
    /// Messages delivered since it started.
    pub messages_out: u64,
    /// Bytes its data directory takes (refreshed every 30 s).
    pub disk_bytes: u64,
}

/// The admin client. Cheap to clone; every clone shares the connections.
#[derive(Clone)]
pub struct Admin {
    inner: Arc<Inner>,
}

struct Inner {
    rpc: Rpc,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").field("endpoints", &self.inner.rpc.config().endpoints).finish()
    }
}

impl Admin {
    /// An admin client of the servers in `config`; checks the configuration and connects
    /// nothing yet (each call connects on first use, trying the endpoints in turn).
    pub fn new(config: ClientConfig) -> Result<Admin> {
        let rpc = Rpc::new(config).map_err(|e| e.with_operation("admin"))?;
        Ok(Admin { inner: Arc::new(Inner { rpc }) })
    }

    /// Creates a topic; [`ErrorKind::BadRequest`] if it exists or a setting is invalid.
    pub async fn create_topic(&self, topic: TopicConfig) -> Result<TopicConfig> {
        let req = pb::CreateTopicRequest { topic: Some(self.topic_pb(topic)), brokers: Vec::new() };
        let resp = self
            .call("create topic", false, req, |mut s, r| async move { s.create_topic(r).await })
            .await?;
        returned(resp.topic, "create topic")
    }

    /// Replaces an existing topic's settings; [`ErrorKind::NotFound`] if it does not exist.
    pub async fn update_topic(&self, topic: TopicConfig) -> Result<TopicConfig> {
        let req = pb::UpdateTopicRequest { topic: Some(self.topic_pb(topic)) };
        let resp = self
            .call("update topic", false, req, |mut s, r| async move { s.update_topic(r).await })
            .await?;
        returned(resp.topic, "update topic")
    }

    /// Deletes a topic's settings (its stored messages age out by retention).
    pub async fn delete_topic(&self, topic: &str) -> Result<()> {
        let req = pb::DeleteTopicRequest { topic: self.name(topic) };
        self.call("delete topic", false, req, |mut s, r| async move { s.delete_topic(r).await })
            .await?;
        Ok(())
    }

    /// Every topic, by name; with `include_system`, also `%RETRY%`, `%DLQ%` and other system
    /// topics.
    pub async fn list_topics(&self, include_system: bool) -> Result<Vec<TopicConfig>> {
        let req = pb::ListTopicsRequest { include_system };
        let resp = self
            .call("list topics", true, req, |mut s, r| async move { s.list_topics(r).await })
            .await?;
        let mut topics: Vec<TopicConfig> = resp.topics.into_iter().map(topic_config).collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// One topic's settings; [`ErrorKind::NotFound`] if it does not exist.
    pub async fn topic(&self, topic: &str) -> Result<TopicConfig> {
        let name = self.name(topic);
        self.list_topics(true).await?.into_iter().find(|t| t.name == name).ok_or_else(|| {
            Error::new(ErrorKind::NotFound, format!("topic {name:?} does not exist"))
                .with_operation("get topic")
        })
    }

    /// Where a topic's queues live.
    pub async fn topic_route(&self, topic: &str) -> Result<TopicRoute> {
        let req = pb::TopicRouteRequest { topic: self.name(topic) };
        let resp = self
            .call("topic route", true, req, |mut s, r| async move { s.topic_route(r).await })
            .await?;
        let mut queues: Vec<QueueRoute> = resp
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
        queues.sort_by(|a, b| (&a.broker_name, a.queue_id).cmp(&(&b.broker_name, b.queue_id)));
        Ok(TopicRoute { topic: resp.topic, queues })
    }

    /// Each queue's min and max offset and last store time.
    pub async fn topic_status(&self, topic: &str) -> Result<TopicStatus> {
        let req = pb::TopicStatusRequest { topic: self.name(topic) };
        let resp = self
            .call("topic status", true, req, |mut s, r| async move { s.topic_status(r).await })
            .await?;
        let mut queues: Vec<QueueStatus> = resp
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
        queues.sort_by(|a, b| (&a.broker_name, a.queue_id).cmp(&(&b.broker_name, b.queue_id)));
        Ok(TopicStatus { topic: resp.topic, queues })
    }

    /// Creates a consumer group, or changes the settings `options` gives of an existing one.
    pub async fn create_group(&self, group: &str, options: GroupOptions) -> Result<GroupCreated> {
        let req = pb::CreateGroupRequest {
            name: self.name(group),
            fifo: options.fifo,
            max_delivery_attempts: options.max_delivery_attempts,
            consume_from: options.consume_from,
        };
        let resp = self
            .call("create group", false, req, |mut s, r| async move { s.create_group(r).await })
            .await?;
        let group = resp.group.map(group_config).ok_or_else(|| {
            Error::new(ErrorKind::Internal, "the server answered without the group")
                .with_operation("create group")
        })?;
        Ok(GroupCreated { group, created: resp.created })
    }

    /// Every consumer group, by name.
    pub async fn list_groups(&self) -> Result<Vec<GroupConfig>> {
        let req = pb::ListGroupsRequest {};
        let resp = self
            .call("list groups", true, req, |mut s, r| async move { s.list_groups(r).await })
            .await?;
        let mut groups: Vec<GroupConfig> = resp.groups.into_iter().map(group_config).collect();
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(groups)
    }

    /// Deletes a consumer group: its settings, offsets and consumption state.
    /// [`ErrorKind::NotFound`] if it does not exist.
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        let req = pb::DeleteGroupRequest { group: self.name(group) };
        self.call("delete group", false, req, |mut s, r| async move { s.delete_group(r).await })
            .await?;
        Ok(())
    }

    /// Each queue's broker offset, the group's offset and the lag between, on `topic` or (with
    /// `None`) every topic the group has offsets on.
    pub async fn consumer_progress(
        &self,
        group: &str,
        topic: Option<&str>,
    ) -> Result<ConsumerProgress> {
        let req = pb::ConsumerProgressRequest {
            group: self.name(group),
            topic: topic.map(|t| self.name(t)).unwrap_or_default(),
        };
        let resp =
            self.call("consumer progress", true, req, |mut s, r| async move {
                s.consumer_progress(r).await
            })
            .await?;
        let mut queues: Vec<QueueProgress> = resp
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
        queues.sort_by(|a, b| {
            (&a.topic, &a.broker_name, a.queue_id).cmp(&(&b.topic, &b.broker_name, b.queue_id))
        });
        Ok(ConsumerProgress {
            group: resp.group,
            queues,
            total_lag: resp.total_lag,
            dead_letters: resp.dead_letters,
            inflight: resp.inflight,
        })
    }

    /// The message with `id`: its client message id or its offset message id.
    /// [`ErrorKind::NotFound`] if there is none.
    pub async fn query_message_by_id(&self, id: &str) -> Result<Vec<StoredMessage>> {
        let req = pb::QueryMessageByIdRequest { id: id.to_owned() };
        let resp = self
            .call("query message by id", true, req, |s, r| async move {
                s.max_decoding_message_size(MAX_RESPONSE).query_message_by_id(r).await
            })
            .await?;
        Ok(resp.messages.into_iter().map(StoredMessage::from).collect())
    }

    /// A topic's messages with `key`, stored between `begin_timestamp` and `end_timestamp` (ms
    /// since the epoch; `None`: the beginning, the end), at most `max` (`None`: the broker's
    /// default, 64). None found is an empty list.
    pub async fn query_message_by_key(
        &self,
        topic: &str,
        key: &str,
        begin_timestamp: Option<i64>,
        end_timestamp: Option<i64>,
        max: Option<u32>,
    ) -> Result<Vec<StoredMessage>> {
        let req = pb::QueryMessageByKeyRequest {
            topic: self.name(topic),
            key: key.to_owned(),
            begin_timestamp: begin_timestamp.unwrap_or(0),
            end_timestamp: end_timestamp.unwrap_or(0),
            max: max.unwrap_or(0),
        };
        let resp = self
            .call("query message by key", true, req, |s, r| async move {
                s.max_decoding_message_size(MAX_RESPONSE).query_message_by_key(r).await
            })
            .await?;
        Ok(resp.messages.into_iter().map(StoredMessage::from).collect())
    }

    /// The message at `offset` of queue `queue_id` of `topic`; [`ErrorKind::NotFound`] if there
    /// is none. Through a name server whose topic spans several brokers, each has its own queue
    /// `queue_id`: when more than one has a message there the answer is
    /// [`ErrorKind::BadRequest`] naming them, and
    /// [`query_message_by_offset_on`](Admin::query_message_by_offset_on) picks one.
    pub async fn query_message_by_offset(
        &self,
        topic: &str,
        queue_id: u32,
        offset: u64,
    ) -> Result<StoredMessage> {
        self.query_message_by_offset_on(None, topic, queue_id, offset).await
    }

    /// Like [`query_message_by_offset`](Admin::query_message_by_offset), in the queue of broker
    /// group `broker_name` when it is given (as [`StoredMessage::broker_name`] and
    /// `cluster list` name it).
    pub async fn query_message_by_offset_on(
        &self,
        broker_name: Option<&str>,
        topic: &str,
        queue_id: u32,
        offset: u64,
    ) -> Result<StoredMessage> {
        let req = pb::QueryMessageByOffsetRequest {
            topic: self.name(topic),
            queue_id,
            offset,
            broker_name: broker_name.unwrap_or_default().to_owned(),
        };
        let resp = self
            .call("query message by offset", true, req, |s, r| async move {
                s.max_decoding_message_size(MAX_RESPONSE).query_message_by_offset(r).await
            })
            .await?;
        resp.messages.into_iter().next().map(StoredMessage::from).ok_or_else(|| {
            Error::new(ErrorKind::NotFound, format!("no message at offset {offset}"))
                .with_operation("query message by offset")
        })
    }

    /// Moves `group`'s offsets on `topic` to the first message stored at or after `timestamp`
    /// (ms since the epoch: 0 is the beginning, now the end). Messages it holds unacked are
    /// handed out again from the new offsets. Returns each queue's move, by queue id.
    pub async fn reset_offset(
        &self,
        group: &str,
        topic: &str,
        timestamp: i64,
    ) -> Result<Vec<QueueOffsetReset>> {
        let req =
            pb::ResetOffsetRequest { group: self.name(group), topic: self.name(topic), timestamp };
        let resp = self
            .call("reset offset", false, req, |mut s, r| async move { s.reset_offset(r).await })
            .await?;
        let mut queues: Vec<QueueOffsetReset> = resp
            .queues
            .into_iter()
            .map(|q| QueueOffsetReset {
                queue_id: q.queue_id,
                old_offset: q.old_offset,
                new_offset: q.new_offset,
                broker_name: q.broker_name,
            })
            .collect();
        queues.sort_by(|a, b| (&a.broker_name, a.queue_id).cmp(&(&b.broker_name, b.queue_id)));
        Ok(queues)
    }

    /// Message counters and disk use of every broker that answers (through a name server), or
    /// of the server itself.
    pub async fn broker_stats(&self) -> Result<Vec<BrokerStat>> {
        let resp = self
            .call("broker stats", true, pb::BrokerStatsRequest {}, |mut s, r| async move {
                s.broker_stats(r).await
            })
            .await?;
        Ok(resp
            .brokers
            .into_iter()
            .map(|b| BrokerStat {
                broker_name: b.broker_name,
                broker_id: b.broker_id,
                address: b.address,
                messages_in: b.messages_in,
                messages_out: b.messages_out,
                disk_bytes: b.disk_bytes,
            })
            .collect())
    }

    /// The brokers of the cluster (from a name server), or the server itself (a standalone
    /// server or a lone broker).
    pub async fn cluster_list(&self) -> Result<ClusterInfo> {
        let resp = self
            .call("cluster list", true, pb::ClusterListRequest {}, |mut s, r| async move {
                s.cluster_list(r).await
            })
            .await?;
        Ok(ClusterInfo {
            name_server: resp.name_server,
            brokers: resp
                .brokers
                .into_iter()
                .map(|b| BrokerInfo {
                    cluster: b.cluster,
                    broker_name: b.broker_name,
                    broker_id: b.broker_id,
                    address: b.address,
                    role: b.role,
                    version: b.version,
                    started_at: b.started_at,
                    last_heartbeat: b.last_heartbeat,
                    topics: b.topics,
                    commitlog_max_offset: b.commitlog_max_offset,
                    replication_lag: b.replication_lag,
                })
                .collect(),
        })
    }

    /// The clients of `group` connected to the broker (through a name server: to any broker),
    /// by client id. None connected is an empty list.
    pub async fn group_members(&self, group: &str) -> Result<Vec<GroupMember>> {
        let req = pb::ListGroupMembersRequest { group: self.name(group) };
        let resp =
            self.call("group members", true, req, |mut s, r| async move {
                s.list_group_members(r).await
            })
            .await?;
        let mut members: Vec<GroupMember> = resp
            .members
            .into_iter()
            .map(|m| GroupMember {
                client_id: m.client_id,
                client_type: m.client_type,
                language: m.language,
                version: m.version,
                host: m.host,
                last_seen: m.last_seen,
                topics: m.topics,
            })
            .collect();
        members.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(members)
    }

    /// Delivers the message `message_id` (client or offset message id) of `topic` once more to
    /// `group` alone: the group's consumers receive it again, other groups do not.
    /// [`ErrorKind::NotFound`] if the group, the topic or the message does not exist.
    pub async fn resend_message(&self, group: &str, topic: &str, message_id: &str) -> Result<()> {
        let req = pb::ResendMessageRequest {
            group: self.name(group),
            topic: self.name(topic),
            message_id: message_id.to_owned(),
        };
        self.call(
            "resend message",
            false,
            req,
            |mut s, r| async move { s.resend_message(r).await },
        )
        .await?;
        Ok(())
    }

    /// `name`'s stored name in the configured namespace.
    fn name(&self, name: &str) -> String {
        crate::protocol::namespace::wrap(self.inner.rpc.namespace(), name)
    }

    fn topic_pb(&self, t: TopicConfig) -> pb::TopicConfig {
        pb::TopicConfig {
            name: self.name(&t.name),
            read_queues: t.read_queues,
            write_queues: t.write_queues,
            perm: t.perm,
            message_type: t.message_type,
        }
    }

    /// Calls the admin service on the configured endpoints in turn, reachable ones first, until
    /// one answers. A timed-out call moves on only if it is `idempotent`: another may have
    /// been done by the server that did not answer in time.
    async fn call<Req, Resp, F, Fut>(
        &self,
        operation: &'static str,
        idempotent: bool,
        message: Req,
        call: F,
    ) -> Result<Resp>
    where
        Req: Clone,
        F: Fn(AdminStub, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let rpc = &self.inner.rpc;
        let configured = rpc.config().endpoint_list().map_err(|e| e.with_operation(operation))?;
        let mut order: Vec<&String> = configured.iter().filter(|e| !rpc.is_isolated(e)).collect();
        order.extend(configured.iter().filter(|e| rpc.is_isolated(e)));
        let mut last = None;
        for endpoint in order {
            match rpc.call_admin(operation, endpoint, message.clone(), &call).await {
                Ok(resp) => return Ok(resp),
                Err(e)
                    if e.kind() == ErrorKind::Unavailable
                        || (idempotent && e.kind() == ErrorKind::Timeout) =>
                {
                    last = Some(e);
                }
                Err(e) if e.kind() == ErrorKind::Unsupported && e.status_code().is_none() => {
                    // An empty UNIMPLEMENTED: the server has no admin service at all.
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        "the server does not serve orbitmq.v1.Admin (is it an OrbitMQ broker?)",
                    )
                    .with_operation(operation)
                    .with_endpoint(endpoint.as_str()));
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::new(ErrorKind::Unavailable, "no endpoint to ask").with_operation(operation)
        }))
    }
}

fn returned(topic: Option<pb::TopicConfig>, operation: &'static str) -> Result<TopicConfig> {
    topic.map(topic_config).ok_or_else(|| {
        Error::new(ErrorKind::Internal, "the server answered without the topic")
            .with_operation(operation)
    })
}

fn topic_config(t: pb::TopicConfig) -> TopicConfig {
    TopicConfig {
        name: t.name,
        read_queues: t.read_queues,
        write_queues: t.write_queues,
        perm: t.perm,
        message_type: t.message_type,
    }
}

fn group_config(g: pb::GroupConfig) -> GroupConfig {
    GroupConfig {
        name: g.name,
        max_delivery_attempts: g.max_delivery_attempts,
        fifo: g.fifo,
        consume_from: g.consume_from,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handle_is_shareable_and_needs_no_runtime_to_build() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<Admin>();
        // No runtime here: building connects nothing.
        let admin = Admin::new(ClientConfig::new("127.0.0.1:1").namespace("shop")).unwrap();
        assert_eq!(admin.name("orders"), "shop%orders");
        assert_eq!(admin.name("shop%orders"), "shop%orders");
        assert_eq!(admin.name("%DLQ%billing"), "%DLQ%shop%billing");
        let e = Admin::new(ClientConfig::new("no-port")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest);
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_skipped_for_the_next() {
        // Nobody listens on ports just freed; both are tried, the error says unavailable.
        let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let (a, b) = (free(), free());
        let admin = Admin::new(ClientConfig::new(format!("{a};{b}"))).unwrap();
        let e = admin.list_topics(false).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
        assert_eq!(e.operation(), Some("list topics"));
        assert!(admin.inner.rpc.is_isolated(&a.to_string()), "{a} not isolated");
        assert!(admin.inner.rpc.is_isolated(&b.to_string()), "{b} not tried");
    }
}
