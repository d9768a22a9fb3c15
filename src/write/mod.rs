//! The write path: a remote-write request body decoded and applied to the store.

pub mod decode;
pub mod exemplar;
pub mod histogram;
pub mod ingest;
pub mod names;
pub mod proto;
pub mod wire;
