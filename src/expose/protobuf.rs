//! The protobuf exposition format: `io.prometheus.client.MetricFamily` messages of
//! prometheus/client_model `metrics.proto`, each preceded by its length as a varint
//! (`encoding=delimited`).
//!
//! Messages are written straight onto the page, not built as structs first: a family's length
//! comes before it, so each family is gone through twice, once to add up the lengths of its
//! metrics and once to write them. Label pairs are written once per scrape and copied, as the
//! text formats' label blocks are ([`crate::expose::groups::LabelBlocks`]).

use std::ops::Range;

use crate::expose::fields::{
    put_bytes_field, put_double, put_message, put_tag, put_timestamp, put_uint, put_varint,
    varint_len, write_label_pairs, zigzag, LENGTH,
};
use crate::expose::groups::{block_key, FamilyGroup, Grouped, LabelBlocks};
use crate::expose::metrics::{bound_of, item_of, member_value, runs, Item};
use crate::expose::page::Sink;
use crate::store::metadata::MetricKind;
use crate::store::native::{Buckets, Exemplar, NativeHistogram, CUSTOM_BUCKETS_SCHEMA};
use crate::store::SeriesView;

/// `MetricType` values.
const COUNTER: u64 = 0;
const GAUGE: u64 = 1;
const SUMMARY: u64 = 2;
const UNTYPED: u64 = 3;
const HISTOGRAM: u64 = 4;

/// The length of a `Counter`, `Gauge` or `Untyped` field holding only a value: tag, length,
/// and the value's tag and 8 bytes.
const PLAIN_VALUE_LEN: usize = 11;

fn put_exemplar(out: &mut Vec<u8>, field: u32, exemplar: &Exemplar) {
    put_message(out, field, |e| {
        write_label_pairs(e, exemplar.labels.iter().map(|(n, v)| (&**n, &**v)));
        put_double(e, 2, exemplar.value);
        if let Some(ms) = exemplar.timestamp_ms {
            put_timestamp(e, 3, ms);
        }
    });
}

/// A count as `uint64` where it is a whole number, else in the `_float` field beside it.
fn put_count(out: &mut Vec<u8>, int_field: u32, float_field: u32, count: f64) {
    if count >= 0.0 && count.fract() == 0.0 && count < U64_LIMIT {
        put_uint(out, int_field, count as u64);
    } else {
        put_double(out, float_field, count);
    }
}

/// Writes the page of `grouped` as delimited `MetricFamily` messages.
pub fn write_page(
    out: &mut impl Sink,
    grouped: &Grouped,
    blocks: &mut LabelBlocks,
    expose_timestamps: bool,
) {
    let mut writer = FamilyWriter {
        blocks,
        grouped,
        expose_timestamps,
        body: Vec::new(),
        places: Vec::new(),
    };
    for group in &grouped.groups {
        if out.failed() {
            break;
        }
        let kind = group.kind();
        let fits = group.fits(kind);
        if matches!(kind, MetricKind::Histogram | MetricKind::Summary) && fits {
            let items = runs(group);
            if items.iter().all(|item| is_whole(group, kind, item)) {
                let type_code = match kind {
                    MetricKind::Histogram => HISTOGRAM,
                    _ => SUMMARY,
                };
                writer.write_family(out, group, &group.name, type_code, &items);
                continue;
            }
        }
        match kind {
            MetricKind::Counter | MetricKind::Gauge | MetricKind::Unknown if fits => {
                let type_code = match kind {
                    MetricKind::Counter => COUNTER,
                    MetricKind::Gauge => GAUGE,
                    _ => UNTYPED,
                };
                let items: Vec<Item> = group.members.iter().map(|s| item_of(group, s)).collect();
                writer.write_family(out, group, &group.name, type_code, &items);
            }
            _ => {
                // Members that do not fit the family's type are each shown under their own
                // name, untyped (a native histogram as a histogram), as text shows them.
                for same in group.by_series_name() {
                    let items: Vec<Item> = same.iter().map(|s| item_of(group, s)).collect();
                    let native = group.is_native(same[0]);
                    let type_code = if native { HISTOGRAM } else { UNTYPED };
                    writer.write_family(out, group, group.shown_name(same[0]), type_code, &items);
                }
            }
        }
    }
}

/// Whether a classic histogram's or summary's series make a message that says what they say:
/// one `_sum` and one `_count`, every bucket with its `le` and quantile line with its
/// `quantile`, and every count one the message can hold (a summary's count is
/// a `uint64`; a histogram's counts are a `uint64`, or a `double` that is read only above
/// zero). Otherwise a reader would find counts and sums the sender never sent.
fn is_whole(group: &FamilyGroup, kind: MetricKind, item: &Item) -> bool {
    let Item::Run(members) = item else {
        return true;
    };
    let held = |count: f64| match kind {
        MetricKind::Summary => count >= 0.0 && count.fract() == 0.0 && count < U64_LIMIT,
        _ => count >= 0.0,
    };
    let (mut sums, mut counts) = (0, 0);
    for series in *members {
        match group
            .shown_name(series)
            .get(group.name.len()..)
            .unwrap_or("")
        {
            "_sum" => sums += 1,
            "_count" if held(series.value) => counts += 1,
            "_count" => return false,
            "_bucket" if series.value.is_nan() || series.value < 0.0 => return false,
            // A bucket without its bound, a quantile line without its quantile: no place for
            // it in the message.
            "_bucket" if bound_of(series, "le").is_none() => return false,
            "" if bound_of(series, "quantile").is_none() => return false,
            _ => {}
        }
    }
    (sums, counts) == (1, 1)
}

/// 2^64: the first float a `uint64` cannot hold.
const U64_LIMIT: f64 = 18_446_744_073_709_551_616.0;

struct FamilyWriter<'w, 'b, 's> {
    blocks: &'w mut LabelBlocks<'b>,
    grouped: &'w Grouped<'s>,
    expose_timestamps: bool,
    /// A metric's fields after its labels, made afresh for each.
    body: Vec<u8>,
    /// Where each metric's label pairs sit among the blocks.
    places: Vec<Range<usize>>,
}

impl FamilyWriter<'_, '_, '_> {
    fn write_family(
        &mut self,
        out: &mut impl Sink,
        group: &FamilyGroup,
        name: &str,
        type_code: u64,
        items: &[Item],
    ) {
        let help = group.help();
        let unit = group.metadata.as_ref().map_or("", |m| &m.unit);
        self.places.clear();
        let mut metrics_len = 0;
        for item in items {
            let place = match item {
                Item::Float(series) | Item::Native(series, _) => self
                    .blocks
                    .place_of(self.grouped.ranks[&block_key(series)], series),
                Item::Run(_) => 0..0,
            };
            let body_len = match self.plain_float_len(group, type_code, item) {
                Some(len) => len,
                None => {
                    self.encode_body(group, type_code, item);
                    self.body.len()
                }
            };
            let len = place.len() + body_len;
            metrics_len += 1 + varint_len(len as u64) + len;
            self.places.push(place);
        }
        let field_len = |len: usize| 1 + varint_len(len as u64) + len;
        let mut family_len = field_len(name.len()) + field_len(help.len()) + 2 + metrics_len;
        if !unit.is_empty() {
            family_len += field_len(unit.len());
        }
        put_varint(out, family_len as u64);
        put_bytes_field(out, 1, name.as_bytes());
        put_bytes_field(out, 2, help.as_bytes());
        put_uint(out, 3, type_code);
        for (item, place) in items.iter().zip(std::mem::take(&mut self.places)) {
            self.encode_body(group, type_code, item);
            put_tag(out, 4, LENGTH);
            put_varint(out, (place.len() + self.body.len()) as u64);
            out.put(self.blocks.at(place));
            out.put(&self.body);
        }
        if !unit.is_empty() {
            put_bytes_field(out, 5, unit.as_bytes());
        }
    }

    /// The length of a float metric's fields other than its labels, when they are its value
    /// alone (and its timestamp): counted without writing them, as nearly every metric is.
    fn plain_float_len(&self, group: &FamilyGroup, type_code: u64, item: &Item) -> Option<usize> {
        let Item::Float(series) = item else {
            return None;
        };
        if type_code == COUNTER && group.snapshot.extras_of(series).is_some() {
            return None;
        }
        let timestamp_len = match self.expose_timestamps {
            true => 1 + varint_len(series.timestamp_ms as u64),
            false => 0,
        };
        Some(PLAIN_VALUE_LEN + timestamp_len)
    }

    /// Writes in `body` a metric's fields other than its labels (which, for a run, it writes
    /// as well).
    fn encode_body(&mut self, group: &FamilyGroup, type_code: u64, item: &Item) {
        let body = &mut self.body;
        body.clear();
        let extras = |s: &SeriesView| group.snapshot.extras_of(s);
        let timestamp = match item {
            Item::Float(series) => {
                let extras = extras(series);
                let created = extras.and_then(|e| e.start_timestamp_ms);
                let exemplar = extras.and_then(|e| e.exemplars.last());
                if type_code == COUNTER && (created.is_some() || exemplar.is_some()) {
                    put_message(body, 3, |c| {
                        put_double(c, 1, series.value);
                        if let Some(exemplar) = exemplar {
                            put_exemplar(c, 2, exemplar);
                        }
                        if let Some(ms) = created {
                            put_timestamp(c, 3, ms);
                        }
                    });
                } else {
                    // `Counter`, `Gauge` or `Untyped` holding only its value (9 bytes):
                    // [`PLAIN_VALUE_LEN`] in all.
                    let field = match type_code {
                        COUNTER => 3,
                        GAUGE => 2,
                        _ => 5,
                    };
                    put_tag(body, field, LENGTH);
                    body.put_byte(9);
                    put_double(body, 1, series.value);
                }
                series.timestamp_ms
            }
            Item::Native(series, histogram) => {
                let extras = extras(series);
                put_message(body, 7, |h| {
                    write_native(h, histogram);
                    if let Some(ms) = extras.and_then(|e| e.start_timestamp_ms) {
                        put_timestamp(h, 15, ms);
                    }
                    // The native histogram's exemplars "MUST have a timestamp" (the spec of
                    // native histograms, exposition formats).
                    let exemplars = extras.iter().flat_map(|e| &e.exemplars);
                    for exemplar in exemplars.filter(|e| e.timestamp_ms.is_some()) {
                        put_exemplar(h, 16, exemplar);
                    }
                });
                series.timestamp_ms
            }
            Item::Run(members) => {
                let first = members[0];
                write_label_pairs(
                    body,
                    first
                        .labels()
                        .filter(|(name, _)| !matches!(*name, "le" | "quantile")),
                );
                let created = members.iter().find_map(|s| extras(s)?.start_timestamp_ms);
                if type_code == HISTOGRAM {
                    put_message(body, 7, |h| write_classic(h, group, members, created));
                } else {
                    put_message(body, 4, |s| write_summary(s, group, members, created));
                }
                members.iter().map(|s| s.timestamp_ms).max().unwrap_or(0)
            }
        };
        if self.expose_timestamps {
            put_uint(body, 6, timestamp as u64);
        }
    }
}

/// A classic histogram's `Histogram` fields from its series.
fn write_classic(
    h: &mut Vec<u8>,
    group: &FamilyGroup,
    members: &[&SeriesView],
    created: Option<i64>,
) {
    put_count(
        h,
        1,
        4,
        member_value(group, members, "_count").unwrap_or(0.0),
    );
    put_double(h, 2, member_value(group, members, "_sum").unwrap_or(0.0));
    for series in members {
        if group.shown_name(series).strip_prefix(group.name.as_str()) != Some("_bucket") {
            continue;
        }
        let Some(bound) = bound_of(series, "le") else {
            continue;
        };
        let exemplar = group
            .snapshot
            .extras_of(series)
            .and_then(|e| e.exemplars.last());
        put_message(h, 3, |b| {
            put_count(b, 1, 4, series.value);
            put_double(b, 2, bound);
            if let Some(exemplar) = exemplar {
                put_exemplar(b, 3, exemplar);
            }
        });
    }
    if let Some(ms) = created {
        put_timestamp(h, 15, ms);
    }
}

/// A summary's `Summary` fields from its series.
fn write_summary(
    s: &mut Vec<u8>,
    group: &FamilyGroup,
    members: &[&SeriesView],
    created: Option<i64>,
) {
    let count = member_value(group, members, "_count").unwrap_or(0.0);
    put_uint(s, 1, if count >= 0.0 { count as u64 } else { 0 });
    put_double(s, 2, member_value(group, members, "_sum").unwrap_or(0.0));
    for series in members {
        if group.shown_name(series) != group.name {
            continue;
        }
        let Some(quantile) = bound_of(series, "quantile") else {
            continue;
        };
        put_message(s, 3, |q| {
            put_double(q, 1, quantile);
            put_double(q, 2, series.value);
        });
    }
    if let Some(ms) = created {
        put_timestamp(s, 4, ms);
    }
}

/// A native histogram's `Histogram` fields: schema, zero bucket, spans, and bucket counts as
/// deltas (integer histograms) or absolute counts (float histograms). One with custom bucket
/// bounds is written as the classic buckets those bounds are, since `metrics.proto` carries
/// such bounds only as classic buckets.
fn write_native(h: &mut Vec<u8>, histogram: &NativeHistogram) {
    let float = histogram.float_counts;
    let count = |h: &mut Vec<u8>, int_field, float_field, value: f64| {
        if float {
            put_double(h, float_field, value);
        } else {
            put_uint(h, int_field, value as u64);
        }
    };
    count(h, 1, 4, histogram.count);
    put_double(h, 2, histogram.sum);
    if histogram.schema == CUSTOM_BUCKETS_SCHEMA {
        for (bound, cumulative) in histogram.classic_buckets() {
            put_message(h, 3, |b| {
                count(b, 1, 4, cumulative);
                put_double(b, 2, bound);
            });
        }
        return;
    }
    put_uint(h, 5, zigzag(i64::from(histogram.schema)));
    put_double(h, 6, histogram.zero_threshold);
    count(h, 7, 8, histogram.zero_count);
    let no_spans = histogram.negative.spans.is_empty() && histogram.positive.spans.is_empty();
    for (buckets, span_field, delta_field, count_field) in [
        (&histogram.negative, 9, 10, 11),
        (&histogram.positive, 12, 13, 14),
    ] {
        write_buckets(
            h,
            buckets,
            span_field,
            if float { count_field } else { delta_field },
            float,
        );
    }
    if no_spans {
        // A histogram without buckets still says it is a native one, with an empty span, as
        // client_golang writes it.
        put_message(h, 12, |span| {
            put_uint(span, 1, 0);
            put_uint(span, 2, 0);
        });
    }
}

fn write_buckets(
    h: &mut Vec<u8>,
    buckets: &Buckets,
    span_field: u32,
    counts_field: u32,
    float: bool,
) {
    for span in buckets.spans.iter() {
        put_message(h, span_field, |s| {
            put_uint(s, 1, zigzag(i64::from(span.offset)));
            put_uint(s, 2, u64::from(span.length));
        });
    }
    if buckets.counts.is_empty() {
        return;
    }
    put_message(h, counts_field, |packed| {
        let mut previous = 0i64;
        for &count in buckets.counts.iter() {
            if float {
                packed.put(&count.to_le_bytes());
            } else {
                let count = count as i64;
                put_varint(packed, zigzag(count - previous));
                previous = count;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expose::fields::VARINT;
    use crate::expose::negotiate::negotiate;
    use crate::store::intern::{Atom, Tuple};
    use crate::store::metadata::Metadata;
    use crate::store::native::Extras;
    use crate::store::{Schema, Snapshot};
    use std::sync::Arc;

    /// The `MetricFamily.type` of each family on a protobuf page, by name.
    fn family_types(mut page: &[u8]) -> Vec<(String, u64)> {
        fn varint(bytes: &mut &[u8]) -> u64 {
            let (mut value, mut shift) = (0u64, 0);
            loop {
                let byte = bytes[0];
                *bytes = &bytes[1..];
                value |= u64::from(byte & 0x7f) << shift;
                if byte < 0x80 {
                    return value;
                }
                shift += 7;
            }
        }
        let mut found = Vec::new();
        while !page.is_empty() {
            let length = varint(&mut page) as usize;
            let (mut family, rest) = page.split_at(length);
            page = rest;
            let (mut name, mut type_code) = (String::new(), UNTYPED);
            while !family.is_empty() {
                let tag = varint(&mut family);
                if tag & 7 == u64::from(VARINT) {
                    let value = varint(&mut family);
                    if tag >> 3 == 3 {
                        type_code = value;
                    }
                    continue;
                }
                let length = varint(&mut family) as usize;
                if tag >> 3 == 1 {
                    name = String::from_utf8(family[..length].to_vec()).unwrap();
                }
                family = &family[length..];
            }
            found.push((name, type_code));
        }
        found
    }

    #[test]
    fn a_native_histogram_in_a_family_of_unknown_type_is_written_as_a_histogram() {
        let series = |name: &str| SeriesView {
            schema: Arc::new(Schema::new(name, &[])),
            values: Tuple::new(0, std::iter::empty()),
            value: 1.0,
            timestamp_ms: 0,
        };
        let histogram = Extras {
            histogram: Some(NativeHistogram::default()),
            ..Extras::default()
        };
        let unknown = Metadata {
            kind: MetricKind::Unknown,
            help: "h".into(),
            unit: "".into(),
        };
        let snapshot = Snapshot {
            series: vec![series("h"), series("u")],
            extras: vec![(0, Arc::new(histogram))],
            families: [("h", &unknown), ("u", &unknown)]
                .into_iter()
                .map(|(name, metadata)| (Arc::from(name), metadata.clone()))
                .collect(),
        };
        let accept = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";
        let page = crate::expose::render::render(&snapshot, negotiate(Some(accept)), false);
        assert_eq!(
            family_types(&page),
            [("h".to_owned(), HISTOGRAM), ("u".to_owned(), UNTYPED)]
        );
    }

    #[test]
    fn a_classic_histogram_or_summary_a_message_cannot_hold_is_written_untyped() {
        let series = |name: &str, labels: &[(&str, &str)], value: f64| {
            let names: Vec<&str> = labels.iter().map(|(n, _)| *n).collect();
            SeriesView {
                schema: Arc::new(Schema::new(name, &names)),
                values: Tuple::new(0, labels.iter().map(|(_, v)| Atom::new(v))),
                value,
                timestamp_ms: 0,
            }
        };
        let types = |series: Vec<SeriesView>, kind: MetricKind| {
            let metadata = Metadata {
                kind,
                help: "h".into(),
                unit: "".into(),
            };
            let snapshot = Snapshot {
                series,
                extras: Vec::new(),
                families: [(Arc::from("h"), metadata)].into_iter().collect(),
            };
            let accept = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";
            family_types(&crate::expose::render::render(
                &snapshot,
                negotiate(Some(accept)),
                false,
            ))
        };
        let whole = || {
            vec![
                series("h_bucket", &[("le", "+Inf")], 2.0),
                series("h_sum", &[], 1.0),
                series("h_count", &[], 2.0),
            ]
        };
        assert_eq!(
            types(whole(), MetricKind::Histogram),
            [("h".to_owned(), HISTOGRAM)]
        );
        let mut no_sum = whole();
        no_sum.remove(1);
        let mut nan_count = whole();
        nan_count[2].value = f64::NAN;
        for series in [no_sum, nan_count] {
            assert!(types(series, MetricKind::Histogram)
                .iter()
                .all(|(_, code)| *code == UNTYPED));
        }
        let summary = |count: f64| {
            vec![
                series("h", &[("quantile", "0.5")], 1.0),
                series("h_sum", &[], 1.0),
                series("h_count", &[], count),
            ]
        };
        assert_eq!(
            types(summary(3.0), MetricKind::Summary),
            [("h".to_owned(), SUMMARY)]
        );
        assert!(types(summary(2.5), MetricKind::Summary)
            .iter()
            .all(|(_, code)| *code == UNTYPED));
        let mut bare = summary(3.0);
        bare[0] = series("h", &[], 1.0);
        let mut no_bound = whole();
        no_bound[0] = series("h_bucket", &[], 2.0);
        for (series, kind) in [
            (bare, MetricKind::Summary),
            (no_bound, MetricKind::Histogram),
        ] {
            assert!(types(series, kind).iter().all(|(_, code)| *code == UNTYPED));
        }
    }

    #[test]
    fn varints_and_zigzag_are_as_protobuf_has_them() {
        let mut out = Vec::new();
        put_varint(&mut out, 300);
        assert_eq!(out, [0xAC, 0x02]);
        for value in [0u64, 1, 127, 128, 300, 16383, 16384, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out.len(), varint_len(value), "{value}");
        }
        assert_eq!(zigzag(0), 0);
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
        assert_eq!(zigzag(-2), 3);
    }
}
