//! The client configuration every object is made from.

use std::path::PathBuf;
use std::time::Duration;

use orbitmq_core::client::{self as core, ClientTls, DEFAULT_REQUEST_TIMEOUT};

/// Where the servers are and how to talk to them (`ClientConfig` of the SDK).
#[derive(uniffi::Record)]
pub struct ClientConfig {
    /// `host:port`, or several separated by `;`.
    pub endpoints: String,
    /// The namespace resources live in; empty for none.
    #[uniffi(default = "")]
    pub namespace: String,
    /// An access key and secret key, to sign requests.
    #[uniffi(default = None)]
    pub credentials: Option<Credentials>,
    /// How long one request may take; 3 s when not given.
    #[uniffi(default = None)]
    pub request_timeout: Option<Duration>,
    /// TLS; plaintext when not given.
    #[uniffi(default = None)]
    pub tls: Option<Tls>,
}

/// An access key and its secret.
#[derive(uniffi::Record)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    #[uniffi(default = None)]
    pub security_token: Option<String>,
}

/// How to connect.
#[derive(uniffi::Enum)]
pub enum Tls {
    /// Plaintext HTTP/2.
    Off,
    /// TLS, accepting any server certificate (the official clients' default).
    AcceptAny,
    /// TLS, verifying the server against the CA certificates in this PEM file.
    Ca { pem_file: String },
}

impl From<ClientConfig> for core::ClientConfig {
    fn from(c: ClientConfig) -> core::ClientConfig {
        let mut config = core::ClientConfig::new(c.endpoints)
            .namespace(c.namespace)
            .request_timeout(c.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT))
            .tls(c.tls.map_or(ClientTls::Off, ClientTls::from));
        config.credentials = c.credentials.map(|k| core::Credentials {
            access_key: k.access_key,
            secret_key: k.secret_key,
            security_token: k.security_token,
        });
        config
    }
}

impl From<Tls> for ClientTls {
    fn from(t: Tls) -> ClientTls {
        match t {
            Tls::Off => ClientTls::Off,
            Tls::AcceptAny => ClientTls::AcceptAny,
            Tls::Ca { pem_file } => ClientTls::Ca(PathBuf::from(pem_file)),
        }
    }
}
