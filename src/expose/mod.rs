//! The scrape path: a store snapshot rendered as an exposition page, in the format the scraper
//! asked for.

pub mod family;
pub mod fields;
pub mod groups;
pub mod lines;
pub mod metrics;
pub mod naming;
pub mod negotiate;
pub mod openmetrics;
pub mod openmetrics2;
pub mod page;
pub mod protobuf;
pub mod render;
pub mod select;
pub mod text;
