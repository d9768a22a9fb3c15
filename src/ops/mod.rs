//! What an operator sees and sets: flags, logs, the exporter's own metrics and the landing page.

pub mod cardinality;
pub mod cgroup;
pub mod flags;
pub mod landing;
pub mod log;
pub mod memory;
pub mod process;
pub mod sizing;
pub mod telemetry;
