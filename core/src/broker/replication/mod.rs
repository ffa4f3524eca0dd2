//! Master/slave replication of a broker group (`orbitmq.v1.Replication`).
//!
//! ```text
//!  slave ── ReplicaReport{identity, log end, epochs, offsets it advanced} ──► master
//!        ◄── ReplicaHandshake{epochs, start offset | truncate_to} ──────────
//!        ◄── ReplicaChunk{offset, whole records} … ReplicaMetadata{topics, groups, offsets}
//!        ── ReplicaReport{log end} after each chunk ────────────────────────► (sync_master waits)
//! ```
//!
//! The master streams its CommitLog from where the slave's log ends; the slave appends the
//! bytes at the same offsets, and its dispatcher builds ConsumeQueues and indexes exactly as the
//! master's did. A slave whose tail diverged (its master lost and rewrote bytes it had copied)
//! is told where their logs agree (`storage::replica::agreed_end`), restarts its store cut
//! there, and reconnects. Topic and group configs and consumer offsets follow every second; the
//! offsets a slave's consumers committed while it served reads alone go back to the master at
//! the next handshake, and the master moves forward to them.

mod master;
pub mod slave;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::broker::{Broker, BrokerError, BrokerRole, lock};
use crate::protocol::admin as pb;
use crate::protocol::v2::Code;
use crate::storage::replica::Epoch;

pub use master::ReplicationApi;

/// Largest chunk of CommitLog a master sends at once.
const CHUNK_BYTES: usize = 1 << 20;
/// How often the master sends metadata that changed.
const METADATA_EVERY: Duration = Duration::from_secs(1);
/// How often each side speaks on an otherwise idle stream (the master a heartbeat, the slave a
/// report).
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// How long a stream may stay silent before that side gives it up: a partition leaves the TCP
/// connection open, and without this a slave would wait for it (and the master count it as
/// connected) until the link healed.
const SILENCE_LIMIT: Duration = Duration::from_secs(3);

/// A slave connected to this master.
#[derive(Debug, Clone)]
pub struct Replica {
    /// Its id in the group.
    pub broker_id: u64,
    /// Its address.
    pub address: String,
    /// Its CommitLog end as it last reported: everything below is stored there.
    pub acked: u64,
    /// When it connected.
    pub since: Instant,
}

/// The replication state of a broker: as a master, its connected slaves; as a slave, its link
/// to the master.
#[derive(Debug)]
pub(crate) struct Replication {
    /// Master: connected slaves by id.
    replicas: std::sync::Mutex<HashMap<u64, Replica>>,
    /// Master: the highest offset any connected slave has stored (0 with none).
    acked: watch::Sender<u64>,
    /// Slave: the master it replicates from, and the master's end as last heard.
    pub(crate) link: std::sync::Mutex<slave::Link>,
    /// A restart of the broker with its log cut at this offset (a slave whose tail diverged).
    pub(crate) restart: watch::Sender<Option<u64>>,
}

impl Default for Replication {
    fn default() -> Self {
        Replication {
            replicas: std::sync::Mutex::new(HashMap::new()),
            acked: watch::channel(0).0,
            link: std::sync::Mutex::new(slave::Link::default()),
            restart: watch::channel(None).0,
        }
    }
}

impl Replication {
    fn update_acked(&self) {
        let max = lock(&self.replicas).values().map(|r| r.acked).max().unwrap_or(0);
        self.acked.send_if_modified(|a| {
            let changed = *a != max;
            *a = max;
            changed
        });
    }
}

fn epochs_pb(list: &[Epoch]) -> Vec<pb::EpochEntry> {
    list.iter().map(|e| pb::EpochEntry { id: e.id, start: e.start }).collect()
}

fn epochs_from(list: &[pb::EpochEntry]) -> Vec<Epoch> {
    list.iter().map(|e| Epoch { id: e.id, start: e.start }).collect()
}

/// Every committed consumer offset, by (group, topic, queue).
pub(crate) type Offsets = BTreeMap<(String, String, u32), u64>;

fn offsets_of(broker: &Broker) -> Offsets {
    let table = broker.store().consumer_offsets();
    let mut all = Offsets::new();
    for (group, topic) in table.groups() {
        for (q, off) in table.queues(&group, &topic) {
            all.insert((group.clone(), topic.clone(), q), off);
        }
    }
    all
}

fn offsets_pb(o: &Offsets) -> Vec<pb::OffsetEntry> {
    o.iter()
        .map(|((group, topic, queue_id), offset)| pb::OffsetEntry {
            group: group.clone(),
            topic: topic.clone(),
            queue_id: *queue_id,
            offset: *offset,
        })
        .collect()
}

fn offsets_from(list: Vec<pb::OffsetEntry>) -> Offsets {
    list.into_iter().map(|e| ((e.group, e.topic, e.queue_id), e.offset)).collect()
}

/// Moves consumer offsets to `targets`, one reset per (group, topic).
fn apply_offsets(broker: &Broker, targets: &Offsets) -> crate::broker::Result<usize> {
    let mut by_queue: BTreeMap<(&str, &str), Vec<(u32, u64)>> = BTreeMap::new();
    for ((g, t, q), off) in targets {
        by_queue.entry((g, t)).or_default().push((*q, *off));
    }
    let n = by_queue.len();
    for ((g, t), queues) in by_queue {
        broker.pop().reset_to(g, t, &queues)?;
    }
    Ok(n)
}

impl Broker {
    pub(crate) fn replication(&self) -> &Replication {
        &self.inner.replication
    }

    /// Whether this broker is a slave (read-only: only replication writes its log).
    pub fn is_slave(&self) -> bool {
        self.config().broker_role == BrokerRole::Slave
    }

    /// `FORBIDDEN` on a slave, for every write a client or an operator asks for.
    pub(crate) fn check_writable(&self, what: &str) -> crate::broker::Result<()> {
        if self.is_slave() {
            return Err(BrokerError::new(
                Code::Forbidden,
                format!(
                    "{what}: broker {} (id {}) is a slave, which is read-only; send writes to its \
                     master (id 0), which the route lists",
                    self.config().broker_name,
                    self.config().broker_id
                ),
            ));
        }
        Ok(())
    }

    /// Master: the slaves connected now.
    pub fn replicas(&self) -> Vec<Replica> {
        let mut list: Vec<Replica> = lock(&self.replication().replicas).values().cloned().collect();
        list.sort_by_key(|r| r.broker_id);
        list
    }

    /// Master with `sync_master`: waits until a slave has stored everything below `end`.
    /// `HA_NOT_AVAILABLE` when no slave is connected, `SLAVE_PERSISTENCE_TIMEOUT` when none
    /// confirms within `sync_replica_timeout_ms`: the message is stored on the master, but not
    /// replicated as the role promises, and the client is told so.
    pub(crate) async fn wait_replicated(&self, end: u64) -> crate::broker::Result<()> {
        if self.config().broker_role != BrokerRole::SyncMaster {
            return Ok(());
        }
        let r = self.replication();
        if lock(&r.replicas).is_empty() {
            return Err(BrokerError::new(
                Code::HaNotAvailable,
                format!(
                    "stored on sync_master {} but no slave is connected to replicate it",
                    self.config().broker_name
                ),
            ));
        }
        let mut acked = r.acked.subscribe();
        let limit = Duration::from_millis(self.config().sync_replica_timeout_ms);
        match tokio::time::timeout(limit, acked.wait_for(|a| *a >= end)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(BrokerError::new(
                Code::SlavePersistenceTimeout,
                format!(
                    "stored on sync_master {} but no slave confirmed it within {} ms",
                    self.config().broker_name,
                    limit.as_millis()
                ),
            )),
        }
    }

    /// Resolves with the offset to cut the log at when the broker must restart (a slave whose
    /// tail diverged from its master's).
    pub fn restart_requested(&self) -> impl Future<Output = u64> + Send + 'static {
        let mut rx = self.replication().restart.subscribe();
        async move {
            loop {
                if let Some(to) = *rx.borrow_and_update() {
                    return to;
                }
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}
