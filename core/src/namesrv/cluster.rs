//! `orbitmq.v1.Cluster` on the name server: brokers register, heartbeat and leave.

use std::time::Instant;

use tonic::{Request, Response, Status};

use crate::namesrv::NameServer;
use crate::namesrv::registry::Registered;
use crate::protocol::admin::cluster_server::Cluster;
use crate::protocol::admin::{self as pb};
use crate::storage::message::now_millis;

/// The cluster gRPC service.
#[derive(Debug, Clone)]
pub(crate) struct ClusterApi {
    ns: NameServer,
}

impl ClusterApi {
    pub(crate) fn new(ns: NameServer) -> Self {
        ClusterApi { ns }
    }
}

/// Checks what a registration names, so a broker misconfigured cannot poison the routes.
fn check(req: &pb::RegisterBrokerRequest) -> Result<(), Status> {
    let bad = |m: String| Err(Status::invalid_argument(m));
    if req.broker_name.is_empty() || req.cluster.is_empty() {
        return bad("broker_name and cluster are required".to_owned());
    }
    if req.address.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_none() {
        return bad(format!("address {:?} is not host:port", req.address));
    }
    if !matches!(req.role.as_str(), "async_master" | "sync_master" | "slave") {
        return bad(format!("role {:?} is not async_master, sync_master or slave", req.role));
    }
    if (req.role == "slave") != (req.broker_id > 0) {
        return bad(format!(
            "broker id {} with role {}: id 0 is the master, ids > 0 are slaves",
            req.broker_id, req.role
        ));
    }
    // System topics (`%RETRY%…`, `rmq_sys_…`) are registered too, so names are only checked
    // for what would break a route.
    if let Some(t) = req.topics.iter().find(|t| t.name.is_empty() || t.name.len() > 255) {
        return bad(format!("topic name {:?} is empty or longer than 255 bytes", t.name));
    }
    Ok(())
}

#[tonic::async_trait]
impl Cluster for ClusterApi {
    async fn register_broker(
        &self,
        request: Request<pb::RegisterBrokerRequest>,
    ) -> Result<Response<pb::RegisterBrokerResponse>, Status> {
        let req = request.into_inner();
        check(&req)?;
        let (name, id, address, role) =
            (req.broker_name.clone(), req.broker_id, req.address.clone(), req.role.clone());
        let topics = req.topics.len();
        let mut registry = self.ns.registry();
        match registry.register(req, Instant::now(), now_millis()) {
            Registered::New => {
                tracing::info!(broker = name, id, address, role, topics, "broker registered");
            }
            Registered::Replaced { previous } => {
                tracing::warn!(
                    broker = name,
                    id,
                    address,
                    previous,
                    "broker registered from a new address: it replaces the old one in the routes"
                );
            }
            Registered::Renewed => {
                tracing::trace!(broker = name, id, "broker heartbeat");
            }
        }
        let master_address = registry.master(&name).map(|m| m.address.clone()).unwrap_or_default();
        Ok(Response::new(pb::RegisterBrokerResponse {
            master_address,
            broker_expiry_ms: self.ns.config().broker_expiry_ms,
        }))
    }

    async fn unregister_broker(
        &self,
        request: Request<pb::UnregisterBrokerRequest>,
    ) -> Result<Response<pb::UnregisterBrokerResponse>, Status> {
        let req = request.into_inner();
        if self.ns.registry().unregister(&req.broker_name, req.broker_id, &req.address) {
            tracing::info!(
                broker = req.broker_name,
                id = req.broker_id,
                address = req.address,
                "broker unregistered: it left the routes"
            );
            self.ns.peers().forget(&req.address);
        }
        Ok(Response::new(pb::UnregisterBrokerResponse {}))
    }
}
