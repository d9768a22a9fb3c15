//! OpenMetrics 2.0 text (2.0.0-rc0: `open_metrics_spec_2_0.md` of prometheus/docs, served on
//! prometheus.io), answered only to a scraper that asks for `version=2.0.0`.
//!
//! Unlike 1.0, every sample is named as its family: a counter family keeps the name its series
//! have (`x_total`); a histogram, gauge histogram or summary is one sample per metric with a
//! composite value (`{count:..,sum:..,bucket:[..]}`; native buckets as schema, zero bucket,
//! spans and absolute counts, before the classic buckets when a series holds both;
//! `{count:..,sum:..,quantile:[..]}`); a start timestamp follows the value as `st@`; exemplars
//! carry their timestamps (the grammar requires one, so one held without is not shown). Names
//! are UTF-8, in quotes where they leave the legacy set, never escaped. A family that cannot
//! keep its type under the spec's rules is written, as in 1.0, in families named as its
//! series are (`unknown`; `histogram` for native histograms), so that every series of text
//! 0.0.4 is on the page (see [`write_page`]).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use crate::expose::family::grouping_labels;
use crate::expose::groups::{block_key, FamilyGroup, Grouped, LabelBlocks};
use crate::expose::lines::{escape_label_value, write_float, write_series_start, SeriesName};
use crate::expose::metrics::{bound_of, runs, Item};
use crate::expose::naming::quoted_if_needed;
use crate::expose::openmetrics::{canonical_number, put_line, write_exemplar, write_seconds};
use crate::expose::page::Sink;
use crate::store::metadata::MetricKind;
use crate::store::native::{Buckets, Exemplar, NativeHistogram, CUSTOM_BUCKETS_SCHEMA};
use crate::store::SeriesView;

/// Writes the page of `grouped`; returns how many native histograms it left out, as the line
/// formats leave them out: those whose classic twin ([`Grouped::twins`]) they could not be
/// written with, in one metric of a typed histogram family.
///
/// A family keeps its type when its series fit it as the spec's rules for that type say
/// ([`typed_metrics`]); otherwise its series are written apart, each in the family of its own
/// name. Family names are unique on a page, so a typed family whose name a family apart also
/// has is written apart too. Families apart are written among the others in name order.
pub fn write_page(
    out: &mut impl Sink,
    grouped: &Grouped,
    blocks: &mut LabelBlocks,
    expose_timestamps: bool,
) -> u64 {
    let gathered = gauge_histograms(grouped);
    let (typed, apart) = place_families(grouped, &gathered);
    let written_twins = typed
        .iter()
        .flat_map(|family| &family.metrics)
        .filter(|metric| matches!(metric, Metric::Native(_, _, Some(_))))
        .count();
    let mut page = Page {
        blocks,
        grouped,
        expose_timestamps,
    };
    let mut apart = apart.into_iter().peekable();
    for family in &typed {
        while let Some((name, members)) = apart.next_if(|(name, _)| **name < *family.group.name) {
            page.write_apart(out, name, &members);
        }
        if out.failed() {
            break;
        }
        page.write_typed(out, family);
    }
    for (name, members) in apart {
        page.write_apart(out, name, &members);
    }
    out.put(b"# EOF\n");
    (grouped.twins.len() - written_twins) as u64
}

/// One sample line of a typed family.
enum Metric<'g> {
    /// A float series: a counter, gauge, unknown, info or stateset value.
    Number(&'g SeriesView),
    /// A series holding a native histogram, with the classic series of the same labels when
    /// the family holds those too.
    Native(
        &'g SeriesView,
        &'g NativeHistogram,
        Option<&'g [&'g SeriesView]>,
    ),
    /// The `_bucket`, `_sum` and `_count` series of one classic histogram, or the quantile,
    /// `_sum` and `_count` series of one summary.
    Classic(&'g [&'g SeriesView]),
}

/// A family written with its type.
struct Typed<'g> {
    group: &'g FamilyGroup<'g>,
    type_word: &'static str,
    metrics: Vec<Metric<'g>>,
}

/// Series written apart, by the name of the family they are written in, with their group.
type Apart<'g> = BTreeMap<&'g str, Vec<(&'g FamilyGroup<'g>, &'g SeriesView)>>;

/// The classic gauge histograms of the page, each gathered from the groups of its `_bucket`,
/// `_gcount` and `_gsum` series, which have no metadata of their own: a family `x` that
/// metadata types `gaugehistogram`, and that no series of the page is named as.
fn gauge_histograms<'g>(grouped: &'g Grouped<'g>) -> Vec<FamilyGroup<'g>> {
    let Some(first) = grouped.groups.first() else {
        return Vec::new();
    };
    // The groups are in name order.
    let named = |name: &str| {
        let at = grouped
            .groups
            .binary_search_by(|g| g.name.as_str().cmp(name));
        at.ok().map(|at| &grouped.groups[at])
    };
    let mut gathered = Vec::new();
    for (name, metadata) in &first.snapshot.families {
        if metadata.kind != MetricKind::GaugeHistogram || named(name).is_some() {
            continue;
        }
        let parts: Vec<&FamilyGroup> = GAUGE_HISTOGRAM_SUFFIXES
            .iter()
            .filter_map(|suffix| named(&format!("{name}{suffix}")))
            .filter(|part| part.metadata.is_none())
            .collect();
        if parts.iter().any(|part| part.name.ends_with("_bucket")) {
            gathered.extend(FamilyGroup::gathered(name, metadata.clone(), &parts));
        }
    }
    gathered.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    gathered
}

/// The series a classic gauge histogram `x` is stored as: `x_bucket`, `x_gcount`, `x_gsum`.
const GAUGE_HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_gcount", "_gsum"];

fn place_families<'g>(
    grouped: &'g Grouped<'g>,
    gathered: &'g [FamilyGroup<'g>],
) -> (Vec<Typed<'g>>, Apart<'g>) {
    let (mut typed, mut apart) = (Vec::new(), Apart::new());
    // The groups a gauge histogram was gathered from, as [`gauge_histograms`] chose them.
    let taken = |group: &FamilyGroup| {
        group.metadata.is_none()
            && gathered.iter().any(|family| {
                let suffix = group.name.strip_prefix(family.name.as_str());
                suffix.is_some_and(|s| GAUGE_HISTOGRAM_SUFFIXES.contains(&s))
            })
    };
    let groups = grouped.groups.iter().filter(|g| !taken(g));
    let mut groups: Vec<&FamilyGroup> = groups.chain(gathered).collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    for group in groups {
        match typed_metrics(group, &grouped.twins) {
            Some((type_word, metrics)) => typed.push(Typed {
                group,
                type_word,
                metrics,
            }),
            None => put_apart(&mut apart, group, &grouped.twins),
        }
    }
    loop {
        let (keep, clash): (Vec<Typed>, Vec<Typed>) = typed
            .into_iter()
            .partition(|family| !apart.contains_key(family.group.name.as_str()));
        typed = keep;
        if clash.is_empty() {
            return (typed, apart);
        }
        for family in clash {
            put_apart(&mut apart, family.group, &grouped.twins);
        }
    }
}

/// A group's series written apart, but the native histograms that are twins of classic ones,
/// which are left out.
fn put_apart<'g>(apart: &mut Apart<'g>, group: &'g FamilyGroup<'g>, twins: &HashSet<usize>) {
    for series in group.members.iter().filter(|s| !is_twin(twins, s)) {
        let name = group.shown_name(series);
        apart.entry(name).or_default().push((group, *series));
    }
}

/// The type of a family and its sample lines, when its series make a family of that type as
/// the spec says: a counter's values are neither negative nor NaN; an info family is named
/// `_info` and holds ones; each stateset metric has the family's name as a label and holds 0
/// or 1; a histogram's classic buckets have canonical, increasing bounds up to `+Inf`,
/// counts that are neither negative nor NaN, one `_sum` and one `_count` equal to the `+Inf`
/// bucket (and to the native histogram's count and sum when a series holds both); a summary
/// has one `_sum` and one `_count`, neither negative nor NaN, a whole count, and canonical,
/// increasing quantiles within [0, 1] whose values are not negative. A gauge histogram is
/// typed when its series are native histograms.
fn typed_metrics<'g>(
    group: &'g FamilyGroup<'g>,
    twins: &HashSet<usize>,
) -> Option<(&'static str, Vec<Metric<'g>>)> {
    let kind = group.kind();
    let natives = || {
        let members = group.members.iter().filter(|s| !is_twin(twins, s));
        members.map(|series| {
            let histogram = group.snapshot.histogram_of(series)?;
            (group.shown_name(series) == group.name)
                .then_some(Metric::Native(series, histogram, None))
        })
    };
    if kind == MetricKind::GaugeHistogram {
        let metrics = if group.members.iter().any(|s| group.is_native(s)) {
            natives().collect()
        } else {
            composites(group, false, twins)
        };
        return metrics.map(|metrics| ("gaugehistogram", metrics));
    }
    if !group.fits(kind) {
        return None;
    }
    let numbers = |holds: &dyn Fn(&SeriesView) -> bool| {
        group
            .members
            .iter()
            .all(|series| !group.is_native(series) && holds(series))
            .then(|| group.members.iter().map(|s| Metric::Number(s)).collect())
    };
    let typed = match kind {
        MetricKind::Counter => ("counter", numbers(&|s| s.value >= 0.0)?),
        MetricKind::Gauge => ("gauge", numbers(&|_| true)?),
        MetricKind::Unknown => ("unknown", numbers(&|_| true)?),
        MetricKind::Info if group.name.ends_with("_info") => {
            ("info", numbers(&|s| s.value == 1.0)?)
        }
        MetricKind::StateSet => {
            let state = |s: &SeriesView| s.labels().any(|(name, _)| name == group.name);
            (
                "stateset",
                numbers(&|s| (s.value == 0.0 || s.value == 1.0) && state(s))?,
            )
        }
        MetricKind::Histogram => ("histogram", composites(group, false, twins)?),
        MetricKind::Summary => ("summary", composites(group, true, twins)?),
        _ => return None,
    };
    Some(typed)
}

fn is_twin(twins: &HashSet<usize>, series: &SeriesView) -> bool {
    twins.contains(&(series as *const SeriesView as usize))
}

/// The metrics of a histogram or summary family, if each is one the spec accepts. A native
/// histogram that is the twin of classic series is written with them when they agree, else
/// left out, as the line formats leave it out.
fn composites<'g>(
    group: &'g FamilyGroup<'g>,
    summary: bool,
    twins: &HashSet<usize>,
) -> Option<Vec<Metric<'g>>> {
    let items = runs(group);
    let mut metrics = Vec::with_capacity(items.len());
    let mut items = items.into_iter().peekable();
    while let Some(item) = items.next() {
        match item {
            Item::Native(series, histogram) => {
                // The classic series of the same labels come right after it in family order.
                let classic = match items.peek() {
                    Some(Item::Run(run)) if grouping_labels(run[0]).eq(grouping_labels(series)) => {
                        Some(*run)
                    }
                    _ => None,
                };
                // One `bucket` list only: a custom-bucket histogram's is its buckets.
                let merged = classic.filter(|run| {
                    histogram.schema != CUSTOM_BUCKETS_SCHEMA
                        && classic_accepted(group, run, Some(histogram))
                });
                if merged.is_some() {
                    items.next();
                    metrics.push(Metric::Native(series, histogram, merged));
                } else if !is_twin(twins, series) {
                    metrics.push(Metric::Native(series, histogram, None));
                }
            }
            Item::Run(run) if summary && summary_accepted(group, run) => {
                metrics.push(Metric::Classic(run));
            }
            Item::Run(run) if !summary && classic_accepted(group, run, None) => {
                metrics.push(Metric::Classic(run));
            }
            _ => return None,
        }
    }
    Some(metrics)
}

/// What follows the family's name in a member's shown name: `_bucket`, `_sum`, `_count` or
/// nothing.
fn suffix<'a>(group: &'a FamilyGroup, series: &'a SeriesView) -> &'a str {
    group
        .shown_name(series)
        .get(group.name.len()..)
        .unwrap_or("")
}

/// The suffixes of a histogram family's count and sum series: `_gcount` and `_gsum` for a gauge
/// histogram.
fn totals(group: &FamilyGroup) -> (&'static str, &'static str) {
    match group.kind() {
        MetricKind::GaugeHistogram => ("_gcount", "_gsum"),
        _ => ("_count", "_sum"),
    }
}

/// The number of a bound label (`le`, `quantile`) spelled as Prometheus spells it, so that the
/// composite value shows it as the series has it.
fn canonical_bound(series: &SeriesView, label: &str) -> Option<f64> {
    let (_, text) = series.labels().find(|(name, _)| *name == label)?;
    canonical_number(text)
}

fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || a == b
}

fn classic_accepted(
    group: &FamilyGroup,
    run: &[&SeriesView],
    native: Option<&NativeHistogram>,
) -> bool {
    let mut previous: Option<f64> = None;
    let (mut inf, mut sum, mut count) = (None, Vec::new(), Vec::new());
    for series in run {
        match suffix(group, series) {
            "_bucket" => {
                let Some(le) = canonical_bound(series, "le") else {
                    return false;
                };
                if previous.is_some_and(|p| le <= p) || series.value.is_nan() || series.value < 0.0
                {
                    return false;
                }
                previous = Some(le);
                if le == f64::INFINITY {
                    inf = Some(series.value);
                }
            }
            found if found == totals(group).1 => sum.push(series.value),
            found if found == totals(group).0 => count.push(series.value),
            _ => return false,
        }
    }
    let (&[sum], &[count]) = (&sum[..], &count[..]) else {
        return false;
    };
    inf == Some(count) && native.is_none_or(|h| same(h.count, count) && same(h.sum, sum))
}

fn summary_accepted(group: &FamilyGroup, run: &[&SeriesView]) -> bool {
    let mut previous: Option<f64> = None;
    let (mut sums, mut counts) = (0, 0);
    for series in run {
        let value = series.value;
        match suffix(group, series) {
            "" => {
                let Some(quantile) = canonical_bound(series, "quantile") else {
                    return false;
                };
                if !(0.0..=1.0).contains(&quantile)
                    || previous.is_some_and(|p| quantile <= p)
                    || value < 0.0
                {
                    return false;
                }
                previous = Some(quantile);
            }
            "_sum" if value >= 0.0 => sums += 1,
            "_count" if value >= 0.0 && value.fract() == 0.0 => counts += 1,
            _ => return false,
        }
    }
    (sums, counts) == (1, 1)
}

struct Page<'w, 'b, 's> {
    blocks: &'w mut LabelBlocks<'b>,
    grouped: &'w Grouped<'s>,
    expose_timestamps: bool,
}

impl Page<'_, '_, '_> {
    /// `# TYPE`, `# UNIT` (never for info and stateset, which the spec keeps unitless) and
    /// `# HELP`.
    fn write_header(&self, out: &mut impl Sink, group: &FamilyGroup, name: &str, type_word: &str) {
        let family = quoted_if_needed(name, true);
        put_line(
            out,
            &[b"# TYPE ", family.as_bytes(), b" ", type_word.as_bytes()],
        );
        // The grammar takes a unit of name characters only (`seconds`, not `By/s`).
        let unit = group.metadata.as_ref().map_or("", |m| &*m.unit);
        let name_chars = unit
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':');
        if !unit.is_empty() && name_chars && !matches!(type_word, "info" | "stateset" | "unknown") {
            put_line(out, &[b"# UNIT ", family.as_bytes(), b" ", unit.as_bytes()]);
        }
        let help = group.help();
        if !help.is_empty() {
            let help = escape_label_value(help);
            put_line(out, &[b"# HELP ", family.as_bytes(), b" ", help.as_bytes()]);
        }
    }

    fn write_typed(&mut self, out: &mut impl Sink, family: &Typed) {
        let Typed {
            group, type_word, ..
        } = *family;
        self.write_header(out, group, &group.name, type_word);
        let gauge = type_word == "gaugehistogram";
        for metric in &family.metrics {
            match *metric {
                Metric::Number(series) => {
                    let counter = type_word == "counter";
                    self.write_number(out, group, series, counter);
                }
                Metric::Native(series, histogram, classic) => {
                    self.write_native(out, group, series, histogram, classic, gauge);
                }
                Metric::Classic(run) => self.write_classic(out, group, run, type_word),
            }
        }
    }

    /// A family of series written apart: `histogram` when they are all native histograms,
    /// else `unknown`, which holds numbers and composite values alike.
    fn write_apart(
        &mut self,
        out: &mut impl Sink,
        name: &str,
        members: &[(&FamilyGroup, &SeriesView)],
    ) {
        let all_native = members.iter().all(|(group, s)| group.is_native(s));
        let type_word = if all_native { "histogram" } else { "unknown" };
        self.write_header(out, members[0].0, name, type_word);
        for &(group, series) in members {
            match group.snapshot.histogram_of(series) {
                Some(histogram) => self.write_native(out, group, series, histogram, None, false),
                None => self.write_number(out, group, series, false),
            }
        }
    }

    /// The start of a float or native histogram series' line: its name and label block.
    fn write_start(&mut self, out: &mut impl Sink, group: &FamilyGroup, series: &SeriesView) {
        let place = self
            .blocks
            .place_of(self.grouped.ranks[&block_key(series)], series);
        let name = SeriesName {
            name: group.shown_name(series),
            quoted: group.naming().quoted(&series.schema),
        };
        write_series_start(out, name, "", self.blocks.at(place), None);
    }

    fn write_number(
        &mut self,
        out: &mut impl Sink,
        group: &FamilyGroup,
        series: &SeriesView,
        counter: bool,
    ) {
        self.write_start(out, group, series);
        out.put_byte(b' ');
        write_float(out, series.value);
        let extras = group.snapshot.extras_of(series).filter(|_| counter);
        let start = extras.and_then(|e| e.start_timestamp_ms);
        self.write_times(out, series.timestamp_ms, start);
        write_exemplars(out, group, extras.iter().flat_map(|e| e.exemplars.iter()));
        out.put_byte(b'\n');
    }

    fn write_native(
        &mut self,
        out: &mut impl Sink,
        group: &FamilyGroup,
        series: &SeriesView,
        histogram: &NativeHistogram,
        classic: Option<&[&SeriesView]>,
        gauge: bool,
    ) {
        self.write_start(out, group, series);
        out.put(if gauge { b" {gcount:" } else { b" {count:" });
        write_float(out, histogram.count);
        out.put(if gauge { b",gsum:" } else { b",sum:" });
        write_float(out, histogram.sum);
        if histogram.schema == CUSTOM_BUCKETS_SCHEMA {
            write_bucket_list(out, histogram.classic_buckets().into_iter());
        } else {
            write_native_buckets(out, histogram);
            if let Some(run) = classic {
                write_bucket_list(out, run_buckets(group, run));
            }
        }
        out.put_byte(b'}');
        let extras = group.snapshot.extras_of(series);
        let mut timestamp = series.timestamp_ms;
        let mut start = extras.and_then(|e| e.start_timestamp_ms);
        if let Some(run) = classic {
            timestamp = run.iter().map(|s| s.timestamp_ms).fold(timestamp, i64::max);
            start = start.or_else(|| run_start(group, run));
        }
        self.write_times(out, timestamp, start.filter(|_| !gauge));
        let own = extras.iter().flat_map(|e| e.exemplars.iter());
        let classic = classic.unwrap_or_default();
        write_exemplars(out, group, own.chain(bucket_exemplars(group, classic)));
        out.put_byte(b'\n');
    }

    fn write_classic(
        &mut self,
        out: &mut impl Sink,
        group: &FamilyGroup,
        run: &[&SeriesView],
        type_word: &str,
    ) {
        write_composite_start(out, &group.name, grouping_labels(run[0]));
        let member = |wanted: &str| {
            run.iter()
                .find(|s| suffix(group, s) == wanted)
                .map_or(0.0, |s| s.value)
        };
        let (count, sum) = totals(group);
        let gauge = type_word == "gaugehistogram";
        out.put(if gauge { b" {gcount:" } else { b" {count:" });
        write_float(out, member(count));
        out.put(if gauge { b",gsum:" } else { b",sum:" });
        write_float(out, member(sum));
        if type_word == "summary" {
            out.put(b",quantile:[");
            let quantiles = run.iter().filter(|s| suffix(group, s).is_empty());
            for (i, series) in quantiles.enumerate() {
                if i > 0 {
                    out.put_byte(b',');
                }
                write_float(out, bound_of(series, "quantile").unwrap_or(0.0));
                out.put_byte(b':');
                write_float(out, series.value);
            }
            out.put_byte(b']');
        } else {
            write_bucket_list(out, run_buckets(group, run));
        }
        out.put_byte(b'}');
        let timestamp = run.iter().map(|s| s.timestamp_ms).max().unwrap_or(0);
        let start = run_start(group, run).filter(|_| !gauge);
        self.write_times(out, timestamp, start);
        write_exemplars(out, group, bucket_exemplars(group, run));
        out.put_byte(b'\n');
    }

    /// ` timestamp` when timestamps are exposed, then ` st@start` when the sender gave one.
    fn write_times(&self, out: &mut impl Sink, timestamp_ms: i64, start_ms: Option<i64>) {
        if self.expose_timestamps {
            out.put_byte(b' ');
            write_seconds(out, timestamp_ms);
        }
        if let Some(ms) = start_ms {
            out.put(b" st@");
            write_seconds(out, ms);
        }
    }
}

/// The start timestamp any series of a classic run was sent with.
fn run_start(group: &FamilyGroup, run: &[&SeriesView]) -> Option<i64> {
    run.iter()
        .find_map(|s| group.snapshot.extras_of(s)?.start_timestamp_ms)
}

/// A classic run's buckets, `(le, count)` in increasing order.
fn run_buckets<'a>(
    group: &'a FamilyGroup,
    run: &'a [&'a SeriesView],
) -> impl Iterator<Item = (f64, f64)> + 'a {
    run.iter()
        .filter(move |s| suffix(group, s) == "_bucket")
        .filter_map(|s| Some((bound_of(s, "le")?, s.value)))
}

/// The newest exemplar of each bucket of a classic run.
fn bucket_exemplars<'a>(
    group: &'a FamilyGroup,
    run: &'a [&'a SeriesView],
) -> impl Iterator<Item = &'a Exemplar> + 'a {
    run.iter()
        .filter(move |s| suffix(group, s) == "_bucket")
        .filter_map(move |s| group.snapshot.extras_of(s)?.exemplars.last())
}

/// ` # {labels} value timestamp` for each exemplar that has its timestamp, which the grammar
/// requires.
fn write_exemplars<'e>(
    out: &mut impl Sink,
    group: &FamilyGroup,
    exemplars: impl Iterator<Item = &'e Exemplar>,
) {
    for exemplar in exemplars.filter(|e| e.timestamp_ms.is_some()) {
        write_exemplar(out, exemplar, group.naming());
    }
}

/// `,bucket:[le:count,...]`.
fn write_bucket_list(out: &mut impl Sink, buckets: impl Iterator<Item = (f64, f64)>) {
    out.put(b",bucket:[");
    for (i, (le, count)) in buckets.enumerate() {
        if i > 0 {
            out.put_byte(b',');
        }
        write_float(out, le);
        out.put_byte(b':');
        write_float(out, count);
    }
    out.put_byte(b']');
}

/// `,schema:..,zero_threshold:..,zero_count:..` and the spans and absolute counts of each side
/// that has buckets.
fn write_native_buckets(out: &mut impl Sink, histogram: &NativeHistogram) {
    out.put(b",schema:");
    out.put(histogram.schema.to_string().as_bytes());
    out.put(b",zero_threshold:");
    write_float(out, histogram.zero_threshold);
    out.put(b",zero_count:");
    write_float(out, histogram.zero_count);
    for (side, buckets) in [
        ("negative", &histogram.negative),
        ("positive", &histogram.positive),
    ] {
        if buckets.spans.is_empty() {
            continue;
        }
        write_side(out, side, buckets);
    }
}

fn write_side(out: &mut impl Sink, side: &str, buckets: &Buckets) {
    out.put_byte(b',');
    out.put(side.as_bytes());
    out.put(b"_spans:[");
    for (i, span) in buckets.spans.iter().enumerate() {
        if i > 0 {
            out.put_byte(b',');
        }
        out.put(format!("{}:{}", span.offset, span.length).as_bytes());
    }
    out.put(b"],");
    out.put(side.as_bytes());
    out.put(b"_buckets:[");
    for (i, &count) in buckets.counts.iter().enumerate() {
        if i > 0 {
            out.put_byte(b',');
        }
        write_float(out, count);
    }
    out.put_byte(b']');
}

/// The start of a composite line of labels other than the series' own block (a classic run's,
/// without `le` and `quantile`): `name{a="x"}`, or `{"name",a="x"}` for a name outside the
/// legacy set.
fn write_composite_start<'a>(
    out: &mut impl Sink,
    name: &str,
    labels: impl Iterator<Item = (&'a str, &'a str)>,
) {
    let quoted = quoted_if_needed(name, true);
    let mut open = matches!(quoted, Cow::Owned(_));
    if open {
        out.put_byte(b'{');
    }
    out.put(quoted.as_bytes());
    for (label, value) in labels {
        out.put_byte(if open { b',' } else { b'{' });
        open = true;
        out.put(quoted_if_needed(label, false).as_bytes());
        out.put(b"=\"");
        out.put(escape_label_value(value).as_bytes());
        out.put_byte(b'"');
    }
    if open {
        out.put_byte(b'}');
    }
}
