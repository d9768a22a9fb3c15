//! What remote-write metadata says of a metric family: its type, help and unit.
//!
//! Remote write 1.0 carries it per family name in `MetricMetadata`
//! (https://prometheus.io/docs/specs/remote_write_spec/); the store keeps the newest per name.

use std::sync::Arc;

/// The metric type of a family, as remote-write metadata names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Unknown,
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
}

impl MetricKind {
    /// Maps `MetricMetadata.MetricType`; unknown numbers read as `Unknown`.
    pub fn from_proto(value: i32) -> MetricKind {
        match value {
            1 => MetricKind::Counter,
            2 => MetricKind::Gauge,
            3 => MetricKind::Histogram,
            4 => MetricKind::GaugeHistogram,
            5 => MetricKind::Summary,
            6 => MetricKind::Info,
            7 => MetricKind::StateSet,
            _ => MetricKind::Unknown,
        }
    }
}

/// What remote-write metadata says of one family.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    pub kind: MetricKind,
    pub help: Arc<str>,
    pub unit: Arc<str>,
}
