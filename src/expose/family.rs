//! Metric families: which family a series belongs to, its type, and the order of its series.
//!
//! Remote write carries metadata per family name (`MetricMetadata.metric_family_name`), while
//! samples carry series names. A histogram family `x` owns `x_bucket`, `x_sum` and `x_count`; a
//! summary owns `x` (quantiles), `x_sum` and `x_count`; a counter whose family was named the
//! OpenMetrics way (`x` with series `x_total`) is exposed as `x_total`, because the text format
//! 0.0.4 names a counter family after its series.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use crate::store::metadata::{Metadata, MetricKind};
use crate::store::SeriesView;

/// What a kind means for the exposition: the type word, and which series a family admits.
impl MetricKind {
    /// The `# TYPE` word in text format 0.0.4, which knows only five types; the OpenMetrics-only
    /// ones are exposed as `untyped` so that every parser accepts them.
    pub fn text_type(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
            MetricKind::Summary => "summary",
            _ => "untyped",
        }
    }

    /// Whether a series of this name may appear in a family of this kind named `family`.
    /// `family` is the series' own family, so a prefix of its name; only the rest is compared.
    pub fn admits(self, family: &str, series_name: &str) -> bool {
        let Some(suffix) = series_name.get(family.len()..) else {
            return false;
        };
        match self {
            MetricKind::Histogram => matches!(suffix, "_bucket" | "_sum" | "_count"),
            MetricKind::Summary => matches!(suffix, "" | "_sum" | "_count"),
            _ => suffix.is_empty(),
        }
    }

    /// Whether `series`, shown as `name`, may be exposed in a family of this kind named `family`: its name fits,
    /// and its `le` (in a histogram) or `quantile` (in a summary) is a float, which expfmt
    /// (promtool, the client libraries) requires of every line of such a family. Names as the
    /// page writes them, escaped. A `native` histogram series is written as `family_bucket`,
    /// `family_sum` and `family_count` lines.
    pub fn admits_series(
        self,
        family: &str,
        name: &str,
        series: &SeriesView,
        native: bool,
    ) -> bool {
        if native {
            return self == MetricKind::Histogram && name == family;
        }
        let bound_label = match self {
            MetricKind::Histogram => "le",
            MetricKind::Summary => "quantile",
            _ => return self.admits(family, name),
        };
        self.admits(family, name)
            && series
                .labels()
                .all(|(name, value)| name != bound_label || is_float_text(value))
    }
}

/// Whether Go's `strconv.ParseFloat`, as expfmt calls it, reads `text` without error: a decimal
/// within `f64`'s range, an unsigned `NaN`, or an infinity, in any letter case. Hexadecimal
/// floats, which Go reads but expfmt refuses, are refused here too.
pub fn is_float_text(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    if unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity") {
        return true;
    }
    if unsigned.eq_ignore_ascii_case("nan") {
        return unsigned.len() == text.len();
    }
    let decimal = unsigned.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && unsigned
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    decimal && text.parse::<f64>().is_ok_and(f64::is_finite)
}

/// The family a series of this name is exposed under, and that family's metadata if any.
pub fn family_of<'m>(
    series_name: &str,
    metadata: &'m HashMap<Arc<str>, Metadata>,
) -> (String, Option<&'m Metadata>) {
    let base_with_kind = |suffix: &str, kinds: &[MetricKind]| {
        let base = series_name.strip_suffix(suffix)?;
        let meta = metadata.get(base)?;
        kinds.contains(&meta.kind).then_some((base, meta))
    };
    use MetricKind::{Counter, Histogram, Summary};
    let owned = base_with_kind("_bucket", &[Histogram])
        .or_else(|| base_with_kind("_sum", &[Histogram, Summary]))
        .or_else(|| base_with_kind("_count", &[Histogram, Summary]));
    if let Some((base, meta)) = owned {
        return (base.to_owned(), Some(meta));
    }
    if let Some(meta) = metadata.get(series_name) {
        return (series_name.to_owned(), Some(meta));
    }
    if let Some((_, meta)) = base_with_kind("_total", &[Counter]) {
        return (series_name.to_owned(), Some(meta));
    }
    (series_name.to_owned(), None)
}

/// Orders the series of a histogram or summary family as client libraries write them: grouped
/// by their labels (ignoring `le` and `quantile`), then `x`/`x_bucket` before `x_sum` before
/// `x_count`, then buckets and quantiles by numeric bound.
pub fn compare_in_family(a: &SeriesView, b: &SeriesView) -> Ordering {
    grouping_labels(a)
        .cmp(grouping_labels(b))
        .then_with(|| suffix_rank(a.name()).cmp(&suffix_rank(b.name())))
        .then_with(|| bound(a).total_cmp(&bound(b)))
        .then_with(|| compare_plain(a, b))
}

/// Orders series by name, then by labels; enough for families without buckets or quantiles.
pub fn compare_plain(a: &SeriesView, b: &SeriesView) -> Ordering {
    if Arc::ptr_eq(&a.schema, &b.schema) {
        // Same name and label names: the values decide (interned, so often pointer-equal).
        return a.values.iter().cmp(b.values.iter());
    }
    a.name()
        .cmp(b.name())
        .then_with(|| a.labels().cmp(b.labels()))
}

/// The labels that tell one histogram or summary apart from another in the same family.
pub fn grouping_labels(series: &SeriesView) -> impl Iterator<Item = (&str, &str)> {
    series
        .labels()
        .filter(|(name, _)| !matches!(*name, "le" | "quantile"))
}

fn suffix_rank(name: &str) -> u8 {
    if name.ends_with("_sum") {
        1
    } else if name.ends_with("_count") {
        2
    } else {
        0
    }
}

/// The numeric `le` or `quantile` of a series, `-Inf` when it has none or it does not parse.
fn bound(series: &SeriesView) -> f64 {
    series
        .labels()
        .find(|(name, _)| matches!(*name, "le" | "quantile"))
        .and_then(|(_, value)| value.parse::<f64>().ok())
        .unwrap_or(f64::NEG_INFINITY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::intern::{Atom, Tuple};
    use crate::store::Schema;

    fn meta(kind: MetricKind) -> Metadata {
        Metadata {
            kind,
            help: "h".into(),
            unit: "".into(),
        }
    }

    fn metadata(entries: &[(&str, MetricKind)]) -> HashMap<Arc<str>, Metadata> {
        entries
            .iter()
            .map(|(name, kind)| (Arc::from(*name), meta(*kind)))
            .collect()
    }

    fn view(name: &str, pairs: &[(&str, &str)]) -> SeriesView {
        let names: Vec<&str> = pairs.iter().map(|(n, _)| *n).collect();
        SeriesView {
            schema: Arc::new(Schema::new(name, &names)),
            values: Tuple::new(0, pairs.iter().map(|(_, v)| Atom::new(v))),
            value: 0.0,
            timestamp_ms: 0,
        }
    }
    #[test]
    fn histogram_series_belong_to_their_family() {
        let md = metadata(&[("req_seconds", MetricKind::Histogram)]);
        for name in ["req_seconds_bucket", "req_seconds_sum", "req_seconds_count"] {
            let (family, meta) = family_of(name, &md);
            assert_eq!(family, "req_seconds");
            assert_eq!(meta.unwrap().kind, MetricKind::Histogram);
        }
    }

    #[test]
    fn summary_owns_quantiles_sum_and_count_but_not_buckets() {
        let md = metadata(&[("rpc", MetricKind::Summary)]);
        assert_eq!(family_of("rpc", &md).0, "rpc");
        assert_eq!(family_of("rpc_sum", &md).0, "rpc");
        assert_eq!(family_of("rpc_count", &md).0, "rpc");
        let (family, meta) = family_of("rpc_bucket", &md);
        assert_eq!((family.as_str(), meta), ("rpc_bucket", None));
    }

    #[test]
    fn openmetrics_counter_family_is_exposed_under_the_series_name() {
        let md = metadata(&[("jobs", MetricKind::Counter)]);
        let (family, meta) = family_of("jobs_total", &md);
        assert_eq!(family, "jobs_total");
        assert_eq!(meta.unwrap().kind, MetricKind::Counter);
    }

    #[test]
    fn series_without_metadata_are_their_own_family() {
        let md = metadata(&[("other", MetricKind::Gauge)]);
        assert_eq!(family_of("x_count", &md), ("x_count".to_owned(), None));
        assert_eq!(family_of("x", &md), ("x".to_owned(), None));
    }

    #[test]
    fn kinds_admit_only_their_series_names() {
        assert!(MetricKind::Histogram.admits("h", "h_bucket"));
        assert!(!MetricKind::Histogram.admits("h", "h"));
        assert!(MetricKind::Summary.admits("s", "s"));
        assert!(!MetricKind::Summary.admits("s", "s_bucket"));
        assert!(MetricKind::Gauge.admits("g", "g"));
        assert!(!MetricKind::Gauge.admits("g", "g_sum"));
    }

    #[test]
    fn bounds_must_be_floats_that_go_reads() {
        for good in [
            "0.5", "+Inf", "-inf", "Infinity", "NaN", "nan", "1e3", "1E-3", ".5", "5.", "-0",
        ] {
            assert!(is_float_text(good), "{good}");
        }
        for bad in [
            "", "+NaN", "-nan", "1e500", "0x1p3", "1_000", "abc", ".", "e5", "1e", "inf1",
        ] {
            assert!(!is_float_text(bad), "{bad}");
        }
    }

    #[test]
    fn a_bound_that_is_no_float_keeps_a_series_out_of_its_typed_family() {
        let summary = MetricKind::Summary;
        assert!(summary.admits_series("s", "s", &view("s", &[("quantile", "0.99")]), false));
        assert!(!summary.admits_series("s", "s", &view("s", &[("quantile", "+NaN")]), false));
        assert!(!summary.admits_series("s", "s_sum", &view("s_sum", &[("quantile", "x")]), false));
        let histogram = MetricKind::Histogram;
        assert!(histogram.admits_series(
            "h",
            "h_bucket",
            &view("h_bucket", &[("le", "+Inf")]),
            false
        ));
        assert!(!histogram.admits_series(
            "h",
            "h_bucket",
            &view("h_bucket", &[("le", "1e500")]),
            false
        ));
        assert!(histogram.admits_series("h", "h_sum", &view("h_sum", &[("quantile", "x")]), false));
        assert!(MetricKind::Gauge.admits_series("g", "g", &view("g", &[("le", "x")]), false));
    }

    #[test]
    fn histogram_series_are_ordered_like_client_libraries_write_them() {
        let mut series = [
            view("h_count", &[("job", "a")]),
            view("h_bucket", &[("job", "a"), ("le", "+Inf")]),
            view("h_bucket", &[("job", "b"), ("le", "1")]),
            view("h_bucket", &[("job", "a"), ("le", "10")]),
            view("h_sum", &[("job", "a")]),
            view("h_bucket", &[("job", "a"), ("le", "2.5")]),
        ];
        series.sort_by(compare_in_family);
        let order: Vec<String> = series
            .iter()
            .map(|s| {
                let values: Vec<&str> = s.labels().map(|(_, v)| v).collect();
                format!("{}{{{}}}", s.name(), values.join(","))
            })
            .collect();
        assert_eq!(
            order,
            [
                "h_bucket{a,2.5}",
                "h_bucket{a,10}",
                "h_bucket{a,+Inf}",
                "h_sum{a}",
                "h_count{a}",
                "h_bucket{b,1}"
            ]
        );
    }

    #[test]
    fn proto_types_map_to_text_types() {
        assert_eq!(MetricKind::from_proto(1).text_type(), "counter");
        assert_eq!(MetricKind::from_proto(3).text_type(), "histogram");
        assert_eq!(MetricKind::from_proto(4).text_type(), "untyped");
        assert_eq!(MetricKind::from_proto(99), MetricKind::Unknown);
    }
}
