//! The slave's side: one stream to the master (its address from `master_address`, else from the
//! name servers), reconnected with back-off; each chunk appended at its offset and reported, the
//! metadata mirrored.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{
    HEARTBEAT_EVERY, Offsets, SILENCE_LIMIT, apply_offsets, epochs_from, epochs_pb, offsets_from,
    offsets_of, offsets_pb,
};
use crate::broker::{Broker, lock};
use crate::peer::Peers;
use crate::protocol::admin::{self as pb, replica_data::Kind};
use crate::storage::persist::{load_json, save_json};
use crate::storage::replica::Chunk;
use crate::storage::{GroupConfig, TopicConfig};

/// A slave's view of its master.
#[derive(Debug, Clone, Default)]
pub struct Link {
    /// The master's address, from `master_address` or the name servers.
    pub master: Option<String>,
    /// Whether the stream is up.
    pub connected: bool,
    /// The master's CommitLog end as it last said.
    pub master_max_offset: u64,
    /// When the stream came up.
    pub since: Option<Instant>,
}

/// The consumer offsets the master last sent, saved so that after a restart the slave still
/// knows which of its own offsets moved beyond them.
fn replicated_path(broker: &Broker) -> PathBuf {
    broker.store().config().dir.join("config").join("replicated_offsets.json")
}

fn load_replicated(broker: &Broker) -> Offsets {
    let list: Vec<pb::OffsetEntry> =
        load_json::<Vec<(String, String, u32, u64)>>(&replicated_path(broker))
            .ok()
            .flatten()
            .unwrap_or_default()
            .into_iter()
            .map(|(group, topic, queue_id, offset)| pb::OffsetEntry {
                group,
                topic,
                queue_id,
                offset,
            })
            .collect();
    offsets_from(list)
}

fn save_replicated(broker: &Broker, o: &Offsets) -> crate::storage::Result<()> {
    let list: Vec<(&str, &str, u32, u64)> =
        o.iter().map(|((g, t, q), off)| (g.as_str(), t.as_str(), *q, *off)).collect();
    save_json(&replicated_path(broker), &list)
}

/// The consumer offsets this slave's consumers moved beyond `replicated` (what the master
/// last sent).
fn offsets_ahead(broker: &Broker, replicated: &Offsets) -> Offsets {
    offsets_of(broker)
        .into_iter()
        .filter(|(k, off)| replicated.get(k).is_none_or(|r| off > r))
        .collect()
}

/// Why a stream from master `addr` was given up: nothing came for `SILENCE_LIMIT`.
fn silent(addr: &str) -> String {
    format!(
        "no word from master {addr} in {} ms (a heartbeat is due every second)",
        SILENCE_LIMIT.as_millis()
    )
}

impl Broker {
    /// The slave's link to its master.
    pub fn master_link(&self) -> Link {
        lock(&self.replication().link).clone()
    }

    /// Records the master's address a name server answered (a slave without
    /// `master_address` configured).
    pub(crate) fn learn_master(&self, address: &str) {
        if !self.is_slave() || address.is_empty() || !self.config().master_address.is_empty() {
            return;
        }
        let mut link = lock(&self.replication().link);
        if link.master.as_deref() != Some(address) {
            tracing::info!(master = address, "the name servers name the master");
            link.master = Some(address.to_owned());
        }
    }

    /// Replicates from the master until the broker stops, reconnecting with back-off.
    pub(crate) async fn run_slave(self) {
        let mut stop = self.inner.stop.subscribe();
        let peers = Peers::new(
            &format!(
                "{}-{}@{}",
                self.config().broker_name,
                self.config().broker_id,
                self.address()
            ),
            Duration::from_secs(3),
            self.config().credentials.clone(),
            self.config().peer_tls.clone(),
        );
        if !self.config().master_address.is_empty() {
            lock(&self.replication().link).master = Some(self.config().master_address.clone());
        }
        let mut backoff = Duration::from_millis(100);
        let mut last_error = String::new();
        loop {
            let master = lock(&self.replication().link).master.clone();
            let outcome = match &master {
                None => {
                    tracing::debug!(
                        "no master address yet (none configured, none from the name servers)"
                    );
                    Ok(())
                }
                Some(addr) => {
                    tokio::select! {
                        r = self.replicate_from(&peers, addr) => r,
                        _ = stop.changed() => return,
                    }
                }
            };
            {
                let mut link = lock(&self.replication().link);
                link.connected = false;
                link.since = None;
            }
            match outcome {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    if e != last_error {
                        tracing::warn!(master = ?master, error = e, "replication stopped; retrying");
                        last_error = e;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// What a slave says first: who it is, where its log ends and its epochs, and the offsets
    /// its consumers moved beyond the master's (`ahead`).
    fn first_report(&self, ahead: &Offsets) -> pb::ReplicaReport {
        let store = self.store();
        let c = self.config();
        pb::ReplicaReport {
            broker_name: c.broker_name.clone(),
            broker_id: c.broker_id,
            address: self.address().to_string(),
            commitlog_max_offset: store.commitlog_max_offset(),
            epochs: epochs_pb(&store.epochs().list()),
            offsets: offsets_pb(ahead),
            segment_size: store.config().segment_size as u64,
        }
    }

    /// One replication stream from `addr`, until it ends.
    async fn replicate_from(&self, peers: &Peers, addr: &str) -> Result<(), String> {
        let store = self.store();
        let replicated = load_replicated(self);
        let ahead = offsets_ahead(self, &replicated);
        let first = self.first_report(&ahead);
        let first_end = first.commitlog_max_offset;
        let (reports, rx) = mpsc::channel::<pb::ReplicaReport>(64);
        reports.send(first).await.map_err(|_| "report channel closed".to_owned())?;
        let mut client = peers.replication(addr).map_err(|e| e.message().to_owned())?;
        let mut stream = client
            .replicate(peers.stream_request(ReceiverStream::new(rx)))
            .await
            .map_err(|e| format!("connecting to master {addr}: {}", peers.explain(&e)))?
            .into_inner();
        let report =
            |end: u64| pb::ReplicaReport { commitlog_max_offset: end, ..Default::default() };
        let mut master_epochs = Vec::new();
        let mut replicated = replicated;
        let mut handshaken = false;
        // What was last reported stored, repeated every second so the master knows the stream
        // is alive.
        let mut stored = first_end;
        let mut beat = tokio::time::interval(HEARTBEAT_EVERY);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heard = tokio::time::Instant::now();
        loop {
            let next = tokio::select! {
                next = tokio::time::timeout_at(heard + SILENCE_LIMIT, stream.message()) => next,
                _ = beat.tick() => {
                    if handshaken {
                        // With the offsets its consumers moved beyond the master's (a client
                        // whose route still names this slave), which the master takes.
                        let ahead = offsets_ahead(self, &replicated);
                        let _ = reports.try_send(pb::ReplicaReport {
                            commitlog_max_offset: stored,
                            address: self.address().to_string(),
                            offsets: offsets_pb(&ahead),
                            ..Default::default()
                        });
                    }
                    continue;
                }
            };
            let data = next
                .map_err(|_| silent(addr))?
                .map_err(|e| format!("master {addr}: {}", e.message()))?
                .ok_or_else(|| format!("master {addr} ended the stream"))?;
            heard = tokio::time::Instant::now();
            match data.kind {
                Some(Kind::Handshake(hs)) => {
                    if let Some(to) = hs.truncate_to {
                        tracing::warn!(
                            master = addr,
                            end = store.commitlog_max_offset(),
                            cut_at = to,
                            "this slave's log diverged from its master's: restarting the store with the log cut where they agree"
                        );
                        self.replication().restart.send_replace(Some(to));
                        return Ok(());
                    }
                    master_epochs = epochs_from(&hs.epochs);
                    handshaken = true;
                    let mut link = lock(&self.replication().link);
                    link.connected = true;
                    link.since = Some(Instant::now());
                    link.master_max_offset = hs.commitlog_max_offset;
                    drop(link);
                    if !ahead.is_empty() {
                        // The master took them: they are its offsets now.
                        replicated.extend(ahead.iter().map(|(k, v)| (k.clone(), *v)));
                    }
                    tracing::info!(
                        master = addr,
                        from = hs.start_offset,
                        master_end = hs.commitlog_max_offset,
                        "replicating"
                    );
                }
                Some(Kind::Chunk(chunk)) if handshaken => {
                    lock(&self.replication().link).master_max_offset = chunk.master_max_offset;
                    let end = store
                        .append_replicated(Chunk { offset: chunk.offset, data: chunk.data })
                        .await
                        .map_err(|e| {
                            format!("storing the master's bytes at {}: {e}", chunk.offset)
                        })?;
                    store.epochs().mirror(&master_epochs, end).map_err(|e| e.to_string())?;
                    // A full channel only means reports are behind: the next one says more.
                    stored = end;
                    let _ = reports.try_send(report(end));
                }
                Some(Kind::Heartbeat(hb)) if handshaken => {
                    lock(&self.replication().link).master_max_offset = hb.master_max_offset;
                }
                Some(Kind::Metadata(meta)) if handshaken => {
                    master_epochs = epochs_from(&meta.epochs);
                    store
                        .epochs()
                        .mirror(&master_epochs, store.commitlog_max_offset())
                        .map_err(|e| e.to_string())?;
                    self.mirror_metadata(meta, &mut replicated).map_err(|e| e.to_string())?;
                }
                _ => return Err(format!("master {addr} sent data before its handshake")),
            }
        }
    }

    /// Makes this slave's topics, groups and consumer offsets the master's.
    fn mirror_metadata(
        &self,
        meta: pb::ReplicaMetadata,
        replicated: &mut Offsets,
    ) -> crate::broker::Result<()> {
        let store = self.store();
        let topics = store.topics();
        let want: std::collections::BTreeMap<String, TopicConfig> = meta
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
        for (name, cfg) in &want {
            if topics.get(name).as_ref() != Some(cfg) {
                topics.put(name.clone(), cfg.clone());
            }
        }
        for name in topics.all().keys().filter(|n| !want.contains_key(*n)) {
            topics.remove(name);
        }
        topics.save()?;
        let groups = store.groups();
        let want: std::collections::BTreeMap<String, GroupConfig> = meta
            .groups
            .into_iter()
            .map(|g| {
                let cfg = GroupConfig {
                    max_delivery_attempts: g.max_delivery_attempts,
                    fifo: g.fifo,
                    consume_from: g.consume_from.parse().unwrap_or_default(),
                };
                (g.name, cfg)
            })
            .collect();
        for (name, cfg) in &want {
            if groups.get(name).as_ref() != Some(cfg) {
                groups.put(name.clone(), cfg.clone());
            }
        }
        for name in groups.all().keys().filter(|n| !want.contains_key(*n)) {
            groups.remove(name);
        }
        groups.save()?;
        let master = offsets_from(meta.offsets);
        let ours = offsets_of(self);
        // The master's offsets, except where consumers here moved beyond both the master's
        // and what it last sent: those were reported to the master, which moves forward to
        // them; taking its older value would deliver those messages again.
        let changed: Offsets = master
            .iter()
            .filter(|(k, v)| {
                ours.get(*k).is_none_or(|o| {
                    o != *v && !(o > *v && replicated.get(*k).is_none_or(|r| o > r))
                })
            })
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        if !changed.is_empty() {
            apply_offsets(self, &changed)?;
        }
        if *replicated != master {
            *replicated = master;
            save_replicated(self, replicated)?;
        }
        Ok(())
    }
}
