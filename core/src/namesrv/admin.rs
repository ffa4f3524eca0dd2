//! `orbitmq.v1.Admin` on the name server: every operator command works through a name server.
//! Topic lists and routes come from the registry; everything else is asked of the brokers
//! concerned (in parallel) and their answers merged, so the brokers stay the one source of
//! their data and there is no second implementation of any command here.

use std::collections::BTreeMap;
use std::future::Future;

use futures_util::future::join_all;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::broker::topics::{PERM_READ, queue_permission};
use crate::broker::validate;
use crate::namesrv::NameServer;
use crate::protocol::admin::admin_client::AdminClient;
use crate::protocol::admin::admin_server::Admin;
use crate::protocol::admin::{self as pb};
use crate::storage::{TopicConfig, msg_id};

/// The admin gRPC service of a name server.
#[derive(Debug, Clone)]
pub(crate) struct AdminApi {
    ns: NameServer,
}

/// A broker to ask: its group name and address.
#[derive(Debug, Clone)]
struct Target {
    name: String,
    address: String,
}

impl AdminApi {
    pub(crate) fn new(ns: NameServer) -> Self {
        AdminApi { ns }
    }

    /// Every live master, or those of `names` (each must be live).
    fn masters(&self, names: &[String]) -> Result<Vec<Target>, Status> {
        let registry = self.ns.registry();
        let all: Vec<Target> = registry
            .brokers()
            .filter(|(k, _)| k.broker_id == 0)
            .map(|(k, e)| Target { name: k.broker_name.clone(), address: e.address.clone() })
            .collect();
        if names.is_empty() {
            if all.is_empty() {
                return Err(Status::unavailable(
                    "no broker is registered with this name server (start `orbitmq broker --namesrv …`)",
                ));
            }
            return Ok(all);
        }
        names
            .iter()
            .map(|n| {
                all.iter().find(|t| &t.name == n).cloned().ok_or_else(|| {
                    Status::not_found(format!("broker {n:?} has no live master registered here"))
                })
            })
            .collect()
    }

    /// The masters holding `topic`.
    fn masters_holding(&self, topic: &str) -> Result<Vec<Target>, Status> {
        let targets: Vec<Target> = self
            .ns
            .registry()
            .brokers()
            .filter(|(k, e)| k.broker_id == 0 && e.topics.contains_key(topic))
            .map(|(k, e)| Target { name: k.broker_name.clone(), address: e.address.clone() })
            .collect();
        if targets.is_empty() {
            return Err(Status::not_found(format!("topic {topic:?} is on no live master")));
        }
        Ok(targets)
    }

    /// One broker per group (the master, or the slave standing in for it), only groups
    /// holding `topic` when one is given.
    fn readers(&self, topic: Option<&str>) -> Vec<Target> {
        let registry = self.ns.registry();
        let mut first: BTreeMap<String, Target> = BTreeMap::new();
        for (k, e) in registry.brokers() {
            if topic.is_some_and(|t| !e.topics.contains_key(t)) {
                continue;
            }
            first.entry(k.broker_name.clone()).or_insert_with(|| Target {
                name: k.broker_name.clone(),
                address: e.address.clone(),
            });
        }
        first.into_values().collect()
    }

    /// Calls every target at once; each answer with its target.
    async fn each<R, F, Fut>(
        &self,
        targets: Vec<Target>,
        call: F,
    ) -> Vec<(Target, Result<R, Status>)>
    where
        F: Fn(AdminClient<Channel>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        let calls = targets.into_iter().map(|t| {
            let client = self.ns.peers().admin(&t.address);
            let fut = client.map(&call);
            async move {
                let r = match fut {
                    Ok(fut) => fut.await.map(Response::into_inner),
                    Err(e) => Err(e),
                };
                (t, r)
            }
        });
        join_all(calls).await
    }

    fn request<T>(&self, message: T) -> Request<T> {
        self.ns.peers().request(message)
    }
}

/// The first failure among `answers`, naming its broker; `skip` failures are ignored.
fn failed<R>(answers: &[(Target, Result<R, Status>)], skip: &[tonic::Code]) -> Option<Status> {
    answers.iter().find_map(|(t, r)| match r {
        Err(e) if !skip.contains(&e.code()) => Some(Status::new(
            e.code(),
            format!("broker {} ({}): {}", t.name, t.address, e.message()),
        )),
        _ => None,
    })
}

/// The answers that came, or the first failure (unless every broker answered `skip`-ably and
/// none succeeded: then the first of those).
fn collect<R>(
    answers: Vec<(Target, Result<R, Status>)>,
    skip: &[tonic::Code],
) -> Result<Vec<(Target, R)>, Status> {
    if let Some(e) = failed(&answers, skip) {
        return Err(e);
    }
    let mut ok = Vec::new();
    let mut skipped = None;
    for (t, r) in answers {
        match r {
            Ok(r) => ok.push((t, r)),
            Err(e) => {
                skipped.get_or_insert(e);
            }
        }
    }
    match (ok.is_empty(), skipped) {
        (true, Some(e)) => Err(e),
        _ => Ok(ok),
    }
}

fn cfg_of(t: &pb::TopicConfig) -> TopicConfig {
    TopicConfig {
        read_queues: t.read_queues,
        write_queues: t.write_queues,
        perm: t.perm,
        message_type: t.message_type.clone(),
    }
}

fn perm_str(cfg: &TopicConfig, q: u32, master: bool) -> &'static str {
    use crate::protocol::v2::Permission;
    if !master {
        return if cfg.perm & PERM_READ != 0 && q < cfg.read_queues { "R" } else { "-" };
    }
    match queue_permission(cfg, q) {
        Permission::ReadWrite => "RW",
        Permission::Read => "R",
        Permission::Write => "W",
        _ => "-",
    }
}

#[tonic::async_trait]
impl Admin for AdminApi {
    async fn create_topic(
        &self,
        request: Request<pb::CreateTopicRequest>,
    ) -> Result<Response<pb::TopicResponse>, Status> {
        let req = request.into_inner();
        let topic =
            req.topic.clone().ok_or_else(|| Status::invalid_argument("topic is required"))?;
        let targets = self.masters(&req.brokers)?;
        let answers = self
            .each(targets, |mut c| {
                let r = self.request(pb::CreateTopicRequest {
                    topic: Some(topic.clone()),
                    brokers: Vec::new(),
                });
                async move { c.create_topic(r).await }
            })
            .await;
        let created = collect(answers, &[tonic::Code::AlreadyExists])?;
        let mut registry = self.ns.registry();
        for (t, r) in &created {
            if let Some(cfg) = &r.topic {
                registry.set_topic(&t.address, &cfg.name, Some(cfg_of(cfg)));
            }
        }
        let first = created.into_iter().next().map(|(_, r)| r);
        Ok(Response::new(first.unwrap_or(pb::TopicResponse { topic: Some(topic) })))
    }

    async fn update_topic(
        &self,
        request: Request<pb::UpdateTopicRequest>,
    ) -> Result<Response<pb::TopicResponse>, Status> {
        let req = request.into_inner();
        let topic =
            req.topic.clone().ok_or_else(|| Status::invalid_argument("topic is required"))?;
        let targets = self.masters_holding(&topic.name)?;
        let answers = self
            .each(targets, |mut c| {
                let r = self.request(req.clone());
                async move { c.update_topic(r).await }
            })
            .await;
        let updated = collect(answers, &[])?;
        let mut registry = self.ns.registry();
        for (t, r) in &updated {
            if let Some(cfg) = &r.topic {
                registry.set_topic(&t.address, &cfg.name, Some(cfg_of(cfg)));
            }
        }
        Ok(Response::new(
            updated.into_iter().next().map_or(pb::TopicResponse { topic: Some(topic) }, |(_, r)| r),
        ))
    }

    async fn delete_topic(
        &self,
        request: Request<pb::DeleteTopicRequest>,
    ) -> Result<Response<pb::DeleteTopicResponse>, Status> {
        let req = request.into_inner();
        let targets = self.masters_holding(&req.topic)?;
        let answers = self
            .each(targets, |mut c| {
                let r = self.request(req.clone());
                async move { c.delete_topic(r).await }
            })
            .await;
        let deleted = collect(answers, &[tonic::Code::NotFound])?;
        let mut registry = self.ns.registry();
        for (t, _) in &deleted {
            registry.set_topic(&t.address, &req.topic, None);
        }
        Ok(Response::new(pb::DeleteTopicResponse {}))
    }

    async fn list_topics(
        &self,
        request: Request<pb::ListTopicsRequest>,
    ) -> Result<Response<pb::ListTopicsResponse>, Status> {
        let include_system = request.into_inner().include_system;
        let topics = self
            .ns
            .registry()
            .topics()
            .into_iter()
            .filter(|(name, _)| include_system || validate::topic(name).is_ok())
            .map(|(name, c)| crate::broker::admin::topic_pb(&name, &c))
            .collect();
        Ok(Response::new(pb::ListTopicsResponse { topics }))
    }

    async fn topic_route(
        &self,
        request: Request<pb::TopicRouteRequest>,
    ) -> Result<Response<pb::TopicRouteResponse>, Status> {
        let topic = request.into_inner().topic;
        let registry = self.ns.registry();
        let mut queues = Vec::new();
        for group in registry.replicas(&topic) {
            for (k, e) in group {
                let Some(cfg) = e.topics.get(&topic) else { continue };
                let master = k.broker_id == 0;
                let n =
                    if master { cfg.read_queues.max(cfg.write_queues) } else { cfg.read_queues };
                for q in 0..n {
                    queues.push(pb::QueueRoute {
                        broker_name: k.broker_name.clone(),
                        broker_id: i32::try_from(k.broker_id).unwrap_or(i32::MAX),
                        address: e.address.clone(),
                        queue_id: q,
                        perm: perm_str(cfg, q, master).to_owned(),
                    });
                }
            }
        }
        if queues.is_empty() {
            return Err(Status::not_found(format!("topic {topic:?} is on no live broker")));
        }
        Ok(Response::new(pb::TopicRouteResponse { topic, queues }))
    }

    async fn topic_status(
        &self,
        request: Request<pb::TopicStatusRequest>,
    ) -> Result<Response<pb::TopicStatusResponse>, Status> {
        let req = request.into_inner();
        let targets = self.readers(Some(&req.topic));
        if targets.is_empty() {
            return Err(Status::not_found(format!("topic {:?} is on no live broker", req.topic)));
        }
        let answers = self
            .each(targets, |mut c| {
                let r = self.request(req.clone());
                async move { c.topic_status(r).await }
            })
            .await;
        let queues = collect(answers, &[tonic::Code::NotFound])?
            .into_iter()
            .flat_map(|(_, r)| r.queues)
            .collect();
        Ok(Response::new(pb::TopicStatusResponse { topic: req.topic, queues }))
    }

    async fn create_group(
        &self,
        request: Request<pb::CreateGroupRequest>,
    ) -> Result<Response<pb::GroupResponse>, Status> {
        let req = request.into_inner();
        let targets = self.masters(&[])?;
        let answers = self
            .each(targets, |mut c| {
                let r = self.request(req.clone());
                async move { c.create_group(r).await }
            })
            .await;
        let done = collect(answers, &[])?;
        let created = done.iter().any(|(_, r)| r.created);
        let group = done.into_iter().next().and_then(|(_, r)| r.group);
        Ok(Response::new(pb::GroupResponse { group, created }))
    }

    async fn list_groups(
        &self,
        request: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::ListGroupsResponse>, Status> {
        let req = request.into_inner();
        let answers = self
            .each(self.readers(None), |mut c| {
                let r = self.request(req);
                async move { c.list_groups(r).await }
            })
            .await;
        let mut groups = BTreeMap::new();
        for (_, r) in collect(answers, &[])? {
            for g in r.groups {
                groups.entry(g.name.clone()).or_insert(g);
            }
        }
        Ok(Response::new(pb::ListGroupsResponse { groups: groups.into_values().collect() }))
    }

    async fn delete_group(
        &self,
        request: Request<pb::DeleteGroupRequest>,
    ) -> Result<Response<pb::DeleteGroupResponse>, Status> {
        let req = request.into_inner();
        let answers = self
            .each(self.masters(&[])?, |mut c| {
                let r = self.request(req.clone());
                async move { c.delete_group(r).await }
            })
            .await;
        collect(answers, &[tonic::Code::NotFound])?;
        Ok(Response::new(pb::DeleteGroupResponse {}))
    }

    async fn consumer_progress(
        &self,
        request: Request<pb::ConsumerProgressRequest>,
    ) -> Result<Response<pb::ConsumerProgressResponse>, Status> {
        let req = request.into_inner();
        let topic = (!req.topic.is_empty()).then_some(req.topic.as_str());
        let targets = self.readers(topic);
        let answers = self
            .each(targets, |mut c| {
                let r = self.request(req.clone());
                async move { c.consumer_progress(r).await }
            })
            .await;
        let mut merged =
            pb::ConsumerProgressResponse { group: req.group.clone(), ..Default::default() };
        for (_, r) in collect(answers, &[tonic::Code::NotFound])? {
            merged.queues.extend(r.queues);
            merged.total_lag += r.total_lag;
            merged.dead_letters += r.dead_letters;
            merged.inflight += r.inflight;
        }
        Ok(Response::new(merged))
    }

    async fn query_message_by_id(
        &self,
        request: Request<pb::QueryMessageByIdRequest>,
    ) -> Result<Response<pb::QueryMessagesResponse>, Status> {
        let req = request.into_inner();
        // An offset_msg_id names the broker that stored it; a client message id may be anywhere.
        let targets = match msg_id::decode(&req.id) {
            Ok((host, _)) => {
                let registry = self.ns.registry();
                match registry.by_address(&host.to_string()) {
                    Some((k, e)) => {
                        vec![Target { name: k.broker_name.clone(), address: e.address.clone() }]
                    }
                    None => Vec::new(),
                }
            }
            Err(_) => Vec::new(),
        };
        let targets = if targets.is_empty() { self.readers(None) } else { targets };
        let answers = self
            .each(targets, |mut c| {
                let r = self.request(req.clone());
                async move { c.query_message_by_id(r).await }
            })
            .await;
        let messages: Vec<pb::MessageRecord> = collect(answers, &[tonic::Code::NotFound])?
            .into_iter()
            .flat_map(|(_, r)| r.messages)
            .collect();
        if messages.is_empty() {
            return Err(Status::not_found(format!("no message with id {:?}", req.id)));
        }
        Ok(Response::new(pb::QueryMessagesResponse { messages }))
    }

    async fn query_message_by_key(
        &self,
        request: Request<pb::QueryMessageByKeyRequest>,
    ) -> Result<Response<pb::QueryMessagesResponse>, Status> {
        let req = request.into_inner();
        let answers = self
            .each(self.readers(Some(&req.topic)), |mut c| {
                let r = self.request(req.clone());
                async move { c.query_message_by_key(r).await }
            })
            .await;
        let mut messages: Vec<pb::MessageRecord> = collect(answers, &[tonic::Code::NotFound])?
            .into_iter()
            .flat_map(|(_, r)| r.messages)
            .collect();
        messages.sort_by_key(|m| m.store_timestamp);
        if req.max > 0 {
            messages.truncate(req.max as usize);
        }
        Ok(Response::new(pb::QueryMessagesResponse { messages }))
    }

    async fn query_message_by_offset(
        &self,
        request: Request<pb::QueryMessageByOffsetRequest>,
    ) -> Result<Response<pb::QueryMessagesResponse>, Status> {
        let req = request.into_inner();
        let targets: Vec<Target> = self
            .readers(Some(&req.topic))
            .into_iter()
            .filter(|t| req.broker_name.is_empty() || t.name == req.broker_name)
            .collect();
        if targets.is_empty() {
            return Err(Status::not_found(format!(
                "topic {:?} is on no live broker{}",
                req.topic,
                if req.broker_name.is_empty() {
                    String::new()
                } else {
                    format!(" named {:?}", req.broker_name)
                }
            )));
        }
        let answers = self
            .each(targets, |mut c| {
                let r = self.request(req.clone());
                async move { c.query_message_by_offset(r).await }
            })
            .await;
        let found: Vec<(Target, pb::QueryMessagesResponse)> =
            collect(answers, &[tonic::Code::NotFound])?
                .into_iter()
                .filter(|(_, r)| !r.messages.is_empty())
                .collect();
        // Each broker has its own queue of that id: a message from whichever answered first
        // could be another one than the caller means.
        if found.len() > 1 {
            let mut names: Vec<&str> = found.iter().map(|(t, _)| t.name.as_str()).collect();
            names.sort_unstable();
            return Err(Status::invalid_argument(format!(
                "queue {} of topic {:?} has a message at offset {} on brokers {}: name one \
                 (broker_name, --broker)",
                req.queue_id,
                req.topic,
                req.offset,
                names.join(", ")
            )));
        }
        let messages = found.into_iter().flat_map(|(_, r)| r.messages).collect();
        Ok(Response::new(pb::QueryMessagesResponse { messages }))
    }

    async fn reset_offset(
        &self,
        request: Request<pb::ResetOffsetRequest>,
    ) -> Result<Response<pb::ResetOffsetResponse>, Status> {
        let req = request.into_inner();
        let answers = self
            .each(self.masters_holding(&req.topic)?, |mut c| {
                let r = self.request(req.clone());
                async move { c.reset_offset(r).await }
            })
            .await;
        let queues = collect(answers, &[])?
            .into_iter()
            .flat_map(|(t, r)| {
                r.queues.into_iter().map(move |mut q| {
                    q.broker_name.clone_from(&t.name);
                    q
                })
            })
            .collect();
        Ok(Response::new(pb::ResetOffsetResponse { queues }))
    }

    async fn list_group_members(
        &self,
        request: Request<pb::ListGroupMembersRequest>,
    ) -> Result<Response<pb::ListGroupMembersResponse>, Status> {
        let req = request.into_inner();
        // Clients connect to masters and slaves alike: ask every broker, not one per group.
        let targets: Vec<Target> = self
            .ns
            .registry()
            .brokers()
            .map(|(k, e)| Target { name: k.broker_name.clone(), address: e.address.clone() })
            .collect();
        let answers = self
            .each(targets, |mut c| {
                let r = self.request(req.clone());
                async move { c.list_group_members(r).await }
            })
            .await;
        // A client seen by several brokers is one member: the latest sighting, with every
        // topic any of them knows.
        let mut members: BTreeMap<String, pb::GroupMember> = BTreeMap::new();
        for (_, r) in collect(answers, &[])? {
            for m in r.members {
                match members.get_mut(&m.client_id) {
                    Some(known) => {
                        let mut topics = std::mem::take(&mut known.topics);
                        topics.extend(m.topics.iter().cloned());
                        if m.last_seen > known.last_seen {
                            *known = m;
                        }
                        topics.sort();
                        topics.dedup();
                        known.topics = topics;
                    }
                    None => {
                        members.insert(m.client_id.clone(), m);
                    }
                }
            }
        }
        Ok(Response::new(pb::ListGroupMembersResponse { members: members.into_values().collect() }))
    }

    async fn resend_message(
        &self,
        request: Request<pb::ResendMessageRequest>,
    ) -> Result<Response<pb::ResendMessageResponse>, Status> {
        let req = request.into_inner();
        // Each master holding the topic looks for the message; the one that has it resends it.
        let answers = self
            .each(self.masters_holding(&req.topic)?, |mut c| {
                let r = self.request(req.clone());
                async move { c.resend_message(r).await }
            })
            .await;
        collect(answers, &[tonic::Code::NotFound])?;
        Ok(Response::new(pb::ResendMessageResponse {}))
    }

    async fn cluster_list(
        &self,
        _request: Request<pb::ClusterListRequest>,
    ) -> Result<Response<pb::ClusterListResponse>, Status> {
        let registry = self.ns.registry();
        let brokers = registry
            .brokers()
            .map(|(k, e)| {
                // What the broker reported: a slave's bytes behind (-1: not connected to its
                // master), a master's furthest-behind slave.
                let replication_lag =
                    if k.broker_id > 0 && registry.master(&k.broker_name).is_none() {
                        -1
                    } else {
                        e.replication_lag
                    };
                pb::BrokerView {
                    cluster: e.cluster.clone(),
                    broker_name: k.broker_name.clone(),
                    broker_id: k.broker_id,
                    address: e.address.clone(),
                    role: e.role.clone(),
                    version: e.version.clone(),
                    started_at: e.started_at,
                    last_heartbeat: e.last_heartbeat,
                    topics: u32::try_from(e.topics.len()).unwrap_or(u32::MAX),
                    commitlog_max_offset: e.commitlog_max_offset,
                    replication_lag,
                }
            })
            .collect();
        Ok(Response::new(pb::ClusterListResponse {
            brokers,
            name_server: self.ns.address().to_string(),
        }))
    }

    async fn broker_stats(
        &self,
        _request: Request<pb::BrokerStatsRequest>,
    ) -> Result<Response<pb::BrokerStatsResponse>, Status> {
        // Every registered broker, slaves too (they serve reads and take disk).
        let targets: Vec<Target> = self
            .ns
            .registry()
            .brokers()
            .map(|(k, e)| Target { name: k.broker_name.clone(), address: e.address.clone() })
            .collect();
        let answers = self
            .each(targets, |mut c| {
                let r = self.request(pb::BrokerStatsRequest {});
                async move { c.broker_stats(r).await }
            })
            .await;
        let mut brokers = Vec::new();
        for (t, answer) in answers {
            match answer {
                Ok(r) => brokers.extend(r.brokers),
                // Counters are best effort: a broker that does not answer is left out.
                Err(e) => tracing::debug!(
                    broker = t.name,
                    address = t.address,
                    error = e.message(),
                    "no stats"
                ),
            }
        }
        Ok(Response::new(pb::BrokerStatsResponse { brokers }))
    }
}
