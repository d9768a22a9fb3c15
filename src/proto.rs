//! The remote-write protobuf messages, generated at build time from `proto/remote.proto`.
#![allow(missing_docs, clippy::all)]

include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));
