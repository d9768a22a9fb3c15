//! Reads an OTLP `ExportMetricsServiceRequest` from protobuf (`application/x-protobuf`), with
//! the same wire reader as remote write, into the [`model`](super::model), borrowing every
//! string from the body. Field numbers are those of the published opentelemetry-proto files
//! (`collector/metrics/v1/metrics_service.proto`, `metrics/v1/metrics.proto`,
//! `common/v1/common.proto`, `resource/v1/resource.proto`). As in protobuf, unknown fields are
//! skipped, repeated scalars may come packed or not, and a `string` must be valid UTF-8.

use std::borrow::Cow;

use crate::otlp::model::{
    AnyValue, Attribute, Data, Exemplar, ExponentialBuckets, ExponentialPoint, ExportRequest,
    HistogramPoint, Metric, NumberPoint, PointAttribute, PointAttributes, PointCommon,
    ResourceMetrics, ScopeMetrics, SummaryPoint, Temporality,
};
use crate::write::wire::{wrong_type, Reader, WireError, I64, LEN, VARINT};

/// Why a body is not an `ExportMetricsServiceRequest`, in words.
pub type ReadError = String;

/// Nesting of `AnyValue` arrays and maps beyond which a request is refused, so that a body
/// of nested values cannot exhaust the stack.
const MAX_VALUE_DEPTH: usize = 32;

/// Bytes of request per data point attribute, about, for a Kubernetes workload's labels.
const BYTES_PER_ATTRIBUTE: usize = 64;
/// Bytes of request per data point, somewhat under what a point with a Kubernetes workload's
/// labels takes, so that a metric's list of points is allocated once.
const BYTES_PER_POINT: usize = 512;

fn malformed(error: WireError) -> ReadError {
    error.to_string()
}

/// The data points' attributes of a request, as they are read.
type Arena<'a> = PointAttributes<'a>;

/// Reads a whole request, its point attributes into `kept` (an empty list, kept from an
/// earlier request for its memory).
pub fn read_request(
    body: &[u8],
    mut kept: Vec<PointAttribute>,
) -> Result<ExportRequest<'_>, ReadError> {
    // About what a request of usual attributes holds, so that the list seldom grows.
    kept.reserve(body.len() / BYTES_PER_ATTRIBUTE);
    let mut request = ExportRequest {
        resources: Vec::new(),
        point_attributes: PointAttributes::in_body(body, kept)?,
    };
    let arena = &mut request.point_attributes;
    let mut reader = Reader::new(body);
    while let Some((field, wire_type)) = reader.key().map_err(malformed)? {
        match (field, wire_type) {
            (1, LEN) => request
                .resources
                .push(read_resource_metrics(sub(&mut reader)?, arena)?),
            (1, _) => return Err(wrong("ExportMetricsServiceRequest", field)),
            _ => reader.skip(wire_type).map_err(malformed)?,
        }
    }
    Ok(request)
}

fn wrong(message: &'static str, field: u32) -> ReadError {
    wrong_type(message, field).to_string()
}

fn sub<'a>(reader: &mut Reader<'a>) -> Result<Reader<'a>, ReadError> {
    reader.sub_message().map_err(malformed)
}

fn text<'a>(reader: &mut Reader<'a>, what: &str) -> Result<&'a str, ReadError> {
    let bytes = reader.bytes().map_err(malformed)?;
    std::str::from_utf8(bytes).map_err(|_| format!("{what} is not valid UTF-8"))
}

fn f64_of(reader: &mut Reader) -> Result<f64, ReadError> {
    reader.fixed64().map(f64::from_bits).map_err(malformed)
}

fn read_resource_metrics<'a>(
    mut reader: Reader<'a>,
    arena: &mut Arena<'a>,
) -> Result<ResourceMetrics<'a>, ReadError> {
    let mut resource = ResourceMetrics::default();
    while let Some((field, wire_type)) = reader.key().map_err(malformed)? {
        match (field, wire_type) {
            (1, LEN) => {
                let mut inner = sub(&mut reader)?;
                while let Some((field, wire_type)) = inner.key().map_err(malformed)? {
                    match (field, wire_type) {
                        (1, LEN) => resource
                            .attributes
                            .push(read_key_value(sub(&mut inner)?, 0)?),
                        (1, _) => return Err(wrong("Resource", field)),
                        _ => inner.skip(wire_type).map_err(malformed)?,
                    }
                }
            }
            (2, LEN) => resource
                .scopes
                .push(read_scope_metrics(sub(&mut reader)?, arena)?),
            (1 | 2, _) => return Err(wrong("ResourceMetrics", field)),
            _ => reader.skip(wire_type).map_err(malformed)?,
        }
    }
    Ok(resource)
}

fn read_scope_metrics<'a>(
    mut reader: Reader<'a>,
    arena: &mut Arena<'a>,
) -> Result<ScopeMetrics<'a>, ReadError> {
    let mut scope = ScopeMetrics::default();
    while let Some((field, wire_type)) = reader.key().map_err(malformed)? {
        match (field, wire_type) {
            (2, LEN) => scope.metrics.push(read_metric(sub(&mut reader)?, arena)?),
            (2, _) => return Err(wrong("ScopeMetrics", field)),
            _ => reader.skip(wire_type).map_err(malformed)?,
        }
    }
    Ok(scope)
}

fn read_metric<'a>(mut reader: Reader<'a>, arena: &mut Arena<'a>) -> Result<Metric<'a>, ReadError> {
    let mut metric = Metric::default();
    while let Some((field, wire_type)) = reader.key().map_err(malformed)? {
        match (field, wire_type) {
            (1, LEN) => metric.name = text(&mut reader, "a metric name")?,
            (2, LEN) => metric.description = text(&mut reader, "a metric description")?,
            (3, LEN) => metric.unit = text(&mut reader, "a metric unit")?,
            (5, LEN) => metric.data = Data::Gauge(read_number_points(sub(&mut reader)?, arena)?.0),
            (7, LEN) => {
                let (points, temporality, monotonic) =
                    read_number_points(sub(&mut reader)?, arena)?;
                metric.data = Data::Sum {
                    points,
                    temporality,
                    monotonic,
                };
            }
            (9, LEN) => {
                let (points, temporality) =
                    read_points(sub(&mut reader)?, arena, "Histogram", read_histogram_point)?;
                metric.data = Data::Histogram {
                    points,
                    temporality,
                };
            }
            (10, LEN) => {
                let (points, temporality) = read_points(
                    sub(&mut reader)?,
                    arena,
                    "ExponentialHistogram",
                    read_exponential_point,
                )?;
                metric.data = Data::Exponential {
                    points,
                    temporality,
                };
            }
            (11, LEN) => {
                let (points, _) =
                    read_points(sub(&mut reader)?, arena, "Summary", read_summary_point)?;
                metric.data = Data::Summary(points);
            }
            (1..=3 | 5 | 7 | 9..=11, _) => return Err(wrong("Metric", field)),
            _ => reader.skip(wire_type).map_err(malformed)?,
        }
    }
    Ok(metric)
}

/// A `Gauge` or `Sum`: its points, temporality and monotonicity (a gauge has neither field).
fn read_number_points<'a>(
    mut reader: Reader<'a>,
    arena: &mut Arena<'a>,
) -> Result<(Vec<NumberPoint<'a>>, Temporality, bool), ReadError> {
    let mut points = Vec::with_capacity(reader.remaining() / BYTES_PER_POINT);
    let (mut temporality, mut monotonic) = (Temporality::default(), false);
    while let Some((field, wire_type)) = reader.key().map_err(malformed)? {
        match (field, wire_type) {
            (1, LEN) => points.push(read_number_point(sub(&mut reader)?, arena)?),
            (2, VARINT) => {
                temporality = Temporality::from_number(reader.varint().map_err(malformed)?)
            }
            (3, VARINT) => monotonic = reader.varint().map_err(malformed)? != 0,
            (1..=3, _) => return Err(wrong("Sum", field)),
            _ => reader.skip(wire_type).map_err(malformed)?,
        }
    }
    Ok((points, temporality, monotonic))
}

/// A `Histogram`, `ExponentialHistogram` or `Summary`: its points (field 1) and temporality
/// (field 2, which a summary does not have).
fn read_points<'a, P>(
    mut reader: Reader<'a>,
    arena: &mut Arena<'a>,
    message: &'static str,
    read_point: fn(Reader<'a>, &mut Arena<'a>) -> Result<P, ReadError>,
) -> Result<(Vec<P>, Temporality), ReadError> {
    let mut points = Vec::with_capacity(reader.remaining() / BYTES_PER_POINT);
    let mut temporality = Temporality::default();
    while let Some((field, wire_type)) = reader.key().map_err(malformed)? {
        match (field, wire_type) {
            (1, LEN) => points.push(read_point(sub(&mut reader)?, arena)?),
            (2, VARINT) => {
                temporality = Temporality::from_number(reader.varint().map_err(malformed)?)
            }
            (1 | 2, _) => return Err(wrong(message, field)),
            _ => reader.skip(wire_type).map_err(malformed)?,
        }
    }
    Ok((points, temporality))
}

/// Where a point's attributes, pushed since `first`, are in the request's list.
fn span_of(first: usize, arena: &Arena) -> Result<std::ops::Range<u32>, ReadError> {
    let at =
        |index: usize| u32::try_from(index).map_err(|_| "over 4 billion attributes".to_owned());
    Ok(at(first)?..at(arena.len())?)
}

/// The fields every kind of point has, at the numbers each kind gives them; `false` when the
/// field is not one of them.
struct CommonFields {
    /// The point's message name, for errors.
    message: &'static str,
    attributes: u32,
    flags: u32,
    exemplars: u32,
}

impl CommonFields {
    /// Reads one field of a point into `common`, its attributes into `arena` (the point's
    /// range there is set once the whole point is read).
    fn read<'a>(
        &self,
        common: &mut PointCommon<'a>,
        arena: &mut Arena<'a>,
        reader: &mut Reader<'a>,
        (field, wire_type): (u32, u8),
    ) -> Result<bool, ReadError> {
        match (field, wire_type) {
            // Most of a point: first.
            (f, LEN) if f == self.attributes => match reader.usual_key_value_field() {
                Some((key, value)) => arena.push(key, AnyValue::String(value))?,
                None => {
                    let attribute = read_key_value(sub(reader)?, 0)?;
                    arena.push(attribute.key, attribute.value)?
                }
            },
            (2, I64) => common.start_time_unix_nano = reader.fixed64().map_err(malformed)?,
            (3, I64) => common.time_unix_nano = reader.fixed64().map_err(malformed)?,
            (f, VARINT) if f == self.flags => {
                common.flags = reader.varint().map_err(malformed)? as u32
            }
            (f, LEN) if f == self.exemplars => common.exemplars.push(read_exemplar(sub(reader)?)?),
            (f, _) if [2, 3, self.attributes, self.flags, self.exemplars].contains(&f) => {
                return Err(wrong(self.message, field))
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Reads a whole point: the fields every point has into its `common` part, the others by
    /// `own`, which reads the kind's own fields and skips unknown ones.
    fn read_point<'a, P>(
        &self,
        mut reader: Reader<'a>,
        arena: &mut Arena<'a>,
        point: &mut P,
        common: fn(&mut P) -> &mut PointCommon<'a>,
        mut own: impl FnMut(&mut P, &mut Reader<'a>, (u32, u8)) -> Result<(), ReadError>,
    ) -> Result<(), ReadError> {
        let first = arena.len();
        while let Some(key) = reader.key().map_err(malformed)? {
            if !self.read(common(point), arena, &mut reader, key)? {
                own(point, &mut reader, key)?;
            }
        }
        common(point).attributes = span_of(first, arena)?;
        Ok(())
    }
}

fn read_number_point<'a>(
    reader: Reader<'a>,
    arena: &mut Arena<'a>,
) -> Result<NumberPoint<'a>, ReadError> {
    const FIELDS: CommonFields = CommonFields {
        message: "NumberDataPoint",
        attributes: 7,
        flags: 8,
        exemplars: 5,
    };
    let mut point = NumberPoint::default();
    let own = |point: &mut NumberPoint<'a>, reader: &mut Reader<'a>, (field, wire_type)| {
        match (field, wire_type) {
            (4, I64) => point.value = f64_of(reader)?,
            (6, I64) => point.value = reader.fixed64().map_err(malformed)? as i64 as f64,
            (4 | 6, _) => return Err(wrong(FIELDS.message, field)),
            _ => reader.skip(wire_type).map_err(malformed)?,
        }
        Ok(())
    };
    FIELDS.read_point(reader, arena, &mut point, |point| &mut point.common, own)?;
    Ok(point)
}

fn read_histogram_point<'a>(
    reader: Reader<'a>,
    arena: &mut Arena<'a>,
) -> Result<HistogramPoint<'a>, ReadError> {
    const FIELDS: CommonFields = CommonFields {
        message: "HistogramDataPoint",
        attributes: 9,
        flags: 10,
        exemplars: 8,
    };
    let mut point = HistogramPoint::default();
    let own = |point: &mut HistogramPoint<'a>, reader: &mut Reader<'a>, (field, wire_type)| {
        match (field, wire_type) {
            (4, I64) => point.count = reader.fixed64().map_err(malformed)?,
            (5, I64) => point.sum = Some(f64_of(reader)?),
            (6, I64 | LEN) => read_fixed64s(reader, wire_type, &mut point.bucket_counts)?,
            (7, I64 | LEN) => {
                let mut bits = Vec::new();
                read_fixed64s(reader, wire_type, &mut bits)?;
                point
                    .explicit_bounds
                    .extend(bits.into_iter().map(f64::from_bits));
            }
            (4..=7, _) => return Err(wrong(FIELDS.message, field)),
            _ => reader.skip(wire_type).map_err(malformed)?,
        }
        Ok(())
    };
    FIELDS.read_point(reader, arena, &mut point, |point| &mut point.common, own)?;
    Ok(point)
}

fn read_exponential_point<'a>(
    reader: Reader<'a>,
    arena: &mut Arena<'a>,
) -> Result<ExponentialPoint<'a>, ReadError> {
    const FIELDS: CommonFields = CommonFields {
        message: "ExponentialHistogramDataPoint",
        attributes: 1,
        flags: 10,
        exemplars: 11,
    };
    let mut point = ExponentialPoint::default();
    let own = |point: &mut ExponentialPoint<'a>, reader: &mut Reader<'a>, (field, wire_type)| {
        match (field, wire_type) {
            (4, I64) => point.count = reader.fixed64().map_err(malformed)?,
            (5, I64) => point.sum = Some(f64_of(reader)?),
            (6, VARINT) => point.scale = zigzag32(reader.varint().map_err(malformed)?),
            (7, I64) => point.zero_count = reader.fixed64().map_err(malformed)?,
            (8, LEN) => point.positive = read_buckets(sub(reader)?)?,
            (9, LEN) => point.negative = read_buckets(sub(reader)?)?,
            (14, I64) => point.zero_threshold = f64_of(reader)?,
            (4..=9 | 14, _) => return Err(wrong(FIELDS.message, field)),
            _ => reader.skip(wire_type).map_err(malformed)?,
        }
        Ok(())
    };
    FIELDS.read_point(reader, arena, &mut point, |point| &mut point.common, own)?;
    Ok(point)
}

fn read_buckets(mut reader: Reader) -> Result<ExponentialBuckets, ReadError> {
    let mut buckets = ExponentialBuckets::default();
    while let Some((field, wire_type)) = reader.key().map_err(malformed)? {
        match (field, wire_type) {
            (1, VARINT) => buckets.offset = zigzag32(reader.varint().map_err(malformed)?),
            (2, VARINT) => buckets
                .bucket_counts
                .push(reader.varint().map_err(malformed)?),
            (2, LEN) => {
                let mut packed = sub(&mut reader)?;
                while !packed.at_end() {
                    buckets
                        .bucket_counts
                        .push(packed.varint().map_err(malformed)?);
                }
            }
            (1 | 2, _) => return Err(wrong("Buckets", field)),
            _ => reader.skip(wire_type).map_err(malformed)?,
        }
    }
    Ok(buckets)
}

fn read_summary_point<'a>(
    reader: Reader<'a>,
    arena: &mut Arena<'a>,
) -> Result<SummaryPoint<'a>, ReadError> {
    // A summary point has no exemplars; field 0 never occurs.
    const FIELDS: CommonFields = CommonFields {
        message: "SummaryDataPoint",
        attributes: 7,
        flags: 8,
        exemplars: 0,
    };
    let mut point = SummaryPoint::default();
    let own = |point: &mut SummaryPoint<'a>, reader: &mut Reader<'a>, (field, wire_type)| {
        match (field, wire_type) {
            (4, I64) => point.count = reader.fixed64().map_err(malformed)?,
            (5, I64) => point.sum = f64_of(reader)?,
            (6, LEN) => {
                let mut inner = sub(reader)?;
                let (mut quantile, mut value) = (0.0, 0.0);
                while let Some((field, wire_type)) = inner.key().map_err(malformed)? {
                    match (field, wire_type) {
                        (1, I64) => quantile = f64_of(&mut inner)?,
                        (2, I64) => value = f64_of(&mut inner)?,
                        (1 | 2, _) => return Err(wrong("ValueAtQuantile", field)),
                        _ => inner.skip(wire_type).map_err(malformed)?,
                    }
                }
                point.quantiles.push((quantile, value));
            }
            (4..=6, _) => return Err(wrong(FIELDS.message, field)),
            _ => reader.skip(wire_type).map_err(malformed)?,
        }
        Ok(())
    };
    FIELDS.read_point(reader, arena, &mut point, |point| &mut point.common, own)?;
    Ok(point)
}

fn read_exemplar(mut reader: Reader) -> Result<Exemplar, ReadError> {
    let mut exemplar = Exemplar::default();
    while let Some((field, wire_type)) = reader.key().map_err(malformed)? {
        match (field, wire_type) {
            (7, LEN) => exemplar
                .filtered_attributes
                .push(read_key_value(sub(&mut reader)?, 0)?),
            (2, I64) => exemplar.time_unix_nano = reader.fixed64().map_err(malformed)?,
            (3, I64) => exemplar.value = f64_of(&mut reader)?,
            (6, I64) => exemplar.value = reader.fixed64().map_err(malformed)? as i64 as f64,
            (4, LEN) => exemplar.span_id = Cow::Borrowed(reader.bytes().map_err(malformed)?),
            (5, LEN) => exemplar.trace_id = Cow::Borrowed(reader.bytes().map_err(malformed)?),
            (2..=7, _) => return Err(wrong("Exemplar", field)),
            _ => reader.skip(wire_type).map_err(malformed)?,
        }
    }
    Ok(exemplar)
}

fn read_key_value(mut reader: Reader, depth: usize) -> Result<Attribute, ReadError> {
    let mut attribute = Attribute {
        key: b"",
        value: AnyValue::Empty,
    };
    while let Some((field, wire_type)) = reader.key().map_err(malformed)? {
        match (field, wire_type) {
            (1, LEN) => attribute.key = reader.bytes().map_err(malformed)?,
            (2, LEN) => attribute.value = read_any_value(sub(&mut reader)?, depth)?,
            (1 | 2, _) => return Err(wrong("KeyValue", field)),
            _ => reader.skip(wire_type).map_err(malformed)?,
        }
    }
    Ok(attribute)
}

fn read_any_value(mut reader: Reader, depth: usize) -> Result<AnyValue, ReadError> {
    if depth > MAX_VALUE_DEPTH {
        return Err(format!(
            "attribute values nest deeper than {MAX_VALUE_DEPTH}"
        ));
    }
    let mut value = AnyValue::Empty;
    while let Some((field, wire_type)) = reader.key().map_err(malformed)? {
        value = match (field, wire_type) {
            (1, LEN) => AnyValue::String(reader.bytes().map_err(malformed)?),
            (2, VARINT) => AnyValue::Bool(reader.varint().map_err(malformed)? != 0),
            (3, VARINT) => AnyValue::Int(reader.varint().map_err(malformed)? as i64),
            (4, I64) => AnyValue::Double(f64_of(&mut reader)?),
            (5 | 6, LEN) => {
                let mut inner = sub(&mut reader)?;
                let (mut values, mut pairs) = (Vec::new(), Vec::new());
                while let Some((item, item_type)) = inner.key().map_err(malformed)? {
                    match (item, item_type, field) {
                        (1, LEN, 5) => values.push(read_any_value(sub(&mut inner)?, depth + 1)?),
                        (1, LEN, _) => pairs.push(read_key_value(sub(&mut inner)?, depth + 1)?),
                        (1, _, _) => return Err(wrong("ArrayValue", item)),
                        _ => inner.skip(item_type).map_err(malformed)?,
                    }
                }
                if field == 5 {
                    AnyValue::Array(values)
                } else {
                    AnyValue::KeyValues(pairs)
                }
            }
            (7, LEN) => AnyValue::Bytes(Cow::Borrowed(reader.bytes().map_err(malformed)?)),
            (1..=7, _) => return Err(wrong("AnyValue", field)),
            _ => {
                reader.skip(wire_type).map_err(malformed)?;
                continue;
            }
        };
    }
    Ok(value)
}

/// A repeated `fixed64` field, packed (one LEN field) or not (one I64 field per value).
fn read_fixed64s(reader: &mut Reader, wire_type: u8, out: &mut Vec<u64>) -> Result<(), ReadError> {
    if wire_type == I64 {
        out.push(reader.fixed64().map_err(malformed)?);
        return Ok(());
    }
    let mut packed = sub(reader)?;
    while !packed.at_end() {
        out.push(packed.fixed64().map_err(malformed)?);
    }
    Ok(())
}

/// `sint32`: zigzag-encoded.
fn zigzag32(value: u64) -> i32 {
    let value = value as u32;
    ((value >> 1) as i32) ^ -((value & 1) as i32)
}
