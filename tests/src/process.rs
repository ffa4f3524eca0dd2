//! The real `orbitmq` binary as a child process: started on 127.0.0.1:0 over a data directory,
//! ready once it printed `ready on <addr>`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// `--metrics-listen 127.0.0.1:0` unless `extra` has its own: tests run side by side, and the
/// default port is one.
fn metrics_args(extra: &[&str]) -> &'static [&'static str] {
    if extra.iter().any(|a| a.starts_with("--metrics-listen")) {
        &[]
    } else {
        &["--metrics-listen", "127.0.0.1:0"]
    }
}

/// `--dashboard-listen off` unless `extra` has its own: the console's default port is one
/// (tests that want it pass `--dashboard-listen 127.0.0.1:0` and read [`ServerProcess::dashboard`]).
fn dashboard_args(extra: &[&str]) -> &'static [&'static str] {
    if extra.iter().any(|a| a.starts_with("--dashboard-listen")) {
        &[]
    } else {
        &["--dashboard-listen", "off"]
    }
}

/// A running `orbitmq standalone`. Killed (SIGKILL) on drop if still running.
pub struct ServerProcess {
    /// The child process.
    pub child: Child,
    /// The address it printed in its `ready on` line.
    pub addr: std::net::SocketAddr,
    /// Where it serves `/metrics` and `/health` (its `metrics on` line), unless disabled.
    pub metrics: Option<std::net::SocketAddr>,
    /// Where it serves the web console (its `console on http://…/` line), unless disabled.
    pub dashboard: Option<std::net::SocketAddr>,
}

impl ServerProcess {
    /// Runs `bin standalone --listen 127.0.0.1:0 --data-dir data_dir extra…`, with stderr in
    /// `log` (or discarded), and waits for its `ready on` line. Metrics listen on a free port
    /// too, unless `extra` says where.
    pub fn start(bin: &Path, data_dir: &Path, extra: &[&str], log: Option<&Path>) -> ServerProcess {
        Self::start_at(bin, "127.0.0.1:0", data_dir, extra, log)
    }

    /// Like [`ServerProcess::start`], listening on `listen`: a restart on the address an
    /// earlier run printed, where clients that knew it (and their receipts) reconnect.
    pub fn start_at(
        bin: &Path,
        listen: &str,
        data_dir: &Path,
        extra: &[&str],
        log: Option<&Path>,
    ) -> ServerProcess {
        let mut cmd = Command::new(bin);
        cmd.args(["standalone", "--listen", listen, "--data-dir"]).arg(data_dir);
        cmd.args(metrics_args(extra)).args(dashboard_args(extra)).args(extra);
        Self::spawn(cmd, log)
    }

    /// Like [`ServerProcess::start`], with the open-file limit (`ulimit -n`) set to `nofile`.
    pub fn start_with_nofile(
        bin: &Path,
        data_dir: &Path,
        extra: &[&str],
        log: Option<&Path>,
        nofile: u64,
    ) -> ServerProcess {
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
            .arg(bin)
            .args(["standalone", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(metrics_args(extra))
            .args(dashboard_args(extra))
            .args(extra);
        Self::spawn(cmd, log)
    }

    /// Runs `bin args…` (any server command: `namesrv`, `broker`, …), with stderr in `log`
    /// (or discarded), and waits for its `ready on` line.
    pub fn run(bin: &Path, args: &[&str], log: Option<&Path>) -> ServerProcess {
        let mut cmd = Command::new(bin);
        cmd.args(args);
        Self::spawn(cmd, log)
    }

    /// Runs `cmd` (which redirects the server's stderr itself, if it wants it) and waits for its
    /// `ready on` line.
    pub fn spawn_command(cmd: Command) -> ServerProcess {
        Self::spawn(cmd, None)
    }

    fn spawn(mut cmd: Command, log: Option<&Path>) -> ServerProcess {
        let stderr =
            log.map_or_else(Stdio::null, |p| Stdio::from(std::fs::File::create(p).unwrap()));
        let mut child = cmd.stdout(Stdio::piped()).stderr(stderr).spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let (mut metrics, mut dashboard) = (None, None);
        let addr = loop {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "the server exited before it was ready");
            if let Some(addr) = line.trim().strip_prefix("metrics on ") {
                metrics = Some(addr.parse().unwrap());
            }
            if let Some(url) = line.trim().strip_prefix("console on http://") {
                dashboard = Some(url.trim_end_matches('/').parse().unwrap());
            }
            if let Some(addr) = line.trim().strip_prefix("ready on ") {
                break addr.parse().unwrap();
            }
        };
        ServerProcess { child, addr, metrics, dashboard }
    }

    /// The `orbitmq` binary `bin` under sync flush (acknowledged sends are on disk), stderr
    /// discarded.
    pub fn start_sync(bin: &Path, data_dir: &Path) -> ServerProcess {
        Self::start(bin, data_dir, &["--flush-disk-type", "sync"], None)
    }

    /// [`ServerProcess::start_sync`] listening on `listen` (see [`ServerProcess::start_at`]).
    pub fn start_sync_at(bin: &Path, listen: &str, data_dir: &Path) -> ServerProcess {
        Self::start_at(bin, listen, data_dir, &["--flush-disk-type", "sync"], None)
    }

    /// SIGTERM, then waits (15 s at most) for the clean shutdown.
    pub fn stop(&mut self) -> ExitStatus {
        self.stop_within(Duration::from_secs(15)).unwrap_or_else(|| {
            let _ = self.child.kill();
            self.child.wait().unwrap()
        })
    }

    /// SIGTERM, then waits `limit` for the process to exit: `None` if it did not (it is
    /// still running).
    pub fn stop_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
