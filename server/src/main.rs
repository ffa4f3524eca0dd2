//! `orbitmq`: one binary for every OrbitMQ process. Today: `orbitmq bench store`, the storage
//! engine load generator; the servers and `admin` join as they land.

mod bench;
mod telemetry;

use clap::{Parser, Subcommand};

/// OrbitMQ: the RocketMQ model in Rust.
#[derive(Debug, Parser)]
#[command(name = "orbitmq", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load generators that measure throughput and latency.
    #[command(subcommand)]
    Bench(bench::Bench),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init();
    match cli.command {
        Command::Bench(b) => bench::run(b),
    }
}
