//! OTLP exponential histograms as native histograms, as Prometheus 3 converts them
//! (`exponentialToNativeHistogram`): the same base-2 exponential buckets, OTLP's scale being
//! the native schema; scales above 8 are reduced to 8 by merging `2^(scale-8)` neighbouring
//! buckets, scales below -4 refused. OTLP bucket `i` covers `(base^i, base^(i+1)]`, Prometheus
//! bucket `i` covers `(base^(i-1), base^i]`, so an index moves up by one.
//!
//! Also the sum of two histograms, for delta temporality.

use std::collections::BTreeMap;

use crate::otlp::model::{ExponentialBuckets, ExponentialPoint};
use crate::store::native::{BucketSpan, Buckets, NativeHistogram};
use crate::store::STALE_NAN_BITS;
use crate::write::ingest::DropReason;

/// The largest schema of exponential native histograms.
const MAX_SCHEMA: i32 = 8;
const MIN_SCHEMA: i32 = -4;
/// The zero threshold Prometheus gives a histogram whose sender set none.
pub const DEFAULT_ZERO_THRESHOLD: f64 = 1e-128;
/// Zero buckets between two populated ones that still go in one span, as client_golang and
/// Prometheus lay them out; a longer gap starts a new span.
const GAP_IN_SPAN: i64 = 2;

/// The native histogram of a point at `timestamp_ms`; `Err` with the reason for a scale below
/// -4, or for more buckets than `max_buckets` even once merged (checked before they are, so
/// that a request cannot make this server hold many times its own size). A point with no
/// recorded value becomes a stale marker.
pub fn to_native(
    point: &ExponentialPoint,
    timestamp_ms: i64,
    max_buckets: usize,
) -> Result<NativeHistogram, (DropReason, String)> {
    if point.scale < MIN_SCHEMA {
        return Err((
            DropReason::InvalidNativeHistogram,
            format!(
                "exponential histogram scale {} is below {MIN_SCHEMA}",
                point.scale
            ),
        ));
    }
    // Past 63 every index merges into one or two buckets anyway.
    let scale_down = (point.scale - MAX_SCHEMA).clamp(0, 63) as u32;
    let sent = point.positive.bucket_counts.len() + point.negative.bucket_counts.len();
    if sent >> scale_down > max_buckets {
        return Err((
            DropReason::NativeHistogramBucketLimit,
            format!("exponential histogram has {sent} buckets, over --write.native-histogram-max-buckets={max_buckets}"),
        ));
    }
    let mut histogram = NativeHistogram {
        timestamp_ms,
        count: point.count as f64,
        sum: point.sum.unwrap_or(0.0),
        schema: point.scale.min(MAX_SCHEMA),
        zero_threshold: match point.zero_threshold {
            threshold if threshold > 0.0 => threshold,
            _ => DEFAULT_ZERO_THRESHOLD,
        },
        zero_count: point.zero_count as f64,
        negative: layout(indexed(&point.negative, scale_down)),
        positive: layout(indexed(&point.positive, scale_down)),
        ..NativeHistogram::default()
    };
    if point.common.no_recorded_value() {
        histogram.sum = f64::from_bits(STALE_NAN_BITS);
    }
    Ok(histogram)
}

/// Each Prometheus bucket index and its count, neighbours merged `2^scale_down` to one.
fn indexed(buckets: &ExponentialBuckets, scale_down: u32) -> BTreeMap<i64, f64> {
    let mut merged = BTreeMap::new();
    for (n, &count) in buckets.bucket_counts.iter().enumerate() {
        let otlp_index = i64::from(buckets.offset) + n as i64;
        *merged.entry((otlp_index >> scale_down) + 1).or_insert(0.0) += count as f64;
    }
    merged
}

/// Buckets from indexed counts: empty buckets at either end left out, gaps of up to
/// [`GAP_IN_SPAN`] empty buckets kept inside a span.
fn layout(counts: BTreeMap<i64, f64>) -> Buckets {
    let mut spans: Vec<BucketSpan> = Vec::new();
    let mut kept = Vec::new();
    let mut previous_end: Option<i64> = None;
    for (index, count) in counts.into_iter().filter(|(_, count)| *count != 0.0) {
        match previous_end {
            Some(end) if index - end <= GAP_IN_SPAN => {
                let span = spans.last_mut().expect("a span was started");
                kept.extend(std::iter::repeat_n(0.0, (index - end) as usize));
                span.length += (index - end) as u32 + 1;
            }
            _ => {
                let offset = match previous_end {
                    Some(end) => index - end,
                    None => index,
                };
                spans.push(BucketSpan {
                    offset: offset as i32,
                    length: 1,
                });
            }
        }
        kept.push(count);
        previous_end = Some(index + 1);
    }
    Buckets {
        spans: spans.into(),
        counts: kept.into(),
    }
}

/// `base + delta`: counts and sums added, at the coarser schema of the two (a finer one's
/// buckets merged into it). `None` when they cannot be added: different zero thresholds, or a
/// custom-bucket histogram.
pub fn add(base: &NativeHistogram, delta: &NativeHistogram) -> Option<NativeHistogram> {
    let exponential = |h: &NativeHistogram| (MIN_SCHEMA..=MAX_SCHEMA).contains(&h.schema);
    if base.zero_threshold != delta.zero_threshold || !exponential(base) || !exponential(delta) {
        return None;
    }
    let schema = base.schema.min(delta.schema);
    let sum_of = |side: fn(&NativeHistogram) -> &Buckets| {
        let mut merged = BTreeMap::new();
        for h in [base, delta] {
            let scale_down = (h.schema - schema) as u32;
            for (index, count) in side(h).indexed() {
                // Prometheus index i at scale s lies in index ceil(i / 2^d) at scale s - d.
                let coarser = ((index - 1) >> scale_down) + 1;
                *merged.entry(coarser).or_insert(0.0) += count;
            }
        }
        layout(merged)
    };
    Some(NativeHistogram {
        timestamp_ms: delta.timestamp_ms,
        count: base.count + delta.count,
        sum: base.sum + delta.sum,
        schema,
        zero_threshold: base.zero_threshold,
        zero_count: base.zero_count + delta.zero_count,
        negative: sum_of(|h| &h.negative),
        positive: sum_of(|h| &h.positive),
        ..NativeHistogram::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(scale: i32, offset: i32, counts: &[u64]) -> ExponentialPoint<'static> {
        ExponentialPoint {
            count: counts.iter().sum(),
            sum: Some(10.0),
            scale,
            positive: ExponentialBuckets {
                offset,
                bucket_counts: counts.to_vec(),
            },
            ..ExponentialPoint::default()
        }
    }

    fn buckets(h: &NativeHistogram) -> Vec<(i64, f64)> {
        h.positive.indexed().collect()
    }

    #[test]
    fn indexes_move_up_by_one_and_gaps_split_spans() {
        let h = to_native(&point(3, -2, &[1, 0, 2, 0, 0, 0, 5]), 7, 100).unwrap();
        assert_eq!(h.schema, 3);
        assert_eq!(h.zero_threshold, DEFAULT_ZERO_THRESHOLD);
        assert_eq!(buckets(&h), [(-1, 1.0), (0, 0.0), (1, 2.0), (5, 5.0)]);
        assert_eq!(h.positive.spans.len(), 2);
        assert_eq!((h.count, h.sum, h.timestamp_ms), (8.0, 10.0, 7));
    }

    #[test]
    fn scales_above_8_merge_neighbours_and_below_minus_4_are_refused() {
        // Scale 10 to 8: four OTLP buckets make one. OTLP indexes 0..=7 are Prometheus
        // indexes 1..=8 at scale 10, which are 1 (from 1..=4) and 2 (5..=8) at scale 8.
        let h = to_native(&point(10, 0, &[1, 1, 1, 1, 1, 1, 1, 1]), 0, 2).unwrap();
        assert_eq!(h.schema, 8);
        assert_eq!(buckets(&h), [(1, 4.0), (2, 4.0)]);
        assert!(to_native(&point(-5, 0, &[1]), 0, 100).is_err());
        // Eight buckets at scale 10 are at least two at 8: over a limit of one.
        let refused = to_native(&point(10, 0, &[1; 8]), 0, 1).unwrap_err();
        assert_eq!(refused.0, DropReason::NativeHistogramBucketLimit);
        // A scale far above 8 merges everything, without shifting past 63 bits.
        let merged = to_native(&point(i32::MAX, -3, &[1, 1, 1, 1, 1, 1]), 0, 100).unwrap();
        assert_eq!((merged.schema, merged.count), (8, 6.0));
    }

    #[test]
    fn histograms_add_at_the_coarser_schema() {
        let fine = to_native(&point(1, 0, &[1, 2, 3, 4]), 1, 100).unwrap();
        let coarse = to_native(&point(0, 0, &[10]), 2, 100).unwrap();
        // Scale 1 indexes 1..=4 are scale 0 indexes 1, 1, 2, 2.
        let total = add(&coarse, &fine).unwrap();
        assert_eq!(total.schema, 0);
        assert_eq!(buckets(&total), [(1, 13.0), (2, 7.0)]);
        assert_eq!(
            (total.count, total.sum, total.timestamp_ms),
            (20.0, 20.0, 1)
        );
        let mut other_zero = fine.clone();
        other_zero.zero_threshold = 0.5;
        assert!(add(&coarse, &other_zero).is_none());
    }
}
