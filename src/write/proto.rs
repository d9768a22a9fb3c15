//! The remote-write protobuf messages, generated at build time from `proto/remote.proto` (1.0)
//! and, in [`v2`], from `proto/write_v2.proto` (2.0). The server reads requests with its own
//! reader (`wire`); these are for tests, the benchmark and the fuzz targets, which build
//! requests as senders do.
#![allow(missing_docs, clippy::all)]

use prost::Message;

include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));

/// Remote write 2.0: `io.prometheus.write.v2`.
pub use io::prometheus::write::v2;

pub mod io {
    pub mod prometheus {
        pub mod write {
            pub mod v2 {
                include!(concat!(env!("OUT_DIR"), "/io.prometheus.write.v2.rs"));
            }
        }
    }
}

impl Histogram {
    /// The same histogram as a 2.0 message, whose fields 1 to 16 are 1.0's.
    pub fn to_v2(&self) -> v2::Histogram {
        v2::Histogram::decode(self.encode_to_vec().as_slice()).expect("the same fields")
    }
}

impl v2::Histogram {
    /// The same histogram as a 1.0 message, without the start timestamp 1.0 has no field for.
    pub fn to_v1(&self) -> Histogram {
        Histogram::decode(self.encode_to_vec().as_slice()).expect("the same fields")
    }
}

/// A 2.0 `Request`'s field 5 holding `series` with the `created_timestamp` (`TimeSeries`
/// field 6) that drafts of the spec had, in ms: appended to an encoded request, it is what such
/// a sender sends.
pub fn draft_v2_series(series: &v2::TimeSeries, created_timestamp: i64) -> Vec<u8> {
    let mut message = series.encode_to_vec();
    prost::encoding::int64::encode(6, &created_timestamp, &mut message);
    let mut field = Vec::new();
    prost::encoding::bytes::encode(5, &message, &mut field);
    field
}

impl TimeSeries {
    /// A series from label pairs and `(value, timestamp in ms)` samples, as a sender builds it.
    pub fn from_pairs(labels: &[(&str, &str)], samples: &[(f64, i64)]) -> TimeSeries {
        TimeSeries {
            labels: labels
                .iter()
                .map(|(name, value)| Label {
                    name: name.as_bytes().to_vec().into(),
                    value: value.as_bytes().to_vec().into(),
                })
                .collect(),
            samples: samples
                .iter()
                .map(|(value, timestamp)| Sample {
                    value: *value,
                    timestamp: *timestamp,
                })
                .collect(),
            ..Default::default()
        }
    }
}
