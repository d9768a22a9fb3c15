//! The remote-write protobuf messages, generated at build time from `proto/remote.proto` (1.0)
//! and, in [`v2`], from `proto/write_v2.proto` (2.0). The server reads requests with its own
//! reader (`wire`); these are for tests, the benchmark and the fuzz targets, which build
//! requests as senders do.
#![allow(missing_docs, clippy::all)]

include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));

/// Remote write 2.0: `io.prometheus.write.v2`, nested as its package so that its references to
/// 1.0's `prometheus.Histogram` resolve.
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

/// The `prometheus` package, as the 2.0 messages name it.
mod prometheus {
    pub use super::Histogram;
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
