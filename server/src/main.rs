//! `orbitmq`: one binary for every OrbitMQ process: `standalone` (name server + broker),
//! `namesrv` and `broker` (a cluster's processes),
//! `admin` (operator CLI) and `bench` (load generators).

mod admin;
mod bench;
mod client_tls;
mod cluster;
mod config;
mod credentials;
mod dashboard;
mod http;
mod message_json;
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
    /// Run a name server: the registry of live brokers and the topic routes clients ask for.
    ///
    /// Example: orbitmq namesrv --listen 10.0.0.1:9876
    Namesrv(cluster::NamesrvArgs),
    /// Run a broker of a cluster, registered with every name server given.
    ///
    /// Example: orbitmq broker --namesrv '10.0.0.1:9876;10.0.0.2:9876' --listen 10.0.0.5:8081
    /// --broker-name broker-a --broker-id 0 --cluster prod --data-dir /var/lib/orbitmq
    Broker(cluster::BrokerArgs),
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
        Command::Namesrv(args) => cluster::run_namesrv(&args),
        Command::Broker(args) => cluster::run_broker(&args),
        Command::Admin(args) => admin::run(args),
        Command::Bench(b) => bench::run(b),
    }
}
