//! `orbitmq.v1.Admin`: the operator API over the broker. Errors are gRPC statuses.

use tonic::{Request, Response, Status};

use crate::broker::clients::ClientInfo;
use crate::broker::dead_letter::dlq_topic;
use crate::broker::namespace::stored_name;
use crate::broker::topics::{TopicKind, check_topic_config, queue_permission};
use crate::broker::{Broker, BrokerError, validate};
use crate::protocol::admin::admin_server::Admin;
use crate::protocol::admin::{self as pb};
use crate::protocol::v2::settings::PubSub;
use crate::protocol::v2::{ClientType, Code, Language, Permission};
use crate::storage::commitlog::record;
use crate::storage::{GroupConfig, StorageError, StoredMessage, TopicConfig, msg_id};

/// Reads the message at the CommitLog `offset` an `offset_msg_id` of this broker decoded to.
///
/// The offset comes from the client, so it is checked here before the store reads at it:
/// `CommitLog::read_raw` adds the length to the offset unchecked, so an offset near
/// `u64::MAX` overflowed (a panic in debug builds, a wrapped bounds check in release).
pub fn read_by_offset_msg_id(
    store: &crate::storage::MessageStore,
    offset: u64,
) -> Result<StoredMessage, BrokerError> {
    const WHERE_IDS_COME_FROM: &str =
        "offset message ids come from SendMessage receipts or `admin message by-key`";
    let (min, max) = (store.commitlog_min_offset(), store.commitlog_max_offset());
    let header_end = offset.checked_add(record::HEADER_LEN as u64);
    if offset < min || header_end.is_none_or(|end| end > max) {
        return Err(BrokerError::new(
            Code::MessageNotFound,
            format!(
                "no message starts at commit-log offset {offset}: the commit log holds \
                 [{min}, {max}) ({WHERE_IDS_COME_FROM})"
            ),
        ));
    }
    // Inside the log but not at a record start, what is read there is not a valid record
    // (wrong length, magic or CRC, or a record naming another offset).
    store.read_at(offset).map_err(|e| match e {
        StorageError::OffsetOutOfRange { .. } | StorageError::Corrupted { .. } => {
            tracing::debug!(offset, error = %e, "an offset_msg_id points at no record start");
            BrokerError::new(
                Code::MessageNotFound,
                format!("no message starts at commit-log offset {offset} ({WHERE_IDS_COME_FROM})"),
            )
        }
        e => BrokerError::from(e),
    })
}

/// Most messages one query returns.
const MAX_QUERY: usize = 1000;

/// The admin gRPC service.
#[derive(Debug, Clone)]
pub struct AdminApi {
    broker: Broker,
}

impl AdminApi {
    /// Serves `broker`.
    pub fn new(broker: Broker) -> Self {
        AdminApi { broker }
    }

    /// Creates (`update` false: `ALREADY_EXISTS` if it does) or updates (`NOT_FOUND` if it does not
    /// exist) a topic config, and saves it.
    fn put_topic(
        &self,
        topic: Option<pb::TopicConfig>,
        update: bool,
    ) -> Result<Response<pb::TopicResponse>, Status> {
        let (name, cfg) = topic_from_pb(topic)?;
        let topics = self.broker.store().topics();
        match (topics.get(&name).is_some(), update) {
            (true, false) => {
                return Err(Status::already_exists(format!(
                    "topic {name:?} already exists (use `topic update` to change it)"
                )));
            }
            (false, true) => {
                return Err(Status::not_found(format!("topic {name:?} does not exist")));
            }
            (false, false) => self.broker.check_topic_room().map_err(|e| e.to_grpc())?,
            (true, true) => {}
        }
        topics.put(&name, cfg.clone());
        topics.save().map_err(|e| Status::internal(e.to_string()))?;
        tracing::info!(topic = name, ?cfg, update, "topic saved");
        Ok(Response::new(pb::TopicResponse { topic: Some(topic_pb(&name, &cfg)) }))
    }

    fn record(&self, m: &StoredMessage) -> pb::MessageRecord {
        pb::MessageRecord {
            topic: m.topic.clone(),
            queue_id: m.queue_id,
            queue_offset: m.queue_offset,
            commitlog_offset: m.commitlog_offset,
            message_id: m.message_id().unwrap_or_default().to_owned(),
            offset_msg_id: self.broker.store().offset_msg_id(m.commitlog_offset),
            tag: m.tag().unwrap_or_default().to_owned(),
            keys: m.keys().map(str::to_owned).collect(),
            properties: m.properties.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            body: m.body.clone(),
            born_timestamp: m.born_timestamp,
            store_timestamp: m.store_timestamp,
            born_host: m.born_host.to_string(),
            store_host: m.store_host.to_string(),
            reconsume_times: m.reconsume_times,
            size: m.size,
            broker_name: self.broker.config().broker_name.clone(),
        }
    }
}

pub(crate) fn topic_pb(name: &str, c: &TopicConfig) -> pb::TopicConfig {
    pb::TopicConfig {
        name: name.to_owned(),
        read_queues: c.read_queues,
        write_queues: c.write_queues,
        perm: c.perm,
        message_type: c.message_type.clone(),
    }
}

pub(crate) fn group_pb(name: String, c: &GroupConfig) -> pb::GroupConfig {
    pb::GroupConfig {
        name,
        max_delivery_attempts: c.max_delivery_attempts,
        fifo: c.fifo,
        consume_from: c.consume_from.as_str().to_owned(),
    }
}

fn topic_from_pb(t: Option<pb::TopicConfig>) -> Result<(String, TopicConfig), Status> {
    let t = t.ok_or_else(|| Status::invalid_argument("topic is required"))?;
    let kind: TopicKind = t.message_type.parse().map_err(|e: BrokerError| e.to_grpc())?;
    let cfg = TopicConfig {
        read_queues: t.read_queues,
        write_queues: t.write_queues,
        perm: t.perm,
        message_type: kind.as_str().to_owned(),
    };
    check_topic_config(&t.name, &cfg).map_err(|e| e.to_grpc())?;
    Ok((t.name, cfg))
}

fn perm_str(p: Permission) -> &'static str {
    match p {
        Permission::ReadWrite => "RW",
        Permission::Read => "R",
        Permission::Write => "W",
        _ => "-",
    }
}

/// A consumer as `admin group members` shows it.
fn member_pb(client_id: String, c: &ClientInfo) -> pb::GroupMember {
    let settings = c.settings.as_ref();
    let ua = settings.and_then(|s| s.user_agent.as_ref());
    let client_type = settings
        .and_then(|s| s.client_type)
        .and_then(|t| ClientType::try_from(t).ok())
        .map_or("", |t| t.as_str_name());
    let language = if c.language.is_empty() {
        ua.and_then(|u| Language::try_from(u.language).ok())
            .map_or(String::new(), |l| l.as_str_name().to_owned())
    } else {
        c.language.clone()
    };
    let topics = match settings.and_then(|s| s.pub_sub.as_ref()) {
        Some(PubSub::Subscription(sub)) => sub
            .subscriptions
            .iter()
            .filter_map(|e| e.topic.as_ref())
            .map(|t| stored_name(Some(t), &c.namespace))
            .collect(),
        _ => Vec::new(),
    };
    pb::GroupMember {
        client_id,
        client_type: client_type.to_owned(),
        language,
        version: ua.map(|u| u.version.clone()).unwrap_or_default(),
        host: ua.map(|u| u.hostname.clone()).unwrap_or_default(),
        last_seen: c.last_seen,
        topics,
    }
}

impl AdminApi {
    /// The message `id` names in `topic`: by offset message id when it is one of this broker's,
    /// else the last stored with that client message id.
    fn find_in_topic(&self, topic: &str, id: &str) -> Result<StoredMessage, Status> {
        let store = self.broker.store();
        let found = match msg_id::decode(id) {
            Ok((host, offset)) if host == store.config().store_host => {
                read_by_offset_msg_id(store, offset).ok().into_iter().collect()
            }
            _ => store.query_by_message_id(id, 0, i64::MAX, MAX_QUERY),
        };
        found
            .into_iter()
            .filter(|m| m.topic == topic)
            .max_by_key(|m| m.commitlog_offset)
            .ok_or_else(|| {
                Status::not_found(format!("topic {topic:?} holds no message with id {id:?}"))
            })
    }
}

#[tonic::async_trait]
impl Admin for AdminApi {
    async fn create_topic(
        &self,
        request: Request<pb::CreateTopicRequest>,
    ) -> Result<Response<pb::TopicResponse>, Status> {
        self.broker.check_writable("creating a topic").map_err(|e| e.to_grpc())?;
        self.put_topic(request.into_inner().topic, false)
    }

    async fn update_topic(
        &self,
        request: Request<pb::UpdateTopicRequest>,
    ) -> Result<Response<pb::TopicResponse>, Status> {
        self.broker.check_writable("updating a topic").map_err(|e| e.to_grpc())?;
        self.put_topic(request.into_inner().topic, true)
    }

    async fn delete_topic(
        &self,
        request: Request<pb::DeleteTopicRequest>,
    ) -> Result<Response<pb::DeleteTopicResponse>, Status> {
        let name = request.into_inner().topic;
        self.broker.check_writable("deleting a topic").map_err(|e| e.to_grpc())?;
        self.broker.delete_topic(&name).await.map_err(|e| e.to_grpc())?;
        Ok(Response::new(pb::DeleteTopicResponse {}))
    }

    async fn list_topics(
        &self,
        request: Request<pb::ListTopicsRequest>,
    ) -> Result<Response<pb::ListTopicsResponse>, Status> {
        let include_system = request.into_inner().include_system;
        let topics = self
            .broker
            .store()
            .topics()
            .all()
            .iter()
            .filter(|(name, _)| include_system || validate::topic(name).is_ok())
            .map(|(name, c)| topic_pb(name, c))
            .collect();
        Ok(Response::new(pb::ListTopicsResponse { topics }))
    }

    async fn topic_route(
        &self,
        request: Request<pb::TopicRouteRequest>,
    ) -> Result<Response<pb::TopicRouteResponse>, Status> {
        let topic = request.into_inner().topic;
        let cfg = self.broker.topic(&topic).map_err(|e| e.to_grpc())?;
        let queues = (0..cfg.read_queues.max(cfg.write_queues))
            .map(|id| pb::QueueRoute {
                broker_name: self.broker.config().broker_name.clone(),
                broker_id: 0,
                address: self.broker.address().to_string(),
                queue_id: id,
                perm: perm_str(queue_permission(&cfg, id)).to_owned(),
            })
            .collect();
        Ok(Response::new(pb::TopicRouteResponse { topic, queues }))
    }

    async fn topic_status(
        &self,
        request: Request<pb::TopicStatusRequest>,
    ) -> Result<Response<pb::TopicStatusResponse>, Status> {
        let topic = request.into_inner().topic;
        let cfg = self.broker.topic(&topic).map_err(|e| e.to_grpc())?;
        let store = self.broker.store();
        let queues = (0..cfg.read_queues.max(cfg.write_queues))
            .map(|id| {
                let max = store.max_offset(&topic, id);
                let last = store
                    .queue(&topic, id)
                    .and_then(|q| q.get(max.checked_sub(1)?))
                    .and_then(|e| store.read_at(e.commitlog_offset).ok())
                    .map_or(0, |m| m.store_timestamp);
                pb::QueueStatus {
                    broker_name: self.broker.config().broker_name.clone(),
                    queue_id: id,
                    min_offset: store.min_offset(&topic, id),
                    max_offset: max,
                    last_store_timestamp: last,
                }
            })
            .collect();
        Ok(Response::new(pb::TopicStatusResponse { topic, queues }))
    }

    async fn create_group(
        &self,
        request: Request<pb::CreateGroupRequest>,
    ) -> Result<Response<pb::GroupResponse>, Status> {
        let g = request.into_inner();
        self.broker.check_writable("creating a group").map_err(|e| e.to_grpc())?;
        validate::group(&g.name).map_err(|e| BrokerError::from(e).to_grpc())?;
        let existing = self.broker.store().groups().get(&g.name);
        let created = existing.is_none();
        if created {
            self.broker.check_group_room().map_err(|e| e.to_grpc())?;
        }
        let mut cfg = existing.unwrap_or_else(|| self.broker.default_group_config());
        if let Some(fifo) = g.fifo {
            cfg.fifo = fifo;
        }
        if let Some(n) = g.max_delivery_attempts.filter(|n| *n > 0) {
            cfg.max_delivery_attempts = n;
        }
        if let Some(from) = g.consume_from.as_deref() {
            cfg.consume_from = from.parse().map_err(Status::invalid_argument)?;
        }
        self.broker.store().groups().put(&g.name, cfg.clone());
        self.broker.store().groups().save().map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::GroupResponse { group: Some(group_pb(g.name, &cfg)), created }))
    }

    async fn list_groups(
        &self,
        _request: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::ListGroupsResponse>, Status> {
        let groups = self
            .broker
            .store()
            .groups()
            .all()
            .into_iter()
            .map(|(name, c)| group_pb(name, &c))
            .collect();
        Ok(Response::new(pb::ListGroupsResponse { groups }))
    }

    async fn delete_group(
        &self,
        request: Request<pb::DeleteGroupRequest>,
    ) -> Result<Response<pb::DeleteGroupResponse>, Status> {
        let name = request.into_inner().group;
        self.broker.check_writable("deleting a group").map_err(|e| e.to_grpc())?;
        self.broker.delete_group(&name).map_err(|e| e.to_grpc())?;
        Ok(Response::new(pb::DeleteGroupResponse {}))
    }

    async fn consumer_progress(
        &self,
        request: Request<pb::ConsumerProgressRequest>,
    ) -> Result<Response<pb::ConsumerProgressResponse>, Status> {
        let req = request.into_inner();
        let store = self.broker.store();
        if store.groups().get(&req.group).is_none() {
            return Err(Status::not_found(format!(
                "consumer group {:?} does not exist",
                req.group
            )));
        }
        if !req.topic.is_empty() {
            self.broker.topic(&req.topic).map_err(|e| e.to_grpc())?;
        }
        let topic = (!req.topic.is_empty()).then_some(req.topic.as_str());
        let queues: Vec<pb::QueueProgress> = self
            .broker
            .group_progress(&req.group, topic)
            .into_iter()
            .map(|q| pb::QueueProgress {
                topic: q.topic,
                broker_name: self.broker.config().broker_name.clone(),
                queue_id: q.queue_id,
                broker_offset: q.broker_offset,
                consumer_offset: q.consumer_offset,
                lag: q.lag,
            })
            .collect();
        let total_lag = queues.iter().map(|q| q.lag).sum();
        let dlq = dlq_topic(&req.group);
        let dead_letters = store.topics().get(&dlq).map_or(0, |c| {
            (0..c.read_queues.max(c.write_queues))
                .map(|q| store.max_offset(&dlq, q).saturating_sub(store.min_offset(&dlq, q)))
                .sum()
        });
        let mut seen = std::collections::BTreeSet::new();
        let inflight = queues
            .iter()
            .filter(|q| seen.insert(q.topic.clone()))
            .map(|q| self.broker.pop().inflight_count(&req.group, &q.topic).0 as u64)
            .sum();
        Ok(Response::new(pb::ConsumerProgressResponse {
            group: req.group,
            queues,
            total_lag,
            dead_letters,
            inflight,
        }))
    }

    async fn query_message_by_id(
        &self,
        request: Request<pb::QueryMessageByIdRequest>,
    ) -> Result<Response<pb::QueryMessagesResponse>, Status> {
        let id = request.into_inner().id;
        let store = self.broker.store();
        // An offset_msg_id decodes to this broker's address; anything else is a client id.
        let found = match msg_id::decode(&id) {
            Ok((host, offset)) if host == store.config().store_host => {
                vec![read_by_offset_msg_id(store, offset).map_err(|e| e.to_grpc())?]
            }
            _ => store.query_by_message_id(&id, 0, i64::MAX, 32),
        };
        if found.is_empty() {
            return Err(Status::not_found(format!("no message with id {id:?}")));
        }
        Ok(Response::new(pb::QueryMessagesResponse {
            messages: found.iter().map(|m| self.record(m)).collect(),
        }))
    }

    async fn query_message_by_key(
        &self,
        request: Request<pb::QueryMessageByKeyRequest>,
    ) -> Result<Response<pb::QueryMessagesResponse>, Status> {
        let r = request.into_inner();
        let end = if r.end_timestamp == 0 { i64::MAX } else { r.end_timestamp };
        let max = if r.max == 0 { 64 } else { (r.max as usize).min(MAX_QUERY) };
        let found = self.broker.store().query_by_key(&r.topic, &r.key, r.begin_timestamp, end, max);
        Ok(Response::new(pb::QueryMessagesResponse {
            messages: found.iter().map(|m| self.record(m)).collect(),
        }))
    }

    async fn query_message_by_offset(
        &self,
        request: Request<pb::QueryMessageByOffsetRequest>,
    ) -> Result<Response<pb::QueryMessagesResponse>, Status> {
        let r = request.into_inner();
        let store = self.broker.store();
        if !r.broker_name.is_empty() && r.broker_name != self.broker.config().broker_name {
            return Err(Status::not_found(format!(
                "this is broker {:?}, not {:?}",
                self.broker.config().broker_name,
                r.broker_name
            )));
        }
        let entry =
            store.queue(&r.topic, r.queue_id).and_then(|q| q.get(r.offset)).ok_or_else(|| {
                Status::not_found(format!(
                    "no message at offset {} of {}:{} (queue holds [{}, {}))",
                    r.offset,
                    r.topic,
                    r.queue_id,
                    store.min_offset(&r.topic, r.queue_id),
                    store.max_offset(&r.topic, r.queue_id)
                ))
            })?;
        let m =
            store.read_at(entry.commitlog_offset).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::QueryMessagesResponse { messages: vec![self.record(&m)] }))
    }

    async fn reset_offset(
        &self,
        request: Request<pb::ResetOffsetRequest>,
    ) -> Result<Response<pb::ResetOffsetResponse>, Status> {
        let r = request.into_inner();
        self.broker.check_writable("resetting offsets").map_err(|e| e.to_grpc())?;
        let store = self.broker.store();
        validate::group(&r.group).map_err(|e| BrokerError::from(e).to_grpc())?;
        if store.groups().get(&r.group).is_none() {
            return Err(Status::not_found(format!("consumer group {:?} does not exist", r.group)));
        }
        let cfg = self.broker.topic(&r.topic).map_err(|e| e.to_grpc())?;
        let targets: Vec<(u32, u64)> = (0..cfg.read_queues)
            .map(|id| (id, store.offset_for_timestamp(&r.topic, id, r.timestamp)))
            .collect();
        let queues = self
            .broker
            .pop()
            .reset_to(&r.group, &r.topic, &targets)
            .map_err(|e| Status::internal(e.to_string()))?
            .into_iter()
            .map(|(queue_id, old_offset, new_offset)| pb::QueueOffsetReset {
                queue_id,
                old_offset,
                new_offset,
                broker_name: self.broker.config().broker_name.clone(),
            })
            .collect();
        tracing::info!(
            group = r.group,
            topic = r.topic,
            timestamp = r.timestamp,
            "consumer offsets reset"
        );
        Ok(Response::new(pb::ResetOffsetResponse { queues }))
    }

    async fn list_group_members(
        &self,
        request: Request<pb::ListGroupMembersRequest>,
    ) -> Result<Response<pb::ListGroupMembersResponse>, Status> {
        let group = request.into_inner().group;
        validate::group(&group).map_err(|e| BrokerError::from(e).to_grpc())?;
        let members = self
            .broker
            .clients()
            .group_clients(&group)
            .into_iter()
            .map(|(id, c)| member_pb(id, &c))
            .collect();
        Ok(Response::new(pb::ListGroupMembersResponse { members }))
    }

    async fn resend_message(
        &self,
        request: Request<pb::ResendMessageRequest>,
    ) -> Result<Response<pb::ResendMessageResponse>, Status> {
        let r = request.into_inner();
        self.broker.check_writable("resending a message").map_err(|e| e.to_grpc())?;
        validate::group(&r.group).map_err(|e| BrokerError::from(e).to_grpc())?;
        if self.broker.store().groups().get(&r.group).is_none() {
            return Err(Status::not_found(format!("consumer group {:?} does not exist", r.group)));
        }
        if self.broker.store().topics().get(&r.topic).is_none() {
            return Err(Status::not_found(format!("topic {:?} does not exist", r.topic)));
        }
        let m = self.find_in_topic(&r.topic, &r.message_id)?;
        let handed_back = self.broker.pop().resend(
            &r.group,
            &r.topic,
            m.queue_id,
            m.queue_offset,
            m.commitlog_offset,
        );
        tracing::info!(
            group = r.group,
            topic = r.topic,
            queue = m.queue_id,
            offset = m.queue_offset,
            handed_back,
            "message resent to a consumer group"
        );
        Ok(Response::new(pb::ResendMessageResponse {}))
    }

    async fn cluster_list(
        &self,
        _request: Request<pb::ClusterListRequest>,
    ) -> Result<Response<pb::ClusterListResponse>, Status> {
        let b = &self.broker;
        Ok(Response::new(pb::ClusterListResponse {
            brokers: vec![b.view()],
            name_server: b.address().to_string(),
        }))
    }

    async fn broker_stats(
        &self,
        _request: Request<pb::BrokerStatsRequest>,
    ) -> Result<Response<pb::BrokerStatsResponse>, Status> {
        let b = self.broker.clone();
        // The disk size walks the data directory when its cache is stale: off the async
        // threads.
        let stat = tokio::task::spawn_blocking(move || {
            let (messages_in, messages_out) = b.metrics().totals();
            pb::BrokerStat {
                broker_name: b.config().broker_name.clone(),
                broker_id: b.config().broker_id,
                address: b.address().to_string(),
                messages_in,
                messages_out,
                disk_bytes: b.disk_usage(),
            }
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::BrokerStatsResponse { brokers: vec![stat] }))
    }
}
