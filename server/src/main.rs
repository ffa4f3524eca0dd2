//! `orbitmq`: one binary for every OrbitMQ process: `standalone` (name server + broker),
//! `admin` (operator CLI) and `bench` (load generators).

mod admin;
mod bench;
mod client_tls;
mod config;
mod credentials;
mod http;
mod signal;
mod standalone;
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
    /// Run a name server and a broker in one process, serving RocketMQ 5 clients over gRPC.
    ///
    /// Example: orbitmq standalone --listen 127.0.0.1:8081 --data-dir ./orbitmq-data
    Standalone(config::ServerArgs),
    /// Operator CLI: topics, consumer groups, progress, message queries and offset resets.
    ///
    /// Example: orbitmq admin --endpoints 127.0.0.1:8081 topic list
    Admin(admin::AdminArgs),
    /// Load generators that measure throughput and latency.
    #[command(subcommand)]
    Bench(bench::Bench),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init();
    match cli.command {
        Command::Standalone(args) => standalone::run(&args),
        Command::Admin(args) => admin::run(args),
        Command::Bench(b) => bench::run(b),
    }
}
