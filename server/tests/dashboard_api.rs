//! The console's HTTP API (docs/DASHBOARD.md) against the real binary: `orbitmq standalone`
//! (and a name server) with `--dashboard-listen 127.0.0.1:0`, every endpoint's answer checked
//! against what was really done, bad input answered with a clear 4xx JSON error (never a 500),
//! and credentials required when the server has them.
//!
//! The requests go over a plain `TcpStream` (HTTP/1.1, `Connection: close`): nothing in the
//! dependency tree is an HTTP/1 client, and these tests need no more than that.
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use orbitmq_core::client::{ClientConfig, FilterExpression, SimpleConsumer};
use orbitmq_core::protocol::auth::{authorization, date_time};
use orbitmq_tests::process::ServerProcess;
use serde_json::{Value, json};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_orbitmq"))
}

/// An answer: status, headers (names lowercased), body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        assert_eq!(self.header("content-type"), Some("application/json"), "{}", self.text());
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request; `body` is sent as JSON when given.
fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (k, v) in headers {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    if let Some(b) = body {
        let _ = write!(head, "content-length: {}\r\n", b.len());
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // A body the server refuses may be cut short by its answer: written on the side.
    let writer = body.map(|b| {
        let (mut w, b) = (s.try_clone().unwrap(), b.to_vec());
        std::thread::spawn(move || {
            let _ = w.write_all(&b);
        })
    });
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    if let Some(w) = writer {
        w.join().unwrap();
    }
    parse(&raw)
}

fn parse(raw: &[u8]) -> Reply {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("no end of headers");
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| k == "transfer-encoding" && v == "chunked") {
        body = unchunk(&body);
    }
    Reply { status, headers, body }
}

fn unchunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&data[..eol]).unwrap().trim(), 16);
        let size = size.unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 4 + size..];
    }
}

const JSON: (&str, &str) = ("content-type", "application/json");

/// A standalone server with its console on a free port.
struct Console {
    server: ServerProcess,
    http: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Console {
    fn start(extra: &[&str]) -> Console {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec!["--dashboard-listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let server = ServerProcess::start(bin(), &dir.path().join("data"), &args, None);
        let http = server.dashboard.expect("no `console on` line");
        Console { server, http, _dir: dir }
    }

    fn get(&self, path: &str) -> Reply {
        call(self.http, "GET", path, &[], None)
    }

    fn send(&self, method: &str, path: &str, body: &Value) -> Reply {
        call(self.http, method, path, &[JSON], Some(body.to_string().as_bytes()))
    }

    /// `GET path`: 200 and its JSON.
    fn ok(&self, path: &str) -> Value {
        let r = self.get(path);
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.json()
    }

    /// `method path body`: `status` and its JSON.
    fn answer(&self, method: &str, path: &str, body: &Value, status: u16) -> Value {
        let r = self.send(method, path, body);
        assert_eq!(r.status, status, "{method} {path} {body}: {}", r.text());
        r.json()
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if self.server.child.try_wait().ok().flatten().is_none() {
            assert!(self.server.stop().success() || std::thread::panicking());
        }
    }
}

const TOPIC: &str = "dash-orders";
const GROUP: &str = "dash-billing";

#[test]
fn every_endpoint_answers_what_was_done() {
    let c = Console::start(&[]);
    let info = c.ok("/api/info");
    assert_eq!(info["mode"], "standalone", "{info}");
    assert_eq!(info["grpc_address"], c.server.addr.to_string(), "{info}");
    assert_eq!(
        (info["auth_required"].clone(), info["loopback_only"].clone()),
        (json!(false), json!(true))
    );
    assert_eq!(info["listen"], c.http.to_string(), "{info}");

    topics(&c);
    let id = produce_and_query(&c);
    groups_members_and_resend(&c, &id);
    let cluster = c.ok("/api/cluster");
    assert_eq!(cluster["brokers"].as_array().unwrap().len(), 1, "{cluster}");
    assert_eq!(cluster["brokers"][0]["address"], c.server.addr.to_string(), "{cluster}");
    // The sampler adds a point every 2 s: those after the sends and receives above show them.
    let moved = |m: &Value, field: &str| {
        m["points"].as_array().unwrap().iter().any(|p| p[field].as_f64().unwrap() > 0.0)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let m = c.ok("/api/metrics");
        if (moved(&m, "in_per_s") && moved(&m, "out_per_s")) || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(metrics["interval_ms"], 2000, "{metrics}");
    assert!(moved(&metrics, "in_per_s") && moved(&metrics, "out_per_s"), "{metrics}");
    let p = &metrics["points"][0];
    for field in ["t", "in_per_s", "out_per_s", "disk_bytes"] {
        assert!(p[field].is_number(), "{field}: {metrics}");
    }
    assert!(p["disk_bytes"].as_u64().unwrap() > 0, "{metrics}");
    pages(&c);
}

fn topics(c: &Console) {
    let body = json!({"name": TOPIC, "read_queues": 2, "write_queues": 2});
    let made = c.answer("POST", "/api/topics", &body, 201);
    assert_eq!(
        made,
        json!({"name": TOPIC, "read_queues": 2, "write_queues": 2, "perm": 6, "message_type": "NORMAL"})
    );
    let again = c.send("POST", "/api/topics", &body);
    assert_eq!(again.status, 400, "{}", again.text());
    let listed = c.ok("/api/topics");
    assert!(listed.as_array().unwrap().iter().any(|t| t["name"] == TOPIC), "{listed}");
    let changed = c.answer(
        "PUT",
        &format!("/api/topics/{TOPIC}"),
        &json!({"read_queues": 4, "write_queues": 4}),
        200,
    );
    assert_eq!(
        (changed["read_queues"].clone(), changed["perm"].clone()),
        (json!(4), json!(6)),
        "{changed}"
    );
    assert_eq!(c.ok(&format!("/api/topics/{TOPIC}"))["write_queues"], 4);
    let status = c.ok(&format!("/api/topics/{TOPIC}/status"));
    assert_eq!(status["queues"].as_array().unwrap().len(), 4, "{status}");
    let route = c.ok(&format!("/api/topics/{TOPIC}/route"));
    assert_eq!(route["queues"][0]["address"], c.server.addr.to_string(), "{route}");
}

/// Produces two messages (one with a body over the 4 KiB preview); returns the first's id.
fn produce_and_query(c: &Console) -> String {
    let m = json!({"topic": TOPIC, "body": "hello console", "tag": "TagA", "keys": ["k1"], "properties": {"origin": "test"}});
    let sent = c.answer("POST", "/api/produce", &m, 200);
    let id = sent["message_id"].as_str().unwrap().to_owned();
    assert_eq!(sent["topic"], TOPIC, "{sent}");
    let (queue, offset) = (sent["queue_id"].as_u64().unwrap(), sent["offset"].as_u64().unwrap());

    let found = c.ok(&format!("/api/messages/by-key?topic={TOPIC}&key=k1"));
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    let msg = &found[0];
    assert_eq!(msg["message_id"], id.as_str());
    assert_eq!(
        (msg["tag"].clone(), msg["properties"]["origin"].clone()),
        (json!("TagA"), json!("test"))
    );
    assert_eq!(
        msg["body"],
        json!({"size": 13, "text": "hello console", "hex": null, "truncated": false})
    );
    assert_eq!(c.ok(&format!("/api/messages/by-id/{id}"))[0]["queue_offset"], offset);
    assert_eq!(msg["broker_name"], "broker-a", "{msg}");
    let at = format!("topic={TOPIC}&queue={queue}&offset={offset}");
    assert_eq!(c.ok(&format!("/api/messages/by-offset?{at}"))["message_id"], id.as_str());
    // The broker whose queue it is (as the console's download link names it), or another.
    let mine = c.ok(&format!("/api/messages/by-offset?{at}&broker=broker-a"));
    assert_eq!(mine["message_id"], id.as_str());
    let other = c.get(&format!("/api/messages/body?{at}&broker=broker-b"));
    assert_eq!(other.status, 404, "{}", other.text());
    assert!(other.text().contains("not \\\"broker-b\\\""), "{}", other.text());
    let download = c.get(&format!("/api/messages/body?{at}&broker=broker-a"));
    assert_eq!(download.status, 200);
    assert_eq!(download.body, b"hello console");
    assert_eq!(download.header("content-type"), Some("application/octet-stream"));
    assert!(download.header("content-disposition").unwrap().starts_with("attachment"));

    let big = "é".repeat(3000);
    let sent = c.answer(
        "POST",
        "/api/produce",
        &json!({"topic": TOPIC, "body": big, "keys": ["big"]}),
        200,
    );
    let found = c.ok(&format!("/api/messages/by-key?topic={TOPIC}&key=big"));
    let body = &found[0]["body"];
    assert_eq!(
        (body["size"].clone(), body["truncated"].clone()),
        (json!(6000), json!(true)),
        "{sent}"
    );
    assert_eq!(body["text"].as_str().unwrap().len(), 4096);
    id
}

fn groups_members_and_resend(c: &Console, id: &str) {
    let made =
        c.answer("POST", "/api/groups", &json!({"name": GROUP, "consume_from": "first"}), 201);
    assert_eq!(
        (made["created"].clone(), made["group"]["consume_from"].clone()),
        (json!(true), json!("first"))
    );
    assert!(c.ok("/api/groups").as_array().unwrap().iter().any(|g| g["name"] == GROUP));
    assert_eq!(c.ok(&format!("/api/groups/{GROUP}/members")), json!([]));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let consumer = SimpleConsumer::builder(ClientConfig::new(c.server.addr.to_string()), GROUP)
        .subscribe(TOPIC, FilterExpression::all())
        .await_duration(Duration::from_secs(2))
        .runtime(rt.handle().clone())
        .build()
        .unwrap();
    let receive = |want: usize| {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while got.len() < want && Instant::now() < deadline {
            for m in rt.block_on(consumer.receive(32, Duration::from_secs(30))).unwrap() {
                rt.block_on(consumer.ack(&m)).unwrap();
                got.push(m.message_id.clone());
            }
        }
        got
    };
    assert_eq!(receive(2).len(), 2);
    let progress = c.ok(&format!("/api/groups/{GROUP}/progress?topic={TOPIC}"));
    assert_eq!(
        (progress["total_lag"].clone(), progress["inflight"].clone()),
        (json!(0), json!(0)),
        "{progress}"
    );
    let members = c.ok(&format!("/api/groups/{GROUP}/members"));
    assert_eq!(members.as_array().unwrap().len(), 1, "{members}");
    assert_eq!(members[0]["client_type"], "SIMPLE_CONSUMER", "{members}");
    assert_eq!(members[0]["topics"], json!([TOPIC]), "{members}");

    let resend = json!({"group": GROUP, "topic": TOPIC, "message_id": id});
    assert_eq!(c.answer("POST", "/api/messages/resend", &resend, 200), json!({"resent": true}));
    assert_eq!(receive(1), [id.to_owned()]);

    let reset = c.answer(
        "POST",
        &format!("/api/groups/{GROUP}/reset"),
        &json!({"topic": TOPIC, "timestamp": 0}),
        200,
    );
    assert_eq!(reset.as_array().unwrap().len(), 4, "{reset}");
    assert_eq!(receive(2).len(), 2, "consumed again from the start");
    rt.block_on(consumer.shutdown());
}

fn pages(c: &Console) {
    for path in ["/", "/topics", "/topics/dash-orders", "/groups/dash-billing", "/messages?topic=a"]
    {
        let r = c.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"), "{path}");
    }
    assert_eq!(c.get("/assets/missing.js").status, 404);
}

#[test]
fn bad_input_is_a_clear_4xx_never_a_500() {
    let c = Console::start(&[]);
    c.answer("POST", "/api/topics", &json!({"name": "dash-real"}), 201);
    let raw = |method: &str, path: &str, body: &str| {
        call(c.http, method, path, &[JSON], Some(body.as_bytes()))
    };
    let cases: Vec<(Reply, u16, &str)> = vec![
        (raw("POST", "/api/topics", "{bad"), 400, "JSON"),
        (raw("POST", "/api/topics", "{}"), 400, "name"),
        (raw("POST", "/api/topics", r#"{"name":"x","read_queues":"many"}"#), 400, "read_queues"),
        (raw("POST", "/api/topics", r#"{"name":"x","colour":"red"}"#), 400, "colour"),
        (raw("POST", "/api/topics", r#"{"name":"bad name!"}"#), 400, "bad name!"),
        (call(c.http, "POST", "/api/topics", &[], Some(b"{}")), 400, "Content-Type"),
        (raw("PUT", "/api/topics/dash-real", r#"{"read_queues":-1}"#), 400, "read_queues"),
        (c.get("/api/topics/nope"), 404, "nope"),
        (c.get("/api/topics?system=maybe"), 400, "system"),
        (c.get("/api/messages/by-offset?topic=dash-real&queue=x&offset=1"), 400, "queue"),
        (c.get("/api/messages/by-offset?topic=dash-real&queue=0&offset=-1"), 400, "offset"),
        (c.get("/api/messages/by-offset?queue=0&offset=1"), 400, "topic"),
        (c.get("/api/messages/by-offset?topic=dash-real&queue=0&offset=99"), 404, "offset"),
        (c.get("/api/messages/body?topic=dash-real&queue=0"), 400, "offset"),
        (c.get("/api/messages/by-key?topic=dash-real"), 400, "key"),
        (c.get("/api/messages/by-id/0123456789ABCDEF"), 404, "0123456789ABCDEF"),
        (raw("POST", "/api/groups", r#"{"name":"bad/group"}"#), 400, "bad/group"),
        (raw("POST", "/api/groups", r#"{"name":"g","consume_from":"middle"}"#), 400, "middle"),
        (raw("POST", "/api/groups/g/reset", r#"{"topic":"dash-real"}"#), 400, "timestamp"),
        (raw("POST", "/api/messages/resend", r#"{"group":"g"}"#), 400, "topic"),
        (
            raw(
                "POST",
                "/api/messages/resend",
                r#"{"group":"nobody","topic":"dash-real","message_id":"x"}"#,
            ),
            404,
            "nobody",
        ),
        (raw("POST", "/api/produce", r#"{"topic":"dash-real"}"#), 400, "body"),
        (raw("POST", "/api/produce", r#"{"topic":"bad topic!","body":"x"}"#), 400, "topic"),
        (c.get("/api/nope"), 404, "/api/nope"),
        (c.get("/api"), 404, "/api"),
        (raw("DELETE", "/api/topics", ""), 405, "DELETE"),
        (raw("POST", "/api/info", "{}"), 405, "POST"),
    ];
    for (i, (r, status, word)) in cases.iter().enumerate() {
        assert_eq!(r.status, *status, "case {i}: {}", r.text());
        let e = r.json();
        let message = e["error"]["message"].as_str().unwrap_or_else(|| panic!("case {i}: {e}"));
        assert!(e["error"]["kind"].is_string(), "case {i}: {e}");
        assert!(message.contains(word), "case {i}: {word:?} not in {message:?}");
    }
    // 17 MiB: over the body limit, refused without being read whole.
    let huge = format!(r#"{{"topic":"dash-real","body":"{}"}}"#, "x".repeat(17 << 20));
    let r = raw("POST", "/api/produce", &huge);
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.json()["error"]["kind"], "PayloadTooLarge");
    // The server is still there and nothing was stored.
    let status = c.ok("/api/topics/dash-real/status");
    assert!(status["queues"].as_array().unwrap().iter().all(|q| q["max_offset"] == 0), "{status}");
}

#[test]
fn credentials_are_required_but_for_info_and_the_page() {
    const SECRET: &str = "s3cret-console";
    let c = Console::start(&["--access-key", "ops", "--secret-key", SECRET]);
    assert_eq!(c.ok("/api/info")["auth_required"], true);
    assert_eq!(c.get("/").status, 200);
    let unsigned = c.get("/api/topics");
    assert_eq!(unsigned.status, 401, "{}", unsigned.text());
    assert_eq!(unsigned.json()["error"]["kind"], "Unauthorized");

    let now = date_time(std::time::SystemTime::now());
    let wrong = authorization("ops", "not-the-secret", &now);
    let r = call(
        c.http,
        "GET",
        "/api/topics",
        &[("x-mq-date-time", &now), ("authorization", &wrong)],
        None,
    );
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("signature"));

    let signed = authorization("ops", SECRET, &now);
    let headers = [("x-mq-date-time", now.as_str()), ("authorization", signed.as_str()), JSON];
    let r = call(c.http, "GET", "/api/topics", &headers, None);
    assert_eq!(r.status, 200, "{}", r.text());
    // The API's own admin calls are signed with the server's keys.
    let body = json!({"name": "dash-signed"}).to_string();
    let r = call(c.http, "POST", "/api/topics", &headers, Some(body.as_bytes()));
    assert_eq!(r.status, 201, "{}", r.text());
}

#[test]
fn a_taken_port_fails_the_start_and_the_flag_is_explained() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin())
        .args(["standalone", "--listen", "127.0.0.1:0", "--metrics-listen", "off"])
        .args(["--dashboard-listen", &addr, "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&addr) && err.contains("--dashboard-listen"), "{err}");

    for cmd in ["standalone", "broker", "namesrv"] {
        let out = std::process::Command::new(bin()).args([cmd, "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("--dashboard-listen"), "{cmd}: {help}");
    }
    let out = std::process::Command::new(bin()).args(["standalone", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("127.0.0.1:8080"));
}

#[test]
fn a_name_servers_console_sees_the_cluster_and_a_brokers_itself() {
    let dir = tempfile::tempdir().unwrap();
    let ns = ServerProcess::run(
        bin(),
        &["namesrv", "--listen", "127.0.0.1:0", "--dashboard-listen", "127.0.0.1:0"],
        None,
    );
    let http = ns.dashboard.expect("no `console on` line");
    let data = dir.path().join("broker");
    let namesrv = ns.addr.to_string();
    let broker = ServerProcess::run(
        bin(),
        &["broker", "--namesrv", &namesrv, "--listen", "127.0.0.1:0", "--metrics-listen", "off"]
            .into_iter()
            .chain(["--data-dir", data.to_str().unwrap(), "--dashboard-listen", "127.0.0.1:0"])
            .collect::<Vec<_>>(),
        None,
    );
    // A broker given the flag serves its own console.
    let own = broker.dashboard.expect("no `console on` line from the broker");
    let info = call(own, "GET", "/api/info", &[], None).json();
    assert_eq!(
        (info["mode"].clone(), info["grpc_address"].clone()),
        (json!("broker"), json!(broker.addr.to_string()))
    );
    let get = |path: &str| {
        let r = call(http, "GET", path, &[], None);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        r.json()
    };
    assert_eq!(get("/api/info")["mode"], "namesrv");
    let cluster = get("/api/cluster");
    assert_eq!(cluster["brokers"][0]["address"], broker.addr.to_string(), "{cluster}");
    let made = call(http, "POST", "/api/topics", &[JSON], Some(br#"{"name":"dash-cluster"}"#));
    assert_eq!(made.status, 201, "{}", made.text());

    // The name server's chart adds up its brokers' counters (it has none of its own): messages
    // produced through it show as messages in, and the broker's data directory as disk use.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = br#"{"topic":"dash-cluster","body":"counted"}"#;
        let sent = call(http, "POST", "/api/produce", &[JSON], Some(m));
        assert_eq!(sent.status, 200, "{}", sent.text());
        let points = get("/api/metrics")["points"].as_array().unwrap().clone();
        let moved = points.iter().any(|p| p["in_per_s"].as_f64().unwrap() > 0.0);
        if moved && points.last().unwrap()["disk_bytes"].as_u64().unwrap() > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no traffic in the name server's chart: {points:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn orbitmq_dashboard_dir_serves_another_front_end() {
    let dir = tempfile::tempdir().unwrap();
    let dist = dir.path().join("dist");
    std::fs::create_dir_all(dist.join("assets")).unwrap();
    std::fs::write(dist.join("index.html"), "<title>dev console</title>").unwrap();
    std::fs::write(dist.join("assets/app-1234.js"), "console.log(1)").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "not served").unwrap();
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["standalone", "--listen", "127.0.0.1:0", "--metrics-listen", "off"])
        .args(["--dashboard-listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("ORBITMQ_DASHBOARD_DIR", &dist)
        .stderr(std::process::Stdio::null());
    let mut server = ServerProcess::spawn_command(cmd);
    let http = server.dashboard.unwrap();
    for path in ["/", "/groups/g1"] {
        let r = call(http, "GET", path, &[], None);
        assert_eq!((r.status, r.text().as_str()), (200, "<title>dev console</title>"), "{path}");
    }
    let js = call(http, "GET", "/assets/app-1234.js", &[], None);
    assert_eq!(
        (js.status, js.header("content-type")),
        (200, Some("text/javascript; charset=utf-8"))
    );
    assert!(js.header("cache-control").unwrap().contains("immutable"));
    for path in ["/../secret.txt", "/assets/../../secret.txt", "/%2e%2e/secret.txt"] {
        let r = call(http, "GET", path, &[], None);
        assert!(!r.text().contains("not served"), "{path} escaped the directory");
    }
    assert!(server.stop().success());
}
