//! Which metric and label names a write may use (`--write.name-validation`): any non-empty
//! UTF-8, as Prometheus 3 accepts by default, or only the classic character sets, metric names
//! `[a-zA-Z_:][a-zA-Z0-9_:]*` and label names `[a-zA-Z_][a-zA-Z0-9_]*`
//! (https://prometheus.io/docs/concepts/data_model/). Series and exemplars are checked alike.

/// Which metric and label names are accepted (`--write.name-validation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRules {
    /// Any non-empty valid UTF-8, as Prometheus 3.
    Utf8,
    /// The classic character sets only, as Prometheus 2.
    Legacy,
}

impl NameRules {
    /// Under UTF-8 rules any non-empty UTF-8 name (the store checks label values and names it
    /// meets first for UTF-8 anyway, but a name is checked here so that the reason says so).
    pub fn allows_metric_name(self, name: &[u8]) -> bool {
        match self {
            NameRules::Utf8 => is_utf8_name(name),
            NameRules::Legacy => is_metric_name(name),
        }
    }

    pub fn allows_label_name(self, name: &[u8]) -> bool {
        match self {
            NameRules::Utf8 => is_utf8_name(name),
            NameRules::Legacy => is_label_name(name),
        }
    }
}

/// Any non-empty UTF-8: Prometheus 3's rule for metric and label names alike.
fn is_utf8_name(name: &[u8]) -> bool {
    !name.is_empty() && std::str::from_utf8(name).is_ok()
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub fn is_metric_name(name: &[u8]) -> bool {
    let mut bytes = name.iter().copied();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_' | b':'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b':'))
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`
pub fn is_label_name(name: &[u8]) -> bool {
    let mut bytes = name.iter().copied();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_rules() {
        for good in ["up", "a:b_c", "_x", "Container_1"] {
            assert!(is_metric_name(good.as_bytes()), "{good}");
        }
        for bad in ["", "1a", "a-b", "a.b", "é"] {
            assert!(!is_metric_name(bad.as_bytes()), "{bad}");
        }
        assert!(is_label_name(b"le") && is_label_name(b"_a1"));
        assert!(!is_label_name(b"a:b") && !is_label_name(b"0") && !is_label_name(b""));
    }
}
