//! Delta temporality made cumulative, as the OpenTelemetry collector's `prometheus` exporter
//! does (its accumulator): a delta point that starts where the series' held point ends (its
//! start time is the held timestamp) is added to it, and the series keeps its start time; any
//! other delta point (the first, or one after a gap or a restart) starts the series again
//! from its own value and start time. A point no newer than the held one is left to the
//! store, which ignores it as out of order; a stale marker is never added.
//!
//! Unlike the collector, non-monotonic delta sums are added up too (into a gauge), rather than
//! dropped: the running total is what such a sum means. Two native histograms of different
//! zero thresholds cannot be added; the newer starts the series again.

use std::sync::{Mutex, MutexGuard};

use crate::otlp::exponential;
use crate::store::native::NativeHistogram;
use crate::store::{is_stale_marker, Latest};

/// When a delta point starts and ends, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub start_ms: Option<i64>,
    pub time_ms: i64,
}

/// Held while a delta point reads what its series holds and writes the sum, so that two
/// requests adding to one series at once do not lose either.
static ADDING: Mutex<()> = Mutex::new(());

pub fn lock() -> MutexGuard<'static, ()> {
    // Nothing is kept under the lock, so a panic while it was held left nothing half done.
    ADDING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The held point, if a delta point over `interval` continues it.
fn continues(held: Option<&Latest>, interval: Interval) -> Option<&Latest> {
    held.filter(|held| {
        interval.start_ms == Some(held.sample.timestamp_ms)
            && interval.time_ms > held.sample.timestamp_ms
    })
}

/// The value to store for a float point, and its start timestamp.
pub fn add_float(held: Option<&Latest>, value: f64, interval: Interval) -> (f64, Option<i64>) {
    match continues(held, interval) {
        Some(held) if !is_stale_marker(value) && !held.sample.value.is_nan() => (
            held.sample.value + value,
            held.start_timestamp_ms.or(interval.start_ms),
        ),
        _ => (value, interval.start_ms),
    }
}

/// The histogram to store for a native histogram point, and its start timestamp.
pub fn add_histogram(
    held: Option<&Latest>,
    histogram: NativeHistogram,
    interval: Interval,
) -> (NativeHistogram, Option<i64>) {
    let continued = continues(held, interval).and_then(|held| {
        let base = held.histogram.as_ref()?;
        let sum = (!is_stale_marker(histogram.sum))
            .then(|| exponential::add(base, &histogram))
            .flatten()?;
        Some((sum, held.start_timestamp_ms.or(interval.start_ms)))
    });
    continued.unwrap_or((histogram, interval.start_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Sample;

    fn held(value: f64, timestamp_ms: i64, start: i64) -> Latest {
        Latest {
            sample: Sample {
                value,
                timestamp_ms,
            },
            start_timestamp_ms: Some(start),
            histogram: None,
        }
    }

    fn delta(start_ms: i64, time_ms: i64) -> Interval {
        Interval {
            time_ms,
            start_ms: Some(start_ms),
        }
    }

    #[test]
    fn a_delta_that_continues_the_held_point_adds_to_it() {
        let held = held(5.0, 2000, 1000);
        assert_eq!(
            add_float(Some(&held), 3.0, delta(2000, 3000)),
            (8.0, Some(1000))
        );
        // A gap (or a restart of the sender) starts again.
        assert_eq!(
            add_float(Some(&held), 3.0, delta(2500, 3000)),
            (3.0, Some(2500))
        );
        // Nothing held: the first point.
        assert_eq!(add_float(None, 3.0, delta(2000, 3000)), (3.0, Some(2000)));
        // Not newer: left as it is, for the store to ignore.
        assert_eq!(
            add_float(Some(&held), 3.0, delta(2000, 2000)),
            (3.0, Some(2000))
        );
        let stale = f64::from_bits(crate::store::STALE_NAN_BITS);
        assert!(is_stale_marker(
            add_float(Some(&held), stale, delta(2000, 3000)).0
        ));
    }
}
