//! An OTLP export request applied to the store as Prometheus 3's OTLP receiver translates it
//! (`storage/remote/otlptranslator/prometheusremotewrite` in prometheus/prometheus, with its
//! default `otlp` settings), so that a scrape shows what Prometheus would have stored:
//!
//! - names by the translation strategy in force ([`names`](super::names));
//! - a point's labels: its attributes (keys that name the same label have their values joined
//!   by `;` in key order), then promoted resource attributes not already there, then `job`
//!   (`service.namespace/service.name`) and `instance` (`service.instance.id`);
//! - gauges and non-monotonic sums as gauges, monotonic sums as counters with their start
//!   time, explicit-bucket histograms as classic `_bucket`/`_sum`/`_count` series (an exemplar
//!   goes to the first bucket holding its value), exponential histograms as native histograms,
//!   summaries as quantile, `_sum` and `_count` series;
//! - a point flagged "no recorded value" as a stale marker, which removes its series;
//! - `target_info` (1, at the resource's newest point) with the resource's other attributes,
//!   when it has any besides the three that make `job` and `instance`;
//! - the family's type, description as help, and unit (as Prometheus names it) as metadata.
//!
//! Where Prometheus refuses delta temporality, points are added up as the OpenTelemetry
//! collector's `prometheus` exporter does ([`delta`](super::delta)).

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::otlp::delta::{self, Interval};
use crate::otlp::exponential;
use crate::otlp::model::{
    Attribute, Data, Exemplar as OtlpExemplar, ExportRequest, Metric, PointAttributes, PointCommon,
    Temporality,
};
use crate::otlp::names::{label_name, metadata_unit, metric_name, NameKind, Strategy};
use crate::store::metadata::{Metadata, MetricKind};
use crate::store::native::{Exemplar, NativeHistogram};
use crate::store::{Applied, Sample, SeriesKey, Store, Update, Writer, STALE_NAN_BITS};
use crate::write::exemplar::MAX_EXEMPLAR_LABEL_CHARS;
use crate::write::histogram::check_counts;
use crate::write::ingest::{DropReason, Outcome, Report, WriteRules, MAX_FUTURE_MS};

const SERVICE_NAME: &[u8] = b"service.name";
const SERVICE_NAMESPACE: &[u8] = b"service.namespace";
const SERVICE_INSTANCE_ID: &[u8] = b"service.instance.id";
const TARGET_INFO: &str = "target_info";

/// How OTLP names become Prometheus names (`--otlp.translation-strategy`,
/// `--otlp.promote-resource-attributes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Translation {
    pub strategy: Strategy,
    /// Resource attributes copied onto every series of the resource.
    pub promoted: Vec<String>,
}

/// Why a data point was refused, in whole or in part: the label values of
/// `k8s_exporter_otlp_data_points_rejected_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointProblem {
    /// A sum or histogram of unspecified aggregation temporality.
    InvalidTemporality,
    /// Something in the store refused it ([`DropReason`]).
    Store(DropReason),
}

impl PointProblem {
    pub fn as_str(self) -> &'static str {
        match self {
            PointProblem::InvalidTemporality => "invalid_temporality",
            PointProblem::Store(reason) => reason.as_str(),
        }
    }
}

/// The OTLP data point kinds, for `k8s_exporter_otlp_data_points_received_total{type}`.
pub const POINT_KINDS: [&str; 5] = [
    "gauge",
    "sum",
    "histogram",
    "exponential_histogram",
    "summary",
];

/// What one export request did.
#[derive(Debug, Default)]
pub struct OtlpReport {
    /// Data points received, by [`POINT_KINDS`].
    pub received: [u64; POINT_KINDS.len()],
    /// Data points of which anything was refused, by the first reason.
    pub rejected: Vec<(PointProblem, u64)>,
    /// What the series the points became did in the store.
    pub store: Report,
    /// The first problem met, in words, for `partial_success.error_message`.
    pub first_problem: Option<String>,
}

impl OtlpReport {
    pub fn rejected_points(&self) -> u64 {
        self.rejected.iter().map(|(_, count)| count).sum()
    }

    fn reject(&mut self, problem: PointProblem, points: u64, words: impl FnOnce() -> String) {
        if points == 0 {
            return;
        }
        match self
            .rejected
            .iter_mut()
            .find(|(known, _)| *known == problem)
        {
            Some((_, count)) => *count += points,
            None => self.rejected.push((problem, points)),
        }
        if self.first_problem.is_none() {
            self.first_problem = Some(words());
        }
    }
}

/// Applies every data point of `request` that can be stored; the rest are counted.
pub fn apply(
    store: &Store,
    request: &ExportRequest,
    rules: &WriteRules,
    translation: &Translation,
    now_ms: i64,
    tick: u32,
) -> OtlpReport {
    let identities: Vec<ResourceLabels> = request
        .resources
        .iter()
        .map(|resource| ResourceLabels::of(&resource.attributes, translation))
        .collect();
    let mut applier = Applier {
        writer: store.writer(),
        rules,
        translation,
        now_ms,
        tick,
        report: OtlpReport::default(),
        labels: Vec::new(),
        sorted: Vec::new(),
        point_attributes: &request.point_attributes,
    };
    for (resource, identity) in request.resources.iter().zip(&identities) {
        let mut newest_ms = None;
        for metric in resource.scopes.iter().flat_map(|scope| &scope.metrics) {
            applier.apply_metric(metric, identity, &mut newest_ms);
        }
        if let Some(newest_ms) = newest_ms {
            applier.apply_target_info(&resource.attributes, identity, newest_ms);
        }
    }
    applier.report
}

/// Labels a series' key is built with on the stack; one with more takes an allocation.
const KEY_LABELS_ON_STACK: usize = 32;

/// A label's name and value, as bytes: borrowed from the request when they can be.
type Label<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

/// The labels every series of a resource gets, named already: promoted attributes, `job` and
/// `instance`.
struct ResourceLabels<'a> {
    promoted: Vec<Label<'a>>,
    job: Option<Cow<'a, [u8]>>,
    instance: Option<Cow<'a, [u8]>>,
}

impl<'a> ResourceLabels<'a> {
    fn of(attributes: &'a [Attribute<'a>], translation: &Translation) -> ResourceLabels<'a> {
        let value_of = |key: &[u8]| {
            attributes
                .iter()
                .find(|a| a.key == key)
                .map(|a| a.value.as_label_value())
        };
        let job = value_of(SERVICE_NAME).map(|name| match value_of(SERVICE_NAMESPACE) {
            Some(namespace) => Cow::Owned([&namespace[..], b"/", &name[..]].concat()),
            None => name,
        });
        let mut promoted: Vec<(&[u8], Cow<[u8]>)> = attributes
            .iter()
            .filter(|a| translation.promoted.iter().any(|p| p.as_bytes() == a.key))
            .map(|a| (a.key, a.value.as_label_value()))
            .collect();
        promoted.sort_by(|a, b| a.0.cmp(b.0));
        ResourceLabels {
            promoted: promoted
                .into_iter()
                .filter_map(|(key, value)| {
                    Some((label_name(translation.strategy, key).ok()?, value))
                })
                .collect(),
            job,
            instance: value_of(SERVICE_INSTANCE_ID),
        }
    }
}

/// One series a point becomes: its name, its extra label (`le`, `quantile`) and what it gets.
struct SeriesOut<'p> {
    name: Cow<'p, str>,
    extra: Option<(&'static str, String)>,
    value: Value,
    exemplars: Vec<Exemplar>,
}

enum Value {
    Float(f64),
    Histogram(NativeHistogram),
}

/// What a point is, for how its series are stored.
#[derive(Clone, Copy)]
struct PointShape {
    /// When the point starts (if it says) and ends.
    interval: Interval,
    /// Whether the series keeps the start as its start timestamp: counters, histograms and
    /// summaries do, gauges do not.
    keeps_start: bool,
    /// Delta temporality: added to what the series holds.
    delta: bool,
}

/// Applies one request's points; `'i` is how long the request (and its resources' labels)
/// are borrowed, so that a point's labels borrow from them rather than copy.
struct Applier<'s, 'r, 'i> {
    writer: Writer<'s>,
    rules: &'r WriteRules,
    translation: &'r Translation,
    now_ms: i64,
    tick: u32,
    report: OtlpReport,
    /// A point's labels, named, sorted by name (reused from point to point).
    labels: Vec<Label<'i>>,
    /// A point's attributes, key and value, in key order (reused from point to point).
    sorted: Vec<(&'i [u8], Cow<'i, [u8]>)>,
    /// The request's points' attributes, which each point has a range of.
    point_attributes: &'i PointAttributes<'i>,
}

fn nanos_to_ms(nanos: u64) -> i64 {
    (nanos / 1_000_000) as i64
}

impl<'i> Applier<'_, '_, 'i> {
    fn apply_metric(
        &mut self,
        metric: &'i Metric<'i>,
        identity: &'i ResourceLabels<'i>,
        newest_ms: &mut Option<i64>,
    ) {
        let (kind_index, name_kind, metric_kind, temporality) = match &metric.data {
            Data::Empty => return,
            Data::Gauge(_) => (0, NameKind::Gauge, MetricKind::Gauge, None),
            Data::Sum {
                temporality,
                monotonic: true,
                ..
            } => (
                1,
                NameKind::MonotonicCounter,
                MetricKind::Counter,
                Some(*temporality),
            ),
            Data::Sum { temporality, .. } => (
                1,
                NameKind::NonMonotonicCounter,
                MetricKind::Gauge,
                Some(*temporality),
            ),
            Data::Histogram { temporality, .. } => (
                2,
                NameKind::Histogram,
                MetricKind::Histogram,
                Some(*temporality),
            ),
            Data::Exponential { temporality, .. } => (
                3,
                NameKind::Histogram,
                MetricKind::Histogram,
                Some(*temporality),
            ),
            Data::Summary(_) => (4, NameKind::Summary, MetricKind::Summary, None),
        };
        let mut points = 0;
        for common in metric.data.commons() {
            points += 1;
            let time_ms = nanos_to_ms(common.time_unix_nano);
            *newest_ms = Some(newest_ms.map_or(time_ms, |newest| newest.max(time_ms)));
        }
        self.report.received[kind_index] += points;
        if temporality == Some(Temporality::Unspecified) {
            let name = metric.name;
            return self
                .report
                .reject(PointProblem::InvalidTemporality, points, || {
                    format!("metric {name:?} has no aggregation temporality")
                });
        }
        let strategy = self.translation.strategy;
        let family = match metric_name(strategy, metric.name, metric.unit, name_kind) {
            Ok(family) if self.rules.names.allows_metric_name(family.as_bytes()) => family,
            Ok(family) => {
                let problem = PointProblem::Store(DropReason::InvalidMetricName);
                return self.report.reject(problem, points, || {
                    format!("invalid metric name {family:?}")
                });
            }
            Err(reason) => {
                let problem = PointProblem::Store(DropReason::InvalidMetricName);
                return self.report.reject(problem, points, || reason);
            }
        };
        self.writer.store().set_metadata(
            &family,
            Metadata {
                kind: metric_kind,
                help: metric.description.into(),
                unit: metadata_unit(strategy, metric.unit).into(),
            },
            self.tick,
        );
        let delta = temporality == Some(Temporality::Delta);
        let shape = |common: &PointCommon| PointShape {
            interval: Interval {
                start_ms: (common.start_time_unix_nano != 0)
                    .then(|| nanos_to_ms(common.start_time_unix_nano)),
                time_ms: nanos_to_ms(common.time_unix_nano),
            },
            keeps_start: metric_kind != MetricKind::Gauge,
            delta,
        };
        match &metric.data {
            Data::Empty => {}
            Data::Gauge(points) | Data::Sum { points, .. } => {
                for point in points {
                    let shape = shape(&point.common);
                    let value = stale_or(&point.common, point.value);
                    let series = [SeriesOut {
                        name: Cow::Borrowed(&family),
                        extra: None,
                        value: Value::Float(value),
                        exemplars: self.exemplars(&point.common.exemplars),
                    }];
                    self.apply_point(&point.common, identity, shape, series);
                }
            }
            Data::Histogram { points, .. } => {
                for point in points {
                    let common = &point.common;
                    let mut series = Vec::with_capacity(point.explicit_bounds.len() + 3);
                    // Buckets past the counts sent have none; +Inf has the total count.
                    let mut cumulative = 0;
                    let mut bounds = Vec::with_capacity(point.explicit_bounds.len() + 1);
                    for (bound, count) in point.explicit_bounds.iter().zip(&point.bucket_counts) {
                        cumulative = count.saturating_add(cumulative);
                        bounds.push(*bound);
                        series.push(bucket(&family, *bound, stale_or(common, cumulative as f64)));
                    }
                    bounds.push(f64::INFINITY);
                    series.push(bucket(
                        &family,
                        f64::INFINITY,
                        stale_or(common, point.count as f64),
                    ));
                    for exemplar in self.exemplars(&common.exemplars) {
                        // The first bucket whose bound holds the value.
                        if let Some(n) = bounds.iter().position(|bound| exemplar.value <= *bound) {
                            series[n].exemplars.push(exemplar);
                        }
                    }
                    series.push(float(
                        &family,
                        "_count",
                        stale_or(common, point.count as f64),
                    ));
                    if let Some(sum) = point.sum {
                        series.push(float(&family, "_sum", stale_or(common, sum)));
                    }
                    self.apply_point(common, identity, shape(common), series);
                }
            }
            Data::Exponential { points, .. } => {
                for point in points {
                    let common = &point.common;
                    let shape = shape(common);
                    let histogram = self.check_histogram(exponential::to_native(
                        point,
                        shape.interval.time_ms,
                        self.rules.max_histogram_buckets,
                    ));
                    let histogram = match histogram {
                        Ok(histogram) => histogram,
                        Err((reason, words)) => {
                            self.report.reject(PointProblem::Store(reason), 1, || words);
                            continue;
                        }
                    };
                    let series = [SeriesOut {
                        name: Cow::Borrowed(&family),
                        extra: None,
                        value: Value::Histogram(histogram),
                        exemplars: self.exemplars(&common.exemplars),
                    }];
                    self.apply_point(common, identity, shape, series);
                }
            }
            Data::Summary(points) => {
                for point in points {
                    let common = &point.common;
                    let mut series: Vec<SeriesOut> = point
                        .quantiles
                        .iter()
                        .map(|(quantile, value)| SeriesOut {
                            name: Cow::Borrowed(&family),
                            extra: Some(("quantile", format_bound(*quantile))),
                            value: Value::Float(stale_or(common, *value)),
                            exemplars: Vec::new(),
                        })
                        .collect();
                    series.push(float(&family, "_sum", stale_or(common, point.sum)));
                    series.push(float(
                        &family,
                        "_count",
                        stale_or(common, point.count as f64),
                    ));
                    self.apply_point(common, identity, shape(common), series);
                }
            }
        }
    }

    /// A native histogram within the checks and bucket limit every write meets.
    fn check_histogram(
        &self,
        histogram: Result<NativeHistogram, (DropReason, String)>,
    ) -> Result<NativeHistogram, (DropReason, String)> {
        let histogram = histogram?;
        if histogram.sum.to_bits() == STALE_NAN_BITS {
            return Ok(histogram);
        }
        let buckets = histogram.positive.counts.len() + histogram.negative.counts.len();
        let limit = self.rules.max_histogram_buckets;
        if buckets > limit {
            return Err((
                DropReason::NativeHistogramBucketLimit,
                format!("native histogram has {buckets} buckets, over --write.native-histogram-max-buckets={limit}"),
            ));
        }
        check_counts(&histogram)
            .map_err(|p| (DropReason::InvalidNativeHistogram, p.to_string()))?;
        Ok(histogram)
    }

    /// Exemplars as Prometheus keeps them: `trace_id` and `span_id` in hex, then the filtered
    /// attributes if all fit in the 128 characters OpenMetrics allows.
    fn exemplars(&self, sent: &[OtlpExemplar]) -> Vec<Exemplar> {
        sent.iter()
            .map(|exemplar| {
                let mut labels: Vec<(Box<str>, Box<str>)> = Vec::new();
                for (name, id) in [
                    ("trace_id", &exemplar.trace_id),
                    ("span_id", &exemplar.span_id),
                ] {
                    if !id.is_empty() {
                        let mut hex = String::with_capacity(id.len() * 2);
                        for byte in id.iter() {
                            let _ = write!(hex, "{byte:02x}");
                        }
                        labels.push((name.into(), hex.into()));
                    }
                }
                let chars = |labels: &[(Box<str>, Box<str>)]| -> usize {
                    labels
                        .iter()
                        .map(|(n, v)| n.chars().count() + v.chars().count())
                        .sum()
                };
                let mut with_attributes = labels.clone();
                for attribute in &exemplar.filtered_attributes {
                    let Ok(name) = label_name(self.translation.strategy, attribute.key) else {
                        continue;
                    };
                    let Ok(name) = std::str::from_utf8(&name) else {
                        continue;
                    };
                    let value = attribute.value.as_label_value();
                    let Ok(value) = std::str::from_utf8(&value) else {
                        continue;
                    };
                    if with_attributes.iter().all(|(held, _)| **held != *name) {
                        with_attributes.push((name.into(), value.into()));
                    }
                }
                if chars(&with_attributes) <= MAX_EXEMPLAR_LABEL_CHARS {
                    labels = with_attributes;
                }
                labels.sort();
                Exemplar {
                    labels: labels.into(),
                    value: exemplar.value,
                    timestamp_ms: (exemplar.time_unix_nano != 0)
                        .then(|| nanos_to_ms(exemplar.time_unix_nano)),
                }
            })
            .filter(|exemplar| {
                exemplar
                    .labels
                    .iter()
                    .all(|(name, _)| self.rules.names.allows_label_name(name.as_bytes()))
            })
            .collect()
    }

    /// `target_info`: the resource's attributes other than those `job` and `instance` come from.
    fn apply_target_info(
        &mut self,
        attributes: &'i [Attribute<'i>],
        identity: &'i ResourceLabels<'i>,
        newest_ms: i64,
    ) {
        let identifying = [SERVICE_NAME, SERVICE_NAMESPACE, SERVICE_INSTANCE_ID];
        let others = || attributes.iter().filter(|a| !identifying.contains(&a.key));
        if others().next().is_none() || (identity.job.is_none() && identity.instance.is_none()) {
            return;
        }
        self.writer.store().set_metadata(
            TARGET_INFO,
            Metadata {
                kind: MetricKind::Gauge,
                help: "Target metadata".into(),
                unit: "".into(),
            },
            self.tick,
        );
        let shape = PointShape {
            interval: Interval {
                start_ms: None,
                time_ms: newest_ms,
            },
            keeps_start: false,
            delta: false,
        };
        let series = SeriesOut {
            name: Cow::Borrowed(TARGET_INFO),
            extra: None,
            value: Value::Float(1.0),
            exemplars: Vec::new(),
        };
        let labels = others().map(|a| (a.key, a.value.as_label_value()));
        self.apply_point_labelled(labels, identity, false, shape, [series]);
    }

    /// Names the point's labels, then stores each of its series; the point counts as refused
    /// once if anything of it was.
    fn apply_point<'p>(
        &mut self,
        common: &PointCommon,
        identity: &'i ResourceLabels<'i>,
        shape: PointShape,
        series: impl IntoIterator<Item = SeriesOut<'p>>,
    ) {
        let attributes = self.point_attributes.of(&common.attributes);
        self.apply_point_labelled(attributes, identity, true, shape, series);
    }

    /// `apply_point` with the attributes to name, and whether promoted resource attributes are
    /// added (not to `target_info`, which holds the resource's attributes already).
    fn apply_point_labelled<'p>(
        &mut self,
        attributes: impl Iterator<Item = (&'i [u8], Cow<'i, [u8]>)>,
        identity: &'i ResourceLabels<'i>,
        promote: bool,
        shape: PointShape,
        series: impl IntoIterator<Item = SeriesOut<'p>>,
    ) {
        if let Err((reason, words)) = self.name_labels(attributes, identity, promote) {
            return self.report.reject(PointProblem::Store(reason), 1, || words);
        }
        let before = self.report.store.dropped;
        for out in series {
            self.apply_series(out, shape);
        }
        let after = &self.report.store.dropped;
        let first_drop = DropReason::ALL
            .iter()
            .zip(before.iter().zip(after))
            .find(|(reason, (b, a))| reason.is_client_error() && a > b)
            .map(|(reason, _)| *reason);
        if let Some(reason) = first_drop {
            let words = self.report.store.first_problem.clone().unwrap_or_default();
            self.report.reject(PointProblem::Store(reason), 1, || words);
        }
    }

    /// The point's labels into `self.labels`, sorted by name, as Prometheus makes them (see
    /// the module doc).
    fn name_labels(
        &mut self,
        attributes: impl Iterator<Item = (&'i [u8], Cow<'i, [u8]>)>,
        identity: &'i ResourceLabels<'i>,
        promote: bool,
    ) -> Result<(), (DropReason, String)> {
        let strategy = self.translation.strategy;
        let mut sorted = std::mem::take(&mut self.sorted);
        sorted.clear();
        sorted.extend(attributes);
        if !sorted.is_sorted_by(|a, b| a.0 <= b.0) {
            sorted.sort_by(|a, b| a.0.cmp(b.0));
        }
        self.labels.clear();
        let mut named = Ok(());
        for (key, value) in sorted.drain(..) {
            match label_name(strategy, key) {
                Ok(name) => self.labels.push((name, value)),
                Err(words) => named = Err((DropReason::InvalidLabelName, words)),
            }
        }
        self.sorted = sorted;
        named?;
        // Keys that name the same label: their values joined in key order (a stable sort
        // keeps it).
        if !self.labels.is_sorted_by(|a, b| a.0 < b.0) {
            self.labels.sort_by(|a, b| a.0.cmp(&b.0));
            self.labels.dedup_by(|later, kept| {
                let same = later.0 == kept.0;
                if same {
                    let joined = kept.1.to_mut();
                    joined.push(b';');
                    joined.extend_from_slice(&later.1);
                }
                same
            });
        }
        if promote {
            for (name, value) in &identity.promoted {
                if let Err(at) = self
                    .labels
                    .binary_search_by(|(held, _)| (**held).cmp(&**name))
                {
                    self.labels
                        .insert(at, (Cow::Borrowed(name), Cow::Borrowed(value)));
                }
            }
        }
        for (name, value) in [("job", &identity.job), ("instance", &identity.instance)] {
            if let Some(value) = value {
                self.set_label(name, value);
            }
        }
        // Escaped names are classic names, which every rule allows.
        let check = !strategy.escapes();
        if let Some((name, _)) = self
            .labels
            .iter()
            .find(|(name, _)| check && !self.rules.names.allows_label_name(name))
        {
            return Err((
                DropReason::InvalidLabelName,
                format!("invalid label name {:?}", String::from_utf8_lossy(name)),
            ));
        }
        Ok(())
    }

    /// Sets a label, keeping the labels sorted.
    fn set_label(&mut self, name: &'static str, value: &'i [u8]) {
        let name = name.as_bytes();
        match self.labels.binary_search_by(|(held, _)| (**held).cmp(name)) {
            Ok(at) => self.labels[at].1 = Cow::Borrowed(value),
            Err(at) => self
                .labels
                .insert(at, (Cow::Borrowed(name), Cow::Borrowed(value))),
        }
    }

    /// Stores one series of a point with the point's labels, adding a delta point to what
    /// the series holds.
    fn apply_series(&mut self, out: SeriesOut, shape: PointShape) {
        let extra = out
            .extra
            .as_ref()
            .map(|(name, value)| (*name, value.as_str()));
        // The key: labels sorted by name, the extra label replacing one of its name, and
        // empty values left out (an empty label is no label, in Prometheus). On the stack
        // unless the series has very many labels.
        let mut on_stack = [(&b""[..], &b""[..]); KEY_LABELS_ON_STACK];
        let mut on_heap;
        let room = self.labels.len() + 1;
        let pairs: &mut [(&[u8], &[u8])] = if room <= KEY_LABELS_ON_STACK {
            &mut on_stack
        } else {
            on_heap = vec![(&b""[..], &b""[..]); room];
            &mut on_heap
        };
        let mut count = 0;
        let mut extra = extra.map(|(name, value)| (name.as_bytes(), value.as_bytes()));
        for (name, value) in &self.labels {
            let name = &name[..];
            if let Some(pair) = extra.filter(|pair| pair.0 <= name) {
                extra = None;
                if !pair.1.is_empty() {
                    pairs[count] = pair;
                    count += 1;
                }
                if pair.0 == name {
                    continue;
                }
            }
            if !value.is_empty() {
                pairs[count] = (name, value);
                count += 1;
            }
        }
        if let Some(pair) = extra.filter(|pair| !pair.1.is_empty()) {
            pairs[count] = pair;
            count += 1;
        }
        let key = SeriesKey {
            name: out.name.as_bytes(),
            labels: &pairs[..count],
        };
        let store = self.writer.store();
        let hash = store.hash(&key);
        let in_time = shape.interval.time_ms <= self.now_ms.saturating_add(MAX_FUTURE_MS);
        let is_histogram = matches!(out.value, Value::Histogram(_));
        let outcome = Outcome::one_point(is_histogram, in_time, out.exemplars.len(), self.now_ms);
        if !in_time {
            return outcome.record(&mut self.report.store, store, key.name, Applied::NotHeld);
        }
        let count = |report: &mut Report| match is_histogram {
            false => report.received.samples += 1,
            true => report.received.histograms += 1,
        };
        count(&mut self.report.store);
        self.report.store.received.exemplars += out.exemplars.len() as u64;
        let _adding = shape.delta.then(delta::lock);
        let (value, start_ms) = match shape.delta {
            false => (out.value, shape.interval.start_ms),
            true => {
                let held = store.latest(&key, hash);
                match out.value {
                    Value::Float(value) => {
                        let (value, start) = delta::add_float(held.as_ref(), value, shape.interval);
                        (Value::Float(value), start)
                    }
                    Value::Histogram(histogram) => {
                        let (histogram, start) =
                            delta::add_histogram(held.as_ref(), histogram, shape.interval);
                        (Value::Histogram(histogram), start)
                    }
                }
            }
        };
        let (sample_value, histogram) = match &value {
            Value::Float(value) => (*value, None),
            Value::Histogram(histogram) => (f64::NAN, Some(histogram)),
        };
        let update = Update {
            sample: Some(Sample {
                value: sample_value,
                timestamp_ms: shape.interval.time_ms,
            }),
            histogram,
            start_timestamp_ms: start_ms.filter(|_| shape.keeps_start),
            exemplars: &out.exemplars,
        };
        let applied = self.writer.apply(&key, hash, &update, self.tick);
        outcome.record(&mut self.report.store, store, key.name, applied);
    }
}

/// The value, or the stale marker for a point with no recorded value.
fn stale_or(common: &PointCommon, value: f64) -> f64 {
    match common.no_recorded_value() {
        true => f64::from_bits(STALE_NAN_BITS),
        false => value,
    }
}

/// A bound or quantile as Prometheus writes it in a label (Go's `FormatFloat(v, 'f', -1, 64)`).
fn format_bound(value: f64) -> String {
    match value {
        f64::INFINITY => "+Inf".into(),
        f64::NEG_INFINITY => "-Inf".into(),
        v if v.is_nan() => "NaN".into(),
        v => format!("{v}"),
    }
}

fn bucket(family: &str, bound: f64, value: f64) -> SeriesOut<'static> {
    SeriesOut {
        name: Cow::Owned(format!("{family}_bucket")),
        extra: Some(("le", format_bound(bound))),
        value: Value::Float(value),
        exemplars: Vec::new(),
    }
}

fn float(family: &str, suffix: &str, value: f64) -> SeriesOut<'static> {
    SeriesOut {
        name: Cow::Owned(format!("{family}{suffix}")),
        extra: None,
        value: Value::Float(value),
        exemplars: Vec::new(),
    }
}
