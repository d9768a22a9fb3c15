//! The text form of a series' label names, which the store prepares once per series shape and
//! the exposition writes before each label value.
//!
//! It lives here, below both, so that the store keeps it without depending on the exposition.
//! Format per https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format.

/// What the exposition writes before each label value of a series with these label names:
/// `{first="`, then `,second="` and so on (the metric name goes before them, written apart);
/// a series without labels has none.
pub fn series_prefixes<'a>(label_names: impl Iterator<Item = &'a str>) -> Box<[Box<str>]> {
    label_names
        .enumerate()
        .map(|(i, label)| format!("{}{label}=\"", if i == 0 { '{' } else { ',' }).into_boxed_str())
        .collect()
}
