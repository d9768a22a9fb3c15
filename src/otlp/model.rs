//! An OTLP metrics export request as read from either encoding: the parts of
//! `ExportMetricsServiceRequest` (opentelemetry-proto `collector/metrics/v1`, `metrics/v1`,
//! `common/v1`, `resource/v1`) that become Prometheus series. Strings borrow from what was
//! read (the protobuf body, or the parsed JSON), so a protobuf request is read without copying
//! them; a JSON request's point attributes are copied into one text (see [`PointAttributes`]).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::ops::Range;

use crate::write::wire::KEEP_CAPACITY_BYTES;

/// `ExportMetricsServiceRequest`.
#[derive(Debug, Default, PartialEq)]
pub struct ExportRequest<'a> {
    pub resources: Vec<ResourceMetrics<'a>>,
    /// Every data point's attributes, one after another (a point holds its range): one list
    /// for the request rather than one per point, which would be most of reading it.
    pub point_attributes: PointAttributes<'a>,
}

/// The data points' attributes of a request, 16 bytes each: where the key and a string value
/// sit in `text`, which is the protobuf body itself, or for JSON the strings copied one after
/// another; a value of another type is one of `other_values`. A list of slices and
/// [`AnyValue`]s would take three times the memory, which each worker keeps between requests,
/// and a destructor call per value to empty.
#[derive(Debug, Default, PartialEq)]
pub struct PointAttributes<'a> {
    text: Cow<'a, [u8]>,
    list: Vec<PointAttribute>,
    other_values: Vec<AnyValue<'a>>,
}

/// One data point attribute: its key, and its value as a string in the text or, when
/// `value.len` is [`OTHER_VALUE`], as the `value.at`-th of the other values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointAttribute {
    key: Span,
    value: Span,
}

const OTHER_VALUE: u32 = u32::MAX;

/// Bytes of the text: `len` from `at`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Span {
    at: u32,
    len: u32,
}

impl<'a> PointAttributes<'a> {
    /// For a protobuf request: keys and values are slices of `body`, and stay there.
    pub fn in_body(
        body: &'a [u8],
        list: Vec<PointAttribute>,
    ) -> Result<PointAttributes<'a>, String> {
        if body.len() >= OTHER_VALUE as usize {
            return Err("a request of 4 GiB or more".into());
        }
        Ok(PointAttributes {
            text: Cow::Borrowed(body),
            list,
            other_values: Vec::new(),
        })
    }

    /// For a JSON request: keys and values are copied into a text of the request's own.
    pub fn copied(list: Vec<PointAttribute>) -> PointAttributes<'a> {
        PointAttributes {
            text: Cow::Owned(Vec::new()),
            list,
            other_values: Vec::new(),
        }
    }

    /// How many attributes have been pushed: where the next point's start.
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// Adds the next attribute of the point being read.
    pub fn push(&mut self, key: &[u8], value: AnyValue<'a>) -> Result<(), String> {
        let key = self.locate(key)?;
        let value = match value {
            AnyValue::String(text) => self.locate(text)?,
            other => {
                let at = u32::try_from(self.other_values.len())
                    .map_err(|_| "over 4 billion attribute values".to_owned())?;
                self.other_values.push(other);
                Span {
                    at,
                    len: OTHER_VALUE,
                }
            }
        };
        self.list.push(PointAttribute { key, value });
        Ok(())
    }

    /// Where `bytes` are in the text: in place when they are a slice of the body (which is
    /// under 4 GiB), else copied to the text's end.
    #[inline]
    fn locate(&mut self, bytes: &[u8]) -> Result<Span, String> {
        if let Cow::Borrowed(body) = self.text {
            let at = (bytes.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
            if at <= body.len() && bytes.len() <= body.len() - at {
                return Ok(Span {
                    at: at as u32,
                    len: bytes.len() as u32,
                });
            }
        }
        self.copy(bytes)
    }

    fn copy(&mut self, bytes: &[u8]) -> Result<Span, String> {
        if bytes.is_empty() {
            return Ok(Span { at: 0, len: 0 });
        }
        let text = self.text.to_mut();
        let at = text.len();
        text.extend_from_slice(bytes);
        match (u32::try_from(at), u32::try_from(text.len())) {
            (Ok(at), Ok(end)) if end < OTHER_VALUE => Ok(Span { at, len: end - at }),
            _ => Err("over 4 GiB of attribute text".into()),
        }
    }

    /// The attributes of a point, whose range this list gave: each key, and its value as a
    /// label value.
    pub fn of<'s>(
        &'s self,
        range: &Range<u32>,
    ) -> impl Iterator<Item = (&'s [u8], Cow<'s, [u8]>)> + 's {
        let text: &'s [u8] = &self.text;
        let bytes = move |span: Span| &text[span.at as usize..][..span.len as usize];
        self.list[range.start as usize..range.end as usize]
            .iter()
            .map(move |attribute| {
                let value = match attribute.value {
                    Span {
                        at,
                        len: OTHER_VALUE,
                    } => self.other_values[at as usize].as_label_value(),
                    span => Cow::Borrowed(bytes(span)),
                };
                (bytes(attribute.key), value)
            })
    }
}

/// The list one worker reads requests' point attributes into, kept empty from one request
/// to the next, as remote write keeps its decoded request: its memory stays the worker's
/// rather than being allocated afresh each time, which musl maps and unmaps for a list this
/// large (costing CPU), and glibc leaves scattered in its arenas (costing memory).
#[derive(Debug, Default)]
pub struct SpareAttributes(Vec<PointAttribute>);

impl SpareAttributes {
    /// The kept list, empty.
    pub fn take(&mut self) -> Vec<PointAttribute> {
        std::mem::take(&mut self.0)
    }

    /// Keeps the list of a request's attributes, emptied, for the next request.
    pub fn keep(&mut self, attributes: PointAttributes) {
        let mut list = attributes.list;
        if list.capacity() * std::mem::size_of::<PointAttribute>() <= KEEP_CAPACITY_BYTES {
            list.clear();
            self.0 = list;
        }
    }
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
    fn point_attributes_stay_in_the_body_or_are_copied() {
        let body = b"__service.namekey".to_vec();
        let (key, value) = (&body[2..9], &body[14..]);
        let mut in_body = PointAttributes::in_body(&body, Vec::new()).unwrap();
        in_body.push(key, AnyValue::String(value)).unwrap();
        in_body.push(value, AnyValue::Int(-3)).unwrap();
        in_body.push(b"outside", AnyValue::String(b"")).unwrap();
        let mut copied = PointAttributes::copied(Vec::new());
        for (key, value) in [
            (&b"service"[..], AnyValue::String(b"key")),
            (b"key", AnyValue::Int(-3)),
            (b"outside", AnyValue::String(b"")),
        ] {
            copied.push(key, value).unwrap();
        }
        let expected: Vec<(&[u8], Cow<[u8]>)> = vec![
            (b"service", Cow::Borrowed(b"key")),
            (b"key", Cow::Owned(b"-3".to_vec())),
            (b"outside", Cow::Borrowed(b"")),
        ];
        for attributes in [&in_body, &copied] {
            assert_eq!(attributes.of(&(0..3)).collect::<Vec<_>>(), expected);
            assert_eq!(attributes.of(&(1..2)).count(), 1);
        }
        assert_eq!(
            in_body.text.len(),
            body.len() + b"outside".len(),
            "the body's slices stay where they are; one from elsewhere makes the text a copy"
        );
        assert_eq!(copied.text, &b"servicekeykeyoutside"[..]);
    }

    #[test]
    fn a_kept_attribute_list_is_given_again_empty_with_its_memory() {
        let mut spare = SpareAttributes::default();
        let body = b"key value".to_vec();
        let mut attributes = PointAttributes::in_body(&body, spare.take()).unwrap();
        for _ in 0..1000 {
            attributes
                .push(&body[..3], AnyValue::String(&body[4..]))
                .unwrap();
        }
        let (memory, capacity) = (attributes.list.as_ptr(), attributes.list.capacity());
        spare.keep(attributes);
        let again = spare.take();
        assert!(again.is_empty());
        assert_eq!((again.as_ptr(), again.capacity()), (memory, capacity));

        let huge = KEEP_CAPACITY_BYTES / std::mem::size_of::<PointAttribute>() + 1;
        spare.keep(PointAttributes::copied(Vec::with_capacity(huge)));
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
