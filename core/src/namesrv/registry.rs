//! The name server's registry: the live brokers (cluster → broker name → broker id → address),
//! each with its topics as its last registration listed them, and the routes built from them.
//! A broker not heard from for the expiry leaves it. Pure state: no I/O, no clock of its own
//! (callers pass `now`), so every rule here is unit-tested.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::broker::topics::{PERM_READ, kind_of, queue_permission};
use crate::protocol::admin as pb;
use crate::protocol::v2::{self, Permission};
use crate::storage::TopicConfig;

/// Who a broker is: its group (broker name, within a cluster) and its id in the group (0: the
/// master).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BrokerKey {
    /// Broker group name (`--broker-name`).
    pub broker_name: String,
    /// 0 for the master, > 0 for slaves.
    pub broker_id: u64,
}

/// What the registry knows of one live broker.
#[derive(Debug, Clone)]
pub struct BrokerEntry {
    /// Its cluster.
    pub cluster: String,
    /// `host:port` clients reach it at.
    pub address: String,
    /// `async_master`, `sync_master` or `slave`.
    pub role: String,
    /// Its version.
    pub version: String,
    /// When it started, ms since the epoch.
    pub started_at: i64,
    /// End of its CommitLog at its last registration.
    pub commitlog_max_offset: u64,
    /// It creates topics on first use.
    pub auto_create_topics: bool,
    /// A slave: bytes behind its master as it reported (-1: not connected).
    pub replication_lag: i64,
    /// Its topics, by name.
    pub topics: BTreeMap<String, TopicConfig>,
    /// Wall-clock time of its last registration, ms since the epoch (shown to operators).
    pub last_heartbeat: i64,
    /// Monotonic time of its last registration (what expiry counts from).
    seen: Instant,
}

/// The registry.
#[derive(Debug, Default)]
pub struct Registry {
    brokers: BTreeMap<BrokerKey, BrokerEntry>,
}

/// What a registration changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// The broker was not known: it joined.
    New,
    /// A known broker renewed its registration.
    Renewed,
    /// Another address held this (name, id): it was replaced (a restarted broker on a new
    /// address, or two brokers configured with the same identity).
    Replaced {
        /// The address it replaced.
        previous: String,
    },
}

impl Registry {
    /// Records a registration (or heartbeat) at `now` / `now_ms`.
    pub fn register(
        &mut self,
        req: pb::RegisterBrokerRequest,
        now: Instant,
        now_ms: i64,
    ) -> Registered {
        let key = BrokerKey { broker_name: req.broker_name, broker_id: req.broker_id };
        let topics = req
            .topics
            .into_iter()
            .map(|t| {
                let cfg = TopicConfig {
                    read_queues: t.read_queues,
                    write_queues: t.write_queues,
                    perm: t.perm,
                    message_type: t.message_type,
                };
                (t.name, cfg)
            })
            .collect();
        let entry = BrokerEntry {
            cluster: req.cluster,
            address: req.address,
            role: req.role,
            version: req.version,
            started_at: req.started_at,
            commitlog_max_offset: req.commitlog_max_offset,
            auto_create_topics: req.auto_create_topics,
            replication_lag: req.replication_lag,
            topics,
            last_heartbeat: now_ms,
            seen: now,
        };
        match self.brokers.insert(key, entry.clone()) {
            None => Registered::New,
            Some(old) if old.address == entry.address => Registered::Renewed,
            Some(old) => Registered::Replaced { previous: old.address },
        }
    }

    /// Removes a broker that left cleanly, if `address` is still the one registered under its
    /// identity (a late goodbye from an old process must not remove its successor).
    pub fn unregister(&mut self, broker_name: &str, broker_id: u64, address: &str) -> bool {
        let key = BrokerKey { broker_name: broker_name.to_owned(), broker_id };
        if self.brokers.get(&key).is_some_and(|e| e.address == address) {
            self.brokers.remove(&key);
            return true;
        }
        false
    }

    /// Removes the brokers silent for longer than `expiry` at `now`; returns them.
    pub fn expire(&mut self, now: Instant, expiry: Duration) -> Vec<(BrokerKey, BrokerEntry)> {
        let gone: Vec<BrokerKey> = self
            .brokers
            .iter()
            .filter(|(_, e)| now.saturating_duration_since(e.seen) > expiry)
            .map(|(k, _)| k.clone())
            .collect();
        gone.into_iter().filter_map(|k| self.brokers.remove(&k).map(|e| (k, e))).collect()
    }

    /// Every live broker, by group then id.
    pub fn brokers(&self) -> impl Iterator<Item = (&BrokerKey, &BrokerEntry)> {
        self.brokers.iter()
    }

    /// The live master of group `broker_name`.
    pub fn master(&self, broker_name: &str) -> Option<&BrokerEntry> {
        self.brokers.get(&BrokerKey { broker_name: broker_name.to_owned(), broker_id: 0 })
    }

    /// The live broker at `address`.
    pub fn by_address(&self, address: &str) -> Option<(&BrokerKey, &BrokerEntry)> {
        self.brokers.iter().find(|(_, e)| e.address == address)
    }

    /// Records that the broker at `address` now holds `topic`, as its route `queues` show
    /// (a topic created on it a moment ago, before its next registration lists it).
    pub fn learn_topic(&mut self, address: &str, topic: &str, queues: &[v2::MessageQueue]) {
        let Some(entry) = self.brokers.values_mut().find(|e| e.address == address) else { return };
        let perm =
            |q: &v2::MessageQueue| Permission::try_from(q.permission).unwrap_or(Permission::None);
        let count = |f: fn(Permission) -> bool| {
            u32::try_from(queues.iter().filter(|q| f(perm(q))).count()).unwrap_or(u32::MAX)
        };
        let read_queues = count(|p| matches!(p, Permission::Read | Permission::ReadWrite));
        let write_queues = count(|p| matches!(p, Permission::Write | Permission::ReadWrite));
        let types = queues.first().map_or(&[][..], |q| q.accept_message_types.as_slice());
        let message_type = match types {
            [t] => v2::MessageType::try_from(*t).map_or("MIXED", |t| match t {
                v2::MessageType::Normal => "NORMAL",
                v2::MessageType::Fifo => "FIFO",
                v2::MessageType::Delay => "DELAY",
                v2::MessageType::Transaction => "TRANSACTION",
                _ => "MIXED",
            }),
            _ => "MIXED",
        };
        let mut perm_bits = 0;
        if read_queues > 0 {
            perm_bits |= PERM_READ;
        }
        if write_queues > 0 {
            perm_bits |= crate::broker::topics::PERM_WRITE;
        }
        entry.topics.insert(
            topic.to_owned(),
            TopicConfig {
                read_queues: read_queues.max(1),
                write_queues: write_queues.max(1),
                perm: perm_bits,
                message_type: message_type.to_owned(),
            },
        );
    }

    /// Records a topic config created or changed on the broker at `address` (by an admin call
    /// through this name server), before its next registration lists it; `None` removes it.
    pub fn set_topic(&mut self, address: &str, topic: &str, cfg: Option<TopicConfig>) {
        let Some(entry) = self.brokers.values_mut().find(|e| e.address == address) else { return };
        match cfg {
            Some(cfg) => entry.topics.insert(topic.to_owned(), cfg),
            None => entry.topics.remove(topic),
        };
    }

    /// Whether any live broker holds `topic`.
    pub fn has_topic(&self, topic: &str) -> bool {
        self.brokers.values().any(|e| e.topics.contains_key(topic))
    }

    /// Union of every live broker's topics (a master's config wins over its slaves').
    pub fn topics(&self) -> BTreeMap<String, TopicConfig> {
        let mut all = BTreeMap::new();
        // Slaves first (higher keys last within a group would overwrite): iterate masters last.
        let mut entries: Vec<(&BrokerKey, &BrokerEntry)> = self.brokers.iter().collect();
        entries.sort_by_key(|(k, _)| std::cmp::Reverse(k.broker_id));
        for (_, e) in entries {
            for (name, cfg) in &e.topics {
                all.insert(name.clone(), cfg.clone());
            }
        }
        all
    }

    /// The live replicas of each broker group that hold `topic`, by id: the master first when
    /// it is live, else the slave with the lowest id.
    pub fn replicas(&self, topic: &str) -> Vec<Vec<(&BrokerKey, &BrokerEntry)>> {
        let mut groups: BTreeMap<&str, Vec<(&BrokerKey, &BrokerEntry)>> = BTreeMap::new();
        for (k, e) in &self.brokers {
            if e.topics.contains_key(topic) {
                groups.entry(k.broker_name.as_str()).or_default().push((k, e));
            }
        }
        // BTreeMap order: within a group, by id, so the master (0) comes first when live.
        groups.into_values().collect()
    }

    /// The route of `topic` as clients get it from QueryRoute: for every broker group that
    /// holds it, the master's queues (broker id 0, the topic's permissions) and each live
    /// slave's readable queues (its own id, read-only). A group whose master is gone is served
    /// read-only by its first slave, listed with broker id 0: the official clients read only
    /// from id 0 (PROTOCOL.md §2.5), and this is how their consumers keep reading from a slave
    /// while producers (which need a writable queue) send to the other masters. Empty when no
    /// live broker holds the topic.
    ///
    /// The brokers' queues are interleaved (queue 0 of each broker, then queue 1 of each, ...):
    /// the official Python client retries a failed send on the *next* queue of the route, three
    /// attempts in all, so with each broker's queues in one block a send that hits a dead broker
    /// (before the client's 30 s route refresh drops it) retries on that same dead broker and
    /// fails; interleaved, its retry goes to another broker. Java picks distinct brokers itself.
    pub fn route(&self, topic: &v2::Resource) -> Vec<v2::MessageQueue> {
        let mut per_broker: Vec<Vec<v2::MessageQueue>> = Vec::new();
        for group in self.replicas(&topic.name) {
            for (i, (key, entry)) in group.iter().enumerate() {
                let mut queues = Vec::new();
                let Some(cfg) = entry.topics.get(&topic.name) else { continue };
                let accept: Vec<i32> =
                    kind_of(cfg).accepts().into_iter().map(|t| t as i32).collect();
                let reader = i == 0;
                let id = if reader { 0 } else { key.broker_id };
                let broker = v2::Broker {
                    name: key.broker_name.clone(),
                    id: i32::try_from(id).unwrap_or(i32::MAX),
                    endpoints: Some(endpoints(&entry.address)),
                };
                let master = key.broker_id == 0;
                let n =
                    if master { cfg.read_queues.max(cfg.write_queues) } else { cfg.read_queues };
                for q in 0..n {
                    let perm = if master {
                        queue_permission(cfg, q)
                    } else if cfg.perm & PERM_READ != 0 {
                        Permission::Read
                    } else {
                        Permission::None
                    };
                    queues.push(v2::MessageQueue {
                        topic: Some(topic.clone()),
                        id: i32::try_from(q).unwrap_or(i32::MAX),
                        permission: perm as i32,
                        broker: Some(broker.clone()),
                        accept_message_types: accept.clone(),
                    });
                }
                per_broker.push(queues);
            }
        }
        let longest = per_broker.iter().map(Vec::len).max().unwrap_or(0);
        let mut queues = Vec::with_capacity(per_broker.iter().map(Vec::len).sum());
        let mut iters: Vec<_> = per_broker.into_iter().map(Vec::into_iter).collect();
        for _ in 0..longest {
            queues.extend(iters.iter_mut().filter_map(Iterator::next));
        }
        queues
    }
}

/// `host:port` as route endpoints (IPv4, IPv6 or a domain name).
pub fn endpoints(address: &str) -> v2::Endpoints {
    let (host, port) = match address.rsplit_once(':') {
        Some((h, p)) => (h.trim_start_matches('[').trim_end_matches(']'), p.parse().unwrap_or(0)),
        None => (address, 0),
    };
    let scheme = match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => v2::AddressScheme::IPv4,
        Ok(std::net::IpAddr::V6(_)) => v2::AddressScheme::IPv6,
        Err(_) => v2::AddressScheme::DomainName,
    };
    v2::Endpoints {
        scheme: scheme as i32,
        addresses: vec![v2::Address { host: host.to_owned(), port }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(name: &str, id: u64, addr: &str, topics: &[(&str, u32)]) -> pb::RegisterBrokerRequest {
        pb::RegisterBrokerRequest {
            cluster: "c".into(),
            broker_name: name.into(),
            broker_id: id,
            address: addr.into(),
            role: if id == 0 { "async_master" } else { "slave" }.into(),
            topics: topics
                .iter()
                .map(|(t, n)| pb::TopicConfig {
                    name: (*t).into(),
                    read_queues: *n,
                    write_queues: *n,
                    perm: 6,
                    message_type: "NORMAL".into(),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn topic(name: &str) -> v2::Resource {
        v2::Resource { name: name.into(), ..Default::default() }
    }

    /// (broker name, broker id, address, queue id, permission) of each queue.
    fn summary(r: &Registry, t: &str) -> Vec<(String, i32, String, i32, Permission)> {
        r.route(&topic(t))
            .into_iter()
            .map(|q| {
                let b = q.broker.unwrap();
                let a = &b.endpoints.as_ref().unwrap().addresses[0];
                let perm = Permission::try_from(q.permission).unwrap();
                (b.name, b.id, format!("{}:{}", a.host, a.port), q.id, perm)
            })
            .collect()
    }

    #[test]
    fn routes_list_every_broker_group_holding_the_topic() {
        let mut r = Registry::default();
        let now = Instant::now();
        assert_eq!(r.register(reg("a", 0, "10.0.0.1:8081", &[("T", 2)]), now, 1), Registered::New);
        r.register(reg("b", 0, "10.0.0.2:8081", &[("T", 1), ("U", 1)]), now, 1);
        let rw = Permission::ReadWrite;
        assert_eq!(
            summary(&r, "T"),
            vec![
                ("a".into(), 0, "10.0.0.1:8081".into(), 0, rw),
                ("b".into(), 0, "10.0.0.2:8081".into(), 0, rw),
                ("a".into(), 0, "10.0.0.1:8081".into(), 1, rw),
            ],
            "the brokers' queues interleaved, so a retry on the next queue goes to another broker"
        );
        assert_eq!(summary(&r, "U").len(), 1);
        assert!(r.route(&topic("V")).is_empty());
    }

    #[test]
    fn slaves_are_listed_read_only_and_stand_in_for_a_missing_master() {
        let mut r = Registry::default();
        let now = Instant::now();
        r.register(reg("a", 0, "10.0.0.1:8081", &[("T", 1)]), now, 1);
        r.register(reg("a", 1, "10.0.0.3:8081", &[("T", 1)]), now, 1);
        assert_eq!(
            summary(&r, "T"),
            vec![
                ("a".into(), 0, "10.0.0.1:8081".into(), 0, Permission::ReadWrite),
                ("a".into(), 1, "10.0.0.3:8081".into(), 0, Permission::Read),
            ]
        );
        assert!(r.unregister("a", 0, "10.0.0.1:8081"));
        assert_eq!(
            summary(&r, "T"),
            vec![("a".into(), 0, "10.0.0.3:8081".into(), 0, Permission::Read)],
            "the slave reads for its group as id 0, and nobody can write there"
        );
    }

    #[test]
    fn silent_brokers_expire_and_renewals_keep_them() {
        let mut r = Registry::default();
        let t0 = Instant::now();
        r.register(reg("a", 0, "x:1", &[("T", 1)]), t0, 1);
        r.register(reg("b", 0, "y:1", &[("T", 1)]), t0, 1);
        let t1 = t0 + Duration::from_secs(90);
        assert_eq!(r.register(reg("b", 0, "y:1", &[("T", 1)]), t1, 2), Registered::Renewed);
        let gone = r.expire(t0 + Duration::from_secs(121), Duration::from_secs(120));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].0.broker_name, "a");
        assert_eq!(summary(&r, "T").len(), 1);
        assert!(r.expire(t1 + Duration::from_secs(120), Duration::from_secs(120)).is_empty());
    }

    #[test]
    fn a_late_goodbye_does_not_remove_the_successor() {
        let mut r = Registry::default();
        let now = Instant::now();
        r.register(reg("a", 0, "old:1", &[]), now, 1);
        assert_eq!(
            r.register(reg("a", 0, "new:1", &[]), now, 1),
            Registered::Replaced { previous: "old:1".into() }
        );
        assert!(!r.unregister("a", 0, "old:1"));
        assert_eq!(r.master("a").unwrap().address, "new:1");
    }

    #[test]
    fn endpoints_of_each_address_kind() {
        let e = endpoints("[::1]:8081");
        assert_eq!(e.scheme, v2::AddressScheme::IPv6 as i32);
        assert_eq!((e.addresses[0].host.as_str(), e.addresses[0].port), ("::1", 8081));
        assert_eq!(endpoints("mq.example.com:9").scheme, v2::AddressScheme::DomainName as i32);
        assert_eq!(endpoints("10.1.2.3:9").scheme, v2::AddressScheme::IPv4 as i32);
    }
}
