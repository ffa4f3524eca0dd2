//! `orbitmq namesrv` and `orbitmq broker`: the processes of a cluster. A name server keeps the
//! registry of live brokers and answers routes; a broker is `standalone`'s broker that
//! registers with every name server given (`--namesrv a:9876;b:9876`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use orbitmq_core::broker::BrokerRole;
use orbitmq_core::broker::listener::Listener;
use orbitmq_core::namesrv::{NameServer, NamesrvConfig};
use orbitmq_core::tls::server::TlsMode;
use serde::Deserialize;

use crate::config::{Listen, PeerTlsMode, Security, SecurityArgs, SecurityFile, ServerArgs};
use crate::credentials::SecretKey;
use crate::dashboard;
use crate::signal::shutdown_signal;
use crate::standalone::{println_flushed, server_tls};

/// Default name server port, as RocketMQ's.
pub const DEFAULT_NAMESRV_LISTEN: &str = "127.0.0.1:9876";

/// `orbitmq namesrv` flags.
#[derive(Debug, Clone, Args)]
pub struct NamesrvArgs {
    /// TOML configuration file (`listen`, `tls*` and a `[namesrv]` table); flags and ORBITMQ_*
    /// variables override its values.
    #[arg(long, env = "ORBITMQ_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to serve routes (RocketMQ gRPC QueryRoute), broker registrations and the admin
    /// API on [default: 127.0.0.1:9876].
    #[arg(long, env = "ORBITMQ_LISTEN", value_name = "HOST:PORT")]
    pub listen: Option<SocketAddr>,
    /// A broker not heard from for this long leaves the routes, ms [default: 120000]. Brokers
    /// register every `register_interval_ms` (30 s by default).
    #[arg(long, env = "ORBITMQ_BROKER_EXPIRY_MS", value_name = "MS")]
    pub broker_expiry_ms: Option<u64>,
    /// Have brokers create a topic a client asks the route of and nobody holds [default: true].
    #[arg(long, env = "ORBITMQ_AUTO_CREATE_TOPICS", value_name = "true|false")]
    pub auto_create_topics: Option<bool>,
    /// Where to serve the web console of the whole cluster (its page and JSON API,
    /// docs/DASHBOARD.md), or `off`; without credentials, keep it on 127.0.0.1 [default: off].
    #[arg(long, env = "ORBITMQ_DASHBOARD_LISTEN", value_name = "HOST:PORT|off")]
    pub dashboard_listen: Option<Listen>,
    #[command(flatten)]
    pub security: SecurityArgs,
}

/// The name server's TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct NamesrvFile {
    listen: Option<SocketAddr>,
    dashboard_listen: Option<Listen>,
    tls: Option<TlsMode>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    peer_tls: Option<PeerTlsMode>,
    peer_tls_ca: Option<PathBuf>,
    access_key: Option<String>,
    secret_key: Option<SecretKey>,
    namesrv: Option<NamesrvConfig>,
}

/// A name server's resolved configuration.
struct NamesrvSetup {
    listen: SocketAddr,
    dashboard_listen: Listen,
    config: NamesrvConfig,
    security: Security,
}

/// Resolves the name server's configuration: file < environment < flags.
fn resolve_namesrv(args: &NamesrvArgs) -> anyhow::Result<NamesrvSetup> {
    let file: NamesrvFile = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            toml::from_str(&text)
                .with_context(|| format!("parsing config file {}", path.display()))?
        }
        None => NamesrvFile::default(),
    };
    let listen = match args.listen.or(file.listen) {
        Some(l) => l,
        None => DEFAULT_NAMESRV_LISTEN.parse()?,
    };
    let mut config = file.namesrv.unwrap_or_default();
    if let Some(ms) = args.broker_expiry_ms {
        config.broker_expiry_ms = ms;
    }
    if let Some(auto) = args.auto_create_topics {
        config.auto_create_topics = auto;
    }
    anyhow::ensure!(config.broker_expiry_ms >= 100, "broker_expiry_ms must be at least 100 ms");
    let security = args.security.resolve(SecurityFile {
        tls: file.tls,
        tls_cert: file.tls_cert,
        tls_key: file.tls_key,
        peer_tls: file.peer_tls,
        peer_tls_ca: file.peer_tls_ca,
        access_key: file.access_key,
        secret_key: file.secret_key,
    })?;
    let dashboard_listen = args.dashboard_listen.or(file.dashboard_listen).unwrap_or(Listen::Off);
    Ok(NamesrvSetup { listen, dashboard_listen, config, security })
}

/// Runs a name server until SIGTERM or Ctrl-C.
pub fn run_namesrv(args: &NamesrvArgs) -> anyhow::Result<()> {
    let NamesrvSetup { listen, dashboard_listen, config, security } = resolve_namesrv(args)?;
    let Security { tls: tls_config, peer_tls, credentials } = security;
    let signed = credentials.is_some();
    let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
    rt.block_on(async move {
        let console_listener = match dashboard_listen {
            Listen::At(at) => Some(dashboard::bind(at).await?),
            Listen::Off => None,
        };
        let tls = server_tls(&tls_config, listen)?;
        let tcp = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding {listen} (is another server using it?)"))?;
        let addr = tcp.local_addr()?;
        let listener = match &tls {
            Some(tls) => Listener::with_tls(tcp, tls, tls_config.mode == TlsMode::Required),
            None => Listener::from(tcp),
        };
        let (stop_console, console_stopped) = tokio::sync::oneshot::channel::<()>();
        let console = match console_listener {
            Some(l) => {
                let setup = dashboard::Setup {
                    mode: dashboard::Mode::Namesrv,
                    grpc: addr,
                    tls_required: tls_config.mode == TlsMode::Required,
                    credentials: credentials.clone(),
                    series: dashboard::Series::default(),
                };
                Some(dashboard::start(l, setup, async move {
                    let _ = console_stopped.await;
                })?)
            }
            None => None,
        };
        let peers_over_tls = peer_tls.is_tls();
        let ns = NameServer::new(config, addr, credentials, peer_tls);
        tracing::info!(
            %addr,
            credentials = signed,
            broker_expiry_ms = ns.config().broker_expiry_ms,
            auto_create_topics = ns.config().auto_create_topics,
            tls = %tls_config.mode,
            peer_tls = peers_over_tls,
            "orbitmq name server started"
        );
        let serving = ns.serve(listener, shutdown_signal());
        println_flushed(&format!("ready on {addr}"))?;
        serving.await.context("serving")?;
        let _ = stop_console.send(());
        if let Some(c) = console {
            crate::standalone::stop_console(c).await?;
        }
        tracing::info!("stopped cleanly");
        anyhow::Ok(())
    })
}

/// `orbitmq broker` flags: the standalone server's, and who the broker is in its cluster.
// The doc comments are `--help` text, where backticks would show.
#[allow(clippy::doc_markdown)]
#[derive(Debug, Clone, Args)]
pub struct BrokerArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Name servers to register with, `host:port;host:port` (RocketMQ's `namesrvAddr`).
    #[arg(long, env = "ORBITMQ_NAMESRV", value_name = "HOST:PORT;…", help_heading = "Cluster")]
    pub namesrv: Option<String>,
    /// The broker group's name; a master and its slaves share it [default: broker-a].
    #[arg(long, env = "ORBITMQ_BROKER_NAME", value_name = "NAME", help_heading = "Cluster")]
    pub broker_name: Option<String>,
    /// Id in the group: 0 is the master [default: 0].
    #[arg(long, env = "ORBITMQ_BROKER_ID", value_name = "ID", help_heading = "Cluster")]
    pub broker_id: Option<u64>,
    /// Cluster name [default: DefaultCluster].
    #[arg(long, env = "ORBITMQ_CLUSTER", value_name = "NAME", help_heading = "Cluster")]
    pub cluster: Option<String>,
    /// How often to register with (heartbeat to) the name servers, ms [default: 30000].
    #[arg(long, env = "ORBITMQ_REGISTER_INTERVAL_MS", value_name = "MS", help_heading = "Cluster")]
    pub register_interval_ms: Option<u64>,
    /// `async_master`: acknowledge a send once stored here; `sync_master`: once a slave has it
    /// too (else the client gets SLAVE_PERSISTENCE_TIMEOUT or HA_NOT_AVAILABLE); `slave`: a
    /// read-only copy of the group's master [default: async_master for id 0, slave above].
    #[arg(long, env = "ORBITMQ_BROKER_ROLE", value_name = "ROLE", help_heading = "Replication")]
    pub broker_role: Option<BrokerRole>,
    /// A slave's master, HOST:PORT [default: the group's id 0 as the name servers list it].
    #[arg(
        long,
        env = "ORBITMQ_MASTER_ADDRESS",
        value_name = "HOST:PORT",
        help_heading = "Replication"
    )]
    pub master_address: Option<String>,
    /// A sync_master: how long a send waits for a slave before the client gets
    /// SLAVE_PERSISTENCE_TIMEOUT, ms; below the clients' 3 s request timeout, so they see that
    /// status rather than time out [default: 2000].
    #[arg(
        long,
        env = "ORBITMQ_SYNC_REPLICA_TIMEOUT_MS",
        value_name = "MS",
        help_heading = "Replication"
    )]
    pub sync_replica_timeout_ms: Option<u64>,
}

/// Runs a broker of a cluster until SIGTERM or Ctrl-C.
pub fn run_broker(args: &BrokerArgs) -> anyhow::Result<()> {
    let mut config = args.server.resolve()?;
    let b = &mut config.broker;
    if let Some(n) = &args.namesrv {
        b.namesrv_addr.clone_from(n);
    }
    if let Some(n) = &args.broker_name {
        b.broker_name.clone_from(n);
    }
    if let Some(id) = args.broker_id {
        b.broker_id = id;
    }
    if let Some(c) = &args.cluster {
        b.cluster_name.clone_from(c);
    }
    if let Some(ms) = args.register_interval_ms {
        b.register_interval_ms = ms;
    }
    if let Some(a) = &args.master_address {
        b.master_address.clone_from(a);
    }
    if let Some(ms) = args.sync_replica_timeout_ms {
        b.sync_replica_timeout_ms = ms;
    }
    match args.broker_role {
        Some(role) => b.broker_role = role,
        // Id > 0 means a slave (RocketMQ's rule), unless the file said otherwise.
        None if b.broker_id > 0 => b.broker_role = BrokerRole::Slave,
        None => {}
    }
    anyhow::ensure!(
        b.namesrv_addr.split([';', ',']).any(|s| !s.trim().is_empty())
            || !b.master_address.is_empty(),
        "orbitmq broker needs --namesrv HOST:PORT[;HOST:PORT] (or [broker] namesrv_addr): the name \
         servers to register with. A single server with no name server is `orbitmq standalone`."
    );
    anyhow::ensure!(
        (b.broker_id > 0) == (b.broker_role == BrokerRole::Slave),
        "--broker-id {} with --broker-role {}: id 0 is the group's master (async_master or \
         sync_master), ids above 0 are its slaves",
        b.broker_id,
        b.broker_role
    );
    anyhow::ensure!(
        !config.listen.ip().is_unspecified(),
        "--listen {}: a broker in a cluster registers the address clients reach it at, so \
         listen on that address (e.g. 10.0.0.5:8081), not on a wildcard",
        config.listen
    );
    crate::standalone::serve(config, "broker")
}
