//! Small pieces every layer uses, depending on nothing else in the crate.

pub mod allocator;
pub mod bytes;
pub mod label_text;
pub mod locks;
pub mod units;
pub mod utc;
