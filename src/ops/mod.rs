//! What an operator sees and sets: flags, logs, the exporter's own metrics and the landing page.

pub mod flags;
pub mod landing;
pub mod log;
pub mod process;
pub mod telemetry;
