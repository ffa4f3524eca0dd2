//! Calls to servers: one gRPC channel per endpoint (plaintext or TLS, connected on first use),
//! the metadata every request carries (client id, language, namespace and, with
//! credentials, the `MQv2-HMAC-SHA1` signature), a timeout on every call, and the in-body status
//! of every answer turned into an [`Error`]. An endpoint whose connection fails is isolated for a
//! while, so the callers that can choose another endpoint do.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::transport::{Channel, Endpoint};

use crate::client::config::ClientConfig;
use crate::client::error::{Error, ErrorKind, Result};
use crate::protocol::admin::admin_client::AdminClient;
use crate::protocol::auth::{authorization, date_time};
use crate::protocol::v2::messaging_service_client::MessagingServiceClient;

/// How long an endpoint whose connection failed is avoided.
pub(crate) const ISOLATION: Duration = Duration::from_secs(30);

/// The generated client over one endpoint's channel.
pub(crate) type Stub = MessagingServiceClient<Channel>;
/// The generated admin client over one endpoint's channel.
pub(crate) type AdminStub = AdminClient<Channel>;

/// The SDK's version, sent as `x-mq-client-version`.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Connections and request metadata, shared by everything one client handle does.
pub(crate) struct Rpc {
    config: ClientConfig,
    client_id: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    channels: Mutex<HashMap<String, Channel>>,
    isolated: Mutex<HashMap<String, Instant>>,
    headers: Headers,
}

/// Header values made once, cloned (a reference count) into every request.
struct Headers {
    client_id: Option<AsciiMetadataValue>,
    namespace: Option<AsciiMetadataValue>,
}

impl Rpc {
    /// Checks `config` and prepares TLS; connects nothing yet.
    pub(crate) fn new(config: ClientConfig) -> Result<Rpc> {
        config.validate()?;
        let tls = config.tls.client_config()?;
        let client_id = client_id();
        let headers = Headers {
            client_id: AsciiMetadataValue::try_from(client_id.as_str()).ok(),
            namespace: Some(config.namespace.as_str())
                .filter(|n| !n.is_empty())
                .and_then(|n| AsciiMetadataValue::try_from(n).ok()),
        };
        Ok(Rpc {
            config,
            client_id,
            tls,
            channels: Mutex::new(HashMap::new()),
            isolated: Mutex::new(HashMap::new()),
            headers,
        })
    }

    pub(crate) fn config(&self) -> &ClientConfig {
        &self.config
    }

    pub(crate) fn client_id(&self) -> &str {
        &self.client_id
    }

    pub(crate) fn namespace(&self) -> &str {
        &self.config.namespace
    }

    /// The generated client for `endpoint` (`host:port`), on its channel.
    pub(crate) fn stub(&self, endpoint: &str) -> Result<Stub> {
        Ok(MessagingServiceClient::new(self.channel(endpoint)?))
    }

    /// The channel to `endpoint`, made (connecting lazily) on first use.
    pub(crate) fn channel(&self, endpoint: &str) -> Result<Channel> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(ch) = channels.get(endpoint) {
            return Ok(ch.clone());
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let ep = Endpoint::from_shared(format!("{scheme}://{endpoint}"))
            .map_err(|e| Error::bad_request(format!("endpoint {endpoint:?}: {e}")))?
            .connect_timeout(self.config.request_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        let ch = match &self.tls {
            Some(tls) => crate::tls::connect_lazy(&ep, Arc::clone(tls)),
            None => ep.connect_lazy(),
        };
        channels.insert(endpoint.to_owned(), ch.clone());
        Ok(ch)
    }

    /// A request carrying `message`, the client's metadata and the timeout `timeout`.
    pub(crate) fn request<T>(&self, message: T, timeout: Duration) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        self.sign(req.metadata_mut());
        req.set_timeout(timeout);
        req
    }

    /// Adds the metadata the official clients send to `meta`.
    pub(crate) fn sign(&self, meta: &mut MetadataMap) {
        if let Some(v) = &self.headers.client_id {
            meta.insert("x-mq-client-id", v.clone());
        }
        meta.insert("x-mq-language", AsciiMetadataValue::from_static("RUST"));
        meta.insert("x-mq-protocol", AsciiMetadataValue::from_static("v2"));
        meta.insert("x-mq-client-version", AsciiMetadataValue::from_static(VERSION));
        if let Some(v) = &self.headers.namespace {
            meta.insert("x-mq-namespace", v.clone());
        }
        // The date-time is what the signature covers; without credentials nothing reads it,
        // and a header that changes every second costs both sides on every request.
        if let Some(c) = &self.config.credentials {
            let date = date_time(std::time::SystemTime::now());
            let ascii = |s: &str| AsciiMetadataValue::try_from(s).ok();
            if let Some(v) = ascii(&authorization(&c.access_key, &c.secret_key, &date)) {
                meta.insert("authorization", v);
            }
            if let Some(v) = c.security_token.as_deref().and_then(ascii) {
                meta.insert("x-mq-session-token", v);
            }
            if let Some(v) = ascii(&date) {
                meta.insert("x-mq-date-time", v);
            }
        }
    }

    /// Calls `endpoint` with `message` through `call`, within the request timeout plus
    /// `extra` (a long poll's time), and returns the answer or the error it stands for.
    /// `operation` names the call in errors.
    pub(crate) async fn call<Req, Resp, F, Fut>(
        &self,
        operation: &'static str,
        endpoint: &str,
        extra: Duration,
        message: Req,
        call: F,
    ) -> Result<Resp>
    where
        F: FnOnce(Stub, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
    {
        self.call_on(MessagingServiceClient::new, operation, endpoint, extra, message, call)
            .await
            .map(tonic::Response::into_inner)
    }

    /// [`Rpc::call`], keeping the response's metadata (OrbitMQ's extension headers).
    pub(crate) async fn call_response<Req, Resp, F, Fut>(
        &self,
        operation: &'static str,
        endpoint: &str,
        extra: Duration,
        message: Req,
        call: F,
    ) -> Result<tonic::Response<Resp>>
    where
        F: FnOnce(Stub, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
    {
        self.call_on(MessagingServiceClient::new, operation, endpoint, extra, message, call).await
    }

    /// [`Rpc::call`] on the `orbitmq.v1` admin service.
    pub(crate) async fn call_admin<Req, Resp, F, Fut>(
        &self,
        operation: &'static str,
        endpoint: &str,
        message: Req,
        call: F,
    ) -> Result<Resp>
    where
        F: FnOnce(AdminStub, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
    {
        self.call_on(AdminClient::new, operation, endpoint, Duration::ZERO, message, call)
            .await
            .map(tonic::Response::into_inner)
    }

    /// Calls `endpoint` through the generated client `make` builds on its channel.
    async fn call_on<S, Req, Resp, F, Fut>(
        &self,
        make: fn(Channel) -> S,
        operation: &'static str,
        endpoint: &str,
        extra: Duration,
        message: Req,
        call: F,
    ) -> Result<tonic::Response<Resp>>
    where
        F: FnOnce(S, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let timeout = self.config.request_timeout + extra;
        let stub = self.channel(endpoint).map(make).map_err(|e| e.with_operation(operation))?;
        // The deadline goes to the server only for long polls, which it bounds by it; for
        // other calls the client's own timeout suffices, and the server is spared a timer
        // per request.
        let req = if extra.is_zero() {
            let mut req = tonic::Request::new(message);
            self.sign(req.metadata_mut());
            req
        } else {
            self.request(message, timeout)
        };
        let answer = tokio::time::timeout(timeout, call(stub, req)).await;
        let fail = |e: Error| e.with_operation(operation).with_endpoint(endpoint);
        match answer {
            Err(_) => Err(fail(Error::new(
                ErrorKind::Timeout,
                format!("no answer within {} ms", timeout.as_millis()),
            ))),
            Ok(Err(status)) => {
                let e = Error::from(status.clone());
                if e.kind() == ErrorKind::Unavailable {
                    self.isolate(endpoint);
                }
                Err(fail(if e.kind() == ErrorKind::Unavailable {
                    Error::new(ErrorKind::Unavailable, format!("cannot reach {endpoint}"))
                        .with_source(status)
                } else {
                    e
                }))
            }
            Ok(Ok(resp)) => {
                self.restore(endpoint);
                Ok(resp)
            }
        }
    }

    /// Avoids `endpoint` for [`ISOLATION`].
    pub(crate) fn isolate(&self, endpoint: &str) {
        let mut isolated = self.isolated.lock().unwrap_or_else(PoisonError::into_inner);
        isolated.insert(endpoint.to_owned(), Instant::now() + ISOLATION);
    }

    fn restore(&self, endpoint: &str) {
        let mut isolated = self.isolated.lock().unwrap_or_else(PoisonError::into_inner);
        if !isolated.is_empty() {
            isolated.remove(endpoint);
        }
    }

    /// Whether `endpoint` is being avoided.
    pub(crate) fn is_isolated(&self, endpoint: &str) -> bool {
        let isolated = self.isolated.lock().unwrap_or_else(PoisonError::into_inner);
        isolated.get(endpoint).is_some_and(|until| *until > Instant::now())
    }
}

/// The comma-separated values of header `name` of `meta`, `n` of them, or `None` (absent,
/// unreadable or a different count): an OrbitMQ extension header.
pub(crate) fn header_list<'m>(meta: &'m MetadataMap, name: &str, n: usize) -> Option<Vec<&'m str>> {
    let v = meta.get(name)?.to_str().ok()?;
    let list: Vec<&str> = v.split(',').collect();
    (list.len() == n).then_some(list)
}

/// `host@pid@index@time` (base 36), as the official clients make it: unique per client object.
fn client_id() -> String {
    static INDEX: AtomicU64 = AtomicU64::new(0);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && h.is_ascii())
        .unwrap_or_else(|| "localhost".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let index = INDEX.fetch_add(1, Ordering::Relaxed);
    format!("{host}@{}@{index}@{}", std::process::id(), base36(nanos))
}

fn base36(mut n: u128) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Upper-case hex of `bytes`.
pub(crate) fn hex_upper(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    push_hex_upper(&mut s, bytes);
    s
}

/// Appends `bytes` to `out` in upper-case hex (a table look-up: message ids are made per
/// message, and `fmt` costs ten times as much).
pub(crate) fn push_hex_upper(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xF)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_the_official_clients_metadata() {
        let config = ClientConfig::new("127.0.0.1:1")
            .namespace("ns")
            .credentials(crate::client::Credentials::new("AK", "SK"));
        let rpc = Rpc::new(config).unwrap();
        let req = rpc.request((), Duration::from_secs(1));
        let m = req.metadata();
        let get = |k| m.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        assert_eq!(get("x-mq-client-id"), rpc.client_id());
        assert_eq!(rpc.client_id().split('@').count(), 4);
        assert_eq!(get("x-mq-language"), "RUST");
        assert_eq!(get("x-mq-namespace"), "ns");
        let date = get("x-mq-date-time");
        assert_eq!(get("authorization"), authorization("AK", "SK", &date));
        assert_eq!(
            m.get("grpc-timeout").map(|v| v.to_str().unwrap().to_owned()),
            Some("1000000u".into())
        );
        let other = Rpc::new(ClientConfig::new("127.0.0.1:1")).unwrap();
        assert_ne!(other.client_id(), rpc.client_id(), "two clients, one id");
        assert!(
            other.request((), Duration::from_secs(1)).metadata().get("authorization").is_none()
        );
    }
}
