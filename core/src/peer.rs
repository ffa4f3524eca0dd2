//! Calls from one server process to another (broker → name server registrations and route
//! queries, name server → broker admin calls, slave → master): a lazily connected channel per
//! address, a timeout on every call, and the metadata a client sends (a client id naming the
//! calling process, and the `MQv2-HMAC-SHA1` signature when the process has credentials), so
//! the peer checks a server exactly as it checks any client. Peers are reached over TLS when
//! the process is given a [`PeerTls`] that says so (a cluster whose servers run `--tls
//! required` closes plaintext connections).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, Endpoint};

use crate::protocol::admin::admin_client::AdminClient;
use crate::protocol::admin::cluster_client::ClusterClient;
use crate::protocol::admin::replication_client::ReplicationClient;
use crate::protocol::auth::{ServerCredentials, authorization, date_time};
use crate::protocol::v2::messaging_service_client::MessagingServiceClient;
use crate::tls::{ClientTls, TlsError};

/// How a server connects to the other servers of its cluster: plaintext HTTP/2 (the default),
/// or TLS with a rustls configuration built once at start, so a bad CA file fails the start
/// rather than every call.
#[derive(Debug, Clone, Default)]
pub struct PeerTls(Option<Arc<rustls::ClientConfig>>);

impl PeerTls {
    /// Plaintext.
    #[must_use]
    pub fn plaintext() -> PeerTls {
        PeerTls(None)
    }

    /// As `tls` says: [`ClientTls::Off`] is plaintext; the others are TLS, verifying peers or
    /// not as they say.
    ///
    /// # Errors
    /// The CA file cannot be read or holds no usable certificate.
    pub fn new(tls: &ClientTls) -> Result<PeerTls, TlsError> {
        Ok(PeerTls(tls.client_config()?))
    }

    /// Whether peers are reached over TLS.
    #[must_use]
    pub fn is_tls(&self) -> bool {
        self.0.is_some()
    }
}

/// Two are equal when they are the same configuration (rustls configurations do not compare).
impl PartialEq for PeerTls {
    fn eq(&self, other: &PeerTls) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for PeerTls {}

/// Channels to other servers.
#[derive(Debug)]
pub struct Peers {
    client_id: AsciiMetadataValue,
    timeout: Duration,
    channels: Mutex<HashMap<String, Channel>>,
    /// The process's own credentials: a cluster shares one key pair, and servers sign their
    /// calls to each other with it.
    credentials: Option<ServerCredentials>,
    tls: PeerTls,
}

impl Peers {
    /// Peers calling as `client_id` (e.g. `broker-a@10.0.0.1:8081`), each call bounded by
    /// `timeout`, connecting as `tls` says.
    pub fn new(
        client_id: &str,
        timeout: Duration,
        credentials: Option<ServerCredentials>,
        tls: PeerTls,
    ) -> Peers {
        let client_id = AsciiMetadataValue::try_from(client_id)
            .unwrap_or_else(|_| AsciiMetadataValue::from_static("orbitmq-server"));
        Peers { client_id, timeout, channels: Mutex::new(HashMap::new()), credentials, tls }
    }

    /// The channel to `address` (`host:port`), connecting on first use.
    pub fn channel(&self, address: &str) -> Result<Channel, tonic::Status> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(ch) = channels.get(address) {
            return Ok(ch.clone());
        }
        let scheme = if self.tls.is_tls() { "https" } else { "http" };
        let ep = Endpoint::from_shared(format!("{scheme}://{address}"))
            .map_err(|e| tonic::Status::invalid_argument(format!("address {address:?}: {e}")))?
            .connect_timeout(self.timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(self.timeout)
            .keep_alive_while_idle(true);
        let ch = match &self.tls.0 {
            Some(config) => crate::tls::connect_lazy(&ep, Arc::clone(config)),
            None => ep.connect_lazy(),
        };
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

    /// `status`'s message, with a hint when a plaintext call failed as a closed connection
    /// fails (a transport error, unavailable, or cancelled: closed before the answer): the peer
    /// may run `--tls required`, which closes plaintext connections.
    pub fn explain(&self, status: &tonic::Status) -> String {
        let closed = matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Unknown
        );
        if !self.tls.is_tls() && closed {
            format!(
                "{} (if the peer runs --tls required, it closes plaintext connections: give this \
                 server --peer-tls on)",
                status.message()
            )
        } else {
            status.message().to_owned()
        }
    }

    /// Forgets the channel to `address` (a peer that left), so memory does not grow with every
    /// address ever seen.
    pub fn forget(&self, address: &str) {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner).remove(address);
    }
}
