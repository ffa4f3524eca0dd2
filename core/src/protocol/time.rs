//! Protobuf `Timestamp` and `Duration` to and from milliseconds and [`std::time::Duration`]: one
//! set of conversions for the broker, the client SDK, the CLI and the tests.
//!
//! Milliseconds are what RocketMQ stores and compares (born, store and delivery timestamps,
//! invisible durations), so that is the unit here. Conversions saturate rather than wrap.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now (0 if the clock is before 1970).
#[must_use]
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Milliseconds since the epoch of a protobuf timestamp.
#[must_use]
pub fn timestamp_ms(t: &prost_types::Timestamp) -> i64 {
    t.seconds.saturating_mul(1000).saturating_add(i64::from(t.nanos) / 1_000_000)
}

/// A protobuf timestamp from milliseconds since the epoch.
#[must_use]
pub fn timestamp(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        // Below 1000 * 1_000_000, so it fits.
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// Milliseconds of a protobuf duration; negative ones count as 0.
#[must_use]
pub fn duration_ms(d: &prost_types::Duration) -> i64 {
    d.seconds.saturating_mul(1000).saturating_add(i64::from(d.nanos) / 1_000_000).max(0)
}

/// Milliseconds of a protobuf duration, sign kept; `None` if it is not a valid Duration
/// (nanos outside ±999,999,999, or seconds and nanos of opposite signs), as protobuf's
/// `Durations.toMillis` refuses it.
#[must_use]
pub fn signed_duration_ms(d: &prost_types::Duration) -> Option<i64> {
    let valid_nanos = d.nanos.unsigned_abs() < 1_000_000_000;
    let same_sign = d.seconds == 0 || d.nanos == 0 || (d.seconds < 0) == (d.nanos < 0);
    (valid_nanos && same_sign)
        .then(|| d.seconds.saturating_mul(1000).saturating_add(i64::from(d.nanos) / 1_000_000))
}

/// A protobuf duration from milliseconds.
#[must_use]
pub fn duration(ms: i64) -> prost_types::Duration {
    // `ms % 1000` is within ±999, so the nanos fit.
    prost_types::Duration { seconds: ms / 1000, nanos: ((ms % 1000) * 1_000_000) as i32 }
}

/// A protobuf duration from a [`Duration`] (saturating at `i64::MAX` seconds).
#[must_use]
pub fn from_std(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        // Below 1_000_000_000, so it fits.
        nanos: d.subsec_nanos() as i32,
    }
}

/// A [`Duration`] from a protobuf duration; negative ones and invalid ones count as zero.
#[must_use]
pub fn to_std(d: &prost_types::Duration) -> Duration {
    Duration::from_millis(u64::try_from(duration_ms(d)).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_milliseconds_including_before_the_epoch() {
        for ms in [0, 1, 999, 1000, 1_700_000_000_123, -1, -1001] {
            let t = timestamp(ms);
            assert!((0..1_000_000_000).contains(&t.nanos), "{ms}: {t:?}");
            assert_eq!(timestamp_ms(&t), ms);
        }
    }

    #[test]
    fn durations_convert_and_refuse_what_protobuf_refuses() {
        assert_eq!(duration_ms(&duration(1500)), 1500);
        assert_eq!(duration_ms(&duration(-1500)), 0);
        assert_eq!(signed_duration_ms(&duration(-1500)), Some(-1500));
        let mixed = prost_types::Duration { seconds: 1, nanos: -1 };
        assert_eq!(signed_duration_ms(&mixed), None);
        let too_many_nanos = prost_types::Duration { seconds: 0, nanos: 1_000_000_000 };
        assert_eq!(signed_duration_ms(&too_many_nanos), None);
        let d = Duration::from_millis(30_250);
        assert_eq!(from_std(d), prost_types::Duration { seconds: 30, nanos: 250_000_000 });
        assert_eq!(to_std(&from_std(d)), d);
    }
}
