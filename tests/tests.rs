//! Integration tests: each starts the real binary on a loopback port and drives it over HTTP.

mod chain;
mod chart;
mod concurrency;
mod connections;
mod dashboard;
mod deploy;
mod dist;
mod every_format;
mod exposition;
mod fuzz_replay;
mod gzip;
mod hostile;
mod memory_limit;
mod native_peers;
mod negotiation;
mod operations;
mod otlp;
mod parsers;
mod protos;
mod remote_write;
mod remote_write_v2;
mod rules;
mod scale_out;
mod scratch;
mod support;
mod web_config;
