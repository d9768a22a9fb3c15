//! Senders other than our own encoder: a real Prometheus 2.42 sends native histograms and
//! exemplars over remote write 1.0, and so do messages of Prometheus's published `types.proto`
//! (`../shared/upstream`, compiled when the test runs); the bridge holds what they sent.
//!
//! Prometheus (`--enable-feature=native-histograms,exemplar-storage`, `send_native_histograms`,
//! `send_exemplars`) scrapes two fixture targets: one exposes a native histogram in protobuf,
//! encoded from the published client_model `metrics.proto`; the other an
//! OpenMetrics counter with an exemplar. The bridge runs in this process, so that the test can
//! look into its store as well as at its page.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use k8s_exporter::ops::flags::Flags;
use k8s_exporter::server::Server;
use k8s_exporter::store::native::{Extras, NativeHistogram};
use k8s_exporter::store::SeriesView;
use k8s_exporter::web::reload::LiveWebConfig;
use k8s_exporter::web::webconfig::WebConfig;
use serde_json::json;

use crate::support::peers::{prometheus_with, query, query_exemplars, TempDir};
use crate::support::upstream;
use crate::support::{eventually, now_ms, request, sample_value, snappy};

/// The histogram the protobuf target exposes: schema 1 (each power of two split in two),
/// zero bucket of width 0.001 holding 1, positive buckets 0, 1, 2 holding 1, 2, 1 (upper
/// bounds 1, √2, 2), negative bucket 1 holding 1 (magnitudes in (1, √2]). Six observations.
fn histogram_family() -> serde_json::Value {
    json!({
        "name": "rpc_duration_seconds",
        "help": "RPC latency.",
        "type": "HISTOGRAM",
        "metric": [{
            "label": [{"name": "service", "value": "api"}],
            "histogram": {
                "sampleCount": "6",
                "sampleSum": 7.25,
                "schema": 1,
                "zeroThreshold": 0.001,
                "zeroCount": "1",
                "positiveSpan": [{"offset": 0, "length": 3}],
                "positiveDelta": ["1", "1", "-1"],
                "negativeSpan": [{"offset": 1, "length": 1}],
                "negativeDelta": ["1"]
            }
        }]
    })
}

/// Serves `body` as `content_type` to every request, on a loopback port; returns the address.
fn serve(body: Vec<u8>, content_type: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let body = Arc::new(body);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let body = Arc::clone(&body);
            thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    if line == "\r\n" {
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                            body.len()
                        );
                        if stream.write_all(head.as_bytes()).is_err()
                            || stream.write_all(&body).is_err()
                        {
                            return;
                        }
                    }
                    line.clear();
                }
            });
        }
    });
    address
}

/// The bridge, in this process, on a free loopback port.
fn bridge() -> Server {
    let args = ["--web.listen-address=127.0.0.1:0".to_owned()];
    let flags = Flags::parse("k8s_exporter", &args, |_| None).unwrap();
    Server::start(&flags, LiveWebConfig::fixed(WebConfig::none()))
        .unwrap_or_else(|e| panic!("{e:?}"))
}

/// The series of this name the bridge holds, and what it holds beside its value.
fn held(server: &Server, name: &str) -> Option<(SeriesView, Option<Extras>)> {
    let snapshot = server.app.store.snapshot();
    let series = snapshot.series.iter().find(|s| s.name() == name)?;
    Some((series.clone(), snapshot.extras_of(series).cloned()))
}

/// The native histogram the bridge holds as the newest sample of the series of this name.
fn held_histogram(server: &Server, name: &str) -> Option<NativeHistogram> {
    held(server, name)?.1?.histogram
}

#[test]
fn prometheus_sends_native_histograms_and_exemplars_that_the_bridge_keeps() {
    let dir = TempDir::new("native");
    let server = bridge();
    let histograms = serve(
        upstream::protobuf_page(&[histogram_family()]),
        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
    );
    let exemplar_ms = now_ms() - 5_000;
    let openmetrics = format!(
        "# TYPE jobs counter\n# HELP jobs Jobs done.\n\
         jobs_total 17.0 # {{trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\"}} 1.5 {}.{:03}\n# EOF\n",
        exemplar_ms / 1000,
        exemplar_ms % 1000
    );
    let exemplars = serve(
        openmetrics.into_bytes(),
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
    );
    let config = json!({
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [
            {"job_name": "histograms", "static_configs": [{"targets": [histograms]}]},
            {"job_name": "exemplars", "static_configs": [{"targets": [exemplars]}]},
        ],
        "remote_write": [{
            "url": format!("http://{}/write", server.address),
            "send_exemplars": true,
            "send_native_histograms": true,
            "metadata_config": {"send_interval": "1s"},
            "queue_config": {"batch_send_deadline": "200ms", "min_backoff": "50ms", "max_backoff": "500ms"},
        }],
    });
    let prometheus = prometheus_with(
        "prometheus",
        &config,
        &dir.0,
        &["--enable-feature=native-histograms,exemplar-storage"],
    );

    // The histogram: what Prometheus stored is what the bridge holds, bucket for bucket.
    let histogram = eventually(
        Duration::from_secs(30),
        "the bridge to hold the histogram",
        || held_histogram(&server, "rpc_duration_seconds"),
    );
    assert_eq!(
        (
            histogram.schema,
            histogram.zero_threshold,
            histogram.zero_count
        ),
        (1, 0.001, 1.0)
    );
    let positive: Vec<(i64, f64)> = histogram.positive.indexed().collect();
    assert_eq!(positive, [(0, 1.0), (1, 2.0), (2, 1.0)]);
    let negative: Vec<(i64, f64)> = histogram.negative.indexed().collect();
    assert_eq!(negative, [(1, 1.0)]);
    for (function, held) in [
        ("histogram_count", histogram.count),
        ("histogram_sum", histogram.sum),
    ] {
        let result = query(&prometheus, &format!("{function}(rpc_duration_seconds)"));
        let value: f64 = result.values().next().expect(function).parse().unwrap();
        assert_eq!(value, held, "{function}");
    }
    assert_eq!(histogram.count, 6.0);
    let page =
        String::from_utf8(request(&server.address, "GET", "/metrics", &[], &[]).body).unwrap();
    assert!(
        page.contains("# TYPE rpc_duration_seconds histogram\n"),
        "{page}"
    );
    for (le, cumulative) in [
        ("-1", 1.0),
        ("0.001", 2.0),
        ("1", 3.0),
        ("1.4142135623730951", 5.0),
        ("2", 6.0),
        ("+Inf", 6.0),
    ] {
        let line = format!("rpc_duration_seconds_bucket{{instance=\"{histograms}\",job=\"histograms\",service=\"api\",le=\"{le}\"}}");
        assert_eq!(
            sample_value(&page, &line),
            Some(cumulative),
            "{line} in {page}"
        );
    }

    // The exemplar: what Prometheus's exemplar storage holds is what the bridge holds.
    let from_prometheus = eventually(
        Duration::from_secs(30),
        "Prometheus to store the exemplar",
        || {
            let found = query_exemplars(&prometheus, "jobs_total");
            (!found.is_empty()).then_some(found)
        },
    );
    let extras = eventually(
        Duration::from_secs(30),
        "the bridge to hold the exemplar",
        || held(&server, "jobs_total")?.1,
    );
    let kept: Vec<_> = extras
        .exemplars
        .iter()
        .map(|e| {
            let labels = e
                .labels
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            (labels, e.value, e.timestamp_ms.unwrap() as f64 / 1000.0)
        })
        .collect();
    assert_eq!(kept, from_prometheus);
    assert_eq!(kept[0].1, 1.5);
    assert_eq!(kept[0].2, exemplar_ms as f64 / 1000.0);

    scrapers_read_what_was_written(&server, &prometheus, &from_prometheus, &dir);
    server.stop();
}

/// Two more Prometheus servers scrape the bridge: one with native histograms, which asks for
/// protobuf first, and gets back the histogram and the exemplar that were written; one
/// without, which asks for OpenMetrics first and reads the same counter and exemplar.
fn scrapers_read_what_was_written(
    server: &Server,
    writer: &crate::support::peers::Peer,
    exemplars: &[(std::collections::BTreeMap<String, String>, f64, f64)],
    dir: &TempDir,
) {
    let config = json!({
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [{
            "job_name": "bridge",
            "honor_labels": true,
            "static_configs": [{"targets": [server.address.clone()]}],
        }],
    });
    let protobuf = prometheus_with(
        "scraper-protobuf",
        &config,
        &dir.0,
        &["--enable-feature=native-histograms,exemplar-storage"],
    );
    let openmetrics = prometheus_with(
        "scraper-openmetrics",
        &config,
        &dir.0,
        &["--enable-feature=exemplar-storage"],
    );
    let selector = "rpc_duration_seconds{job=\"histograms\"}";
    for promql in [
        format!("histogram_count({selector})"),
        format!("histogram_sum({selector})"),
        format!("histogram_quantile(0.5, {selector})"),
        format!("histogram_quantile(0.9, {selector})"),
    ] {
        let written = query(writer, &promql);
        let expected: Vec<String> = written.values().cloned().collect();
        assert_eq!(expected.len(), 1, "{promql} on the writer");
        let scraped = eventually(Duration::from_secs(30), &promql, || {
            let values: Vec<String> = query(&protobuf, &promql).values().cloned().collect();
            (!values.is_empty()).then_some(values)
        });
        assert_eq!(scraped, expected, "{promql}");
    }
    for (name, scraper) in [("protobuf", &protobuf), ("OpenMetrics", &openmetrics)] {
        let found = eventually(Duration::from_secs(30), name, || {
            let found = query_exemplars(scraper, "jobs_total");
            (!found.is_empty()).then_some(found)
        });
        assert_eq!(found, exemplars, "exemplars scraped as {name}");
        let value = query(scraper, "jobs_total");
        assert_eq!(
            value.values().next().map(String::as_str),
            Some("17"),
            "{name}"
        );
    }
}

/// Remote write 1.0 encoded from Prometheus's published `types.proto`: what Prometheus 2.42
/// cannot send yet, float-count and
/// custom-bucket histograms, and exemplars with two labels, arrive as they were sent.
#[test]
fn requests_from_the_published_proto_are_held_as_sent() {
    let server = bridge();
    let now = now_ms();
    let sent = json!({"timeseries": [
        {
            "labels": [{"name": "__name__", "value": "queue_wait_seconds"}],
            "histograms": [{
                "countFloat": 10.5, "sum": 3.25, "schema": 3, "zeroThreshold": 1e-9,
                "zeroCountFloat": 0.5,
                "negativeSpans": [{"offset": -2, "length": 1}], "negativeCounts": [2.0],
                "positiveSpans": [{"offset": 0, "length": 2}, {"offset": 3, "length": 1}],
                "positiveCounts": [1.0, 3.0, 4.0],
                "timestamp": now.to_string()
            }]
        },
        {
            "labels": [{"name": "__name__", "value": "payload_bytes"}],
            "histograms": [{
                "countInt": "7", "sum": 4100.0, "schema": -53,
                "customValues": [64.0, 512.0, 4096.0],
                "positiveSpans": [{"offset": 1, "length": 3}], "positiveDeltas": ["2", "1", "-2"],
                "timestamp": now.to_string()
            }]
        },
        {
            "labels": [{"name": "__name__", "value": "http.server.requests"}],
            "samples": [{"value": 42.0, "timestamp": now.to_string()}],
            "exemplars": [{
                "labels": [{"name": "span_id", "value": "00f067aa0ba902b7"},
                           {"name": "trace_id", "value": "4bf92f3577b34da6a3ce929d0e0e4736"}],
                "value": 0.25, "timestamp": (now - 1).to_string()
            }]
        }
    ]});
    let response = request_with_body(&server.address, &upstream::write_request_v1(sent));
    assert_eq!(response.status, 204, "{}", response.text());

    let float = held_histogram(&server, "queue_wait_seconds").expect("the float histogram");
    assert!(float.float_counts);
    assert_eq!(
        (float.count, float.sum, float.zero_count),
        (10.5, 3.25, 0.5)
    );
    assert_eq!(float.negative.indexed().collect::<Vec<_>>(), [(-2, 2.0)]);
    assert_eq!(
        float.positive.indexed().collect::<Vec<_>>(),
        [(0, 1.0), (1, 3.0), (5, 4.0)]
    );
    let custom = held_histogram(&server, "payload_bytes").expect("the custom-bucket histogram");
    assert_eq!(&*custom.custom_values, [64.0, 512.0, 4096.0]);
    assert_eq!(
        custom.positive.indexed().collect::<Vec<_>>(),
        [(1, 2.0), (2, 3.0), (3, 1.0)]
    );
    let (counter, extras) = held(&server, "http.server.requests").expect("the UTF-8 named counter");
    assert_eq!(counter.value, 42.0);
    let exemplar = &extras.expect("its exemplar").exemplars[0];
    let labels: Vec<(&str, &str)> = exemplar.labels.iter().map(|(n, v)| (&**n, &**v)).collect();
    assert_eq!(
        labels,
        [
            ("span_id", "00f067aa0ba902b7"),
            ("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")
        ]
    );
    assert_eq!(
        (exemplar.value, exemplar.timestamp_ms),
        (0.25, Some(now - 1))
    );

    let page =
        String::from_utf8(request(&server.address, "GET", "/metrics", &[], &[]).body).unwrap();
    for (line, value) in [
        // Every custom value, then +Inf with the count; the bucket past 4096 holds the rest.
        ("payload_bytes_bucket{le=\"64\"}", 0.0),
        ("payload_bytes_bucket{le=\"512\"}", 2.0),
        ("payload_bytes_bucket{le=\"4096\"}", 5.0),
        ("payload_bytes_bucket{le=\"+Inf\"}", 7.0),
        ("payload_bytes_count", 7.0),
        // Schema 3: bucket 5's upper bound is 2^(5/8).
        ("queue_wait_seconds_bucket{le=\"1.5422108254079407\"}", 10.5),
        ("http_server_requests", 42.0),
    ] {
        assert_eq!(sample_value(&page, line), Some(value), "{line} in {page}");
    }
    server.stop();
}

/// A remote write 1.0 body, snappy-compressed here, posted as Prometheus posts it.
fn request_with_body(address: &str, protobuf: &[u8]) -> crate::support::HttpResponse {
    request(
        address,
        "POST",
        "/write",
        &[
            ("Content-Type", "application/x-protobuf"),
            ("Content-Encoding", "snappy"),
            ("X-Prometheus-Remote-Write-Version", "0.1.0"),
        ],
        &snappy(protobuf),
    )
}
