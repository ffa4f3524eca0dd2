//! Master/slave replication with real `orbitmq` processes on 127.0.0.1: a name server and one
//! broker group (master id 0, slave id 1). Every test counts acknowledged messages and checks
//! where they can be read after a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Bed, admin, free_port, wait_for};
use orbitmq_core::client::{
    Admin, ClientConfig, ConsumeResult, ErrorKind, FilterExpression, Message, MessageListener,
    MessageView, Producer, PullConsumer, PushConsumer, SimpleConsumer, TransactionChecker,
    TransactionResolution,
};
use orbitmq_core::protocol::v2;
use serde_json::Value;

const TOPIC: &str = "orders";
const EXPIRY_MS: &str = "2000";

/// A name server, a master and a slave of group `broker-a`, each on a fixed port (restarts
/// come back on the same address).
fn group(
    bed: &mut Bed,
    master_role: &str,
    flush: &str,
    extra: &[&str],
) -> (String, String, String) {
    let ns_listen = free_port();
    bed.start("namesrv", &["namesrv", "--listen", &ns_listen, "--broker-expiry-ms", EXPIRY_MS]);
    let ns = bed.addr("namesrv");
    for (name, id, role) in [("master", "0", master_role), ("slave", "1", "slave")] {
        let listen = free_port();
        let data = bed.path(name);
        let mut args = vec![
            "broker",
            "--namesrv",
            &ns,
            "--listen",
            &listen,
            "--broker-name",
            "broker-a",
            "--broker-id",
            id,
            "--broker-role",
            role,
            "--data-dir",
            data.to_str().unwrap(),
            "--flush-disk-type",
            flush,
            "--metrics-listen",
            "off",
            "--register-interval-ms",
            "300",
        ];
        args.extend_from_slice(extra);
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        bed.start(name, &args);
    }
    let (master, slave) = (bed.addr("master"), bed.addr("slave"));
    wait_connected(&ns);
    admin(&ns, &format!("topic create --topic {TOPIC} --read-queues 4 --write-queues 4")).unwrap();
    // The slave has the topic's config once the route lists it there too.
    wait_for(Duration::from_secs(10), "the topic on the slave", || {
        admin(&slave, &format!("topic status --topic {TOPIC}")).ok()
    });
    (ns, master, slave)
}

/// The cluster listing's row of broker `id`.
fn row(ns: &str, id: u64) -> Option<Value> {
    let list = admin(ns, "cluster list").ok()?;
    list["brokers"].as_array()?.iter().find(|b| b["broker_id"] == id).cloned()
}

/// Waits until the slave reports a live link to its master.
fn wait_connected(ns: &str) {
    wait_for(Duration::from_secs(15), "the slave connected to its master", || {
        row(ns, 1).filter(|b| b["replication_lag"].as_i64().is_some_and(|l| l >= 0))
    });
}

/// The message ids of every message of `TOPIC` stored on the broker at `addr`.
fn stored_ids(addr: &str) -> BTreeSet<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let admin = Admin::new(ClientConfig::new(addr)).unwrap();
    rt.block_on(async {
        let status = admin.topic_status(TOPIC).await.unwrap();
        let mut ids = BTreeSet::new();
        for q in status.queues {
            for offset in q.min_offset..q.max_offset {
                let m = admin.query_message_by_offset(TOPIC, q.queue_id, offset).await.unwrap();
                ids.insert(m.message_id);
            }
        }
        ids
    })
}

/// The route's broker ids of `TOPIC` as a client sees it (broker id per queue).
fn reader_address(ns: &str) -> Option<String> {
    let r = admin(ns, &format!("topic route --topic {TOPIC}")).ok()?;
    let q = r["queues"].as_array()?.first()?.clone();
    Some(q["address"].as_str()?.to_owned())
}

struct Sender {
    rt: tokio::runtime::Runtime,
    producer: Producer,
}

impl Sender {
    fn new(ns: &str) -> Sender {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let config = ClientConfig::new(ns).request_timeout(Duration::from_secs(2));
        let producer =
            Producer::builder(config).topics([TOPIC]).runtime(rt.handle().clone()).build().unwrap();
        rt.block_on(producer.start()).unwrap();
        Sender { rt, producer }
    }

    /// Sends until `stop`, 8 at a time; the ids acknowledged, and the errors' kinds.
    fn send_until(&self, stop: &AtomicBool, body: usize) -> (BTreeSet<String>, Vec<ErrorKind>) {
        self.rt.block_on(async {
            let mut acked = BTreeSet::new();
            let mut errors = Vec::new();
            let mut i = 0usize;
            while !stop.load(Ordering::Acquire) {
                let sends = (0..8).map(|_| {
                    i += 1;
                    let m = Message::builder(TOPIC)
                        .body(vec![b'x'; body])
                        .keys([format!("k{i}")])
                        .build();
                    self.producer.send(m)
                });
                for r in futures_join(sends).await {
                    match r {
                        Ok(receipt) => {
                            acked.insert(receipt.message_id);
                        }
                        Err(e) => {
                            errors.push(e.kind());
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            }
            (acked, errors)
        })
    }
}

async fn futures_join<F: Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futs.collect();
    let mut out = Vec::with_capacity(handles.len());
    for f in handles {
        out.push(f.await);
    }
    out
}

/// Sends from another thread for `run`, calls `during` half-way, and returns what was acked.
fn send_while(
    ns: &str,
    run: Duration,
    body: usize,
    during: impl FnOnce(),
) -> (BTreeSet<String>, Vec<ErrorKind>) {
    let stop = Arc::new(AtomicBool::new(false));
    let ns = ns.to_owned();
    let s = Arc::clone(&stop);
    let sender = std::thread::spawn(move || Sender::new(&ns).send_until(&s, body));
    std::thread::sleep(run / 2);
    during();
    std::thread::sleep(run / 2);
    stop.store(true, Ordering::Release);
    sender.join().unwrap()
}

#[test]
fn sync_master_keeps_every_acked_message_when_the_master_is_killed() {
    let mut bed = Bed::new();
    let (ns, master, slave) = group(&mut bed, "sync_master", "sync", &[]);
    // Mid-stream the slave freezes for a moment and the master dies meanwhile: what the master
    // stored in that moment reached no slave, so it must not have been acknowledged.
    let (acked, errors) = send_while(&ns, Duration::from_secs(3), 512, || {
        bed.signal("slave", "-STOP");
        std::thread::sleep(Duration::from_millis(400));
        bed.kill("master");
        bed.signal("slave", "-CONT");
    });
    assert!(acked.len() > 100, "only {} acked", acked.len());
    eprintln!(
        "acked {}, errors after the kill: {:?}",
        acked.len(),
        errors.iter().take(3).collect::<Vec<_>>()
    );
    // Every acknowledged message is on the slave.
    let on_slave = stored_ids(&slave);
    let missing: Vec<&String> = acked.difference(&on_slave).collect();
    assert!(
        missing.is_empty(),
        "{} acked messages missing on the slave: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    // Clients read from the slave while the master is gone.
    wait_for(Duration::from_secs(10), "the slave as the group's reader", || {
        (reader_address(&ns).as_deref() == Some(slave.as_str())).then_some(())
    });
    let consumed = consume_simple(&ns, "while-gone", &acked);
    assert!(
        acked.is_subset(&consumed),
        "{} of {} acked consumed from the slave",
        acked.intersection(&consumed).count(),
        acked.len()
    );

    // The master comes back: nothing acked lost there either, and the slave converges.
    bed.restart("master");
    wait_connected(&ns);
    let on_master = stored_ids(&master);
    assert!(acked.is_subset(&on_master));
    wait_for(Duration::from_secs(10), "the slave converged", || {
        let (m, s) = (row(&ns, 0)?, row(&ns, 1)?);
        (m["commitlog_max_offset"] == s["commitlog_max_offset"] && s["replication_lag"] == 0)
            .then_some(())
    });
    // The offsets committed on the slave while it served alone are the master's now.
    let progress =
        admin(&master, &format!("consumer progress --group while-gone --topic {TOPIC}")).unwrap();
    assert_eq!(progress["total_lag"], 0, "{progress}");
}

/// A simple consumer of `group` through the name server: receives and acks until it has every
/// id of `want` (or 30 s passed); what it received.
fn consume_simple(ns: &str, group: &str, want: &BTreeSet<String>) -> BTreeSet<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let consumer = SimpleConsumer::builder(ClientConfig::new(ns), group)
        .subscribe(TOPIC, FilterExpression::all())
        .await_duration(Duration::from_secs(2))
        .runtime(rt.handle().clone())
        .build()
        .unwrap();
    rt.block_on(consumer.start()).unwrap();
    let mut got = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !want.is_subset(&got) && Instant::now() < deadline {
        if let Ok(batch) = rt.block_on(consumer.receive(32, Duration::from_secs(30))) {
            for m in batch {
                rt.block_on(consumer.ack(&m)).unwrap();
                got.insert(m.message_id.clone());
            }
        }
    }
    rt.block_on(consumer.shutdown());
    got
}

#[test]
fn async_master_loses_at_most_the_lag_it_reported() {
    let mut bed = Bed::new();
    let (ns, master, slave) = group(&mut bed, "async_master", "async", &[]);
    let sender = Sender::new(&ns);
    // Replicated: sent while the slave runs.
    let first: BTreeSet<String> = (0..200)
        .map(|i| {
            let m = Message::builder(TOPIC).body(vec![b'a'; 1000]).keys([format!("a{i}")]).build();
            sender.rt.block_on(sender.producer.send(m)).unwrap().message_id
        })
        .collect();
    wait_for(Duration::from_secs(10), "the first messages replicated", || {
        (admin(&master, "cluster list").ok()?["brokers"][0]["replication_lag"] == 0).then_some(())
    });
    // The slave freezes; an async master still acknowledges at once: those messages are only
    // on the master, and its reported lag says how many bytes.
    bed.signal("slave", "-STOP");
    let second: BTreeSet<String> = (0..100)
        .map(|i| {
            let m = Message::builder(TOPIC).body(vec![b'b'; 1000]).keys([format!("b{i}")]).build();
            sender.rt.block_on(sender.producer.send(m)).unwrap().message_id
        })
        .collect();
    let lag =
        admin(&master, "cluster list").unwrap()["brokers"][0]["replication_lag"].as_i64().unwrap();
    assert!(lag > 100 * 1000, "lag {lag}");
    bed.kill("master");
    bed.signal("slave", "-CONT");
    let acked: BTreeSet<String> = first.union(&second).cloned().collect();
    let on_slave = stored_ids(&slave);
    let lost: BTreeSet<&String> = acked.difference(&on_slave).collect();
    assert!(first.is_subset(&on_slave), "replicated messages are on the slave");
    // Each lost message is a record of ~1.1 KiB: the lost bytes fit in the reported lag.
    let lost_bytes_at_least = lost.len() as i64 * 1000;
    assert!(
        lost_bytes_at_least <= lag,
        "lost {} messages (>= {lost_bytes_at_least} bytes), lag was {lag}",
        lost.len()
    );
    assert!(!lost.is_empty(), "the slave was frozen: the last messages cannot be there");
    eprintln!(
        "async_master: lag {lag} bytes before the kill, {} acked messages not on the slave",
        lost.len()
    );
}

#[test]
fn a_slave_is_read_only() {
    let mut bed = Bed::new();
    let (ns, _master, slave) = group(&mut bed, "async_master", "async", &[]);
    let err = admin(&slave, "topic create --topic other").unwrap_err();
    assert!(err.contains("slave") && err.contains("read-only"), "{err}");
    let err =
        admin(&slave, &format!("offset reset --group g --topic {TOPIC} --to-time 0")).unwrap_err();
    assert!(err.contains("read-only"), "{err}");
    let resend = format!("message resend --group g --topic {TOPIC} --id 0123456789ABCDEF");
    let err = admin(&slave, &resend).unwrap_err();
    assert!(err.contains("read-only"), "{err}");
    // A send that reaches the slave (a client that ignores the route) is refused.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let answer = rt.block_on(async {
        let mut c = v2::messaging_service_client::MessagingServiceClient::connect(format!(
            "http://{slave}"
        ))
        .await
        .unwrap();
        let msg = v2::Message {
            topic: Some(v2::Resource { name: TOPIC.into(), ..Default::default() }),
            body: b"x".to_vec().into(),
            system_properties: Some(v2::SystemProperties {
                message_id: "01AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
                message_type: v2::MessageType::Normal as i32,
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut req = tonic::Request::new(v2::SendMessageRequest { messages: vec![msg] });
        req.metadata_mut().insert("x-mq-client-id", "test@1".parse().unwrap());
        c.send_message(req).await.unwrap().into_inner()
    });
    let st = answer.status.unwrap();
    assert_eq!(st.code, v2::Code::Forbidden as i32, "{}", st.message);
    assert!(st.message.contains("read-only") && st.message.contains("master"), "{}", st.message);
    // The route sends producers to the master only.
    let sender = Sender::new(&ns);
    let m = Message::builder(TOPIC).body("ok").build();
    sender.rt.block_on(sender.producer.send(m)).unwrap();
}

#[test]
fn sync_master_tells_the_client_when_no_slave_has_the_message() {
    let mut bed = Bed::new();
    let (ns, _master, _slave) =
        group(&mut bed, "sync_master", "async", &["--sync-replica-timeout-ms", "500"]);
    let sender = Sender::new(&ns);
    let send = || {
        let m = Message::builder(TOPIC).body("x").build();
        sender.rt.block_on(sender.producer.send(m))
    };
    send().unwrap();
    // A transaction's half message, sent while the slave confirms.
    admin(
        &ns,
        "topic create --topic tx --read-queues 1 --write-queues 1 --message-type transaction",
    )
    .unwrap();
    let config = ClientConfig::new(&ns).request_timeout(Duration::from_secs(2));
    let tx_producer = Producer::builder(config)
        .topics(["tx"])
        .transaction_checker(Arc::new(Undecided))
        .runtime(sender.rt.handle().clone())
        .build()
        .unwrap();
    sender.rt.block_on(tx_producer.start()).unwrap();
    let mut tx = tx_producer.begin_transaction().unwrap();
    sender.rt.block_on(tx.send(Message::builder("tx").body("half").build())).unwrap();

    // A frozen slave never confirms: a distinct failure, not a silent success, for the commit
    // of a transaction (the committed message is a new write) as for a send.
    bed.signal("slave", "-STOP");
    let err = sender.rt.block_on(tx.commit()).unwrap_err();
    assert!(err.message().contains("no slave confirmed"), "{err}");
    assert_eq!(err.status_code(), Some(v2::Code::SlavePersistenceTimeout as i32), "{err}");
    let err = send().unwrap_err();
    assert!(err.message().contains("no slave confirmed"), "{err}");
    assert_eq!(err.status_code(), Some(v2::Code::SlavePersistenceTimeout as i32), "{err}");
    // Silent for 3 s (as behind a partition, where the connection stays open), it is dropped:
    // refused at once, as with no slave, instead of each send waiting out the timeout.
    wait_for(Duration::from_secs(8), "the master dropping the silent slave", || {
        let e = send().err()?;
        (e.status_code() == Some(v2::Code::HaNotAvailable as i32)).then_some(())
    });
    bed.signal("slave", "-CONT");
    wait_for(Duration::from_secs(10), "the slave back", || send().ok());
    // No slave at all: refused at once.
    bed.kill("slave");
    wait_for(Duration::from_secs(10), "the master noticing", || {
        let e = send().err()?;
        (e.status_code() == Some(v2::Code::HaNotAvailable as i32)).then_some(())
    });
}

/// A checker that never decides (the test's transaction is ended by its producer).
struct Undecided;

#[async_trait::async_trait]
impl TransactionChecker for Undecided {
    async fn check(&self, _: MessageView) -> TransactionResolution {
        TransactionResolution::Unknown
    }
}

/// A push consumer's listener that records every message id.
struct Collect(std::sync::Mutex<BTreeSet<String>>);

#[async_trait::async_trait]
impl MessageListener for Collect {
    async fn consume(&self, m: MessageView) -> ConsumeResult {
        self.0.lock().unwrap().insert(m.message_id);
        ConsumeResult::Success
    }
}

#[test]
fn consumers_read_from_the_slave_while_the_master_is_gone() {
    let mut bed = Bed::new();
    let (ns, master, slave) = group(&mut bed, "async_master", "async", &[]);
    let sender = Sender::new(&ns);
    let sent: BTreeSet<String> = (0..120)
        .map(|i| {
            let m = Message::builder(TOPIC).body(format!("m{i}")).build();
            sender.rt.block_on(sender.producer.send(m)).unwrap().message_id
        })
        .collect();
    wait_for(Duration::from_secs(10), "replicated", || {
        (admin(&master, "cluster list").ok()?["brokers"][0]["replication_lag"] == 0).then_some(())
    });
    bed.kill("master");
    wait_for(Duration::from_secs(10), "the slave as the group's reader", || {
        (reader_address(&ns).as_deref() == Some(slave.as_str())).then_some(())
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = ClientConfig::new(ns.clone());

    // Simple.
    assert!(sent.is_subset(&consume_simple(&ns, "simple", &sent)));

    // Push.
    let got = Arc::new(Collect(std::sync::Mutex::new(BTreeSet::new())));
    let push = PushConsumer::builder(config.clone(), "push")
        .subscribe(TOPIC, FilterExpression::all())
        .listener(Arc::clone(&got) as Arc<dyn MessageListener>)
        .runtime(rt.handle().clone())
        .build()
        .unwrap();
    rt.block_on(push.start()).unwrap();
    wait_for(Duration::from_secs(30), "the push consumer got everything", || {
        sent.is_subset(&got.0.lock().unwrap()).then_some(())
    });
    rt.block_on(push.shutdown());

    // Pull (queues assigned by the broker, offsets committed there).
    let pull = PullConsumer::builder(config, "pull")
        .subscribe(TOPIC, FilterExpression::all())
        .runtime(rt.handle().clone())
        .build()
        .unwrap();
    rt.block_on(pull.start()).unwrap();
    let mut pulled = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sent.is_subset(&pulled) && Instant::now() < deadline {
        for m in rt.block_on(pull.poll(Duration::from_secs(2))).unwrap_or_default() {
            pulled.insert(m.message_id);
        }
    }
    assert!(
        sent.is_subset(&pulled),
        "{} of {} pulled",
        sent.intersection(&pulled).count(),
        sent.len()
    );
    rt.block_on(pull.commit()).unwrap();
    rt.block_on(pull.shutdown());

    // The master returns and takes the offsets committed on the slave.
    bed.restart("master");
    wait_connected(&ns);
    for group in ["simple", "push", "pull"] {
        let p = wait_for(Duration::from_secs(10), "the offsets on the master", || {
            let p = admin(&master, &format!("consumer progress --group {group} --topic {TOPIC}"))
                .ok()?;
            (p["total_lag"] == 0).then_some(p)
        });
        assert_eq!(p["total_lag"], 0, "{group}: {p}");
    }
}

#[test]
fn a_slave_far_behind_catches_up_and_a_diverged_one_is_cut() {
    let mut bed = Bed::new();
    // Small segments, so "far behind" is many of them.
    let config = bed.path("small-segments.toml");
    std::fs::write(
        &config,
        "[broker]\nmax_body_size = 16384\n[store]\nsegment_size = 262144\nmax_message_size = 81920\n",
    )
    .unwrap();
    let cfg = config.to_str().unwrap().to_owned();
    let (ns, master, slave) = group(&mut bed, "async_master", "async", &["--config", &cfg]);
    let send = |prefix: &str, n: usize| {
        let sender = Sender::new(&ns);
        for i in 0..n {
            let m = Message::builder(TOPIC)
                .body(vec![b'z'; 1024])
                .keys([format!("{prefix}{i}")])
                .build();
            sender.rt.block_on(sender.producer.send(m)).unwrap();
        }
    };
    let converged = |what: &str| {
        wait_for(Duration::from_secs(30), what, || {
            let (m, s) = (row(&ns, 0)?, row(&ns, 1)?);
            (m["commitlog_max_offset"] == s["commitlog_max_offset"] && s["replication_lag"] == 0)
                .then_some(())
        });
    };

    // The slave is down while the master writes a dozen segments.
    bed.stop("slave");
    send("a", 3000);
    let end = row(&ns, 0).unwrap()["commitlog_max_offset"].as_u64().unwrap();
    assert!(end > 10 * 262_144, "{end}");
    bed.restart("slave");
    converged("the slave caught up");
    assert_eq!(stored_ids(&slave), stored_ids(&master));

    // The master loses the tail of its log (as an OS crash under async flush can), and writes
    // other messages in its place; the slave, down meanwhile, still has the old tail.
    let found = admin(&master, &format!("message by-key --topic {TOPIC} --key a2500")).unwrap();
    let cut = found["messages"][0]["commitlog_offset"].as_u64().unwrap();
    bed.stop("slave");
    bed.stop("master");
    orbitmq_core::storage::replica::truncate_log(&bed.path("master"), 262_144, cut).unwrap();
    bed.restart("master");
    send("b", 300);
    bed.restart("slave");
    converged("the slave cut its diverged tail and caught up");
    let (on_master, on_slave) = (stored_ids(&master), stored_ids(&slave));
    assert_eq!(on_slave, on_master);
    assert_eq!(on_master.len(), 2500 + 300);
    let lost = admin(&slave, &format!("message by-key --topic {TOPIC} --key a2700")).unwrap();
    assert_eq!(lost["messages"].as_array().unwrap().len(), 0, "{lost}");
    let log = std::fs::read_to_string(bed.path("slave.log")).unwrap();
    assert!(log.contains("diverged"), "the slave says why it cut its log");
}

#[test]
fn a_producer_sends_again_soon_after_its_master_returns() {
    let mut bed = Bed::new();
    let (ns, master, slave) = group(&mut bed, "async_master", "async", &[]);
    let sender = Sender::new(&ns);
    let send = || {
        let m = Message::builder(TOPIC).body("x").build();
        sender.rt.block_on(sender.producer.send(m))
    };
    send().unwrap();
    bed.kill("master");
    wait_for(Duration::from_secs(10), "the slave as the group's reader", || {
        (reader_address(&ns).as_deref() == Some(slave.as_str())).then_some(())
    });
    // The failed send has the route asked again: it has no writable queue now (the slave's
    // are read-only), and the producer says so.
    let err = send().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    std::thread::sleep(Duration::from_millis(1100));
    let err = send().unwrap_err();
    assert!(err.message().contains("no writable queue"), "{err}");
    bed.restart("master");
    wait_for(Duration::from_secs(10), "the master back in the route", || {
        (reader_address(&ns).as_deref() == Some(master.as_str())).then_some(())
    });
    // Its route is asked again at most a second after it was found unusable, not at the next
    // periodic refresh (30 s).
    wait_for(Duration::from_secs(5), "a send to the returned master", || send().ok());
}

/// A CA and a certificate it signed for 127.0.0.1 and localhost, in `dir`: what every server
/// of a TLS cluster serves; their paths as strings.
fn cluster_certificates(dir: &std::path::Path) -> [String; 3] {
    let (ca, cert, key) = common::certificates(dir, &["127.0.0.1", "localhost"]);
    [ca, cert, key].map(|p| p.to_str().unwrap().to_owned())
}

/// Every server with `--tls required` (plaintext connections closed): the brokers register
/// with the name server, the name server creates a topic on the master, the slave replicates
/// and a `sync_master` acknowledges, all over TLS. The master and the name server verify their
/// peers against the cluster's CA (`--peer-tls-ca`); the slave, given nothing, takes TLS from
/// its own `--tls required` (`--peer-tls auto`). A broker told `--peer-tls off` cannot
/// register, and its log says why; nor can one verifying against another CA.
#[test]
fn servers_requiring_tls_reach_each_other_over_tls() {
    let mut bed = Bed::new();
    let [ca, cert, key] = cluster_certificates(bed.dir.path());
    let tls = ["--tls", "required", "--tls-cert", &cert, "--tls-key", &key];
    let verify = ["--peer-tls-ca", &ca];
    let ns_listen = free_port();
    let mut args = vec!["namesrv", "--listen", &ns_listen, "--broker-expiry-ms", EXPIRY_MS];
    args.extend(tls.iter().chain(&verify));
    bed.start("namesrv", &args);
    let ns = bed.addr("namesrv");
    let broker = |name: &str, id: &str, role: &str, data: &str, listen: &str| -> Vec<String> {
        [
            "broker",
            "--namesrv",
            &ns,
            "--listen",
            listen,
            "--broker-name",
            name,
            "--broker-id",
            id,
            "--broker-role",
            role,
            "--data-dir",
            data,
            "--metrics-listen",
            "off",
            "--register-interval-ms",
            "300",
        ]
        .iter()
        .chain(&tls)
        .map(|s| (*s).to_owned())
        .collect()
    };
    let (master_data, slave_data) = (bed.path("master"), bed.path("slave"));
    let mut master =
        broker("broker-a", "0", "sync_master", master_data.to_str().unwrap(), "127.0.0.1:0");
    master.extend(verify.iter().map(|s| (*s).to_owned()));
    let slave = broker("broker-a", "1", "slave", slave_data.to_str().unwrap(), "127.0.0.1:0");
    for (name, args) in [("master", master), ("slave", slave)] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        bed.start(name, &args);
    }

    let admin_tls = |cmd: &str| admin(&ns, &format!("--tls-ca {ca} {cmd}"));
    wait_for(Duration::from_secs(15), "the slave connected to its master over TLS", || {
        let list = admin_tls("cluster list").ok()?;
        let slave = list["brokers"].as_array()?.iter().find(|b| b["broker_id"] == 1)?.clone();
        slave["replication_lag"].as_i64().filter(|l| *l >= 0)
    });
    admin_tls(&format!("topic create --topic {TOPIC} --read-queues 2 --write-queues 2")).unwrap();

    // A sync_master acknowledges only once the slave confirmed, over TLS.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = ClientConfig::new(&ns)
        .tls(orbitmq_core::tls::ClientTls::Ca(ca.clone().into()))
        .request_timeout(Duration::from_secs(5));
    let producer =
        Producer::builder(config).topics([TOPIC]).runtime(rt.handle().clone()).build().unwrap();
    rt.block_on(producer.start()).unwrap();
    for i in 0..5 {
        let m = Message::builder(TOPIC).body(format!("over tls {i}")).build();
        rt.block_on(producer.send(m)).unwrap();
    }
    rt.block_on(producer.shutdown());

    // Plaintext to its peers, a broker cannot register; its log names the flag that fixes it.
    let plain_data = bed.path("plain");
    let mut plain =
        broker("broker-b", "0", "async_master", plain_data.to_str().unwrap(), "127.0.0.1:0");
    plain.extend(["--peer-tls".to_owned(), "off".to_owned()]);
    let plain: Vec<&str> = plain.iter().map(String::as_str).collect();
    bed.start("plain", &plain);
    let log = bed.path("plain.log");
    wait_for(Duration::from_secs(10), "the plaintext broker's registration failure", || {
        let log = std::fs::read_to_string(&log).ok()?;
        (log.contains("cannot register") && log.contains("--peer-tls on")).then_some(())
    });

    // Verifying against another CA, a broker refuses the name server's certificate.
    let other = bed.path("other-ca");
    std::fs::create_dir(&other).unwrap();
    let [other_ca, _, _] = cluster_certificates(&other);
    let wrong_data = bed.path("wrong");
    let mut wrong =
        broker("broker-c", "0", "async_master", wrong_data.to_str().unwrap(), "127.0.0.1:0");
    wrong.extend(["--peer-tls-ca".to_owned(), other_ca]);
    let wrong: Vec<&str> = wrong.iter().map(String::as_str).collect();
    bed.start("wrong", &wrong);
    let log = bed.path("wrong.log");
    wait_for(Duration::from_secs(10), "the registration failure against another CA", || {
        let log = std::fs::read_to_string(&log).ok()?;
        (log.contains("cannot register") && log.contains("invalid peer certificate")).then_some(())
    });
    let list = admin_tls("cluster list").unwrap();
    let names: BTreeSet<&str> = list["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["broker_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, BTreeSet::from(["broker-a"]), "{list}");
}
