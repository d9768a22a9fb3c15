//! The remote-write protobuf messages, generated at build time from `proto/remote.proto`.
#![allow(missing_docs, clippy::all)]

include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));

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
