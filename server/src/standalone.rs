//! `orbitmq standalone`: name server and broker in one process, the embedded default. Prints
//! one `ready on <addr>` line once it accepts connections and stops cleanly (flush,
//! checkpoint) on SIGTERM or Ctrl-C.

use std::io::Write;

use anyhow::Context;
use orbitmq_core::broker::Broker;

use crate::config::{Listen, ServerArgs};
use crate::http::{self, Health};
use crate::signal::shutdown_signal;

pub fn run(args: &ServerArgs) -> anyhow::Result<()> {
    let mut config = args.resolve()?;
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
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {} (is another server using it?)", config.listen))?;
        let addr = listener.local_addr()?;
        // Port 0 picks a free port: ids and routes must carry the real one.
        config.store.store_host = addr;
        let dir = config.store.dir.clone();
        let broker = tokio::task::spawn_blocking(move || Broker::open(config.broker, config.store))
            .await?
            .with_context(|| format!("opening the data directory {}", dir.display()))?;
        tracing::info!(%addr, data_dir = %dir.display(), flush = %broker.store().config().flush_disk_type, "orbitmq standalone started");
        let serving = broker.serve(listener, shutdown_signal());
        health.ready(&broker);
        println_flushed(&format!("ready on {addr}"))?;
        serving.await.context("serving")?;
        tracing::info!("shutting down: flushing and checkpointing");
        let b = broker.clone();
        tokio::task::spawn_blocking(move || b.close()).await?.context("closing the store")?;
        let _ = stop_http.send(());
        if let Some(h) = http {
            h.await?.context("serving metrics")?;
        }
        tracing::info!("stopped cleanly");
        anyhow::Ok(())
    })
}

/// One line on stdout, flushed (scripts wait for `ready on`).
fn println_flushed(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}
