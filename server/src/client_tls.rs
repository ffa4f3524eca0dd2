//! `--tls` and `--tls-ca` for the commands that connect to a server (`admin`, `bench produce`,
//! `bench consume`, `bench e2e`); both connect through the client SDK, which does the TLS.

use std::path::PathBuf;

use clap::Args;

/// How to reach the server: plaintext (the default) or TLS.
#[derive(Debug, Clone, Args)]
pub struct TlsArgs {
    /// Connect over TLS. Without --tls-ca any server certificate is accepted, as the official
    /// RocketMQ clients do by default (and as the self-signed certificate `orbitmq standalone`
    /// generates needs): the connection is encrypted, but the server is not authenticated.
    #[arg(long, global = true, help_heading = "TLS")]
    pub tls: bool,
    /// Connect over TLS and verify the server against the CA certificates (or the server's own
    /// certificate) in this PEM file; its name must match the host in --endpoints. Implies --tls.
    #[arg(long, global = true, env = "ORBITMQ_TLS_CA", value_name = "FILE", help_heading = "TLS")]
    pub tls_ca: Option<PathBuf>,
}

impl TlsArgs {
    /// A hint for a failure that may come from speaking the other protocol than the server: a
    /// plaintext client at a `--tls required` server sees its connection closed, a TLS client
    /// at a `--tls off` server a failed handshake.
    pub fn hint(&self) -> &'static str {
        if self.tls || self.tls_ca.is_some() {
            "if the server runs with --tls off, connect without --tls"
        } else {
            "the connection was closed: if the server runs with --tls required, connect with --tls"
        }
    }
}

/// An error and its causes, `: `-separated ("transport error: tcp connect error: Connection
/// refused (os error 111)" loses its vague head).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !s.is_empty() && parts.last() != Some(&s) {
            parts.push(s);
        }
        cur = err.source();
    }
    if parts.len() > 1 && parts[0] == "transport error" {
        parts.remove(0);
    }
    parts.join(": ")
}
