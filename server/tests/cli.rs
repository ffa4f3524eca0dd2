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
