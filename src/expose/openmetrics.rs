//! OpenMetrics 1.0 text (https://github.com/prometheus/OpenMetrics/blob/main/specification/OpenMetrics.md),
//! also served as 0.0.1, which differs from it in nothing we write.
//!
//! Unlike text 0.0.4, a counter family `x` has samples `x_total` and `x_created`; `# UNIT`
//! is written; exemplars follow `_total` and `_bucket` samples; timestamps are in seconds; the
//! page ends with `# EOF`. OpenMetrics is strict where 0.0.4 is lenient: every family name is
//! used once (with its suffixes), a sample's name must be its family's, a histogram has its
//! `+Inf` bucket and its count equals it, and one with negative buckets has no `_sum`. A
//! family whose series do not fit its type is written as one `unknown` family per series
//! name, and a family whose names another already used is left out and counted.

use std::collections::HashSet;
use std::ops::Range;

use crate::base::label_text::Escaping;
use crate::expose::family::grouping_labels;
use crate::expose::groups::{block_key, FamilyGroup, Grouped, LabelBlocks, GATHERED};
use crate::expose::naming::{quoted_if_needed, Naming};
use crate::expose::page::Sink;
use crate::expose::text::{
    escape_label_value, write_float, write_series_start, SeriesName, DEFAULT_HELP,
};
use crate::store::metadata::MetricKind;
use crate::store::native::Exemplar;
use crate::store::SeriesView;

/// Writes the page of `grouped`; returns how many series were left out because their family
/// name was taken.
pub fn write_page(
    out: &mut impl Sink,
    grouped: &Grouped,
    blocks: &mut LabelBlocks,
    expose_timestamps: bool,
) -> u64 {
    let mut page = OpenMetricsPage {
        blocks,
        grouped,
        expose_timestamps,
        taken: HashSet::new(),
        left_out: 0,
    };
    for group in &grouped.groups {
        if out.failed() {
            break;
        }
        let kind = group.kind();
        let fits = group.fits(kind);
        match kind {
            MetricKind::Counter if fits && group.name.ends_with("_total") => {
                let name = &group.name[..group.name.len() - "_total".len()];
                page.write_family(out, group, name, "counter", &group.members);
            }
            MetricKind::Gauge | MetricKind::Unknown if fits => {
                let type_word = if kind == MetricKind::Gauge {
                    "gauge"
                } else {
                    "unknown"
                };
                page.write_family(out, group, &group.name, type_word, &group.members);
            }
            MetricKind::Summary if fits => {
                page.write_family(out, group, &group.name, "summary", &group.members);
            }
            MetricKind::Histogram if fits && histograms_are_whole(group) => {
                page.write_family(out, group, &group.name, "histogram", &group.members);
            }
            _ => {
                for same in group.by_series_name() {
                    let type_word = if group.is_native(same[0]) {
                        "histogram"
                    } else {
                        "unknown"
                    };
                    page.write_family(out, group, group.shown_name(same[0]), type_word, &same);
                }
            }
        }
    }
    out.put(b"# EOF\n");
    page.left_out
}

/// Whether every classic histogram of the family is one OpenMetrics accepts (see
/// [`is_whole_histogram`]).
fn histograms_are_whole(group: &FamilyGroup) -> bool {
    let classic: Vec<&SeriesView> = group
        .members
        .iter()
        .copied()
        .filter(|s| !group.is_native(s))
        .collect();
    classic
        .chunk_by(|a, b| grouping_labels(a).eq(grouping_labels(b)))
        .all(|run| is_whole_histogram(group, run))
}

/// Whether the series of one classic histogram (in family order: buckets by `le`, `_sum`,
/// `_count`) have a `+Inf` bucket, buckets that do not fall as `le` rises, a count equal to the
/// `+Inf` bucket, and no `_sum` beside negative buckets, as OpenMetrics requires.
fn is_whole_histogram(group: &FamilyGroup, run: &[&SeriesView]) -> bool {
    let mut previous = f64::NEG_INFINITY;
    let (mut inf, mut count) = (None, None);
    let (mut negative, mut sum) = (false, false);
    for series in run {
        match &group.shown_name(series)[group.name.len()..] {
            "_bucket" => {
                if series.value < previous {
                    return false;
                }
                previous = series.value;
                let le = series.labels().find(|(n, _)| *n == "le");
                let le = le.and_then(|(_, v)| v.parse::<f64>().ok());
                if le == Some(f64::INFINITY) {
                    inf = Some(series.value);
                }
                negative |= le.is_some_and(|le| le < 0.0);
            }
            "_count" => count = Some(series.value),
            "_sum" => sum = true,
            _ => {}
        }
    }
    inf.is_some() && count.is_none_or(|c| Some(c) == inf) && !(negative && sum)
}

struct OpenMetricsPage<'w, 'b, 's> {
    blocks: &'w mut LabelBlocks<'b>,
    grouped: &'w Grouped<'s>,
    expose_timestamps: bool,
    /// Sample names used so far, each family's with its type's suffixes.
    taken: HashSet<String>,
    left_out: u64,
}

impl OpenMetricsPage<'_, '_, '_> {
    fn write_family(
        &mut self,
        out: &mut impl Sink,
        group: &FamilyGroup,
        name: &str,
        type_word: &str,
        members: &[&SeriesView],
    ) {
        let suffixes: &[&str] = match type_word {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_sum", "_count", "_created"],
            "summary" => &["", "_sum", "_count", "_created"],
            _ => &["", "_created"],
        };
        let names: Vec<String> = suffixes.iter().map(|s| format!("{name}{s}")).collect();
        if names.iter().any(|n| self.taken.contains(n)) || self.taken.contains(name) {
            self.left_out += members.len() as u64;
            return;
        }
        self.taken.extend(names);
        self.taken.insert(name.to_owned());
        let family = group.naming().family_name(name);
        let metadata = group.metadata.as_ref();
        let help = metadata.map_or(DEFAULT_HELP, |m| &m.help);
        put_line(
            out,
            &[b"# TYPE ", family.as_bytes(), b" ", type_word.as_bytes()],
        );
        if let Some(unit) = metadata.map(|m| &*m.unit).filter(|u| !u.is_empty()) {
            // OpenMetrics requires a family with a unit to be named with it as its suffix.
            if name.ends_with(&format!("_{unit}")) {
                put_line(out, &[b"# UNIT ", family.as_bytes(), b" ", unit.as_bytes()]);
            }
        }
        if !help.is_empty() {
            let help = escape_label_value(help);
            put_line(out, &[b"# HELP ", family.as_bytes(), b" ", help.as_bytes()]);
        }
        for batch in members.chunks(GATHERED) {
            let mut places: [Range<usize>; GATHERED] = Default::default();
            for (place, series) in places.iter_mut().zip(batch) {
                *place = self
                    .blocks
                    .place_of(self.grouped.ranks[&block_key(series)], series);
            }
            for (series, place) in batch.iter().zip(places) {
                self.write_series(out, group, name, type_word, series, place);
            }
        }
    }

    fn write_series(
        &mut self,
        out: &mut impl Sink,
        group: &FamilyGroup,
        family: &str,
        type_word: &str,
        series: &SeriesView,
        place: Range<usize>,
    ) {
        let extras = group.snapshot.extras_of(series);
        let naming = group.naming();
        let timestamp = self.expose_timestamps.then_some(series.timestamp_ms);
        let shown = group.shown_name(series);
        let quoted = naming.quoted(&series.schema);
        let block = self.blocks.at(place);
        let name = SeriesName {
            name: family,
            quoted,
        };
        let created = extras.and_then(|e| e.created_ms);
        let newest_exemplar = extras.and_then(|e| e.exemplars.last());
        if let Some(histogram) = group.snapshot.histogram_of(series) {
            let buckets = histogram.classic_buckets();
            let mut exemplars: Vec<&Exemplar> = extras.iter().flat_map(|e| &e.exemplars).collect();
            let mut below = f64::NEG_INFINITY;
            for &(le, count) in &buckets {
                write_series_start(out, name, "_bucket", block, Some(le));
                // A bucket's exemplar is the newest that falls in it.
                let in_bucket = exemplars
                    .iter()
                    .rposition(|e| e.value <= le && e.value > below);
                let exemplar = in_bucket.map(|at| exemplars.remove(at));
                write_value(out, count, timestamp, exemplar.map(|e| (e, naming)));
                below = le;
            }
            if buckets.first().is_none_or(|&(le, _)| le >= 0.0) {
                write_series_start(out, name, "_sum", block, None);
                write_value(out, histogram.sum, timestamp, None);
            }
            write_series_start(out, name, "_count", block, None);
            write_value(out, histogram.count, timestamp, None);
            write_created(out, name, block, created);
            return;
        }
        match type_word {
            "counter" => {
                write_series_start(out, name, "_total", block, None);
                let exemplar = newest_exemplar.map(|e| (e, naming));
                write_value(out, series.value, timestamp, exemplar);
                write_created(out, name, block, created);
            }
            _ => {
                let suffix = &shown[family.len().min(shown.len())..];
                write_series_start(out, name, suffix, block, None);
                let exemplar = newest_exemplar.filter(|_| suffix == "_bucket");
                write_value(out, series.value, timestamp, exemplar.map(|e| (e, naming)));
                if suffix == "_count" {
                    write_created(out, name, block, created);
                }
            }
        }
    }
}

/// The `_created` sample of a counter, histogram or summary whose sender gave its start.
fn write_created(out: &mut impl Sink, name: SeriesName, block: &[u8], created: Option<i64>) {
    if let Some(ms) = created {
        write_series_start(out, name, "_created", block, None);
        out.put_byte(b' ');
        write_seconds(out, ms);
        out.put_byte(b'\n');
    }
}

fn put_line(out: &mut impl Sink, pieces: &[&[u8]]) {
    for piece in pieces {
        out.put(piece);
    }
    out.put_byte(b'\n');
}

/// Milliseconds as OpenMetrics timestamps are written, in seconds: `1520879607.789`.
fn write_seconds(out: &mut impl Sink, ms: i64) {
    let sign = if ms < 0 { "-" } else { "" };
    let (seconds, millis) = (ms.unsigned_abs() / 1000, ms.unsigned_abs() % 1000);
    let text = if millis == 0 {
        format!("{sign}{seconds}")
    } else {
        format!("{sign}{seconds}.{millis:03}")
    };
    out.put(text.as_bytes());
}

/// ` value [timestamp] [# {labels} value [timestamp]]` and the line's end. An exemplar's label
/// names are shown in the page's scheme, as the series' are.
fn write_value(
    out: &mut impl Sink,
    value: f64,
    timestamp_ms: Option<i64>,
    exemplar: Option<(&Exemplar, &Naming)>,
) {
    out.put_byte(b' ');
    write_float(out, value);
    if let Some(ms) = timestamp_ms {
        out.put_byte(b' ');
        write_seconds(out, ms);
    }
    if let Some((exemplar, naming)) = exemplar {
        out.put(b" # {");
        for (i, (name, value)) in exemplar.labels.iter().enumerate() {
            if i > 0 {
                out.put_byte(b',');
            }
            let name = match naming.escaping {
                Escaping::AllowUtf8 => quoted_if_needed(name, false),
                _ => naming.escape(name, false),
            };
            out.put(name.as_bytes());
            out.put(b"=\"");
            out.put(escape_label_value(value).as_bytes());
            out.put_byte(b'"');
        }
        out.put(b"} ");
        write_float(out, exemplar.value);
        if let Some(ms) = exemplar.timestamp_ms {
            out.put_byte(b' ');
            write_seconds(out, ms);
        }
    }
    out.put_byte(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expose::negotiate::negotiate;
    use crate::store::intern::{Atom, Tuple};
    use crate::store::metadata::Metadata;
    use crate::store::{Schema, Snapshot};
    use std::sync::Arc;

    /// A series: name, labels, value.
    type Series<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

    fn page(series: &[Series], families: &[(&str, MetricKind)]) -> String {
        let series = series
            .iter()
            .map(|(name, labels, value)| {
                let names: Vec<&str> = labels.iter().map(|(n, _)| *n).collect();
                SeriesView {
                    schema: Arc::new(Schema::new(name, &names)),
                    values: Tuple::new(0, labels.iter().map(|(_, v)| Atom::new(v))),
                    value: *value,
                    timestamp_ms: 0,
                }
            })
            .collect();
        let families = families
            .iter()
            .map(|(name, kind)| {
                let metadata = Metadata {
                    kind: *kind,
                    help: "h".into(),
                    unit: "".into(),
                };
                (Arc::from(*name), metadata)
            })
            .collect();
        let snapshot = Snapshot {
            series,
            extras: Vec::new(),
            families,
        };
        let negotiated = negotiate(Some("application/openmetrics-text;version=1.0.0"));
        let page = crate::expose::render::render(&snapshot, negotiated, false);
        String::from_utf8(page).unwrap()
    }

    #[test]
    fn a_histogram_openmetrics_would_refuse_is_written_as_unknown_families() {
        let no_inf = page(
            &[
                ("h_bucket", &[("le", "1")], 1.0),
                ("h_count", &[], 1.0),
                ("h_sum", &[], 1.0),
            ],
            &[("h", MetricKind::Histogram)],
        );
        assert_eq!(
            no_inf,
            "# TYPE h_bucket unknown\n# HELP h_bucket h\nh_bucket{le=\"1\"} 1\n\
             # TYPE h_count unknown\n# HELP h_count h\nh_count 1\n\
             # TYPE h_sum unknown\n# HELP h_sum h\nh_sum 1\n# EOF\n"
        );
        let negative_with_sum = page(
            &[
                ("h_bucket", &[("le", "-1")], 1.0),
                ("h_bucket", &[("le", "+Inf")], 2.0),
                ("h_sum", &[], 1.0),
                ("h_count", &[], 2.0),
            ],
            &[("h", MetricKind::Histogram)],
        );
        assert!(
            !negative_with_sum.contains("# TYPE h histogram"),
            "{negative_with_sum}"
        );
        let whole = page(
            &[
                ("h_bucket", &[("le", "+Inf")], 2.0),
                ("h_bucket", &[("le", "1")], 1.0),
                ("h_count", &[], 2.0),
            ],
            &[("h", MetricKind::Histogram)],
        );
        assert!(whole.starts_with("# TYPE h histogram\n"), "{whole}");
    }

    #[test]
    fn counters_lose_total_in_their_family_name_and_names_are_used_once() {
        let text = page(
            &[
                ("jobs_total", &[], 3.0),
                ("jobs", &[], 1.0),
                ("plain", &[], 2.0),
            ],
            &[
                ("jobs", MetricKind::Counter),
                ("plain", MetricKind::Counter),
            ],
        );
        // `jobs` (a counter whose series is not named `_total`) is unknown; the counter
        // family `jobs` after it would take its name, so it is left off.
        assert_eq!(
            text,
            "# TYPE jobs unknown\n# HELP jobs h\njobs 1\n\
             # TYPE plain unknown\n# HELP plain h\nplain 2\n# EOF\n"
        );
    }

    #[test]
    fn exemplar_label_names_are_shown_in_the_page_scheme() {
        use crate::store::native::Extras;
        let exemplar = Exemplar {
            labels: vec![("trace.id".into(), "abc".into())].into(),
            value: 1.0,
            timestamp_ms: None,
        };
        let extras = Extras {
            exemplars: vec![exemplar],
            ..Extras::default()
        };
        let snapshot = Snapshot {
            series: vec![SeriesView {
                schema: Arc::new(Schema::new("jobs_total", &[])),
                values: Tuple::new(0, std::iter::empty()),
                value: 3.0,
                timestamp_ms: 0,
            }],
            extras: vec![(0, Arc::new(extras))],
            families: [(
                Arc::from("jobs"),
                Metadata {
                    kind: MetricKind::Counter,
                    help: "".into(),
                    unit: "".into(),
                },
            )]
            .into_iter()
            .collect(),
        };
        for (escaping, line) in [
            ("underscores", "jobs_total 3 # {trace_id=\"abc\"} 1\n"),
            ("allow-utf-8", "jobs_total 3 # {\"trace.id\"=\"abc\"} 1\n"),
        ] {
            let accept = format!("application/openmetrics-text;version=1.0.0;escaping={escaping}");
            let page = crate::expose::render::render(&snapshot, negotiate(Some(&accept)), false);
            let page = String::from_utf8(page).unwrap();
            assert!(page.contains(line), "{escaping}: {page}");
        }
    }

    #[test]
    fn timestamps_are_seconds() {
        for (ms, text) in [
            (1520879607789, "1520879607.789"),
            (5000, "5"),
            (-1500, "-1.500"),
            (7, "0.007"),
        ] {
            let mut out = Vec::new();
            write_seconds(&mut out, ms);
            assert_eq!(String::from_utf8(out).unwrap(), text);
        }
    }
}
