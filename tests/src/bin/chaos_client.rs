//! The client side of `tests/perf/chaos.sh` (issue 21's fault test): produces FIFO messages
//! through the name servers while the script kills, freezes and partitions brokers, consumes
//! them with a consumer group, records every acknowledged and every consumed message id in
//! files as it goes, and in the end reports what the `OpenChaos` checkers report, as one JSON line:
//! `{"acked":…,"consumed":…,"lost":…,"duplicated":…,"order_violations":…,"recovery_ms_max":…}`.
//!
//! ```text
//! chaos_client run --endpoints NS --topic T --group G --dir D --stop-file F [--pause-file P]
//!                  [--senders 4] [--groups-per-sender 4] [--body 256] [--drain-secs 60]
//!                  [--request-timeout-ms 3000] [--max-secs 900]
//! chaos_client check --dir D        # the report again, from D's files
//! ```
//!
//! `run` produces until the file F exists (the script creates it once the faults are over and
//! everything is healed), then keeps consuming until every acknowledged id was consumed or
//! `--drain-secs` passed, and prints the report from the files. Broker failures are never
//! fatal: every failed send or receive is counted and retried.
//!
//! Files in D (tab-separated, one line per event, written before the next step is taken):
//! - `acked.log`: `id group seq issued_ms acked_ms` for every send the broker acknowledged;
//! - `failed.log`: `group seq issued_ms failed_ms error_kind` for every send that failed;
//! - `consumed.log`: `id group seq received_ms delivery_attempt` for every message received
//!   (logged before it is acknowledged, so a redelivery after a lost ack shows as a duplicate);
//! - `stopped`: the time production stopped (ms).
//!
//! Messages: `--senders` tasks each own `--groups-per-sender` message groups (`g000`, `g001`,
//! …) and send to them in turn, one send at a time, so a group's sends never overlap and each
//! group's acknowledged messages were stored in the order of their sequence numbers. Every
//! attempt is a new message with the group's next sequence number (a failed send may still
//! have been stored: such a message can be consumed without having been acknowledged). The
//! consumer group is FIFO (the script creates it), so the broker hands out a group's next
//! message only once the previous one was acknowledged.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use orbitmq_core::client::{ClientConfig, FilterExpression, Message, Producer, SimpleConsumer};

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `hh:mm:ss.mmm` (UTC) of an epoch millisecond, as the script's fault log shows times.
fn hms(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}:{:02}.{:03}", (s / 3600) % 24, (s / 60) % 60, s % 60, ms % 1000)
}

/// `[chaos-client hh:mm:ss.mmm] …` on stderr.
fn log(msg: &str) {
    eprintln!("[chaos-client {}] {msg}", hms(now_ms()));
}

struct Args {
    endpoints: String,
    topic: String,
    group: String,
    dir: PathBuf,
    stop_file: PathBuf,
    /// While this file exists, consumers do not receive.
    pause_file: PathBuf,
    senders: usize,
    groups_per_sender: usize,
    body: usize,
    drain: Duration,
    request_timeout: Duration,
    max: Duration,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut map: HashMap<String, String> = HashMap::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let Some(name) = flag.strip_prefix("--") else {
            return Err(format!("unexpected argument {flag:?}"));
        };
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        map.insert(name.to_owned(), value.clone());
    }
    let get = |k: &str| map.get(k).cloned();
    let need = |k: &str| get(k).ok_or_else(|| format!("--{k} is required"));
    let num = |k: &str, default: u64| -> Result<u64, String> {
        get(k).map_or(Ok(default), |v| v.parse().map_err(|_| format!("--{k}: not a number: {v}")))
    };
    Ok(Args {
        endpoints: get("endpoints").unwrap_or_default(),
        topic: get("topic").unwrap_or_else(|| "chaos".into()),
        group: get("group").unwrap_or_else(|| "chaos-group".into()),
        dir: PathBuf::from(need("dir")?),
        stop_file: PathBuf::from(get("stop-file").unwrap_or_default()),
        pause_file: PathBuf::from(get("pause-file").unwrap_or_default()),
        senders: num("senders", 4)? as usize,
        groups_per_sender: num("groups-per-sender", 4)? as usize,
        body: num("body", 256)? as usize,
        drain: Duration::from_secs(num("drain-secs", 60)?),
        request_timeout: Duration::from_millis(num("request-timeout-ms", 3000)?),
        max: Duration::from_secs(num("max-secs", 900)?),
    })
}

/// An append-only event file; every line goes to the OS at once (one `write`), so what the
/// client recorded is on file whatever happens to it later.
struct EventLog(Mutex<File>);

impl EventLog {
    fn create(path: &Path) -> std::io::Result<EventLog> {
        let f = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(EventLog(Mutex::new(f)))
    }

    fn line(&self, fields: &[&dyn std::fmt::Display]) {
        let mut s = String::with_capacity(96);
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                s.push('\t');
            }
            s.push_str(&f.to_string());
        }
        s.push('\n');
        let mut file = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = file.write_all(s.as_bytes()) {
            log(&format!("cannot write an event line: {e}"));
        }
    }
}

/// What the running client shares between its tasks.
struct State {
    acked: EventLog,
    failed: EventLog,
    consumed: EventLog,
    acked_ids: Mutex<HashSet<String>>,
    consumed_ids: Mutex<HashSet<String>>,
    consumptions: AtomicU64,
    send_failures: AtomicU64,
    receive_failures: AtomicU64,
    ack_failures: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    stop_producing: AtomicBool,
    stop_consuming: AtomicBool,
}

impl State {
    fn error(&self, what: &str, e: &orbitmq_core::client::Error) {
        let key = format!("{what}: {}", e.kind());
        let mut errors = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        let n = errors.entry(key).or_default();
        *n += 1;
        // The first few of each kind in full, then only the counts (in the progress lines).
        if *n <= 3 {
            log(&format!("{what}: {e}"));
        }
    }

    fn counts(&self) -> (usize, usize) {
        let a = self.acked_ids.lock().unwrap_or_else(PoisonError::into_inner).len();
        let c = self.consumed_ids.lock().unwrap_or_else(PoisonError::into_inner).len();
        (a, c)
    }

    fn all_acked_consumed(&self) -> bool {
        let acked = self.acked_ids.lock().unwrap_or_else(PoisonError::into_inner);
        let consumed = self.consumed_ids.lock().unwrap_or_else(PoisonError::into_inner);
        acked.iter().all(|id| consumed.contains(id))
    }
}

const BODY_PREFIX: &str = "chaos";

/// Body: `chaos <group> <seq> <sender>` and padding; the key is `<group>-<seq>`.
fn parse_body(body: &[u8]) -> Option<(String, u64)> {
    let text = std::str::from_utf8(body.get(..body.len().min(64))?).ok()?;
    let mut words = text.split(' ');
    if words.next()? != BODY_PREFIX {
        return None;
    }
    let group = words.next()?.to_owned();
    let seq = words.next()?.parse().ok()?;
    Some((group, seq))
}

async fn sender(
    state: Arc<State>,
    producer: Producer,
    topic: String,
    groups: Vec<String>,
    body: usize,
) {
    let mut seqs = vec![0u64; groups.len()];
    let mut i = 0;
    while !state.stop_producing.load(Ordering::Acquire) {
        let g = i % groups.len();
        i += 1;
        seqs[g] += 1;
        let (group, seq) = (&groups[g], seqs[g]);
        let mut text = format!("{BODY_PREFIX} {group} {seq} ");
        if text.len() < body {
            text.push_str(&"x".repeat(body - text.len()));
        }
        let m = Message::builder(topic.clone())
            .body(text)
            .keys([format!("{group}-{seq}")])
            .message_group(group.clone())
            .build();
        let issued = now_ms();
        match producer.send(m).await {
            Ok(r) => {
                state.acked.line(&[&r.message_id, group, &seq, &issued, &now_ms()]);
                state.acked_ids.lock().unwrap_or_else(PoisonError::into_inner).insert(r.message_id);
            }
            Err(e) => {
                state.failed.line(&[group, &seq, &issued, &now_ms(), &e.kind()]);
                state.send_failures.fetch_add(1, Ordering::Relaxed);
                state.error("send", &e);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn receiver(state: Arc<State>, consumer: SimpleConsumer, pause: PathBuf) {
    while !state.stop_consuming.load(Ordering::Acquire) {
        if !pause.as_os_str().is_empty() && pause.exists() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        match consumer.receive(32, Duration::from_secs(15)).await {
            Ok(batch) => {
                for m in &batch {
                    let (group, seq) = parse_body(&m.body).map_or_else(
                        || ("?".to_owned(), "?".to_owned()),
                        |(g, s)| (g, s.to_string()),
                    );
                    state.consumed.line(&[
                        &m.message_id,
                        &group,
                        &seq,
                        &now_ms(),
                        &m.delivery_attempt,
                    ]);
                    state.consumptions.fetch_add(1, Ordering::Relaxed);
                    state
                        .consumed_ids
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(m.message_id.clone());
                }
                if !batch.is_empty()
                    && let Err(e) = consumer.ack_batch(&batch).await
                {
                    state.ack_failures.fetch_add(1, Ordering::Relaxed);
                    state.error("ack", &e);
                }
            }
            Err(e) => {
                state.receive_failures.fetch_add(1, Ordering::Relaxed);
                state.error("receive", &e);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Every 5 s a progress line on stderr.
async fn progress(state: Arc<State>) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (a, c) = state.counts();
        log(&format!(
            "acked {a}, consumed {c} ({} consumptions); failures: send {}, receive {}, ack {}",
            state.consumptions.load(Ordering::Relaxed),
            state.send_failures.load(Ordering::Relaxed),
            state.receive_failures.load(Ordering::Relaxed),
            state.ack_failures.load(Ordering::Relaxed),
        ));
    }
}

/// Retries `start` (the cluster may still be settling) for up to 60 s.
async fn start_with_retries<F, Fut>(what: &str, start: F) -> Result<(), String>
where
    F: Fn() -> Fut,
    Fut: Future<Output = orbitmq_core::client::Result<()>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match start().await {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() < deadline => {
                log(&format!("{what} start failed, retrying: {e}"));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(format!("{what} did not start: {e}")),
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    std::fs::create_dir_all(&args.dir).map_err(|e| format!("{}: {e}", args.dir.display()))?;
    let open =
        |name: &str| EventLog::create(&args.dir.join(name)).map_err(|e| format!("{name}: {e}"));
    let state = Arc::new(State {
        acked: open("acked.log")?,
        failed: open("failed.log")?,
        consumed: open("consumed.log")?,
        acked_ids: Mutex::default(),
        consumed_ids: Mutex::default(),
        consumptions: AtomicU64::new(0),
        send_failures: AtomicU64::new(0),
        receive_failures: AtomicU64::new(0),
        ack_failures: AtomicU64::new(0),
        errors: Mutex::default(),
        stop_producing: AtomicBool::new(false),
        stop_consuming: AtomicBool::new(false),
    });
    let config = ClientConfig::new(args.endpoints.clone()).request_timeout(args.request_timeout);
    let producer = Producer::builder(config.clone())
        .topics([args.topic.clone()])
        .build()
        .map_err(|e| e.to_string())?;
    start_with_retries("producer", || producer.start()).await?;
    let consumer = SimpleConsumer::builder(config, args.group.clone())
        .subscribe(args.topic.clone(), FilterExpression::all())
        .await_duration(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    start_with_retries("consumer", || consumer.start()).await?;
    let started = Instant::now();
    log(&format!(
        "producing to {} through {} ({} senders x {} message groups), consuming as {}",
        args.topic, args.endpoints, args.senders, args.groups_per_sender, args.group
    ));

    let pause = &args.pause_file;
    let receivers: Vec<_> = (0..4)
        .map(|_| tokio::spawn(receiver(Arc::clone(&state), consumer.clone(), pause.clone())))
        .collect();
    let mut senders = Vec::new();
    for s in 0..args.senders {
        let groups = (0..args.groups_per_sender)
            .map(|g| format!("g{:03}", s * args.groups_per_sender + g))
            .collect();
        senders.push(tokio::spawn(sender(
            Arc::clone(&state),
            producer.clone(),
            args.topic.clone(),
            groups,
            args.body,
        )));
    }
    let progress = tokio::spawn(progress(Arc::clone(&state)));

    // Produce until the script says the faults are over (or, should the script be gone, at
    // most --max-secs).
    while !args.stop_file.as_os_str().is_empty()
        && !args.stop_file.exists()
        && started.elapsed() < args.max
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    state.stop_producing.store(true, Ordering::Release);
    let stopped = now_ms();
    std::fs::write(args.dir.join("stopped"), format!("{stopped}\n")).map_err(|e| e.to_string())?;
    log("stop file seen: production stops, draining");
    for s in senders {
        // A send in progress finishes (or fails) within its attempts' timeouts.
        if tokio::time::timeout(Duration::from_secs(30), s).await.is_err() {
            log("a sender did not finish within 30 s of the stop");
        }
    }

    let drain_start = Instant::now();
    while !state.all_acked_consumed() && drain_start.elapsed() < args.drain {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (a, c) = state.counts();
    if state.all_acked_consumed() {
        log(&format!(
            "drained in {} ms: all {a} acked ids consumed ({c} distinct consumed)",
            drain_start.elapsed().as_millis()
        ));
        // Redeliveries already under way still count as duplicates: a short grace period.
        tokio::time::sleep(Duration::from_secs(1)).await;
    } else {
        log(&format!(
            "drain timeout ({} s): not every acked id was consumed",
            args.drain.as_secs()
        ));
    }
    state.stop_consuming.store(true, Ordering::Release);
    progress.abort();
    for r in receivers {
        // A long poll ends within its await duration plus the request timeout.
        let _ = tokio::time::timeout(Duration::from_secs(10), r).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), consumer.shutdown()).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), producer.shutdown()).await;
    let errors = state.errors.lock().unwrap_or_else(PoisonError::into_inner).clone();
    if !errors.is_empty() {
        log(&format!("errors by kind: {errors:?}"));
    }
    Ok(())
}

/// One acknowledged message.
struct Acked {
    group: String,
    seq: u64,
    issued: u64,
    at: u64,
}

/// The report, computed from the files alone.
struct Report {
    acked: usize,
    consumed: usize,
    lost: usize,
    duplicated: u64,
    order_violations: u64,
    recovery_ms_max: u64,
}

fn read_lines(path: &Path) -> Result<Vec<Vec<String>>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    // A torn last line (none is expected: lines are written whole) is skipped.
    Ok(text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect())
}

fn field<T: std::str::FromStr>(line: &[String], i: usize) -> Option<T> {
    line.get(i)?.parse().ok()
}

fn check(dir: &Path) -> Result<Report, String> {
    let mut acked: HashMap<String, Acked> = HashMap::new();
    for l in read_lines(&dir.join("acked.log"))? {
        let (Some(seq), Some(issued), Some(at)) = (field(&l, 2), field(&l, 3), field(&l, 4)) else {
            continue;
        };
        acked.insert(l[0].clone(), Acked { group: l[1].clone(), seq, issued, at });
    }
    let consumed_lines = read_lines(&dir.join("consumed.log"))?;
    let mut consumed: HashSet<&str> = HashSet::new();
    let mut duplicated = 0u64;
    // Per message group, the sequence numbers of its acknowledged messages in the order they
    // were first consumed.
    let mut first_order: HashMap<&str, Vec<u64>> = HashMap::new();
    for l in &consumed_lines {
        let id = l[0].as_str();
        if !consumed.insert(id) {
            duplicated += 1;
            continue;
        }
        if let Some(a) = acked.get(id) {
            first_order.entry(a.group.as_str()).or_default().push(a.seq);
        }
    }
    // Order violations. A message group's acknowledged messages were stored in the order of
    // their sequence numbers (its sends never overlap). Message m (acknowledged, sequence s)
    // is a violation when, at its first consumption, an acknowledged message of the same group
    // with a smaller sequence number had not been consumed yet but was consumed later. Each
    // such m counts once. Redeliveries (consumptions after the first of an id) are duplicates,
    // never violations; acknowledged messages never consumed are lost, not violations (a gap
    // left by them is not counted); messages whose send failed but which were stored anyway
    // have no place in the acknowledged order and are left out.
    let mut order_violations = 0u64;
    for seqs in first_order.values() {
        let mut min_later = u64::MAX;
        for &s in seqs.iter().rev() {
            if min_later < s {
                order_violations += 1;
            }
            min_later = min_later.min(s);
        }
    }
    let mut lost: Vec<(&String, &Acked)> =
        acked.iter().filter(|(id, _)| !consumed.contains(id.as_str())).collect();
    lost.sort_by_key(|(_, a)| a.at);
    if !lost.is_empty() {
        log(&format!("{} acked messages never consumed; the first ones:", lost.len()));
        for (id, a) in lost.iter().take(20) {
            log(&format!(
                "  lost {id}: group {} seq {}, sent at {}, acked at {}",
                a.group,
                a.seq,
                hms(a.issued),
                hms(a.at)
            ));
        }
    }

    // Recovery: the longest stretch during which the producer could not get a send
    // acknowledged. Two measures, the larger one counts:
    // - from a failed send (from the moment it was issued, when no stretch is open) to the next
    //   acknowledgement, the events taken in the order they happened (failure time,
    //   acknowledgement time); a stretch still open when production stopped ends there;
    // - the longest pause between two acknowledgements (or from the last one to the stop).
    //   Failures alone miss stalls: the SDK retries a send that timed out (3 attempts of
    //   --request-timeout-ms), so during a short freeze or partition sends hang rather than
    //   fail, and a frozen slave under sync_master holds acknowledgements back without error.
    let stopped: Option<u64> =
        std::fs::read_to_string(dir.join("stopped")).ok().and_then(|s| s.trim().parse().ok());
    let mut events: Vec<(u64, Option<u64>)> = acked.values().map(|a| (a.at, None)).collect();
    for l in read_lines(&dir.join("failed.log"))? {
        if let (Some(issued), Some(at)) = (field::<u64>(&l, 2), field::<u64>(&l, 3)) {
            events.push((at, Some(issued)));
        }
    }
    events.sort_unstable();
    let mut open: Option<u64> = None;
    let mut failure_max = (0u64, 0u64, 0u64); // (ms, from, to)
    for (at, failed_issue) in events {
        match (failed_issue, open) {
            (Some(issued), None) => open = Some(issued),
            (None, Some(since)) => {
                failure_max = failure_max.max((at.saturating_sub(since), since, at));
                open = None;
            }
            _ => {}
        }
    }
    if let Some(since) = open {
        let end = stopped.unwrap_or(since);
        log(&format!("sends were still failing when production stopped (since {})", hms(since)));
        failure_max = failure_max.max((end.saturating_sub(since), since, end));
    }
    let mut ack_times: Vec<u64> = acked.values().map(|a| a.at).collect();
    ack_times.sort_unstable();
    if let (Some(&last), Some(end)) = (ack_times.last(), stopped) {
        ack_times.push(end.max(last));
    }
    let gap_max =
        ack_times.windows(2).map(|w| (w[1] - w[0], w[0], w[1])).max().unwrap_or((0, 0, 0));
    for (what, (ms, from, to)) in [
        ("from a failed send to the next acknowledgement", failure_max),
        ("between two acknowledgements", gap_max),
    ] {
        if ms > 0 {
            log(&format!("longest stretch {what}: {ms} ms, {} to {}", hms(from), hms(to)));
        }
    }
    let recovery_ms_max = failure_max.0.max(gap_max.0);
    let unacked = consumed.iter().filter(|id| !acked.contains_key(**id)).count();
    log(&format!(
        "{unacked} consumed messages were never acknowledged to the producer (their send failed after they were stored)"
    ));
    Ok(Report {
        acked: acked.len(),
        consumed: consumed.len(),
        lost: lost.len(),
        duplicated,
        order_violations,
        recovery_ms_max,
    })
}

fn print_report(r: &Report) {
    println!(
        "{{\"acked\":{},\"consumed\":{},\"lost\":{},\"duplicated\":{},\"order_violations\":{},\"recovery_ms_max\":{}}}",
        r.acked, r.consumed, r.lost, r.duplicated, r.order_violations, r.recovery_ms_max
    );
}

fn main() -> ExitCode {
    let words: Vec<String> = std::env::args().skip(1).collect();
    let usage =
        "usage: chaos_client run --endpoints NS --dir D --stop-file F [options] | check --dir D";
    let Some((mode, rest)) = words.split_first() else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let args = match parse(rest) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("chaos_client: {e}\n{usage}");
            return ExitCode::from(2);
        }
    };
    if mode == "run" {
        if args.endpoints.is_empty() || args.stop_file.as_os_str().is_empty() {
            eprintln!("chaos_client: run needs --endpoints and --stop-file\n{usage}");
            return ExitCode::from(2);
        }
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("chaos_client: {e}");
                return ExitCode::FAILURE;
            }
        };
        let dir = args.dir.clone();
        if let Err(e) = rt.block_on(run(args)) {
            log(&e);
            return ExitCode::FAILURE;
        }
        rt.shutdown_timeout(Duration::from_secs(2));
        report(&dir)
    } else if mode == "check" {
        report(&args.dir)
    } else {
        eprintln!("{usage}");
        ExitCode::from(2)
    }
}

fn report(dir: &Path) -> ExitCode {
    match check(dir) {
        Ok(r) => {
            print_report(&r);
            ExitCode::SUCCESS
        }
        Err(e) => {
            log(&e);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    fn write(dir: &std::path::Path, name: &str, lines: &[&str]) {
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(dir.join(name), text.replace(' ', "\t")).unwrap();
    }

    #[test]
    fn the_report_counts_loss_duplicates_order_and_recovery() {
        let dir = tempfile::tempdir().unwrap();
        // Group a: 1..4 acked; group b: 1..2 acked.
        write(
            dir.path(),
            "acked.log",
            &[
                "a1 a 1 1000 1010",
                "a2 a 2 1010 1020",
                "b1 b 1 1000 1015",
                "a3 a 3 1020 1030",
                "b2 b 2 1015 5000",
                "a4 a 4 1030 5010",
            ],
        );
        // a2 failed once before (its send was issued at 1500, failed at 4000; production
        // stopped at 6000).
        write(dir.path(), "failed.log", &["a 2 1500 4000 UNAVAILABLE"]);
        std::fs::write(dir.path().join("stopped"), "6000\n").unwrap();
        // a3 before a2 (a violation: a2 not consumed yet then, consumed later); a1 redelivered
        // after a3 (a duplicate, not a violation); a4 lost; x1 consumed but never acked; b in
        // order.
        write(
            dir.path(),
            "consumed.log",
            &[
                "a1 a 1 2000 1",
                "b1 b 1 2001 1",
                "a3 a 3 2002 1",
                "a1 a 1 2003 2",
                "a2 a 2 2004 1",
                "x1 a 9 2005 1",
                "b2 b 2 5100 1",
            ],
        );
        let r = check(dir.path()).unwrap();
        assert_eq!(r.acked, 6);
        assert_eq!(r.consumed, 6);
        assert_eq!(r.lost, 1);
        assert_eq!(r.duplicated, 1);
        assert_eq!(r.order_violations, 1);
        // The failure opens at its issue (1500), the next acknowledgement is at 5000; the
        // longest pause between acknowledgements is 1030 -> 5000.
        assert_eq!(r.recovery_ms_max, 3970);
    }
}
