//! k8s_exporter turns Prometheus remote write (push) into a scrape target (pull).
//!
//! The data flow is the module list: [`decode`] reads a request, [`ingest`] validates it into
//! the [`store`], [`exposition`] renders the store for `/metrics`, [`http`] answers requests that [`connections`] reads and [`workers`] run,
//! [`telemetry`] counts what happened, and [`server`] runs the process.
//!
//! No unsafe code, but in [`allocator`], the static build's memory allocator.
#![deny(unsafe_code)]

pub mod allocator;
pub mod auth;
pub mod budget;
pub mod bytes;
pub mod connections;
pub mod decode;
pub mod exposition;
pub mod family;
pub mod flags;
pub mod http;
pub mod http1;
pub mod ingest;
pub mod intern;
pub mod landing;
pub mod locks;
pub mod log;
pub mod page;
pub mod process;
pub mod proto;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod units;
pub mod webconfig;
pub mod wire;
pub mod workers;
