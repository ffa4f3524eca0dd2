//! What every client is configured with: where the servers are, the namespace, credentials, the
//! request timeout and TLS.

use std::time::Duration;

use crate::client::error::{Error, Result};
use crate::tls::ClientTls;

/// An access key and its secret: requests are signed with them (`MQv2-HMAC-SHA1`).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key, sent in the clear.
    pub access_key: String,
    /// The secret key, used to sign and never sent.
    pub secret_key: String,
    /// A session token, sent as `x-mq-session-token` when set.
    pub security_token: Option<String>,
}

impl Credentials {
    /// An access key and secret key.
    pub fn new(access_key: impl Into<String>, secret_key: impl Into<String>) -> Credentials {
        Credentials {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            security_token: None,
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("security_token", &self.security_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The default request timeout, as the official clients have it.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// How to reach the servers, shared by producers, consumers and the admin client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port`, or several separated by `;` (or `,`): name servers or brokers of OrbitMQ, or
    /// Apache RocketMQ 5 proxies. Tried in turn until one answers.
    pub endpoints: String,
    /// Namespace isolating topics and groups (empty: none).
    pub namespace: String,
    /// Credentials, when the servers require them.
    pub credentials: Option<Credentials>,
    /// How long one request may take (long polls add their polling time to it).
    pub request_timeout: Duration,
    /// Plaintext ([`ClientTls::Off`], the default) or TLS.
    pub tls: ClientTls,
}

impl ClientConfig {
    /// Plaintext, no namespace, no credentials, a 3 s request timeout.
    pub fn new(endpoints: impl Into<String>) -> ClientConfig {
        ClientConfig {
            endpoints: endpoints.into(),
            namespace: String::new(),
            credentials: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            tls: ClientTls::Off,
        }
    }

    /// Sets the namespace.
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> ClientConfig {
        self.namespace = namespace.into();
        self
    }

    /// Sets the credentials.
    #[must_use]
    pub fn credentials(mut self, credentials: Credentials) -> ClientConfig {
        self.credentials = Some(credentials);
        self
    }

    /// Sets the request timeout.
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> ClientConfig {
        self.request_timeout = timeout;
        self
    }

    /// Sets TLS.
    #[must_use]
    pub fn tls(mut self, tls: ClientTls) -> ClientConfig {
        self.tls = tls;
        self
    }

    /// The endpoints, parsed: `host:port` each, at least one.
    pub fn endpoint_list(&self) -> Result<Vec<String>> {
        let list: Vec<String> = self
            .endpoints
            .split([';', ','])
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect();
        if list.is_empty() {
            return Err(Error::bad_request(
                "no endpoints: give host:port, or several separated by ';'",
            ));
        }
        for e in &list {
            let port = e.rsplit_once(':').map(|(host, port)| (host, port.parse::<u16>()));
            match port {
                Some((host, Ok(p))) if !host.is_empty() && p != 0 => {}
                _ => {
                    return Err(Error::bad_request(format!(
                        "endpoint {e:?} is not host:port (a port from 1 to 65535)"
                    )));
                }
            }
        }
        Ok(list)
    }

    /// Checks the whole configuration.
    pub fn validate(&self) -> Result<()> {
        self.endpoint_list()?;
        if self.request_timeout.is_zero() {
            return Err(Error::bad_request("request_timeout must be above zero"));
        }
        crate::protocol::validate::namespace(&self.namespace)?;
        if let Some(c) = &self.credentials
            && (c.access_key.trim().is_empty() || c.secret_key.is_empty())
        {
            return Err(Error::bad_request("credentials need an access key and a secret key"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_and_bad_ones_say_why() {
        let c = ClientConfig::new("a:1; b:2,[::1]:3");
        assert_eq!(c.endpoint_list().unwrap(), ["a:1", "b:2", "[::1]:3"]);
        for bad in ["", " ; ", "host", "host:", ":80", "h:0", "h:70000"] {
            let e = ClientConfig::new(bad).validate().unwrap_err();
            assert_eq!(e.kind(), crate::client::ErrorKind::BadRequest, "{bad:?}");
        }
        let e = ClientConfig::new("h:1").request_timeout(Duration::ZERO).validate().unwrap_err();
        assert!(e.message().contains("request_timeout"), "{e}");
        let e = ClientConfig::new("h:1").namespace("a b").validate().unwrap_err();
        assert!(e.message().contains("namespace"), "{e}");
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let c = ClientConfig::new("h:1").credentials(Credentials::new("AK", "s3cret"));
        let shown = format!("{c:?}");
        assert!(shown.contains("AK") && !shown.contains("s3cret"), "{shown}");
    }
}
