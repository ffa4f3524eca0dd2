//! `orbitmq admin …`: the operator CLI, mqadmin's concepts with modern flags. Flags and output
//! over the client SDK's [`Admin`], which calls the `orbitmq.v1.Admin` service that `orbitmq
//! standalone` serves on its listen port (`--endpoints`, `ORBITMQ_ENDPOINTS`, default
//! `127.0.0.1:8081`), in plaintext or, with `--tls` (`--tls-ca` to verify the server), over TLS.
//!
//! Without `--json` every command prints aligned tables (or a one-line confirmation for
//! changes). With `--json` it prints exactly one JSON document (one line) on stdout. Failures
//! print `error: <what failed>: <why>` on stderr and exit with 1; usage errors exit with 2.
//!
//! JSON shapes (field order as shown; `…` repeats the object before it):
//!
//! ```text
//! topic create / update  {"topic":TOPIC}                      update adds "previous":TOPIC
//!   TOPIC = {"name":"orders","read_queues":8,"write_queues":8,"perm":6,"message_type":"NORMAL"}
//! topic delete           {"topic":"orders","deleted":true}
//! topic list             {"topics":[TOPIC,…]}                  sorted by name
//! topic route            {"topic":"orders","queues":[{"queue_id":0,"broker_name":"broker-a",
//!                          "broker_id":0,"address":"127.0.0.1:8081","perm":"RW"},…]}
//! topic status           {"topic":"orders","queues":[{"queue_id":0,"broker_name":"broker-a",
//!                          "min_offset":0,"max_offset":12,"last_store_timestamp":1764064800000},…]}
//! group create           {"group":GROUP,"created":true}       false when it existed (updated)
//!   GROUP = {"name":"billing","fifo":false,"max_delivery_attempts":17,"consume_from":"auto"}
//! group list             {"groups":[GROUP,…]}                  sorted by name
//! consumer progress      {"group":"billing","total_lag":3,"dead_letters":0,"inflight":1,
//!                          "queues":[{"topic":"orders",
//!                          "broker_name":"broker-a","queue_id":0,"broker_offset":12,
//!                          "consumer_offset":9,"lag":3},…]}    sorted by topic, queue
//! message by-id / by-key / by-offset
//!                        {"messages":[MESSAGE,…]}
//!   MESSAGE = {"topic","queue_id","queue_offset","commitlog_offset","message_id",
//!              "offset_msg_id","tag" (null if none),"keys":[…],"properties":{…},
//!              "born_timestamp","store_timestamp","born_host","store_host",
//!              "reconsume_times","size","body_size",
//!              "body" (when the body is UTF-8) or "body_base64" (when it is not)}
//! offset reset           {"group":"billing","topic":"orders","timestamp":0,
//!                          "queues":[{"queue_id":0,"old_offset":9,"new_offset":0},…]}
//! ```
//!
//! Timestamps are ms since the epoch. `--to-time`, `--begin-ms` and `--end-ms` take ms, an
//! RFC 3339 time (`2026-11-25T10:00:00Z`, `2026-11-25T11:00:00.5+01:00`) or `now`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use anyhow::{Context, anyhow};
use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use orbitmq_core::client::{
    self, Admin, BrokerStat, ClientConfig, ClientTls, ErrorKind, GroupCreated, GroupOptions,
    QueueOffsetReset, TopicConfig,
};
use serde::Serialize;

use crate::client_tls::{TlsArgs, chain};
use crate::credentials::{self, CredentialArgs};

/// Where `orbitmq standalone` listens by default.
const DEFAULT_ENDPOINTS: &str = "127.0.0.1:8081";
/// How long one admin call may take (message look-ups return whole bodies).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Flags shared by every admin command, and the command.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  orbitmq admin --endpoints 127.0.0.1:8081 topic list --json
  # over TLS, verifying the server's certificate (its name must match the endpoint's host)
  orbitmq admin --endpoints localhost:8081 --tls-ca ca.pem topic list")]
pub struct AdminArgs {
    /// Address of the orbitmq server (its --listen address).
    #[arg(
        long,
        global = true,
        env = "ORBITMQ_ENDPOINTS",
        default_value = DEFAULT_ENDPOINTS,
        value_name = "HOST:PORT",
        help_heading = "Global options"
    )]
    endpoints: String,
    /// Print exactly one JSON document on stdout instead of tables.
    #[arg(long, global = true, help_heading = "Global options")]
    json: bool,
    /// Work in this namespace (what clients set as x-mq-namespace): topic and group names are
    /// stored as NS%name, as Apache RocketMQ stores them.
    #[arg(
        long,
        global = true,
        env = "ORBITMQ_NAMESPACE",
        value_name = "NS",
        help_heading = "Global options"
    )]
    namespace: Option<String>,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    creds: CredentialArgs,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create, change, delete, list and inspect topics.
    ///
    /// Example: orbitmq admin topic create --topic orders --read-queues 8 --write-queues 8
    #[command(subcommand)]
    Topic(TopicCommand),
    /// Create and list consumer groups.
    ///
    /// Example: orbitmq admin group create --group billing --max-attempts 5
    #[command(subcommand)]
    Group(GroupCommand),
    /// How far consumer groups are behind.
    ///
    /// Example: orbitmq admin consumer progress --group billing
    #[command(subcommand)]
    Consumer(ConsumerCommand),
    /// Find stored messages by id, key or queue offset.
    ///
    /// Example: orbitmq admin message by-key --topic orders --key order-42
    #[command(subcommand)]
    Message(MessageCommand),
    /// Move consumer group offsets.
    ///
    /// Example: orbitmq admin offset reset --group billing --topic orders --to-time now
    #[command(subcommand)]
    Offset(OffsetCommand),
    /// The cluster's brokers, as a name server (or a lone server) sees them.
    ///
    /// Example: orbitmq admin --endpoints 10.0.0.1:9876 cluster list
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Brokers with their roles, addresses, topics, last heartbeat and replication lag.
    ///
    /// Example: orbitmq admin --endpoints 10.0.0.1:9876 cluster list --json
    List,
    /// Each broker's messages stored and delivered since it started, and its disk use
    /// (through a name server: every registered broker that answers).
    ///
    /// Example: orbitmq admin --endpoints 10.0.0.1:9876 cluster stats
    Stats,
}

#[derive(Debug, Subcommand)]
enum TopicCommand {
    /// Create a topic (fails if it exists).
    ///
    /// Example: orbitmq admin topic create --topic orders --read-queues 8 --write-queues 8
    /// --message-type fifo
    Create(TopicCreate),
    /// Change some settings of an existing topic; the others are kept.
    ///
    /// Example: orbitmq admin topic update --topic orders --write-queues 16
    Update(TopicUpdate),
    /// Delete a topic's config (its stored messages age out by retention).
    ///
    /// Example: orbitmq admin topic delete --topic orders
    Delete(TopicName),
    /// List topics with their queues, permission and message type.
    ///
    /// Example: orbitmq admin topic list --include-system
    List(TopicList),
    /// Show where a topic's queues live and what they allow.
    ///
    /// Example: orbitmq admin topic route --topic orders
    Route(TopicName),
    /// Show each queue's min/max offset and last store time.
    ///
    /// Example: orbitmq admin topic status --topic orders
    Status(TopicName),
}

/// What a topic takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MessageType {
    /// Plain messages.
    Normal,
    /// Ordered by message group.
    Fifo,
    /// Delivered at a time.
    Delay,
    /// Half message, then commit or rollback.
    Transaction,
    /// Any of the four.
    Mixed,
}

impl MessageType {
    fn wire(self) -> &'static str {
        match self {
            MessageType::Normal => "NORMAL",
            MessageType::Fifo => "FIFO",
            MessageType::Delay => "DELAY",
            MessageType::Transaction => "TRANSACTION",
            MessageType::Mixed => "MIXED",
        }
    }
}

#[derive(Debug, Args)]
struct TopicCreate {
    /// Topic name.
    #[arg(long)]
    topic: String,
    /// Queues consumers read from.
    #[arg(long, default_value_t = 8, value_name = "N")]
    read_queues: u32,
    /// Queues producers write to.
    #[arg(long, default_value_t = 8, value_name = "N")]
    write_queues: u32,
    /// What messages the topic takes.
    #[arg(long, value_enum, ignore_case = true, default_value_t = MessageType::Normal)]
    message_type: MessageType,
    /// RocketMQ permission bits: 2 write, 4 read, 6 read+write.
    #[arg(long, default_value_t = 6, value_name = "P")]
    perm: u32,
}

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("change")
        .args(["read_queues", "write_queues", "message_type", "perm"])
        .required(true)
        .multiple(true)
))]
struct TopicUpdate {
    /// Topic name.
    #[arg(long)]
    topic: String,
    /// New number of read queues.
    #[arg(long, value_name = "N")]
    read_queues: Option<u32>,
    /// New number of write queues.
    #[arg(long, value_name = "N")]
    write_queues: Option<u32>,
    /// New message type.
    #[arg(long, value_enum, ignore_case = true)]
    message_type: Option<MessageType>,
    /// New permission bits: 2 write, 4 read, 6 read+write.
    #[arg(long, value_name = "P")]
    perm: Option<u32>,
}

#[derive(Debug, Args)]
struct TopicName {
    /// Topic name.
    #[arg(long)]
    topic: String,
}

#[derive(Debug, Args)]
struct TopicList {
    /// Also list system topics (%RETRY%…, %DLQ%…).
    #[arg(long)]
    include_system: bool,
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// Create a consumer group, or change it if it exists.
    ///
    /// Example: orbitmq admin group create --group billing --fifo --max-attempts 5 --consume-from first
    Create(GroupCreate),
    /// List consumer groups.
    ///
    /// Example: orbitmq admin group list --json
    List,
    /// List the clients of a consumer group connected to the brokers.
    ///
    /// Example: orbitmq admin group members --group billing --json
    Members(GroupMembers),
}

#[derive(Debug, Args)]
struct GroupMembers {
    /// Consumer group name.
    #[arg(long)]
    group: String,
}

#[derive(Debug, Args)]
struct GroupCreate {
    /// Consumer group name.
    #[arg(long)]
    group: String,
    /// Consume FIFO topics in order (one message group at a time).
    #[arg(long)]
    fifo: bool,
    /// Deliveries before a message goes to the dead-letter topic %DLQ%<group> [default: the
    /// broker's, 17: RocketMQ's 16 retries after the first delivery].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_attempts: Option<u32>,
    /// Where the group starts on a queue it never consumed: auto (Apache RocketMQ's rule: from
    /// the start while nothing was deleted from the queue, else from its last message), first
    /// (everything still stored) or last (only new messages) [default: auto for a new group].
    #[arg(long, value_enum, ignore_case = true, value_name = "auto|first|last")]
    consume_from: Option<ConsumeFrom>,
}

/// `--consume-from`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ConsumeFrom {
    Auto,
    First,
    Last,
}

impl ConsumeFrom {
    fn as_str(self) -> &'static str {
        match self {
            ConsumeFrom::Auto => "auto",
            ConsumeFrom::First => "first",
            ConsumeFrom::Last => "last",
        }
    }
}

#[derive(Debug, Subcommand)]
enum ConsumerCommand {
    /// Per-queue broker offset, consumer offset and lag of a group, and the total lag.
    ///
    /// Example: orbitmq admin consumer progress --group billing --topic orders
    Progress(Progress),
}

#[derive(Debug, Args)]
struct Progress {
    /// Consumer group.
    #[arg(long)]
    group: String,
    /// Only this topic [default: every topic the group has offsets on].
    #[arg(long)]
    topic: Option<String>,
}

// The variants are the subcommand names (`by-id`, `by-key`, `by-offset`).
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Subcommand)]
enum MessageCommand {
    /// Find a message by its client message id or its broker-assigned offset message id.
    ///
    /// Example: orbitmq admin message by-id --id 7F00000100001F9100000000000004D2
    ById(ById),
    /// Find a topic's messages by key, optionally within a store-time range.
    ///
    /// Example: orbitmq admin message by-key --topic orders --key order-42 --begin-ms
    /// 2026-11-25T00:00:00Z --max 10
    ByKey(ByKey),
    /// Read the message at an offset of one queue.
    ///
    /// Example: orbitmq admin message by-offset --topic orders --queue 3 --offset 120
    ByOffset(ByOffset),
    /// Deliver a stored message once more to one consumer group only (other groups do not see
    /// it again).
    ///
    /// Example: orbitmq admin message resend --group billing --topic orders --id
    /// 7F00000100001F9100000000000004D2
    Resend(Resend),
}

#[derive(Debug, Args)]
struct Resend {
    /// Consumer group to deliver it to.
    #[arg(long)]
    group: String,
    /// Topic the message is in.
    #[arg(long)]
    topic: String,
    /// Client message id or offset message id.
    #[arg(long)]
    id: String,
}

#[derive(Debug, Args)]
struct ById {
    /// Client message id or offset message id.
    #[arg(long)]
    id: String,
}

#[derive(Debug, Args)]
struct ByKey {
    /// Topic.
    #[arg(long)]
    topic: String,
    /// Message key.
    #[arg(long)]
    key: String,
    /// Stored at or after: ms since the epoch, RFC 3339 or `now` [default: the beginning].
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    begin_ms: Option<i64>,
    /// Stored at or before: ms since the epoch, RFC 3339 or `now` [default: the end].
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    end_ms: Option<i64>,
    /// Most messages to return [default: the broker's, 64].
    #[arg(long, value_name = "N")]
    max: Option<u32>,
}

#[derive(Debug, Args)]
struct ByOffset {
    /// Topic.
    #[arg(long)]
    topic: String,
    /// Queue id.
    #[arg(long, value_name = "ID")]
    queue: u32,
    /// Offset within the queue.
    #[arg(long)]
    offset: u64,
    /// Through a name server: the broker group whose queue it is (the BROKER column of
    /// `cluster list` and of other message lookups). Needed when several brokers of the topic
    /// have a message there.
    #[arg(long, value_name = "NAME")]
    broker: Option<String>,
}

#[derive(Debug, Subcommand)]
enum OffsetCommand {
    /// Move a group's offsets on a topic to the first message stored at or after a time.
    ///
    /// Unacked in-flight messages are handed out again from the new offsets.
    ///
    /// Example: orbitmq admin offset reset --group billing --topic orders --to-time
    /// 2026-11-25T10:00:00Z
    Reset(Reset),
}

#[derive(Debug, Args)]
struct Reset {
    /// Consumer group.
    #[arg(long)]
    group: String,
    /// Topic.
    #[arg(long)]
    topic: String,
    /// Ms since the epoch, RFC 3339 (2026-11-25T10:00:00Z) or `now` (0: the beginning, now:
    /// the end).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    to_time: i64,
}

/// Runs an admin command. Prints its failure and exits with 1 when it fails.
pub fn run(args: AdminArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    match rt.block_on(execute(args)) {
        Ok(output) => {
            let mut out = std::io::stdout().lock();
            out.write_all(output.as_bytes())?;
            if !output.ends_with('\n') {
                out.write_all(b"\n")?;
            }
            out.flush()?;
            Ok(())
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

async fn execute(args: AdminArgs) -> anyhow::Result<String> {
    let ns = args.namespace.clone().unwrap_or_default();
    if !ns.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Err(anyhow!("--namespace {ns:?} may only hold letters, digits, '_' and '-'"));
    }
    // `https://host:port` (a URL, as before) implies TLS.
    let https = args.endpoints.starts_with("https://");
    let endpoints = args.endpoints.trim_start_matches("https://").trim_start_matches("http://");
    let tls = ClientTls::from_flags(args.tls.tls || https, args.tls.tls_ca.clone());
    let mut config = ClientConfig::new(endpoints)
        .namespace(ns.clone())
        .request_timeout(REQUEST_TIMEOUT)
        .tls(tls.clone());
    config.credentials = args.creds.credentials()?;
    let signed = config.credentials.is_some();
    let admin = Admin::new(config).map_err(|e| anyhow!("invalid flags: {}", e.message()))?;
    let cli =
        Cli { admin, ns, endpoints: endpoints.to_owned(), tls, hint: args.tls.hint(), signed };
    let json = args.json;
    match args.command {
        AdminCommand::Topic(c) => cli.topic(c, json).await,
        AdminCommand::Group(GroupCommand::Create(g)) => cli.group_create(g, json).await,
        AdminCommand::Group(GroupCommand::List) => cli.group_list(json).await,
        AdminCommand::Group(GroupCommand::Members(m)) => cli.group_members(m, json).await,
        AdminCommand::Consumer(ConsumerCommand::Progress(p)) => cli.progress(p, json).await,
        AdminCommand::Message(m) => cli.message(m, json).await,
        AdminCommand::Offset(OffsetCommand::Reset(r)) => cli.reset(r, json).await,
        AdminCommand::Cluster(ClusterCommand::List) => cli.cluster_list(json).await,
        AdminCommand::Cluster(ClusterCommand::Stats) => cli.cluster_stats(json).await,
    }
}

/// The admin client and what its failures are explained with.
struct Cli {
    admin: Admin,
    ns: String,
    endpoints: String,
    tls: ClientTls,
    hint: &'static str,
    /// Whether requests are signed (--access-key), for the hint on a refusal.
    signed: bool,
}

impl Cli {
    /// `name` as the server stores it (in `--namespace`), as the output shows names.
    fn stored(&self, name: &str) -> String {
        orbitmq_core::protocol::namespace::wrap(&self.ns, name)
    }

    /// Turns a failed call into `<what>: <why>`; an unreachable server into `cannot connect`,
    /// with the hint for a client and server that disagree on TLS.
    fn failed(&self, what: impl std::fmt::Display) -> impl FnOnce(client::Error) -> anyhow::Error {
        move |e| {
            if e.kind() == ErrorKind::Unauthorized {
                return anyhow!("{what}: {} ({})", e.message(), credentials::hint(self.signed));
            }
            if e.kind() != ErrorKind::Unavailable {
                return anyhow!("{what}: {}", e.message());
            }
            // The transport's error under the SDK's status: "tcp connect error: Connection
            // refused", "invalid peer certificate: UnknownIssuer", …
            let transport = std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<tonic::Status>())
                .and_then(std::error::Error::source);
            let why = transport.map_or_else(|| e.message().to_owned(), chain);
            let over = if matches!(self.tls, ClientTls::Off) { "" } else { " over TLS" };
            let msg =
                format!("{what}: cannot connect to orbitmq at {}{over}: {why}", self.endpoints);
            // Refused: nobody listens, whatever the protocol. Anything else (a closed
            // connection, a failed handshake) may be plaintext meeting TLS or the reverse.
            if why.contains("Connection refused") {
                anyhow!(msg)
            } else {
                anyhow!("{msg} ({})", self.hint)
            }
        }
    }

    async fn topic(&self, cmd: TopicCommand, json: bool) -> anyhow::Result<String> {
        match cmd {
            TopicCommand::Create(c) => self.topic_create(c, json).await,
            TopicCommand::Update(u) => self.topic_update(u, json).await,
            TopicCommand::Delete(d) => self.topic_delete(d, json).await,
            TopicCommand::List(l) => self.topic_list(l, json).await,
            TopicCommand::Route(r) => self.topic_route(r, json).await,
            TopicCommand::Status(s) => self.topic_status(s, json).await,
        }
    }

    async fn topic_create(&self, c: TopicCreate, json: bool) -> anyhow::Result<String> {
        let what = format!("creating topic {:?}", c.topic);
        let t = TopicConfig {
            name: c.topic,
            read_queues: c.read_queues,
            write_queues: c.write_queues,
            perm: c.perm,
            message_type: c.message_type.wire().to_owned(),
        };
        let t = self.admin.create_topic(t).await.map_err(self.failed(what))?;
        if json {
            #[derive(Serialize)]
            struct Out {
                topic: TopicConfig,
            }
            return to_json(&Out { topic: t });
        }
        Ok(format!("created topic {}: {}", t.name, describe_topic(&t)))
    }

    async fn topic_update(&self, u: TopicUpdate, json: bool) -> anyhow::Result<String> {
        let what = format!("updating topic {:?}", u.topic);
        let old = self.admin.topic(&u.topic).await.map_err(self.failed(&what))?;
        let new = TopicConfig {
            name: old.name.clone(),
            read_queues: u.read_queues.unwrap_or(old.read_queues),
            write_queues: u.write_queues.unwrap_or(old.write_queues),
            perm: u.perm.unwrap_or(old.perm),
            message_type: u
                .message_type
                .map_or_else(|| old.message_type.clone(), |m| m.wire().to_owned()),
        };
        let new = self.admin.update_topic(new).await.map_err(self.failed(&what))?;
        if json {
            #[derive(Serialize)]
            struct Out {
                topic: TopicConfig,
                previous: TopicConfig,
            }
            return to_json(&Out { topic: new, previous: old });
        }
        let mut changes = Vec::new();
        if old.read_queues != new.read_queues {
            changes.push(format!("read queues {} -> {}", old.read_queues, new.read_queues));
        }
        if old.write_queues != new.write_queues {
            changes.push(format!("write queues {} -> {}", old.write_queues, new.write_queues));
        }
        if old.perm != new.perm {
            changes.push(format!("perm {} -> {}", old.perm, new.perm));
        }
        if old.message_type != new.message_type {
            changes.push(format!("type {} -> {}", old.message_type, new.message_type));
        }
        if changes.is_empty() {
            changes.push("nothing changed".to_owned());
        }
        let (name, now) = (&new.name, describe_topic(&new));
        Ok(format!("updated topic {name}: {} (now {now})", changes.join(", ")))
    }

    async fn topic_delete(&self, d: TopicName, json: bool) -> anyhow::Result<String> {
        let what = format!("deleting topic {:?}", d.topic);
        self.admin.delete_topic(&d.topic).await.map_err(self.failed(what))?;
        let topic = self.stored(&d.topic);
        if json {
            #[derive(Serialize)]
            struct Out {
                topic: String,
                deleted: bool,
            }
            return to_json(&Out { topic, deleted: true });
        }
        Ok(format!("deleted topic {topic}"))
    }

    async fn topic_list(&self, l: TopicList, json: bool) -> anyhow::Result<String> {
        let topics = self
            .admin
            .list_topics(l.include_system)
            .await
            .map_err(self.failed("listing topics"))?;
        if json {
            #[derive(Serialize)]
            struct Out {
                topics: Vec<TopicConfig>,
            }
            return to_json(&Out { topics });
        }
        let mut table =
            Table::new(&[("TOPIC", L), ("READ", R), ("WRITE", R), ("PERM", L), ("TYPE", L)]);
        for t in &topics {
            table.row(vec![
                t.name.clone(),
                t.read_queues.to_string(),
                t.write_queues.to_string(),
                format!("{} ({})", t.perm, perm_name(t.perm)),
                t.message_type.clone(),
            ]);
        }
        Ok(table.render_or("no topics"))
    }

    async fn topic_route(&self, r: TopicName, json: bool) -> anyhow::Result<String> {
        let what = format!("getting the route of topic {:?}", r.topic);
        let route = self.admin.topic_route(&r.topic).await.map_err(self.failed(what))?;
        if json {
            return to_json(&route);
        }
        let mut table = Table::new(&[
            ("QUEUE", R),
            ("BROKER", L),
            ("BROKER_ID", R),
            ("ADDRESS", L),
            ("PERM", L),
        ]);
        for q in &route.queues {
            table.row(vec![
                q.queue_id.to_string(),
                q.broker_name.clone(),
                q.broker_id.to_string(),
                q.address.clone(),
                q.perm.clone(),
            ]);
        }
        Ok(format!("topic {}\n{}", route.topic, table.render_or("no queues")))
    }

    async fn topic_status(&self, s: TopicName, json: bool) -> anyhow::Result<String> {
        let what = format!("getting the status of topic {:?}", s.topic);
        let status = self.admin.topic_status(&s.topic).await.map_err(self.failed(what))?;
        if json {
            return to_json(&status);
        }
        let mut table = Table::new(&[
            ("QUEUE", R),
            ("BROKER", L),
            ("MIN_OFFSET", R),
            ("MAX_OFFSET", R),
            ("MESSAGES", R),
            ("LAST_STORE_TIME", L),
        ]);
        let mut total = 0;
        for q in &status.queues {
            let messages = q.max_offset.saturating_sub(q.min_offset);
            total += messages;
            table.row(vec![
                q.queue_id.to_string(),
                q.broker_name.clone(),
                q.min_offset.to_string(),
                q.max_offset.to_string(),
                messages.to_string(),
                format_time(q.last_store_timestamp),
            ]);
        }
        let queues = table.render_or("no queues");
        Ok(format!("topic {}\n{queues}\nmessages held: {total}", status.topic))
    }

    // -----------------------------------------------------------------------------------------
    // group, consumer, offset

    async fn group_create(&self, g: GroupCreate, json: bool) -> anyhow::Result<String> {
        let what = format!("creating consumer group {:?}", g.group);
        let options = GroupOptions {
            fifo: g.fifo.then_some(true),
            max_delivery_attempts: g.max_attempts,
            consume_from: g.consume_from.map(|c| c.as_str().to_owned()),
        };
        let made = self.admin.create_group(&g.group, options).await.map_err(self.failed(what))?;
        if json {
            return to_json(&made);
        }
        let GroupCreated { group, created } = made;
        Ok(format!(
            "{} consumer group {}: fifo {}, max delivery attempts {}, consume from {}",
            if created { "created" } else { "updated" },
            group.name,
            group.fifo,
            group.max_delivery_attempts,
            group.consume_from
        ))
    }

    async fn group_list(&self, json: bool) -> anyhow::Result<String> {
        let groups =
            self.admin.list_groups().await.map_err(self.failed("listing consumer groups"))?;
        if json {
            #[derive(Serialize)]
            struct Out {
                groups: Vec<client::GroupConfig>,
            }
            return to_json(&Out { groups });
        }
        let mut table =
            Table::new(&[("GROUP", L), ("FIFO", L), ("MAX_ATTEMPTS", R), ("CONSUME_FROM", L)]);
        for g in &groups {
            table.row(vec![
                g.name.clone(),
                g.fifo.to_string(),
                g.max_delivery_attempts.to_string(),
                g.consume_from.clone(),
            ]);
        }
        Ok(table.render_or("no consumer groups"))
    }

    async fn group_members(&self, m: GroupMembers, json: bool) -> anyhow::Result<String> {
        let what = format!("listing the members of consumer group {:?}", m.group);
        let members = self.admin.group_members(&m.group).await.map_err(self.failed(what))?;
        if json {
            #[derive(Serialize)]
            struct Out {
                members: Vec<client::GroupMember>,
            }
            return to_json(&Out { members });
        }
        let mut table = Table::new(&[
            ("CLIENT_ID", L),
            ("TYPE", L),
            ("LANGUAGE", L),
            ("VERSION", L),
            ("HOST", L),
            ("LAST_SEEN", L),
            ("TOPICS", L),
        ]);
        for c in &members {
            table.row(vec![
                c.client_id.clone(),
                c.client_type.clone(),
                c.language.clone(),
                c.version.clone(),
                c.host.clone(),
                format_time(c.last_seen),
                c.topics.join(","),
            ]);
        }
        Ok(table.render_or("no clients of this group are connected"))
    }

    async fn resend(&self, r: Resend, json: bool) -> anyhow::Result<String> {
        let what =
            format!("resending message {:?} of topic {:?} to group {:?}", r.id, r.topic, r.group);
        self.admin.resend_message(&r.group, &r.topic, &r.id).await.map_err(self.failed(what))?;
        if json {
            return Ok(r#"{"resent":true}"#.to_owned());
        }
        Ok(format!("message {} of topic {} resent to consumer group {}", r.id, r.topic, r.group))
    }

    async fn progress(&self, p: Progress, json: bool) -> anyhow::Result<String> {
        let what = format!("getting the progress of consumer group {:?}", p.group);
        let progress = self
            .admin
            .consumer_progress(&p.group, p.topic.as_deref())
            .await
            .map_err(self.failed(what))?;
        if json {
            return to_json(&progress);
        }
        let mut table = Table::new(&[
            ("TOPIC", L),
            ("BROKER", L),
            ("QUEUE", R),
            ("BROKER_OFFSET", R),
            ("CONSUMER_OFFSET", R),
            ("LAG", R),
        ]);
        for q in &progress.queues {
            table.row(vec![
                q.topic.clone(),
                q.broker_name.clone(),
                q.queue_id.to_string(),
                q.broker_offset.to_string(),
                q.consumer_offset.to_string(),
                q.lag.to_string(),
            ]);
        }
        Ok(format!(
            "consumer group {}\n{}\ntotal lag: {}, in flight: {}, dead letters: {} (topic %DLQ%{})",
            progress.group,
            table.render_or("no consumer offsets"),
            progress.total_lag,
            progress.inflight,
            progress.dead_letters,
            progress.group
        ))
    }

    async fn reset(&self, r: Reset, json: bool) -> anyhow::Result<String> {
        #[derive(Serialize)]
        struct Out {
            group: String,
            topic: String,
            timestamp: i64,
            queues: Vec<QueueOffsetReset>,
        }
        let what = format!("resetting the offsets of group {:?} on topic {:?}", r.group, r.topic);
        let queues = self
            .admin
            .reset_offset(&r.group, &r.topic, r.to_time)
            .await
            .map_err(self.failed(what))?;
        let (group, topic) = (self.stored(&r.group), self.stored(&r.topic));
        if json {
            return to_json(&Out { group, topic, timestamp: r.to_time, queues });
        }
        let moved = queues.iter().filter(|q| q.old_offset != q.new_offset).count();
        Ok(format!(
            "reset consumer group {group} on topic {topic} to {} ({} ms): {} queues, {moved} moved",
            format_time(r.to_time),
            r.to_time,
            queues.len()
        ))
    }

    // -----------------------------------------------------------------------------------------
    // cluster

    async fn cluster_list(&self, json: bool) -> anyhow::Result<String> {
        let info = self.admin.cluster_list().await.map_err(self.failed("listing the cluster"))?;
        if json {
            return to_json(&info);
        }
        let mut table = Table::new(&[
            ("CLUSTER", L),
            ("BROKER", L),
            ("ID", R),
            ("ROLE", L),
            ("ADDRESS", L),
            ("VERSION", L),
            ("TOPICS", R),
            ("COMMITLOG_MAX", R),
            ("REPL_LAG", R),
            ("LAST_HEARTBEAT", L),
            ("STARTED", L),
        ]);
        let now = now_ms();
        for b in &info.brokers {
            let lag = match b.replication_lag {
                -1 => "no master".to_owned(),
                n => n.to_string(),
            };
            table.row(vec![
                b.cluster.clone(),
                b.broker_name.clone(),
                b.broker_id.to_string(),
                b.role.clone(),
                b.address.clone(),
                b.version.clone(),
                b.topics.to_string(),
                b.commitlog_max_offset.to_string(),
                lag,
                format!("{:.1} s ago", (now - b.last_heartbeat).max(0) as f64 / 1000.0),
                format_time(b.started_at),
            ]);
        }
        Ok(format!(
            "name server {}\n{}",
            info.name_server,
            table.render_or("no brokers registered")
        ))
    }

    async fn cluster_stats(&self, json: bool) -> anyhow::Result<String> {
        let mut stats =
            self.admin.broker_stats().await.map_err(self.failed("reading the brokers' stats"))?;
        stats.sort_by(|a, b| (&a.broker_name, a.broker_id).cmp(&(&b.broker_name, b.broker_id)));
        if json {
            #[derive(Serialize)]
            struct Out {
                brokers: Vec<BrokerStat>,
            }
            return to_json(&Out { brokers: stats });
        }
        let mut table = Table::new(&[
            ("BROKER", L),
            ("ID", R),
            ("ADDRESS", L),
            ("MESSAGES_IN", R),
            ("MESSAGES_OUT", R),
            ("DISK_BYTES", R),
        ]);
        for s in stats {
            table.row(vec![
                s.broker_name,
                s.broker_id.to_string(),
                s.address,
                s.messages_in.to_string(),
                s.messages_out.to_string(),
                s.disk_bytes.to_string(),
            ]);
        }
        Ok(table.render_or("no broker answered"))
    }

    // -----------------------------------------------------------------------------------------
    // message

    async fn message(&self, cmd: MessageCommand, json: bool) -> anyhow::Result<String> {
        let found = match cmd {
            MessageCommand::Resend(r) => return self.resend(r, json).await,
            MessageCommand::ById(b) => {
                let what = format!("querying message id {:?}", b.id);
                self.admin.query_message_by_id(&b.id).await.map_err(self.failed(what))?
            }
            MessageCommand::ByKey(k) => {
                let what = format!("querying key {:?} of topic {:?}", k.key, k.topic);
                self.admin
                    .query_message_by_key(&k.topic, &k.key, k.begin_ms, k.end_ms, k.max)
                    .await
                    .map_err(self.failed(what))?
            }
            MessageCommand::ByOffset(o) => {
                let what = format!("reading offset {} of {}:{}", o.offset, o.topic, o.queue);
                let m = self
                    .admin
                    .query_message_by_offset_on(o.broker.as_deref(), &o.topic, o.queue, o.offset)
                    .await;
                vec![m.map_err(self.failed(what))?]
            }
        };
        let messages: Vec<MessageJson> =
            found.into_iter().map(|m| MessageJson::new(m, cli_body)).collect();
        if json {
            #[derive(Serialize)]
            struct Out {
                messages: Vec<MessageJson>,
            }
            return to_json(&Out { messages });
        }
        let mut table = Table::new(&[
            ("TOPIC", L),
            ("BROKER", L),
            ("QUEUE", R),
            ("OFFSET", R),
            ("MESSAGE_ID", L),
            ("OFFSET_MSG_ID", L),
            ("TAG", L),
            ("KEYS", L),
            ("STORE_TIME", L),
            ("BODY_SIZE", R),
            ("BODY", L),
        ]);
        for m in &messages {
            table.row(vec![
                m.topic.clone(),
                m.broker_name.clone(),
                m.queue_id.to_string(),
                m.queue_offset.to_string(),
                m.message_id.clone(),
                m.offset_msg_id.clone(),
                m.tag.clone().unwrap_or_else(|| "-".to_owned()),
                if m.keys.is_empty() { "-".to_owned() } else { m.keys.join(",") },
                format_time(m.store_timestamp),
                m.body.body_size.to_string(),
                preview(m),
            ]);
        }
        Ok(table.render_or("no messages found"))
    }
}

fn to_json<T: Serialize>(value: &T) -> anyhow::Result<String> {
    serde_json::to_string(value).context("encoding JSON")
}

// ---------------------------------------------------------------------------------------------
// topic

fn perm_name(perm: u32) -> &'static str {
    match (perm & 4 != 0, perm & 2 != 0) {
        (true, true) => "RW",
        (true, false) => "R",
        (false, true) => "W",
        (false, false) => "-",
    }
}

fn describe_topic(t: &TopicConfig) -> String {
    format!(
        "{} read queues, {} write queues, perm {} ({}), type {}",
        t.read_queues,
        t.write_queues,
        t.perm,
        perm_name(t.perm),
        t.message_type
    )
}

// ---------------------------------------------------------------------------------------------
// message JSON

/// The body as `orbitmq admin` prints it: text when UTF-8, else base64.
#[derive(Debug, Serialize)]
struct CliBody {
    body_size: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_base64: Option<String>,
}

fn cli_body(body: &[u8]) -> CliBody {
    match std::str::from_utf8(body) {
        Ok(s) => CliBody { body_size: body.len(), body: Some(s.to_owned()), body_base64: None },
        Err(_) => CliBody {
            body_size: body.len(),
            body: None,
            body_base64: Some(BASE64_STANDARD.encode(body)),
        },
    }
}

type MessageJson = crate::message_json::MessageJson<CliBody>;

/// The start of a body, on one line.
fn preview(m: &MessageJson) -> String {
    const MAX: usize = 40;
    let Some(body) = &m.body.body else {
        return format!("<{} bytes, not UTF-8>", m.body.body_size);
    };
    let mut out: String =
        body.chars().take(MAX).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if body.chars().count() > MAX {
        out.push('…');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// tables

const L: bool = false;
const R: bool = true;

/// Aligned columns under headers, two spaces apart, no borders; `true` right-aligns a column
/// (numbers).
struct Table {
    table: comfy_table::Table,
}

impl Table {
    fn new(columns: &[(&'static str, bool)]) -> Self {
        let mut table = comfy_table::Table::new();
        table.load_style(comfy_table::presets::NOTHING);
        table.set_header(columns.iter().map(|c| c.0).collect::<Vec<_>>());
        for (column, &(_, right)) in table.column_iter_mut().zip(columns) {
            column.set_padding((0, 2));
            if right {
                column.set_cell_alignment(comfy_table::CellAlignment::Right);
            }
        }
        Table { table }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.table.add_row(cells);
    }

    /// The table, or `empty` in place of its rows when it has none.
    fn render_or(&self, empty: &str) -> String {
        let mut out = self.table.trim_fmt();
        if self.table.is_empty() {
            let _ = write!(out, "\n({empty})");
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// time

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// What `--to-time`, `--begin-ms` and `--end-ms` take, for their error messages.
const TIME_FORMS: &str = "ms since the epoch (1764064800000), an RFC 3339 time with an offset \
                          (2026-11-25T10:00:00Z, 2026-11-25T11:00:00.250+01:00) or `now`";

/// `--to-time` and friends: ms since the epoch, an RFC 3339 time, or `now`. The range is
/// jiff's (years -9999 to 9999), so every accepted time can be printed back.
fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("now") {
        return Ok(now_ms());
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse()
            .ok()
            .filter(|&ms| jiff::Timestamp::from_millisecond(ms).is_ok())
            .ok_or_else(|| {
                format!("{s} ms is out of range: the latest time is 9999-12-31T23:59:59.999Z")
            });
    }
    match s.parse::<jiff::Timestamp>() {
        Ok(t) => Ok(t.as_millisecond()),
        Err(e) => Err(format!("{s:?} is not a time ({e}); expected {TIME_FORMS}")),
    }
}

/// Ms since the epoch as RFC 3339 UTC with milliseconds; `-` for 0 (never).
fn format_time(ms: i64) -> String {
    if ms == 0 {
        return "-".to_owned();
    }
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => format!("{t:.3}"),
        Err(_) => format!("{ms} ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_times() {
        assert_eq!(parse_time("0"), Ok(0));
        assert_eq!(parse_time("1764064800000"), Ok(1_764_064_800_000));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_time("2026-11-25T10:00:00Z"), Ok(1_795_600_800_000));
        assert_eq!(parse_time("2026-11-25T11:00:00.5+01:00"), Ok(1_795_600_800_500));
        assert_eq!(parse_time("2026-11-25t09:30:00.123456-00:30"), Ok(1_795_600_800_123));
        assert_eq!(parse_time("2000-02-29T00:00:00Z"), Ok(951_782_400_000));
        assert_eq!(parse_time("1969-12-31T23:59:59.999Z"), Ok(-1));
        let now = parse_time("now").unwrap();
        assert!((now - now_ms()).abs() < 5_000);
        for bad in [
            "",
            "yesterday",
            "2026-11-25",
            "2026-11-25T10:00:00",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-25T24:00:00Z",
            "2026-11-25T10:00:00.Z",
            "2026-11-25T10:00:00+1:00",
            "-5",
            // Each of these panicked the hand-written parser or was out of range.
            "2026-11-25T10:00:0\u{e9}",
            "2026-11-25T10:00:00\u{e9}",
            "\u{e9}\u{e9}\u{e9}\u{e9}-11-25T10:00:00Z",
            "2026-11-25T10:0",
            "2026-11-25T10:00:00+01:0\u{e9}",
            "99999999999999999999",
            "253402300800000",
            "+99999-01-01T00:00:00Z",
            "10000-01-01T00:00:00Z",
        ] {
            assert!(parse_time(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn formats_times() {
        assert_eq!(format_time(0), "-");
        assert_eq!(format_time(1_795_600_800_123), "2026-11-25T10:00:00.123Z");
        assert_eq!(format_time(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_time(-1), "1969-12-31T23:59:59.999Z");
        for ms in [1_i64, 86_399_999, 951_782_400_000, 1_795_600_800_123, 4_102_444_800_000] {
            assert_eq!(parse_time(&format_time(ms)), Ok(ms));
        }
    }

    #[test]
    fn aligns_tables() {
        let mut t = Table::new(&[("NAME", L), ("N", R)]);
        t.row(vec!["a".into(), "100".into()]);
        t.row(vec!["long-name".into(), "2".into()]);
        assert_eq!(t.render_or("none"), "NAME         N\na          100\nlong-name    2");
        assert_eq!(Table::new(&[("NAME", L)]).render_or("none"), "NAME\n(none)");
    }
}
