//! TLS through the real binary: `orbitmq standalone --tls-cert/--tls-key` serves the given
//! certificate, `orbitmq admin --tls --tls-ca` verifies it, `--tls required` refuses a
//! plaintext admin with a clear error, and a bad certificate file stops the start with an
//! error naming it.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use orbitmq_tests::process::ServerProcess;

mod common;

fn orbitmq() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_orbitmq"));
    for var in ["ORBITMQ_ENDPOINTS", "ORBITMQ_TLS", "ORBITMQ_TLS_CERT", "ORBITMQ_TLS_KEY"] {
        c.env_remove(var);
    }
    c.env_remove("ORBITMQ_TLS_CA").env("RUST_LOG", "warn");
    c
}

/// A CA and a server certificate for `localhost` it signed, in `dir`.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    common::certificates(dir, &["localhost"])
}

fn start(dir: &Path, extra: &[&str]) -> ServerProcess {
    let bin = Path::new(env!("CARGO_BIN_EXE_orbitmq"));
    ServerProcess::start(bin, &dir.join("data"), extra, Some(&dir.join("server.log")))
}

fn admin(endpoint: &str, args: &[&str]) -> Output {
    orbitmq().args(["admin", "--endpoints", endpoint]).args(args).output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
}

#[test]
fn admin_verifies_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let (cert_s, key_s) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let mut server = start(dir.path(), &["--tls-cert", cert_s, "--tls-key", key_s]);
    let endpoint = format!("localhost:{}", server.addr.port());
    let ca_s = ca.to_str().unwrap();

    let created = admin(&endpoint, &["--tls-ca", ca_s, "topic", "create", "--topic", "secure"]);
    ok(&created);
    let listed = ok(&admin(&endpoint, &["--tls", "--tls-ca", ca_s, "topic", "list", "--json"]));
    assert!(listed.contains("\"secure\""), "{listed}");
    // `--tls` alone accepts any certificate; optional (the default) still serves plaintext.
    assert!(ok(&admin(&endpoint, &["--tls", "topic", "list"])).contains("secure"));
    assert!(ok(&admin(&endpoint, &["topic", "list"])).contains("secure"));

    // The CA is really checked: the server's certificate is not its own CA.
    let wrong = admin(&endpoint, &["--tls-ca", cert_s, "topic", "list"]);
    assert!(!wrong.status.success());
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(err.contains("certificate") && err.contains("over TLS"), "{err}");
    assert!(server.stop().success(), "{}", log(dir.path()));
    assert!(log(dir.path()).contains("serving the configured certificate"), "{}", log(dir.path()));
}

#[test]
fn required_refuses_plaintext_admin_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), &["--tls", "required"]);
    let endpoint = server.addr.to_string();
    let out = admin(&endpoint, &["topic", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--tls required") && err.contains("with --tls"), "{err}");
    // The self-signed certificate serves a client that accepts any.
    ok(&admin(&endpoint, &["--tls", "topic", "list"]));
    // bench too: produce and consume over TLS, a plaintext produce refused.
    let bench = |args: &[&str]| orbitmq().args(["bench"]).args(args).output().unwrap();
    let produce = ["produce", "--endpoints", &endpoint, "--topic", "bt", "--count", "50"];
    let small = ["--batch", "5", "--inflight", "2", "--size", "16", "--connections", "1"];
    let out = bench(&[&produce[..], &small, &["--tls"]].concat());
    assert!(ok(&out).contains("\"msgs\":50"), "{}", String::from_utf8_lossy(&out.stdout));
    let consume = ["consume", "--endpoints", &endpoint, "--topic", "bt", "--count", "50"];
    let out = bench(&[&consume[..], &["--group", "bt", "--receivers", "1", "--tls"]].concat());
    assert!(ok(&out).contains("\"msgs\":50"), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(!bench(&[&produce[..], &small].concat()).status.success());
    assert!(server.stop().success());
    let log = log(dir.path());
    assert!(log.contains("plaintext connection closed") && log.contains("--tls required"), "{log}");
}

#[test]
fn default_start_generates_a_self_signed_certificate_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let mut server = start(dir.path(), &[]);
    let started = t.elapsed();
    let endpoint = server.addr.to_string();
    ok(&admin(&endpoint, &["--tls", "topic", "list"]));
    ok(&admin(&endpoint, &["topic", "list"]));
    assert!(server.stop().success());
    let log = log(dir.path());
    assert!(log.contains("self-signed certificate"), "{log}");
    eprintln!("start to ready: {started:?}");
}

#[test]
fn bad_certificate_files_stop_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = certificates(dir.path());
    let data = dir.path().join("data");
    let run = |args: &[&str]| {
        orbitmq()
            .args(["standalone", "--listen", "127.0.0.1:0", "--dashboard-listen", "off"])
            .args(["--data-dir", data.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
    };
    let missing = dir.path().join("missing.pem");
    let out = run(&["--tls-cert", missing.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("missing.pem"), "{err}");
    // A key where the certificate belongs.
    let out = run(&["--tls-cert", key.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("key.pem") && err.contains("no PEM certificate"),
        "{err}"
    );
    // One without the other.
    let out = run(&["--tls-cert", cert.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("needs --tls-key"), "{err}");
    // The name server resolves its TLS flags the same way.
    let out = orbitmq()
        .args(["namesrv", "--listen", "127.0.0.1:0", "--tls-key", key.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("needs --tls-cert"), "{err}");
}
