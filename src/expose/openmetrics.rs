//! OpenMetrics 1.0 text (https://github.com/prometheus/OpenMetrics/blob/main/specification/OpenMetrics.md),
//! also served as 0.0.1, which differs from it in nothing we write.
//!
//! Unlike text 0.0.4, a counter family `x` has samples `x_total` and `x_created`; `# UNIT`
//! is written; exemplars follow `_total` and `_bucket` samples; timestamps are in seconds; the
//! page ends with `# EOF`. OpenMetrics is strict where 0.0.4 is lenient: every family name is
//! used once (with the suffixes its type reserves), a sample's name must be its family's, a
//! histogram has its `+Inf` bucket and its count equals it, and one with negative buckets has
//! no `_sum`. A family that cannot keep its type under these rules is written as `unknown`
//! families, one per series name, so that the page holds every series text 0.0.4 holds.

use std::borrow::Cow;
use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use crate::base::label_text::Escaping;
use crate::expose::family::grouping_labels;
use crate::expose::groups::{block_key, FamilyGroup, Grouped, LabelBlocks, GATHERED};
use crate::expose::lines::{escape_label_value, write_float, write_series_start, SeriesName};
use crate::expose::naming::{quoted_if_needed, Naming};
use crate::expose::page::Sink;
use crate::store::metadata::MetricKind;
use crate::store::native::{Exemplar, NativeHistogram};
use crate::store::{Schema, SeriesView};

/// Writes the page of `grouped`; returns how many series were left out because the names
/// they are shown under were taken (only possible when escaping made two names one).
///
/// A family keeps its type when the names that type reserves in OpenMetrics (its name and its
/// suffixes: `x`, `x_total` and `x_created` for counter `x`) are not the names of other lines
/// on the page. Otherwise (a counter `x_total` beside a gauge `x`, as every Go process
/// exposes `go_memstats_alloc_bytes`; a counter beside a gauge named `x_created`) it is written
/// as `unknown` families under its series' own names, which reserve nothing more, so that every
/// series text 0.0.4 shows is on the page too.
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
        line_names: grouped
            .groups
            .iter()
            .flat_map(|g| line_names(g, &g.members))
            .collect(),
        taken: HashSet::new(),
        left_out: 0,
    };
    for group in &grouped.groups {
        if out.failed() {
            break;
        }
        let kind = group.kind();
        let fits = group.fits(kind);
        let typed = match kind {
            MetricKind::Counter if fits => {
                group.name.strip_suffix("_total").map(|n| (n, "counter"))
            }
            MetricKind::Gauge if fits => Some((group.name.as_str(), "gauge")),
            MetricKind::Unknown if fits => Some((group.name.as_str(), "unknown")),
            MetricKind::Summary if fits => Some((group.name.as_str(), "summary")),
            MetricKind::Histogram if fits && histograms_are_whole(group) => {
                Some((group.name.as_str(), "histogram"))
            }
            _ => None,
        };
        if let Some((name, type_word)) = typed {
            if page.may_reserve(group, name, type_word, &group.members) {
                page.write_family(out, group, name, type_word, &group.members);
                continue;
            }
        }
        for same in group.by_series_name() {
            let name = group.shown_name(same[0]);
            if !group.is_native(same[0]) {
                page.write_family(out, group, name, "unknown", &same);
            } else if natives_are_whole(group, &same)
                && page.may_reserve(group, name, "histogram", &same)
            {
                page.write_family(out, group, name, "histogram", &same);
            } else {
                page.write_native_lines_apart(out, group, name, &same);
            }
        }
    }
    out.put(b"# EOF\n");
    page.left_out
}

/// The names a family of this type reserves in OpenMetrics: its own and its samples' (as the
/// spec lists the suffixes of each type, and as `prometheus_client` checks them).
fn reserved_names(name: &str, type_word: &str) -> Vec<String> {
    let suffixes: &[&str] = match type_word {
        "counter" => &["", "_total", "_created"],
        "histogram" => &["", "_bucket", "_sum", "_count", "_created"],
        "summary" => &["", "_sum", "_count", "_created"],
        _ => &[""],
    };
    suffixes.iter().map(|s| format!("{name}{s}")).collect()
}

/// The sample names `members` are written with: a float series' shown name, a native
/// histogram's `_bucket`, `_sum` and `_count`. Members of one schema sit together, so a name
/// is looked at once per run of them.
fn line_names<'g>(group: &'g FamilyGroup, members: &[&'g SeriesView]) -> HashSet<Cow<'g, str>> {
    let mut names = HashSet::new();
    let mut previous: Option<&Arc<Schema>> = None;
    for series in members {
        let native = group.is_native(series);
        if !native && previous.is_some_and(|p| Arc::ptr_eq(p, &series.schema)) {
            continue;
        }
        previous = Some(&series.schema);
        let name = group.shown_name(series);
        if native {
            names.extend(HISTOGRAM_LINES.map(|s| Cow::Owned(format!("{name}{s}"))));
        } else {
            names.insert(Cow::Borrowed(name));
        }
    }
    names
}

/// The suffixes of the lines a native histogram is written as.
const HISTOGRAM_LINES: [&str; 3] = ["_bucket", "_sum", "_count"];

/// Whether every native histogram among `members` can be written as an OpenMetrics histogram
/// without losing a line: one with negative buckets may not have a `_sum` there.
fn natives_are_whole(group: &FamilyGroup, members: &[&SeriesView]) -> bool {
    members
        .iter()
        .filter_map(|s| group.snapshot.histogram_of(s))
        .all(|h| !has_negative_bounds(h))
}

/// Whether a native histogram, read as a classic one, has buckets below zero.
fn has_negative_bounds(histogram: &NativeHistogram) -> bool {
    let buckets = histogram.classic_buckets();
    buckets.first().is_some_and(|&(le, _)| le < 0.0)
}

/// Whether every histogram of the family is one OpenMetrics accepts whole: the classic ones
/// (see [`is_whole_histogram`]) and the native ones ([`natives_are_whole`]).
fn histograms_are_whole(group: &FamilyGroup) -> bool {
    if !natives_are_whole(group, &group.members) {
        return false;
    }
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
    /// The sample names of every line on the page ([`line_names`]).
    line_names: HashSet<Cow<'w, str>>,
    /// Names reserved so far, each family's with its type's suffixes.
    taken: HashSet<String>,
    left_out: u64,
}

impl<'w> OpenMetricsPage<'w, '_, '_> {
    /// Whether `members` may be written as a family `name` of this type: none of the names it
    /// reserves is taken, nor the name of a line it does not write itself.
    fn may_reserve(
        &self,
        group: &'w FamilyGroup,
        name: &str,
        type_word: &str,
        members: &[&'w SeriesView],
    ) -> bool {
        let own = line_names(group, members);
        reserved_names(name, type_word).iter().all(|reserved| {
            !self.taken.contains(reserved)
                && (own.contains(reserved.as_str()) || !self.line_names.contains(reserved.as_str()))
        })
    }

    /// Reserves the names of a family `name` of this type; false, and `members` counted as
    /// left out, when one is taken already.
    fn reserve(&mut self, name: &str, type_word: &str, members: usize) -> bool {
        let names = reserved_names(name, type_word);
        if names.iter().any(|n| self.taken.contains(n)) {
            self.left_out += members as u64;
            return false;
        }
        self.taken.extend(names);
        true
    }

    fn write_family(
        &mut self,
        out: &mut impl Sink,
        group: &FamilyGroup,
        name: &str,
        type_word: &str,
        members: &[&SeriesView],
    ) {
        if !self.reserve(name, type_word, members.len()) {
            return;
        }
        self.write_header(out, group, name, type_word);
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

    /// `# TYPE`, `# UNIT` and `# HELP` of a family.
    fn write_header(&self, out: &mut impl Sink, group: &FamilyGroup, name: &str, type_word: &str) {
        let family = group.naming().family_name(name);
        let metadata = group.metadata.as_ref();
        let help = group.help();
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
    }

    /// Native histograms `name` that cannot be a histogram family (another line on the page
    /// is named `name` or `name_created`): each of their lines goes in an `unknown` family of
    /// its own name, `name_bucket`, `name_sum` and `name_count`, as text 0.0.4 reads them.
    fn write_native_lines_apart(
        &mut self,
        out: &mut impl Sink,
        group: &FamilyGroup,
        name: &str,
        members: &[&SeriesView],
    ) {
        let naming = group.naming();
        for suffix in HISTOGRAM_LINES {
            let family = format!("{name}{suffix}");
            if !self.reserve(&family, "unknown", members.len()) {
                continue;
            }
            self.write_header(out, group, &family, "unknown");
            for series in members {
                let Some(histogram) = group.snapshot.histogram_of(series) else {
                    continue;
                };
                let place = self
                    .blocks
                    .place_of(self.grouped.ranks[&block_key(series)], series);
                let quoted = naming.quoted(&series.schema);
                let series_name = SeriesName { name, quoted };
                let timestamp = self.expose_timestamps.then_some(series.timestamp_ms);
                let block = self.blocks.at(place);
                match suffix {
                    "_bucket" => {
                        for (le, count) in histogram.classic_buckets() {
                            write_series_start(out, series_name, suffix, block, Some(le));
                            write_value(out, count, timestamp, None);
                        }
                    }
                    "_sum" => {
                        write_series_start(out, series_name, suffix, block, None);
                        write_value(out, histogram.sum, timestamp, None);
                    }
                    _ => {
                        write_series_start(out, series_name, suffix, block, None);
                        write_value(out, histogram.count, timestamp, None);
                    }
                }
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
            write_series_start(out, name, "_sum", block, None);
            write_value(out, histogram.sum, timestamp, None);
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
    fn counters_lose_total_in_their_family_name_and_clashing_families_lose_their_type() {
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
        // `jobs` (a counter whose series is not named `_total`) is unknown; the counter family
        // `jobs` would take its name, so `jobs_total` is an unknown family of its own.
        assert_eq!(
            text,
            "# TYPE jobs unknown\n# HELP jobs h\njobs 1\n\
             # TYPE jobs_total unknown\n# HELP jobs_total h\njobs_total 3\n\
             # TYPE plain unknown\n# HELP plain h\nplain 2\n# EOF\n"
        );
    }

    #[test]
    fn a_counter_beside_a_gauge_of_its_family_name_keeps_every_series() {
        // As every Go process exposes them.
        let go = page(
            &[
                ("go_memstats_alloc_bytes", &[], 5.0),
                ("go_memstats_alloc_bytes_total", &[], 9.0),
            ],
            &[
                ("go_memstats_alloc_bytes", MetricKind::Gauge),
                ("go_memstats_alloc_bytes_total", MetricKind::Counter),
            ],
        );
        assert_eq!(
            go,
            "# TYPE go_memstats_alloc_bytes gauge\n# HELP go_memstats_alloc_bytes h\n\
             go_memstats_alloc_bytes 5\n\
             # TYPE go_memstats_alloc_bytes_total unknown\n\
             # HELP go_memstats_alloc_bytes_total h\ngo_memstats_alloc_bytes_total 9\n# EOF\n"
        );
        // A gauge named as the counter's `_created`; the order of the families does not matter.
        for (gauge, counter) in [
            ("jobs_done_created", "jobs_done_total"),
            ("a_created", "a_total"),
        ] {
            let text = page(
                &[(counter, &[], 3.0), (gauge, &[], 7.0)],
                &[(counter, MetricKind::Counter), (gauge, MetricKind::Gauge)],
            );
            assert!(
                text.contains(&format!("# TYPE {counter} unknown\n")),
                "{text}"
            );
            assert!(text.contains(&format!("\n{counter} 3\n")), "{text}");
            assert!(text.contains(&format!("# TYPE {gauge} gauge\n")), "{text}");
            assert!(text.contains(&format!("\n{gauge} 7\n")), "{text}");
        }
        // Without a clash the counter keeps its type.
        let alone = page(
            &[("jobs_done_total", &[], 3.0)],
            &[("jobs_done", MetricKind::Counter)],
        );
        assert!(alone.starts_with("# TYPE jobs_done counter\n"), "{alone}");
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
