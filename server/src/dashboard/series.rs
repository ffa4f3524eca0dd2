//! The traffic chart's data: every [`INTERVAL`] the broker's counters of messages stored and
//! delivered (their rates since the last sample) and the data directory's size, the last
//! [`KEEP`] samples (10 minutes). A name server has no counters of its own: it samples nothing.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

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
    /// Bytes the data directory takes (the broker refreshes it every 30 s).
    disk_bytes: u64,
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
        let series = self.clone();
        tokio::spawn(async move {
            // A broker's counters start at zero when it opens: the first sample after it
            // appears counts from the tick before, when there was none yet.
            let mut last: (Instant, u64, u64) = (Instant::now(), 0, 0);
            let mut tick = tokio::time::interval(INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(broker) = health.broker() else {
                    last = (Instant::now(), 0, 0);
                    continue;
                };
                // The disk size walks the data directory when its cache is stale: off the
                // async threads.
                let Ok((stored, delivered, disk_bytes)) = tokio::task::spawn_blocking(move || {
                    let (stored, delivered) = broker.metrics().totals();
                    (stored, delivered, broker.disk_usage())
                })
                .await
                else {
                    continue;
                };
                let now = Instant::now();
                let (at, s, d) = last;
                let secs = now.duration_since(at).as_secs_f64().max(0.001);
                series.push(Point {
                    t: now_millis(),
                    in_per_s: rate(stored, s, secs),
                    out_per_s: rate(delivered, d, secs),
                    disk_bytes,
                });
                last = (now, stored, delivered);
            }
        })
    }
}

/// Per second from `before` to `now` over `secs`; a counter that went back (a broker
/// restarted) counts from zero.
#[allow(clippy::cast_precision_loss)]
fn rate(now: u64, before: u64, secs: f64) -> f64 {
    let delta = if now >= before { now - before } else { now };
    (delta as f64 / secs * 10.0).round() / 10.0
}
