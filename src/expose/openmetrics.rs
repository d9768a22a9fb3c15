//! OpenMetrics 1.0 text (https://github.com/prometheus/OpenMetrics/blob/main/specification/OpenMetrics.md),
//! also served as 0.0.1, which differs from it in nothing we write.
//!
//! Unlike text 0.0.4, a counter family `x` has samples `x_total` and `x_created`; `# UNIT`
//! is written; exemplars follow `_total` and `_bucket` samples; timestamps are in seconds; the
//! page ends with `# EOF`. OpenMetrics is strict where 0.0.4 is lenient: every family name is
//! used once (with the suffixes its type reserves), a sample's name must be its family's, a
//! histogram has its `+Inf` bucket and its count equals it, and one with negative buckets has
//! no `_sum`. The lines of a family that cannot keep its type under these rules are written in
//! `unknown` families named as the lines are, so that the page holds every series text 0.0.4
//! holds (see [`write_page`]).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
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

/// Writes the page of `grouped`.
///
/// A family keeps its type when the names that type reserves in OpenMetrics (its name and its
/// suffixes: `x`, `x_total` and `x_created` for counter `x`) are neither another typed
/// family's nor the names of lines of other families. Otherwise (a counter `x_total` beside a
/// gauge `x`, as every Go process exposes `go_memstats_alloc_bytes`; a counter beside a gauge
/// named `x_created`; a family whose series do not fit its type) its lines are written apart:
/// each in the `unknown` family of the line's own name, which reserves nothing more and which
/// every other line of that name joins, so that every series text 0.0.4 shows is on the page.
/// Families apart are written among the others, each before the first typed family whose
/// name sorts after it.
pub fn write_page(
    out: &mut impl Sink,
    grouped: &Grouped,
    blocks: &mut LabelBlocks,
    expose_timestamps: bool,
) {
    let (typed, apart) = place_families(grouped);
    let mut page = OpenMetricsPage {
        blocks,
        grouped,
        expose_timestamps,
    };
    let mut apart = apart.into_iter().peekable();
    for family in &typed {
        while let Some((name, lines)) = apart.next_if(|(name, _)| **name < *family.name) {
            page.write_apart(out, &name, &lines);
        }
        if out.failed() {
            return;
        }
        page.write_family(out, family);
    }
    for (name, lines) in apart {
        page.write_apart(out, &name, &lines);
    }
    out.put(b"# EOF\n");
}

/// A family written with its type.
struct TypedFamily<'g, 's> {
    group: &'g FamilyGroup<'s>,
    name: &'g str,
    type_word: &'static str,
    members: Cow<'g, [&'s SeriesView]>,
}

/// One line (or, for a native histogram's buckets, the `_bucket` lines) of a series written
/// apart.
#[derive(Clone, Copy)]
struct ApartLine<'g, 's> {
    group: &'g FamilyGroup<'s>,
    series: &'s SeriesView,
    part: Part,
}

/// Which of a series' lines: its value, or a native histogram's buckets, sum or count.
#[derive(Clone, Copy)]
enum Part {
    Value,
    Buckets,
    Sum,
    Count,
}

/// Lines written apart, by the name of the `unknown` family they are written in.
type Apart<'g, 's> = BTreeMap<Cow<'g, str>, Vec<ApartLine<'g, 's>>>;

/// Which families keep their type, in page order, and the lines of the others.
fn place_families<'g, 's>(grouped: &'g Grouped<'s>) -> (Vec<TypedFamily<'g, 's>>, Apart<'g, 's>) {
    let sources = line_sources(grouped);
    let mut taken = HashSet::new();
    let mut reserve = |name: &str, type_word: &str, own: &dyn Fn(LineSource) -> bool| {
        let names = reserved_names(name, type_word);
        let free = names.iter().all(|reserved| {
            !taken.contains(reserved)
                && sources
                    .get(reserved.as_str())
                    .is_none_or(|from| from.iter().all(|&source| own(source)))
        });
        if free {
            taken.extend(names);
        }
        free
    };
    let (mut typed, mut apart) = (Vec::new(), Apart::new());
    for (index, group) in grouped.groups.iter().enumerate() {
        if let Some((name, type_word)) = type_of(group) {
            if reserve(name, type_word, &|(g, _)| g == index) {
                let members = Cow::Borrowed(&group.members[..]);
                typed.push(TypedFamily {
                    group,
                    name,
                    type_word,
                    members,
                });
                continue;
            }
        }
        for same in group.by_series_name() {
            let name = group.shown_name(same[0]);
            let native = group.is_native(same[0]);
            if native
                && accepted(group, "histogram", &same)
                && reserve(name, "histogram", &|source| source == (index, true))
            {
                typed.push(TypedFamily {
                    group,
                    name,
                    type_word: "histogram",
                    members: Cow::Owned(same),
                });
                continue;
            }
            for series in same {
                let line = |part| ApartLine {
                    group,
                    series,
                    part,
                };
                if !native {
                    let lines = apart.entry(Cow::Borrowed(name)).or_default();
                    lines.push(line(Part::Value));
                    continue;
                }
                let parts = [Part::Buckets, Part::Sum, Part::Count];
                for (suffix, part) in HISTOGRAM_LINES.into_iter().zip(parts) {
                    let family = Cow::Owned(format!("{name}{suffix}"));
                    apart.entry(family).or_default().push(line(part));
                }
            }
        }
    }
    (typed, apart)
}

/// The OpenMetrics type of a family whose series all fit it, with its name there: a counter
/// family is named without `_total`.
fn type_of<'g>(group: &'g FamilyGroup) -> Option<(&'g str, &'static str)> {
    let kind = group.kind();
    if !group.fits(kind) {
        return None;
    }
    let typed = match kind {
        MetricKind::Counter => group.name.strip_suffix("_total").map(|n| (n, "counter")),
        MetricKind::Gauge => Some((group.name.as_str(), "gauge")),
        MetricKind::Unknown => Some((group.name.as_str(), "unknown")),
        MetricKind::Summary => Some((group.name.as_str(), "summary")),
        MetricKind::Histogram => Some((group.name.as_str(), "histogram")),
        _ => None,
    };
    typed.filter(|&(_, type_word)| accepted(group, type_word, &group.members))
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

/// Where lines come from: the index of a family group, and whether they are its native
/// histograms' or its float series'.
type LineSource = (usize, bool);

/// The sample names of every line text 0.0.4 writes (a float series' shown name, a native
/// histogram's `_bucket`, `_sum` and `_count`), each with where its lines come from. Members of
/// one schema sit together, so a float name is looked at once per run of them.
fn line_sources<'g>(grouped: &'g Grouped) -> HashMap<Cow<'g, str>, Vec<LineSource>> {
    let mut sources: HashMap<Cow<str>, Vec<LineSource>> = HashMap::new();
    let mut add = |name: Cow<'g, str>, source: LineSource| {
        let from = sources.entry(name).or_default();
        if !from.contains(&source) {
            from.push(source);
        }
    };
    for (index, group) in grouped.groups.iter().enumerate() {
        let mut previous: Option<&Arc<Schema>> = None;
        for series in &group.members {
            let name = group.shown_name(series);
            if group.is_native(series) {
                for suffix in HISTOGRAM_LINES {
                    add(Cow::Owned(format!("{name}{suffix}")), (index, true));
                }
            } else if !previous.is_some_and(|p| Arc::ptr_eq(p, &series.schema)) {
                previous = Some(&series.schema);
                add(Cow::Borrowed(name), (index, false));
            }
        }
    }
    sources
}

/// The suffixes of the lines a native histogram is written as.
const HISTOGRAM_LINES: [&str; 3] = ["_bucket", "_sum", "_count"];

/// Whether `members`, which fit a family of this type, make a family OpenMetrics accepts as
/// that type: the rules of the spec's types, as `prometheus_client`'s parser checks them.
/// Counter values are neither negative nor NaN. A summary's quantile lines have a canonical
/// `quantile` within [0, 1] and no negative value; its `_sum` is neither, its `_count` a whole
/// number. A histogram's buckets have canonical, increasing `le` up to `+Inf` and whole,
/// non-decreasing counts; `_sum` and `_count` come together, never beside negative buckets,
/// and the count is the `+Inf` bucket's. A native histogram is read as the classic one it is
/// written as.
fn accepted(group: &FamilyGroup, type_word: &str, members: &[&SeriesView]) -> bool {
    match type_word {
        "counter" => members.iter().all(|s| counter_like(s.value)),
        "summary" => members.iter().all(|s| {
            let suffix = &group.shown_name(s)[group.name.len()..];
            match suffix {
                "" => {
                    let quantile = s.labels().find(|(n, _)| *n == "quantile");
                    quantile.is_some_and(|(_, q)| {
                        canonical_number(q).is_some_and(|q| (0.0..=1.0).contains(&q))
                    }) && (s.value.is_nan() || s.value >= 0.0)
                }
                "_count" => whole_count(s.value),
                _ => counter_like(s.value),
            }
        }),
        "histogram" => {
            let classic: Vec<&SeriesView> = members
                .iter()
                .copied()
                .filter(|s| !group.is_native(s))
                .collect();
            let natives = members
                .iter()
                .filter_map(|s| group.snapshot.histogram_of(s));
            natives.into_iter().all(native_accepted)
                && classic
                    .chunk_by(|a, b| grouping_labels(a).eq(grouping_labels(b)))
                    .all(|run| classic_accepted(group, run))
        }
        _ => true,
    }
}

/// What `_total`, `_sum`, `_count` and `_bucket` lines hold in OpenMetrics.
fn counter_like(value: f64) -> bool {
    value >= 0.0
}

/// What `_count` and `_bucket` lines of histograms and summaries hold in OpenMetrics.
fn whole_count(value: f64) -> bool {
    value >= 0.0 && value.fract() == 0.0
}

/// The number a bound's text is, when it is spelled as Prometheus spells that number.
pub fn canonical_number(text: &str) -> Option<f64> {
    let number: f64 = text.parse().ok()?;
    let mut spelled = Vec::new();
    write_float(&mut spelled, number);
    (spelled == text.as_bytes()).then_some(number)
}

fn native_accepted(histogram: &NativeHistogram) -> bool {
    let buckets = histogram.classic_buckets();
    buckets.first().is_none_or(|&(le, _)| le >= 0.0)
        && buckets.iter().all(|&(_, count)| whole_count(count))
        && counter_like(histogram.sum)
}

/// The series of one classic histogram, in family order: buckets by `le`, `_sum`, `_count`.
fn classic_accepted(group: &FamilyGroup, run: &[&SeriesView]) -> bool {
    let (mut previous_le, mut previous_count) = (f64::NEG_INFINITY, 0.0);
    let (mut inf, mut count, mut sum, mut negative) = (None, None, false, false);
    for series in run {
        match &group.shown_name(series)[group.name.len()..] {
            "_bucket" => {
                let le = series.labels().find(|(n, _)| *n == "le");
                let Some(le) = le.and_then(|(_, v)| canonical_number(v)) else {
                    return false;
                };
                if le <= previous_le || !whole_count(series.value) || series.value < previous_count
                {
                    return false;
                }
                (previous_le, previous_count) = (le, series.value);
                negative |= le < 0.0;
                if le == f64::INFINITY {
                    inf = Some(series.value);
                }
            }
            "_count" if whole_count(series.value) => count = Some(series.value),
            "_sum" if counter_like(series.value) => sum = true,
            _ => return false,
        }
    }
    inf.is_some()
        && count.is_none_or(|c| Some(c) == inf)
        && sum == count.is_some()
        && !(negative && sum)
}

struct OpenMetricsPage<'w, 'b, 's> {
    blocks: &'w mut LabelBlocks<'b>,
    grouped: &'w Grouped<'s>,
    expose_timestamps: bool,
}

impl OpenMetricsPage<'_, '_, '_> {
    fn write_family(&mut self, out: &mut impl Sink, family: &TypedFamily) {
        let TypedFamily {
            group,
            name,
            type_word,
            ..
        } = *family;
        self.write_header(out, group, name, type_word);
        for batch in family.members.chunks(GATHERED) {
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

    /// The `unknown` family `name` of lines written apart (see [`write_page`]), with the
    /// metadata of the first line's family.
    fn write_apart(&mut self, out: &mut impl Sink, name: &str, lines: &[ApartLine]) {
        self.write_header(out, lines[0].group, name, "unknown");
        for &ApartLine {
            group,
            series,
            part,
        } in lines
        {
            let place = self
                .blocks
                .place_of(self.grouped.ranks[&block_key(series)], series);
            let series_name = SeriesName {
                name: group.shown_name(series),
                quoted: group.naming().quoted(&series.schema),
            };
            let timestamp = self.expose_timestamps.then_some(series.timestamp_ms);
            let block = self.blocks.at(place);
            let histogram = group.snapshot.histogram_of(series);
            let (suffix, value) = match (part, histogram) {
                (Part::Value, _) => ("", series.value),
                (Part::Sum, Some(h)) => ("_sum", h.sum),
                (Part::Count, Some(h)) => ("_count", h.count),
                (Part::Buckets, Some(h)) => {
                    for (le, count) in h.classic_buckets() {
                        write_series_start(out, series_name, "_bucket", block, Some(le));
                        write_value(out, count, timestamp, None);
                    }
                    continue;
                }
                (_, None) => continue,
            };
            write_series_start(out, series_name, suffix, block, None);
            write_value(out, value, timestamp, None);
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
        let created = extras.and_then(|e| e.start_timestamp_ms);
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

/// A line of the given pieces.
pub fn put_line(out: &mut impl Sink, pieces: &[&[u8]]) {
    for piece in pieces {
        out.put(piece);
    }
    out.put_byte(b'\n');
}

/// Milliseconds as OpenMetrics timestamps are written, in seconds: `1520879607.789`.
pub fn write_seconds(out: &mut impl Sink, ms: i64) {
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
        write_exemplar(out, exemplar, naming);
    }
    out.put_byte(b'\n');
}

/// ` # {labels} value [timestamp]`: an exemplar after its sample. Its label names are shown in
/// the page's scheme, as the series' are.
pub fn write_exemplar(out: &mut impl Sink, exemplar: &Exemplar, naming: &Naming) {
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
                ("h_sum", &[], 1.5),
            ],
            &[("h", MetricKind::Histogram)],
        );
        assert!(whole.starts_with("# TYPE h histogram\n"), "{whole}");
        // What the spec refuses of a histogram: a count without a sum, a bound spelled
        // otherwise than Prometheus spells it, a count that is not whole.
        let refused: [&[Series]; 3] = [
            &[("h_bucket", &[("le", "+Inf")], 2.0), ("h_count", &[], 2.0)],
            &[
                ("h_bucket", &[("le", "1.0")], 1.0),
                ("h_bucket", &[("le", "+Inf")], 2.0),
            ],
            &[
                ("h_bucket", &[("le", "1")], 0.5),
                ("h_bucket", &[("le", "+Inf")], 2.0),
            ],
        ];
        for series in refused {
            let text = page(series, &[("h", MetricKind::Histogram)]);
            assert!(!text.contains("# TYPE h histogram"), "{text}");
            assert!(text.contains("# TYPE h_bucket unknown"), "{text}");
        }
    }

    #[test]
    fn counters_and_summaries_the_spec_refuses_are_written_as_unknown_families() {
        let counter = page(
            &[("jobs_total", &[("a", "1")], -1.0)],
            &[("jobs", MetricKind::Counter)],
        );
        assert!(
            counter.starts_with("# TYPE jobs_total unknown\n"),
            "{counter}"
        );
        for (labels, value) in [
            (&[][..], 1.0),
            (&[("quantile", "2")][..], 1.0),
            (&[("quantile", "0.50")][..], 1.0),
            (&[("quantile", "0.5")][..], -1.0),
        ] {
            let summary = page(&[("s", labels, value)], &[("s", MetricKind::Summary)]);
            assert!(summary.starts_with("# TYPE s unknown\n"), "{summary}");
        }
        let summary = page(
            &[
                ("s", &[("quantile", "0.5")], f64::NAN),
                ("s_count", &[], 3.0),
            ],
            &[("s", MetricKind::Summary)],
        );
        assert!(summary.starts_with("# TYPE s summary\n"), "{summary}");
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
