//! `--tls` and `--tls-ca` for the commands that connect to a server (`admin`, `bench produce`,
//! `bench consume`), and the connection bench makes (`orbitmq_core::tls` does the TLS; admin
//! connects through the client SDK).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use orbitmq_core::tls::{self, ClientTls};
use tonic::transport::{Channel, Endpoint};

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
    /// Connects to `endpoints` (`HOST:PORT`, or a URL: `https://` implies TLS), after
    /// `configure` set the endpoint's options.
    pub async fn connect(
        &self,
        endpoints: &str,
        configure: impl FnOnce(Endpoint) -> Endpoint,
    ) -> anyhow::Result<Channel> {
        let https = endpoints.starts_with("https://");
        let client = ClientTls::from_flags(self.tls || https, self.tls_ca.clone());
        let url = if endpoints.contains("://") {
            endpoints.to_owned()
        } else {
            format!("{}://{endpoints}", client.scheme())
        };
        let endpoint = configure(
            Endpoint::from_shared(url)
                .map_err(|e| anyhow::anyhow!("invalid --endpoints {endpoints:?}: {e}"))?,
        );
        let config = client.client_config().context("setting up TLS")?;
        let connected = match config {
            None => endpoint.connect().await,
            Some(config) => tls::connect(&endpoint, config).await,
        };
        connected.map_err(|e| {
            let why = chain(&e);
            let msg = format!(
                "cannot connect to orbitmq at {endpoints}{}: {why}",
                if matches!(client, ClientTls::Off) { "" } else { " over TLS" },
            );
            if why.contains("TLS handshake") {
                anyhow::anyhow!("{msg} ({})", self.hint())
            } else {
                anyhow::anyhow!(msg)
            }
        })
    }

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
