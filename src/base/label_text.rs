//! The text form of a series' label names, which the store prepares once per series shape and
//! the exposition writes before each label value.
//!
//! It lives here, below both, so that the store keeps it without depending on the exposition.
//! Format per https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format.

use std::borrow::Cow;

/// What the exposition writes before each label value of a series with these label names:
/// `{first="`, then `,second="` and so on (the metric name goes before them, written apart);
/// a series without labels has none.
pub fn series_prefixes<'a>(label_names: impl Iterator<Item = &'a str>) -> Box<[Box<str>]> {
    label_names
        .enumerate()
        .map(|(i, label)| format!("{}{label}=\"", if i == 0 { '{' } else { ',' }).into_boxed_str())
        .collect()
}

/// How names outside the legacy character set are shown to a scraper, as it asked with the
/// `escaping` parameter of its `Accept` header
/// (https://prometheus.io/docs/instrumenting/escaping_schemes/).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escaping {
    /// `allow-utf-8`: names as they are, quoted where the format needs it.
    AllowUtf8,
    /// `underscores`, the default: every other character becomes `_`.
    Underscores,
    /// `dots`: `.` becomes `_dot_`, `_` becomes `__`, every other character `__`.
    Dots,
    /// `values`: `U__`, then `_` as `__` and every other character as `_<hex code point>_`.
    Values,
}

impl Escaping {
    /// The scheme a parameter value names; the spec's own examples spell `allow-utf8`, and
    /// prometheus/common `allow-utf-8`, so both are read.
    pub fn from_param(value: &str) -> Option<Escaping> {
        match value {
            "allow-utf-8" | "allow-utf8" => Some(Escaping::AllowUtf8),
            "underscores" => Some(Escaping::Underscores),
            "dots" => Some(Escaping::Dots),
            "values" => Some(Escaping::Values),
            _ => None,
        }
    }

    /// The parameter value, as prometheus/common spells it.
    pub fn as_param(self) -> &'static str {
        match self {
            Escaping::AllowUtf8 => "allow-utf-8",
            Escaping::Underscores => "underscores",
            Escaping::Dots => "dots",
            Escaping::Values => "values",
        }
    }

    /// `name` as this scheme shows it. A name in the legacy set is shown as it is by every
    /// scheme (as prometheus/common `EscapeMetricFamily` does, so `dots` leaves the `_` of
    /// `http_requests_total` alone). Label names lose their colons as well, which the legacy
    /// label name set lacks and text 0.0.4 parsers refuse. Borrowed when nothing changes.
    pub fn escape(self, name: &str, metric: bool) -> Cow<'_, str> {
        if self == Escaping::AllowUtf8 || is_legacy_name(name, metric) {
            return Cow::Borrowed(name);
        }
        let allowed = |i: usize, c: char| legacy_char(i, c, metric);
        let mut out = String::with_capacity(name.len() + 8);
        if self == Escaping::Values {
            out.push_str("U__");
        }
        for (i, c) in name.chars().enumerate() {
            match (self, c) {
                (Escaping::Dots | Escaping::Values, '_') => out.push_str("__"),
                (Escaping::Dots, '.') => out.push_str("_dot_"),
                (_, c) if allowed(i, c) => out.push(c),
                (Escaping::Underscores, _) => out.push('_'),
                (Escaping::Dots, _) => out.push_str("__"),
                (_, c) => {
                    use std::fmt::Write;
                    let _ = write!(out, "_{:X}_", c as u32);
                }
            }
        }
        Cow::Owned(out)
    }
}

fn legacy_char(i: usize, c: char, metric: bool) -> bool {
    c.is_ascii_alphabetic() || c == '_' || (metric && c == ':') || (i > 0 && c.is_ascii_digit())
}

/// Whether `name` is in the legacy set: `[a-zA-Z_:][a-zA-Z0-9_:]*` for metric names,
/// `[a-zA-Z_][a-zA-Z0-9_]*` for label names.
pub fn is_legacy_name(name: &str, metric: bool) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .enumerate()
            .all(|(i, b)| legacy_char(i, b as char, metric))
}

/// A name as text format 0.0.4 can carry it, by the `underscores` scheme.
pub fn underscore_escaped(name: &str, metric: bool) -> Cow<'_, str> {
    Escaping::Underscores.escape(name, metric)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_outside_the_legacy_set_are_escaped_with_underscores() {
        assert_eq!(
            underscore_escaped("http_requests:rate5m", true),
            "http_requests:rate5m"
        );
        assert_eq!(
            underscore_escaped("http.server.request.duration", true),
            "http_server_request_duration"
        );
        assert_eq!(
            underscore_escaped("température_celsius", true),
            "temp_rature_celsius"
        );
        assert_eq!(underscore_escaped("my-metric", true), "my_metric");
        assert_eq!(underscore_escaped("0day", true), "_day");
        assert_eq!(underscore_escaped("service.name", false), "service_name");
        assert_eq!(underscore_escaped("a:b", false), "a_b");
        assert!(matches!(
            underscore_escaped("plain", false),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn the_other_schemes_escape_as_the_spec_examples_say() {
        assert_eq!(
            Escaping::Dots.escape("metric.name.with.dots", true),
            "metric_dot_name_dot_with_dot_dots"
        );
        assert_eq!(Escaping::Dots.escape("a_b.c-d", true), "a__b_dot_c__d");
        assert_eq!(
            Escaping::Values.escape("metric.name", true),
            "U__metric_2E_name"
        );
        assert_eq!(Escaping::Values.escape("a_b.é", true), "U__a__b_2E__E9_");
        assert_eq!(Escaping::Values.escape("0x", true), "U___30_x");
        for scheme in [Escaping::Dots, Escaping::Values, Escaping::Underscores] {
            assert_eq!(
                scheme.escape("http_requests_total", true),
                "http_requests_total"
            );
        }
        assert_eq!(Escaping::AllowUtf8.escape("a.b", true), "a.b");
        assert_eq!(
            Escaping::from_param("allow-utf8"),
            Some(Escaping::AllowUtf8)
        );
        assert_eq!(Escaping::from_param("bogus"), None);
    }
}
