//! The published protos in `../shared/upstream/` (remote write 1.0 and 2.0, client_model's
//! `metrics.proto`, OTLP metrics), compiled when the tests run, so that requests are built and scrape pages
//! read by messages that are not the exporter's own.

use std::path::PathBuf;
use std::sync::OnceLock;

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};
use serde_json::Value;

/// Where the published files are: `shared/upstream` beside the project.
pub fn upstream_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/upstream");
    assert!(
        dir.join("README.md").is_file(),
        "{} is missing: the tests read the published protos there",
        dir.display()
    );
    dir
}

/// The published files as paths under [`upstream_dir`] and under the include path they are
/// imported by: (include path, file).
pub const PUBLISHED: [(&str, &str); 5] = [
    ("prometheus/prompb", "types.proto"),
    ("prometheus/prompb", "remote.proto"),
    ("prometheus/prompb", "io/prometheus/write/v2/types.proto"),
    ("prometheus/prompb", "io/prometheus/client/metrics.proto"),
    (
        "opentelemetry-proto",
        "opentelemetry/proto/collector/metrics/v1/metrics_service.proto",
    ),
];

/// Every published proto compiled into one pool (with `gogoproto/gogo.proto`, which they
/// import, and protox's copy of the well-known types).
pub fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let dir = upstream_dir();
        let includes = [
            dir.join("prometheus/prompb"),
            dir.join("opentelemetry-proto"),
            dir.clone(),
        ];
        let mut compiler = protox::Compiler::new(includes)
            .unwrap_or_else(|e| panic!("include paths under {}: {e}", dir.display()));
        for (_, file) in PUBLISHED {
            compiler
                .open_file(file)
                .unwrap_or_else(|e| panic!("compile the published {file}: {e}"));
        }
        compiler.descriptor_pool()
    })
}

pub fn message(name: &str) -> MessageDescriptor {
    pool()
        .get_message_by_name(name)
        .unwrap_or_else(|| panic!("{name} in the published protos"))
}

/// A message of the published protos from its proto3 JSON form (field names in lowerCamelCase,
/// 64-bit integers as strings), encoded.
pub fn encode(name: &str, json: Value) -> Vec<u8> {
    DynamicMessage::deserialize(message(name), json)
        .unwrap_or_else(|e| panic!("{name} from JSON: {e}"))
        .encode_to_vec()
}

/// A remote write 1.0 `prometheus.WriteRequest`, encoded from JSON.
pub fn write_request_v1(json: Value) -> Vec<u8> {
    encode("prometheus.WriteRequest", json)
}

/// A remote write 2.0 `io.prometheus.write.v2.Request`, encoded from JSON.
pub fn write_request_v2(json: Value) -> Vec<u8> {
    encode("io.prometheus.write.v2.Request", json)
}

/// An OTLP `ExportMetricsServiceRequest`, encoded from its proto3 JSON (bytes such as
/// `traceId` in base64, as proto3 JSON has them, not in OTLP/JSON's hex).
pub fn otlp_request(json: Value) -> Vec<u8> {
    encode(
        "opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest",
        json,
    )
}

/// An encoded OTLP `ExportMetricsServiceRequest` as the protobuf JSON mapping writes it with
/// the published protos (lowerCamelCase, 64-bit integers as strings, enums by name): OTLP/JSON
/// but for bytes, which it writes in base64 where OTLP/JSON has hex.
pub fn otlp_request_as_json(encoded: &[u8]) -> Value {
    let descriptor =
        message("opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest");
    DynamicMessage::decode(descriptor, encoded)
        .expect("an ExportMetricsServiceRequest")
        .serialize_with_options(serde_json::value::Serializer, &SerializeOptions::new())
        .expect("the request as JSON")
}

/// An OTLP `ExportMetricsServiceResponse` read from protobuf, as JSON.
pub fn otlp_response(body: &[u8]) -> Value {
    let descriptor =
        message("opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceResponse");
    let message =
        DynamicMessage::decode(descriptor, body).expect("an ExportMetricsServiceResponse");
    message
        .serialize_with_options(serde_json::value::Serializer, &SerializeOptions::new())
        .expect("the response as JSON")
}

/// Every length-delimited `io.prometheus.client.MetricFamily` of a protobuf scrape page, as
/// proto3 JSON with the fields left at their defaults too (`COUNTER` is the enum's zero).
pub fn decode_protobuf_page(mut page: &[u8]) -> Vec<Value> {
    let descriptor = message("io.prometheus.client.MetricFamily");
    let mut families = Vec::new();
    while !page.is_empty() {
        let length = prost::encoding::decode_varint(&mut page).expect("a length") as usize;
        let (bytes, rest) = page.split_at(length);
        let message = DynamicMessage::decode(descriptor.clone(), bytes).expect("a MetricFamily");
        page = rest;
        let options = SerializeOptions::new().skip_default_fields(false);
        let json = message.serialize_with_options(serde_json::value::Serializer, &options);
        families.push(json.expect("a MetricFamily as JSON"));
    }
    families
}

/// A protobuf scrape page of these families (as JSON), length-delimited.
pub fn protobuf_page(families: &[Value]) -> Vec<u8> {
    let descriptor = message("io.prometheus.client.MetricFamily");
    let mut page = Vec::new();
    for family in families {
        let message = DynamicMessage::deserialize(descriptor.clone(), family.clone())
            .unwrap_or_else(|e| panic!("MetricFamily from JSON: {e}"));
        page.extend(message.encode_length_delimited_to_vec());
    }
    page
}
