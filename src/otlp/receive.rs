//! OTLP/HTTP for metrics (https://opentelemetry.io/docs/specs/otlp/#otlphttp): a `POST` of an
//! `ExportMetricsServiceRequest` as `application/x-protobuf` or `application/json`, optionally
//! `Content-Encoding: gzip`, answered in the same encoding: 200 with an
//! `ExportMetricsServiceResponse`, whose `partial_success` counts the data points refused and
//! says why; 400 with a `google.rpc.Status` when the body does not decode; 415 for another
//! `Content-Type` or `Content-Encoding`.

use std::fmt::Write as _;

use crate::otlp::model::SpareAttributes;
use crate::otlp::translate::{apply, OtlpReport, Translation};
use crate::otlp::{json, protobuf};
use crate::store::Store;
use crate::write::decode::Rejection;
use crate::write::ingest::WriteRules;
use crate::write::wire::KEEP_CAPACITY_BYTES;

/// The paths that take OTLP metrics: Prometheus 3's, and the one OTLP/HTTP exporters post to
/// when `OTEL_EXPORTER_OTLP_ENDPOINT` names this server.
pub const OTLP_PATHS: [&str; 2] = ["/api/v1/otlp/v1/metrics", "/v1/metrics"];

/// The two encodings of OTLP/HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }

    /// The label value of `k8s_exporter_otlp_requests_total{encoding}`.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Protobuf => "protobuf",
            Encoding::Json => "json",
        }
    }
}

/// How a request body is to be read, from its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyFormat {
    pub encoding: Encoding,
    pub gzip: bool,
}

/// The encoding `Content-Type` names, and whether `Content-Encoding` is gzip; 415 otherwise.
pub fn check_headers(
    content_encoding: Option<&str>,
    content_type: Option<&str>,
) -> Result<BodyFormat, Rejection> {
    let media_type = content_type
        .and_then(|value| value.split(';').next())
        .map(str::trim)
        .unwrap_or_default();
    let encoding = if media_type.eq_ignore_ascii_case("application/x-protobuf") {
        Encoding::Protobuf
    } else if media_type.eq_ignore_ascii_case("application/json") {
        Encoding::Json
    } else {
        return Err(Rejection::new(
            415,
            format!(
                "unsupported Content-Type {:?}: OTLP needs application/x-protobuf or application/json",
                content_type.unwrap_or_default()
            ),
        ));
    };
    let gzip = match content_encoding.map(str::trim) {
        None | Some("") => false,
        Some(value) if value.eq_ignore_ascii_case("identity") => false,
        Some(value) if value.eq_ignore_ascii_case("gzip") => true,
        Some(value) => {
            return Err(Rejection::new(
                415,
                format!("unsupported Content-Encoding {value:?}: OTLP takes gzip or none"),
            ))
        }
    };
    Ok(BodyFormat { encoding, gzip })
}

/// What an OTLP request is checked against and translated by.
pub struct Rules<'a> {
    pub write: &'a WriteRules,
    pub translation: &'a Translation,
    pub max_decoded_bytes: usize,
}

/// What a worker keeps from one OTLP request to the next, as remote write keeps its decoded
/// request, so that their memory stays the worker's rather than being allocated afresh: the
/// list of point attributes (see [`SpareAttributes`]), and the buffer a gzip body is inflated
/// into, which grows to the largest body seen, up to [`KEEP_CAPACITY_BYTES`], and is not
/// zeroed again.
#[derive(Debug, Default)]
pub struct Spare {
    attributes: SpareAttributes,
    inflated: Vec<u8>,
}

impl Spare {
    /// Gives back the memory an unusually large request made this worker hold.
    pub fn shrink(&mut self) {
        if self.inflated.len() > KEEP_CAPACITY_BYTES {
            self.inflated = Vec::new();
        }
    }
}

/// Decodes one request body and applies it to `store`; `Err` (400) when it does not decode,
/// and then nothing is stored. The worker's `spare` memory is used for it.
pub fn receive(
    store: &Store,
    body: &[u8],
    format: BodyFormat,
    rules: &Rules,
    now_ms: i64,
    spare: &mut Spare,
) -> Result<OtlpReport, Rejection> {
    let body = if format.gzip {
        gunzip(body, rules.max_decoded_bytes, &mut spare.inflated)?
    } else {
        if body.len() > rules.max_decoded_bytes {
            return Err(Rejection::new(
                400,
                format!(
                    "request of {} bytes is over --write.max-decoded-bytes={}",
                    body.len(),
                    rules.max_decoded_bytes
                ),
            ));
        }
        body
    };
    let invalid = |reason: String| Rejection::new(400, reason);
    // The parsed JSON that a JSON request's strings borrow from.
    let parsed;
    let request = match format.encoding {
        Encoding::Protobuf => protobuf::read_request(body, spare.attributes.take())
            .map_err(|e| invalid(format!("protobuf: {e}")))?,
        Encoding::Json => {
            parsed = json::parse(body).map_err(invalid)?;
            json::read_request(&parsed, spare.attributes.take()).map_err(invalid)?
        }
    };
    let report = apply(
        store,
        &request,
        rules.write,
        rules.translation,
        now_ms,
        store.tick(),
    );
    spare.attributes.keep(request.point_attributes);
    Ok(report)
}

/// Inflates a gzip body into `out`, refusing one that says it inflates past `max_bytes`. The
/// size is the one the gzip trailer gives (a single gzip member, as OTLP exporters send).
fn gunzip<'o>(body: &[u8], max_bytes: usize, out: &'o mut Vec<u8>) -> Result<&'o [u8], Rejection> {
    let bad = |reason: &str| Rejection::new(400, format!("gzip: {reason}"));
    let trailer = body
        .len()
        .checked_sub(4)
        .map(|at| &body[at..])
        .ok_or_else(|| bad("body shorter than a gzip trailer"))?;
    let announced = u32::from_le_bytes(trailer.try_into().expect("four bytes")) as usize;
    if announced > max_bytes {
        return Err(Rejection::new(
            400,
            format!("gzip body inflates to {announced} bytes, over --write.max-decoded-bytes={max_bytes}"),
        ));
    }
    if out.len() < announced {
        out.resize(announced, 0);
    }
    let written = libdeflater::Decompressor::new()
        .gzip_decompress(body, &mut out[..announced])
        .map_err(|e| bad(&e.to_string()))?;
    Ok(&out[..written])
}

/// The `ExportMetricsServiceResponse` for what a request did: empty when every point was
/// stored, else a `partial_success` with the count of points refused and the first reason.
pub fn response_body(encoding: Encoding, report: &OtlpReport) -> Vec<u8> {
    let rejected = report.rejected_points();
    let message = match rejected {
        0 => None,
        _ => Some(report.first_problem.as_deref().unwrap_or("refused")),
    };
    match (encoding, message) {
        (Encoding::Json, None) => b"{}".to_vec(),
        (Encoding::Json, Some(message)) => {
            let mut out = String::from(r#"{"partialSuccess":{"rejectedDataPoints":""#);
            let _ = write!(out, r#"{rejected}","errorMessage":"#);
            out.push_str(&serde_json::Value::from(message).to_string());
            out.push_str("}}");
            out.into_bytes()
        }
        (Encoding::Protobuf, None) => Vec::new(),
        (Encoding::Protobuf, Some(message)) => {
            let mut partial = Vec::new();
            prost::encoding::int64::encode(1, &(rejected as i64), &mut partial);
            prost::encoding::string::encode(2, &message.to_owned(), &mut partial);
            let mut out = Vec::new();
            prost::encoding::bytes::encode(1, &partial, &mut out);
            out
        }
    }
}

/// A `google.rpc.Status` with code `INVALID_ARGUMENT` (3) and `reason`, as OTLP/HTTP answers a
/// request it cannot decode.
pub fn error_body(encoding: Encoding, reason: &str) -> Vec<u8> {
    const INVALID_ARGUMENT: i32 = 3;
    match encoding {
        Encoding::Json => {
            let message = serde_json::Value::from(reason).to_string();
            format!(r#"{{"code":{INVALID_ARGUMENT},"message":{message}}}"#).into_bytes()
        }
        Encoding::Protobuf => {
            let mut out = Vec::new();
            prost::encoding::int32::encode(1, &INVALID_ARGUMENT, &mut out);
            prost::encoding::string::encode(2, &reason.to_owned(), &mut out);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_and_encodings() {
        let format = |encoding, content_type| check_headers(encoding, content_type);
        assert_eq!(
            format(None, Some("application/x-protobuf")),
            Ok(BodyFormat {
                encoding: Encoding::Protobuf,
                gzip: false
            })
        );
        assert_eq!(
            format(Some("gzip"), Some("application/json; charset=utf-8")),
            Ok(BodyFormat {
                encoding: Encoding::Json,
                gzip: true
            })
        );
        for (encoding, content_type) in [
            (None, None),
            (None, Some("text/plain")),
            (Some("snappy"), Some("application/x-protobuf")),
        ] {
            assert_eq!(format(encoding, content_type).unwrap_err().status, 415);
        }
    }

    fn gzipped(text: &[u8]) -> Vec<u8> {
        let mut compressor = libdeflater::Compressor::new(libdeflater::CompressionLvl::default());
        let mut gz = vec![0; compressor.gzip_compress_bound(text.len())];
        let n = compressor.gzip_compress(text, &mut gz).unwrap();
        gz.truncate(n);
        gz
    }

    #[test]
    fn gzip_is_read_within_the_limit_into_the_kept_buffer() {
        let mut out = Vec::new();
        let longer = b"[]".repeat(150);
        assert_eq!(gunzip(&gzipped(&longer), 300, &mut out).unwrap(), longer);
        let text = b"{}".repeat(100);
        let gz = gzipped(&text);
        assert_eq!(
            gunzip(&gz, 200, &mut out).unwrap(),
            text,
            "nothing of the longer body before"
        );
        assert_eq!(out.len(), 300, "the buffer is reused, not made anew");
        assert_eq!(gunzip(&gz, 199, &mut out).unwrap_err().status, 400);
        let n = gz.len();
        assert_eq!(
            gunzip(&gz[..n - 5], 1000, &mut out).unwrap_err().status,
            400
        );
        assert_eq!(gunzip(b"xy", 1000, &mut out).unwrap_err().status, 400);
    }

    #[test]
    fn a_partial_success_says_how_many_points_and_why() {
        use crate::otlp::translate::PointProblem;
        let mut report = OtlpReport::default();
        assert_eq!(response_body(Encoding::Json, &report), b"{}");
        assert!(response_body(Encoding::Protobuf, &report).is_empty());
        report.rejected.push((PointProblem::InvalidTemporality, 2));
        report.first_problem = Some("metric \"x\" has no aggregation temporality".into());
        let json = String::from_utf8(response_body(Encoding::Json, &report)).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed["partialSuccess"]["rejectedDataPoints"], "2");
        assert!(parsed["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("temporality"));
        let error = String::from_utf8(error_body(Encoding::Json, "JSON: \"x\"")).unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&error).unwrap()["code"],
            3
        );
    }
}
