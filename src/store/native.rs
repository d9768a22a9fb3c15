//! What a series holds beyond its newest float sample: its newest native histogram, the start
//! ("created") timestamp its sender gave, and its newest exemplars.
//!
//! Native histograms per https://prometheus.io/docs/specs/native_histograms/: exponential
//! schemas -4..8, where bucket `i` holds observations in `(2^((i-1)·2^-schema), 2^(i·2^-schema)]`
//! (mirrored for negative buckets), and schema -53, custom buckets, whose upper bounds are the
//! histogram's custom values. Counts are kept absolute, as floats, whether they were sent as
//! integer deltas or as float counts; `float_counts` remembers which.

/// Exemplars kept per series: the newest by timestamp. A scrape shows at most one per sample
/// line (OpenMetrics), and a histogram's classic buckets are a handful of lines.
pub const EXEMPLARS_PER_SERIES: usize = 8;

/// The schema of custom-bucket histograms.
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

/// A run of consecutive bucket indexes: `offset` from the end of the previous run (or, for the
/// first, the first index), then `length` buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketSpan {
    pub offset: i32,
    pub length: u32,
}

/// The buckets on one side of zero: their spans, and one absolute count per bucket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    pub spans: Box<[BucketSpan]>,
    pub counts: Box<[f64]>,
}

impl Buckets {
    /// Each bucket's index and count, in index order.
    pub fn indexed(&self) -> impl Iterator<Item = (i64, f64)> + '_ {
        // Where the previous span ended (exclusive); each span starts its offset after it.
        let mut end = 0i64;
        let indexes = self.spans.iter().enumerate().flat_map(move |(n, span)| {
            let start = i64::from(span.offset) + if n == 0 { 0 } else { end };
            end = start + i64::from(span.length);
            start..end
        });
        indexes.zip(self.counts.iter().copied())
    }
}

/// One native histogram sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NativeHistogram {
    pub timestamp_ms: i64,
    pub count: f64,
    pub sum: f64,
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: f64,
    pub negative: Buckets,
    pub positive: Buckets,
    /// Upper bounds of the buckets of a custom-bucket histogram, increasing.
    pub custom_values: Box<[f64]>,
    /// Counts were sent as floats (`count_float`, bucket counts), not integers (deltas).
    pub float_counts: bool,
    /// The sender's reset hint; 3 (`GAUGE`) marks a gauge histogram.
    pub reset_hint: i32,
}

impl NativeHistogram {
    /// The classic histogram this one reads as: `(le, cumulative count)` for every populated
    /// bucket's upper bound in increasing order (every custom value, populated or not, for
    /// custom buckets), then `+Inf` with the total count, so that `histogram_quantile` over
    /// text works. A negative bucket's upper bound is minus its lower magnitude, the zero
    /// bucket's is the zero threshold; bounds that would not increase (a bucket inside the zero
    /// bucket) are merged into the one before, so no `le` is written twice.
    pub fn classic_buckets(&self) -> Vec<(f64, f64)> {
        let mut out: Vec<(f64, f64)> = Vec::new();
        let mut cumulative = 0.0;
        let mut push = |le: f64, count: f64, out: &mut Vec<(f64, f64)>| {
            cumulative += count;
            match out.last_mut() {
                Some(last) if le <= last.0 => last.1 = cumulative,
                _ => out.push((le, cumulative)),
            }
        };
        if self.schema == CUSTOM_BUCKETS_SCHEMA {
            let mut counts = self.positive.indexed().peekable();
            for (index, &le) in self.custom_values.iter().enumerate() {
                let mut count = 0.0;
                while let Some((_, c)) = counts.next_if(|(i, _)| *i <= index as i64) {
                    count += c;
                }
                push(le, count, &mut out);
            }
        } else {
            let negative: Vec<(i64, f64)> = self.negative.indexed().collect();
            for &(index, count) in negative.iter().rev().filter(|(_, c)| *c != 0.0) {
                push(-bucket_bound(index - 1, self.schema), count, &mut out);
            }
            if self.zero_count != 0.0 {
                push(self.zero_threshold, self.zero_count, &mut out);
            }
            for (index, count) in self.positive.indexed().filter(|(_, c)| *c != 0.0) {
                push(bucket_bound(index, self.schema), count, &mut out);
            }
        }
        out.retain(|(le, _)| *le != f64::INFINITY);
        out.push((f64::INFINITY, self.count));
        out
    }
}

/// The upper bound of exponential bucket `index`: `2^(index · 2^-schema)`, computed as
/// Prometheus does (a fraction in [0.5, 1) times a power of two), and the largest float where
/// that overflows.
pub fn bucket_bound(index: i64, schema: i32) -> f64 {
    let bound = if schema <= 0 {
        pow2(index.saturating_mul(1 << -schema))
    } else {
        let per_octave = 1i64 << schema;
        let fraction = (index.rem_euclid(per_octave) as f64 / per_octave as f64).exp2();
        fraction * pow2(index.div_euclid(per_octave))
    };
    if bound.is_infinite() {
        f64::MAX
    } else {
        bound
    }
}

/// `2^exponent`, exact for every representable power, infinity above and zero below.
fn pow2(exponent: i64) -> f64 {
    match exponent {
        1024.. => f64::INFINITY,
        -1022..=1023 => f64::from_bits(((exponent + 1023) as u64) << 52),
        -1074..=-1023 => f64::from_bits(1 << (exponent + 1074)),
        _ => 0.0,
    }
}

/// An exemplar: labels (a trace id, usually), a value and, when the sender gave one, a time.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    pub labels: Box<[(Box<str>, Box<str>)]>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// A series' holdings beyond its newest float sample. Shared with scrapes by reference count,
/// so a write that changes it copies it only while a scrape still reads the old one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extras {
    /// The newest sample is this histogram (the series' float value is then not shown).
    pub histogram: Option<NativeHistogram>,
    /// When the series started counting (a remote write 2.0 start timestamp), in ms.
    pub start_timestamp_ms: Option<i64>,
    /// The newest exemplars, oldest first, at most [`EXEMPLARS_PER_SERIES`].
    pub exemplars: Vec<Exemplar>,
}

impl Extras {
    pub fn is_empty(&self) -> bool {
        self.histogram.is_none() && self.start_timestamp_ms.is_none() && self.exemplars.is_empty()
    }

    /// Adds exemplars, keeping the newest; one already held (a retried request) is not added
    /// twice. Returns how many were new.
    pub fn add_exemplars(&mut self, exemplars: &[Exemplar]) -> usize {
        let before = self.exemplars.len();
        let mut added = 0;
        for exemplar in exemplars {
            if !self.exemplars.contains(exemplar) {
                self.exemplars.push(exemplar.clone());
                added += 1;
            }
        }
        if self.exemplars.len() != before {
            self.exemplars
                .sort_by_key(|e| e.timestamp_ms.unwrap_or(i64::MIN));
            let excess = self.exemplars.len().saturating_sub(EXEMPLARS_PER_SERIES);
            self.exemplars.drain(..excess);
        }
        added
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets(spans: &[(i32, u32)], counts: &[f64]) -> Buckets {
        Buckets {
            spans: spans
                .iter()
                .map(|&(offset, length)| BucketSpan { offset, length })
                .collect(),
            counts: counts.into(),
        }
    }

    fn histogram(schema: i32) -> NativeHistogram {
        NativeHistogram {
            schema,
            zero_threshold: 0.001,
            ..NativeHistogram::default()
        }
    }

    #[test]
    fn spans_give_each_count_its_index() {
        let b = buckets(&[(-2, 2), (3, 1), (0, 2)], &[1.0, 2.0, 3.0, 4.0, 5.0]);
        let indexed: Vec<(i64, f64)> = b.indexed().collect();
        assert_eq!(
            indexed,
            [(-2, 1.0), (-1, 2.0), (3, 3.0), (4, 4.0), (5, 5.0)]
        );
    }

    #[test]
    fn bounds_are_powers_of_the_schema_base() {
        assert_eq!(bucket_bound(0, 0), 1.0);
        assert_eq!(bucket_bound(3, 0), 8.0);
        assert_eq!(bucket_bound(-1, 0), 0.5);
        assert_eq!(bucket_bound(1, -2), 16.0);
        assert_eq!(bucket_bound(1, 1), std::f64::consts::SQRT_2);
        assert_eq!(bucket_bound(4, 2), 2.0);
        assert_eq!(bucket_bound(5, 2), 2f64.powf(1.25));
        assert_eq!(bucket_bound(-3, 3), 2f64.powf(-0.375));
        assert_eq!(bucket_bound(300, -2), f64::MAX);
        assert_eq!(bucket_bound(-2000, 0), 0.0);
    }

    #[test]
    fn exponential_histogram_reads_as_cumulative_classic_buckets() {
        let mut h = histogram(0);
        h.count = 12.0;
        h.zero_count = 2.0;
        h.negative = buckets(&[(1, 2)], &[1.0, 3.0]); // (-2,-1] and (-4,-2]
        h.positive = buckets(&[(0, 3)], &[1.0, 0.0, 5.0]); // (0.5,1], (1,2], (2,4]
        assert_eq!(
            h.classic_buckets(),
            [
                (-2.0, 3.0),
                (-1.0, 4.0),
                (0.001, 6.0),
                (1.0, 7.0),
                (4.0, 12.0),
                (f64::INFINITY, 12.0)
            ]
        );
    }

    #[test]
    fn custom_buckets_show_every_custom_value() {
        let mut h = histogram(CUSTOM_BUCKETS_SCHEMA);
        h.count = 9.0;
        h.custom_values = [0.1, 0.5, 1.0].into();
        // Buckets 1 and 3: (0.1, 0.5] and (1, +Inf).
        h.positive = buckets(&[(1, 1), (1, 1)], &[4.0, 5.0]);
        assert_eq!(
            h.classic_buckets(),
            [(0.1, 0.0), (0.5, 4.0), (1.0, 4.0), (f64::INFINITY, 9.0)]
        );
    }

    #[test]
    fn buckets_inside_the_zero_bucket_merge_rather_than_repeat_a_bound() {
        let mut h = histogram(0);
        h.count = 3.0;
        h.zero_threshold = 2.0;
        h.zero_count = 1.0;
        h.positive = buckets(&[(0, 2)], &[1.0, 1.0]); // le 1 and le 2, both inside the zero bucket
        assert_eq!(h.classic_buckets(), [(2.0, 3.0), (f64::INFINITY, 3.0)]);
    }

    #[test]
    fn exemplars_keep_the_newest_once_each() {
        let exemplar = |t: i64| Exemplar {
            labels: Box::new([("trace_id".into(), format!("t{t}").into())]),
            value: t as f64,
            timestamp_ms: Some(t),
        };
        let mut extras = Extras::default();
        let first: Vec<Exemplar> = (0..6).map(exemplar).collect();
        assert_eq!(extras.add_exemplars(&first), 6);
        assert_eq!(extras.add_exemplars(&first), 0, "a retry adds nothing");
        let later: Vec<Exemplar> = (6..12).map(exemplar).collect();
        assert_eq!(extras.add_exemplars(&later), 6);
        let kept: Vec<i64> = extras
            .exemplars
            .iter()
            .map(|e| e.timestamp_ms.unwrap())
            .collect();
        assert_eq!(kept, (4..12).collect::<Vec<_>>());
    }
}
