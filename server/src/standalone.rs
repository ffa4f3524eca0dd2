//! `orbitmq standalone`: name server and broker in one process, the embedded default. Prints
//! one `ready on <addr>` line once it accepts connections and stops cleanly (flush,
//! checkpoint) on SIGTERM or Ctrl-C. TLS and plaintext share the client port unless
//! `--tls off` or `--tls required` says otherwise.

use std::io::Write;

use anyhow::Context;
use orbitmq_core::broker::Broker;
use orbitmq_core::broker::listener::Listener;
use orbitmq_core::tls::server::{ServerTls, TlsMode, self_signed_names};

use crate::config::{Listen, ServerArgs, TlsConfig};
use crate::dashboard::{self, Series};
use crate::http::{self, Health};
use crate::signal::shutdown_signal;

pub fn run(args: &ServerArgs) -> anyhow::Result<()> {
    serve(args.resolve()?, "standalone")
}

/// Runs a broker with `config` until SIGTERM or Ctrl-C: alone (`standalone`, where it also
/// answers routes), or registered with the name servers of `config.broker.namesrv_addr`
/// (`broker`), which it leaves before it stops.
pub fn serve(mut config: crate::config::ServerConfig, what: &'static str) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
    rt.block_on(async move {
        // The health endpoint answers 503 while the store opens (recovery can take a while).
        let health = Health::default();
        let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
        let http = match config.metrics_listen {
            Listen::Off => None,
            Listen::At(at) => {
                let listener = http::bind(at).await?;
                let addr = listener.local_addr()?;
                tracing::info!(%addr, "metrics on http://{addr}/metrics, health on /health");
                println_flushed(&format!("metrics on {addr}"))?;
                let stopped = async move {
                    let _ = http_stopped.await;
                };
                Some(tokio::spawn(http::serve(listener, health.clone(), stopped)))
            }
        };
        let (mut console_listener, series, sampler) = bind_console(&config, what, &health).await?;
        let mut console = None;
        let tls = server_tls(&config.tls, config.listen)?;
        // SIGTERM / Ctrl-C, seen by every round of the loop below.
        let (term_tx, term) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = term_tx.send(true);
        });
        let mut listen = config.listen;
        let mut ready_printed = false;
        // One round per broker run: a slave whose log diverged from its master's restarts
        // here with the log cut where they agree, on the same port.
        loop {
            let tcp = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("binding {listen} (is another server using it?)"))?;
            let addr = tcp.local_addr()?;
            listen = addr;
            if let Some(l) = console_listener.take() {
                console = Some(start_console(l, what, addr, &config, &series, term.clone())?);
            }
            let listener = match (&tls, config.tls.mode) {
                (Some(tls), mode) => Listener::with_tls(tcp, tls, mode == TlsMode::Required),
                (None, _) => Listener::from(tcp),
            };
            // Port 0 picks a free port: ids and routes must carry the real one.
            config.store.store_host = addr;
            let dir = config.store.dir.clone();
            let (broker_config, store_config) = (config.broker.clone(), config.store.clone());
            let broker =
                tokio::task::spawn_blocking(move || Broker::open(broker_config, store_config))
                    .await?
                    .with_context(|| format!("opening the data directory {}", dir.display()))?;
            tracing::info!(%addr, data_dir = %dir.display(), flush = %broker.store().config().flush_disk_type, tls = %config.tls.mode, "orbitmq {what} started");
            log_membership(&broker);
            let restart = broker.restart_requested();
            let cut = std::sync::Arc::new(std::sync::Mutex::new(None));
            let stop = {
                let (cut, mut term) = (std::sync::Arc::clone(&cut), term.clone());
                async move {
                    tokio::select! {
                        _ = term.wait_for(|t| *t) => {}
                        to = restart => {
                            *cut.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(to);
                        }
                    }
                }
            };
            let serving = broker.serve(listener, stop);
            // In a cluster, `ready on` also means registered (when a name server answers), so
            // a script that waits for it finds the broker in the routes. The port is bound:
            // clients arriving meanwhile wait in its backlog.
            if broker.cluster().is_some() && broker.register().await == 0 {
                tracing::warn!("no name server answered the first registration; serving anyway, retrying in the background");
            }
            health.ready(&broker);
            if !ready_printed {
                println_flushed(&format!("ready on {addr}"))?;
                ready_printed = true;
            }
            serving.await.context("serving")?;
            health.down();
            let cut = cut.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
            if cut.is_none() {
                broker.unregister().await;
            }
            tracing::info!("shutting down: flushing and checkpointing");
            broker.close().await.context("closing the store")?;
            let Some(to) = cut else { break };
            let (dir, segment_size) = (config.store.dir.clone(), config.store.segment_size);
            let dropped = tokio::task::spawn_blocking(move || {
                orbitmq_core::storage::replica::truncate_log(&dir, segment_size, to)
            })
            .await?
            .context("cutting the log where it agrees with the master's")?;
            tracing::warn!(cut_at = to, dropped_bytes = dropped, "log cut; restarting the broker");
        }
        let _ = stop_http.send(());
        if let Some(h) = http {
            h.await?.context("serving metrics")?;
        }
        sampler.inspect(tokio::task::JoinHandle::abort);
        if let Some(c) = console {
            stop_console(c).await?;
        }
        tracing::info!("stopped cleanly");
        anyhow::Ok(())
    })
}

/// Waits for the console to stop: open browser connections get the time of a request to
/// close, no more.
pub async fn stop_console(
    console: tokio::task::JoinHandle<std::io::Result<()>>,
) -> anyhow::Result<()> {
    if let Ok(served) = tokio::time::timeout(std::time::Duration::from_secs(5), console).await {
        served?.context("serving the console")?;
    } else {
        tracing::warn!("the console's connections did not close within 5 s");
    }
    Ok(())
}

/// The console's listener, bound before anything starts (a taken port fails the start), when
/// `--dashboard-listen` (or the default: on for standalone, off for a broker) says so; and its
/// traffic samples, taken from the broker `health` holds while the console is on.
async fn bind_console(
    config: &crate::config::ServerConfig,
    what: &str,
    health: &Health,
) -> anyhow::Result<(Option<tokio::net::TcpListener>, Series, Option<tokio::task::JoinHandle<()>>)>
{
    let at = match config.dashboard_listen {
        Some(l) => l,
        None if what == "standalone" => Listen::At(dashboard::DEFAULT_LISTEN.parse()?),
        None => Listen::Off,
    };
    let series = Series::default();
    match at {
        Listen::Off => Ok((None, series, None)),
        Listen::At(at) => {
            let listener = dashboard::bind(at).await?;
            let sampler = series.sample(health.clone());
            Ok((Some(listener), series, Some(sampler)))
        }
    }
}

/// Serves the console of the broker at `grpc` until SIGTERM or Ctrl-C (`term`).
fn start_console(
    listener: tokio::net::TcpListener,
    what: &str,
    grpc: std::net::SocketAddr,
    config: &crate::config::ServerConfig,
    series: &Series,
    mut term: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let setup = dashboard::Setup {
        mode: if what == "standalone" {
            dashboard::Mode::Standalone
        } else {
            dashboard::Mode::Broker
        },
        grpc,
        tls_required: config.tls.mode == TlsMode::Required,
        credentials: config.broker.credentials.clone(),
        series: series.clone(),
    };
    dashboard::start(listener, setup, async move {
        let _ = term.wait_for(|t| *t).await;
    })
}

/// Who the broker is in its cluster, if it is in one.
fn log_membership(broker: &Broker) {
    if let Some(m) = broker.cluster() {
        let c = broker.config();
        tracing::info!(
            cluster = c.cluster_name,
            broker_name = c.broker_name,
            broker_id = c.broker_id,
            role = %c.broker_role,
            namesrv = m.namesrv().join(";"),
            "registering with the name servers every {} ms",
            c.register_interval_ms
        );
    }
}

/// One line on stdout, flushed (scripts wait for `ready on`).
pub fn println_flushed(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// The certificate to serve: the configured files, or (as Apache's proxy does) a self-signed
/// one generated now; `None` with `--tls off`.
pub fn server_tls(
    config: &TlsConfig,
    listen: std::net::SocketAddr,
) -> anyhow::Result<Option<ServerTls>> {
    if config.mode == TlsMode::Off {
        if let Some((cert, _)) = &config.files {
            tracing::warn!(cert = %cert.display(), "--tls off: the TLS certificate is not used");
        }
        return Ok(None);
    }
    if let Some((cert, key)) = &config.files {
        let tls = ServerTls::from_pem_files(cert, key).context("loading the TLS certificate")?;
        tracing::info!(mode = %config.mode, cert = %cert.display(), "TLS: serving the configured certificate");
        return Ok(Some(tls));
    }
    let names = self_signed_names(listen);
    let started = std::time::Instant::now();
    let tls = ServerTls::self_signed(&names).context("generating a self-signed TLS certificate")?;
    tracing::info!(
        mode = %config.mode,
        names = %names.join(","),
        took = ?started.elapsed(),
        "TLS: serving a self-signed certificate generated at start (no --tls-cert/--tls-key); clients that verify certificates need a real one"
    );
    Ok(Some(tls))
}
