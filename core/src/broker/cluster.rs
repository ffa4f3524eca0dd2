//! A broker in a cluster: it registers with every name server (`namesrv_addr`) every
//! `register_interval_ms` and as soon as its topics change, leaves them on shutdown, and
//! answers the routes and assignments clients ask it for from the name servers' view of the
//! whole cluster (cached briefly), so a client whose access point is a broker still sees every
//! broker of a topic.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::broker::{Broker, lock};
use crate::peer::{PeerTls, Peers};
use crate::protocol::admin as pb;
use crate::protocol::auth::ServerCredentials;
use crate::protocol::v2::{self, Code};
use crate::storage::message::now_millis;

/// How long a route from the name servers is reused by QueryAssignment and QueryRoute.
const ROUTE_TTL: Duration = Duration::from_secs(3);
/// How often the topic table is checked for changes to register at once.
const TOPIC_POLL: Duration = Duration::from_millis(200);

/// The broker's side of the cluster: name servers, their channels, the route cache.
#[derive(Debug)]
pub struct Membership {
    namesrv: Vec<String>,
    peers: Peers,
    routes: Mutex<HashMap<String, (Instant, Vec<v2::MessageQueue>)>>,
    /// Name servers that accepted the last registration (to log changes once).
    registered: Mutex<HashMap<String, bool>>,
}

impl Membership {
    /// Membership in the cluster of the name servers `namesrv` (`a:1;b:2`), `None` when empty,
    /// reaching them as `tls` says.
    pub fn new(
        namesrv: &str,
        client_id: &str,
        credentials: Option<ServerCredentials>,
        tls: PeerTls,
    ) -> Option<Membership> {
        let namesrv: Vec<String> = namesrv
            .split([';', ','])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if namesrv.is_empty() {
            return None;
        }
        Some(Membership {
            namesrv,
            peers: Peers::new(client_id, Duration::from_secs(3), credentials, tls),
            routes: Mutex::new(HashMap::new()),
            registered: Mutex::new(HashMap::new()),
        })
    }

    /// The name servers.
    pub fn namesrv(&self) -> &[String] {
        &self.namesrv
    }
}

impl Broker {
    /// What this broker is, as cluster listings show it.
    pub fn view(&self) -> pb::BrokerView {
        let c = self.config();
        pb::BrokerView {
            cluster: c.cluster_name.clone(),
            broker_name: c.broker_name.clone(),
            broker_id: c.broker_id,
            address: self.address().to_string(),
            role: c.broker_role.as_str().to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: self.inner.started_ms,
            last_heartbeat: now_millis(),
            topics: u32::try_from(self.store().topics().len()).unwrap_or(u32::MAX),
            commitlog_max_offset: self.store().commitlog_max_offset(),
            replication_lag: self.replication_lag(),
        }
    }

    /// A slave: bytes behind its master as it last heard from it (-1 while not connected); a
    /// master: how far its furthest-behind connected slave is (0 with none).
    pub fn replication_lag(&self) -> i64 {
        let end = self.store().commitlog_max_offset();
        if self.is_slave() {
            let link = self.master_link();
            if !link.connected {
                return -1;
            }
            return i64::try_from(link.master_max_offset.saturating_sub(end)).unwrap_or(i64::MAX);
        }
        self.replicas()
            .iter()
            .map(|r| i64::try_from(end.saturating_sub(r.acked)).unwrap_or(i64::MAX))
            .max()
            .unwrap_or(0)
    }

    fn registration(&self) -> pb::RegisterBrokerRequest {
        let c = self.config();
        let topics = self
            .store()
            .topics()
            .all()
            .into_iter()
            .map(|(name, t)| pb::TopicConfig {
                name,
                read_queues: t.read_queues,
                write_queues: t.write_queues,
                perm: t.perm,
                message_type: t.message_type,
            })
            .collect();
        pb::RegisterBrokerRequest {
            cluster: c.cluster_name.clone(),
            broker_name: c.broker_name.clone(),
            broker_id: c.broker_id,
            address: self.address().to_string(),
            role: c.broker_role.as_str().to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: self.inner.started_ms,
            commitlog_max_offset: self.store().commitlog_max_offset(),
            auto_create_topics: c.auto_create_topics && !self.is_slave(),
            topics,
            replication_lag: self.replication_lag(),
        }
    }

    /// Registers with every name server at once; returns how many accepted.
    pub async fn register(&self) -> usize {
        let Some(m) = self.inner.cluster.as_ref() else { return 0 };
        let req = self.registration();
        let calls = m.namesrv.iter().map(|ns| {
            let req = m.peers.request(req.clone());
            let client = m.peers.cluster(ns);
            async move {
                let r = match client {
                    Ok(mut c) => c.register_broker(req).await,
                    Err(e) => Err(e),
                };
                (ns, r)
            }
        });
        let mut accepted = 0;
        for (ns, r) in join_all(calls).await {
            let ok = r.is_ok();
            let was = lock(&m.registered).insert(ns.clone(), ok);
            match r {
                Ok(answer) => {
                    self.learn_master(&answer.get_ref().master_address);
                    accepted += 1;
                    if was != Some(true) {
                        tracing::info!(namesrv = ns, "registered with the name server");
                    }
                }
                Err(e) if was != Some(false) => {
                    tracing::warn!(
                        namesrv = ns,
                        code = ?e.code(),
                        error = m.peers.explain(&e),
                        "cannot register with the name server; retrying every register_interval_ms"
                    );
                }
                Err(e) => tracing::debug!(namesrv = ns, error = e.message(), "registration failed"),
            }
        }
        accepted
    }

    /// Leaves every name server (on shutdown): out of the routes at once instead of after the
    /// expiry.
    pub async fn unregister(&self) {
        let Some(m) = self.inner.cluster.as_ref() else { return };
        let c = self.config();
        let req = pb::UnregisterBrokerRequest {
            cluster: c.cluster_name.clone(),
            broker_name: c.broker_name.clone(),
            broker_id: c.broker_id,
            address: self.address().to_string(),
        };
        let calls = m.namesrv.iter().map(|ns| {
            let req = m.peers.request(req.clone());
            let client = m.peers.cluster(ns);
            async move {
                match client {
                    Ok(mut c) => c.unregister_broker(req).await.map(|_| ()),
                    Err(e) => Err(e),
                }
                .map_err(|e| (ns, e))
            }
        });
        for r in join_all(calls).await {
            if let Err((ns, e)) = r {
                tracing::warn!(
                    namesrv = ns,
                    error = e.message(),
                    "cannot unregister; the name server will expire this broker"
                );
            }
        }
    }

    /// Registers every `register_interval_ms`, and within [`TOPIC_POLL`] of a topic change,
    /// until the broker stops.
    pub(crate) async fn run_registration(self) {
        let mut stop = self.inner.stop.subscribe();
        let every = Duration::from_millis(self.config().register_interval_ms.max(10));
        let mut last = Instant::now();
        let mut version = self.store().topics().version();
        let mut connected = self.master_link().connected;
        self.register().await;
        let mut tick = tokio::time::interval(TOPIC_POLL.min(every));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let now_version = self.store().topics().version();
            let link = self.master_link();
            // A slave also registers when its link to the master comes or goes (so listings
            // show its lag), and every second while it does not know its master yet (the name
            // servers' answer names it).
            let slave_news = self.is_slave()
                && (link.connected != connected
                    || (link.master.is_none() && last.elapsed() >= Duration::from_secs(1)));
            if now_version != version || last.elapsed() >= every || slave_news {
                version = now_version;
                connected = link.connected;
                last = Instant::now();
                self.register().await;
            }
        }
    }

    /// The route of `topic` (a stored name) across the cluster, from the name servers
    /// (cached for [`ROUTE_TTL`]); `None` out of a cluster, or when no name server answers
    /// with it (the caller then answers this broker's own route).
    pub(crate) async fn cluster_route(
        &self,
        topic: &v2::Resource,
    ) -> Option<Vec<v2::MessageQueue>> {
        let m = self.inner.cluster.as_ref()?;
        if let Some((at, queues)) = lock(&m.routes).get(&topic.name)
            && at.elapsed() < ROUTE_TTL
        {
            return Some(queues.clone());
        }
        for ns in &m.namesrv {
            let req = m
                .peers
                .request(v2::QueryRouteRequest { topic: Some(topic.clone()), endpoints: None });
            let Ok(mut c) = m.peers.messaging(ns) else { continue };
            match c.query_route(req).await.map(tonic::Response::into_inner) {
                Ok(r)
                    if r.status.as_ref().is_some_and(|s| s.code == Code::Ok as i32)
                        && !r.message_queues.is_empty() =>
                {
                    let mut routes = lock(&m.routes);
                    // Bounded: topics nobody asks about again age out on the next insert.
                    routes.retain(|_, (at, _)| at.elapsed() < ROUTE_TTL);
                    routes.insert(topic.name.clone(), (Instant::now(), r.message_queues.clone()));
                    return Some(r.message_queues);
                }
                Ok(r) => {
                    tracing::debug!(namesrv = ns, topic = topic.name, status = ?r.status, "no cluster route");
                }
                Err(e) => tracing::debug!(namesrv = ns, error = e.message(), "route query failed"),
            }
        }
        None
    }
}
