//! The real `orbitmq` binary as a child process: started on 127.0.0.1:0 over a data directory,
//! ready once it printed `ready on <addr>`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running `orbitmq standalone`. Killed (SIGKILL) on drop if still running.
pub struct ServerProcess {
    /// The child process.
    pub child: Child,
    /// The address it printed in its `ready on` line.
    pub addr: std::net::SocketAddr,
}

impl ServerProcess {
    /// Runs `bin standalone --listen 127.0.0.1:0 --data-dir data_dir extra…`, with stderr in
    /// `log` (or discarded), and waits for its `ready on` line.
    pub fn start(bin: &Path, data_dir: &Path, extra: &[&str], log: Option<&Path>) -> ServerProcess {
        let stderr =
            log.map_or_else(Stdio::null, |p| Stdio::from(std::fs::File::create(p).unwrap()));
        let mut child = Command::new(bin)
            .args(["standalone", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let addr = loop {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "the server exited before it was ready");
            if let Some(addr) = line.trim().strip_prefix("ready on ") {
                break addr.parse().unwrap();
            }
        };
        ServerProcess { child, addr }
    }

    /// The `orbitmq` binary `bin` under sync flush (acknowledged sends are on disk), stderr
    /// discarded.
    pub fn start_sync(bin: &Path, data_dir: &Path) -> ServerProcess {
        Self::start(bin, data_dir, &["--flush-disk-type", "sync"], None)
    }

    /// SIGTERM, then waits (15 s at most) for the clean shutdown.
    pub fn stop(&mut self) -> ExitStatus {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().unwrap();
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
