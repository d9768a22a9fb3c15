//! From an HTTP request to a decoded write: header checks, snappy, protobuf.
//!
//! Follows the remote-write 1.0 spec (https://prometheus.io/docs/specs/remote_write_spec/)
//! and Prometheus's own receiver in what it tolerates: a missing `Content-Encoding` is read as
//! snappy and a missing `Content-Type` as `application/x-protobuf`.

use std::fmt;

use crate::write::wire::{Protocol, WriteBatch};

/// The `proto` parameter of `Content-Type` for each protocol (remote write 2.0 spec,
/// "Content-Type").
const PROTO_V1: &str = "prometheus.WriteRequest";
const PROTO_V2: &str = "io.prometheus.write.v2.Request";

/// Why a request was refused as a whole; `reason` is the one-line body of the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub reason: String,
}

impl Rejection {
    pub fn new(status: u16, reason: impl Into<String>) -> Rejection {
        Rejection {
            status,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.reason)
    }
}

/// Accepts snappy-compressed protobuf of either protocol, chosen by the `proto` parameter of
/// `Content-Type`: `io.prometheus.write.v2.Request` is 2.0; `prometheus.WriteRequest`, no
/// parameter or no `Content-Type` is 1.0; anything else is refused (415).
pub fn check_headers(
    content_encoding: Option<&str>,
    content_type: Option<&str>,
) -> Result<Protocol, Rejection> {
    if let Some(encoding) = content_encoding {
        if !encoding.trim().eq_ignore_ascii_case("snappy") {
            return Err(Rejection::new(
                415,
                format!("unsupported Content-Encoding {encoding:?}: remote write needs snappy"),
            ));
        }
    }
    if let Some(content_type) = content_type {
        let mut parts = content_type.split(';').map(str::trim);
        let media_type = parts.next().unwrap_or_default();
        if !media_type.eq_ignore_ascii_case("application/x-protobuf") {
            return Err(Rejection::new(
                415,
                format!("unsupported Content-Type {content_type:?}: want application/x-protobuf"),
            ));
        }
        for parameter in parts {
            if let Some((key, value)) = parameter.split_once('=') {
                let value = value.trim().trim_matches('"');
                if !key.trim().eq_ignore_ascii_case("proto") {
                    continue;
                }
                return match value {
                    PROTO_V1 => Ok(Protocol::V1),
                    PROTO_V2 => Ok(Protocol::V2),
                    _ => Err(Rejection::new(
                        415,
                        format!("unsupported proto {value:?}: want {PROTO_V1} (remote write 1.0) or {PROTO_V2} (2.0)"),
                    )),
                };
            }
        }
    }
    Ok(Protocol::V1)
}

/// Decompresses into `batch` (checking the announced size against `max_decoded_bytes` before
/// allocating) and reads the protobuf there; label strings stay where they are in the buffer.
pub fn decode(
    body: &[u8],
    protocol: Protocol,
    max_decoded_bytes: usize,
    batch: &mut WriteBatch,
) -> Result<(), Rejection> {
    let announced =
        snap::raw::decompress_len(body).map_err(|e| Rejection::new(400, format!("snappy: {e}")))?;
    if announced > max_decoded_bytes {
        return Err(Rejection::new(
            400,
            format!("snappy header announces {announced} decoded bytes, over --write.max-decoded-bytes={max_decoded_bytes}"),
        ));
    }
    let written = snap::raw::Decoder::new()
        .decompress(body, batch.buffer_for(announced))
        .map_err(|e| Rejection::new(400, format!("snappy: {e}")))?;
    if written != announced {
        return Err(Rejection::new(
            400,
            format!("snappy: {written} bytes decoded, {announced} announced"),
        ));
    }
    batch
        .parse(protocol)
        .map_err(|e| Rejection::new(400, format!("protobuf: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::proto::{Label, Sample, TimeSeries, WriteRequest};
    use prost::Message;

    fn decode_new(body: &[u8], max_decoded_bytes: usize) -> Result<WriteBatch, Rejection> {
        let mut batch = WriteBatch::default();
        decode(body, Protocol::V1, max_decoded_bytes, &mut batch).map(|()| batch)
    }

    fn encoded(request: &WriteRequest) -> Vec<u8> {
        snap::raw::Encoder::new()
            .compress_vec(&request.encode_to_vec())
            .unwrap()
    }

    #[test]
    fn snappy_protobuf_round_trips() {
        let request = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![Label {
                    name: "__name__".into(),
                    value: "up".into(),
                }],
                samples: vec![Sample {
                    value: 1.0,
                    timestamp: 1000,
                }],
                ..Default::default()
            }],
            metadata: vec![],
        };
        let batch = decode_new(&encoded(&request), 1 << 20).unwrap();
        let labels = batch.labels_of(&batch.series[0]);
        assert_eq!(
            (batch.bytes(labels[0].name), batch.bytes(labels[0].value)),
            (&b"__name__"[..], &b"up"[..])
        );
        assert_eq!(batch.samples_of(&batch.series[0])[0].timestamp, 1000);
    }

    #[test]
    fn headers_prometheus_sends_are_accepted() {
        assert_eq!(
            check_headers(Some("snappy"), Some("application/x-protobuf")),
            Ok(Protocol::V1)
        );
        assert_eq!(
            check_headers(
                Some("snappy"),
                Some("application/x-protobuf;proto=prometheus.WriteRequest")
            ),
            Ok(Protocol::V1)
        );
        assert_eq!(check_headers(None, None), Ok(Protocol::V1));
        assert_eq!(
            check_headers(
                Some("snappy"),
                Some("application/x-protobuf;proto=io.prometheus.write.v2.Request")
            ),
            Ok(Protocol::V2)
        );
        assert_eq!(
            check_headers(
                None,
                Some("application/x-protobuf; proto=\"io.prometheus.write.v2.Request\"")
            ),
            Ok(Protocol::V2)
        );
    }

    #[test]
    fn other_encodings_and_types_are_415() {
        for (encoding, content_type) in [
            (Some("gzip"), None),
            (Some("identity"), Some("application/x-protobuf")),
            (None, Some("application/json")),
            (
                None,
                Some("application/x-protobuf;proto=io.prometheus.write.v3.Request"),
            ),
        ] {
            let rejection = check_headers(encoding, content_type).unwrap_err();
            assert_eq!(rejection.status, 415, "{encoding:?} {content_type:?}");
        }
    }

    #[test]
    fn announced_size_is_checked_before_decompressing() {
        let body = snap::raw::Encoder::new()
            .compress_vec(&vec![0u8; 4096])
            .unwrap();
        let rejection = decode_new(&body, 4095).unwrap_err();
        assert_eq!(rejection.status, 400);
        assert!(rejection.reason.contains("4096"), "{}", rejection.reason);
        // A header announcing far more than the body could hold is refused just the same.
        let lying = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        assert_eq!(decode_new(&lying, 1 << 20).unwrap_err().status, 400);
    }

    #[test]
    fn garbage_is_400_with_a_one_line_reason() {
        for body in [&b"not snappy at all"[..], &[0x05, 0x10, 0xff, 0xff][..]] {
            let rejection = decode_new(body, 1 << 20).unwrap_err();
            assert_eq!(rejection.status, 400);
            assert!(!rejection.reason.contains('\n'));
        }
        let not_protobuf = snap::raw::Encoder::new()
            .compress_vec(&[0x0a, 0xff, 0x01])
            .unwrap();
        let rejection = decode_new(&not_protobuf, 1 << 20).unwrap_err();
        assert_eq!(rejection.status, 400);
        assert!(
            rejection.reason.starts_with("protobuf:"),
            "{}",
            rejection.reason
        );
    }
}
