//! The scrape path: a store snapshot rendered as an exposition page.

pub mod family;
pub mod page;
pub mod text;
