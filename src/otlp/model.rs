//! An OTLP metrics export request as read from either encoding: the parts of
//! `ExportMetricsServiceRequest` (opentelemetry-proto `collector/metrics/v1`, `metrics/v1`,
//! `common/v1`, `resource/v1`) that become Prometheus series. Strings borrow from what was
//! read (the protobuf body, or the parsed JSON), so a request is read without copying them.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::ops::Range;

/// `ExportMetricsServiceRequest`.
#[derive(Debug, Default, PartialEq)]
pub struct ExportRequest<'a> {
    pub resources: Vec<ResourceMetrics<'a>>,
    /// Every data point's attributes, one after another (a point holds its range): one list
    /// for the request rather than one per point, which would be most of reading it.
    pub point_attributes: Vec<Attribute<'a>>,
}

impl<'a> ExportRequest<'a> {
    /// The attributes of a data point of this request.
    pub fn attributes_of(&self, common: &PointCommon) -> &[Attribute<'a>] {
        let range = common.attributes.start as usize..common.attributes.end as usize;
        &self.point_attributes[range]
    }
}

/// The list one worker reads requests' point attributes into, kept empty from one request
/// to the next, as remote write keeps its decoded request: its memory stays the worker's
/// rather than being allocated afresh each time. Allocated afresh, the list of a request of a
/// few MiB was mapped and unmapped by musl, and cost the static build a fifth of its CPU per
/// point; left to glibc, which keeps freed memory in its arenas, lists of every size scattered
/// there, and a million OTLP series held 13% more memory than through remote write.
#[derive(Debug, Default)]
pub struct SpareAttributes(Vec<Attribute<'static>>);

/// A list grown past this by one unusually large request is not kept after it.
const KEEP_ATTRIBUTES_BYTES: usize = 4 << 20;

impl SpareAttributes {
    /// The kept list, empty, to borrow from a new request.
    pub fn take<'a>(&mut self) -> Vec<Attribute<'a>> {
        emptied(std::mem::take(&mut self.0))
    }

    /// Keeps `list`, emptied, for the next request.
    pub fn keep(&mut self, list: Vec<Attribute<'_>>) {
        if list.capacity() * std::mem::size_of::<Attribute>() <= KEEP_ATTRIBUTES_BYTES {
            self.0 = emptied(list);
        }
    }
}

/// `list` emptied, as a list that may borrow for another lifetime: collecting an empty
/// vector's iterator into a vector of the same layout keeps its memory (std collects in
/// place), so that no borrow outlives what it borrows from.
fn emptied<'b>(mut list: Vec<Attribute<'_>>) -> Vec<Attribute<'b>> {
    list.clear();
    list.into_iter()
        .map(|_| unreachable!("the list is empty"))
        .collect()
}

/// `ResourceMetrics`: the resource's attributes, and its metrics by instrumentation scope.
#[derive(Debug, Default, PartialEq)]
pub struct ResourceMetrics<'a> {
    pub attributes: Vec<Attribute<'a>>,
    pub scopes: Vec<ScopeMetrics<'a>>,
}

/// `ScopeMetrics`: the scope itself is not translated (Prometheus's
/// `promote_scope_metadata` is off by default), only its metrics.
#[derive(Debug, Default, PartialEq)]
pub struct ScopeMetrics<'a> {
    pub metrics: Vec<Metric<'a>>,
}

#[derive(Debug, Default, PartialEq)]
pub struct Metric<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub unit: &'a str,
    pub data: Data<'a>,
}

/// `AggregationTemporality`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Temporality {
    #[default]
    Unspecified,
    Delta,
    Cumulative,
}

impl Temporality {
    pub fn from_number(number: u64) -> Temporality {
        match number {
            1 => Temporality::Delta,
            2 => Temporality::Cumulative,
            _ => Temporality::Unspecified,
        }
    }
}

/// `Metric.data`, the oneof: `Empty` when none was sent.
#[derive(Debug, Default, PartialEq)]
pub enum Data<'a> {
    #[default]
    Empty,
    Gauge(Vec<NumberPoint<'a>>),
    Sum {
        points: Vec<NumberPoint<'a>>,
        temporality: Temporality,
        monotonic: bool,
    },
    Histogram {
        points: Vec<HistogramPoint<'a>>,
        temporality: Temporality,
    },
    Exponential {
        points: Vec<ExponentialPoint<'a>>,
        temporality: Temporality,
    },
    Summary(Vec<SummaryPoint<'a>>),
}

impl<'a> Data<'a> {
    /// The fields every point has, point by point.
    pub fn commons(&self) -> Box<dyn Iterator<Item = &PointCommon<'a>> + '_> {
        match self {
            Data::Empty => Box::new(std::iter::empty()),
            Data::Gauge(points) | Data::Sum { points, .. } => {
                Box::new(points.iter().map(|p| &p.common))
            }
            Data::Histogram { points, .. } => Box::new(points.iter().map(|p| &p.common)),
            Data::Exponential { points, .. } => Box::new(points.iter().map(|p| &p.common)),
            Data::Summary(points) => Box::new(points.iter().map(|p| &p.common)),
        }
    }
}

/// `DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK`: the series has no value any more.
pub const NO_RECORDED_VALUE: u32 = 1;

/// What every kind of data point has.
#[derive(Debug, Default, PartialEq)]
pub struct PointCommon<'a> {
    /// Where the point's attributes are in [`ExportRequest::point_attributes`].
    pub attributes: Range<u32>,
    pub start_time_unix_nano: u64,
    pub time_unix_nano: u64,
    pub flags: u32,
    pub exemplars: Vec<Exemplar<'a>>,
}

impl PointCommon<'_> {
    pub fn no_recorded_value(&self) -> bool {
        self.flags & NO_RECORDED_VALUE != 0
    }
}

/// `NumberDataPoint`; an `as_int` value is read as the float Prometheus stores (a point with
/// neither value is 0, as in Prometheus).
#[derive(Debug, Default, PartialEq)]
pub struct NumberPoint<'a> {
    pub common: PointCommon<'a>,
    pub value: f64,
}

/// `HistogramDataPoint`: explicit bucket bounds, one count per bucket (`bounds.len() + 1`).
#[derive(Debug, Default, PartialEq)]
pub struct HistogramPoint<'a> {
    pub common: PointCommon<'a>,
    pub count: u64,
    pub sum: Option<f64>,
    pub bucket_counts: Vec<u64>,
    pub explicit_bounds: Vec<f64>,
}

/// `ExponentialHistogramDataPoint.Buckets`: counts of consecutive buckets from `offset`.
#[derive(Debug, Default, PartialEq)]
pub struct ExponentialBuckets {
    pub offset: i32,
    pub bucket_counts: Vec<u64>,
}

/// `ExponentialHistogramDataPoint`.
#[derive(Debug, Default, PartialEq)]
pub struct ExponentialPoint<'a> {
    pub common: PointCommon<'a>,
    pub count: u64,
    pub sum: Option<f64>,
    pub scale: i32,
    pub zero_count: u64,
    pub zero_threshold: f64,
    pub positive: ExponentialBuckets,
    pub negative: ExponentialBuckets,
}

/// `SummaryDataPoint`, with its `(quantile, value)` pairs.
#[derive(Debug, Default, PartialEq)]
pub struct SummaryPoint<'a> {
    pub common: PointCommon<'a>,
    pub count: u64,
    pub sum: f64,
    pub quantiles: Vec<(f64, f64)>,
}

/// `Exemplar`.
#[derive(Debug, Default, PartialEq)]
pub struct Exemplar<'a> {
    pub filtered_attributes: Vec<Attribute<'a>>,
    pub time_unix_nano: u64,
    pub value: f64,
    pub span_id: Cow<'a, [u8]>,
    pub trace_id: Cow<'a, [u8]>,
}

/// `KeyValue`.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute<'a> {
    /// As sent: checked for UTF-8 when it is made a label name.
    pub key: &'a [u8],
    pub value: AnyValue<'a>,
}

/// `AnyValue`; `Empty` when no value was set (or only the profiles-only `string_value_strindex`).
/// A string is kept as the bytes sent: as a label value it is checked for UTF-8 by the store,
/// when the store meets it first, as remote write's label values are.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum AnyValue<'a> {
    #[default]
    Empty,
    String(&'a [u8]),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Cow<'a, [u8]>),
    Array(Vec<AnyValue<'a>>),
    KeyValues(Vec<Attribute<'a>>),
}

impl<'a> AnyValue<'a> {
    /// The value as a label value, as the collector's `pcommon.Value.AsString` writes it, which
    /// Prometheus uses: strings as they are, numbers as JSON writes them, bytes in base64,
    /// arrays and maps as JSON.
    pub fn as_label_value(&self) -> Cow<'a, [u8]> {
        match self {
            AnyValue::String(text) => Cow::Borrowed(text),
            AnyValue::Empty => Cow::Borrowed(b""),
            other => {
                let mut out = String::new();
                other.write_plain(&mut out);
                Cow::Owned(out.into_bytes())
            }
        }
    }

    /// A string as JSON text; anything else as `as_label_value`.
    fn write_json(&self, out: &mut String) {
        match self {
            AnyValue::String(text) => write_json_string(out, &String::from_utf8_lossy(text)),
            AnyValue::Empty => out.push_str("null"),
            other => other.write_plain(out),
        }
    }

    fn write_plain(&self, out: &mut String) {
        match self {
            AnyValue::Empty => {}
            AnyValue::String(text) => out.push_str(&String::from_utf8_lossy(text)),
            AnyValue::Bool(value) => out.push_str(if *value { "true" } else { "false" }),
            AnyValue::Int(value) => {
                let _ = write!(out, "{value}");
            }
            AnyValue::Double(value) => write_json_number(out, *value),
            AnyValue::Bytes(bytes) => {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode_string(bytes, out);
            }
            AnyValue::Array(values) => {
                out.push('[');
                for (n, value) in values.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    value.write_json(out);
                }
                out.push(']');
            }
            AnyValue::KeyValues(pairs) => {
                out.push('{');
                for (n, pair) in pairs.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    write_json_string(out, &String::from_utf8_lossy(pair.key));
                    out.push(':');
                    pair.value.write_json(out);
                }
                out.push('}');
            }
        }
    }
}

/// A float as ECMAScript (and so Go's `encoding/json`) writes a number: the shortest form that
/// reads back, with an exponent only below 1e-6 or from 1e21 on.
fn write_json_number(out: &mut String, value: f64) {
    if !value.is_finite() {
        let _ = write!(out, "json: unsupported value: {value}");
        return;
    }
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-6..1e21).contains(&magnitude) {
        let text = format!("{value:e}");
        match text.split_once('e') {
            Some((mantissa, exponent)) if !exponent.starts_with('-') => {
                let _ = write!(out, "{mantissa}e+{exponent}");
            }
            _ => out.push_str(&text),
        }
    } else {
        let _ = write!(out, "{value}");
    }
}

fn write_json_string(out: &mut String, text: &str) {
    out.push_str(&serde_json::Value::from(text).to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_attribute_list_is_given_again_empty_with_its_memory() {
        let mut spare = SpareAttributes::default();
        let body = b"key value".to_vec();
        let mut list = spare.take();
        list.extend((0..1000).map(|_| Attribute {
            key: &body[..3],
            value: AnyValue::String(&body[4..]),
        }));
        let (memory, capacity) = (list.as_ptr() as usize, list.capacity());
        spare.keep(list);
        drop(body);
        let again = spare.take();
        assert!(again.is_empty());
        assert_eq!(
            (again.as_ptr() as usize, again.capacity()),
            (memory, capacity)
        );

        let huge = Vec::with_capacity(KEEP_ATTRIBUTES_BYTES / std::mem::size_of::<Attribute>() + 1);
        spare.keep(huge);
        assert_eq!(
            spare.take().capacity(),
            0,
            "a list over the limit is not kept"
        );
    }

    #[test]
    fn values_read_as_the_collector_writes_them() {
        let cases = [
            (AnyValue::String(b"a b"), "a b"),
            (AnyValue::Bool(true), "true"),
            (AnyValue::Int(-42), "-42"),
            (AnyValue::Double(1.5), "1.5"),
            (AnyValue::Double(1e21), "1e+21"),
            (AnyValue::Double(1e-7), "1e-7"),
            (AnyValue::Double(100.0), "100"),
            (AnyValue::Bytes(Cow::Borrowed(b"hi")), "aGk="),
            (
                AnyValue::Array(vec![AnyValue::String(b"x"), AnyValue::Int(1)]),
                r#"["x",1]"#,
            ),
            (
                AnyValue::KeyValues(vec![Attribute {
                    key: b"k",
                    value: AnyValue::String(b"v\""),
                }]),
                r#"{"k":"v\""}"#,
            ),
            (AnyValue::Empty, ""),
        ];
        for (value, text) in cases {
            assert_eq!(value.as_label_value(), text.as_bytes(), "{value:?}");
        }
    }
}
