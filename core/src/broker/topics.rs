//! Topics and consumer groups on this broker: their configs (persisted by the store), the
//! auto-creation policy, and the queue routes built from them.

use std::str::FromStr;

use crate::broker::error::{BrokerError, Limit, Result};
use crate::broker::{Broker, validate};
use crate::protocol::v2::{self, Code, MessageType, Permission};
use crate::storage::{GroupConfig, TopicConfig};

/// RocketMQ permission bits.
pub const PERM_WRITE: u32 = 2;
/// RocketMQ permission bits.
pub const PERM_READ: u32 = 4;

/// What messages a topic takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    /// Plain messages.
    Normal,
    /// Ordered by message group.
    Fifo,
    /// Delivered at a time.
    Delay,
    /// Half message, then commit or rollback.
    Transaction,
    /// Any of the four.
    Mixed,
}

impl TopicKind {
    /// The name stored in topic configs and shown by `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            TopicKind::Normal => "NORMAL",
            TopicKind::Fifo => "FIFO",
            TopicKind::Delay => "DELAY",
            TopicKind::Transaction => "TRANSACTION",
            TopicKind::Mixed => "MIXED",
        }
    }

    /// The message types a route advertises for this kind.
    pub fn accepts(self) -> Vec<MessageType> {
        match self {
            TopicKind::Normal => vec![MessageType::Normal],
            TopicKind::Fifo => vec![MessageType::Fifo],
            TopicKind::Delay => vec![MessageType::Delay],
            TopicKind::Transaction => vec![MessageType::Transaction],
            TopicKind::Mixed => vec![
                MessageType::Normal,
                MessageType::Fifo,
                MessageType::Delay,
                MessageType::Transaction,
            ],
        }
    }
}

impl FromStr for TopicKind {
    type Err = BrokerError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_uppercase().as_str() {
            "NORMAL" | "" => Ok(TopicKind::Normal),
            "FIFO" => Ok(TopicKind::Fifo),
            "DELAY" => Ok(TopicKind::Delay),
            "TRANSACTION" => Ok(TopicKind::Transaction),
            "MIXED" => Ok(TopicKind::Mixed),
            other => Err(BrokerError::new(
                Code::BadRequest,
                format!(
                    "unknown message type {other:?} (normal, fifo, delay, transaction or mixed)"
                ),
            )),
        }
    }
}

/// The kind of a stored topic config (an unreadable one counts as mixed: accept, don't lose).
pub fn kind_of(cfg: &TopicConfig) -> TopicKind {
    cfg.message_type.parse().unwrap_or(TopicKind::Mixed)
}

/// Checks a topic config an operator asked for.
pub fn check_topic_config(name: &str, cfg: &TopicConfig) -> Result<()> {
    validate::topic(name)?;
    let bad = |m: String| Err(BrokerError::new(Code::BadRequest, m));
    if cfg.read_queues == 0
        || cfg.write_queues == 0
        || cfg.read_queues > 1024
        || cfg.write_queues > 1024
    {
        return bad(format!(
            "read and write queues must be 1..=1024 (got {} read, {} write)",
            cfg.read_queues, cfg.write_queues
        ));
    }
    if cfg.perm & !(PERM_READ | PERM_WRITE) != 0 {
        return bad(format!("perm {} is not a combination of 2 (write) and 4 (read)", cfg.perm));
    }
    cfg.message_type.parse::<TopicKind>().map(|_| ())
}

impl Broker {
    /// The config of `topic`, creating it with the defaults when auto-creation is on.
    pub fn topic_or_create(&self, topic: &str) -> Result<TopicConfig> {
        validate::topic(topic)?;
        if let Some(cfg) = self.store().topics().get(topic) {
            return Ok(cfg);
        }
        if !self.config().auto_create_topics || self.is_slave() {
            return Err(BrokerError::new(
                Code::TopicNotFound,
                format!(
                    "topic {topic:?} does not exist (create it with `orbitmq admin topic create`)"
                ),
            ));
        }
        self.check_topic_room()?;
        let cfg = self.default_topic_config();
        self.store().topics().put(topic, cfg.clone());
        tracing::info!(topic, "auto-created topic");
        Ok(cfg)
    }

    /// `TOO_MANY_REQUESTS` when `max_topics` topics exist (checked before creating one).
    pub(crate) fn check_topic_room(&self) -> Result<()> {
        let (n, max) = (self.store().topics().len(), self.config().max_topics);
        if n >= max {
            return Err(BrokerError::limit(Limit::Topics, max, format!("{n} topics exist")));
        }
        Ok(())
    }

    /// `TOO_MANY_REQUESTS` when `max_groups` groups exist (checked before creating one).
    pub(crate) fn check_group_room(&self) -> Result<()> {
        let (n, max) = (self.store().groups().len(), self.config().max_groups);
        if n >= max {
            return Err(BrokerError::limit(
                Limit::Groups,
                max,
                format!("{n} consumer groups exist"),
            ));
        }
        Ok(())
    }

    /// Deletes `topic`: its config, every group's consumption state and offsets of it, and its
    /// ConsumeQueues (the CommitLog keeps its messages until retention removes them). Saved
    /// before it returns. `TOPIC_NOT_FOUND` if there is no such topic.
    pub async fn delete_topic(&self, topic: &str) -> Result<()> {
        let store = self.store();
        if store.topics().remove(topic).is_none() {
            return Err(BrokerError::new(
                Code::TopicNotFound,
                format!("topic {topic:?} does not exist"),
            ));
        }
        store.topics().save()?;
        self.pop().forget_topic(topic);
        self.metrics().forget_topic(topic);
        let offsets = store.consumer_offsets();
        for (group, t) in offsets.groups() {
            if t == topic {
                offsets.remove(&group, &t);
            }
        }
        offsets.save()?;
        let queues = store.delete_topic(topic).await?;
        tracing::info!(topic, queues, "topic deleted");
        Ok(())
    }

    /// Deletes consumer group `group`: its config, its consumption state and offsets on every
    /// topic. Saved before it returns. `CONSUMER_GROUP_NOT_FOUND` if there is no such group.
    pub fn delete_group(&self, group: &str) -> Result<()> {
        let store = self.store();
        if store.groups().remove(group).is_none() {
            return Err(BrokerError::new(
                Code::ConsumerGroupNotFound,
                format!("consumer group {group:?} does not exist"),
            ));
        }
        store.groups().save()?;
        self.pop().forget_group(group);
        self.metrics().forget_group(group);
        let offsets = store.consumer_offsets();
        for (g, topic) in offsets.groups() {
            if g == group {
                offsets.remove(&g, &topic);
            }
        }
        offsets.save()?;
        tracing::info!(group, "consumer group deleted");
        Ok(())
    }

    /// The config of an existing topic.
    pub fn topic(&self, topic: &str) -> Result<TopicConfig> {
        self.store().topics().get(topic).ok_or_else(|| {
            BrokerError::new(Code::TopicNotFound, format!("topic {topic:?} does not exist"))
        })
    }

    fn default_topic_config(&self) -> TopicConfig {
        TopicConfig {
            read_queues: self.config().default_queues,
            write_queues: self.config().default_queues,
            perm: PERM_READ | PERM_WRITE,
            message_type: TopicKind::Mixed.as_str().to_owned(),
        }
    }

    /// The config of consumer group `group`, creating it with the defaults when
    /// auto-creation is on.
    pub fn group_or_create(&self, group: &str) -> Result<GroupConfig> {
        validate::group(group)?;
        if let Some(cfg) = self.store().groups().get(group) {
            return Ok(cfg);
        }
        if !self.config().auto_create_groups {
            return Err(BrokerError::new(
                Code::ConsumerGroupNotFound,
                format!(
                    "consumer group {group:?} does not exist (create it with `orbitmq admin group create`)"
                ),
            ));
        }
        self.check_group_room()?;
        let cfg = self.default_group_config();
        self.store().groups().put(group, cfg.clone());
        Ok(cfg)
    }

    /// The config a new group gets.
    pub fn default_group_config(&self) -> GroupConfig {
        GroupConfig {
            max_delivery_attempts: self.config().max_delivery_attempts,
            ..GroupConfig::default()
        }
    }

    /// The queues of `topic` as clients see them, served at `endpoints`.
    pub fn route(
        &self,
        topic: &v2::Resource,
        endpoints: v2::Endpoints,
    ) -> Result<Vec<v2::MessageQueue>> {
        let cfg = self.topic_or_create(&topic.name)?;
        let accept: Vec<i32> = kind_of(&cfg).accepts().into_iter().map(|t| t as i32).collect();
        let broker = v2::Broker {
            name: self.config().broker_name.clone(),
            id: 0,
            endpoints: Some(endpoints),
        };
        let queues = cfg.read_queues.max(cfg.write_queues);
        Ok((0..queues)
            .map(|id| v2::MessageQueue {
                topic: Some(topic.clone()),
                id: id as i32,
                permission: queue_permission(&cfg, id) as i32,
                broker: Some(broker.clone()),
                accept_message_types: accept.clone(),
            })
            .collect())
    }
}

/// The permission of queue `id` of a topic.
pub fn queue_permission(cfg: &TopicConfig, id: u32) -> Permission {
    let read = cfg.perm & PERM_READ != 0 && id < cfg.read_queues;
    let write = cfg.perm & PERM_WRITE != 0 && id < cfg.write_queues;
    match (read, write) {
        (true, true) => Permission::ReadWrite,
        (true, false) => Permission::Read,
        (false, true) => Permission::Write,
        (false, false) => Permission::None,
    }
}
