//! The traffic chart's data: every [`INTERVAL`] the counters of messages stored and delivered
//! (their rates since the last sample) and the data directories' size, the last [`KEEP`]
//! samples (10 minutes). A broker samples its own counters in process; a name server asks every
//! registered broker (`BrokerStats`) and adds up their rates and disk use.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use orbitmq_core::client::Admin;
use orbitmq_core::storage::message::now_millis;
use serde::Serialize;

use crate::http::Health;

/// Between two samples.
pub const INTERVAL: Duration = Duration::from_secs(2);
/// Samples kept: 10 minutes of them.
const KEEP: usize = 300;

/// One sample.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Point {
    /// When, ms since the epoch.
    t: i64,
    /// Messages stored per second since the sample before.
    in_per_s: f64,
    /// Messages delivered per second since the sample before.
    out_per_s: f64,
    /// Bytes the data directories take (each broker refreshes its own every 30 s).
    disk_bytes: u64,
}

/// One broker's counters, read at one time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Totals {
    /// Which broker (its address): rates are taken per broker, then added.
    key: String,
    stored: u64,
    delivered: u64,
    disk_bytes: u64,
}

/// What one read of the counters gave.
enum Reading {
    /// These brokers' counters.
    Of(Vec<Totals>),
    /// The broker is not serving (a restart): its counters start again at zero.
    Restarting,
    /// No answer this time (a name server that could not ask): no sample.
    Missed,
}

/// The samples, oldest first; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Series {
    points: Arc<Mutex<VecDeque<Point>>>,
}

impl Series {
    pub(crate) fn points(&self) -> Vec<Point> {
        self.points.lock().unwrap_or_else(PoisonError::into_inner).iter().copied().collect()
    }

    fn push(&self, p: Point) {
        let mut points = self.points.lock().unwrap_or_else(PoisonError::into_inner);
        if points.len() == KEEP {
            points.pop_front();
        }
        points.push_back(p);
    }

    /// Samples the broker `health` holds every [`INTERVAL`], for as long as the runtime runs
    /// (nothing while no broker serves, as during a restart).
    pub fn sample(&self, health: Health) -> tokio::task::JoinHandle<()> {
        // A broker's counters start at zero when it opens.
        self.run(Rates::from_zero(), move || {
            let health = health.clone();
            async move {
                let Some(broker) = health.broker() else { return Reading::Restarting };
                // The disk size walks the data directory when its cache is stale: off the
                // async threads.
                tokio::task::spawn_blocking(move || {
                    let (stored, delivered) = broker.metrics().totals();
                    let disk_bytes = broker.disk_usage();
                    Reading::Of(vec![Totals { key: String::new(), stored, delivered, disk_bytes }])
                })
                .await
                .unwrap_or(Reading::Missed)
            }
        })
    }

    /// Samples every broker registered with the name server `admin` reaches, every
    /// [`INTERVAL`]: the sums of their rates and disk use.
    pub fn sample_cluster(&self, admin: Admin) -> tokio::task::JoinHandle<()> {
        // Brokers were running before this name server asked: a broker's first reading only
        // sets where its rates start.
        self.run(Rates::default(), move || {
            let admin = admin.clone();
            async move {
                match admin.broker_stats().await {
                    Ok(stats) => Reading::Of(
                        stats
                            .into_iter()
                            .map(|s| Totals {
                                key: s.address,
                                stored: s.messages_in,
                                delivered: s.messages_out,
                                disk_bytes: s.disk_bytes,
                            })
                            .collect(),
                    ),
                    Err(e) => {
                        tracing::debug!(error = %e, "console: no broker stats this time");
                        Reading::Missed
                    }
                }
            }
        })
    }

    fn run<F, Fut>(&self, mut rates: Rates, read: F) -> tokio::task::JoinHandle<()>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Reading> + Send,
    {
        let series = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let reading = read().await;
                if let Some(p) = rates.next(reading, Instant::now()) {
                    series.push(p);
                }
            }
        })
    }
}

/// Turns readings of counters into per-second rates: each broker's since its reading before,
/// added up.
#[derive(Debug, Default)]
struct Rates {
    /// Each broker's last reading: when, messages stored, delivered.
    last: HashMap<String, (Instant, u64, u64)>,
    /// When counters that are new count from zero (a broker that just opened), from when.
    zero_since: Option<Instant>,
    /// Whether a broker seen for the first time counts from zero at `zero_since` (one in this
    /// process, which starts at zero) rather than only setting where its rates start.
    counts_from_zero: bool,
}

impl Rates {
    fn from_zero() -> Rates {
        Rates { last: HashMap::new(), zero_since: Some(Instant::now()), counts_from_zero: true }
    }

    /// The point for `reading` taken at `now`, if it makes one.
    fn next(&mut self, reading: Reading, now: Instant) -> Option<Point> {
        let brokers = match reading {
            Reading::Of(b) => b,
            Reading::Restarting => {
                self.last.clear();
                self.zero_since = self.counts_from_zero.then_some(now);
                return None;
            }
            Reading::Missed => return None,
        };
        let (mut in_per_s, mut out_per_s, mut disk_bytes) = (0.0, 0.0, 0);
        let mut seen = HashMap::with_capacity(brokers.len());
        for b in brokers {
            let before = self.last.get(&b.key).copied().or(self.zero_since.map(|at| (at, 0, 0)));
            if let Some((at, stored, delivered)) = before {
                let secs = now.duration_since(at).as_secs_f64().max(0.001);
                in_per_s += rate(b.stored, stored, secs);
                out_per_s += rate(b.delivered, delivered, secs);
            }
            disk_bytes += b.disk_bytes;
            seen.insert(b.key, (now, b.stored, b.delivered));
        }
        // A broker gone from the readings is forgotten (back later, it starts afresh).
        self.last = seen;
        self.zero_since = None;
        Some(Point {
            t: now_millis(),
            in_per_s: (in_per_s * 10.0).round() / 10.0,
            out_per_s: (out_per_s * 10.0).round() / 10.0,
            disk_bytes,
        })
    }
}

/// Per second from `before` to `now` over `secs`; a counter that went back (a broker
/// restarted) counts from zero.
#[allow(clippy::cast_precision_loss)]
fn rate(now: u64, before: u64, secs: f64) -> f64 {
    let delta = if now >= before { now - before } else { now };
    delta as f64 / secs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(list: &[(&str, u64, u64, u64)]) -> Reading {
        Reading::Of(
            list.iter()
                .map(|&(key, stored, delivered, disk_bytes)| Totals {
                    key: key.to_owned(),
                    stored,
                    delivered,
                    disk_bytes,
                })
                .collect(),
        )
    }

    fn rates_of(p: Option<Point>) -> (f64, f64, u64) {
        let p = p.expect("a point");
        (p.in_per_s, p.out_per_s, p.disk_bytes)
    }

    #[test]
    fn brokers_rates_are_taken_each_from_its_own_reading_then_added() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut r = Rates::default();
        // First readings only set where the rates start (the brokers ran before).
        let p = r.next(of(&[("a", 1_000, 500, 10), ("b", 7_000, 0, 20)]), at(2));
        assert_eq!(rates_of(p), (0.0, 0.0, 30));
        let p = r.next(of(&[("a", 1_020, 510, 10), ("b", 7_040, 4, 20)]), at(4));
        assert_eq!(rates_of(p), (30.0, 7.0, 30));
        // b leaves, c comes: a's rate alone, c's first reading counts nothing; b's totals
        // leaving never show as a fall or a burst.
        let p = r.next(of(&[("a", 1_040, 510, 10), ("c", 9_999, 9_999, 5)]), at(6));
        assert_eq!(rates_of(p), (10.0, 0.0, 15));
        // a restarted: its counter went back, so it counts from zero.
        let p = r.next(of(&[("a", 6, 0, 10), ("c", 10_009, 9_999, 5)]), at(8));
        assert_eq!(rates_of(p), (8.0, 0.0, 15));
        // A missed reading makes no point and keeps what was read before.
        assert!(r.next(Reading::Missed, at(10)).is_none());
        let p = r.next(of(&[("a", 16, 2, 10), ("c", 10_009, 9_999, 5)]), at(12));
        assert_eq!(rates_of(p), (2.5, 0.5, 15));
    }

    #[test]
    fn a_broker_in_this_process_counts_from_zero_when_it_opens() {
        let mut r = Rates::from_zero();
        let t0 = r.zero_since.unwrap();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(rates_of(r.next(of(&[("", 40, 20, 1)]), at(2))), (20.0, 10.0, 1));
        assert!(r.next(Reading::Restarting, at(4)).is_none());
        assert_eq!(rates_of(r.next(of(&[("", 10, 0, 1)]), at(6))), (5.0, 0.0, 1));
    }
}
