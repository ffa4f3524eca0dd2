//! Calls from one server process to another (broker → name server registrations and route
//! queries, name server → broker admin calls, slave → master): a lazily connected channel per
//! address, a timeout on every call, and the metadata a client sends (a client id naming the
//! calling process, and the `MQv2-HMAC-SHA1` signature when the process has credentials), so
//! the peer checks a server exactly as it checks any client.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, Endpoint};

use crate::protocol::admin::admin_client::AdminClient;
use crate::protocol::admin::cluster_client::ClusterClient;
use crate::protocol::admin::replication_client::ReplicationClient;
use crate::protocol::auth::{ServerCredentials, authorization, date_time};
use crate::protocol::v2::messaging_service_client::MessagingServiceClient;

/// Channels to other servers.
#[derive(Debug)]
pub struct Peers {
    client_id: AsciiMetadataValue,
    timeout: Duration,
    channels: Mutex<HashMap<String, Channel>>,
    /// The process's own credentials: a cluster shares one key pair, and servers sign their
    /// calls to each other with it.
    credentials: Option<ServerCredentials>,
}

impl Peers {
    /// Peers calling as `client_id` (e.g. `broker-a@10.0.0.1:8081`), each call bounded by
    /// `timeout`.
    pub fn new(
        client_id: &str,
        timeout: Duration,
        credentials: Option<ServerCredentials>,
    ) -> Peers {
        let client_id = AsciiMetadataValue::try_from(client_id)
            .unwrap_or_else(|_| AsciiMetadataValue::from_static("orbitmq-server"));
        Peers { client_id, timeout, channels: Mutex::new(HashMap::new()), credentials }
    }

    /// The channel to `address` (`host:port`), connecting on first use.
    pub fn channel(&self, address: &str) -> Result<Channel, tonic::Status> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(ch) = channels.get(address) {
            return Ok(ch.clone());
        }
        let ep = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| tonic::Status::invalid_argument(format!("address {address:?}: {e}")))?
            .connect_timeout(self.timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(self.timeout)
            .keep_alive_while_idle(true);
        let ch = ep.connect_lazy();
        channels.insert(address.to_owned(), ch.clone());
        Ok(ch)
    }

    /// The `orbitmq.v1.Cluster` client of `address`.
    pub fn cluster(&self, address: &str) -> Result<ClusterClient<Channel>, tonic::Status> {
        Ok(ClusterClient::new(self.channel(address)?))
    }

    /// The `orbitmq.v1.Admin` client of `address`.
    pub fn admin(&self, address: &str) -> Result<AdminClient<Channel>, tonic::Status> {
        Ok(AdminClient::new(self.channel(address)?)
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20))
    }

    /// The `orbitmq.v1.Replication` client of `address` (a master).
    pub fn replication(&self, address: &str) -> Result<ReplicationClient<Channel>, tonic::Status> {
        Ok(ReplicationClient::new(self.channel(address)?)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20))
    }

    /// The `apache.rocketmq.v2.MessagingService` client of `address`.
    pub fn messaging(
        &self,
        address: &str,
    ) -> Result<MessagingServiceClient<Channel>, tonic::Status> {
        Ok(MessagingServiceClient::new(self.channel(address)?))
    }

    /// A request carrying `message`, this process's client metadata and the call timeout.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        let meta = req.metadata_mut();
        meta.insert("x-mq-client-id", self.client_id.clone());
        meta.insert("x-mq-language", AsciiMetadataValue::from_static("RUST"));
        meta.insert("x-mq-protocol", AsciiMetadataValue::from_static("v2"));
        if let Some(c) = &self.credentials {
            let date = date_time(std::time::SystemTime::now());
            let signed = authorization(&c.access_key, &c.secret_key, &date);
            if let (Ok(d), Ok(a)) =
                (AsciiMetadataValue::try_from(date.as_str()), AsciiMetadataValue::try_from(signed))
            {
                meta.insert("x-mq-date-time", d);
                meta.insert("authorization", a);
            }
        }
        req.set_timeout(self.timeout);
        req
    }

    /// A streaming request carrying `message` and this process's client metadata, without a
    /// timeout (the stream lives as long as both sides do).
    pub fn stream_request<T>(&self, message: T) -> tonic::Request<T> {
        let mut req = self.request(message);
        req.metadata_mut().remove("grpc-timeout");
        req
    }

    /// Forgets the channel to `address` (a peer that left), so memory does not grow with every
    /// address ever seen.
    pub fn forget(&self, address: &str) {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner).remove(address);
    }
}
