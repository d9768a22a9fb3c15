//! The OTLP path: an OpenTelemetry metrics export (OTLP/HTTP, protobuf or JSON) read and
//! translated into the store as Prometheus 3's OTLP receiver translates it.
//!
//! [`protobuf`] and [`json`] read a request into the [`model`]; [`translate`] names its
//! series ([`names`]), turns exponential histograms into native ones ([`exponential`]), adds
//! delta points up ([`delta`]) and applies them; [`receive`] is the HTTP side.

pub mod delta;
pub mod exponential;
pub mod json;
pub mod model;
pub mod names;
pub mod protobuf;
pub mod receive;
pub mod translate;
