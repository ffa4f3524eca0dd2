//! `orbitmq admin` against the real binary: `orbitmq standalone` on a free port, every admin
//! command run with `--json`, its answer parsed and checked against what was really done
//! (topics created, messages sent and consumed over the RocketMQ v2 gRPC protocol).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, ExitStatus, Output};
use std::time::{Duration, Instant};

use orbitmq_core::client::{
    ClientConfig, FilterExpression, Message, MessageView, Producer, SimpleConsumer,
};
use orbitmq_tests::process::ServerProcess;
use serde_json::{Value, json};

fn orbitmq() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_orbitmq"));
    c.env_remove("ORBITMQ_ENDPOINTS")
        .env_remove("ORBITMQ_ACCESS_KEY")
        .env_remove("ORBITMQ_SECRET_KEY")
        .env("RUST_LOG", "warn");
    c
}

/// `orbitmq standalone` on 127.0.0.1:0 over a temp directory.
struct Server {
    process: ServerProcess,
    addr: String,
    dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let bin = Path::new(env!("CARGO_BIN_EXE_orbitmq"));
        let log = dir.path().join("server.log");
        let process = ServerProcess::start(bin, &dir.path().join("data"), &[], Some(&log));
        let addr = process.addr.to_string();
        Server { process, addr, dir }
    }

    /// `orbitmq admin --endpoints <addr> <cmd>`, `cmd` split at whitespace.
    fn admin(&self, cmd: &str) -> Output {
        orbitmq()
            .args(["admin", "--endpoints", &self.addr])
            .args(cmd.split_whitespace())
            .output()
            .unwrap()
    }

    /// Runs `cmd` (which includes `--json`): success and one JSON document on stdout.
    fn json(&self, cmd: &str) -> Value {
        assert!(cmd.contains("--json"));
        parse(&self.admin(cmd), cmd)
    }

    /// Runs `cmd`: exit code 1, nothing on stdout; returns stderr.
    fn fails(&self, cmd: &str) -> String {
        expect_failure(&self.admin(cmd), cmd)
    }

    /// Runs `cmd` without `--json`: success; returns stdout.
    fn text(&self, cmd: &str) -> String {
        let out = self.admin(cmd);
        assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// SIGTERM, then waits for the clean shutdown.
    fn stop(&mut self) -> ExitStatus {
        self.process.stop()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.process.child.try_wait().ok().flatten().is_none() {
            self.stop();
        }
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.path().join("server.log"));
            eprintln!("--- server log ---\n{}", log.unwrap_or_default());
        }
    }
}

fn parse(out: &Output, cmd: &str) -> Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "admin {cmd} failed: {stderr}");
    let stdout = std::str::from_utf8(&out.stdout).unwrap();
    // from_str rejects anything after the document: exactly one.
    serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("admin {cmd}: stdout is not one JSON document ({e}):\n{stdout}"))
}

fn expect_failure(out: &Output, cmd: &str) -> String {
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(out.status.code(), Some(1), "admin {cmd}: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "admin {cmd} printed {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.starts_with("error: "), "{stderr}");
    stderr
}

fn find<'a>(list: &'a Value, field: &str, name: &str) -> Option<&'a Value> {
    list.as_array().unwrap().iter().find(|v| v[field] == name)
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{v} is not a u64"))
}

fn len(v: &Value) -> usize {
    v.as_array().unwrap_or_else(|| panic!("{v} is not an array")).len()
}

#[test]
fn topics_and_groups() {
    let mut server = Server::start();
    topic_create_list_update(&server);
    topic_route_and_status(&server);
    groups(&server);
    topic_delete(&server);
    assert!(server.stop().success());
}

fn topic_create_list_update(server: &Server) {
    // create, and list shows it (--json before the subcommand works too).
    let created = server.json(
        "topic create --topic admin-t --read-queues 4 --write-queues 4 --message-type fifo --json",
    );
    let expected = json!({
        "name": "admin-t", "read_queues": 4, "write_queues": 4, "perm": 6, "message_type": "FIFO"
    });
    assert_eq!(created["topic"], expected);
    let list = server.json("--json topic list");
    assert_eq!(find(&list["topics"], "name", "admin-t"), Some(&expected), "{list}");
    let table = server.text("topic list");
    assert!(table.starts_with("TOPIC") && table.contains("admin-t") && table.contains("FIFO"));
    let line = server.text("topic create --topic admin-text");
    assert!(line.starts_with("created topic admin-text") && line.lines().count() == 1, "{line}");

    // The endpoint also comes from ORBITMQ_ENDPOINTS; defaults are 8/8/normal/6.
    let out = orbitmq()
        .args(["admin", "topic", "create", "--topic", "admin-defaults", "--json"])
        .env("ORBITMQ_ENDPOINTS", &server.addr)
        .output()
        .unwrap();
    assert_eq!(
        parse(&out, "topic create --topic admin-defaults")["topic"],
        json!({"name": "admin-defaults", "read_queues": 8, "write_queues": 8, "perm": 6,
            "message_type": "NORMAL"})
    );

    // Twice: a clear error, exit code 1.
    let err = server.fails("topic create --topic admin-t --json");
    assert!(err.contains("creating topic \"admin-t\"") && err.contains("already exists"), "{err}");
    let err = server.fails("topic create --topic admin-bad --read-queues 0");
    assert!(err.contains("1..=1024"), "{err}");

    // update changes only what is given.
    let updated =
        server.json("topic update --topic admin-t --read-queues 6 --write-queues 2 --json");
    assert_eq!(updated["previous"], expected);
    assert_eq!(
        updated["topic"],
        json!({"name": "admin-t", "read_queues": 6, "write_queues": 2, "perm": 6,
            "message_type": "FIFO"})
    );
    let updated = server.json("topic update --topic admin-t --message-type MIXED --json");
    assert_eq!(updated["topic"]["message_type"], "MIXED");
    assert_eq!(updated["topic"]["read_queues"], 6);
    let list = server.json("topic list --json");
    let topic = find(&list["topics"], "name", "admin-t").unwrap();
    assert_eq!((num(&topic["read_queues"]), num(&topic["write_queues"])), (6, 2));
    assert_eq!(topic["message_type"], "MIXED");
    let err = server.fails("topic update --topic admin-missing --perm 4");
    assert!(err.contains("admin-missing") && err.contains("does not exist"), "{err}");
}

fn topic_route_and_status(server: &Server) {
    // route: six queues, the first two writable.
    let route = server.json("topic route --topic admin-t --json");
    assert_eq!(route["topic"], "admin-t");
    assert_eq!(len(&route["queues"]), 6, "{route}");
    for (i, queue) in route["queues"].as_array().unwrap().iter().enumerate() {
        assert_eq!(num(&queue["queue_id"]), i as u64);
        assert_eq!(queue["perm"], if i < 2 { "RW" } else { "R" });
        assert_eq!(queue["address"], server.addr.as_str());
        assert_eq!(queue["broker_name"], "broker-a");
    }
    assert!(server.text("topic route --topic admin-t").contains("ADDRESS"));

    // status of an empty topic.
    let status = server.json("topic status --topic admin-t --json");
    assert_eq!(len(&status["queues"]), 6, "{status}");
    for queue in status["queues"].as_array().unwrap() {
        assert_eq!((num(&queue["min_offset"]), num(&queue["max_offset"])), (0, 0));
        assert_eq!(queue["last_store_timestamp"], 0);
    }
}

fn groups(server: &Server) {
    // fifo and max attempts, the broker's default, and updating one.
    let group = server.json("group create --group g-fifo --fifo --max-attempts 5 --json");
    assert_eq!(
        group,
        json!({"group": {"name": "g-fifo", "fifo": true, "max_delivery_attempts": 5,
            "consume_from": "auto"}, "created": true})
    );
    // RocketMQ's default: 16 retries after the first delivery.
    let group = server.json("group create --group g-plain --json");
    assert_eq!(group["group"]["fifo"], false);
    assert_eq!(group["group"]["max_delivery_attempts"], 17);
    assert_eq!(group["created"], true);
    let group = server.json("group create --group g-plain --consume-from LAST --json");
    assert_eq!(group["group"]["consume_from"], "last");
    let out = server.admin("group create --group g-plain --consume-from middle");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("auto, first, last"), "{err}");
    // A namespace folds into stored names.
    let t = server.json("--namespace shop topic create --topic orders --json");
    assert_eq!(t["topic"]["name"], "shop%orders");
    let g = server.json("--namespace shop group create --group billing --json");
    assert_eq!(g["group"]["name"], "shop%billing");
    let status = server.json("--namespace shop topic status --topic orders --json");
    assert_eq!(status["topic"], "shop%orders");
    let err = server.fails("--namespace a%b topic list");
    assert!(err.contains("--namespace"), "{err}");
    let group = server.json("group create --group g-fifo --fifo --max-attempts 7 --json");
    assert_eq!(group["created"], false);
    // Re-running without flags changes nothing.
    let group = server.json("group create --group g-fifo --json");
    assert_eq!(
        (&group["group"]["fifo"], num(&group["group"]["max_delivery_attempts"])),
        (&Value::Bool(true), 7)
    );
    // Offsets of a group that does not exist cannot be reset or shown.
    let err = server.fails("offset reset --group no-such-group --topic admin-t --to-time 0");
    assert!(err.contains("does not exist"), "{err}");
    let err = server.fails("consumer progress --group g-fifo --topic no-such-topic");
    assert!(err.contains("does not exist"), "{err}");
    let list = server.json("group list --json");
    let fifo = find(&list["groups"], "name", "g-fifo").unwrap();
    assert_eq!((&fifo["fifo"], num(&fifo["max_delivery_attempts"])), (&Value::Bool(true), 7));
    assert_eq!(find(&list["groups"], "name", "g-plain").unwrap()["fifo"], false);
    assert!(server.text("group list").contains("g-plain"));
    let err = server.fails("group create --group bad/group");
    assert!(err.contains("creating consumer group \"bad/group\""), "{err}");
}

fn topic_delete(server: &Server) {
    let deleted = server.json("topic delete --topic admin-t --json");
    assert_eq!(deleted, json!({"topic": "admin-t", "deleted": true}));
    let list = server.json("topic list --json");
    assert!(find(&list["topics"], "name", "admin-t").is_none(), "{list}");
    assert!(find(&list["topics"], "name", "admin-defaults").is_some(), "{list}");
    let all = server.json("topic list --include-system --json");
    assert!(len(&all["topics"]) >= len(&list["topics"]));
    let err = server.fails("topic route --topic admin-t --json");
    assert!(err.contains("does not exist"), "{err}");
    let err = server.fails("topic delete --topic admin-t");
    assert!(err.contains("deleting topic \"admin-t\""), "{err}");
}

const TOPIC: &str = "admin-orders";
const GROUP: &str = "admin-billing";
/// Text messages sent; one binary message follows them.
const SENT: usize = 12;
const TOTAL: u64 = SENT as u64 + 1;

fn tag(i: usize) -> &'static str {
    if i.is_multiple_of(2) { "TagA" } else { "TagB" }
}

/// Message `i`: tag `TagA`/`TagB`, keys `order-<i>` and `batch-1`.
fn order(i: usize) -> Message {
    Message::builder(TOPIC)
        .body(format!("order {i} payload"))
        .tag(tag(i))
        .keys([format!("order-{i}"), "batch-1".to_owned()])
        .build()
}

/// The queue id and offset a received message came from.
fn position(m: &MessageView) -> (u64, u64) {
    (m.queue_id as u64, m.queue_offset as u64)
}

/// Queue id -> (broker offset, consumer offset, lag) of `consumer progress --topic TOPIC`.
fn progress(server: &Server) -> (u64, BTreeMap<u64, (u64, u64, u64)>) {
    let p = server.json(&format!("consumer progress --group {GROUP} --topic {TOPIC} --json"));
    assert_eq!(p["group"], GROUP);
    let queues = p["queues"]
        .as_array()
        .unwrap()
        .iter()
        .inspect(|q| assert_eq!(q["topic"], TOPIC))
        .map(|q| {
            let offsets = (num(&q["broker_offset"]), num(&q["consumer_offset"]), num(&q["lag"]));
            (num(&q["queue_id"]), offsets)
        })
        .collect();
    (num(&p["total_lag"]), queues)
}

/// The RocketMQ v2 side, as an application sees it: an SDK producer and simple consumer, and
/// a runtime to drive them.
struct Grpc {
    rt: tokio::runtime::Runtime,
    producer: Producer,
    consumer: SimpleConsumer,
}

impl Grpc {
    fn connect(server: &Server) -> Grpc {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let config = ClientConfig::new(server.addr.clone());
        let producer = Producer::builder(config.clone())
            .topics([TOPIC])
            .runtime(rt.handle().clone())
            .build()
            .unwrap();
        let consumer = SimpleConsumer::builder(config, GROUP)
            .subscribe(TOPIC, FilterExpression::all())
            .await_duration(Duration::from_secs(5))
            .runtime(rt.handle().clone())
            .build()
            .unwrap();
        rt.block_on(producer.start()).unwrap();
        Grpc { rt, producer, consumer }
    }

    /// Sends `m`; its message id.
    fn send(&mut self, m: Message) -> String {
        self.rt.block_on(self.producer.send(m)).unwrap().message_id
    }

    fn receive(&mut self) -> Vec<MessageView> {
        self.rt.block_on(self.consumer.receive(32, Duration::from_secs(30))).unwrap()
    }

    fn ack(&mut self, m: &MessageView) {
        self.rt.block_on(self.consumer.ack(m)).unwrap();
    }

    fn shutdown(self) {
        self.rt.block_on(self.producer.shutdown());
        self.rt.block_on(self.consumer.shutdown());
    }
}

#[test]
fn messages_progress_and_offset_reset() {
    let mut server = Server::start();
    server.json(&format!("topic create --topic {TOPIC} --read-queues 4 --write-queues 4 --json"));
    server.json(&format!("group create --group {GROUP} --json"));

    // Twelve text messages and one binary one, through the real MessagingService.
    // The SDK makes the message ids: `ids[i]` is message `i`'s.
    let mut grpc = Grpc::connect(&server);
    let ids: Vec<String> = (0..SENT).map(|i| grpc.send(order(i))).collect();
    let binary =
        Message::builder(TOPIC).body(vec![0xff, 0xfe, 0x00, 0x01]).keys(["binary"]).build();
    grpc.send(binary);

    let by_index = query_by_key(&server, &ids);
    query_by_id_and_offset(&server, &ids, &by_index);
    let broker_offsets = status(&server);
    let held = consume_and_check_progress(&server, &mut grpc, &broker_offsets);
    reset_offsets(&server, &mut grpc, &broker_offsets, held);
    grpc.shutdown();
    assert!(server.stop().success());
}

/// Checks `message by-key`; returns the records of the text messages by their number.
fn query_by_key(server: &Server, ids: &[String]) -> BTreeMap<usize, Value> {
    // The index is built in the background: wait for it.
    let all = format!("message by-key --topic {TOPIC} --key batch-1 --max 100 --json");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut found = server.json(&all);
    while len(&found["messages"]) < SENT && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        found = server.json(&all);
    }
    assert_eq!(len(&found["messages"]), SENT, "{found}");
    let mut by_index = BTreeMap::new();
    for m in found["messages"].as_array().unwrap() {
        let id = m["message_id"].as_str().unwrap();
        let i = ids.iter().position(|sent| sent == id).unwrap_or_else(|| panic!("{m}"));
        assert_eq!(m["topic"], TOPIC);
        assert_eq!(m["tag"], tag(i));
        assert_eq!(m["keys"], json!([format!("order-{i}"), "batch-1"]));
        let body = format!("order {i} payload");
        assert_eq!(m["body"], body.as_str());
        assert_eq!(num(&m["body_size"]), body.len() as u64);
        assert!(m.get("body_base64").is_none());
        assert!(!m["offset_msg_id"].as_str().unwrap().is_empty());
        assert!(m["store_timestamp"].as_i64().unwrap() > 0);
        assert!(num(&m["queue_id"]) < 4);
        by_index.insert(i, m.clone());
    }
    assert_eq!(by_index.len(), SENT);

    let limited =
        server.json(&format!("message by-key --topic {TOPIC} --key batch-1 --max 5 --json"));
    assert_eq!(len(&limited["messages"]), 5);
    let one = server.json(&format!("message by-key --topic {TOPIC} --key order-3 --json"));
    assert_eq!(len(&one["messages"]), 1);
    assert_eq!(one["messages"][0]["message_id"], ids[3]);
    let future = server.json(&format!(
        "message by-key --topic {TOPIC} --key batch-1 --begin-ms 2100-01-01T00:00:00Z --json"
    ));
    assert_eq!(future["messages"], json!([]));
    let past = server.json(&format!(
        "message by-key --topic {TOPIC} --key batch-1 --begin-ms 0 --end-ms 1 --json"
    ));
    assert_eq!(past["messages"], json!([]));
    let table = server.text(&format!("message by-key --topic {TOPIC} --key order-1"));
    assert!(table.contains("OFFSET_MSG_ID") && table.contains("order 1 payload"), "{table}");
    assert!(table.contains(&ids[1]), "{table}");

    // A body that is not UTF-8 comes as base64.
    let bin = server.json(&format!("message by-key --topic {TOPIC} --key binary --json"));
    let bin = &bin["messages"][0];
    assert_eq!(bin["body_base64"], "//4AAQ==");
    assert_eq!(bin["body_size"], 4);
    assert!(bin.get("body").is_none());
    by_index
}

fn query_by_id_and_offset(server: &Server, ids: &[String], by_index: &BTreeMap<usize, Value>) {
    // by-id, with the client message id …
    let found = server.json(&format!("message by-id --id {} --json", ids[3]));
    assert_eq!(len(&found["messages"]), 1);
    assert_eq!(found["messages"][0]["body"], "order 3 payload");
    // … and with the offset_msg_id.
    let five = &by_index[&5];
    let found = server
        .json(&format!("message by-id --id {} --json", five["offset_msg_id"].as_str().unwrap()));
    assert_eq!(found["messages"][0]["message_id"], ids[5]);
    assert_eq!(found["messages"][0]["queue_offset"], five["queue_offset"]);
    assert_eq!(found["messages"][0]["commitlog_offset"], five["commitlog_offset"]);
    let err = server.fails("message by-id --id 01NOSUCHMESSAGE --json");
    assert!(err.contains("no message with id"), "{err}");

    // by-offset.
    let seven = &by_index[&7];
    let (queue, offset) = (&seven["queue_id"], &seven["queue_offset"]);
    let found = server.json(&format!(
        "message by-offset --topic {TOPIC} --queue {queue} --offset {offset} --json"
    ));
    assert_eq!(found["messages"][0]["message_id"], ids[7]);
    assert_eq!(found["messages"][0]["body"], "order 7 payload");
    let err =
        server.fails(&format!("message by-offset --topic {TOPIC} --queue {queue} --offset 9999"));
    assert!(err.contains("no message at offset 9999"), "{err}");
}

/// Checks `topic status`; returns each queue's max offset.
fn status(server: &Server) -> BTreeMap<u64, u64> {
    let status = server.json(&format!("topic status --topic {TOPIC} --json"));
    let queues = status["queues"].as_array().unwrap();
    assert_eq!(queues.len(), 4);
    for queue in queues {
        assert_eq!(queue["min_offset"], 0);
        assert!(num(&queue["max_offset"]) > 0, "{status}");
        assert!(queue["last_store_timestamp"].as_i64().unwrap() > 0);
    }
    let max: BTreeMap<u64, u64> =
        queues.iter().map(|q| (num(&q["queue_id"]), num(&q["max_offset"]))).collect();
    assert_eq!(max.values().sum::<u64>(), TOTAL, "{status}");
    max
}

/// Consumes everything, acks all but one message; returns where that one is.
fn consume_and_check_progress(
    server: &Server,
    grpc: &mut Grpc,
    broker: &BTreeMap<u64, u64>,
) -> (u64, u64) {
    // Before consuming: everything is lag.
    let (total_lag, queues) = progress(server);
    assert_eq!(total_lag, TOTAL);
    for (queue, offsets) in queues {
        assert_eq!(offsets, (broker[&queue], 0, broker[&queue]), "queue {queue}");
    }

    // Consume everything; ack all but one message, at offset 1 of some queue.
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < TOTAL as usize && Instant::now() < deadline {
        got.extend(grpc.receive());
    }
    assert_eq!(got.len(), TOTAL as usize);
    let held = got.iter().map(position).find(|&(_, offset)| offset == 1).unwrap();
    for m in got.iter().filter(|m| position(m) != held) {
        grpc.ack(m);
    }

    // The committed offset is the lowest unacked one.
    let (held_queue, held_offset) = held;
    let held_lag = broker[&held_queue] - held_offset;
    let (total_lag, queues) = progress(server);
    assert_eq!(total_lag, held_lag);
    for (queue, offsets) in queues {
        let expected = if queue == held_queue {
            (broker[&queue], held_offset, held_lag)
        } else {
            (broker[&queue], broker[&queue], 0)
        };
        assert_eq!(offsets, expected, "queue {queue}");
    }
    // Without --topic: every topic the group has offsets on.
    let all = server.json(&format!("--json consumer progress --group {GROUP}"));
    assert_eq!(num(&all["total_lag"]), held_lag, "{all}");
    assert_eq!(len(&all["queues"]), 4, "{all}");
    let table = server.text(&format!("consumer progress --group {GROUP}"));
    assert!(table.contains("CONSUMER_OFFSET"), "{table}");
    assert!(table.contains(&format!("total lag: {held_lag}")), "{table}");
    // The unacked message is in flight; nothing is dead-lettered.
    assert_eq!((num(&all["inflight"]), num(&all["dead_letters"])), (1, 0), "{all}");
    assert!(table.contains("in flight: 1, dead letters: 0"), "{table}");
    let err = server.fails("consumer progress --group admin-nobody");
    assert!(err.contains("does not exist"), "{err}");

    held
}

fn reset_offsets(
    server: &Server,
    grpc: &mut Grpc,
    broker: &BTreeMap<u64, u64>,
    (held_queue, held_offset): (u64, u64),
) {
    // To 0: back to the beginning …
    let reset =
        server.json(&format!("offset reset --group {GROUP} --topic {TOPIC} --to-time 0 --json"));
    assert_eq!((&reset["group"], &reset["topic"]), (&json!(GROUP), &json!(TOPIC)));
    assert_eq!(reset["timestamp"], 0);
    assert_eq!(len(&reset["queues"]), 4);
    for queue in reset["queues"].as_array().unwrap() {
        let id = num(&queue["queue_id"]);
        let old = if id == held_queue { held_offset } else { broker[&id] };
        assert_eq!((num(&queue["old_offset"]), num(&queue["new_offset"])), (old, 0), "{reset}");
    }
    let (total_lag, queues) = progress(server);
    assert_eq!(total_lag, TOTAL);
    assert!(queues.values().all(|&(_, consumer, _)| consumer == 0), "{queues:?}");
    // … which consumers see: the messages come again.
    let again = grpc.receive();
    assert!(again.iter().any(|m| position(m).1 == 0), "nothing redelivered from offset 0");

    // To an RFC 3339 time after every message, and to now: the end.
    std::thread::sleep(Duration::from_millis(5));
    for to in ["2100-01-01T00:00:00Z", "now"] {
        let reset = server
            .json(&format!("offset reset --group {GROUP} --topic {TOPIC} --to-time {to} --json"));
        for queue in reset["queues"].as_array().unwrap() {
            let new = num(&queue["new_offset"]);
            assert_eq!(new, broker[&num(&queue["queue_id"])], "{to}: {reset}");
        }
        let (total_lag, queues) = progress(server);
        assert_eq!(total_lag, 0, "{to}");
        for (queue, (broker_offset, consumer, _)) in queues {
            assert_eq!(consumer, broker_offset, "{to}: queue {queue}");
        }
    }
    let line = server.text(&format!("offset reset --group {GROUP} --topic {TOPIC} --to-time 0"));
    assert!(line.starts_with("reset consumer group") && line.lines().count() == 1, "{line}");
}

/// A simple consumer of `group` on `topic`, waiting at most `wait` for messages.
fn consumer(rt: &tokio::runtime::Runtime, addr: &str, group: &str, wait: u64) -> SimpleConsumer {
    SimpleConsumer::builder(ClientConfig::new(addr.to_owned()), group)
        .subscribe(RESEND_TOPIC, FilterExpression::all())
        .await_duration(Duration::from_secs(wait))
        .runtime(rt.handle().clone())
        .build()
        .unwrap()
}

/// Receives until `want` messages came (or 20 s passed), acking each.
fn drain(rt: &tokio::runtime::Runtime, c: &SimpleConsumer, want: usize) -> Vec<MessageView> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < want && Instant::now() < deadline {
        for m in rt.block_on(c.receive(32, Duration::from_secs(30))).unwrap() {
            rt.block_on(c.ack(&m)).unwrap();
            got.push(m);
        }
    }
    got
}

const RESEND_TOPIC: &str = "admin-resend";

/// `group members` lists the group's connected consumers; `message resend` hands a consumed
/// message to one group again, and only to it.
#[test]
fn group_members_and_resend() {
    let mut server = Server::start();
    server.json(&format!(
        "topic create --topic {RESEND_TOPIC} --read-queues 2 --write-queues 2 --json"
    ));
    server.json("group create --group resend-a --json");
    server.json("group create --group resend-b --json");
    assert_eq!(server.json("group members --group resend-a --json")["members"], json!([]));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let producer = Producer::builder(ClientConfig::new(server.addr.clone()))
        .topics([RESEND_TOPIC])
        .runtime(rt.handle().clone())
        .build()
        .unwrap();
    rt.block_on(producer.start()).unwrap();
    let (a, b) =
        (consumer(&rt, &server.addr, "resend-a", 2), consumer(&rt, &server.addr, "resend-b", 2));
    let ids: Vec<String> = (0..3)
        .map(|i| {
            let m = Message::builder(RESEND_TOPIC).body(format!("resend {i}")).build();
            rt.block_on(producer.send(m)).unwrap().message_id
        })
        .collect();
    assert_eq!(drain(&rt, &a, 3).len(), 3);
    assert_eq!(drain(&rt, &b, 3).len(), 3);

    // Each group has its one consumer, with what it told the broker about itself.
    let members = server.json("group members --group resend-a --json")["members"].clone();
    assert_eq!(len(&members), 1, "{members}");
    let m = &members[0];
    assert_eq!(m["client_type"], "SIMPLE_CONSUMER", "{m}");
    assert_eq!(m["topics"], json!([RESEND_TOPIC]), "{m}");
    assert!(
        !m["client_id"].as_str().unwrap().is_empty() && !m["language"].as_str().unwrap().is_empty(),
        "{m}"
    );
    assert!(num(&m["last_seen"]) > 0, "{m}");
    let other = server.json("group members --group resend-b --json")["members"].clone();
    assert_eq!(len(&other), 1, "{other}");
    assert_ne!(other[0]["client_id"], m["client_id"]);
    let table = server.text("group members --group resend-a");
    assert!(table.contains("SIMPLE_CONSUMER") && table.contains(RESEND_TOPIC), "{table}");

    // Resent to group a: a gets it once more, b does not.
    let resent = server.json(&format!(
        "message resend --group resend-a --topic {RESEND_TOPIC} --id {} --json",
        ids[1]
    ));
    assert_eq!(resent, json!({"resent": true}));
    let again = drain(&rt, &a, 1);
    assert_eq!(again.iter().map(|m| m.message_id.clone()).collect::<Vec<_>>(), [ids[1].clone()]);
    assert!(rt.block_on(a.receive(32, Duration::from_secs(30))).unwrap().is_empty(), "twice");
    assert!(rt.block_on(b.receive(32, Duration::from_secs(30))).unwrap().is_empty());
    // Acked again: the group has nothing left to consume.
    let p =
        server.json(&format!("consumer progress --group resend-a --topic {RESEND_TOPIC} --json"));
    assert_eq!((num(&p["total_lag"]), num(&p["inflight"])), (0, 0), "{p}");

    // By offset message id too.
    let found = server.json(&format!("message by-id --id {} --json", ids[2]));
    let offset_id = found["messages"][0]["offset_msg_id"].as_str().unwrap().to_owned();
    server.json(&format!(
        "message resend --group resend-b --topic {RESEND_TOPIC} --id {offset_id} --json"
    ));
    let again = drain(&rt, &b, 1);
    assert_eq!(again.iter().map(|m| m.message_id.clone()).collect::<Vec<_>>(), [ids[2].clone()]);

    for (cmd, why) in [
        (
            format!("message resend --group resend-a --topic {RESEND_TOPIC} --id 0123456789ABCDEF"),
            "no message",
        ),
        (
            format!("message resend --group nobody --topic {RESEND_TOPIC} --id {}", ids[0]),
            "does not exist",
        ),
        (
            format!("message resend --group resend-a --topic nowhere --id {}", ids[0]),
            "does not exist",
        ),
        (
            format!("message resend --group resend-a --topic {TOPIC} --id {}", ids[0]),
            "does not exist",
        ),
        ("group members --group bad/name".to_owned(), "group"),
    ] {
        let err = server.fails(&cmd);
        assert!(err.contains(why), "{cmd}: {err}");
    }
    rt.block_on(a.shutdown());
    rt.block_on(b.shutdown());
    rt.block_on(producer.shutdown());
    assert!(server.stop().success());
}

#[test]
fn unreachable_server_and_usage_errors() {
    // Nobody listens on a port just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoints = format!("127.0.0.1:{port}");
    let out =
        orbitmq().args(["admin", "--endpoints", &endpoints, "topic", "list", "--json"]).output();
    let err = expect_failure(&out.unwrap(), "topic list");
    assert!(err.contains(&format!("cannot connect to orbitmq at {endpoints}")), "{err}");

    // Usage errors are clap's: exit code 2, with the reason.
    for (cmd, why) in [
        ("topic create", "--topic"),
        ("topic create --topic t --message-type weird", "weird"),
        ("topic update --topic t", "--read-queues"),
        ("offset reset --group g --topic t --to-time yesterday", "is not a time"),
        ("offset reset --group g --topic t --to-time 2026-11-25T10:00:00", "is not a time"),
        ("message by-offset --topic t --queue x --offset 0", "--queue"),
        ("group create --group g --max-attempts 0", "--max-attempts"),
        ("", "Usage"),
    ] {
        let out = orbitmq().arg("admin").args(cmd.split_whitespace()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {err}");
        assert!(err.contains(why), "{cmd}: {err}");
    }
}

#[test]
fn help_teaches_every_command() {
    let help = |cmd: &str| {
        let out = orbitmq().args(cmd.split_whitespace()).arg("--help").output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let top = help("admin");
    for word in ["topic", "group", "consumer", "message", "offset", "--endpoints", "--json"] {
        assert!(top.contains(word), "{word} missing from:\n{top}");
    }
    assert!(top.contains("ORBITMQ_ENDPOINTS") && top.contains("127.0.0.1:8081"), "{top}");
    // Every command has an about line and an example of itself.
    for cmd in [
        "admin",
        "admin topic",
        "admin topic create",
        "admin topic update",
        "admin topic delete",
        "admin topic list",
        "admin topic route",
        "admin topic status",
        "admin group",
        "admin group create",
        "admin group list",
        "admin group members",
        "admin consumer",
        "admin consumer progress",
        "admin message",
        "admin message by-id",
        "admin message by-key",
        "admin message by-offset",
        "admin message resend",
        "admin offset",
        "admin offset reset",
    ] {
        let text = help(cmd);
        let first = text.lines().next().unwrap_or_default();
        assert!(!first.is_empty() && !first.starts_with("Usage"), "{cmd} has no about line");
        assert!(text.contains(&format!("Example: orbitmq {cmd}")), "{cmd} has no example:\n{text}");
    }
    let create = help("admin topic create");
    for flag in ["--topic", "--read-queues", "--write-queues", "--message-type", "--perm", "fifo"] {
        assert!(create.contains(flag), "{flag} missing from:\n{create}");
    }
}

/// A server started with `--access-key`/`--secret-key`: `admin` and `bench` sign with the same
/// keys (flags or environment), and a refusal names its cause and how to give the keys.
#[test]
fn credentials_are_required_and_refusals_name_the_cause() {
    const SECRET: &str = "s3cret-value";
    let dir = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_orbitmq"));
    let log = dir.path().join("server.log");
    let mut server = ServerProcess::start(
        bin,
        &dir.path().join("data"),
        &["--access-key", "ops", "--secret-key", SECRET],
        Some(&log),
    );
    let addr = server.addr.to_string();
    let run = |extra: &[&str], env: &[(&str, &str)], cmd: &str| {
        orbitmq()
            .args(["admin", "--endpoints", &addr])
            .args(extra)
            .args(cmd.split_whitespace())
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };

    let out = run(&[], &[], "topic list --json");
    let err = expect_failure(&out, "topic list without credentials");
    assert!(err.contains("no authorization header"), "{err}");
    assert!(err.contains("--access-key and --secret-key"), "the hint: {err}");
    let out = run(&["--access-key", "ops", "--secret-key", "guess"], &[], "topic list --json");
    let err = expect_failure(&out, "topic list with a wrong secret");
    assert!(err.contains("signature does not match (wrong secret key?)"), "{err}");
    let out = run(&["--access-key", "dev", "--secret-key", SECRET], &[], "topic list --json");
    let err = expect_failure(&out, "topic list with an unknown access key");
    assert!(err.contains("unknown access key \"dev\""), "{err}");
    assert!(!err.contains(SECRET), "{err}");
    let out = run(&["--access-key", "ops"], &[], "topic list --json");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("needs --secret-key"), "{err}");

    let ok = ["--access-key", "ops", "--secret-key", SECRET];
    parse(&run(&ok, &[], "topic create --topic signed --json"), "topic create");
    let env = [("ORBITMQ_ACCESS_KEY", "ops"), ("ORBITMQ_SECRET_KEY", SECRET)];
    let topics = parse(&run(&[], &env, "topic list --json"), "topic list with env keys");
    assert!(find(&topics["topics"], "name", "signed").is_some(), "{topics}");

    // bench produces through the SDK with the same keys, and is refused without them.
    let bench = |extra: &[&str]| {
        orbitmq()
            .args(["bench", "produce", "--endpoints", &addr, "--topic", "signed"])
            .args(["--count", "20", "--batch", "4", "--inflight", "2", "--connections", "1"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = bench(&ok);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = bench(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("no authorization header"), "{err}");

    server.stop();
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(!log.contains(SECRET), "the server logged its secret:\n{log}");

    // Half a pair is refused at start, naming the missing half.
    let out = orbitmq()
        .args(["standalone", "--listen", "127.0.0.1:0", "--dashboard-listen", "off"])
        .args(["--access-key", "ops", "--data-dir"])
        .arg(dir.path().join("other"))
        .env_remove("ORBITMQ_SECRET_KEY")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("needs --secret-key"), "{err}");
}
