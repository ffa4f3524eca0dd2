//! A cluster of real `orbitmq` processes on 127.0.0.1: two name servers side by side (they never
//! talk to each other) and two brokers registered with both. Clients and `orbitmq admin` use
//! only the name servers. Checks that topics span both brokers, sends spread over them, a
//! killed broker leaves the routes within the name servers' expiry while clients carry on,
//! and a broker stopped cleanly leaves at once.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{admin, bin, wait_for};
use orbitmq_core::client::{ClientConfig, FilterExpression, Message, Producer, SimpleConsumer};
use orbitmq_core::storage::msg_id;
use orbitmq_tests::process::ServerProcess;

/// How long a name server keeps a silent broker (the default is 120 s).
const EXPIRY_MS: u64 = 2_000;
/// How often brokers register (the default is 30 s).
const REGISTER_MS: &str = "300";

/// The broker names a name server lists.
fn brokers(ns: &str) -> BTreeSet<String> {
    let list = admin(ns, "cluster list").unwrap();
    list["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["broker_name"].as_str().unwrap().to_owned())
        .collect()
}

/// The broker names in `topic`'s route from a name server, each with its queue count.
fn route(ns: &str, topic: &str) -> BTreeMap<String, usize> {
    let mut by_broker = BTreeMap::new();
    if let Ok(r) = admin(ns, &format!("topic route --topic {topic}")) {
        for q in r["queues"].as_array().unwrap() {
            *by_broker.entry(q["broker_name"].as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    by_broker
}

struct Cluster {
    dir: tempfile::TempDir,
    namesrv: Vec<ServerProcess>,
    brokers: Vec<(String, ServerProcess)>,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let expiry = EXPIRY_MS.to_string();
        let namesrv: Vec<ServerProcess> = (1..=2)
            .map(|i| {
                let log = dir.path().join(format!("namesrv{i}.log"));
                let args = ["namesrv", "--listen", "127.0.0.1:0", "--broker-expiry-ms", &expiry];
                ServerProcess::run(bin(), &args, Some(&log))
            })
            .collect();
        let mut c = Cluster { dir, namesrv, brokers: Vec::new() };
        for name in ["broker-a", "broker-b"] {
            c.start_broker(name);
        }
        c
    }

    fn endpoints(&self) -> String {
        self.namesrv.iter().map(|n| n.addr.to_string()).collect::<Vec<_>>().join(";")
    }

    fn ns(&self, i: usize) -> String {
        self.namesrv[i].addr.to_string()
    }

    fn start_broker(&mut self, name: &str) {
        let data = self.dir.path().join(name);
        let log = self.dir.path().join(format!("{name}.log"));
        let namesrv = self.endpoints();
        let args = [
            "broker",
            "--namesrv",
            &namesrv,
            "--listen",
            "127.0.0.1:0",
            "--broker-name",
            name,
            "--data-dir",
            data.to_str().unwrap(),
            "--metrics-listen",
            "off",
            "--register-interval-ms",
            REGISTER_MS,
        ];
        let p = ServerProcess::run(bin(), &args, Some(&log));
        self.brokers.push((name.to_owned(), p));
    }

    fn broker(&mut self, name: &str) -> &mut ServerProcess {
        &mut self.brokers.iter_mut().find(|(n, _)| n == name).unwrap().1
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for entry in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "log") {
                    let log = std::fs::read_to_string(&path).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(40).collect();
                    eprintln!("--- {} ---", path.display());
                    for l in tail.into_iter().rev() {
                        eprintln!("{l}");
                    }
                }
            }
        }
    }
}

const TOPIC: &str = "orders";
const GROUP: &str = "billing";

/// An application that knows only the name servers: an SDK producer and simple consumer.
struct App {
    rt: tokio::runtime::Runtime,
    producer: Producer,
    consumer: SimpleConsumer,
}

impl App {
    fn connect(endpoints: String) -> App {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let config = ClientConfig::new(endpoints);
        let producer = Producer::builder(config.clone())
            .topics([TOPIC])
            .runtime(rt.handle().clone())
            .build()
            .unwrap();
        rt.block_on(producer.start()).unwrap();
        let consumer = SimpleConsumer::builder(config, GROUP)
            .subscribe(TOPIC, FilterExpression::all())
            .await_duration(Duration::from_secs(2))
            .runtime(rt.handle().clone())
            .build()
            .unwrap();
        rt.block_on(consumer.start()).unwrap();
        App { rt, producer, consumer }
    }

    /// Sends `n` messages (key `k<i>`); their message ids, and how many each broker address
    /// stored.
    fn send(&self, n: usize) -> (BTreeSet<String>, BTreeMap<String, usize>) {
        let mut stored_on = BTreeMap::<String, usize>::new();
        let mut sent = BTreeSet::new();
        for i in 0..n {
            let m =
                Message::builder(TOPIC).body(format!("order {i}")).keys([format!("k{i}")]).build();
            let receipt = self.rt.block_on(self.producer.send(m)).unwrap();
            let (host, _) = msg_id::decode(receipt.offset_msg_id.as_deref().unwrap()).unwrap();
            *stored_on.entry(host.to_string()).or_default() += 1;
            sent.insert(receipt.message_id);
        }
        (sent, stored_on)
    }

    /// Receives and acks until every id of `want` came, or 40 s passed; the ids received.
    fn consume(&self, want: &BTreeSet<String>) -> BTreeSet<String> {
        let mut got = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(40);
        while !want.is_subset(&got) && Instant::now() < deadline {
            if let Ok(batch) = self.rt.block_on(self.consumer.receive(32, Duration::from_secs(30)))
            {
                for m in batch {
                    self.rt.block_on(self.consumer.ack(&m)).unwrap();
                    got.insert(m.message_id.clone());
                }
            }
        }
        got
    }

    fn shutdown(self) {
        self.rt.block_on(self.producer.shutdown());
        self.rt.block_on(self.consumer.shutdown());
    }
}

#[test]
fn two_brokers_behind_two_name_servers() {
    let mut cluster = Cluster::start();
    let all: BTreeSet<String> = ["broker-a", "broker-b"].map(str::to_owned).into();
    for i in 0..2 {
        let ns = cluster.ns(i);
        wait_for(Duration::from_secs(10), "both brokers registered", || {
            (brokers(&ns) == all).then_some(())
        });
    }

    // Admin through one name server creates the topic on every master; the other name server
    // learns it from the brokers' registrations.
    let create = format!("topic create --topic {TOPIC} --read-queues 4 --write-queues 4");
    assert_eq!(admin(&cluster.ns(0), &create).unwrap()["topic"]["name"], TOPIC);
    for i in 0..2 {
        let ns = cluster.ns(i);
        wait_for(Duration::from_secs(5), "the route on both brokers", || {
            let r = route(&ns, TOPIC);
            (r.len() == 2 && r.values().all(|n| *n == 4)).then_some(())
        });
    }
    let list = admin(&cluster.ns(1), "cluster list").unwrap();
    for b in list["brokers"].as_array().unwrap() {
        assert_eq!(b["role"], "async_master", "{b}");
        assert_eq!(b["broker_id"], 0, "{b}");
        assert!(b["topics"].as_u64().unwrap() >= 1, "{b}");
    }

    // Sends spread over both brokers, and the consumer reads them all, from both.
    let app = App::connect(cluster.endpoints());
    let (sent, stored_on) = app.send(200);
    assert_eq!(stored_on.len(), 2, "sends went to both brokers: {stored_on:?}");
    assert!(stored_on.values().all(|n| *n >= 50), "spread evenly enough: {stored_on:?}");
    let status = admin(&cluster.ns(1), &format!("topic status --topic {TOPIC}")).unwrap();
    let held: u64 = status["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["max_offset"].as_u64().unwrap())
        .sum();
    assert_eq!(held, 200, "{status}");
    // Each broker's counters, through the other name server: what it stored, by address.
    let counters = admin(&cluster.ns(1), "cluster stats").unwrap();
    let counted: BTreeMap<String, usize> = counters["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (b["address"].as_str().unwrap().to_owned(), b["messages_in"].as_u64().unwrap() as usize)
        })
        .collect();
    assert_eq!(counted, stored_on, "{counters}");
    assert!(
        counters["brokers"].as_array().unwrap().iter().all(|b| b["disk_bytes"].as_u64() > Some(0))
    );
    // Found by key through a name server, whichever broker holds it.
    let found = admin(&cluster.ns(0), &format!("message by-key --topic {TOPIC} --key k7")).unwrap();
    assert_eq!(found["messages"].as_array().unwrap().len(), 1, "{found}");
    by_offset_names_the_broker(&cluster.ns(0));
    assert_eq!(app.consume(&sent), sent);
    let progress = format!("consumer progress --group {GROUP} --topic {TOPIC}");
    let progress = admin(&cluster.ns(0), &progress).unwrap();
    assert_eq!(progress["total_lag"], 0, "{progress}");
    let queues = progress["queues"].as_array().unwrap();
    let names: BTreeSet<&str> = queues.iter().map(|q| q["broker_name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 2, "{progress}");
    members_and_resend_through_a_name_server(&cluster, &app, &sent);

    kill_one_and_carry_on(&mut cluster, app);
}

/// Each broker has its own queue 0, and both hold a message at its offset 0: read through a
/// name server without a broker, the answer names both instead of showing either one; with
/// `--broker`, it is that broker's message.
fn by_offset_names_the_broker(ns: &str) {
    let at = format!("message by-offset --topic {TOPIC} --queue 0 --offset 0");
    let err = admin(ns, &at).unwrap_err();
    assert!(err.contains("on brokers broker-a, broker-b: name one"), "{err}");
    let mut ids = BTreeSet::new();
    for name in ["broker-a", "broker-b"] {
        let found = admin(ns, &format!("{at} --broker {name}")).unwrap();
        let m = &found["messages"][0];
        assert_eq!((m["broker_name"].as_str(), m["queue_offset"].as_u64()), (Some(name), Some(0)));
        ids.insert(m["message_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 2, "two different messages");
}

/// The consumer, connected to both brokers, is one member; a message resent through a name
/// server reaches the group again, whichever broker holds it.
fn members_and_resend_through_a_name_server(cluster: &Cluster, app: &App, sent: &BTreeSet<String>) {
    let members = admin(&cluster.ns(1), &format!("group members --group {GROUP}")).unwrap();
    let members = members["members"].as_array().unwrap().clone();
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[0]["topics"], serde_json::json!([TOPIC]), "{members:?}");
    let id = sent.iter().next().unwrap();
    let resend = format!("message resend --group {GROUP} --topic {TOPIC} --id {id}");
    assert_eq!(admin(&cluster.ns(0), &resend).unwrap()["resent"], true);
    let once_more = BTreeSet::from([id.clone()]);
    assert_eq!(app.consume(&once_more), once_more);
    let missing = format!("message resend --group {GROUP} --topic {TOPIC} --id 0123456789ABCDEF");
    let err = admin(&cluster.ns(0), &missing).unwrap_err();
    assert!(err.contains("no message"), "{err}");
}

/// SIGKILL broker-b: both name servers drop it within the expiry; the clients carry on with
/// broker-a; then broker-a, stopped cleanly, leaves at once.
fn kill_one_and_carry_on(cluster: &mut Cluster, app: App) {
    cluster.broker("broker-b").kill();
    let killed = Instant::now();
    for i in 0..2 {
        let ns = cluster.ns(i);
        wait_for(Duration::from_millis(EXPIRY_MS + 3_000), "broker-b out of the route", || {
            (route(&ns, TOPIC).keys().collect::<Vec<_>>() == ["broker-a"]).then_some(())
        });
    }
    let gone_after = killed.elapsed();
    assert!(gone_after >= Duration::from_millis(EXPIRY_MS / 2), "left too early: {gone_after:?}");
    assert_eq!(brokers(&cluster.ns(0)), ["broker-a".to_owned()].into());

    // Every send succeeds (one to the dead broker's queues is retried on the live one) and is
    // consumed.
    let (after, stored_on) = app.send(100);
    assert_eq!(stored_on.len(), 1, "{stored_on:?}");
    let got = app.consume(&after);
    assert!(after.is_subset(&got), "{} of 100 consumed", after.intersection(&got).count());
    app.shutdown();

    // A broker stopped cleanly unregisters at once, long before the expiry.
    let stopped = Instant::now();
    assert!(cluster.broker("broker-a").stop().success());
    let ns = cluster.ns(0);
    wait_for(Duration::from_millis(EXPIRY_MS / 2), "broker-a unregistered", || {
        brokers(&ns).is_empty().then_some(())
    });
    assert!(stopped.elapsed() < Duration::from_millis(EXPIRY_MS));
    let err = admin(&ns, &format!("topic route --topic {TOPIC}")).unwrap_err();
    assert!(err.contains("no live broker"), "{err}");
}
