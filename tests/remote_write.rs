//! Every row of docs/remote-write.md's table, against the running binary.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use k8s_exporter::write::proto::WriteRequest;
use prost::Message;

use crate::support::{
    metadata, now_ms, parse_response, promtool_check, python_parse, sample_value, series, snappy,
    write_request, Exporter, REMOTE_WRITE_HEADERS,
};

const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

fn up(job: &str, value: f64, timestamp: i64) -> WriteRequest {
    write_request(vec![series(
        &[("__name__", "up"), ("job", job)],
        &[(value, timestamp)],
    )])
}

fn assert_one_line(body: &str) {
    assert!(
        body.ends_with('\n') && body.trim_end().lines().count() == 1,
        "not one line: {body:?}"
    );
}

#[test]
fn valid_write_is_stored_and_answered_204_on_both_paths() {
    let exporter = Exporter::start(&[]);
    let now = now_ms();
    assert_eq!(exporter.write(&up("a", 1.0, now)).status, 204);
    let body = snappy(&up("b", 2.0, now).encode_to_vec());
    let response = exporter.request("POST", "/api/v1/write", &REMOTE_WRITE_HEADERS, &body);
    assert_eq!(response.status, 204);
    let page = exporter.metrics();
    assert_eq!(sample_value(&page, "up{job=\"a\"}"), Some(1.0));
    assert_eq!(sample_value(&page, "up{job=\"b\"}"), Some(2.0));
    assert_eq!(
        exporter.exporter_value("k8s_exporter_write_requests_total{code=\"204\"}"),
        Some(2.0)
    );
    assert_eq!(
        exporter.exporter_value("k8s_exporter_samples_received_total"),
        Some(2.0)
    );
}

#[test]
fn missing_content_encoding_is_read_as_snappy() {
    let exporter = Exporter::start(&[]);
    let body = snappy(&up("a", 1.0, now_ms()).encode_to_vec());
    let response = exporter.request(
        "POST",
        "/write",
        &[("Content-Type", "application/x-protobuf")],
        &body,
    );
    assert_eq!(response.status, 204);
}

#[test]
fn other_encodings_and_content_types_are_415() {
    let exporter = Exporter::start(&[]);
    let body = snappy(&up("a", 1.0, now_ms()).encode_to_vec());
    for headers in [
        [
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "gzip"),
        ],
        [
            ("Content-Type", "application/json"),
            ("Content-Encoding", "snappy"),
        ],
        [
            (
                "Content-Type",
                "application/x-protobuf;proto=io.prometheus.write.v3.Request",
            ),
            ("Content-Encoding", "snappy"),
        ],
    ] {
        let response = exporter.request("POST", "/write", &headers, &body);
        assert_eq!(response.status, 415, "{headers:?}");
        assert_one_line(&response.text());
    }
    assert_eq!(
        exporter.exporter_value("k8s_exporter_write_requests_total{code=\"415\"}"),
        Some(3.0)
    );
    assert!(!exporter.metrics().contains("up{"), "nothing stored");
}

#[test]
fn body_over_the_cap_is_413_whether_declared_or_chunked() {
    let exporter = Exporter::start(&["--write.max-bytes=1KiB"]);
    let big = vec![0u8; 4096];
    let response = exporter.request("POST", "/write", &REMOTE_WRITE_HEADERS, &big);
    assert_eq!(response.status, 413);
    assert_one_line(&response.text());

    // Chunked: no length is declared, so the cap is found while reading.
    let mut stream = TcpStream::connect(&exporter.address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = b"POST /write HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-protobuf\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..4 {
        request.extend_from_slice(b"400\r\n");
        request.extend_from_slice(&[0u8; 1024]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    stream.write_all(&request).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    assert_eq!(parse_response(&raw).status, 413);
    assert_eq!(
        exporter.exporter_value("k8s_exporter_write_requests_total{code=\"413\"}"),
        Some(2.0)
    );
}

#[test]
fn an_absurd_declared_length_is_refused_and_the_server_lives_on() {
    let exporter = Exporter::start(&[]);
    let mut stream = TcpStream::connect(&exporter.address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    stream
        .write_all(b"POST /write HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000000\r\n\r\nabc")
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let response = parse_response(&raw);
    assert_eq!(response.status, 413);
    assert!(
        response.text().contains("exceeds --write.max-bytes"),
        "{}",
        response.text()
    );
    assert_eq!(exporter.get("/healthz").status, 200);
}

#[test]
fn snappy_header_announcing_too_much_is_400_before_decompressing() {
    let exporter = Exporter::start(&["--write.max-decoded-bytes=1KiB"]);
    let body = snappy(&vec![0u8; 4096]);
    let response = exporter.request("POST", "/write", &REMOTE_WRITE_HEADERS, &body);
    assert_eq!(response.status, 400);
    assert!(
        response.text().contains("--write.max-decoded-bytes"),
        "{}",
        response.text()
    );
}

#[test]
fn undecodable_snappy_or_protobuf_is_400_and_keeps_what_is_stored() {
    let exporter = Exporter::start(&[]);
    assert_eq!(exporter.write(&up("kept", 7.0, now_ms())).status, 204);
    for body in [
        b"definitely not snappy".to_vec(),
        snappy(&[0x0a, 0xff, 0xff, 0x01]),
        snappy(b"\x0a\x05\x0a\x03"),
    ] {
        let response = exporter.request("POST", "/write", &REMOTE_WRITE_HEADERS, &body);
        assert_eq!(response.status, 400, "{body:?}");
        assert_one_line(&response.text());
    }
    assert_eq!(
        sample_value(&exporter.metrics(), "up{job=\"kept\"}"),
        Some(7.0)
    );
    assert_eq!(
        exporter.exporter_value("k8s_exporter_write_requests_total{code=\"400\"}"),
        Some(3.0)
    );
}

#[test]
fn unusable_samples_get_a_400_with_counts_while_usable_ones_are_stored() {
    let exporter = Exporter::start(&["--write.name-validation=legacy"]);
    let now = now_ms();
    let request = write_request(vec![
        series(&[("__name__", "good"), ("pod", "p")], &[(1.0, now)]),
        series(&[("__name__", "bad name")], &[(1.0, now)]),
        series(&[("__name__", "m"), ("bad-label", "x")], &[(1.0, now)]),
        series(
            &[("__name__", "m"), ("job", "a"), ("job", "b")],
            &[(1.0, now)],
        ),
        series(&[("job", "nameless")], &[(1.0, now)]),
        series(&[("__name__", "")], &[(1.0, now)]),
    ]);
    let response = exporter.write(&request);
    assert_eq!(response.status, 400);
    let body = response.text();
    assert_one_line(&body);
    assert!(body.starts_with("rejected 5 of 6 samples"), "{body}");
    for count in [
        "invalid_metric_name=1",
        "invalid_label_name=1",
        "duplicate_label_name=1",
        "missing_metric_name=2",
    ] {
        assert!(body.contains(count), "{count} missing from {body}");
    }
    assert_eq!(
        sample_value(&exporter.metrics(), "good{pod=\"p\"}"),
        Some(1.0)
    );
    assert_eq!(
        exporter
            .exporter_value("k8s_exporter_samples_dropped_total{reason=\"missing_metric_name\"}"),
        Some(2.0)
    );
    assert_eq!(
        exporter
            .exporter_value("k8s_exporter_samples_dropped_total{reason=\"duplicate_label_name\"}"),
        Some(1.0)
    );
}

#[test]
fn series_limit_stores_exactly_the_limit_and_refuses_the_rest() {
    let exporter = Exporter::start(&["--series.max=3"]);
    let now = now_ms();
    let request = write_request(
        (0..5)
            .map(|i| series(&[("__name__", "m"), ("i", &i.to_string())], &[(1.0, now)]))
            .collect(),
    );
    let response = exporter.write(&request);
    assert_eq!(response.status, 400);
    assert!(
        response.text().contains("series_limit=2"),
        "{}",
        response.text()
    );
    assert_eq!(
        exporter
            .metrics()
            .lines()
            .filter(|l| l.starts_with("m{"))
            .count(),
        3
    );
    assert_eq!(exporter.exporter_value("k8s_exporter_series"), Some(3.0));
    assert_eq!(
        exporter.exporter_value("k8s_exporter_series_limit"),
        Some(3.0)
    );
    // Series already held still take updates at the limit.
    let update = write_request(vec![series(
        &[("__name__", "m"), ("i", "0")],
        &[(5.0, now + 1)],
    )]);
    assert_eq!(exporter.write(&update).status, 204);
}

#[test]
fn older_samples_are_ignored_counted_and_answered_204() {
    let exporter = Exporter::start(&[]);
    let now = now_ms();
    assert_eq!(exporter.write(&up("a", 2.0, now)).status, 204);
    assert_eq!(exporter.write(&up("a", 1.0, now - 5000)).status, 204);
    assert_eq!(
        sample_value(&exporter.metrics(), "up{job=\"a\"}"),
        Some(2.0)
    );
    assert_eq!(
        exporter.exporter_value("k8s_exporter_samples_dropped_total{reason=\"out_of_order\"}"),
        Some(1.0)
    );
}

#[test]
fn stale_marker_deletes_series() {
    let exporter = Exporter::start(&[]);
    let now = now_ms();
    exporter.write(&up("a", 1.0, now - 1000));
    exporter.write(&up("b", 1.0, now - 1000));
    assert_eq!(
        exporter
            .write(&up("a", f64::from_bits(STALE_NAN), now))
            .status,
        204
    );
    let page = exporter.metrics();
    assert_eq!(sample_value(&page, "up{job=\"a\"}"), None);
    assert_eq!(sample_value(&page, "up{job=\"b\"}"), Some(1.0));
    assert_eq!(
        exporter.exporter_value("k8s_exporter_series_removed_total{reason=\"stale_marker\"}"),
        Some(1.0)
    );
    // A stale marker older than the stored sample is a replay: it deletes nothing.
    exporter.write(&up("b", f64::from_bits(STALE_NAN), now - 2000));
    assert_eq!(
        sample_value(&exporter.metrics(), "up{job=\"b\"}"),
        Some(1.0)
    );
}

#[test]
fn several_samples_for_one_series_newest_wins() {
    let exporter = Exporter::start(&["--web.expose-timestamps"]);
    let now = now_ms();
    let request = write_request(vec![series(
        &[("__name__", "m")],
        &[(1.0, now - 30), (3.0, now), (2.0, now - 10)],
    )]);
    assert_eq!(exporter.write(&request).status, 204);
    assert!(
        exporter.metrics().contains(&format!("\nm 3 {now}\n")),
        "{}",
        exporter.metrics()
    );
}

#[test]
fn unsorted_labels_are_sorted_and_exposed_once() {
    let exporter = Exporter::start(&[]);
    let now = now_ms();
    exporter.write(&write_request(vec![series(
        &[("pod", "p"), ("__name__", "m"), ("app", "x")],
        &[(1.0, now)],
    )]));
    exporter.write(&write_request(vec![series(
        &[("app", "x"), ("pod", "p"), ("__name__", "m")],
        &[(2.0, now + 1)],
    )]));
    let page = exporter.metrics();
    let lines: Vec<&str> = page.lines().filter(|l| l.starts_with("m{")).collect();
    assert_eq!(lines, ["m{app=\"x\",pod=\"p\"} 2"]);
}

#[test]
fn metadata_types_families_and_metadata_only_requests() {
    let exporter = Exporter::start(&[]);
    let now = now_ms();
    let metadata_only = WriteRequest {
        timeseries: vec![],
        metadata: vec![
            metadata(3, "rpc_seconds", "RPC latency."),
            metadata(1, "requests_total", "Requests served."),
        ],
    };
    assert_eq!(exporter.write(&metadata_only).status, 204);
    let data = write_request(vec![
        series(
            &[("__name__", "rpc_seconds_bucket"), ("le", "0.1")],
            &[(3.0, now)],
        ),
        series(
            &[("__name__", "rpc_seconds_bucket"), ("le", "+Inf")],
            &[(5.0, now)],
        ),
        series(&[("__name__", "rpc_seconds_sum")], &[(0.7, now)]),
        series(&[("__name__", "rpc_seconds_count")], &[(5.0, now)]),
        series(
            &[("__name__", "requests_total"), ("code", "200")],
            &[(10.0, now)],
        ),
    ]);
    assert_eq!(exporter.write(&data).status, 204);
    let page = exporter.metrics();
    assert!(
        page.contains(
            "# HELP rpc_seconds RPC latency.\n# TYPE rpc_seconds histogram\n\
         rpc_seconds_bucket{le=\"0.1\"} 3\nrpc_seconds_bucket{le=\"+Inf\"} 5\n\
         rpc_seconds_sum 0.7\nrpc_seconds_count 5\n"
        ),
        "{page}"
    );
    assert!(page.contains("# HELP requests_total Requests served.\n# TYPE requests_total counter\nrequests_total{code=\"200\"} 10\n"), "{page}");
    assert_eq!(
        exporter.exporter_value("k8s_exporter_metadata_received_total"),
        Some(2.0)
    );
}

#[test]
fn native_histograms_and_exemplars_are_stored_and_shown_as_classic_buckets() {
    use k8s_exporter::write::proto::{histogram, BucketSpan, Exemplar, Histogram, Label};
    let exporter = Exporter::start(&[]);
    let now = now_ms();
    let mut latency = series(&[("__name__", "rpc_seconds")], &[]);
    // Schema 1: bucket 1 is (1, 1.414...], bucket 2 is (1.414..., 2].
    latency.histograms = vec![Histogram {
        count: Some(histogram::Count::CountInt(3)),
        sum: 4.2,
        schema: 1,
        positive_spans: vec![BucketSpan {
            offset: 1,
            length: 2,
        }],
        positive_deltas: vec![1, 1],
        timestamp: now,
        ..Default::default()
    }];
    let mut counter = series(&[("__name__", "jobs_total")], &[(7.0, now)]);
    counter.exemplars = vec![Exemplar {
        labels: vec![Label {
            name: b"trace_id".to_vec().into(),
            value: b"4bf92f3577b34da6".to_vec().into(),
        }],
        value: 1.0,
        timestamp: now,
    }];
    assert_eq!(
        exporter
            .write(&write_request(vec![latency, counter]))
            .status,
        204
    );
    let page = exporter.metrics();
    for line in [
        "rpc_seconds_bucket{le=\"1.4142135623730951\"} 1\n",
        "rpc_seconds_bucket{le=\"2\"} 3\n",
        "rpc_seconds_bucket{le=\"+Inf\"} 3\n",
        "rpc_seconds_sum 4.2\n",
        "rpc_seconds_count 3\n",
        "jobs_total 7\n",
    ] {
        assert!(page.contains(line), "{line} in {page}");
    }
    let (code, report) = promtool_check(&page);
    assert!(code == Some(0) || code == Some(3), "promtool: {report}");
    let parsed = python_parse(&page);
    for line in [
        "F\trpc_seconds\thistogram\t",
        "S\trpc_seconds_bucket\t{\"le\":\"2\"}\t3\n",
    ] {
        assert!(parsed.contains(line), "{line:?} in {parsed}");
    }
    for (counter, value) in [
        ("k8s_exporter_native_histograms_received_total", 1.0),
        ("k8s_exporter_exemplars_received_total", 1.0),
        ("k8s_exporter_samples_received_total", 1.0),
    ] {
        assert_eq!(exporter.exporter_value(counter), Some(value), "{counter}");
    }
}

#[test]
fn utf8_names_are_taken_by_default_and_escaped_on_the_page() {
    let exporter = Exporter::start(&[]);
    let now = now_ms();
    let request = write_request(vec![
        series(
            &[
                ("__name__", "http.server.request.duration"),
                ("service.name", "api"),
            ],
            &[(0.5, now)],
        ),
        series(&[("__name__", "température_celsius")], &[(21.0, now)]),
        series(&[("__name__", "my-metric")], &[(1.0, now)]),
        // The same line once escaped as the first series: only one of them is shown.
        series(
            &[
                ("__name__", "http_server_request_duration"),
                ("service_name", "api"),
            ],
            &[(0.7, now)],
        ),
    ]);
    assert_eq!(exporter.write(&request).status, 204);
    let page = exporter.metrics();
    assert_eq!(
        sample_value(&page, "http_server_request_duration{service_name=\"api\"}"),
        Some(0.7)
    );
    assert_eq!(sample_value(&page, "temp_rature_celsius"), Some(21.0));
    assert_eq!(sample_value(&page, "my_metric"), Some(1.0));
    assert_eq!(
        page.matches("http_server_request_duration{").count(),
        1,
        "{page}"
    );
    assert_eq!(
        exporter.exporter_value("k8s_exporter_scrape_series_left_out_total"),
        Some(1.0)
    );
    // Both Prometheus's parser and Python's read the escaped page.
    let (code, report) = promtool_check(&page);
    assert!(code == Some(0) || code == Some(3), "promtool: {report}");
    assert!(
        python_parse(&page).contains("temp_rature_celsius"),
        "{page}"
    );
    let legacy = Exporter::start(&["--write.name-validation=legacy"]);
    let response = legacy.write(&request);
    assert_eq!(response.status, 400);
    assert!(
        response
            .text()
            .contains("(invalid_metric_name=2 invalid_label_name=1)"),
        "{}",
        response.text()
    );
}

#[test]
fn far_future_samples_are_400_and_do_not_freeze_the_series() {
    let exporter = Exporter::start(&[]);
    let now = now_ms();
    let response = exporter.write(&up("a", 9.0, now + 11 * 60 * 1000));
    assert_eq!(response.status, 400);
    assert!(
        response.text().contains("too_far_in_future=1"),
        "{}",
        response.text()
    );
    assert_eq!(exporter.write(&up("a", 1.0, now)).status, 204);
    assert_eq!(
        sample_value(&exporter.metrics(), "up{job=\"a\"}"),
        Some(1.0)
    );
    assert_eq!(
        exporter.exporter_value("k8s_exporter_samples_dropped_total{reason=\"too_far_in_future\"}"),
        Some(1.0)
    );
}
