//! Validating a decoded write request and applying it to the store.
//!
//! Every usable sample, native histogram and exemplar is stored even when others in the same
//! request are not; the caller answers 400 for the unusable ones (a sender never retries a
//! 4xx, so its queue moves on). Names are checked by the [`NameRules`] in force. A label with
//! an empty value is the same as no label in Prometheus, so it is dropped.

use std::fmt::Write as _;

use crate::base::bytes;
use crate::store::metadata::{Metadata, MetricKind};
use crate::store::native::Exemplar;
use crate::store::{Applied, Sample, SeriesKey, Store, Update, Writer};
use crate::write::exemplar::read_exemplar;
use crate::write::histogram::{read_histogram, HistogramProblem, SentHistogram};
use crate::write::names::NameRules;
use crate::write::wire::{LabelSpan, MetadataEntry, SeriesEntry, WriteBatch};

/// Samples stamped more than this far ahead of our clock are refused: stored, one such sample
/// would make every later, correct sample of its series look out of order.
pub const MAX_FUTURE_MS: i64 = 10 * 60 * 1000;

/// What a write request is checked against.
#[derive(Debug, Clone, Copy)]
pub struct WriteRules {
    pub names: NameRules,
    /// Buckets a native histogram may have, both sides together.
    pub max_histogram_buckets: usize,
}

/// Why a sample, native histogram or exemplar was not stored; the label values of
/// `k8s_exporter_samples_dropped_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    InvalidMetricName,
    MissingMetricName,
    InvalidLabelName,
    DuplicateLabelName,
    InvalidUtf8,
    TooFarInFuture,
    SeriesLimit,
    MemoryLimit,
    OutOfOrder,
    InvalidReference,
    InvalidNativeHistogram,
    NativeHistogramBucketLimit,
    InvalidExemplar,
    ExemplarWithoutSeries,
}

impl DropReason {
    pub const ALL: [DropReason; 14] = [
        DropReason::InvalidMetricName,
        DropReason::MissingMetricName,
        DropReason::InvalidLabelName,
        DropReason::DuplicateLabelName,
        DropReason::InvalidUtf8,
        DropReason::TooFarInFuture,
        DropReason::SeriesLimit,
        DropReason::MemoryLimit,
        DropReason::OutOfOrder,
        DropReason::InvalidReference,
        DropReason::InvalidNativeHistogram,
        DropReason::NativeHistogramBucketLimit,
        DropReason::InvalidExemplar,
        DropReason::ExemplarWithoutSeries,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::InvalidMetricName => "invalid_metric_name",
            DropReason::MissingMetricName => "missing_metric_name",
            DropReason::InvalidLabelName => "invalid_label_name",
            DropReason::DuplicateLabelName => "duplicate_label_name",
            DropReason::InvalidUtf8 => "invalid_utf8",
            DropReason::TooFarInFuture => "too_far_in_future",
            DropReason::SeriesLimit => "series_limit",
            DropReason::MemoryLimit => "memory_limit",
            DropReason::OutOfOrder => "out_of_order",
            DropReason::InvalidReference => "invalid_reference",
            DropReason::InvalidNativeHistogram => "invalid_native_histogram",
            DropReason::NativeHistogramBucketLimit => "native_histogram_bucket_limit",
            DropReason::InvalidExemplar => "invalid_exemplar",
            DropReason::ExemplarWithoutSeries => "exemplar_without_series",
        }
    }

    /// Whether the sender should hear about it as a 400. Out-of-order samples are retries or
    /// replays, and an exemplar that arrives before any sample of its series has nothing to
    /// attach to: neither is the sender's error.
    pub fn is_client_error(self) -> bool {
        !matches!(
            self,
            DropReason::OutOfOrder | DropReason::ExemplarWithoutSeries
        )
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How many of each kind of point a request carried, or had stored.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Points {
    pub samples: u64,
    pub histograms: u64,
    pub exemplars: u64,
}

/// What one request did, for the answer and the counters.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    pub received: Points,
    /// Stored, exactly (the `X-Prometheus-Remote-Write-*-Written` headers). Of several samples
    /// of one series in a request, the newest is kept and the older ones count as written
    /// too, as replaced at once; so do samples that are stale markers.
    pub written: Points,
    pub dropped: [u64; DropReason::ALL.len()],
    pub metadata_received: u64,
    pub metadata_dropped: u64,
    pub series_created: u64,
    pub removed_by_stale_marker: u64,
    /// A remote-write 2.0 request whose first symbol is not the empty string: what could be
    /// read of it is stored, and the answer is a 400.
    pub first_symbol_not_empty: bool,
    /// 2.0 series whose references do not resolve, with or without points: each makes the
    /// answer a 400.
    pub unresolvable_series: u64,
    /// The first problem met, in words, for the 400 body.
    pub first_problem: Option<String>,
}

impl Report {
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()]
    }

    /// Points refused for the sender's error; any makes the answer a 400.
    pub fn rejected(&self) -> u64 {
        DropReason::ALL
            .iter()
            .filter(|reason| reason.is_client_error())
            .map(|reason| self.dropped(*reason))
            .sum()
    }

    pub fn is_clean(&self) -> bool {
        self.rejected() == 0
            && self.metadata_dropped == 0
            && self.unresolvable_series == 0
            && !self.first_symbol_not_empty
    }

    /// One line for the 400 body: what was refused, why, and the first example.
    pub fn summary(&self) -> String {
        let received = self.received;
        let mut line = format!(
            "rejected {} of {} samples, histograms and exemplars",
            self.rejected(),
            received.samples + received.histograms + received.exemplars
        );
        if self.metadata_dropped > 0 {
            let _ = write!(
                line,
                " and {} of {} metadata entries",
                self.metadata_dropped,
                self.metadata_dropped + self.metadata_received
            );
        }
        let counts: Vec<String> = DropReason::ALL
            .iter()
            .filter(|reason| reason.is_client_error() && self.dropped(**reason) > 0)
            .map(|reason| format!("{}={}", reason.as_str(), self.dropped(*reason)))
            .collect();
        if !counts.is_empty() {
            let _ = write!(line, " ({})", counts.join(" "));
        }
        if let Some(problem) = &self.first_problem {
            let _ = write!(line, "; first: {problem}");
        }
        line
    }

    /// Counts `count` points dropped for `reason`, keeping the first problem's words.
    pub(crate) fn drop_points(
        &mut self,
        reason: DropReason,
        count: usize,
        problem: impl FnOnce() -> String,
    ) {
        if count == 0 {
            return;
        }
        self.dropped[reason.index()] += count as u64;
        if reason.is_client_error() && self.first_problem.is_none() {
            self.first_problem = Some(problem());
        }
    }
}

/// Applies every usable sample, histogram, exemplar and metadata entry of a decoded request to
/// `store`. `now_ms` is the Unix time in milliseconds, `tick` the store's clock for expiry.
pub fn ingest(
    store: &Store,
    batch: &WriteBatch,
    rules: &WriteRules,
    now_ms: i64,
    tick: u32,
) -> Report {
    let mut report = Report::default();
    let mut scratch = Scratch::default();
    let mut writer = store.writer();
    if batch.first_symbol_not_empty {
        report.first_symbol_not_empty = true;
        report.first_problem = Some("the first symbol is not the empty string".into());
    }
    for series in &batch.series {
        let points = Points {
            samples: batch.samples_of(series).len() as u64,
            histograms: series.histograms.len() as u64,
            exemplars: series.exemplars.len() as u64,
        };
        report.received.samples += points.samples;
        report.received.histograms += points.histograms;
        report.received.exemplars += points.exemplars;
        if let Some(problem) = series.problem {
            let all = points.samples + points.histograms + points.exemplars;
            report
                .first_problem
                .get_or_insert_with(|| problem.to_string());
            report.drop_points(DropReason::InvalidReference, all as usize, String::new);
            report.unresolvable_series += 1;
            continue;
        }
        let context = SeriesContext {
            batch,
            series,
            rules,
            now_ms,
            tick,
        };
        context.ingest(&mut writer, &mut scratch, &mut report);
    }
    for entry in &batch.metadata {
        match validate_metadata(batch, entry, rules.names) {
            Ok((family, metadata)) => {
                store.set_metadata(family, metadata, tick);
                report.metadata_received += 1;
            }
            Err(problem) => {
                report.metadata_dropped += 1;
                report.first_problem.get_or_insert(problem);
            }
        }
    }
    report
}

/// Lists reused from one series to the next within a request.
#[derive(Default)]
struct Scratch<'a> {
    /// The labels as sent, when they can be matched as they are (see [`raw_key`]).
    raw: Vec<(&'a [u8], &'a [u8])>,
    /// The labels once their names are checked: sorted, without `__name__` and empty values.
    checked: Vec<(&'a [u8], &'a [u8])>,
    /// The series' native histograms that passed their checks.
    histograms: Vec<SentHistogram>,
    /// The series' exemplars that passed their checks.
    exemplars: Vec<Exemplar>,
}

/// One series of a request, and what it is checked against.
struct SeriesContext<'a> {
    batch: &'a WriteBatch,
    series: &'a SeriesEntry,
    rules: &'a WriteRules,
    now_ms: i64,
    tick: u32,
}

impl<'a> SeriesContext<'a> {
    /// Stores the newest usable sample or histogram of one series, with its exemplars and
    /// start timestamp.
    ///
    /// Labels sent the way Prometheus sends them are matched as they are, byte for byte,
    /// against what the store holds: when it holds the series, or a series of the same metric
    /// name and label names, those names were checked when it was made, and label values are
    /// checked for UTF-8 by the store only when it meets them for the first time. Only the
    /// first series of a shape, and labels sent unsorted or with empty values, are checked here.
    fn ingest(&self, writer: &mut Writer, scratch: &mut Scratch<'a>, report: &mut Report) {
        let batch = self.batch;
        self.read_histograms(&mut scratch.histograms, report);
        self.read_exemplars(&mut scratch.exemplars, report);
        let floats = batch.samples_of(self.series);
        let horizon = self.now_ms.saturating_add(MAX_FUTURE_MS);
        let (newest_float_sent, floats_in_time) = newest_in_time(floats, horizon, |s| s.timestamp);
        let newest_float = newest_float_sent.map(|s| Sample {
            value: s.value,
            timestamp_ms: s.timestamp,
        });
        let (newest_histogram, histograms_in_time) =
            newest_in_time(&scratch.histograms, horizon, |h| h.histogram.timestamp_ms);
        let outcome = Outcome {
            floats: floats.len(),
            floats_in_time,
            histograms: scratch.histograms.len(),
            histograms_in_time,
            exemplars: scratch.exemplars.len(),
            now_ms: self.now_ms,
        };
        if outcome.floats + outcome.histograms + outcome.exemplars == 0 {
            return;
        }
        // Of equal timestamps a histogram wins, as if sent after the floats.
        let histogram = newest_histogram
            .filter(|h| newest_float.is_none_or(|f| h.histogram.timestamp_ms >= f.timestamp_ms));
        // The start timestamp of the sample kept, else the draft 2.0 one of the series.
        let sent_start_ms = match histogram {
            Some(h) => h.start_timestamp_ms,
            None => newest_float_sent.map_or(0, |s| s.start_timestamp),
        };
        let start_ms = [sent_start_ms, self.series.draft_created_ms]
            .into_iter()
            .find(|&ms| ms != 0);
        let update = Update {
            sample: match histogram {
                Some(h) => Some(Sample {
                    value: f64::NAN,
                    timestamp_ms: h.histogram.timestamp_ms,
                }),
                None => newest_float,
            },
            histogram: histogram.map(|h| &h.histogram),
            start_timestamp_ms: start_ms,
            exemplars: &scratch.exemplars,
        };
        let labels = batch.labels_of(self.series);
        if update.sample.is_none() && update.exemplars.is_empty() {
            // Everything it sent is too far in the future: only the message needs its name.
            let name = labels
                .iter()
                .find(|label| batch.bytes(label.name) == b"__name__")
                .map_or(&b""[..], |label| batch.bytes(label.value));
            return outcome.record(report, writer.store(), name, Applied::NotHeld);
        }
        let mut raw = None;
        if let Some(name) = raw_key(batch, labels, &mut scratch.raw) {
            let key = SeriesKey {
                name,
                labels: &scratch.raw,
            };
            let hash = writer.store().hash(&key);
            if let Some(applied) = writer.apply_unchecked(&key, hash, &update, self.tick) {
                return outcome.record(report, writer.store(), name, applied);
            }
            raw = Some((name, hash));
        }
        let name = match validate_labels(batch, labels, self.rules.names, &mut scratch.checked) {
            Ok(name) => name,
            Err((reason, problem)) => {
                let all = outcome.floats + outcome.histograms + outcome.exemplars;
                return report.drop_points(reason, all, || problem);
            }
        };
        let key = SeriesKey {
            name,
            labels: &scratch.checked,
        };
        // Labels that came sorted are checked into the very slices the raw look-up hashed.
        let hash = match raw {
            Some((raw_name, hash)) if same_key(raw_name, &scratch.raw, &key) => hash,
            _ => writer.store().hash(&key),
        };
        let applied = writer.apply(&key, hash, &update, self.tick);
        outcome.record(report, writer.store(), name, applied);
    }

    /// Reads the series' native histograms into `out`, dropping those that fail their checks.
    fn read_histograms(&self, out: &mut Vec<SentHistogram>, report: &mut Report) {
        out.clear();
        let (batch, limit) = (self.batch, self.rules.max_histogram_buckets);
        for message in batch.histograms_of(self.series) {
            match read_histogram(message, limit, batch.protocol) {
                Ok(histogram) => out.push(histogram),
                Err(problem) => {
                    let reason = match problem {
                        HistogramProblem::TooManyBuckets { .. } => {
                            DropReason::NativeHistogramBucketLimit
                        }
                        _ => DropReason::InvalidNativeHistogram,
                    };
                    report.drop_points(reason, 1, || problem.to_string());
                }
            }
        }
    }

    /// Reads the series' exemplars into `out`, dropping those that fail their checks.
    fn read_exemplars(&self, out: &mut Vec<Exemplar>, report: &mut Report) {
        out.clear();
        for message in self.batch.exemplars_of(self.series) {
            match read_exemplar(self.batch, message, self.rules.names) {
                Ok(exemplar) => out.push(exemplar),
                Err(problem) => report.drop_points(DropReason::InvalidExemplar, 1, || problem),
            }
        }
    }
}

/// Whether a checked key is made of exactly the same slices of the request as a raw one.
fn same_key(raw_name: &[u8], raw_labels: &[(&[u8], &[u8])], key: &SeriesKey) -> bool {
    let same = |a: &[u8], b: &[u8]| std::ptr::eq(a, b);
    same(raw_name, key.name)
        && raw_labels.len() == key.labels.len()
        && raw_labels
            .iter()
            .zip(key.labels)
            .all(|((n, v), (name, value))| same(n, name) && same(v, value))
}

/// How the points of one series divide, for counting what applying its newest one did.
pub(crate) struct Outcome {
    floats: usize,
    /// Float samples not too far in the future; the others are dropped whatever happens.
    floats_in_time: usize,
    histograms: usize,
    histograms_in_time: usize,
    exemplars: usize,
    now_ms: i64,
}

impl Outcome {
    /// One float sample, or one native histogram, with its exemplars; `in_time` when it is
    /// not too far in the future.
    pub(crate) fn one_point(
        histogram: bool,
        in_time: bool,
        exemplars: usize,
        now_ms: i64,
    ) -> Outcome {
        let (point, in_time) = (1, usize::from(in_time));
        let (floats, floats_in_time, histograms, histograms_in_time) = match histogram {
            false => (point, in_time, 0, 0),
            true => (0, 0, point, in_time),
        };
        Outcome {
            floats,
            floats_in_time,
            histograms,
            histograms_in_time,
            exemplars,
            now_ms,
        }
    }

    /// Counts what applying the point did in `report`.
    pub(crate) fn record(&self, report: &mut Report, store: &Store, name: &[u8], applied: Applied) {
        let name_text = || String::from_utf8_lossy(name);
        let all = self.floats + self.histograms + self.exemplars;
        if applied == Applied::NotText {
            return report.drop_points(DropReason::InvalidUtf8, all, || {
                format!("a label value of {} is not valid UTF-8", name_text())
            });
        }
        let too_new =
            (self.floats - self.floats_in_time) + (self.histograms - self.histograms_in_time);
        report.drop_points(DropReason::TooFarInFuture, too_new, || {
            format!(
                "a sample of {} is more than 10m ahead of this server's clock ({} ms)",
                name_text(),
                self.now_ms
            )
        });
        let in_time = self.floats_in_time + self.histograms_in_time;
        match applied {
            Applied::Created | Applied::Updated | Applied::Removed | Applied::StaleUnknown => {
                report.written.samples += self.floats_in_time as u64;
                report.written.histograms += self.histograms_in_time as u64;
            }
            Applied::OutOfOrder => report.drop_points(DropReason::OutOfOrder, in_time, String::new),
            Applied::LimitReached => {
                report.drop_points(DropReason::SeriesLimit, in_time + self.exemplars, || {
                    format!(
                        "series limit --series.max={} reached, new series {} dropped",
                        store.max_series(),
                        name_text()
                    )
                })
            }
            Applied::MemoryLimited => {
                report.drop_points(DropReason::MemoryLimit, in_time + self.exemplars, || {
                    format!(
                        "memory limit: resident memory is near --memory.limit, so new series \
                         are refused until series go; new series {} dropped",
                        name_text()
                    )
                })
            }
            Applied::NotText | Applied::Annotated | Applied::NotHeld => {}
        }
        match applied {
            Applied::Created => report.series_created += 1,
            Applied::Removed => report.removed_by_stale_marker += 1,
            _ => {}
        }
        if applied.holds_series() {
            report.written.exemplars += self.exemplars as u64;
        } else if !matches!(applied, Applied::LimitReached | Applied::MemoryLimited) {
            report.drop_points(
                DropReason::ExemplarWithoutSeries,
                self.exemplars,
                String::new,
            );
        }
    }
}

/// The newest of `points` not too far in the future (of equal timestamps the last one sent),
/// and how many are not too far in the future: for float samples and histograms alike.
fn newest_in_time<T>(
    points: &[T],
    horizon: i64,
    timestamp: impl Fn(&T) -> i64,
) -> (Option<&T>, usize) {
    let mut newest: Option<&T> = None;
    let mut in_time = 0;
    for point in points.iter().filter(|p| timestamp(p) <= horizon) {
        in_time += 1;
        if newest.is_none_or(|n| timestamp(point) >= timestamp(n)) {
            newest = Some(point);
        }
    }
    (newest, in_time)
}

/// The request's labels as they are, when they can be matched against stored bytes without
/// checking: one `__name__` and no empty value. `out` gets the labels other than `__name__`;
/// the metric name is returned. Their order is not checked: stored label names are strictly
/// sorted, so labels in any other order, or with a name twice, match nothing held and are
/// checked (and sorted) before anything is made of them.
fn raw_key<'a>(
    batch: &'a WriteBatch,
    labels: &[LabelSpan],
    out: &mut Vec<(&'a [u8], &'a [u8])>,
) -> Option<&'a [u8]> {
    out.clear();
    let mut name = None;
    for label in labels {
        let (label_name, value) = (batch.bytes(label.name), batch.bytes(label.value));
        if value.is_empty() {
            return None;
        }
        if label_name == b"__name__" {
            if name.replace(value).is_some() {
                return None;
            }
        } else {
            out.push((label_name, value));
        }
    }
    name
}

/// Checks the metric name and label names of one series and leaves its labels in `out`,
/// sorted by name, without `__name__` and empty values; returns the metric name. Label values
/// are left to the store, which checks those it does not hold yet for UTF-8.
fn validate_labels<'a>(
    batch: &'a WriteBatch,
    labels: &[LabelSpan],
    rules: NameRules,
    out: &mut Vec<(&'a [u8], &'a [u8])>,
) -> Result<&'a [u8], (DropReason, String)> {
    out.clear();
    let mut name = None;
    for label in labels {
        let (label_name, value) = (batch.bytes(label.name), batch.bytes(label.value));
        out.push((label_name, value));
        if label_name == b"__name__" {
            name = Some(value);
        } else if !rules.allows_label_name(label_name) {
            return Err(invalid_name(
                DropReason::InvalidLabelName,
                "invalid label name",
                label_name,
            ));
        }
    }
    // Prometheus sends labels sorted; others may not.
    if !out.is_sorted_by(|a, b| bytes::order(a.0, b.0).is_le()) {
        out.sort_unstable_by(|a, b| bytes::order(a.0, b.0));
    }
    if let Some(pair) = out
        .windows(2)
        .find(|pair| bytes::same(pair[0].0, pair[1].0))
    {
        return Err(invalid_name(
            DropReason::DuplicateLabelName,
            "duplicate label name",
            pair[0].0,
        ));
    }
    let name = match name {
        None | Some(b"") => {
            return Err((
                DropReason::MissingMetricName,
                "series without a metric name (__name__)".into(),
            ))
        }
        Some(name) if !rules.allows_metric_name(name) => {
            return Err(invalid_name(
                DropReason::InvalidMetricName,
                "invalid metric name",
                name,
            ))
        }
        Some(name) => name,
    };
    out.retain(|(label_name, value)| *label_name != b"__name__" && !value.is_empty());
    Ok(name)
}

/// Why a name was refused, in words; a name that is not even UTF-8 is counted as such.
fn invalid_name(reason: DropReason, what: &str, name: &[u8]) -> (DropReason, String) {
    match std::str::from_utf8(name) {
        Ok(text) => (reason, format!("{what} {}", quoted(text))),
        Err(_) => (DropReason::InvalidUtf8, format!("{what}: not valid UTF-8")),
    }
}

fn utf8_text(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|_| "metadata is not valid UTF-8".to_owned())
}

fn validate_metadata<'a>(
    batch: &'a WriteBatch,
    entry: &MetadataEntry,
    rules: NameRules,
) -> Result<(&'a str, Metadata), String> {
    let family = utf8_text(batch.bytes(entry.family))?;
    if !rules.allows_metric_name(family.as_bytes()) {
        return Err(format!(
            "metadata for invalid metric name {}",
            quoted(family)
        ));
    }
    let metadata = Metadata {
        kind: MetricKind::from_proto(entry.kind),
        help: utf8_text(batch.bytes(entry.help))?.into(),
        unit: utf8_text(batch.bytes(entry.unit))?.into(),
    };
    Ok((family, metadata))
}

/// A name quoted for a one-line message: escaped, and cut short if long.
fn quoted(text: &str) -> String {
    const MAX_CHARS: usize = 64;
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{:?}...", &text[..cut]),
        None => format!("{text:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::STALE_NAN_BITS;
    use crate::write::proto::{
        histogram, v2, BucketSpan, Exemplar, Histogram, Label, MetricMetadata, TimeSeries,
        WriteRequest,
    };
    use crate::write::wire::Protocol;
    use prost::Message;

    /// Encodes `request` as a sender would, decodes it as the server does, and ingests it.
    fn apply(store: &Store, request: &WriteRequest, now_ms: i64, tick: u32) -> Report {
        apply_by(&RULES, store, request, now_ms, tick)
    }

    /// `apply` with legacy name rules.
    fn apply_legacy(store: &Store, request: &WriteRequest, now_ms: i64, tick: u32) -> Report {
        let rules = WriteRules {
            names: NameRules::Legacy,
            ..RULES
        };
        apply_by(&rules, store, request, now_ms, tick)
    }

    fn apply_by(
        rules: &WriteRules,
        store: &Store,
        request: &WriteRequest,
        now_ms: i64,
        tick: u32,
    ) -> Report {
        let bytes = request.encode_to_vec();
        let mut batch = WriteBatch::default();
        batch.buffer_for(bytes.len()).copy_from_slice(&bytes);
        batch.parse(Protocol::V1).unwrap();
        ingest(store, &batch, rules, now_ms, tick)
    }

    const NOW: i64 = 1_700_000_000_000;

    const RULES: WriteRules = WriteRules {
        names: NameRules::Utf8,
        max_histogram_buckets: 100,
    };

    fn series(labels: &[(&str, &str)], samples: &[(f64, i64)]) -> TimeSeries {
        TimeSeries::from_pairs(labels, samples)
    }

    fn request(timeseries: Vec<TimeSeries>) -> WriteRequest {
        WriteRequest {
            timeseries,
            metadata: vec![],
        }
    }

    fn stored(store: &Store) -> Vec<String> {
        store.describe()
    }

    #[test]
    fn valid_request_is_stored_with_labels_sorted_and_empty_ones_dropped() {
        let store = Store::new(100);
        let report = apply(
            &store,
            &request(vec![series(
                &[
                    ("pod", "p1"),
                    ("__name__", "cpu"),
                    ("container", ""),
                    ("namespace", "ns"),
                ],
                &[(1.5, NOW)],
            )]),
            NOW,
            0,
        );
        assert!(report.is_clean(), "{report:?}");
        assert_eq!(report.series_created, 1);
        assert_eq!(
            stored(&store),
            [format!("cpu{{namespace=ns,pod=p1}} 1.5 @{NOW}")]
        );
    }

    #[test]
    fn newest_sample_of_a_series_wins_within_a_request() {
        let store = Store::new(100);
        apply(
            &store,
            &request(vec![series(
                &[("__name__", "m")],
                &[(3.0, NOW - 10), (5.0, NOW), (4.0, NOW - 5)],
            )]),
            NOW,
            0,
        );
        assert_eq!(stored(&store), [format!("m{{}} 5 @{NOW}")]);
    }

    #[test]
    fn unusable_series_are_counted_and_usable_ones_stored() {
        let store = Store::new(100);
        let report = apply_legacy(
            &store,
            &request(vec![
                series(&[("__name__", "good")], &[(1.0, NOW)]),
                series(&[("__name__", "1bad")], &[(1.0, NOW), (2.0, NOW)]),
                series(&[("__name__", "m"), ("bad-label", "x")], &[(1.0, NOW)]),
                series(&[("__name__", "m"), ("a", "x"), ("a", "y")], &[(1.0, NOW)]),
                series(&[("job", "x")], &[(1.0, NOW)]),
                series(&[("__name__", "")], &[(1.0, NOW)]),
                series(&[], &[(1.0, NOW)]),
            ]),
            NOW,
            0,
        );
        assert_eq!(stored(&store), [format!("good{{}} 1 @{NOW}")]);
        assert_eq!(report.dropped(DropReason::InvalidMetricName), 2);
        assert_eq!(report.dropped(DropReason::InvalidLabelName), 1);
        assert_eq!(report.dropped(DropReason::DuplicateLabelName), 1);
        assert_eq!(report.dropped(DropReason::MissingMetricName), 3);
        assert_eq!(report.rejected(), 7);
        assert_eq!(report.received.samples, 8);
        let summary = report.summary();
        assert!(summary.starts_with("rejected 7 of 8 samples"), "{summary}");
        assert!(
            summary.contains("first: invalid metric name \"1bad\""),
            "{summary}"
        );
        assert!(!summary.contains('\n'));
    }

    #[test]
    fn invalid_utf8_costs_only_its_series() {
        let store = Store::new(100);
        let mut broken = series(&[("__name__", "m")], &[(1.0, NOW)]);
        broken.labels.push(Label {
            name: "pod".as_bytes().to_vec().into(),
            value: vec![0xff, 0xfe].into(),
        });
        let report = apply(
            &store,
            &request(vec![broken, series(&[("__name__", "ok")], &[(1.0, NOW)])]),
            NOW,
            0,
        );
        assert_eq!(report.dropped(DropReason::InvalidUtf8), 1);
        assert_eq!(store.series_count(), 1);
    }

    #[test]
    fn far_future_samples_are_refused_and_do_not_freeze_the_series() {
        let store = Store::new(100);
        let report = apply(
            &store,
            &request(vec![series(
                &[("__name__", "m")],
                &[(9.0, NOW + MAX_FUTURE_MS + 1)],
            )]),
            NOW,
            0,
        );
        assert_eq!(report.dropped(DropReason::TooFarInFuture), 1);
        assert!(!report.is_clean());
        assert!(
            report
                .summary()
                .contains("a sample of m is more than 10m ahead"),
            "{}",
            report.summary()
        );
        let report = apply(
            &store,
            &request(vec![series(&[("__name__", "m")], &[(1.0, NOW)])]),
            NOW,
            0,
        );
        assert!(report.is_clean());
        assert_eq!(stored(&store), [format!("m{{}} 1 @{NOW}")]);
    }

    #[test]
    fn older_samples_are_ignored_without_an_error() {
        let store = Store::new(100);
        apply(
            &store,
            &request(vec![series(&[("__name__", "m")], &[(2.0, NOW)])]),
            NOW,
            0,
        );
        let report = apply(
            &store,
            &request(vec![series(&[("__name__", "m")], &[(1.0, NOW - 1)])]),
            NOW,
            0,
        );
        assert_eq!(report.dropped(DropReason::OutOfOrder), 1);
        assert!(report.is_clean());
        assert_eq!(stored(&store), [format!("m{{}} 2 @{NOW}")]);
    }

    #[test]
    fn stale_marker_removes_the_series() {
        let store = Store::new(100);
        apply(
            &store,
            &request(vec![series(&[("__name__", "m")], &[(2.0, NOW - 1000)])]),
            NOW,
            0,
        );
        let report = apply(
            &store,
            &request(vec![series(
                &[("__name__", "m")],
                &[(f64::from_bits(STALE_NAN_BITS), NOW)],
            )]),
            NOW,
            0,
        );
        assert_eq!(report.removed_by_stale_marker, 1);
        assert_eq!(store.series_count(), 0);
    }

    #[test]
    fn series_limit_drops_new_series_with_a_400() {
        let store = Store::new(1);
        let report = apply(
            &store,
            &request(vec![
                series(&[("__name__", "a")], &[(1.0, NOW)]),
                series(&[("__name__", "b")], &[(1.0, NOW)]),
            ]),
            NOW,
            0,
        );
        assert_eq!(report.dropped(DropReason::SeriesLimit), 1);
        assert!(!report.is_clean());
        assert_eq!(store.series_count(), 1);
    }

    #[test]
    fn metadata_is_stored_and_bad_entries_reported() {
        let store = Store::new(100);
        let entry = |name: &str, kind: i32, help: &[u8]| MetricMetadata {
            r#type: kind,
            metric_family_name: name.as_bytes().to_vec().into(),
            help: help.to_vec().into(),
            unit: Default::default(),
        };
        let report = apply(
            &store,
            &WriteRequest {
                timeseries: vec![],
                metadata: vec![
                    entry("cpu_seconds_total", 1, b"CPU used."),
                    entry("", 2, b""),
                    entry("m", 2, &[0xff]),
                ],
            },
            NOW,
            0,
        );
        assert_eq!((report.metadata_received, report.metadata_dropped), (1, 2));
        assert!(
            report.summary().contains("2 of 3 metadata entries"),
            "{}",
            report.summary()
        );
        let families = store.snapshot().families;
        assert_eq!(families["cpu_seconds_total"].kind, MetricKind::Counter);
        assert_eq!(&*families["cpu_seconds_total"].help, "CPU used.");
    }

    #[test]
    fn corrupted_requests_never_panic_and_keep_the_store_consistent() {
        // Deterministic corruption of a valid request: flipped bytes, cut tails, spliced
        // copies. Whatever still decodes is ingested; nothing may panic, and the store's count
        // must match what it holds.
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut valid = request(vec![
            series(
                &[("__name__", "m"), ("pod", "p\"q\n"), ("ns", "a")],
                &[(1.0, NOW), (f64::NAN, NOW - 1)],
            ),
            series(
                &[("__name__", "up"), ("job", "j")],
                &[(f64::from_bits(STALE_NAN_BITS), NOW)],
            ),
        ]);
        valid.metadata = vec![MetricMetadata {
            r#type: 3,
            metric_family_name: b"m".to_vec().into(),
            help: b"h".to_vec().into(),
            unit: Default::default(),
        }];
        let bytes = valid.encode_to_vec();
        let store = Store::new(50);
        let mut batch = WriteBatch::default();
        let mut decoded = 0;
        for round in 0..20_000 {
            let mut corrupt = bytes.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % corrupt.len();
                match next() % 3 {
                    0 => corrupt[at] = next() as u8,
                    1 => corrupt.truncate(at.max(1)),
                    _ => {
                        let piece = corrupt[at..].to_vec();
                        corrupt.extend_from_slice(&piece);
                    }
                }
            }
            batch.buffer_for(corrupt.len()).copy_from_slice(&corrupt);
            if batch.parse(Protocol::V1).is_ok() {
                decoded += 1;
                ingest(&store, &batch, &RULES, NOW + round, 0);
            }
            assert_eq!(store.series_count(), store.snapshot().series.len());
        }
        assert!(
            decoded > 1000,
            "the corruptions should still decode often enough: {decoded}"
        );
        assert!(store.series_count() <= 50);
    }

    #[test]
    fn new_series_of_a_known_shape_are_checked_where_they_are_new() {
        let store = Store::new(100);
        let send = |series: TimeSeries| apply_legacy(&store, &request(vec![series]), NOW, 0);
        assert_eq!(
            send(series(&[("__name__", "m"), ("a", "1")], &[(1.0, NOW)])).series_created,
            1
        );
        // A held shape with new values: made without checking the names again.
        assert_eq!(
            send(series(&[("__name__", "m"), ("a", "2")], &[(1.0, NOW)])).series_created,
            1
        );
        // A new value is still checked for UTF-8.
        let mut broken = series(&[("__name__", "m")], &[(1.0, NOW)]);
        broken.labels.push(Label {
            name: "a".as_bytes().to_vec().into(),
            value: vec![b'x', 0xff].into(),
        });
        let report = send(broken);
        assert_eq!(report.dropped(DropReason::InvalidUtf8), 1);
        assert!(
            report
                .summary()
                .contains("first: a label value of m is not valid UTF-8"),
            "{}",
            report.summary()
        );
        // A bad label name is refused even beside a held series, and even with an empty value.
        for bad in [("bad-name", "x"), ("bad-name", "")] {
            let report = send(series(
                &[("__name__", "m"), ("a", "1"), bad],
                &[(2.0, NOW + 1)],
            ));
            assert_eq!(report.dropped(DropReason::InvalidLabelName), 1, "{bad:?}");
        }
        assert_eq!(
            stored(&store),
            [format!("m{{a=1}} 1 @{NOW}"), format!("m{{a=2}} 1 @{NOW}")]
        );
    }

    #[test]
    fn appends_follow_the_same_rules_whichever_path_they_take() {
        let store = Store::new(100);
        let labels = [("__name__", "m"), ("a", "1"), ("b", "2")];
        assert_eq!(
            apply(
                &store,
                &request(vec![series(&labels, &[(1.0, NOW)])]),
                NOW,
                0
            )
            .series_created,
            1
        );
        // Sorted as stored: found without validation.
        assert!(apply(
            &store,
            &request(vec![series(&labels, &[(2.0, NOW + 1)])]),
            NOW,
            0
        )
        .is_clean());
        // Unsorted, or with an empty label: the validating path finds the same series.
        let unsorted = [("b", "2"), ("__name__", "m"), ("a", "1")];
        assert!(apply(
            &store,
            &request(vec![series(&unsorted, &[(3.0, NOW + 2)])]),
            NOW,
            0
        )
        .is_clean());
        let with_empty = [("__name__", "m"), ("a", "1"), ("ab", ""), ("b", "2")];
        assert!(apply(
            &store,
            &request(vec![series(&with_empty, &[(4.0, NOW + 3)])]),
            NOW,
            0
        )
        .is_clean());
        assert_eq!(stored(&store), [format!("m{{a=1,b=2}} 4 @{}", NOW + 3)]);
        // A duplicate label never reaches the existing series, nor does a second metric name.
        for duplicate in [
            [("__name__", "m"), ("a", "1"), ("a", "1"), ("b", "2")],
            [("__name__", "x"), ("__name__", "m"), ("a", "1"), ("b", "2")],
        ] {
            let report = apply(
                &store,
                &request(vec![series(&duplicate, &[(5.0, NOW + 4)])]),
                NOW,
                0,
            );
            assert_eq!(
                report.dropped(DropReason::DuplicateLabelName),
                1,
                "{duplicate:?}"
            );
        }
        // Older samples, far-future ones and stale markers keep their rules on the fast path.
        let report = apply(
            &store,
            &request(vec![series(
                &labels,
                &[(9.0, NOW), (9.0, NOW + MAX_FUTURE_MS + 60_000)],
            )]),
            NOW,
            0,
        );
        assert_eq!(
            (
                report.dropped(DropReason::OutOfOrder),
                report.dropped(DropReason::TooFarInFuture)
            ),
            (1, 1)
        );
        let stale = f64::from_bits(STALE_NAN_BITS);
        assert_eq!(
            apply(
                &store,
                &request(vec![series(&labels, &[(stale, NOW + 5)])]),
                NOW,
                0
            )
            .removed_by_stale_marker,
            1
        );
        assert!(stored(&store).is_empty());
    }

    /// A remote-write 2.0 request, encoded as a sender would, decoded and ingested.
    fn apply_v2(store: &Store, symbols: &[&str], series: Vec<v2::TimeSeries>) -> Report {
        let bytes = v2::Request {
            symbols: symbols
                .iter()
                .map(|s| s.as_bytes().to_vec().into())
                .collect(),
            timeseries: series,
        }
        .encode_to_vec();
        let mut batch = WriteBatch::default();
        batch.buffer_for(bytes.len()).copy_from_slice(&bytes);
        batch.parse(Protocol::V2).unwrap();
        ingest(store, &batch, &RULES, NOW, 0)
    }

    fn series_v2(labels_refs: Vec<u32>, samples: &[(f64, i64)]) -> v2::TimeSeries {
        v2::TimeSeries {
            labels_refs,
            samples: samples
                .iter()
                .map(|&(value, timestamp)| v2::Sample {
                    value,
                    timestamp,
                    start_timestamp: 0,
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn v2_series_metadata_and_counts_are_stored_as_for_v1() {
        let store = Store::new(100);
        let symbols = [
            "",
            "__name__",
            "cpu_seconds_total",
            "pod",
            "p1",
            "CPU used.",
            "p2",
        ];
        let mut counter = series_v2(vec![1, 2, 3, 4], &[(1.0, NOW - 2000), (2.0, NOW - 1000)]);
        counter.metadata = Some(v2::Metadata {
            r#type: 1,
            help_ref: 5,
            unit_ref: 0,
        });
        counter.exemplars = vec![v2::Exemplar {
            labels_refs: vec![],
            value: 2.0,
            timestamp: NOW - 1000,
        }];
        let report = apply_v2(
            &store,
            &symbols,
            vec![counter, series_v2(vec![1, 2, 3, 6], &[(5.0, NOW)])],
        );
        assert!(report.is_clean(), "{}", report.summary());
        assert_eq!(report.written.samples, 3);
        assert_eq!(report.written.exemplars, 1);
        assert_eq!(
            stored(&store),
            [
                format!("cpu_seconds_total{{pod=p1}} 2 @{}", NOW - 1000),
                format!("cpu_seconds_total{{pod=p2}} 5 @{NOW}"),
            ]
        );
        let families = store.snapshot().families;
        assert_eq!(families["cpu_seconds_total"].kind, MetricKind::Counter);
        assert_eq!(&*families["cpu_seconds_total"].help, "CPU used.");
    }

    #[test]
    fn bad_v2_references_are_400_and_the_rest_is_stored() {
        let store = Store::new(100);
        let report = apply_v2(
            &store,
            &["", "__name__", "up"],
            vec![
                series_v2(vec![1, 2, 1], &[(1.0, NOW)]),
                series_v2(vec![1, 9], &[(1.0, NOW), (2.0, NOW)]),
                series_v2(vec![1, 2], &[(3.0, NOW)]),
            ],
        );
        assert!(!report.is_clean());
        assert_eq!(report.dropped(DropReason::InvalidReference), 3);
        assert_eq!(report.written.samples, 1);
        let summary = report.summary();
        assert!(summary.contains("invalid_reference=3"), "{summary}");
        assert!(summary.contains("not name-value pairs"), "{summary}");
        assert_eq!(stored(&store), [format!("up{{}} 3 @{NOW}")]);

        let store = Store::new(100);
        let report = apply_v2(
            &store,
            &["x", "__name__", "up"],
            vec![series_v2(vec![1, 2], &[(4.0, NOW)])],
        );
        assert!(
            !report.is_clean(),
            "a first symbol that is not empty is the sender's error"
        );
        assert!(
            report.summary().contains("first symbol"),
            "{}",
            report.summary()
        );
        assert_eq!(
            stored(&store),
            [format!("up{{}} 4 @{NOW}")],
            "yet what it sent is stored"
        );
    }

    /// An integer native histogram of schema 0: buckets (0.5,1], (1,2], (2,4] hold 1, 0, 2.
    fn native(timestamp: i64) -> Histogram {
        Histogram {
            count: Some(histogram::Count::CountInt(4)),
            sum: 7.5,
            schema: 0,
            zero_threshold: 0.001,
            zero_count: Some(histogram::ZeroCount::ZeroCountInt(1)),
            positive_spans: vec![BucketSpan {
                offset: 0,
                length: 3,
            }],
            positive_deltas: vec![1, -1, 2],
            timestamp,
            ..Default::default()
        }
    }

    fn page(store: &Store) -> String {
        String::from_utf8(crate::expose::render::render(
            &store.snapshot(),
            Default::default(),
            false,
        ))
        .unwrap()
    }

    #[test]
    fn native_histograms_are_stored_and_shown_as_classic_buckets() {
        let store = Store::new(100);
        let mut latency = series(&[("__name__", "rpc_seconds"), ("job", "a")], &[]);
        latency.histograms = vec![native(NOW - 1000), native(NOW)];
        latency.histograms[0].sum = 1.0;
        let report = apply(&store, &request(vec![latency]), NOW, 0);
        assert!(report.is_clean(), "{}", report.summary());
        assert_eq!(report.written.histograms, 2);
        assert_eq!(report.written.samples, 0);
        let page = page(&store);
        assert!(page.contains("# TYPE rpc_seconds histogram\n"), "{page}");
        let lines: Vec<&str> = page.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "rpc_seconds_bucket{job=\"a\",le=\"0.001\"} 1",
                "rpc_seconds_bucket{job=\"a\",le=\"1\"} 2",
                "rpc_seconds_bucket{job=\"a\",le=\"4\"} 4",
                "rpc_seconds_bucket{job=\"a\",le=\"+Inf\"} 4",
                "rpc_seconds_sum{job=\"a\"} 7.5",
                "rpc_seconds_count{job=\"a\"} 4",
            ]
        );
        // A float sample that is newer replaces the histogram, as in Prometheus.
        apply(
            &store,
            &request(vec![series(
                &[("__name__", "rpc_seconds"), ("job", "a")],
                &[(3.0, NOW + 1)],
            )]),
            NOW,
            0,
        );
        assert_eq!(
            stored(&store),
            [format!("rpc_seconds{{job=a}} 3 @{}", NOW + 1)]
        );
        // A histogram stale marker removes the series.
        let mut stale = series(&[("__name__", "rpc_seconds"), ("job", "a")], &[]);
        stale.histograms = vec![native(NOW + 2)];
        stale.histograms[0].sum = f64::from_bits(STALE_NAN_BITS);
        let report = apply(&store, &request(vec![stale]), NOW, 0);
        assert_eq!(report.removed_by_stale_marker, 1);
        assert_eq!(store.series_count(), 0);
    }

    #[test]
    fn hostile_histograms_cost_only_themselves() {
        let store = Store::new(100);
        let spans = |length| vec![BucketSpan { offset: 0, length }];
        let cases: Vec<(&str, Histogram, DropReason, &str)> = vec![
            (
                "negative",
                Histogram {
                    positive_deltas: vec![1, -2, 0],
                    ..native(NOW)
                },
                DropReason::InvalidNativeHistogram,
                "negative count",
            ),
            (
                "disagree",
                Histogram {
                    positive_spans: spans(4),
                    ..native(NOW)
                },
                DropReason::InvalidNativeHistogram,
                "spans cover 4 buckets but 3 counts",
            ),
            (
                "nan",
                Histogram {
                    count: Some(histogram::Count::CountFloat(f64::NAN)),
                    positive_deltas: vec![],
                    positive_counts: vec![1.0, 0.0, 2.0],
                    ..native(NOW)
                },
                DropReason::InvalidNativeHistogram,
                "NaN count",
            ),
            (
                "schema",
                Histogram {
                    schema: 9,
                    ..native(NOW)
                },
                DropReason::InvalidNativeHistogram,
                "schema 9",
            ),
            (
                "wide",
                Histogram {
                    count: Some(histogram::Count::CountInt(0)),
                    zero_count: None,
                    positive_spans: spans(101),
                    positive_deltas: vec![0; 101],
                    ..native(NOW)
                },
                DropReason::NativeHistogramBucketLimit,
                "101 buckets",
            ),
            (
                "custom",
                Histogram {
                    schema: -53,
                    zero_count: None,
                    custom_values: vec![1.0, 0.5],
                    ..native(NOW)
                },
                DropReason::InvalidNativeHistogram,
                "custom values do not increase",
            ),
        ];
        for (name, histogram, reason, words) in cases {
            let mut bad = series(&[("__name__", name)], &[]);
            bad.histograms = vec![histogram];
            let mut good = series(&[("__name__", "good")], &[]);
            good.histograms = vec![native(NOW)];
            let report = apply(&store, &request(vec![bad, good]), NOW, 0);
            assert_eq!(report.dropped(reason), 1, "{name}");
            assert_eq!(report.written.histograms, 1, "{name}");
            assert!(
                report.summary().contains(words),
                "{name}: {}",
                report.summary()
            );
        }
        assert_eq!(store.series_count(), 1);
    }

    #[test]
    fn custom_bucket_histograms_show_their_custom_values() {
        let store = Store::new(100);
        let mut nhcb = series(&[("__name__", "size_bytes")], &[]);
        nhcb.histograms = vec![Histogram {
            count: Some(histogram::Count::CountFloat(5.0)),
            sum: 900.0,
            schema: -53,
            positive_spans: vec![BucketSpan {
                offset: 1,
                length: 1,
            }],
            positive_counts: vec![5.0],
            custom_values: vec![100.0, 500.0],
            timestamp: NOW,
            ..Default::default()
        }];
        assert!(apply(&store, &request(vec![nhcb]), NOW, 0).is_clean());
        let page = page(&store);
        for line in [
            "size_bytes_bucket{le=\"100\"} 0\n",
            "size_bytes_bucket{le=\"500\"} 5\n",
            "size_bytes_bucket{le=\"+Inf\"} 5\n",
            "size_bytes_count 5\n",
        ] {
            assert!(page.contains(line), "{line} in {page}");
        }
    }

    #[test]
    fn exemplars_attach_to_their_series_and_count_when_it_is_missing() {
        let store = Store::new(100);
        let exemplar = |trace: &str, value: f64| Exemplar {
            labels: vec![Label {
                name: b"trace_id".to_vec().into(),
                value: trace.as_bytes().to_vec().into(),
            }],
            value,
            timestamp: NOW,
        };
        let mut first = series(&[("__name__", "jobs_total")], &[(1.0, NOW)]);
        first.exemplars = vec![exemplar("abc", 1.0)];
        // Prometheus sends exemplars in series of their own, without samples.
        let mut alone = series(&[("__name__", "jobs_total")], &[]);
        alone.exemplars = vec![exemplar("def", 2.0)];
        let mut orphan = series(&[("__name__", "unknown_total")], &[]);
        orphan.exemplars = vec![exemplar("ghi", 3.0)];
        let mut too_long = series(&[("__name__", "jobs_total")], &[]);
        too_long.exemplars = vec![exemplar(&"x".repeat(130), 4.0)];
        let report = apply(
            &store,
            &request(vec![first, alone, orphan, too_long]),
            NOW,
            0,
        );
        assert_eq!(report.written.exemplars, 2);
        assert_eq!(report.dropped(DropReason::ExemplarWithoutSeries), 1);
        assert_eq!(report.dropped(DropReason::InvalidExemplar), 1);
        assert!(
            report.summary().contains("over the 128"),
            "{}",
            report.summary()
        );
        let snapshot = store.snapshot();
        let extras = snapshot.extras_of(&snapshot.series[0]).unwrap();
        let traces: Vec<(&str, f64)> = extras
            .exemplars
            .iter()
            .map(|e| (&*e.labels[0].1, e.value))
            .collect();
        assert_eq!(traces, [("abc", 1.0), ("def", 2.0)]);
    }

    #[test]
    fn v2_histograms_exemplars_and_start_timestamps_are_stored() {
        let store = Store::new(100);
        let symbols = [
            "",
            "__name__",
            "rpc_seconds",
            "trace_id",
            "t1",
            "jobs_total",
        ];
        let mut series = series_v2(vec![1, 2], &[]);
        let mut histogram = native(NOW).to_v2();
        histogram.start_timestamp = NOW - 60_000;
        series.histograms = vec![histogram];
        series.exemplars = vec![v2::Exemplar {
            labels_refs: vec![3, 4],
            value: 0.7,
            timestamp: NOW,
        }];
        let mut counter = series_v2(vec![1, 5], &[(1.0, NOW - 1000), (2.0, NOW)]);
        counter.samples[0].start_timestamp = NOW - 90_000;
        counter.samples[1].start_timestamp = NOW - 70_000;
        let report = apply_v2(&store, &symbols, vec![series, counter]);
        assert!(report.is_clean(), "{}", report.summary());
        assert_eq!(
            report.written,
            Points {
                samples: 2,
                histograms: 1,
                exemplars: 1
            }
        );
        let snapshot = store.snapshot();
        let extras = |name: &str| {
            let series = snapshot.series.iter().find(|s| s.name() == name).unwrap();
            snapshot.extras_of(series).unwrap()
        };
        let rpc = extras("rpc_seconds");
        assert_eq!(rpc.start_timestamp_ms, Some(NOW - 60_000));
        assert_eq!(rpc.histogram.as_ref().unwrap().count, 4.0);
        assert_eq!(&*rpc.exemplars[0].labels[0].1, "t1");
        // The start of the sample kept, the newest.
        assert_eq!(extras("jobs_total").start_timestamp_ms, Some(NOW - 70_000));
    }

    #[test]
    fn a_draft_v2_created_timestamp_is_kept_when_the_sample_has_no_start() {
        let store = Store::new(100);
        let symbols = ["", "__name__", "jobs_total"];
        let mut bytes = v2::Request {
            symbols: symbols
                .iter()
                .map(|s| s.as_bytes().to_vec().into())
                .collect(),
            timeseries: Vec::new(),
        }
        .encode_to_vec();
        let series = series_v2(vec![1, 2], &[(3.0, NOW)]);
        bytes.extend(crate::write::proto::draft_v2_series(&series, NOW - 5000));
        let mut batch = WriteBatch::default();
        batch.buffer_for(bytes.len()).copy_from_slice(&bytes);
        batch.parse(Protocol::V2).unwrap();
        let report = ingest(&store, &batch, &RULES, NOW, 0);
        assert!(report.is_clean(), "{}", report.summary());
        let snapshot = store.snapshot();
        let extras = snapshot.extras_of(&snapshot.series[0]).unwrap();
        assert_eq!(extras.start_timestamp_ms, Some(NOW - 5000));
    }

    #[test]
    fn utf8_names_are_stored_and_escaped_on_the_text_page() {
        let store = Store::new(100);
        let report = apply(
            &store,
            &request(vec![
                series(
                    &[
                        ("__name__", "http.server.duration"),
                        ("service.name", "api"),
                    ],
                    &[(1.0, NOW)],
                ),
                // Escapes to the same line as the first: only one of them is shown.
                series(
                    &[
                        ("__name__", "http_server_duration"),
                        ("service_name", "api"),
                    ],
                    &[(2.0, NOW)],
                ),
                series(&[("__name__", "température_celsius")], &[(3.0, NOW)]),
            ]),
            NOW,
            0,
        );
        assert!(report.is_clean(), "{}", report.summary());
        assert_eq!(store.series_count(), 3);
        let shown = page(&store);
        let lines: Vec<&str> = shown.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "http_server_duration{service_name=\"api\"} 2",
                "temp_rature_celsius 3",
            ]
        );
        // Metadata of a UTF-8 family describes the escaped family the page shows.
        apply(
            &store,
            &WriteRequest {
                timeseries: vec![],
                metadata: vec![MetricMetadata {
                    r#type: 2,
                    metric_family_name: b"http.server.duration".to_vec().into(),
                    help: b"Server time.".to_vec().into(),
                    unit: Default::default(),
                }],
            },
            NOW,
            0,
        );
        let typed = page(&store);
        assert!(
            typed.contains(
                "# HELP http_server_duration Server time.\n# TYPE http_server_duration gauge\n"
            ),
            "{typed}"
        );
        // Legacy rules refuse what UTF-8 rules take.
        let report = apply_legacy(
            &store,
            &request(vec![series(&[("__name__", "my-metric")], &[(1.0, NOW)])]),
            NOW,
            0,
        );
        assert_eq!(report.dropped(DropReason::InvalidMetricName), 1);
    }
}
