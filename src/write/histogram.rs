//! Reading and checking one native histogram of a write request.
//!
//! Remote write 1.0's `prometheus.Histogram` and 2.0's `io.prometheus.write.v2.Histogram` have
//! the same field numbers (the `types.proto` of each), so one reader serves both; 2.0 adds the
//! start timestamp (field 17). The checks
//! are those Prometheus makes before it stores a histogram (spec: "Native Histograms"): a
//! known schema, spans that cover exactly the buckets sent, no negative or NaN count, a count
//! no smaller than its buckets', and strictly increasing custom values for schema -53; plus a
//! bucket limit of ours, so that memory stays bounded.

use std::fmt;

use crate::store::native::{BucketSpan, Buckets, NativeHistogram, CUSTOM_BUCKETS_SCHEMA};
use crate::store::STALE_NAN_BITS;
use crate::write::wire::{wrong_type, Protocol, Reader, WireError, I64, LEN, VARINT};

/// Why a histogram was refused, in words for the 400 body.
#[derive(Debug, Clone, PartialEq)]
pub enum HistogramProblem {
    Malformed(WireError),
    UnknownSchema(i32),
    TooManyBuckets { buckets: usize, limit: usize },
    DeltasAndCounts,
    SpansDisagree { spans: u64, counts: usize },
    NegativeCount(f64),
    NanCount,
    CountBelowBuckets { count: f64, buckets: f64 },
    NegativeSpanOffset,
    CustomValues(&'static str),
}

impl fmt::Display for HistogramProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HistogramProblem::Malformed(error) => write!(f, "malformed native histogram: {error}"),
            HistogramProblem::UnknownSchema(schema) => {
                write!(f, "native histogram schema {schema} is not -53 nor in -4..8")
            }
            HistogramProblem::TooManyBuckets { buckets, limit } => write!(
                f,
                "native histogram has {buckets} buckets, over --write.native-histogram-max-buckets={limit}"
            ),
            HistogramProblem::DeltasAndCounts => {
                f.write_str("native histogram sends both bucket deltas and bucket counts")
            }
            HistogramProblem::SpansDisagree { spans, counts } => write!(
                f,
                "native histogram spans cover {spans} buckets but {counts} counts were sent"
            ),
            HistogramProblem::NegativeCount(count) => {
                write!(f, "native histogram has a negative count ({count})")
            }
            HistogramProblem::NanCount => f.write_str("native histogram has a NaN count"),
            HistogramProblem::CountBelowBuckets { count, buckets } => write!(
                f,
                "native histogram count {count} is below its buckets' total {buckets}"
            ),
            HistogramProblem::NegativeSpanOffset => {
                f.write_str("native histogram has a negative offset after its first span")
            }
            HistogramProblem::CustomValues(what) => {
                write!(f, "custom-bucket histogram: {what}")
            }
        }
    }
}

impl From<WireError> for HistogramProblem {
    fn from(error: WireError) -> Self {
        HistogramProblem::Malformed(error)
    }
}

/// One side's buckets as sent: spans, and either integer deltas or float counts.
#[derive(Default)]
struct SentBuckets {
    spans: Vec<BucketSpan>,
    deltas: Vec<i64>,
    counts: Vec<f64>,
}

/// A histogram as sent: the histogram, and its start timestamp in ms (remote write 2.0
/// `Histogram.start_timestamp`, field 17; 0 when not sent, and always in 1.0, which has no
/// such field).
pub struct SentHistogram {
    pub histogram: NativeHistogram,
    pub start_timestamp_ms: i64,
}

/// Reads and checks a histogram message of this protocol; at most `max_buckets` buckets on
/// both sides.
pub fn read_histogram(
    message: &[u8],
    max_buckets: usize,
    protocol: Protocol,
) -> Result<SentHistogram, HistogramProblem> {
    let mut start_timestamp_ms = 0;
    let mut h = NativeHistogram::default();
    let (mut negative, mut positive) = (SentBuckets::default(), SentBuckets::default());
    let mut custom_values = Vec::new();
    let mut reader = Reader::new(message);
    while let Some((field, wire_type)) = reader.key()? {
        match (field, wire_type) {
            (1, VARINT) => h.count = reader.varint()? as f64,
            (2, I64) => {
                h.count = f64::from_bits(reader.fixed64()?);
                h.float_counts = true;
            }
            (3, I64) => h.sum = f64::from_bits(reader.fixed64()?),
            (4, VARINT) => h.schema = zigzag(reader.varint()?) as i32,
            (5, I64) => h.zero_threshold = f64::from_bits(reader.fixed64()?),
            (6, VARINT) => h.zero_count = reader.varint()? as f64,
            (7, I64) => h.zero_count = f64::from_bits(reader.fixed64()?),
            (8, LEN) => negative.spans.push(read_span(reader.sub_message()?)?),
            (9, _) => repeated(&mut reader, (field, wire_type), &mut negative.deltas, DELTA)?,
            (10, _) => repeated(
                &mut reader,
                (field, wire_type),
                &mut negative.counts,
                DOUBLE,
            )?,
            (11, LEN) => positive.spans.push(read_span(reader.sub_message()?)?),
            (12, _) => repeated(&mut reader, (field, wire_type), &mut positive.deltas, DELTA)?,
            (13, _) => repeated(
                &mut reader,
                (field, wire_type),
                &mut positive.counts,
                DOUBLE,
            )?,
            (14, VARINT) => h.reset_hint = reader.varint()? as i32,
            (15, VARINT) => h.timestamp_ms = reader.varint()? as i64,
            (16, _) => repeated(&mut reader, (field, wire_type), &mut custom_values, DOUBLE)?,
            (17, VARINT) if protocol == Protocol::V2 => {
                start_timestamp_ms = reader.varint()? as i64
            }
            (1..=16, _) => return Err(wrong_type("Histogram", field).into()),
            (17, _) if protocol == Protocol::V2 => {
                return Err(wrong_type("Histogram", field).into())
            }
            _ => reader.skip(wire_type)?,
        }
    }
    if h.sum.to_bits() == STALE_NAN_BITS {
        // A stale marker: it removes the series, and its buckets mean nothing.
        return Ok(SentHistogram {
            histogram: h,
            start_timestamp_ms,
        });
    }
    if h.schema != CUSTOM_BUCKETS_SCHEMA && !(-4..=8).contains(&h.schema) {
        return Err(HistogramProblem::UnknownSchema(h.schema));
    }
    let sent = negative.deltas.len().max(negative.counts.len())
        + positive.deltas.len().max(positive.counts.len());
    if sent > max_buckets {
        return Err(HistogramProblem::TooManyBuckets {
            buckets: sent,
            limit: max_buckets,
        });
    }
    h.negative = absolute(negative)?;
    h.positive = absolute(positive)?;
    h.custom_values = custom_values.into();
    check_counts(&h)?;
    if h.schema == CUSTOM_BUCKETS_SCHEMA {
        check_custom(&h)?;
    }
    Ok(SentHistogram {
        histogram: h,
        start_timestamp_ms,
    })
}

/// The buckets with absolute counts, once their spans are checked against them.
fn absolute(sent: SentBuckets) -> Result<Buckets, HistogramProblem> {
    if !sent.deltas.is_empty() && !sent.counts.is_empty() {
        return Err(HistogramProblem::DeltasAndCounts);
    }
    if sent.spans.iter().skip(1).any(|span| span.offset < 0) {
        return Err(HistogramProblem::NegativeSpanOffset);
    }
    let counts: Vec<f64> = if sent.deltas.is_empty() {
        sent.counts
    } else {
        let mut running = 0i64;
        sent.deltas
            .iter()
            .map(|delta| {
                running = running.wrapping_add(*delta);
                running as f64
            })
            .collect()
    };
    let spans: u64 = sent.spans.iter().map(|span| u64::from(span.length)).sum();
    if spans != counts.len() as u64 {
        return Err(HistogramProblem::SpansDisagree {
            spans,
            counts: counts.len(),
        });
    }
    Ok(Buckets {
        spans: sent.spans.into(),
        counts: counts.into(),
    })
}

/// No count is NaN or negative, and the total count is no smaller than its buckets'.
pub(crate) fn check_counts(h: &NativeHistogram) -> Result<(), HistogramProblem> {
    let buckets = h.negative.counts.iter().chain(h.positive.counts.iter());
    let mut total = 0.0;
    for &count in buckets.chain([&h.zero_count, &h.count]) {
        if count.is_nan() {
            return Err(HistogramProblem::NanCount);
        }
        if count < 0.0 {
            return Err(HistogramProblem::NegativeCount(count));
        }
        total += count;
    }
    // `total` took in the count itself last.
    let buckets = total - h.count;
    // Float counts are sums of floats: a rounding's worth of difference is no disagreement.
    let slack = if h.float_counts { buckets * 1e-9 } else { 0.0 };
    if buckets > h.count + slack {
        return Err(HistogramProblem::CountBelowBuckets {
            count: h.count,
            buckets,
        });
    }
    Ok(())
}

fn check_custom(h: &NativeHistogram) -> Result<(), HistogramProblem> {
    let values = &h.custom_values;
    if values.iter().any(|v| v.is_nan() || v.is_infinite()) {
        return Err(HistogramProblem::CustomValues(
            "a custom value is NaN or infinite",
        ));
    }
    if values.windows(2).any(|pair| pair[0] >= pair[1]) {
        return Err(HistogramProblem::CustomValues(
            "custom values do not increase",
        ));
    }
    if !h.negative.counts.is_empty() || h.zero_count != 0.0 {
        return Err(HistogramProblem::CustomValues(
            "negative or zero buckets are sent",
        ));
    }
    // Index `values.len()` is the +Inf bucket.
    let in_range = h
        .positive
        .indexed()
        .all(|(index, _)| (0..=values.len() as i64).contains(&index));
    if !in_range {
        return Err(HistogramProblem::CustomValues(
            "a bucket lies outside the custom values",
        ));
    }
    Ok(())
}

fn read_span(mut reader: Reader) -> Result<BucketSpan, WireError> {
    let mut span = BucketSpan {
        offset: 0,
        length: 0,
    };
    while let Some((field, wire_type)) = reader.key()? {
        match (field, wire_type) {
            (1, VARINT) => span.offset = zigzag(reader.varint()?) as i32,
            (2, VARINT) => span.length = reader.varint()? as u32,
            (1 | 2, _) => return Err(wrong_type("BucketSpan", field)),
            _ => reader.skip(wire_type)?,
        }
    }
    Ok(span)
}

/// A repeated scalar field, packed (one length-delimited run) or not (one value per key).
fn repeated<T>(
    reader: &mut Reader,
    (field, wire_type): (u32, u8),
    out: &mut Vec<T>,
    (scalar_type, read_one): Scalar<T>,
) -> Result<(), WireError> {
    if wire_type == LEN {
        let mut packed = reader.sub_message()?;
        while !packed.at_end() {
            out.push(read_one(&mut packed)?);
        }
    } else if wire_type == scalar_type {
        out.push(read_one(reader)?);
    } else {
        return Err(wrong_type("Histogram", field));
    }
    Ok(())
}

/// A scalar's wire type, and how to read one.
type Scalar<T> = (u8, fn(&mut Reader) -> Result<T, WireError>);

/// A `sint64` bucket delta.
const DELTA: Scalar<i64> = (VARINT, |reader| reader.varint().map(zigzag));

/// A `double` count or custom value.
const DOUBLE: Scalar<f64> = (I64, |reader| reader.fixed64().map(f64::from_bits));

/// A `sint32` or `sint64` from its zigzag varint.
fn zigzag(value: u64) -> i64 {
    (value >> 1) as i64 ^ -((value & 1) as i64)
}
