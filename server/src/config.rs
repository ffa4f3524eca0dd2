//! Server configuration: a TOML file, then `ORBITMQ_*` environment variables, then flags, each
//! overriding the one before (flags win). Keys follow RocketMQ's `broker.conf` names.
//!
//! ```toml
//! listen = "127.0.0.1:8081"
//! data_dir = "./orbitmq-data"
//! flush_disk_type = "async"      # or "sync"
//! metrics_listen = "127.0.0.1:5557"  # or "off"
//! dashboard_listen = "127.0.0.1:8080" # the web console, or "off" (standalone's default: on)
//! tls = "optional"               # or "off", "required"
//! tls_cert = "/etc/orbitmq/cert.pem"   # both or neither; neither: self-signed at start
//! tls_key = "/etc/orbitmq/key.pem"
//! peer_tls = "auto"              # to name servers and the master: "on", "off", or "auto" (on
//!                                # with tls = "required")
//! peer_tls_ca = "/etc/orbitmq/ca.pem"  # verify peers against it (implies TLS to peers)
//! access_key = "orders-app"      # both or neither: every request must be signed with them
//! secret_key = "…"               # (better: ORBITMQ_SECRET_KEY, or a file only the server reads)
//!
//! [broker]                       # orbitmq_core::broker::BrokerConfig
//! auto_create_topics = true
//! default_queues = 8
//!
//! [store]                        # orbitmq_core::storage::StoreConfig
//! retention_hours = 72
//! segment_size = 1073741824
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use orbitmq_core::broker::BrokerConfig;
use orbitmq_core::peer::PeerTls;
use orbitmq_core::protocol::auth::ServerCredentials;
use orbitmq_core::storage::{FlushDiskType, StoreConfig};
use orbitmq_core::tls::ClientTls;
use orbitmq_core::tls::server::TlsMode;
use serde::Deserialize;

use crate::credentials::{self, SecretKey};

/// Default client port, as the RocketMQ proxy's.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8081";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./orbitmq-data";
/// Default address of `/metrics` and `/health` (rocketmq-exporter's port).
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:5557";

/// An address to listen on, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// Not listening.
    Off,
    /// Listening here.
    At(SocketAddr),
}

impl std::str::FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(Listen::Off);
        }
        s.parse().map(Listen::At).map_err(|e| format!("{s:?} is neither HOST:PORT nor `off`: {e}"))
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Flags (and their environment variables) shared by the server commands.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// TOML configuration file; flags and ORBITMQ_* variables override its values.
    #[arg(long, env = "ORBITMQ_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to serve the RocketMQ gRPC protocol (and the admin API) on [default: 127.0.0.1:8081].
    #[arg(long, env = "ORBITMQ_LISTEN", value_name = "HOST:PORT")]
    pub listen: Option<SocketAddr>,
    /// Where messages, indexes and offsets are kept [default: ./orbitmq-data].
    #[arg(long, env = "ORBITMQ_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// `async`: acknowledge once written (flushed every 500 ms); `sync`: acknowledge once on
    /// disk [default: async].
    #[arg(long, env = "ORBITMQ_FLUSH_DISK_TYPE", value_name = "async|sync")]
    pub flush_disk_type: Option<FlushDiskType>,
    /// Create topics and groups on first use [default: true].
    #[arg(long, env = "ORBITMQ_AUTO_CREATE_TOPICS", value_name = "true|false")]
    pub auto_create_topics: Option<bool>,
    /// Where to serve Prometheus metrics (`GET /metrics`, RocketMQ 5's metric names) and
    /// `GET /health` (200 once serving); `off` disables it [default: 127.0.0.1:5557].
    #[arg(long, env = "ORBITMQ_METRICS_LISTEN", value_name = "HOST:PORT|off")]
    pub metrics_listen: Option<Listen>,
    /// Where to serve the web console (its page and JSON API, docs/DASHBOARD.md); `off`
    /// disables it. It calls this server's own admin API with this server's credentials; without
    /// credentials, keep it on 127.0.0.1 [default: 127.0.0.1:8080 for standalone, off for
    /// broker].
    #[arg(long, env = "ORBITMQ_DASHBOARD_LISTEN", value_name = "HOST:PORT|off")]
    pub dashboard_listen: Option<Listen>,
    #[command(flatten)]
    pub security: SecurityArgs,
}

/// TLS on the port, TLS to the cluster's other servers, and credentials: the flags every server
/// command (standalone, broker, name server) shares.
#[derive(Debug, Clone, Default, Args)]
pub struct SecurityArgs {
    /// TLS on the port. `optional`: TLS and plaintext on the same port (each connection's first
    /// byte tells them apart; the official clients use TLS by default); `required`: plaintext
    /// connections are closed; `off`: plaintext only [default: optional].
    #[arg(long, env = "ORBITMQ_TLS", value_name = "off|optional|required", help_heading = "TLS")]
    pub tls: Option<TlsMode>,
    /// PEM certificate chain to serve, the server's own certificate first (with --tls-key).
    /// Without --tls-cert and --tls-key, a self-signed certificate for localhost, the loopback
    /// addresses, the listen IP and the host name is generated at each start, as Apache
    /// RocketMQ's proxy does: enough for the official clients, which accept any certificate by
    /// default, not for clients that verify.
    #[arg(long, env = "ORBITMQ_TLS_CERT", value_name = "FILE", help_heading = "TLS")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "ORBITMQ_TLS_KEY", value_name = "FILE", help_heading = "TLS")]
    pub tls_key: Option<PathBuf>,
    /// How this server calls the other servers of its cluster (a broker its name servers and
    /// master, a name server its brokers): `on`, TLS; `off`, plaintext; `auto`, TLS when this
    /// server runs --tls required (its peers then close plaintext connections too)
    /// [default: auto].
    #[arg(long, env = "ORBITMQ_PEER_TLS", value_name = "auto|on|off", help_heading = "TLS")]
    pub peer_tls: Option<PeerTlsMode>,
    /// Verify the peers' certificates against the CA certificates (or the certificate the
    /// cluster shares) in this PEM file; each must name the address the peer is reached at.
    /// Without it, TLS to peers accepts any certificate (encrypted, not authenticated). Implies
    /// TLS to peers.
    #[arg(long, env = "ORBITMQ_PEER_TLS_CA", value_name = "FILE", help_heading = "TLS")]
    pub peer_tls_ca: Option<PathBuf>,
    /// Require every request (clients, admin, the cluster's other servers) to be signed with
    /// this access key and --secret-key (RocketMQ's `MQv2-HMAC-SHA1`); unsigned or wrongly
    /// signed requests get UNAUTHORIZED. The server signs its own calls to its peers with the
    /// same pair, so a cluster shares one. Without both, requests are not checked.
    #[arg(long, env = "ORBITMQ_ACCESS_KEY", value_name = "KEY", help_heading = "Credentials")]
    pub access_key: Option<String>,
    /// Secret key of --access-key, never printed. Prefer the environment variable or the config
    /// file's `secret_key` to the flag: other users of the machine can read a process's arguments.
    #[arg(
        long,
        env = "ORBITMQ_SECRET_KEY",
        hide_env_values = true,
        value_name = "SECRET",
        help_heading = "Credentials"
    )]
    pub secret_key: Option<SecretKey>,
}

/// `--peer-tls`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerTlsMode {
    /// TLS when the server's own port requires it.
    #[default]
    Auto,
    /// TLS.
    On,
    /// Plaintext.
    Off,
}

/// The security keys of a TOML file, at its top level (as `SecurityArgs` names them).
#[derive(Debug, Default)]
pub struct SecurityFile {
    pub tls: Option<TlsMode>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub peer_tls: Option<PeerTlsMode>,
    pub peer_tls_ca: Option<PathBuf>,
    pub access_key: Option<String>,
    pub secret_key: Option<SecretKey>,
}

/// How a server secures its port and its calls, resolved.
#[derive(Debug, Clone)]
pub struct Security {
    /// TLS on its port.
    pub tls: TlsConfig,
    /// How it reaches its peers.
    pub peer_tls: PeerTls,
    /// What requests must be signed with, and its own calls are.
    pub credentials: Option<ServerCredentials>,
}

impl SecurityArgs {
    /// Resolves the flags over the file's keys: the port's TLS, TLS to peers (its CA file read
    /// now, so a bad one fails the start), the credentials.
    pub fn resolve(&self, file: SecurityFile) -> anyhow::Result<Security> {
        let tls = tls_config(
            self.tls.or(file.tls),
            self.tls_cert.clone().or(file.tls_cert),
            self.tls_key.clone().or(file.tls_key),
        )?;
        let mode = self.peer_tls.or(file.peer_tls).unwrap_or_default();
        let ca = self.peer_tls_ca.clone().or(file.peer_tls_ca);
        let on = match mode {
            PeerTlsMode::On => true,
            PeerTlsMode::Off => false,
            PeerTlsMode::Auto => tls.mode == TlsMode::Required || ca.is_some(),
        };
        let client = match (on, ca) {
            (false, Some(ca)) => anyhow::bail!(
                "--peer-tls-ca {} needs TLS to peers, and --peer-tls (peer_tls, ORBITMQ_PEER_TLS) is off",
                ca.display()
            ),
            (false, None) => ClientTls::Off,
            (true, Some(ca)) => ClientTls::Ca(ca),
            (true, None) => ClientTls::AcceptAny,
        };
        let peer_tls = PeerTls::new(&client).map_err(|e| {
            anyhow::anyhow!("--peer-tls-ca (peer_tls_ca, ORBITMQ_PEER_TLS_CA): {e}")
        })?;
        let credentials = credentials::pair(
            self.access_key.clone().or(file.access_key),
            self.secret_key.clone().or(file.secret_key),
        )?
        .map(|(ak, sk)| ServerCredentials::new(ak, sk.expose()));
        Ok(Security { tls, peer_tls, credentials })
    }
}

/// The TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    flush_disk_type: Option<FlushDiskType>,
    metrics_listen: Option<Listen>,
    dashboard_listen: Option<Listen>,
    tls: Option<TlsMode>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    peer_tls: Option<PeerTlsMode>,
    peer_tls_ca: Option<PathBuf>,
    access_key: Option<String>,
    secret_key: Option<SecretKey>,
    broker: Option<BrokerConfig>,
    store: Option<StoreConfig>,
}

/// Everything a server process runs with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Metrics and health listener.
    pub metrics_listen: Listen,
    /// The console's listener, if one was configured (the command decides the default).
    pub dashboard_listen: Option<Listen>,
    /// Broker settings.
    pub broker: BrokerConfig,
    /// Storage settings (`dir`, `flush_disk_type` and `store_host` resolved).
    pub store: StoreConfig,
    /// TLS on the client port.
    pub tls: TlsConfig,
}

/// TLS on the client port: the mode, and the certificate and key files (none: self-signed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// `off`, `optional` or `required`.
    pub mode: TlsMode,
    /// The PEM certificate chain and private key files.
    pub files: Option<(PathBuf, PathBuf)>,
}

impl ServerArgs {
    /// Resolves file < environment < flags.
    pub fn resolve(&self) -> anyhow::Result<ServerConfig> {
        let file = match &self.config {
            Some(path) => load(path)?,
            None => FileConfig::default(),
        };
        let listen = match self.listen.or(file.listen) {
            Some(l) => l,
            None => DEFAULT_LISTEN.parse()?,
        };
        let security = self.security.resolve(SecurityFile {
            tls: file.tls,
            tls_cert: file.tls_cert,
            tls_key: file.tls_key,
            peer_tls: file.peer_tls,
            peer_tls_ca: file.peer_tls_ca,
            access_key: file.access_key,
            secret_key: file.secret_key,
        })?;
        let mut broker = file.broker.unwrap_or_default();
        broker.credentials = security.credentials;
        broker.peer_tls = security.peer_tls;
        if let Some(auto) = self.auto_create_topics {
            broker.auto_create_topics = auto;
            broker.auto_create_groups = auto;
        }
        let mut store = file.store.unwrap_or_default();
        store.dir =
            self.data_dir.clone().or(file.data_dir).unwrap_or_else(|| DEFAULT_DATA_DIR.into());
        if let Some(f) = self.flush_disk_type.or(file.flush_disk_type) {
            store.flush_disk_type = f;
        }
        store.max_message_size = store.max_message_size.max(broker.max_body_size + 64 * 1024);
        store.store_host = listen;
        store.validate().context("invalid [store] configuration")?;
        let metrics_listen = match self.metrics_listen.or(file.metrics_listen) {
            Some(l) => l,
            None => Listen::At(DEFAULT_METRICS_LISTEN.parse()?),
        };
        let dashboard_listen = self.dashboard_listen.or(file.dashboard_listen);
        Ok(ServerConfig {
            listen,
            metrics_listen,
            dashboard_listen,
            broker,
            store,
            tls: security.tls,
        })
    }
}

/// The TLS of a server's port from its resolved mode, certificate and key: both files or
/// neither (a self-signed certificate), an error naming the missing one otherwise.
pub fn tls_config(
    mode: Option<TlsMode>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> anyhow::Result<TlsConfig> {
    let files = match (cert, key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        (Some(cert), None) => anyhow::bail!(
            "--tls-cert {} needs --tls-key (tls_key, ORBITMQ_TLS_KEY): the certificate's private key; give neither to serve a self-signed certificate",
            cert.display()
        ),
        (None, Some(key)) => anyhow::bail!(
            "--tls-key {} needs --tls-cert (tls_cert, ORBITMQ_TLS_CERT): the certificate it is the key of; give neither to serve a self-signed certificate",
            key.display()
        ),
    };
    Ok(TlsConfig { mode: mode.unwrap_or_default(), files })
}

fn load(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn args() -> ServerArgs {
        ServerArgs {
            config: None,
            listen: None,
            data_dir: None,
            flush_disk_type: None,
            auto_create_topics: None,
            metrics_listen: None,
            dashboard_listen: None,
            security: SecurityArgs::default(),
        }
    }

    #[test]
    fn defaults() {
        let c = args().resolve().unwrap();
        assert_eq!(c.listen, "127.0.0.1:8081".parse().unwrap());
        assert_eq!(c.store.dir, PathBuf::from("./orbitmq-data"));
        assert_eq!(c.store.flush_disk_type, FlushDiskType::Async);
        assert!(c.broker.auto_create_topics);
        assert_eq!(c.metrics_listen, Listen::At("127.0.0.1:5557".parse().unwrap()));
        assert_eq!(c.tls, TlsConfig { mode: TlsMode::Optional, files: None });
    }

    #[test]
    fn dashboard_listen_from_the_file_or_the_flag_else_unset() {
        assert_eq!(args().resolve().unwrap().dashboard_listen, None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orbitmq.toml");
        std::fs::write(&path, "dashboard_listen = \"off\"\n").unwrap();
        let mut a = args();
        a.config = Some(path);
        assert_eq!(a.resolve().unwrap().dashboard_listen, Some(Listen::Off));
        a.dashboard_listen = Some("0.0.0.0:9090".parse().unwrap());
        let at = Listen::At("0.0.0.0:9090".parse().unwrap());
        assert_eq!(a.resolve().unwrap().dashboard_listen, Some(at));
    }

    #[test]
    fn metrics_listen_off_or_an_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orbitmq.toml");
        std::fs::write(&path, "metrics_listen = \"off\"\n").unwrap();
        let mut a = args();
        a.config = Some(path.clone());
        assert_eq!(a.resolve().unwrap().metrics_listen, Listen::Off);
        a.metrics_listen = Some("0.0.0.0:9100".parse().unwrap());
        assert_eq!(
            a.resolve().unwrap().metrics_listen,
            Listen::At("0.0.0.0:9100".parse().unwrap())
        );
        std::fs::write(&path, "metrics_listen = \"nowhere\"\n").unwrap();
        a.metrics_listen = None;
        let err = format!("{:#}", a.resolve().unwrap_err());
        assert!(err.contains("nowhere") && err.contains("off"), "{err}");
    }

    #[test]
    fn tls_from_the_file_and_flags_and_both_files_or_neither() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orbitmq.toml");
        std::fs::write(&path, "tls = \"required\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n")
            .unwrap();
        let mut a = args();
        a.config = Some(path.clone());
        let c = a.resolve().unwrap();
        assert_eq!(c.tls.mode, TlsMode::Required);
        assert_eq!(c.tls.files, Some(("c.pem".into(), "k.pem".into())));
        a.security.tls = Some(TlsMode::Off);
        a.security.tls_cert = Some("flag.pem".into());
        let c = a.resolve().unwrap();
        assert_eq!(c.tls.mode, TlsMode::Off);
        assert_eq!(c.tls.files, Some(("flag.pem".into(), "k.pem".into())));

        let mut a = args();
        a.security.tls_cert = Some("c.pem".into());
        let err = format!("{:#}", a.resolve().unwrap_err());
        assert!(err.contains("c.pem") && err.contains("needs --tls-key"), "{err}");
        let mut a = args();
        a.security.tls_key = Some("k.pem".into());
        let err = format!("{:#}", a.resolve().unwrap_err());
        assert!(err.contains("k.pem") && err.contains("needs --tls-cert"), "{err}");
    }

    #[test]
    fn peer_tls_follows_the_port_unless_told_and_a_ca_implies_it() {
        let peer_tls = |a: &ServerArgs| a.resolve().map(|c| c.broker.peer_tls.is_tls());
        let mut a = args();
        assert!(!peer_tls(&a).unwrap(), "plaintext by default");
        a.security.tls = Some(TlsMode::Required);
        assert!(peer_tls(&a).unwrap(), "auto: TLS when the port requires it");
        a.security.peer_tls = Some(PeerTlsMode::Off);
        assert!(!peer_tls(&a).unwrap());
        let mut a = args();
        a.security.peer_tls = Some(PeerTlsMode::On);
        assert!(peer_tls(&a).unwrap());

        // From the file; a CA implies TLS, and is read at once.
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let pem =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap().cert.pem();
        std::fs::write(&ca, pem).unwrap();
        let path = dir.path().join("orbitmq.toml");
        std::fs::write(&path, format!("peer_tls_ca = {:?}\n", ca.display().to_string())).unwrap();
        let mut a = args();
        a.config = Some(path.clone());
        assert!(peer_tls(&a).unwrap(), "a CA implies TLS to peers");
        a.security.peer_tls = Some(PeerTlsMode::Off);
        let err = format!("{:#}", a.resolve().unwrap_err());
        assert!(err.contains("ca.pem") && err.contains("is off"), "{err}");
        std::fs::write(&path, "peer_tls = \"on\"\npeer_tls_ca = \"/no/such/ca.pem\"\n").unwrap();
        let mut a = args();
        a.config = Some(path);
        let err = format!("{:#}", a.resolve().unwrap_err());
        assert!(err.contains("--peer-tls-ca") && err.contains("/no/such/ca.pem"), "{err}");
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orbitmq.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/a\"\nflush_disk_type = \"sync\"\n[broker]\ndefault_queues = 4\n[store]\nretention_hours = 1\n",
        )
        .unwrap();
        let mut a = args();
        a.config = Some(path);
        let c = a.resolve().unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.store.flush_disk_type, FlushDiskType::Sync);
        assert_eq!(c.broker.default_queues, 4);
        assert_eq!(c.store.retention_hours, 1);
        a.listen = Some("127.0.0.1:9001".parse().unwrap());
        a.flush_disk_type = Some(FlushDiskType::Async);
        let c = a.resolve().unwrap();
        assert_eq!(c.listen.port(), 9001);
        assert_eq!(c.store.flush_disk_type, FlushDiskType::Async);
        assert_eq!(c.store.dir, PathBuf::from("/tmp/a"));
    }

    #[test]
    fn credentials_from_the_file_and_flags_both_or_neither() {
        assert_eq!(args().resolve().unwrap().broker.credentials, None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orbitmq.toml");
        std::fs::write(&path, "access_key = \"ak\"\nsecret_key = \"file-secret\"\n").unwrap();
        let mut a = args();
        a.config = Some(path);
        let c = a.resolve().unwrap();
        assert_eq!(c.broker.credentials, Some(ServerCredentials::new("ak", "file-secret")));
        assert!(!format!("{c:?}").contains("file-secret"), "the secret in Debug output");
        a.security.secret_key = Some("flag-secret".parse().unwrap());
        let c = a.resolve().unwrap();
        assert_eq!(c.broker.credentials, Some(ServerCredentials::new("ak", "flag-secret")));
        let mut a = args();
        a.security.access_key = Some("ak".into());
        let err = format!("{:#}", a.resolve().unwrap_err());
        assert!(err.contains("needs --secret-key"), "{err}");
        let mut a = args();
        a.security.secret_key = Some("s".parse().unwrap());
        let err = format!("{:#}", a.resolve().unwrap_err());
        assert!(err.contains("needs --access-key"), "{err}");
    }

    #[test]
    fn unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let mut a = args();
        a.config = Some(path);
        let err = format!("{:#}", a.resolve().unwrap_err());
        assert!(err.contains("bad.toml") && err.contains("lisen"), "{err}");
    }
}
