//! Hostile and broken writes: each gets the right answer and a count, and leaves every series
//! already stored as it was; what is accepted still renders a page Prometheus can parse.

use k8s_exporter::write::proto::{Label, TimeSeries, WriteRequest};
use prost::Message;

use crate::support::{
    metadata, now_ms, promtool_check, python_parse, sample_value, series, snappy, write_request,
    Exporter, HttpResponse, REMOTE_WRITE_HEADERS,
};

const SENTINEL: &str = "sentinel{pod=\"p\"}";

/// An exporter holding one known series that no hostile write may touch.
fn exporter_with_sentinel(flags: &[&str]) -> Exporter {
    let exporter = Exporter::start(flags);
    let request = write_request(vec![series(
        &[("__name__", "sentinel"), ("pod", "p")],
        &[(42.0, now_ms())],
    )]);
    assert_eq!(exporter.write(&request).status, 204);
    exporter
}

fn post(exporter: &Exporter, body: &[u8]) -> HttpResponse {
    exporter.request("POST", "/write", &REMOTE_WRITE_HEADERS, body)
}

/// The answer has `status` and a one-line reason, the sentinel is intact, and Prometheus's
/// own parser reads the page.
fn assert_refused_cleanly(exporter: &Exporter, response: &HttpResponse, status: u16) {
    let page = assert_answered(exporter, response, status);
    let (code, report) = promtool_check(&page);
    assert!(code == Some(0) || code == Some(3), "promtool: {report}");
}

/// The answer has `status` and a one-line reason, and the sentinel is intact; returns the page.
fn assert_answered(exporter: &Exporter, response: &HttpResponse, status: u16) -> String {
    let text = response.text();
    assert_eq!(response.status, status, "{text}");
    if status != 204 {
        assert!(
            text.ends_with('\n') && text.trim_end().lines().count() == 1,
            "{text:?}"
        );
    }
    let page = exporter.metrics();
    let sentinel = format!("{SENTINEL} 42");
    assert!(
        page.lines()
            .any(|l| l == sentinel || l.starts_with(&format!("{sentinel} "))),
        "the sentinel series changed or vanished"
    );
    page
}

fn dropped(exporter: &Exporter, reason: &str) -> Option<f64> {
    exporter.exporter_value(&format!(
        "k8s_exporter_samples_dropped_total{{reason=\"{reason}\"}}"
    ))
}

fn raw_series(labels: Vec<(Vec<u8>, Vec<u8>)>, value: f64) -> TimeSeries {
    let mut series = series(&[], &[(value, now_ms())]);
    series.labels = labels
        .into_iter()
        .map(|(name, value)| Label {
            name: name.into(),
            value: value.into(),
        })
        .collect();
    series
}

#[test]
fn broken_snappy_and_protobuf_are_400_and_counted() {
    let exporter = exporter_with_sentinel(&[]);
    let valid =
        snappy(&write_request(vec![series(&[("__name__", "x")], &[(1.0, 1)])]).encode_to_vec());
    let protobuf = write_request(vec![series(&[("__name__", "x")], &[(1.0, 1)])]).encode_to_vec();
    let bodies = [
        valid[..valid.len() / 2].to_vec(),
        snappy(&protobuf[..protobuf.len() - 3]),
        snappy(&[0xff; 64]),
        Vec::new(),
    ];
    for body in &bodies {
        let response = post(&exporter, body);
        assert_refused_cleanly(&exporter, &response, 400);
    }
    assert_eq!(
        exporter.exporter_value("k8s_exporter_write_requests_total{code=\"400\"}"),
        Some(bodies.len() as f64)
    );
    assert_eq!(sample_value(&exporter.metrics(), "x"), None);
}

#[test]
fn invalid_utf8_names_and_values_cost_only_their_series() {
    let exporter = exporter_with_sentinel(&[]);
    let request = WriteRequest {
        timeseries: vec![
            raw_series(vec![(b"__name__".to_vec(), b"bad\xff".to_vec())], 1.0),
            raw_series(
                vec![
                    (b"__name__".to_vec(), b"m".to_vec()),
                    (b"pod".to_vec(), b"\xc3\x28".to_vec()),
                ],
                1.0,
            ),
            raw_series(
                vec![
                    (b"__name__".to_vec(), b"m".to_vec()),
                    (b"p\xffd".to_vec(), b"x".to_vec()),
                ],
                1.0,
            ),
            raw_series(vec![(b"__name__".to_vec(), b"fine".to_vec())], 1.0),
        ],
        metadata: vec![],
    };
    let response = exporter.write(&request);
    assert_refused_cleanly(&exporter, &response, 400);
    assert!(
        response.text().contains("invalid_utf8=3"),
        "{}",
        response.text()
    );
    assert_eq!(dropped(&exporter, "invalid_utf8"), Some(3.0));
    assert_eq!(sample_value(&exporter.metrics(), "fine"), Some(1.0));
}

#[test]
fn a_series_with_no_labels_is_refused() {
    let exporter = exporter_with_sentinel(&[]);
    let response = exporter.write(&write_request(vec![series(&[], &[(1.0, now_ms())])]));
    assert_refused_cleanly(&exporter, &response, 400);
    assert_eq!(dropped(&exporter, "missing_metric_name"), Some(1.0));
}

#[test]
fn special_values_and_old_timestamps_are_stored_as_sent() {
    let exporter = exporter_with_sentinel(&["--web.expose-timestamps"]);
    let request = write_request(vec![
        series(&[("__name__", "nan")], &[(f64::NAN, 1_000)]),
        series(&[("__name__", "inf")], &[(f64::INFINITY, 0)]),
        series(&[("__name__", "ninf")], &[(f64::NEG_INFINITY, -5_000)]),
        series(&[("__name__", "tiny")], &[(5e-324, i64::MIN)]),
    ]);
    let response = exporter.write(&request);
    assert_refused_cleanly(&exporter, &response, 204);
    let page = exporter.metrics();
    for line in [
        "nan NaN 1000\n",
        "inf +Inf 0\n",
        "ninf -Inf -5000\n",
        "tiny 5e-324 -9223372036854775808\n",
    ] {
        assert!(page.contains(line), "{line:?} missing from\n{page}");
    }
}

#[test]
fn a_megabyte_label_value_and_twenty_thousand_labels_are_stored_and_rendered() {
    let exporter = exporter_with_sentinel(&[]);
    let huge_value = "v".repeat(1 << 20);
    let many: Vec<(String, String)> = (0..20_000)
        .map(|i| (format!("l{i:05}"), i.to_string()))
        .collect();
    let mut wide: Vec<(&str, &str)> = vec![("__name__", "wide")];
    wide.extend(many.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let request = write_request(vec![
        series(
            &[("__name__", "long"), ("v", &huge_value)],
            &[(1.0, now_ms())],
        ),
        series(&wide, &[(2.0, now_ms())]),
    ]);
    let response = exporter.write(&request);
    // promtool takes minutes over a line of 20,000 labels (its check is quadratic in them), so
    // this page is read back by the Python parser.
    let page = assert_answered(&exporter, &response, 204);
    let parsed = python_parse(&page);
    let wide_sample = parsed.lines().find(|l| l.starts_with("S\twide\t")).unwrap();
    assert_eq!(wide_sample.matches("\":\"").count(), 20_000);
    assert!(parsed.contains(&format!("S\tlong\t{{\"v\":\"{huge_value}\"}}\t1\n")));
    assert!(page.contains(&format!("long{{v=\"{huge_value}\"}} 1\n")));
    let wide_line = page.lines().find(|l| l.starts_with("wide{")).unwrap();
    assert!(wide_line.starts_with("wide{l00000=\"0\",l00001=\"1\","));
    assert!(wide_line.ends_with(",l19999=\"19999\"} 2"));
}

#[test]
fn a_metadata_only_request_with_huge_help_is_stored_escaped() {
    let exporter = exporter_with_sentinel(&[]);
    let help = "line\\one\n".repeat(200_000);
    let request = WriteRequest {
        timeseries: vec![],
        metadata: vec![metadata(2, "sentinel", &help)],
    };
    let response = exporter.write(&request);
    assert_refused_cleanly(&exporter, &response, 204);
    let page = exporter.metrics();
    let expected = format!(
        "# HELP sentinel {}\n# TYPE sentinel gauge\n",
        "line\\\\one\\n".repeat(200_000)
    );
    assert!(
        page.contains(&expected),
        "help stored escaped, typed as sent"
    );
}

#[test]
fn a_million_tiny_series_fill_the_limit_exactly_and_the_rest_is_refused() {
    let exporter = exporter_with_sentinel(&[
        "--series.max=1000",
        "--write.max-bytes=64MiB",
        "--write.max-decoded-bytes=64MiB",
    ]);
    let timestamp = now_ms();
    let request = write_request(
        (0..1_000_000)
            .map(|i| {
                series(
                    &[("__name__", "t"), ("i", &i.to_string())],
                    &[(1.0, timestamp)],
                )
            })
            .collect(),
    );
    let response = exporter.write(&request);
    assert_refused_cleanly(&exporter, &response, 400);
    assert!(
        response.text().contains("series_limit=999001"),
        "{}",
        response.text()
    );
    assert_eq!(exporter.exporter_value("k8s_exporter_series"), Some(1000.0));
    assert_eq!(dropped(&exporter, "series_limit"), Some(999_001.0));
    let page = exporter.metrics();
    assert_eq!(page.lines().filter(|l| l.starts_with("t{")).count(), 999);
}

#[test]
fn hostile_native_histograms_are_400_each_counted_and_the_rest_stored() {
    use k8s_exporter::write::proto::{histogram, BucketSpan, Histogram};
    let exporter = exporter_with_sentinel(&["--write.native-histogram-max-buckets=64"]);
    let now = now_ms();
    let good = || Histogram {
        count: Some(histogram::Count::CountInt(3)),
        sum: 2.0,
        positive_spans: vec![BucketSpan {
            offset: 0,
            length: 2,
        }],
        positive_deltas: vec![1, 1],
        timestamp: now,
        ..Default::default()
    };
    let hostile = [
        (
            "negative",
            Histogram {
                positive_deltas: vec![1, -3],
                ..good()
            },
            "invalid_native_histogram",
        ),
        (
            "spans",
            Histogram {
                positive_deltas: vec![1],
                ..good()
            },
            "invalid_native_histogram",
        ),
        (
            "nan",
            Histogram {
                count: Some(histogram::Count::CountFloat(f64::NAN)),
                positive_deltas: vec![],
                positive_counts: vec![1.0, 2.0],
                ..good()
            },
            "invalid_native_histogram",
        ),
        (
            "schema",
            Histogram {
                schema: 12,
                ..good()
            },
            "invalid_native_histogram",
        ),
        (
            "wide",
            Histogram {
                count: Some(histogram::Count::CountInt(0)),
                positive_spans: vec![BucketSpan {
                    offset: 0,
                    length: 65,
                }],
                positive_deltas: vec![0; 65],
                ..good()
            },
            "native_histogram_bucket_limit",
        ),
    ];
    for (name, bad, reason) in hostile {
        let before = dropped(&exporter, reason).unwrap_or(0.0);
        let mut refused = series(&[("__name__", name)], &[]);
        refused.histograms = vec![bad];
        let mut kept = series(&[("__name__", "kept_seconds")], &[]);
        kept.histograms = vec![good()];
        let body = snappy(&write_request(vec![refused, kept]).encode_to_vec());
        let response = post(&exporter, &body);
        let page = assert_answered(&exporter, &response, 400);
        assert!(
            response.text().contains(&format!("{reason}=1")),
            "{name}: {}",
            response.text()
        );
        assert_eq!(dropped(&exporter, reason), Some(before + 1.0), "{name}");
        assert_eq!(
            sample_value(&page, "kept_seconds_count"),
            Some(3.0),
            "{name}"
        );
        assert!(
            !page.contains(&format!("{name}_")),
            "{name} is not shown: {page}"
        );
        let (code, report) = promtool_check(&page);
        assert!(code == Some(0) || code == Some(3), "promtool: {report}");
    }
}
