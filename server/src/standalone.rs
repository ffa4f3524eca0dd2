//! `orbitmq standalone`: name server and broker in one process, the embedded default. Prints
//! one `ready on <addr>` line once it accepts connections and stops cleanly (flush,
//! checkpoint) on SIGTERM or Ctrl-C.

use std::io::Write;

use anyhow::Context;
use orbitmq_core::broker::Broker;

use crate::config::ServerArgs;
use crate::signal::shutdown_signal;

pub fn run(args: &ServerArgs) -> anyhow::Result<()> {
    let mut config = args.resolve()?;
    let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
    rt.block_on(async move {
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
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "ready on {addr}")?;
            out.flush()?;
        }
        broker.serve(listener, shutdown_signal()).await.context("serving")?;
        tracing::info!("shutting down: flushing and checkpointing");
        let b = broker.clone();
        tokio::task::spawn_blocking(move || b.close()).await?.context("closing the store")?;
        tracing::info!("stopped cleanly");
        anyhow::Ok(())
    })
}
