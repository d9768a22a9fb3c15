//! Text exposition format 0.0.4
//! (https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format), and 1.0.0,
//! which is 0.0.4 with names outside the legacy set in quotes
//! (https://prometheus.io/docs/instrumenting/escaping_schemes/).
//!
//! Families are sorted by name, each family's series sit together under one `# HELP` and one
//! `# TYPE`, and values are spelled as Prometheus's `expfmt` spells them.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::ops::Range;

use crate::expose::groups::{block_key, Grouped, LabelBlocks, GATHERED};
use crate::expose::lines::{escape_help, write_float, write_series_start, SeriesName};
use crate::expose::page::Sink;
use crate::store::metadata::MetricKind;
use crate::store::native::NativeHistogram;

/// Writes the `# HELP` (when there is help text) and `# TYPE` lines of a family.
fn write_header(out: &mut impl Sink, family: &str, help: &str, type_word: &str) {
    if !help.is_empty() {
        out.put(b"# HELP ");
        out.put(family.as_bytes());
        out.put_byte(b' ');
        out.put(escape_help(help).as_bytes());
        out.put_byte(b'\n');
    }
    out.put(b"# TYPE ");
    out.put(family.as_bytes());
    out.put_byte(b' ');
    out.put(type_word.as_bytes());
    out.put_byte(b'\n');
}

fn write_value(out: &mut impl Sink, value: f64, timestamp_ms: Option<i64>) {
    out.put_byte(b' ');
    write_float(out, value);
    if let Some(timestamp) = timestamp_ms {
        out.put_byte(b' ');
        let mut digits = [0u8; 24];
        let mut cursor = std::io::Cursor::new(&mut digits[..]);
        let _ = write!(cursor, "{timestamp}");
        let written = cursor.position() as usize;
        out.put(&digits[..written]);
    }
    out.put_byte(b'\n');
}

/// What expfmt (promtool, client libraries) has made of the page written so far, as far as
/// it decides whether a later family's `# HELP` and `# TYPE` still parse. expfmt files a line
/// about `x_sum` or `x_count` (and `x_bucket`) under summary (or histogram) `x` when `x` was
/// declared so, and makes an untyped family of any other sample name it has not seen. Such
/// families come only from conflicting metadata (histogram `x_sum` beside summary `x`) or from
/// a summary or histogram written untyped (its `x_sum` lines then form a family of their own);
/// a later family of that name is written without HELP and TYPE, so untyped, rather than as
/// a second HELP or a late TYPE, which would make the whole page unreadable to expfmt.
#[derive(Default)]
struct ExpfmtFamilies<'a> {
    /// Families declared summary or histogram.
    typed: HashMap<&'a str, &'static str>,
    /// Families expfmt made of samples alone.
    implicit: HashSet<Cow<'a, str>>,
}

impl<'a> ExpfmtFamilies<'a> {
    fn header_parses(&self, name: &str) -> bool {
        let claimed = ["_sum", "_count", "_bucket"].iter().any(|suffix| {
            name.strip_suffix(suffix)
                .and_then(|base| self.typed.get(base))
                .is_some_and(|kind| *suffix != "_bucket" || *kind == "histogram")
        });
        !claimed && !self.implicit.contains(name)
    }
}

/// Writes the page of `grouped` in text format 0.0.4, or 1.0.0: with escaping `allow-utf-8`
/// (which negotiation gives text 1.0.0 only), a name outside the legacy set is written in
/// quotes, the metric name inside the braces (`{"http.requests",code="200"} 1`).
///
/// A native histogram is written as the classic histogram it reads as
/// ([`NativeHistogram::classic_buckets`]): `_bucket` lines with `le`, then `_sum` and `_count`.
pub fn write_page(
    out: &mut impl Sink,
    grouped: &Grouped,
    blocks: &mut LabelBlocks,
    expose_timestamps: bool,
) {
    let mut expfmt = ExpfmtFamilies::default();
    let mut classic = Vec::new();
    for group in &grouped.groups {
        if out.failed() {
            break;
        }
        let type_word = group.type_word();
        let header = expfmt.header_parses(&group.name);
        if header {
            let help = group.help();
            let family = group.naming().family_name(&group.name);
            write_header(out, &family, help, type_word);
        }
        let typed = header && matches!(type_word, "summary" | "histogram");
        if typed {
            expfmt.typed.insert(&group.name, type_word);
        }
        // Members named apart from their family exist only in histograms and summaries.
        let apart = !typed && matches!(group.kind(), MetricKind::Histogram | MetricKind::Summary);
        for batch in group.members.chunks(GATHERED) {
            let mut places: [Range<usize>; GATHERED] = Default::default();
            for (place, series) in places.iter_mut().zip(batch) {
                *place = blocks.place_of(grouped.ranks[&block_key(series)], series);
            }
            for (series, place) in batch.iter().zip(places) {
                let name = group.shown_name(series);
                if apart && name != group.name {
                    expfmt.implicit.insert(Cow::Borrowed(name));
                }
                let timestamp = expose_timestamps.then_some(series.timestamp_ms);
                let quoted = group.naming().quoted(&series.schema);
                if let Some(histogram) = group.snapshot.histogram_of(series) {
                    if !(typed && type_word == "histogram") {
                        // Its lines are families of their own to expfmt.
                        for suffix in ["_bucket", "_sum", "_count"] {
                            expfmt
                                .implicit
                                .insert(Cow::Owned(format!("{name}{suffix}")));
                        }
                    }
                    // Spelled apart and copied in: histograms are few, and writing them
                    // straight onto the page made the compiler stop inlining the float
                    // writing every other series goes through (3% more instructions a page).
                    classic.clear();
                    let series_name = SeriesName { name, quoted };
                    write_classic(
                        &mut classic,
                        series_name,
                        blocks.at(place),
                        histogram,
                        timestamp,
                    );
                    out.put(&classic);
                    continue;
                }
                if quoted {
                    let series_name = SeriesName { name, quoted };
                    write_series_start(out, series_name, "", blocks.at(place), None);
                } else {
                    out.put(name.as_bytes());
                    out.put(blocks.at(place));
                }
                write_value(out, series.value, timestamp);
            }
        }
    }
}

/// Writes a native histogram as the classic one it reads as, under the series' label block
/// with `le` added to each bucket's.
fn write_classic(
    out: &mut impl Sink,
    name: SeriesName,
    block: &[u8],
    histogram: &NativeHistogram,
    timestamp_ms: Option<i64>,
) {
    for (le, count) in histogram.classic_buckets() {
        write_series_start(out, name, "_bucket", block, Some(le));
        write_value(out, count, timestamp_ms);
    }
    for (suffix, value) in [("_sum", histogram.sum), ("_count", histogram.count)] {
        write_series_start(out, name, suffix, block, None);
        write_value(out, value, timestamp_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::label_text::Escaping;
    use crate::expose::groups::{block_ranks, place_by_rank, Grouped, DEFAULT_HELP};
    use crate::expose::naming::Naming;
    use crate::expose::negotiate::Negotiated;
    use crate::store::metadata::Metadata;
    use crate::store::{SeriesView, Snapshot};
    use std::collections::HashMap;

    fn render(snapshot: &Snapshot, timestamps: bool) -> Vec<u8> {
        crate::expose::render::render(snapshot, Negotiated::default(), timestamps)
    }

    fn render_to(
        snapshot: &Snapshot,
        timestamps: bool,
        block_bytes: &mut Vec<u8>,
        out: Vec<u8>,
    ) -> std::io::Result<(Vec<u8>, u64)> {
        let negotiated = Negotiated::default();
        crate::expose::render::render_to(snapshot, negotiated, timestamps, block_bytes, out)
    }

    fn group_families<'s>(snapshot: &'s Snapshot, naming: &'s Naming) -> Grouped<'s> {
        crate::expose::groups::group_families(
            snapshot,
            naming,
            crate::expose::groups::Twins::LeftOut,
        )
    }
    use crate::store::intern::{Atom, Tuple};
    use crate::store::Schema;
    use std::sync::Arc;

    fn view(name: &str, pairs: &[(&str, &str)], value: f64, timestamp_ms: i64) -> SeriesView {
        let names: Vec<&str> = pairs.iter().map(|(n, _)| *n).collect();
        SeriesView {
            schema: Arc::new(Schema::new(name, &names)),
            values: Tuple::new(0, pairs.iter().map(|(_, v)| Atom::new(v))),
            value,
            timestamp_ms,
        }
    }

    fn meta(kind: MetricKind, help: &str) -> Metadata {
        Metadata {
            kind,
            help: help.into(),
            unit: "".into(),
        }
    }

    fn page(series: Vec<SeriesView>, families: &[(&str, Metadata)], timestamps: bool) -> String {
        let snapshot = Snapshot {
            series,
            extras: Vec::new(),
            families: families
                .iter()
                .map(|(n, m)| (Arc::from(*n), m.clone()))
                .collect(),
        };
        String::from_utf8(render(&snapshot, timestamps)).unwrap()
    }

    // The cases below are those of prometheus/common expfmt/text_create_test.go.

    #[test]
    fn counter_with_escaped_help_nan_and_timestamp() {
        let text = page(
            vec![
                view(
                    "name",
                    &[("basename", "basevalue"), ("labelname", "val2")],
                    0.23,
                    1234567890,
                ),
                view(
                    "name",
                    &[("basename", "basevalue"), ("labelname", "val1")],
                    f64::NAN,
                    0,
                ),
            ],
            &[(
                "name",
                meta(MetricKind::Counter, "two-line\n doc  str\\ing"),
            )],
            true,
        );
        assert_eq!(
            text,
            "# HELP name two-line\\n doc  str\\\\ing\n# TYPE name counter\n\
             name{basename=\"basevalue\",labelname=\"val1\"} NaN 0\n\
             name{basename=\"basevalue\",labelname=\"val2\"} 0.23 1234567890\n"
        );
    }

    #[test]
    fn gauge_with_escaped_label_values_and_infinity() {
        let text = page(
            vec![
                view(
                    "gauge_name",
                    &[
                        ("name_1", "val with\nnew line"),
                        ("name_2", "val with \\backslash and \"quotes\""),
                    ],
                    f64::INFINITY,
                    0,
                ),
                view(
                    "gauge_name",
                    &[("name_1", "Björn"), ("name_2", "佖佥")],
                    3.14e42,
                    0,
                ),
            ],
            &[(
                "gauge_name",
                meta(MetricKind::Gauge, "gauge\ndoc\nstr\"ing"),
            )],
            false,
        );
        assert_eq!(
            text,
            "# HELP gauge_name gauge\\ndoc\\nstr\"ing\n# TYPE gauge_name gauge\n\
             gauge_name{name_1=\"Björn\",name_2=\"佖佥\"} 3.14e+42\n\
             gauge_name{name_1=\"val with\\nnew line\",name_2=\"val with \\\\backslash and \\\"quotes\\\"\"} +Inf\n"
        );
    }

    #[test]
    fn untyped_with_negative_infinity_and_tiny_values() {
        let text = page(
            vec![
                view(
                    "untyped_name",
                    &[("name_1", "value 2")],
                    f64::NEG_INFINITY,
                    0,
                ),
                view("untyped_name", &[("name_1", "value 1")], -1.23e-45, 0),
            ],
            &[("untyped_name", meta(MetricKind::Unknown, "doc string"))],
            false,
        );
        assert_eq!(
            text,
            "# HELP untyped_name doc string\n# TYPE untyped_name untyped\n\
             untyped_name{name_1=\"value 1\"} -1.23e-45\n\
             untyped_name{name_1=\"value 2\"} -Inf\n"
        );
    }

    #[test]
    fn summary_family_groups_quantiles_sum_and_count() {
        let text = page(
            vec![
                view("summary_name_count", &[], 42.0, 0),
                view("summary_name", &[("quantile", "0.9")], 0.2342354, 0),
                view("summary_name_sum", &[], -3.4567, 0),
                view("summary_name", &[("quantile", "0.5")], -1.23, 0),
                view("summary_name", &[("quantile", "0.99")], 0.0, 0),
                view("summary_name_count", &[("name_1", "value 1")], 4711.0, 0),
                view(
                    "summary_name",
                    &[("name_1", "value 1"), ("quantile", "0.5")],
                    1.0,
                    0,
                ),
            ],
            &[(
                "summary_name",
                meta(MetricKind::Summary, "summary docstring"),
            )],
            false,
        );
        assert_eq!(
            text,
            "# HELP summary_name summary docstring\n# TYPE summary_name summary\n\
             summary_name{quantile=\"0.5\"} -1.23\n\
             summary_name{quantile=\"0.9\"} 0.2342354\n\
             summary_name{quantile=\"0.99\"} 0\n\
             summary_name_sum -3.4567\n\
             summary_name_count 42\n\
             summary_name{name_1=\"value 1\",quantile=\"0.5\"} 1\n\
             summary_name_count{name_1=\"value 1\"} 4711\n"
        );
    }

    #[test]
    fn histogram_family_orders_buckets_numerically() {
        let text = page(
            vec![
                view(
                    "request_duration_microseconds_bucket",
                    &[("le", "+Inf")],
                    2693.0,
                    0,
                ),
                view("request_duration_microseconds_count", &[], 2693.0, 0),
                view(
                    "request_duration_microseconds_bucket",
                    &[("le", "172.8")],
                    1524.0,
                    0,
                ),
                view("request_duration_microseconds_sum", &[], 1756047.3, 0),
                view(
                    "request_duration_microseconds_bucket",
                    &[("le", "100")],
                    123.0,
                    0,
                ),
                view(
                    "request_duration_microseconds_bucket",
                    &[("le", "120")],
                    412.0,
                    0,
                ),
            ],
            &[(
                "request_duration_microseconds",
                meta(MetricKind::Histogram, "The response latency."),
            )],
            false,
        );
        assert_eq!(
            text,
            "# HELP request_duration_microseconds The response latency.\n\
             # TYPE request_duration_microseconds histogram\n\
             request_duration_microseconds_bucket{le=\"100\"} 123\n\
             request_duration_microseconds_bucket{le=\"120\"} 412\n\
             request_duration_microseconds_bucket{le=\"172.8\"} 1524\n\
             request_duration_microseconds_bucket{le=\"+Inf\"} 2693\n\
             request_duration_microseconds_sum 1.7560473e+06\n\
             request_duration_microseconds_count 2693\n"
        );
    }

    #[test]
    fn empty_help_writes_no_help_line() {
        let text = page(
            vec![view("name", &[], -1.23e-45, 0)],
            &[("name", meta(MetricKind::Counter, ""))],
            false,
        );
        assert_eq!(text, "# TYPE name counter\nname -1.23e-45\n");
    }

    #[test]
    fn a_family_that_expfmt_reads_as_part_of_an_earlier_one_has_no_header() {
        let page = page(
            vec![
                view("x", &[("quantile", "0.5")], 1.0, 0),
                view("x_sum_bucket", &[("le", "+Inf")], 2.0, 0),
                view("x_count", &[], 3.0, 0),
            ],
            &[
                ("x", meta(MetricKind::Summary, "a summary")),
                ("x_sum", meta(MetricKind::Histogram, "a histogram")),
            ],
            false,
        );
        assert_eq!(
            page,
            "# HELP x a summary\n# TYPE x summary\nx{quantile=\"0.5\"} 1\nx_count 3\n\
             x_sum_bucket{le=\"+Inf\"} 2\n"
        );
    }

    #[test]
    fn a_family_after_the_same_name_in_an_untyped_summary_has_no_header() {
        let page = page(
            vec![
                view("x_sum", &[("quantile", "not a float")], 1.0, 0),
                view("x_sum_bucket", &[("le", "+Inf")], 2.0, 0),
            ],
            &[
                ("x", meta(MetricKind::Summary, "")),
                ("x_sum", meta(MetricKind::Histogram, "a histogram")),
            ],
            false,
        );
        assert_eq!(
            page,
            "# TYPE x untyped\nx_sum{quantile=\"not a float\"} 1\nx_sum_bucket{le=\"+Inf\"} 2\n"
        );
    }

    #[test]
    fn series_of_one_schema_are_in_label_value_order() {
        let schema = Arc::new(Schema::new("m", &["a", "b"]));
        let tuple = |a: &str, b: &str| Tuple::new(0, [Atom::new(a), Atom::new(b)].into_iter());
        // Tuples shared between families, as a container's are, and one family apart.
        let tuples = [
            tuple("y", "1"),
            tuple("x", "2"),
            tuple("x", "10"),
            tuple("", "z"),
        ];
        let other = Arc::new(Schema::new("n", &["a", "b"]));
        let mut series = Vec::new();
        for schema in [&schema, &other] {
            for values in tuples.iter().rev() {
                series.push(SeriesView {
                    schema: Arc::clone(schema),
                    values: values.clone(),
                    value: 1.0,
                    timestamp_ms: 0,
                });
            }
        }
        // A family with few series among many tuples (2 of 10) is sorted, not placed.
        let lone = Arc::new(Schema::new("o", &["a", "b"]));
        let many = Arc::new(Schema::new("p", &["a", "b"]));
        for (schema, values) in [
            (&lone, tuple("w", "9")),
            (&lone, tuple("a", "0")),
            (&many, tuple("p", "4")),
            (&many, tuple("p", "3")),
            (&many, tuple("p", "2")),
            (&many, tuple("p", "1")),
        ] {
            series.push(SeriesView {
                schema: Arc::clone(schema),
                values,
                value: 1.0,
                timestamp_ms: 0,
            });
        }
        let page = page(series, &[], false);
        let lines: Vec<&str> = page.lines().filter(|l| !l.starts_with('#')).collect();
        let line = |name: &str, (a, b): (&str, &str)| format!("{name}{{a=\"{a}\",b=\"{b}\"}} 1");
        let expected = |name: &str| {
            [("", "z"), ("x", "10"), ("x", "2"), ("y", "1")].map(|pair| line(name, pair))
        };
        let lone_lines = [line("o", ("a", "0")), line("o", ("w", "9"))];
        let many_lines = ["1", "2", "3", "4"].map(|b| line("p", ("p", b)));
        assert_eq!(
            lines,
            [&expected("m")[..], &expected("n"), &lone_lines, &many_lines].concat()
        );
    }

    #[test]
    fn a_family_longer_than_a_gathered_batch_keeps_each_series_with_its_labels_and_value() {
        // Two families, each over two batches long: a label block or value taken from the
        // wrong place in a batch shows as a mismatched line.
        let count = 2 * GATHERED + 5;
        let series: Vec<SeriesView> = ["a", "b"]
            .iter()
            .flat_map(|name| {
                (0..count).map(move |i| view(name, &[("i", &format!("{i:03}"))], i as f64, 0))
            })
            .collect();
        let text = page(series, &[], false);
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        let expected: Vec<String> = ["a", "b"]
            .iter()
            .flat_map(|name| (0..count).map(move |i| format!("{name}{{i=\"{i:03}\"}} {i}")))
            .collect();
        assert_eq!(samples, expected);
    }

    fn snapshot_of(series: Vec<SeriesView>) -> Snapshot {
        Snapshot {
            series,
            extras: Vec::new(),
            families: HashMap::new(),
        }
    }

    fn render_with(snapshot: &Snapshot, block_bytes: &mut Vec<u8>) -> Vec<u8> {
        render_to(snapshot, false, block_bytes, Vec::new())
            .unwrap()
            .0
    }

    #[test]
    fn label_block_bytes_are_left_empty_with_their_room_and_serve_the_next_page_alike() {
        let series = (0..50)
            .map(|i| view("m", &[("pod", &format!("pod-{i:02}"))], 1.0, 0))
            .collect();
        let snapshot = snapshot_of(series);
        let mut block_bytes = Vec::new();
        let first = render_with(&snapshot, &mut block_bytes);
        assert!(block_bytes.is_empty());
        assert!(block_bytes.capacity() >= 50 * r#"{pod="pod-00"}"#.len());
        let room = block_bytes.as_ptr();
        assert_eq!(render_with(&snapshot, &mut block_bytes), first);
        assert_eq!(block_bytes.as_ptr(), room, "the same bytes, not new ones");
        assert_eq!(first, render(&snapshot, false));
    }

    #[test]
    fn label_block_bytes_are_let_go_when_a_page_needs_less_than_half_of_them() {
        let snapshot = snapshot_of(vec![view("m", &[("a", "b")], 1.0, 0)]);
        let mut block_bytes = Vec::with_capacity(1 << 20);
        render_with(&snapshot, &mut block_bytes);
        assert_eq!(block_bytes.capacity(), 0);
    }

    #[test]
    fn a_family_of_one_schema_gets_its_member_list_at_its_size() {
        let store = crate::store::Store::new(1000);
        for i in 0..100 {
            let job = format!("job-{i:03}");
            let sample = crate::store::Sample {
                value: 1.0,
                timestamp_ms: 1,
            };
            store.apply_text(("up", &[("job", &job)]), sample, 0);
        }
        let snapshot = store.snapshot();
        let naming = Naming::new(&snapshot, Escaping::Underscores);
        let groups = group_families(&snapshot, &naming).groups;
        let members = &groups[0].members;
        assert_eq!(members.len(), 100);
        // Grown by doubling from nothing, the list would have room for 128.
        assert!(members.capacity() < 110, "room for {}", members.capacity());
    }

    #[test]
    fn one_value_tuple_under_two_lists_of_label_names_makes_two_blocks() {
        let values = Tuple::new(0, [Atom::new("v")].into_iter());
        let series = [("m", "a"), ("n", "b")]
            .iter()
            .enumerate()
            .map(|(i, (name, label))| SeriesView {
                schema: Arc::new(Schema::new(name, &[label])),
                values: values.clone(),
                value: i as f64,
                timestamp_ms: 0,
            })
            .collect();
        let text = page(series, &[], false);
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(samples, ["m{a=\"v\"} 0", "n{b=\"v\"} 1"]);
    }

    #[test]
    fn series_sharing_a_tuple_are_not_placed_over_each_other() {
        let schema = Arc::new(Schema::new("m", &["a"]));
        let values = Tuple::new(0, [Atom::new("v")].into_iter());
        let series: Vec<SeriesView> = (0..2)
            .map(|i| SeriesView {
                schema: Arc::clone(&schema),
                values: values.clone(),
                value: f64::from(i),
                timestamp_ms: 0,
            })
            .collect();
        let ranks = block_ranks(&snapshot_of(series.clone()));
        let mut members: Vec<&SeriesView> = series.iter().collect();
        assert!(!place_by_rank(&mut members, &ranks, &mut Vec::new()));
        assert_eq!(members.len(), 2, "left as they were");
    }

    #[test]
    fn families_without_metadata_are_untyped_with_default_help_and_sorted() {
        let text = page(
            vec![view("b_metric", &[], 2.0, 0), view("a_metric", &[], 1.0, 0)],
            &[],
            false,
        );
        assert_eq!(
            text,
            format!(
                "# HELP a_metric {DEFAULT_HELP}\n# TYPE a_metric untyped\na_metric 1\n\
                 # HELP b_metric {DEFAULT_HELP}\n# TYPE b_metric untyped\nb_metric 2\n"
            )
        );
    }

    #[test]
    fn a_member_that_does_not_fit_the_type_makes_the_family_untyped() {
        let text = page(
            vec![
                view("h", &[], 1.0, 0),
                view("h_bucket", &[("le", "+Inf")], 1.0, 0),
            ],
            &[("h", meta(MetricKind::Histogram, "x"))],
            false,
        );
        assert_eq!(text.matches("# TYPE").count(), 1, "{text}");
        assert!(text.contains("# TYPE h untyped\n"), "{text}");
    }
}
