//! Remote write 2.0 (`io.prometheus.write.v2.Request`) against the running binary: requests
//! built from the 2.0 messages as a sender builds them, and the written-counts headers every
//! answer carries.

use k8s_exporter::write::proto::v2;
use prost::Message;
use serde_json::json;

use crate::support::{
    now_ms, sample_value, snappy, upstream, Exporter, HttpResponse, REMOTE_WRITE_V2_HEADERS,
};

fn post_v2(exporter: &Exporter, body: &[u8]) -> HttpResponse {
    exporter.request("POST", "/write", &REMOTE_WRITE_V2_HEADERS, &snappy(body))
}

fn request(symbols: &[&str], timeseries: Vec<v2::TimeSeries>) -> Vec<u8> {
    v2::Request {
        symbols: symbols
            .iter()
            .map(|s| s.as_bytes().to_vec().into())
            .collect(),
        timeseries,
    }
    .encode_to_vec()
}

fn series(labels_refs: Vec<u32>, value: f64, timestamp: i64) -> v2::TimeSeries {
    v2::TimeSeries {
        labels_refs,
        samples: vec![v2::Sample {
            value,
            timestamp,
            start_timestamp: 0,
        }],
        ..Default::default()
    }
}

/// The three written counts of a 2.0 answer: samples, histograms, exemplars.
fn written(response: &HttpResponse) -> [Option<u64>; 3] {
    ["Samples", "Histograms", "Exemplars"].map(|what| {
        response
            .header(&format!("X-Prometheus-Remote-Write-{what}-Written"))
            .map(|count| count.parse().unwrap())
    })
}

#[test]
fn a_v2_request_is_stored_with_its_metadata_and_says_what_was_written() {
    let exporter = Exporter::start(&[]);
    let now = now_ms();
    let symbols = [
        "",
        "__name__",
        "requests_total",
        "job",
        "api",
        "Requests served.",
        "web",
    ];
    let mut counter = series(vec![1, 2, 3, 4], 7.0, now);
    counter.metadata = Some(v2::Metadata {
        r#type: 1,
        help_ref: 5,
        unit_ref: 0,
    });
    counter.exemplars = vec![v2::Exemplar {
        labels_refs: vec![3, 4],
        value: 1.0,
        timestamp: now,
    }];
    let mut latency = series(vec![1, 7], 0.0, now);
    latency.samples.clear();
    latency.histograms = vec![v2::Histogram {
        count: Some(v2::histogram::Count::CountInt(2)),
        sum: 0.3,
        zero_count: Some(v2::histogram::ZeroCount::ZeroCountInt(2)),
        timestamp: now,
        ..Default::default()
    }];
    let mut symbols = symbols.to_vec();
    symbols.push("latency_seconds");
    let response = post_v2(
        &exporter,
        &request(
            &symbols,
            vec![counter, series(vec![1, 2, 3, 6], 9.0, now), latency],
        ),
    );
    assert_eq!(response.status, 204, "{}", response.text());
    assert_eq!(written(&response), [Some(2), Some(1), Some(1)]);

    let page = exporter.metrics();
    assert!(
        page.contains("# HELP requests_total Requests served.\n"),
        "{page}"
    );
    assert!(page.contains("# TYPE requests_total counter\n"), "{page}");
    assert_eq!(
        sample_value(&page, "requests_total{job=\"api\"}"),
        Some(7.0)
    );
    assert_eq!(
        sample_value(&page, "requests_total{job=\"web\"}"),
        Some(9.0)
    );
    assert_eq!(
        sample_value(&page, "latency_seconds_bucket{le=\"0\"}"),
        Some(2.0)
    );
    assert_eq!(sample_value(&page, "latency_seconds_count"), Some(2.0));
}

#[test]
fn unresolvable_v2_references_are_400_and_cost_only_their_series() {
    let exporter = Exporter::start(&[]);
    let now = now_ms();
    let symbols = ["", "__name__", "up", "job", "a"];
    let response = post_v2(
        &exporter,
        &request(
            &symbols,
            vec![
                series(vec![1, 2, 3], 1.0, now),
                series(vec![1, 2, 3, 40], 1.0, now),
                series(vec![1, 2, 3, 4], 1.0, now),
            ],
        ),
    );
    assert_eq!(response.status, 400);
    let reason = response.text();
    assert_eq!(reason.lines().count(), 1, "{reason}");
    assert!(reason.contains("invalid_reference=2"), "{reason}");
    assert_eq!(written(&response), [Some(1), Some(0), Some(0)]);
    assert_eq!(
        sample_value(&exporter.metrics(), "up{job=\"a\"}"),
        Some(1.0)
    );
    assert_eq!(
        exporter.exporter_value("k8s_exporter_samples_dropped_total{reason=\"invalid_reference\"}"),
        Some(2.0)
    );

    // A first symbol that is not empty: 400, yet what could be read is stored.
    let response = post_v2(
        &exporter,
        &request(
            &["x", "__name__", "up", "job", "b"],
            vec![series(vec![1, 2, 3, 4], 2.0, now)],
        ),
    );
    assert_eq!(response.status, 400);
    assert!(
        response.text().contains("first symbol"),
        "{}",
        response.text()
    );
    assert_eq!(written(&response), [Some(1), Some(0), Some(0)]);
    assert_eq!(
        sample_value(&exporter.metrics(), "up{job=\"b\"}"),
        Some(2.0)
    );

    // Not protobuf at all: 400, nothing written, and what was stored stays.
    let response = post_v2(&exporter, b"\xff\xff\xff");
    assert_eq!(response.status, 400);
    assert_eq!(written(&response), [Some(0), Some(0), Some(0)]);
    assert_eq!(
        sample_value(&exporter.metrics(), "up{job=\"a\"}"),
        Some(1.0)
    );
}

#[test]
fn unknown_protos_are_415_and_v1_answers_carry_no_v2_headers() {
    let exporter = Exporter::start(&[]);
    let response = exporter.request(
        "POST",
        "/write",
        &[
            (
                "Content-Type",
                "application/x-protobuf;proto=io.prometheus.write.v3.Request",
            ),
            ("Content-Encoding", "snappy"),
        ],
        &snappy(b""),
    );
    assert_eq!(response.status, 415);
    assert!(response.text().contains("io.prometheus.write.v2.Request"));
    let response = exporter.write(&crate::support::write_request(vec![]));
    assert_eq!(response.status, 204);
    assert_eq!(written(&response), [None, None, None]);
}

/// What 2.0 carries beyond values, shown where the formats have room for it, sent as the
/// published `io.prometheus.write.v2` messages: start timestamps (`Sample.start_timestamp`,
/// `Histogram.start_timestamp`, and the drafts' `TimeSeries` field 6) as OpenMetrics `_created`
/// and protobuf `start_timestamp` for counters, histograms and summaries, exemplars on the
/// counter line and in the native histogram's bucket each falls in.
#[test]
fn start_timestamps_and_exemplars_reach_openmetrics_and_protobuf() {
    let exporter = Exporter::start(&[]);
    let now = now_ms();
    // 2023-11-14T22:13:20.500Z
    let start = 1_700_000_000_500i64;
    let symbols = [
        "",
        "__name__",
        "jobs_total",
        "trace_id",
        "abc123",
        "wait_seconds",
        "def456",
        "rpc_seconds_bucket",
        "rpc_seconds_sum",
        "rpc_seconds_count",
        "le",
        "0.5",
        "+Inf",
        "gc_seconds",
        "gc_seconds_sum",
        "gc_seconds_count",
        "quantile",
        "lag_seconds_total",
    ];
    let sample = |value: f64| json!([{"value": value, "timestamp": now.to_string(), "startTimestamp": start.to_string()}]);
    let typed = |kind: &str| json!({"type": kind});
    let request = upstream::write_request_v2(json!({
        "symbols": symbols,
        "timeseries": [
            {
                "labelsRefs": [1, 2], "samples": sample(17.0),
                "metadata": typed("METRIC_TYPE_COUNTER"),
                "exemplars": [{"labelsRefs": [3, 4], "value": 1.5,
                               "timestamp": (now - 1000).to_string()}]
            },
            {
                "labelsRefs": [1, 5],
                // Schema 0: buckets (0.5, 1] and (1, 2] holding 1 and 2.
                "histograms": [{
                    "countInt": "3", "sum": 3.5, "schema": 0, "zeroThreshold": 1e-9,
                    "zeroCountInt": "0", "positiveSpans": [{"offset": 0, "length": 2}],
                    "positiveDeltas": ["1", "1"], "timestamp": now.to_string(),
                    "startTimestamp": start.to_string()
                }],
                "exemplars": [{"labelsRefs": [3, 6], "value": 1.25,
                               "timestamp": (now - 500).to_string()}]
            },
            {"labelsRefs": [1, 7, 10, 11], "samples": sample(1.0),
             "metadata": typed("METRIC_TYPE_HISTOGRAM")},
            {"labelsRefs": [1, 7, 10, 12], "samples": sample(4.0)},
            {"labelsRefs": [1, 8], "samples": sample(2.5)},
            {"labelsRefs": [1, 9], "samples": sample(4.0)},
            {"labelsRefs": [1, 13, 16, 11], "samples": sample(0.02),
             "metadata": typed("METRIC_TYPE_SUMMARY")},
            {"labelsRefs": [1, 14], "samples": sample(0.5)},
            {"labelsRefs": [1, 15], "samples": sample(20.0)},
        ]
    }));
    let response = post_v2(&exporter, &request);
    assert_eq!(response.status, 204, "{}", response.text());
    // A sender of the drafts puts the start in the series (field 6, reserved since).
    let mut draft = self::request(&["", "__name__", "lag_seconds_total"], Vec::new());
    let mut lag = series(vec![1, 2], 3.0, now);
    lag.metadata = Some(v2::Metadata {
        r#type: 1,
        ..Default::default()
    });
    draft.extend(k8s_exporter::write::proto::draft_v2_series(&lag, start));
    assert_eq!(post_v2(&exporter, &draft).status, 204);

    let accept = [("Accept", "application/openmetrics-text;version=1.0.0")];
    let page = exporter.request("GET", "/metrics", &accept, &[]).text();
    let seconds = |ms: i64| format!("{}.{:03}", ms / 1000, ms % 1000);
    let created = seconds(start);
    for line in [
        "# TYPE jobs counter\n".to_owned(),
        format!(
            "jobs_total 17 # {{trace_id=\"abc123\"}} 1.5 {}\n",
            seconds(now - 1000)
        ),
        format!("jobs_created {created}\n"),
        "wait_seconds_bucket{le=\"1\"} 1\n".to_owned(),
        format!(
            "wait_seconds_bucket{{le=\"2\"}} 3 # {{trace_id=\"def456\"}} 1.25 {}\n",
            seconds(now - 500)
        ),
        format!("wait_seconds_count 3\nwait_seconds_created {created}\n"),
        format!("rpc_seconds_count 4\nrpc_seconds_created {created}\n"),
        format!("gc_seconds_count 20\ngc_seconds_created {created}\n"),
        format!("lag_seconds_created {created}\n"),
    ] {
        assert!(page.contains(&line), "{line} in\n{page}");
    }
    let parsed = crate::support::python_parse_with(&page, &["--openmetrics"]);
    assert!(
        parsed.contains("S\tjobs_total\t{}\t17\tE\t{\"trace_id\": \"abc123\"}\t1.5"),
        "{parsed}"
    );
    for family in [
        "jobs",
        "wait_seconds",
        "rpc_seconds",
        "gc_seconds",
        "lag_seconds",
    ] {
        let line = format!("S\t{family}_created\t{{}}\t{}", start as f64 / 1000.0);
        assert!(parsed.contains(&line), "{line} in {parsed}");
    }

    let accept = [(
        "Accept",
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
    )];
    let body = exporter.request("GET", "/metrics", &accept, &[]).body;
    let families = upstream::decode_protobuf_page(&body);
    let family = |name: &str| {
        families
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {families:#?}"))
    };
    let jobs = &family("jobs_total")["metric"][0]["counter"];
    assert_eq!(jobs["exemplar"]["value"], 1.5);
    assert_eq!(jobs["exemplar"]["label"][0]["value"], "abc123");
    let histogram = &family("wait_seconds")["metric"][0]["histogram"];
    assert_eq!(histogram["schema"], 0);
    assert_eq!(histogram["positiveDelta"], json!(["1", "1"]));
    assert_eq!(histogram["sampleCount"], "3");
    let started = "2023-11-14T22:13:20.500Z";
    for (name, kind) in [
        ("jobs_total", "counter"),
        ("wait_seconds", "histogram"),
        ("rpc_seconds", "histogram"),
        ("gc_seconds", "summary"),
        ("lag_seconds_total", "counter"),
    ] {
        let metric = &family(name)["metric"][0][kind];
        assert_eq!(metric["startTimestamp"], started, "{name}: {metric}");
    }
}
