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

/// A name as text format 0.0.4 can carry it, by the `underscores` escaping scheme
/// (https://prometheus.io/docs/instrumenting/escaping_schemes/): every character outside the
/// legacy set becomes `_`, and so does a leading digit. A metric name keeps its colons; a
/// label name, whose legacy set has none, loses them too. Borrowed when nothing changes.
pub fn underscore_escaped(name: &str, metric: bool) -> std::borrow::Cow<'_, str> {
    let allowed = |i: usize, c: char| {
        c.is_ascii_alphabetic() || c == '_' || (metric && c == ':') || (i > 0 && c.is_ascii_digit())
    };
    if !name.is_empty() && name.char_indices().all(|(i, c)| allowed(i, c)) {
        return std::borrow::Cow::Borrowed(name);
    }
    let escaped = name
        .chars()
        .enumerate()
        .map(|(i, c)| if allowed(i, c) { c } else { '_' })
        .collect();
    std::borrow::Cow::Owned(escaped)
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
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
