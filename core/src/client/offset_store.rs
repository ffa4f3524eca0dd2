//! Where a consumer keeps its progress: for each message queue, the next offset to read.
//!
//! [`OffsetStore::Broker`] keeps it on the broker, for the group (UpdateOffset / GetOffset), so
//! every member of the group, on any machine, resumes where another left off. That is what a
//! clustering pull consumer wants. [`OffsetStore::Local`] keeps it in a file on this machine, one
//! per group, so progress is the consumer's own: what a broadcasting consumer needs (each member
//! reads everything), and what a pull consumer can use against a server that keeps no offsets.
//!
//! The file is plain text, one `topic<TAB>broker<TAB>queue id<TAB>next offset` line per queue
//! (`%`, tab and newlines escaped as `%25`, `%09`, `%0A`, `%0D`), and is replaced as a whole on
//! every commit: written to a temporary file, synced, then renamed over the old one, so a crash
//! leaves the old offsets or the new ones, never half of each. A commit merges its queues into
//! what the file holds, so consumers of the group sharing the directory in one process keep each
//! other's queues.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::client::error::{Error, ErrorKind, Result};
use crate::client::model::MessageQueue;
use crate::client::session::Session;
use crate::protocol::v2;

/// Where a consumer keeps the offsets it commits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum OffsetStore {
    /// On the broker, as the group's offsets (UpdateOffset / GetOffset): shared by every member
    /// of the group, and seen by the broker's tools (consumer progress, lag).
    #[default]
    Broker,
    /// In the directory at this path on this machine, in one file per group
    /// (`<group>.offsets`, or `<namespace>%<group>.offsets` in a namespace). The directory is
    /// made when missing.
    Local(PathBuf),
}

/// A queue the way offsets are kept for it: its plain name, the wire queue (topic in the
/// client's namespace, broker and endpoints) and the endpoint that serves it.
#[derive(Debug, Clone)]
pub(crate) struct StoredQueue {
    pub(crate) queue: MessageQueue,
    pub(crate) wire: v2::MessageQueue,
    pub(crate) endpoint: String,
}

/// An open offset store of one group.
#[derive(Debug)]
pub(crate) enum Offsets {
    Broker,
    Local(PathBuf),
}

/// Serializes the read-merge-write of local offset files within the process.
static LOCAL_FILES: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Offsets {
    /// The store `store` for `group` in `namespace`; checks the path, touches nothing.
    pub(crate) fn open(store: &OffsetStore, namespace: &str, group: &str) -> Result<Offsets> {
        match store {
            OffsetStore::Broker => Ok(Offsets::Broker),
            OffsetStore::Local(dir) => {
                if dir.as_os_str().is_empty() {
                    return Err(Error::bad_request("the local offset store needs a directory"));
                }
                if dir.is_file() {
                    return Err(Error::bad_request(format!(
                        "the local offset store {} is a file, not a directory",
                        dir.display()
                    )));
                }
                let name = if namespace.is_empty() {
                    format!("{group}.offsets")
                } else {
                    format!("{namespace}%{group}.offsets")
                };
                Ok(Offsets::Local(dir.join(name)))
            }
        }
    }

    /// The offset committed for `q`, `None` when there is none.
    pub(crate) async fn load(&self, session: &Session, q: &StoredQueue) -> Result<Option<i64>> {
        match self {
            Offsets::Broker => {
                let req = v2::GetOffsetRequest {
                    group: session.group_resource(),
                    message_queue: Some(q.wire.clone()),
                };
                let resp = session
                    .rpc
                    .call("get offset", &q.endpoint, Duration::ZERO, req, |mut c, r| async move {
                        c.get_offset(r).await
                    })
                    .await?;
                let code = resp
                    .status
                    .as_ref()
                    .map_or(v2::Code::Ok, |s| v2::Code::try_from(s.code).unwrap_or_default());
                if code == v2::Code::OffsetNotFound {
                    return Ok(None);
                }
                if let Some(e) = resp.status.as_ref().and_then(Error::from_status) {
                    return Err(e.with_operation("get offset").with_endpoint(q.endpoint.as_str()));
                }
                Ok(Some(resp.offset))
            }
            Offsets::Local(path) => {
                let path = path.clone();
                let key = key_of(&q.queue);
                blocking(move || Ok(read_file(&path)?.get(&key).copied())).await
            }
        }
    }

    /// Commits `entries` (queue, next offset to read).
    pub(crate) async fn commit(
        &self,
        session: &Session,
        entries: &[(StoredQueue, i64)],
    ) -> Result<()> {
        match self {
            Offsets::Broker => {
                let mut first_error = None;
                for (q, offset) in entries {
                    let req = v2::UpdateOffsetRequest {
                        group: session.group_resource(),
                        message_queue: Some(q.wire.clone()),
                        offset: *offset,
                    };
                    let answer = session
                        .rpc
                        .call("commit", &q.endpoint, Duration::ZERO, req, |mut c, r| async move {
                            c.update_offset(r).await
                        })
                        .await
                        .and_then(|resp| match resp.status.as_ref().and_then(Error::from_status) {
                            Some(e) => Err(e.with_endpoint(q.endpoint.as_str())),
                            None => Ok(()),
                        });
                    // One queue failing does not keep the others from being committed.
                    if let Err(e) = answer {
                        first_error.get_or_insert(e.with_operation("commit"));
                    }
                }
                first_error.map_or(Ok(()), Err)
            }
            Offsets::Local(path) => {
                let path = path.clone();
                let entries: Vec<(Key, i64)> =
                    entries.iter().map(|(q, o)| (key_of(&q.queue), *o)).collect();
                blocking(move || {
                    let _one_at_a_time =
                        LOCAL_FILES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let mut all = read_file(&path)?;
                    all.extend(entries);
                    write_file(&path, &all)
                })
                .await
                .map_err(|e| e.with_operation("commit"))
            }
        }
    }
}

/// What a local file keys offsets by: topic, broker, queue id.
type Key = (String, String, i32);

fn key_of(q: &MessageQueue) -> Key {
    (q.topic.clone(), q.broker.clone(), q.queue_id)
}

/// Runs file work off the async worker threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::new(ErrorKind::Internal, format!("offset file task: {e}")))?
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::new(ErrorKind::Internal, format!("{what} {}: {e}", path.display())).with_source(e)
}

/// The offsets in the file at `path` (none when it does not exist).
fn read_file(path: &Path) -> Result<BTreeMap<Key, i64>> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text).map_err(|line| {
            Error::new(
                ErrorKind::Internal,
                format!("offset file {} is damaged at line {line}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(io_error("reading offset file", path, e)),
    }
}

/// Replaces the file at `path` with `offsets`: temporary file, sync, rename.
fn write_file(path: &Path, offsets: &BTreeMap<Key, i64>) -> Result<()> {
    use std::io::Write as _;
    static TEMP: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io_error("creating offset directory", dir, e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        TEMP.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut f = std::fs::File::create(&temp)?;
        f.write_all(render(offsets).as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(io_error("writing offset file", path, e));
    }
    // The rename is durable once the directory is synced; not every platform can.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

const HEADER: &str = "# orbitmq consumer offsets v1: topic, broker, queue id, next offset";

fn render(offsets: &BTreeMap<Key, i64>) -> String {
    use std::fmt::Write as _;
    let mut out = String::from(HEADER);
    out.push('\n');
    for ((topic, broker, queue_id), offset) in offsets {
        let _ = writeln!(out, "{}\t{}\t{queue_id}\t{offset}", escape(topic), escape(broker));
    }
    out
}

/// The offsets in `text`, or the number of the first line that is not one.
fn parse(text: &str) -> std::result::Result<BTreeMap<Key, i64>, usize> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [topic, broker, queue_id, offset] = fields[..] else { return Err(n + 1) };
        let (Some(topic), Some(broker), Ok(queue_id), Ok(offset)) =
            (unescape(topic), unescape(broker), queue_id.parse(), offset.parse())
        else {
            return Err(n + 1);
        };
        out.insert((topic, broker, queue_id), offset);
    }
    Ok(out)
}

fn escape(s: &str) -> String {
    s.replace('%', "%25").replace('\t', "%09").replace('\n', "%0A").replace('\r', "%0D")
}

fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3)?;
        out.push(match code {
            "25" => '%',
            "09" => '\t',
            "0A" => '\n',
            "0D" => '\r',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_survive_a_round_trip_through_the_file_format() {
        let mut m = BTreeMap::new();
        m.insert(("ns%orders".to_owned(), "broker-a".to_owned(), 3), 42);
        m.insert(("odd\tname\n".to_owned(), "b%09".to_owned(), 0), 0);
        let text = render(&m);
        assert!(text.starts_with('#'));
        assert_eq!(text.lines().count(), 3, "{text}");
        assert_eq!(parse(&text).unwrap(), m);
        assert_eq!(parse("t\tb\t1\n"), Err(1));
        assert_eq!(parse("# c\nt\tb\tx\t1\n"), Err(2));
        assert_eq!(parse("t\tb%zz\t1\t2\n"), Err(1));
    }

    #[test]
    fn a_commit_replaces_the_file_and_keeps_other_queues() {
        let dir = tempfile::tempdir().unwrap();
        let Offsets::Local(path) =
            Offsets::open(&OffsetStore::Local(dir.path().join("sub")), "", "g").unwrap()
        else {
            panic!("local")
        };
        assert_eq!(path, dir.path().join("sub").join("g.offsets"));
        let k = |q| ("t".to_owned(), "b".to_owned(), q);
        write_file(&path, &BTreeMap::from([(k(0), 5), (k(1), 7)])).unwrap();
        let mut all = read_file(&path).unwrap();
        all.insert(k(1), 9);
        write_file(&path, &all).unwrap();
        assert_eq!(read_file(&path).unwrap(), BTreeMap::from([(k(0), 5), (k(1), 9)]));
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left behind");
        let Offsets::Local(ns) =
            Offsets::open(&OffsetStore::Local(dir.path().into()), "prod", "g").unwrap()
        else {
            panic!("local")
        };
        assert!(ns.ends_with("prod%g.offsets"));
        assert!(Offsets::open(&OffsetStore::Local(path), "", "g").is_err(), "a file");
    }
}
