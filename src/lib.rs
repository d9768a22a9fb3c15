//! k8s_exporter turns Prometheus remote write (push) into a scrape target (pull).
//!
//! The folders follow the data, from a request arriving to a page leaving:
//!
//! - [`web`]: connections admitted and read under deadlines (HTTP/1.1 framing, TLS, basic
//!   auth, the byte budget), handed to a fixed pool of workers that run the [`web::routes`].
//! - [`write`](mod@write): a remote-write request decoded (headers, snappy, protobuf) and validated into
//!   the store.
//! - [`otlp`]: an OpenTelemetry OTLP/HTTP metrics export read (protobuf or JSON) and
//!   translated into the store as Prometheus 3 translates it.
//! - [`store`]: the newest sample of every series, with its interned labels and its family's
//!   metadata, and the snapshots scrapes are rendered from.
//! - [`expose`]: a snapshot rendered as a scrape page, written as it is made.
//! - [`ops`]: what an operator touches: flags, logs, own metrics, process metrics, the
//!   landing page.
//! - [`base`]: what every layer leans on: locks, byte comparisons, units, UTC dates, the static
//!   build's allocator.
//! - [`server`]: the process that ties them together.
//!
//! Imports go one way, with no cycle, between the folders and within each: [`base`] depends on nothing, [`store`] on [`base`],
//! [`write`](mod@write) and [`expose`] on the store, [`otlp`] on the store and [`write`](mod@write), [`ops`] on those, [`web`] on all of them,
//! and [`server`] on top. The store knows nothing of the exposition, the exposition nothing of
//! HTTP.
//!
//! No unsafe code, but in [`base::allocator`], the static build's memory allocator.
#![deny(unsafe_code)]

pub mod base;
pub mod expose;
pub mod ops;
pub mod otlp;
pub mod server;
pub mod store;
pub mod web;
pub mod write;
