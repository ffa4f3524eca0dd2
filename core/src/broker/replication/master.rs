//! The master's side: `orbitmq.v1.Replication` streams the CommitLog and metadata to each
//! connected slave and records how far each has stored.

use std::pin::Pin;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{
    CHUNK_BYTES, HEARTBEAT_EVERY, METADATA_EVERY, Replica, SILENCE_LIMIT, apply_offsets,
    epochs_from, epochs_pb, offsets_from, offsets_of, offsets_pb,
};
use crate::broker::{Broker, lock};
use crate::protocol::admin::replication_server::Replication;
use crate::protocol::admin::{self as pb, replica_data::Kind};
use crate::storage::replica::agreed_end;

/// The replication service of a master.
#[derive(Debug, Clone)]
pub struct ReplicationApi {
    broker: Broker,
}

impl ReplicationApi {
    /// Serves `broker`.
    pub fn new(broker: Broker) -> Self {
        ReplicationApi { broker }
    }
}

type DataStream = Pin<Box<dyn Stream<Item = Result<pb::ReplicaData, Status>> + Send + 'static>>;

/// Where to stream from for a slave that reported `first`, or where it must cut its log.
fn handshake(broker: &Broker, first: &pb::ReplicaReport) -> Result<pb::ReplicaHandshake, Status> {
    let store = broker.store();
    let (min, max) = (store.commitlog_min_offset(), store.commitlog_max_offset());
    let master_epochs = store.epochs().list();
    let slave_end = first.commitlog_max_offset;
    let mut hs = pb::ReplicaHandshake {
        epochs: epochs_pb(&master_epochs),
        commitlog_min_offset: min,
        commitlog_max_offset: max,
        truncate_to: None,
        start_offset: slave_end,
    };
    if slave_end == 0 {
        // An empty slave starts where the master's log starts.
        hs.start_offset = min;
        return Ok(hs);
    }
    let agreed = agreed_end(&master_epochs, max, &epochs_from(&first.epochs), slave_end);
    match agreed {
        Some(to) if to == slave_end => {}
        Some(to) => hs.truncate_to = Some(to),
        // Nothing in common (the master's data was replaced): the slave starts over.
        None => hs.truncate_to = Some(0),
    }
    if hs.truncate_to.is_none() && slave_end < min {
        return Err(Status::failed_precondition(format!(
            "the slave's log ends at {slave_end}, but retention already deleted the master's log \
             below {min}: stop the slave, empty its data directory and start it again to copy \
             the master from scratch"
        )));
    }
    Ok(hs)
}

#[tonic::async_trait]
impl Replication for ReplicationApi {
    type ReplicateStream = DataStream;

    async fn replicate(
        &self,
        request: Request<Streaming<pb::ReplicaReport>>,
    ) -> Result<Response<Self::ReplicateStream>, Status> {
        let broker = self.broker.clone();
        if broker.config().broker_id != 0 || broker.is_slave() {
            return Err(Status::failed_precondition(format!(
                "broker {} (id {}) is not a master: slaves replicate from the group's id 0",
                broker.config().broker_name,
                broker.config().broker_id
            )));
        }
        let mut inbound = request.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("the stream must start with a report"))?;
        let c = broker.config();
        if first.broker_name != c.broker_name || first.broker_id == 0 {
            return Err(Status::failed_precondition(format!(
                "a slave of {:?} with id {} cannot replicate master {:?}: same --broker-name, id > 0",
                first.broker_name, first.broker_id, c.broker_name
            )));
        }
        let segment_size = broker.store().config().segment_size as u64;
        if first.segment_size != segment_size {
            return Err(Status::failed_precondition(format!(
                "the slave's segment_size is {}, the master's {segment_size}: they must match",
                first.segment_size
            )));
        }
        let hs = handshake(&broker, &first)?;
        // Offsets the slave's consumers advanced while it served reads alone: forward only.
        take_offsets(&broker, first.offsets.clone(), &first.address).map_err(|e| e.to_grpc())?;
        let (tx, rx) = mpsc::channel::<Result<pb::ReplicaData, Status>>(8);
        let truncate = hs.truncate_to;
        let start = hs.start_offset;
        tracing::info!(
            slave = first.address,
            id = first.broker_id,
            slave_end = first.commitlog_max_offset,
            start,
            truncate_to = ?truncate,
            "slave connected"
        );
        tx.send(Ok(pb::ReplicaData { kind: Some(Kind::Handshake(hs)) }))
            .await
            .map_err(|_| Status::cancelled("slave gone"))?;
        if truncate.is_some() {
            // It cuts its log and comes back.
            return Ok(Response::new(Box::pin(ReceiverStream::new(rx))));
        }
        let id = first.broker_id;
        let replica = Replica {
            broker_id: id,
            address: first.address.clone(),
            acked: first.commitlog_max_offset,
            since: Instant::now(),
        };
        lock(&broker.replication().replicas).insert(id, replica);
        broker.replication().update_acked();
        let since = lock(&broker.replication().replicas).get(&id).map(|r| r.since);
        // The stream to the slave ends with the reports from it.
        let (gone, gone_rx) = oneshot::channel::<()>();
        tokio::spawn(stream_log(broker.clone(), tx, start, gone_rx));
        tokio::spawn(read_reports(broker, inbound, id, since, gone));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Moves this master's consumer offsets forward to those a slave's consumers committed there
/// (read from it while its master was away from the routes, or through a route not yet
/// refreshed); never backward.
fn take_offsets(
    broker: &Broker,
    offsets: Vec<pb::OffsetEntry>,
    slave: &str,
) -> crate::broker::Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let ours = offsets_of(broker);
    let ahead: super::Offsets = offsets_from(offsets)
        .into_iter()
        .filter(|(k, off)| ours.get(k).is_none_or(|o| off > o))
        .collect();
    if ahead.is_empty() {
        return Ok(());
    }
    // Groups first used on the slave exist here too from now on.
    for (group, _, _) in ahead.keys() {
        if let Err(e) = broker.group_or_create(group) {
            tracing::warn!(group, error = %e.message, "cannot create a group the slave consumed in");
        }
    }
    let n = apply_offsets(broker, &ahead)?;
    tracing::info!(
        slave,
        queues = ahead.len(),
        groups_topics = n,
        "took the consumer offsets committed on the slave"
    );
    Ok(())
}

/// Records how far slave `id` has stored, from its reports, until it goes or stays silent for
/// `SILENCE_LIMIT`; then forgets it (this connection's entry only: a reconnect may have
/// replaced it meanwhile) and ends its stream (`gone`).
async fn read_reports(
    broker: Broker,
    mut inbound: Streaming<pb::ReplicaReport>,
    id: u64,
    since: Option<Instant>,
    gone: oneshot::Sender<()>,
) {
    loop {
        match tokio::time::timeout(SILENCE_LIMIT, inbound.message()).await {
            Ok(Ok(Some(report))) => {
                if let Some(r) = lock(&broker.replication().replicas).get_mut(&id) {
                    r.acked = r.acked.max(report.commitlog_max_offset);
                }
                broker.replication().update_acked();
                if let Err(e) = take_offsets(&broker, report.offsets, &report.address) {
                    tracing::warn!(slave_id = id, error = %e.message, "cannot take the slave's consumer offsets");
                }
            }
            Ok(_) => break,
            Err(_) => {
                tracing::warn!(
                    slave_id = id,
                    silent_ms = SILENCE_LIMIT.as_millis() as u64,
                    "no report from the slave: dropping its stream"
                );
                break;
            }
        }
    }
    drop(gone);
    let mut replicas = lock(&broker.replication().replicas);
    if replicas.get(&id).map(|r| r.since) == since {
        replicas.remove(&id);
    }
    drop(replicas);
    broker.replication().update_acked();
    tracing::warn!(slave_id = id, "slave disconnected");
}

/// The metadata a slave mirrors: topic and group configs, consumer offsets, epochs.
fn metadata(broker: &Broker, offsets: &super::Offsets) -> pb::ReplicaMetadata {
    use crate::broker::admin::{group_pb, topic_pb};
    let store = broker.store();
    pb::ReplicaMetadata {
        topics: store.topics().all().iter().map(|(n, c)| topic_pb(n, c)).collect(),
        groups: store.groups().all().into_iter().map(|(n, c)| group_pb(n, &c)).collect(),
        offsets: offsets_pb(offsets),
        epochs: epochs_pb(&store.epochs().list()),
    }
}

/// Streams the log from `from`, and the metadata on connect and whenever it changed (checked
/// every second, and at once when topics or groups change), with a heartbeat when idle for a
/// second, until the slave goes (`gone` fires or the stream closes) or the broker stops.
async fn stream_log(
    broker: Broker,
    tx: mpsc::Sender<Result<pb::ReplicaData, Status>>,
    mut from: u64,
    gone: oneshot::Receiver<()>,
) {
    let stopping = broker.stopping();
    tokio::pin!(stopping);
    tokio::pin!(gone);
    let send = |kind| pb::ReplicaData { kind: Some(kind) };
    let mut last_sent: Option<((u64, u64), super::Offsets)> = None;
    let mut checked = Instant::now();
    loop {
        let store = broker.store();
        let versions = (store.topics().version(), store.groups().version());
        if last_sent.as_ref().is_none_or(|(v, _)| *v != versions)
            || checked.elapsed() >= METADATA_EVERY
        {
            checked = Instant::now();
            let offsets = offsets_of(&broker);
            if last_sent.as_ref().is_none_or(|(v, o)| *v != versions || *o != offsets) {
                let meta = metadata(&broker, &offsets);
                if tx.send(Ok(send(Kind::Metadata(meta)))).await.is_err() {
                    return;
                }
                last_sent = Some((versions, offsets));
            }
        }
        // Interest registered before looking, so an append between the two is not missed.
        let appended = store.appended();
        tokio::pin!(appended);
        appended.as_mut().enable();
        match store.replication_chunk(from, CHUNK_BYTES) {
            Ok(Some(chunk)) => {
                from = chunk.offset + chunk.data.len() as u64;
                let data = pb::ReplicaChunk {
                    offset: chunk.offset,
                    data: chunk.data,
                    master_max_offset: store.commitlog_max_offset(),
                };
                if tx.send(Ok(send(Kind::Chunk(data)))).await.is_err() {
                    return;
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(from, error = %e, "cannot read the log for a slave");
                let status = Status::internal(format!("reading the log at {from}: {e}"));
                let _ = tx.send(Err(status)).await;
                return;
            }
        }
        tokio::select! {
            () = &mut appended => {}
            () = tokio::time::sleep(HEARTBEAT_EVERY) => {
                let beat = pb::ReplicaHeartbeat { master_max_offset: store.commitlog_max_offset() };
                if tx.send(Ok(send(Kind::Heartbeat(beat)))).await.is_err() {
                    return;
                }
            }
            () = tx.closed() => return,
            _ = &mut gone => return,
            () = &mut stopping => return,
        }
    }
}
