//! Reads an OTLP `ExportMetricsServiceRequest` from JSON (`application/json`), as the OTLP
//! spec maps it (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding): the
//! protobuf JSON mapping with lowerCamelCase keys (the proto's own snake_case names are read
//! too, as protobuf's JSON parsers do), 64-bit integers as strings or numbers, enums as
//! integers (or their names), `traceId` and `spanId` in hex rather than base64, and unknown
//! keys ignored. Strings borrow from the parsed JSON.

use std::borrow::Cow;

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::otlp::model::{
    AnyValue, Attribute, Data, Exemplar, ExponentialBuckets, ExponentialPoint, ExportRequest,
    HistogramPoint, Metric, NumberPoint, PointAttribute, PointAttributes, PointCommon,
    ResourceMetrics, ScopeMetrics, SummaryPoint, Temporality,
};
use crate::otlp::protobuf::ReadError;

/// Nesting of `AnyValue` arrays and maps beyond which a request is refused (serde_json stops
/// at 128 levels of JSON already; this keeps the two encodings alike).
const MAX_VALUE_DEPTH: usize = 32;

/// Parses a body into JSON, for [`read_request`] to borrow from.
pub fn parse(body: &[u8]) -> Result<Value, ReadError> {
    serde_json::from_slice(body).map_err(|e| format!("JSON: {e}"))
}

/// Reads a whole request from its parsed JSON, its point attributes into `kept` (an empty
/// list, kept from an earlier request for its memory).
pub fn read_request(
    json: &Value,
    kept: Vec<PointAttribute>,
) -> Result<ExportRequest<'_>, ReadError> {
    let object = as_object(json, "the request")?;
    let mut point_attributes = PointAttributes::copied(kept);
    let resources = list(object, "resourceMetrics", "resource_metrics", |resource| {
        read_resource(resource, &mut point_attributes)
    })?;
    Ok(ExportRequest {
        resources,
        point_attributes,
    })
}

/// The field of `object` under its JSON name or its proto name; `None` when absent or null.
fn field<'a>(object: &'a Map<String, Value>, json: &str, proto: &str) -> Option<&'a Value> {
    object
        .get(json)
        .or_else(|| object.get(proto))
        .filter(|value| !value.is_null())
}

fn as_object<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, ReadError> {
    value
        .as_object()
        .ok_or_else(|| format!("JSON: {what} is not an object"))
}

/// A repeated message field, each element read by `read`.
fn list<'a, T>(
    object: &'a Map<String, Value>,
    json: &str,
    proto: &str,
    read: impl FnMut(&'a Value) -> Result<T, ReadError>,
) -> Result<Vec<T>, ReadError> {
    match field(object, json, proto) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(read).collect(),
        Some(_) => Err(format!("JSON: {json} is not an array")),
    }
}

fn string<'a>(
    object: &'a Map<String, Value>,
    json: &str,
    proto: &str,
) -> Result<&'a str, ReadError> {
    match field(object, json, proto) {
        None => Ok(""),
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(format!("JSON: {json} is not a string")),
    }
}

/// An integer of the field's type (64 bits at most): a JSON number or a decimal string.
fn integer<T: TryFrom<i128>>(value: &Value, what: &str) -> Result<T, ReadError> {
    let parsed = match value {
        Value::Number(number) => number
            .as_i64()
            .map(i128::from)
            .or_else(|| number.as_u64().map(i128::from)),
        Value::String(text) => text.parse::<i128>().ok(),
        _ => None,
    };
    let wide = parsed.ok_or_else(|| format!("JSON: {what} is not an integer"))?;
    T::try_from(wide).map_err(|_| format!("JSON: {what} is out of range"))
}

/// An integer field; 0 when absent.
fn integer_field<T: TryFrom<i128> + Default>(
    object: &Map<String, Value>,
    json: &str,
    proto: &str,
) -> Result<T, ReadError> {
    field(object, json, proto).map_or(Ok(T::default()), |value| integer(value, json))
}

/// A double: a JSON number, or a string holding one or `NaN`, `Infinity`, `-Infinity`.
fn double(value: &Value, what: &str) -> Result<f64, ReadError> {
    let parsed = match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => match text.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            other => other.parse().ok(),
        },
        _ => None,
    };
    parsed.ok_or_else(|| format!("JSON: {what} is not a number"))
}

fn boolean(object: &Map<String, Value>, json: &str, proto: &str) -> Result<bool, ReadError> {
    match field(object, json, proto) {
        None => Ok(false),
        Some(Value::Bool(value)) => Ok(*value),
        Some(_) => Err(format!("JSON: {json} is not a boolean")),
    }
}

fn temporality(object: &Map<String, Value>) -> Result<Temporality, ReadError> {
    let json = "aggregationTemporality";
    Ok(match field(object, json, "aggregation_temporality") {
        None => Temporality::Unspecified,
        Some(Value::String(name)) if name == "AGGREGATION_TEMPORALITY_DELTA" => Temporality::Delta,
        Some(Value::String(name)) if name == "AGGREGATION_TEMPORALITY_CUMULATIVE" => {
            Temporality::Cumulative
        }
        Some(Value::String(name)) if name == "AGGREGATION_TEMPORALITY_UNSPECIFIED" => {
            Temporality::Unspecified
        }
        Some(value) => Temporality::from_number(integer(value, json)?),
    })
}

/// The data points' attributes of a request, as they are read.
type Arena<'a> = PointAttributes<'a>;

fn read_resource<'a>(
    value: &'a Value,
    arena: &mut Arena<'a>,
) -> Result<ResourceMetrics<'a>, ReadError> {
    let object = as_object(value, "a resourceMetrics entry")?;
    let attributes = match field(object, "resource", "resource") {
        Some(resource) => attributes(as_object(resource, "resource")?, "attributes", "attributes")?,
        None => Vec::new(),
    };
    Ok(ResourceMetrics {
        attributes,
        scopes: list(object, "scopeMetrics", "scope_metrics", |scope| {
            let object = as_object(scope, "a scopeMetrics entry")?;
            Ok(ScopeMetrics {
                metrics: list(object, "metrics", "metrics", |metric| {
                    read_metric(metric, arena)
                })?,
            })
        })?,
    })
}

fn read_metric<'a>(value: &'a Value, arena: &mut Arena<'a>) -> Result<Metric<'a>, ReadError> {
    let object = as_object(value, "a metric")?;
    let data = if let Some(gauge) = field(object, "gauge", "gauge") {
        let gauge = as_object(gauge, "gauge")?;
        Data::Gauge(list(gauge, "dataPoints", "data_points", |point| {
            read_number_point(point, arena)
        })?)
    } else if let Some(sum) = field(object, "sum", "sum") {
        let sum = as_object(sum, "sum")?;
        Data::Sum {
            points: list(sum, "dataPoints", "data_points", |point| {
                read_number_point(point, arena)
            })?,
            temporality: temporality(sum)?,
            monotonic: boolean(sum, "isMonotonic", "is_monotonic")?,
        }
    } else if let Some(histogram) = field(object, "histogram", "histogram") {
        let histogram = as_object(histogram, "histogram")?;
        Data::Histogram {
            points: list(histogram, "dataPoints", "data_points", |point| {
                read_histogram_point(point, arena)
            })?,
            temporality: temporality(histogram)?,
        }
    } else if let Some(exponential) = field(object, "exponentialHistogram", "exponential_histogram")
    {
        let exponential = as_object(exponential, "exponentialHistogram")?;
        Data::Exponential {
            points: list(exponential, "dataPoints", "data_points", |point| {
                read_exponential_point(point, arena)
            })?,
            temporality: temporality(exponential)?,
        }
    } else if let Some(summary) = field(object, "summary", "summary") {
        let summary = as_object(summary, "summary")?;
        Data::Summary(list(summary, "dataPoints", "data_points", |point| {
            read_summary_point(point, arena)
        })?)
    } else {
        Data::Empty
    };
    Ok(Metric {
        name: string(object, "name", "name")?,
        description: string(object, "description", "description")?,
        unit: string(object, "unit", "unit")?,
        data,
    })
}

/// A point's own fields, its attributes put in `arena`.
fn read_common<'a>(
    object: &'a Map<String, Value>,
    arena: &mut Arena<'a>,
) -> Result<PointCommon<'a>, ReadError> {
    let first = arena.len() as u32;
    for attribute in attributes(object, "attributes", "attributes")? {
        arena.push(attribute.key, attribute.value)?;
    }
    Ok(PointCommon {
        attributes: first..arena.len() as u32,
        start_time_unix_nano: integer_field(object, "startTimeUnixNano", "start_time_unix_nano")?,
        time_unix_nano: integer_field(object, "timeUnixNano", "time_unix_nano")?,
        flags: integer_field(object, "flags", "flags")?,
        exemplars: list(object, "exemplars", "exemplars", read_exemplar)?,
    })
}

/// A `NumberDataPoint`'s or `Exemplar`'s value: `asDouble`, else `asInt`, else 0.
fn number_value(object: &Map<String, Value>) -> Result<f64, ReadError> {
    if let Some(value) = field(object, "asDouble", "as_double") {
        return double(value, "asDouble");
    }
    field(object, "asInt", "as_int")
        .map_or(Ok(0.0), |value| Ok(integer::<i64>(value, "asInt")? as f64))
}

fn read_number_point<'a>(
    value: &'a Value,
    arena: &mut Arena<'a>,
) -> Result<NumberPoint<'a>, ReadError> {
    let object = as_object(value, "a data point")?;
    Ok(NumberPoint {
        common: read_common(object, arena)?,
        value: number_value(object)?,
    })
}

fn optional_double(object: &Map<String, Value>, json: &str) -> Result<Option<f64>, ReadError> {
    field(object, json, json)
        .map(|v| double(v, json))
        .transpose()
}

fn read_histogram_point<'a>(
    value: &'a Value,
    arena: &mut Arena<'a>,
) -> Result<HistogramPoint<'a>, ReadError> {
    let object = as_object(value, "a histogram data point")?;
    Ok(HistogramPoint {
        common: read_common(object, arena)?,
        count: integer_field(object, "count", "count")?,
        sum: optional_double(object, "sum")?,
        bucket_counts: list(object, "bucketCounts", "bucket_counts", |v| {
            integer(v, "bucketCounts")
        })?,
        explicit_bounds: list(object, "explicitBounds", "explicit_bounds", |v| {
            double(v, "explicitBounds")
        })?,
    })
}

fn read_buckets(object: &Map<String, Value>, json: &str) -> Result<ExponentialBuckets, ReadError> {
    let Some(buckets) = field(object, json, json) else {
        return Ok(ExponentialBuckets::default());
    };
    let buckets = as_object(buckets, json)?;
    Ok(ExponentialBuckets {
        offset: integer_field(buckets, "offset", "offset")?,
        bucket_counts: list(buckets, "bucketCounts", "bucket_counts", |v| {
            integer(v, "bucketCounts")
        })?,
    })
}

fn read_exponential_point<'a>(
    value: &'a Value,
    arena: &mut Arena<'a>,
) -> Result<ExponentialPoint<'a>, ReadError> {
    let object = as_object(value, "an exponential histogram data point")?;
    Ok(ExponentialPoint {
        common: read_common(object, arena)?,
        count: integer_field(object, "count", "count")?,
        sum: optional_double(object, "sum")?,
        scale: integer_field(object, "scale", "scale")?,
        zero_count: integer_field(object, "zeroCount", "zero_count")?,
        zero_threshold: field(object, "zeroThreshold", "zero_threshold")
            .map_or(Ok(0.0), |v| double(v, "zeroThreshold"))?,
        positive: read_buckets(object, "positive")?,
        negative: read_buckets(object, "negative")?,
    })
}

fn read_summary_point<'a>(
    value: &'a Value,
    arena: &mut Arena<'a>,
) -> Result<SummaryPoint<'a>, ReadError> {
    let object = as_object(value, "a summary data point")?;
    Ok(SummaryPoint {
        common: read_common(object, arena)?,
        count: integer_field(object, "count", "count")?,
        sum: optional_double(object, "sum")?.unwrap_or(0.0),
        quantiles: list(object, "quantileValues", "quantile_values", |v| {
            let pair = as_object(v, "a quantile value")?;
            let read = |name: &str| field(pair, name, name).map_or(Ok(0.0), |v| double(v, name));
            Ok((read("quantile")?, read("value")?))
        })?,
    })
}

fn read_exemplar(value: &Value) -> Result<Exemplar<'_>, ReadError> {
    let object = as_object(value, "an exemplar")?;
    let id = |json: &str, proto: &str| -> Result<Cow<'_, [u8]>, ReadError> {
        let text = string(object, json, proto)?;
        hex(text).ok_or_else(|| format!("JSON: {json} is not hex"))
    };
    Ok(Exemplar {
        filtered_attributes: attributes(object, "filteredAttributes", "filtered_attributes")?,
        time_unix_nano: integer_field(object, "timeUnixNano", "time_unix_nano")?,
        value: number_value(object)?,
        span_id: id("spanId", "span_id")?,
        trace_id: id("traceId", "trace_id")?,
    })
}

fn hex(text: &str) -> Option<Cow<'static, [u8]>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16);
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8))
        .collect::<Option<Vec<u8>>>()
        .map(Cow::Owned)
}

fn attributes<'a>(
    object: &'a Map<String, Value>,
    json: &str,
    proto: &str,
) -> Result<Vec<Attribute<'a>>, ReadError> {
    list(object, json, proto, |v| read_key_value(v, 0))
}

fn read_key_value(value: &Value, depth: usize) -> Result<Attribute<'_>, ReadError> {
    let object = as_object(value, "an attribute")?;
    Ok(Attribute {
        key: string(object, "key", "key")?.as_bytes(),
        value: match field(object, "value", "value") {
            Some(value) => read_any_value(value, depth)?,
            None => AnyValue::Empty,
        },
    })
}

fn read_any_value(value: &Value, depth: usize) -> Result<AnyValue<'_>, ReadError> {
    if depth > MAX_VALUE_DEPTH {
        return Err(format!(
            "JSON: attribute values nest deeper than {MAX_VALUE_DEPTH}"
        ));
    }
    let object = as_object(value, "an attribute value")?;
    let Some((key, inner)) = object.iter().find(|(_, v)| !v.is_null()) else {
        return Ok(AnyValue::Empty);
    };
    Ok(match key.as_str() {
        "stringValue" | "string_value" => match inner {
            Value::String(text) => AnyValue::String(text.as_bytes()),
            _ => return Err("JSON: stringValue is not a string".into()),
        },
        "boolValue" | "bool_value" => match inner {
            Value::Bool(b) => AnyValue::Bool(*b),
            _ => return Err("JSON: boolValue is not a boolean".into()),
        },
        "intValue" | "int_value" => AnyValue::Int(integer(inner, "intValue")?),
        "doubleValue" | "double_value" => AnyValue::Double(double(inner, "doubleValue")?),
        "bytesValue" | "bytes_value" => {
            let text = inner.as_str().unwrap_or_default();
            let engines = [
                base64::engine::general_purpose::STANDARD,
                base64::engine::general_purpose::URL_SAFE,
            ];
            let bytes = engines
                .iter()
                .find_map(|engine| engine.decode(text).ok())
                .ok_or_else(|| "JSON: bytesValue is not base64".to_owned())?;
            AnyValue::Bytes(Cow::Owned(bytes))
        }
        "arrayValue" | "array_value" => {
            let array = as_object(inner, "arrayValue")?;
            AnyValue::Array(list(array, "values", "values", |v| {
                read_any_value(v, depth + 1)
            })?)
        }
        "kvlistValue" | "kvlist_value" => {
            let map = as_object(inner, "kvlistValue")?;
            AnyValue::KeyValues(list(map, "values", "values", |v| {
                read_key_value(v, depth + 1)
            })?)
        }
        _ => AnyValue::Empty,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_reads_in_either_spelling_and_with_strings_for_numbers() {
        let body = br#"{"resourceMetrics":[{"resource":{"attributes":[
            {"key":"service.name","value":{"stringValue":"api"}}]},
          "scope_metrics":[{"metrics":[
            {"name":"requests","unit":"1","sum":{"aggregationTemporality":2,"isMonotonic":true,
              "dataPoints":[{"asInt":"7","timeUnixNano":"1700000000000000000",
                "exemplars":[{"asDouble":2.5,"traceId":"0AF7651916CD43DD8448EB211C80319C",
                  "spanId":"b7ad6b7169203331"}]}]}},
            {"name":"t","gauge":{"data_points":[{"as_double":"NaN","time_unix_nano":5}]}}]}]}]}"#;
        let json = parse(body).unwrap();
        let request = read_request(&json, Vec::new()).unwrap();
        let resource = &request.resources[0];
        assert_eq!(resource.attributes[0].key, b"service.name");
        let metrics = &resource.scopes[0].metrics;
        let Data::Sum {
            points,
            temporality,
            monotonic,
        } = &metrics[0].data
        else {
            panic!("{:?}", metrics[0].data)
        };
        assert_eq!((*temporality, *monotonic), (Temporality::Cumulative, true));
        assert_eq!(points[0].value, 7.0);
        assert_eq!(points[0].common.time_unix_nano, 1_700_000_000_000_000_000);
        let exemplar = &points[0].common.exemplars[0];
        assert_eq!(exemplar.trace_id[0], 0x0a);
        assert_eq!(exemplar.span_id.len(), 8);
        let Data::Gauge(points) = &metrics[1].data else {
            panic!()
        };
        assert!(points[0].value.is_nan());
        assert_eq!(points[0].common.time_unix_nano, 5);
    }

    #[test]
    fn wrong_shapes_are_refused_with_a_reason() {
        for (body, reason) in [
            (&br#"[]"#[..], "the request is not an object"),
            (br#"{"resourceMetrics":{}}"#, "resourceMetrics is not an array"),
            (
                br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"gauge":{"dataPoints":[{"timeUnixNano":"x"}]}}]}]}]}"#,
                "timeUnixNano is not an integer",
            ),
            (
                br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"sum":{"dataPoints":[{"exemplars":[{"traceId":"xyz"}]}]}}]}]}]}"#,
                "traceId is not hex",
            ),
        ] {
            let json = parse(body).unwrap();
            let error = read_request(&json, Vec::new()).unwrap_err();
            assert!(error.contains(reason), "{error}");
        }
        assert!(parse(b"{").unwrap_err().starts_with("JSON:"));
    }
}
