//! The `orbitmq` binary itself: `bench store` runs through the real engine and reports JSON.
#![allow(clippy::unwrap_used)]

use std::process::Command;

/// A successful run's last stdout line, as JSON (the bench commands' result line).
fn result_json(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

fn orbitmq() -> Command {
    Command::new(env!("CARGO_BIN_EXE_orbitmq"))
}

#[test]
fn bench_store_appends_everything_and_reports_one_json_line() {
    let dir = tempfile::tempdir().unwrap();
    for flush in ["async", "sync"] {
        let data = dir.path().join(flush);
        let out = orbitmq()
            .args(["bench", "store", "--size", "100", "--count", "3000", "--batch", "7"])
            .args(["--segment-size", "65536", "--flush", flush, "--dir"])
            .arg(&data)
            .output()
            .unwrap();
        let v = result_json(&out);
        assert_eq!(v["bench"], "store");
        assert_eq!(v["flush"], flush);
        assert_eq!(v["size"], 100);
        assert_eq!(v["msgs"], 3000);
        assert!(v["msgs_per_sec"].as_f64().unwrap() > 0.0);
        assert!(v["mib_per_sec"].as_f64().unwrap() > 0.0);
        assert!(v["p99_us"].as_u64().unwrap() >= v["p50_us"].as_u64().unwrap());
        // The data is really there: ~3000 * 230 bytes over 64 KiB segments.
        let segments = std::fs::read_dir(data.join("commitlog")).unwrap().count();
        assert!(segments >= 9, "{segments} segments");
    }
}

#[test]
fn bad_flags_fail_with_the_reason() {
    let out = orbitmq()
        .args(["bench", "store", "--dir", "/tmp/x", "--flush", "sometimes"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown flush disk type") && err.contains("async or sync"), "{err}");

    let out =
        orbitmq().args(["bench", "store", "--dir", "/tmp/x", "--batch", "0"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be > 0"));
}

#[test]
fn help_teaches_the_commands() {
    let out = orbitmq().args(["bench", "store", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in ["--dir", "--size", "--count", "--flush", "--batch", "--inflight"] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
    let out = orbitmq().args(["bench", "produce", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for text in ["--message-type", "--message-groups", "--delay-ms", "Examples:", "fifo", "delay"] {
        assert!(help.contains(text), "{text} missing from:\n{help}");
    }
    let out = orbitmq().args(["bench", "consume", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for text in ["--fifo", "Examples:", "lateness_p99_ms"] {
        assert!(help.contains(text), "{text} missing from:\n{help}");
    }
}

#[test]
fn type_flags_of_another_type_are_refused() {
    for args in [&["--message-groups", "8"][..], &["--message-type", "fifo", "--delay-ms", "5"]] {
        let out = orbitmq()
            .args(["bench", "produce", "--endpoints", "127.0.0.1:1"])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("only applies to --message-type"), "{err}");
    }
}

#[test]
fn bench_produce_and_consume_against_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = orbitmq_tests::process::ServerProcess::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_orbitmq")),
        dir.path(),
        &[],
        None,
    );
    let addr = server.addr.to_string();
    let out = orbitmq()
        .args(["bench", "produce", "--endpoints", &addr, "--topic", "bp", "--count", "700"])
        .args(["--batch", "3", "--inflight", "8", "--size", "64"])
        .output()
        .unwrap();
    let v = result_json(&out);
    assert_eq!((v["bench"].as_str(), v["msgs"].as_u64()), (Some("produce"), Some(700)));
    // The server really holds them: the queues' end offsets add up to 700.
    let status = orbitmq()
        .args(["admin", "--endpoints", &addr, "topic", "status", "--topic", "bp", "--json"])
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let total: u64 = status["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["max_offset"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 700);
    // And bench consume takes them all back (pop + ack).
    let out = orbitmq()
        .args(["bench", "consume", "--endpoints", &addr, "--topic", "bp", "--group", "bc"])
        .args(["--count", "700", "--receivers", "2"])
        .output()
        .unwrap();
    let v = result_json(&out);
    assert_eq!((v["bench"].as_str(), v["msgs"].as_u64()), (Some("consume"), Some(700)));
}

fn run_server(dir: &std::path::Path) -> orbitmq_tests::process::ServerProcess {
    orbitmq_tests::process::ServerProcess::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_orbitmq")),
        dir,
        &[],
        None,
    )
}

#[test]
fn bench_fifo_produce_and_consume_with_a_fifo_group() {
    let dir = tempfile::tempdir().unwrap();
    let server = run_server(dir.path());
    let addr = server.addr.to_string();
    let out = orbitmq()
        .args(["bench", "produce", "--endpoints", &addr, "--topic", "bf", "--count", "500"])
        .args(["--batch", "4", "--inflight", "8", "--size", "64"])
        .args(["--message-type", "fifo", "--message-groups", "5"])
        .output()
        .unwrap();
    let v = result_json(&out);
    assert_eq!(v["msgs"], 500);
    assert_eq!((v["message_type"].as_str(), v["message_groups"].as_u64()), (Some("fifo"), Some(5)));
    // Five groups: each keeps one queue, so at most five queues hold messages.
    let status = orbitmq()
        .args(["admin", "--endpoints", &addr, "topic", "status", "--topic", "bf", "--json"])
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let used = status["queues"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["max_offset"].as_u64().unwrap() > 0)
        .count();
    assert!((1..=5).contains(&used), "{status}");

    let out = orbitmq()
        .args(["bench", "consume", "--endpoints", &addr, "--topic", "bf", "--group", "bf-c"])
        .args(["--count", "500", "--receivers", "4", "--fifo"])
        .output()
        .unwrap();
    let v = result_json(&out);
    assert_eq!((v["msgs"].as_u64(), v["fifo"].as_bool()), (Some(500), Some(true)));
    // The bench created the group as FIFO.
    let groups = orbitmq()
        .args(["admin", "--endpoints", &addr, "group", "list", "--json"])
        .output()
        .unwrap();
    let groups: serde_json::Value = serde_json::from_slice(&groups.stdout).unwrap();
    let g = groups["groups"].as_array().unwrap().iter().find(|g| g["name"] == "bf-c").unwrap();
    assert_eq!(g["fifo"], true);

    // An existing group that is not FIFO is refused, not changed.
    let out = orbitmq()
        .args(["admin", "--endpoints", &addr, "group", "create", "--group", "plain"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = orbitmq()
        .args(["bench", "consume", "--endpoints", &addr, "--topic", "bf", "--group", "plain"])
        .args(["--count", "1", "--fifo"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a FIFO group"), "{err}");
}

#[test]
fn bench_delay_messages_report_their_lateness() {
    let dir = tempfile::tempdir().unwrap();
    let server = run_server(dir.path());
    let addr = server.addr.to_string();
    let sent_at = std::time::Instant::now();
    let out = orbitmq()
        .args(["bench", "produce", "--endpoints", &addr, "--topic", "bd", "--count", "300"])
        .args(["--batch", "10", "--inflight", "4", "--size", "64"])
        .args(["--message-type", "delay", "--delay-ms", "800"])
        .output()
        .unwrap();
    let v = result_json(&out);
    assert_eq!((v["message_type"].as_str(), v["delay_ms"].as_u64()), (Some("delay"), Some(800)));
    let out = orbitmq()
        .args(["bench", "consume", "--endpoints", &addr, "--topic", "bd", "--group", "bd-c"])
        .args(["--count", "300", "--receivers", "2"])
        .output()
        .unwrap();
    let v = result_json(&out);
    assert_eq!((v["msgs"].as_u64(), v["delay_msgs"].as_u64()), (Some(300), Some(300)));
    // Not delivered before they were due.
    assert!(sent_at.elapsed() >= std::time::Duration::from_millis(800));
    let (p50, p99) =
        (v["lateness_p50_ms"].as_i64().unwrap(), v["lateness_p99_ms"].as_i64().unwrap());
    assert!(0 <= p50 && p50 <= p99, "{v}");
    assert!(v["receive_lateness_p99_ms"].as_i64().unwrap() >= p50, "{v}");
}

/// The result line of `orbitmq bench args…` against `addr`, checked for the figures every
/// SDK bench reports: `msgs` equals `count`, a rate above zero, p50 <= p99.
fn sdk_bench(addr: &str, args: &[&str], count: u64) -> serde_json::Value {
    let out = orbitmq().arg("bench").args(args).args(["--endpoints", addr]).output().unwrap();
    let v = result_json(&out);
    assert_eq!(v["msgs"].as_u64(), Some(count), "{v}");
    assert!(v["msgs_per_sec"].as_f64().unwrap() > 0.0, "{v}");
    // A request over loopback takes well over 10 µs.
    let (p50, p99) = (v["p50_us"].as_u64().unwrap(), v["p99_us"].as_u64().unwrap());
    assert!(10 < p50 && p50 <= p99, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_benches_produce_consume_and_e2e_against_a_standalone_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = run_server(dir.path());
    let addr = server.addr.to_string();
    let v =
        sdk_bench(&addr, &["produce", "--topic", "sb", "--count", "2000", "--batch", "32"], 2000);
    assert_eq!((v["bench"].as_str(), v["batch"].as_u64()), (Some("produce"), Some(32)));
    assert!(v["mib_per_sec"].as_f64().unwrap() > 0.0, "{v}");
    let v =
        sdk_bench(&addr, &["consume", "--topic", "sb", "--group", "sb-c", "--count", "2000"], 2000);
    assert_eq!(v["bench"], "consume");
    // Every receive returned something: 2000 messages in at least 2000 / 32 receives.
    assert!(v["receives"].as_u64().unwrap() >= 63, "{v}");
    let v = sdk_bench(&addr, &["e2e", "--topic", "se", "--count", "500", "--rate", "2000"], 500);
    assert_eq!((v["bench"].as_str(), v["stale_msgs"].as_u64()), (Some("e2e"), Some(0)));
    let (p99, p999, max) = (
        v["p99_us"].as_u64().unwrap(),
        v["p999_us"].as_u64().unwrap(),
        v["max_us"].as_u64().unwrap(),
    );
    assert!(p99 <= p999 && p999 <= max && max > 0, "{v}");
    // A second run on the same topic with a new group wades through the first run's messages:
    // they are counted as stale, not as this run's.
    let v = sdk_bench(&addr, &["e2e", "--topic", "se", "--group", "se-2", "--count", "100"], 100);
    let stale = v["stale_msgs"].as_u64().unwrap();
    assert!((1..=500).contains(&stale), "{v}");
    assert!(server.stop().success());
}

/// Runs `orbitmq args…` and checks it failed as a usage error (clap's exit code 2), not a
/// panic (101), naming `flag`; returns stderr.
fn usage_error(args: &[&str], flag: &str) -> String {
    let out = orbitmq().args(args).env("RUST_BACKTRACE", "0").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert!(err.contains(&format!("for '{flag} ")), "{args:?} does not name {flag}: {err}");
    assert!(out.stdout.is_empty(), "{args:?}");
    err
}

#[test]
fn bad_times_are_usage_errors_that_say_what_a_time_is() {
    let bad_times = [
        // Non-ASCII where a digit belongs: the old parser sliced through the 'é' and panicked.
        "2026-11-25T10:00:0\u{e9}",
        "2026-11-25T10:00:00\u{e9}",
        "\u{e9}\u{e9}\u{e9}\u{e9}-11-25T10:00:00Z",
        "2026-11-25T10:00:00+01:0\u{e9}",
        // Truncated.
        "2026-11-25T10:0",
        "2026-11-25T",
        "2026-11-25T10:00:00",
        // Out of range.
        "99999999999999999999",
        "253402300800000",
        "10000-01-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-11-25T25:00:00Z",
        // Control characters.
        "2026-11-25T10:00:00Z\u{7}",
    ];
    for time in bad_times {
        for (cmd, flag) in [
            (&["offset", "reset", "--group", "g", "--topic", "t", "--to-time"][..], "--to-time"),
            (&["message", "by-key", "--topic", "t", "--key", "k", "--begin-ms"][..], "--begin-ms"),
            (&["message", "by-key", "--topic", "t", "--key", "k", "--end-ms"][..], "--end-ms"),
        ] {
            let mut args = vec!["admin", "--endpoints", "127.0.0.1:1"];
            args.extend_from_slice(cmd);
            args.push(time);
            let err = usage_error(&args, flag);
            // The expected forms, so the operator can fix the value.
            for form in ["ms since the epoch", "RFC 3339", "2026-11-25T10:00:00Z", "`now`"] {
                if time.bytes().all(|b| b.is_ascii_digit()) {
                    assert!(err.contains("out of range"), "{time:?}: {err}");
                } else {
                    assert!(err.contains(form), "{time:?}: {form} missing from {err}");
                }
            }
        }
    }
}

#[test]
fn bad_durations_and_counts_are_usage_errors() {
    let produce = ["bench", "produce", "--endpoints", "127.0.0.1:1", "--message-type", "delay"];
    for delay in ["-1", "1\u{e9}", "1s", "99999999999999999999", "9223372036854775807"] {
        let mut args = produce.to_vec();
        let flag = format!("--delay-ms={delay}");
        args.push(&flag);
        usage_error(&args, "--delay-ms");
    }
    for (flag, value) in [("--offset", "-1"), ("--offset", "1\u{e9}"), ("--queue", "4294967296")] {
        let mut args = vec!["admin", "message", "by-offset", "--topic", "t"];
        args.extend(if flag == "--offset" { ["--queue", "0"] } else { ["--offset", "0"] });
        let flag_value = format!("{flag}={value}");
        args.push(&flag_value);
        usage_error(&args, flag);
    }
}
