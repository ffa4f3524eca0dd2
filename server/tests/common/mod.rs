//! Helpers for the tests that run clusters of real `orbitmq` processes on 127.0.0.1: name
//! servers and brokers started and stopped, `orbitmq admin --json` against any of them, and
//! polling for a condition.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use orbitmq_tests::process::ServerProcess;
use serde_json::Value;

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_orbitmq"))
}

/// `orbitmq admin --endpoints <endpoints> --json <cmd>`: its JSON answer, or its stderr.
pub fn admin(endpoints: &str, cmd: &str) -> Result<Value, String> {
    let out = Command::new(bin())
        .env("RUST_LOG", "warn")
        .env_remove("ORBITMQ_ACCESS_KEY")
        .env_remove("ORBITMQ_SECRET_KEY")
        .args(["admin", "--endpoints", endpoints, "--json"])
        .args(cmd.split_whitespace())
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap())
}

/// Polls `f` every 50 ms until it returns `Some`, for at most `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A process started by [`Bed`], restartable with the same arguments.
pub struct Proc {
    pub name: String,
    pub args: Vec<String>,
    pub process: Option<ServerProcess>,
}

impl Proc {
    pub fn addr(&self) -> String {
        self.process.as_ref().unwrap().addr.to_string()
    }
}

/// A directory of processes and their logs, printed when a test fails.
pub struct Bed {
    pub dir: tempfile::TempDir,
    pub procs: Vec<Proc>,
}

impl Bed {
    pub fn new() -> Bed {
        Bed { dir: tempfile::tempdir().unwrap(), procs: Vec::new() }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts `orbitmq args…` as `name` (stderr in `<name>.log`); its index.
    pub fn start(&mut self, name: &str, args: &[&str]) -> usize {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let mut p = Proc { name: name.to_owned(), args, process: None };
        Self::spawn(&self.path(&format!("{name}.log")), &mut p);
        self.procs.push(p);
        self.procs.len() - 1
    }

    fn spawn(log: &Path, p: &mut Proc) {
        // Appends, so a restarted process's earlier log stays.
        let file = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        drop(file);
        let args: Vec<&str> = p.args.iter().map(String::as_str).collect();
        let mut cmd = Command::new("bash");
        cmd.arg("-c").arg("exec \"$0\" \"$@\" 2>>\"$LOG\"").arg(bin()).args(&args);
        cmd.env("LOG", log).env_remove("ORBITMQ_ACCESS_KEY").env_remove("ORBITMQ_SECRET_KEY");
        p.process = Some(ServerProcess::spawn_command(cmd));
    }

    pub fn proc(&mut self, name: &str) -> &mut Proc {
        self.procs.iter_mut().find(|p| p.name == name).unwrap()
    }

    pub fn addr(&mut self, name: &str) -> String {
        self.proc(name).addr()
    }

    /// SIGKILL.
    pub fn kill(&mut self, name: &str) {
        let p = self.proc(name);
        p.process.as_mut().unwrap().kill();
        p.process = None;
    }

    /// SIGTERM and a clean exit.
    pub fn stop(&mut self, name: &str) {
        let p = self.proc(name);
        assert!(p.process.as_mut().unwrap().stop().success(), "{name} did not stop cleanly");
        p.process = None;
    }

    /// Starts `name` again with the same arguments (pass `--listen` with a fixed port in them
    /// to come back on the same address).
    pub fn restart(&mut self, name: &str) {
        let log = self.path(&format!("{name}.log"));
        let p = self.proc(name);
        assert!(p.process.is_none(), "{name} is running");
        Self::spawn(&log, p);
    }

    /// SIGSTOP / SIGCONT.
    pub fn signal(&mut self, name: &str, sig: &str) {
        let pid = self.proc(name).process.as_ref().unwrap().child.id();
        assert!(Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success());
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        for p in &mut self.procs {
            if let Some(sp) = p.process.as_mut() {
                let _ = sp.child.kill();
                let _ = sp.child.wait();
            }
        }
        if std::thread::panicking() {
            for p in &self.procs {
                let log = std::fs::read_to_string(self.dir.path().join(format!("{}.log", p.name)))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                eprintln!("--- {} ---", p.name);
                for l in tail.into_iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

/// A CA (`ca.pem`) and a certificate it signed for `names` (DNS names or IP addresses;
/// `cert.pem`, `key.pem`), written in `dir`; their paths.
pub fn certificates(dir: &Path, names: &[&str]) -> (PathBuf, PathBuf, PathBuf) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let cert = rcgen::CertificateParams::new(names).unwrap().signed_by(&key, &issuer).unwrap();
    let paths = (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

/// A free 127.0.0.1 port (bound, then released), for a process that must come back on the
/// same address after a restart.
pub fn free_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}
