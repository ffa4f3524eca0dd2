//! The web console (`--dashboard-listen`, docs/DASHBOARD.md): the page and its files, and a
//! JSON API that calls the server's own `orbitmq.v1.Admin` service through the SDK's [`Admin`],
//! as `orbitmq admin` does, with the server's own credentials: there is no second
//! implementation of any command here, and a console on a name server sees the whole cluster.

mod api;
mod assets;
mod auth;
mod error;
mod series;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use orbitmq_core::client::{Admin, ClientConfig, ClientTls, Credentials, Producer};
use orbitmq_core::protocol::auth::ServerCredentials;
use orbitmq_core::storage::message::now_millis;
use serde::Serialize;
use tokio::net::TcpListener;

pub use series::Series;

/// Where `orbitmq standalone` serves the console unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Largest request body: a produced message of the broker's 4 MiB limit, escaped as JSON.
const MAX_BODY: usize = 16 << 20;
/// How long one admin call through the SDK may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Which command serves the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `orbitmq standalone`.
    Standalone,
    /// `orbitmq broker`.
    Broker,
    /// `orbitmq namesrv`.
    Namesrv,
}

/// What the console is the console of.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The command.
    pub mode: Mode,
    /// The server's gRPC address, as bound.
    pub grpc: SocketAddr,
    /// Whether the gRPC port refuses plaintext (`--tls required`).
    pub tls_required: bool,
    /// The server's credentials: the API requires them, and signs its own calls with them.
    pub credentials: Option<ServerCredentials>,
    /// The traffic samples (empty on a name server).
    pub series: Series,
}

/// `GET /api/info`.
#[derive(Debug, Serialize)]
struct Info {
    mode: Mode,
    version: &'static str,
    grpc_address: String,
    started_at: i64,
    auth_required: bool,
    listen: String,
    loopback_only: bool,
}

/// What every handler reads.
pub(crate) struct Ctx {
    admin: Admin,
    client: ClientConfig,
    producer: tokio::sync::OnceCell<Producer>,
    info: Info,
    credentials: Option<ServerCredentials>,
    series: Series,
    assets: assets::Assets,
}

impl Ctx {
    /// The producer `/api/produce` sends with, started on first use.
    async fn producer(&self) -> Result<&Producer, orbitmq_core::client::Error> {
        self.producer
            .get_or_try_init(|| async {
                let p = Producer::builder(self.client.clone()).build()?;
                p.start().await?;
                Ok(p)
            })
            .await
    }
}

/// Binds `addr` now, so a taken port fails the start with a clear message.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!(
            "binding the console listener {addr} (is another server using it? \
             --dashboard-listen picks another address, `off` disables it)"
        )
    })
}

/// Serves the console on `listener` until `shutdown` resolves; logs (and prints) its URL.
pub fn start(
    listener: TcpListener,
    setup: Setup,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let listen = listener.local_addr()?;
    // A wildcard gRPC address is reached on loopback; TLS only when plaintext is refused
    // (then any certificate: it is this process's own).
    let target = match setup.grpc.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), setup.grpc.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), setup.grpc.port())
        }
        _ => setup.grpc,
    };
    let mut client = ClientConfig::new(target.to_string())
        .request_timeout(REQUEST_TIMEOUT)
        .tls(if setup.tls_required { ClientTls::AcceptAny } else { ClientTls::Off });
    client.credentials =
        setup.credentials.as_ref().map(|c| Credentials::new(&c.access_key, &c.secret_key));
    let admin = Admin::new(client.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let loopback_only = listen.ip().is_loopback();
    let ctx = Arc::new(Ctx {
        admin,
        client,
        producer: tokio::sync::OnceCell::new(),
        info: Info {
            mode: setup.mode,
            version: env!("CARGO_PKG_VERSION"),
            grpc_address: setup.grpc.to_string(),
            started_at: now_millis(),
            auth_required: setup.credentials.is_some(),
            listen: listen.to_string(),
            loopback_only,
        },
        credentials: setup.credentials,
        series: setup.series,
        assets: assets::Assets::from_env(),
    });
    if let assets::Assets::Dir(dir) = &ctx.assets {
        tracing::info!(dir = %dir.display(), "console files served from ORBITMQ_DASHBOARD_DIR");
    }
    if !loopback_only && ctx.credentials.is_none() {
        tracing::warn!(
            %listen,
            "the console listens beyond this machine without credentials: anyone who reaches \
             it can change topics and offsets and send messages (--access-key/--secret-key \
             require signed requests)"
        );
    }
    tracing::info!(%listen, "console on http://{listen}/");
    crate::standalone::println_flushed(&format!("console on http://{listen}/"))?;
    // A name server has no counters of its own: its chart adds up its brokers'.
    let sampler = matches!(ctx.info.mode, Mode::Namesrv)
        .then(|| ctx.series.sample_cluster(ctx.admin.clone()));
    let app = router(ctx);
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
        sampler.inspect(tokio::task::JoinHandle::abort);
        served
    }))
}

fn router(ctx: Arc<Ctx>) -> Router {
    let signed = Router::new()
        .route("/api/cluster", get(api::cluster))
        .route("/api/metrics", get(api::metrics))
        .route("/api/topics", get(api::topics).post(api::create_topic))
        .route("/api/topics/{topic}", get(api::topic).put(api::update_topic))
        .route("/api/topics/{topic}/status", get(api::topic_status))
        .route("/api/topics/{topic}/route", get(api::topic_route))
        .route("/api/groups", get(api::groups).post(api::create_group))
        .route("/api/groups/{group}/progress", get(api::progress))
        .route("/api/groups/{group}/members", get(api::members))
        .route("/api/groups/{group}/reset", post(api::reset))
        .route("/api/messages/by-id/{id}", get(api::by_id))
        .route("/api/messages/by-key", get(api::by_key))
        .route("/api/messages/by-offset", get(api::by_offset))
        .route("/api/messages/body", get(api::body))
        .route("/api/messages/resend", post(api::resend))
        .route("/api/produce", post(api::produce))
        .route_layer(axum::middleware::from_fn_with_state(Arc::clone(&ctx), auth::require));
    signed
        .route("/api/info", get(api::info))
        .route("/api", get(api::unknown).fallback(api::unknown))
        .route("/api/{*rest}", get(api::unknown).fallback(api::unknown))
        .method_not_allowed_fallback(api::method_not_allowed)
        .fallback(assets::serve)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(ctx)
}
