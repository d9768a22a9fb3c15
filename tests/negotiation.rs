//! Content negotiation on `/metrics` and `/metrics/exporter`: the `Accept` headers real
//! Prometheus versions send, each format read by a parser that is not ours, and `match[]`.

use serde_json::Value;

use crate::support::upstream;
use crate::support::{
    metadata, now_ms, promtool_check, python_parse, python_parse_with, series, write_request,
    Exporter,
};

const PROTOBUF: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// The `Accept` headers Prometheus sends, copied from its source, and the `Content-Type` the
/// negotiation spec prescribes for each.
const PROMETHEUS_ACCEPT_HEADERS: [(&str, &str, &str); 6] = [
    (
        "2.42 scrapeAcceptHeader",
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores",
    ),
    (
        "2.42 scrapeAcceptHeaderWithProtobuf (native histograms)",
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; escaping=underscores",
    ),
    (
        "3.x DefaultScrapeProtocols, escaping allow-utf-8",
        "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
        "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8",
    ),
    (
        "3.x DefaultProtoFirstScrapeProtocols, escaping allow-utf-8",
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited; escaping=underscores",
    ),
    (
        "3.0 scrape_protocols [PrometheusText1.0.0, PrometheusText0.0.4], UTF8NamesHeader on each",
        "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.6,text/plain;version=0.0.4;escaping=allow-utf-8;q=0.5,*/*;q=0.4",
        "text/plain; version=1.0.0; charset=utf-8; escaping=allow-utf-8",
    ),
    (
        "3.x metric_name_escaping_scheme: dots",
        "application/openmetrics-text;version=1.0.0;escaping=dots;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=dots;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
        "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=dots",
    ),
];

/// A store with a counter (with a start time and an exemplar is not possible over 1.0, so a
/// plain one), a gauge with a unit, a classic histogram, a summary, and UTF-8 names.
fn exporter_with_families() -> Exporter {
    let exporter = Exporter::start(&[]);
    let now = now_ms();
    let mut request = write_request(vec![
        series(
            &[("__name__", "http_requests_total"), ("code", "200")],
            &[(1027.0, now)],
        ),
        series(
            &[("__name__", "http_requests_total"), ("code", "500")],
            &[(3.0, now)],
        ),
        series(&[("__name__", "room_temperature_celsius")], &[(21.5, now)]),
        series(
            &[("__name__", "req_seconds_bucket"), ("le", "0.1")],
            &[(5.0, now)],
        ),
        series(
            &[("__name__", "req_seconds_bucket"), ("le", "1")],
            &[(8.0, now)],
        ),
        series(
            &[("__name__", "req_seconds_bucket"), ("le", "+Inf")],
            &[(9.0, now)],
        ),
        series(&[("__name__", "req_seconds_sum")], &[(4.5, now)]),
        series(&[("__name__", "req_seconds_count")], &[(9.0, now)]),
        series(
            &[("__name__", "rpc_seconds"), ("quantile", "0.5")],
            &[(0.25, now)],
        ),
        series(&[("__name__", "rpc_seconds_sum")], &[(10.0, now)]),
        series(&[("__name__", "rpc_seconds_count")], &[(40.0, now)]),
        series(
            &[
                ("__name__", "http.server.duration"),
                ("service.name", "api"),
            ],
            &[(0.5, now)],
        ),
    ]);
    let mut gauge = metadata(2, "room_temperature_celsius", "Room temperature.");
    gauge.unit = b"celsius".to_vec().into();
    request.metadata = vec![
        metadata(1, "http_requests", "Requests served."),
        gauge,
        metadata(3, "req_seconds", "Request latency."),
        metadata(5, "rpc_seconds", "RPC latency."),
    ];
    let response = exporter.write(&request);
    assert_eq!(response.status, 204, "{}", response.text());
    exporter
}

#[test]
fn prometheus_accept_headers_get_the_format_the_spec_prescribes() {
    let exporter = exporter_with_families();
    for (who, accept, content_type) in PROMETHEUS_ACCEPT_HEADERS {
        for path in ["/metrics", "/metrics/exporter"] {
            let response = exporter.request("GET", path, &[("Accept", accept)], &[]);
            assert_eq!(response.status, 200, "{who} {path}");
            assert_eq!(
                response.header("Content-Type"),
                Some(content_type),
                "{who} {path}"
            );
        }
    }
    for accept in [None, Some("*/*"), Some("application/json")] {
        let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("Accept", *a)).collect();
        let response = exporter.request("GET", "/metrics", &headers, &[]);
        assert_eq!(
            response.header("Content-Type"),
            Some("text/plain; version=0.0.4; charset=utf-8"),
            "{accept:?}"
        );
    }
}

fn page(exporter: &Exporter, path: &str, accept: &str) -> String {
    let response = exporter.request("GET", path, &[("Accept", accept)], &[]);
    assert_eq!(response.status, 200);
    response.text()
}

/// OpenMetrics pages read by prometheus_client's OpenMetrics parser (promtool 2.42 reads text
/// 0.0.4 only; a real Prometheus reads the OpenMetrics page in tests/native_peers.rs).
#[test]
fn openmetrics_pages_parse_with_prometheus_client() {
    let exporter = exporter_with_families();
    for path in ["/metrics", "/metrics/exporter"] {
        for accept in [
            "application/openmetrics-text;version=1.0.0",
            "application/openmetrics-text;version=0.0.1",
        ] {
            let page = page(&exporter, path, accept);
            assert!(page.ends_with("# EOF\n"), "{page}");
            let parsed = python_parse_with(&page, &["--openmetrics"]);
            if path == "/metrics" {
                for expected in [
                    "F\thttp_requests\tcounter\t\"Requests served.\"",
                    "S\thttp_requests_total\t{\"code\":\"200\"}\t1027\n",
                    "F\troom_temperature_celsius\tgauge\t\"Room temperature.\"",
                    "F\treq_seconds\thistogram\t\"Request latency.\"",
                    "S\treq_seconds_bucket\t{\"le\":\"1\"}\t8\n",
                    "F\trpc_seconds\tsummary\t\"RPC latency.\"",
                    "S\trpc_seconds\t{\"quantile\":\"0.5\"}\t0.25",
                    "S\thttp_server_duration\t{\"service_name\":\"api\"}\t0.5",
                ] {
                    assert!(parsed.contains(expected), "{expected} in {parsed}\n{page}");
                }
                assert!(page.contains("# UNIT room_temperature_celsius celsius\n"));
            }
        }
    }
}

#[test]
fn utf8_names_are_quoted_on_text_1_0_0_and_escaped_as_asked_elsewhere() {
    let exporter = exporter_with_families();
    let utf8 = page(
        &exporter,
        "/metrics",
        "text/plain;version=1.0.0;escaping=allow-utf-8",
    );
    assert!(
        utf8.contains("{\"http.server.duration\",\"service.name\"=\"api\"} 0.5\n"),
        "{utf8}"
    );
    let parsed = python_parse(&utf8);
    assert!(
        parsed.contains("S\thttp.server.duration\t{\"service.name\":\"api\"}\t0.5"),
        "{parsed}"
    );
    let openmetrics = page(
        &exporter,
        "/metrics",
        "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8",
    );
    let parsed = python_parse_with(&openmetrics, &["--openmetrics"]);
    assert!(
        parsed.contains("S\thttp.server.duration\t{\"service.name\":\"api\"}\t0.5"),
        "{parsed}"
    );
    for (escaping, line) in [
        (
            "underscores",
            "http_server_duration{service_name=\"api\"} 0.5\n",
        ),
        (
            "dots",
            "http_dot_server_dot_duration{service_dot_name=\"api\"} 0.5\n",
        ),
        (
            "values",
            "U__http_2E_server_2E_duration{U__service_2E_name=\"api\"} 0.5\n",
        ),
    ] {
        for version in ["0.0.4", "1.0.0"] {
            let accept = format!("text/plain;version={version};escaping={escaping}");
            let text = page(&exporter, "/metrics", &accept);
            assert!(text.contains(line), "{accept}: {text}");
            let (code, said) = promtool_check(&text);
            assert_eq!(code, Some(0), "promtool: {said}\n{text}");
        }
    }
}

#[test]
fn the_protobuf_page_decodes_with_the_published_metrics_proto() {
    let exporter = exporter_with_families();
    let response = exporter.request("GET", "/metrics", &[("Accept", PROTOBUF)], &[]);
    let families = upstream::decode_protobuf_page(&response.body);
    let family = |name: &str| {
        families
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {families:#?}"))
    };
    let counter = family("http_requests_total");
    assert_eq!(counter["type"], "COUNTER");
    assert_eq!(counter["help"], "Requests served.");
    assert_eq!(counter["metric"][0]["label"][0]["value"], "200");
    assert_eq!(counter["metric"][0]["counter"]["value"], 1027.0);
    assert_eq!(family("room_temperature_celsius")["type"], "GAUGE");
    let histogram = &family("req_seconds")["metric"][0]["histogram"];
    assert_eq!(family("req_seconds")["type"], "HISTOGRAM");
    assert_eq!(histogram["sampleCount"], "9");
    assert_eq!(histogram["sampleSum"], 4.5);
    let buckets: Vec<(f64, &str)> = histogram["bucket"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let bound = match &b["upperBound"] {
                Value::String(s) if s == "Infinity" => f64::INFINITY,
                other => other.as_f64().unwrap(),
            };
            (bound, b["cumulativeCount"].as_str().unwrap())
        })
        .collect();
    assert_eq!(buckets, [(0.1, "5"), (1.0, "8"), (f64::INFINITY, "9")]);
    let summary = &family("rpc_seconds")["metric"][0]["summary"];
    assert_eq!(summary["sampleCount"], "40");
    assert_eq!(summary["quantile"][0]["value"], 0.25);
    assert_eq!(family("http_server_duration")["type"], "UNTYPED");
    let zipped = exporter.request(
        "GET",
        "/metrics",
        &[("Accept", PROTOBUF), ("Accept-Encoding", "gzip")],
        &[],
    );
    assert_eq!(zipped.header("Content-Encoding"), Some("gzip"));
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&zipped.body[..]),
        &mut unzipped,
    )
    .unwrap();
    assert_eq!(unzipped, response.body, "the same page, gzipped");
    let exporter_page = exporter.request("GET", "/metrics/exporter", &[("Accept", PROTOBUF)], &[]);
    let own = upstream::decode_protobuf_page(&exporter_page.body);
    assert!(own
        .iter()
        .any(|f| f["name"] == "k8s_exporter_scrapes_total"));
}

#[test]
fn match_selectors_choose_the_series_and_bad_ones_are_refused() {
    let exporter = exporter_with_families();
    let names = |query: &str| -> Vec<String> {
        let response = exporter.get(&format!("/metrics?{query}"));
        assert_eq!(response.status, 200, "{query}: {}", response.text());
        let mut names: Vec<String> = response
            .text()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split([' ', '{']).next().unwrap().to_owned())
            .collect();
        names.dedup();
        names
    };
    assert_eq!(
        names("match[]=room_temperature_celsius"),
        ["room_temperature_celsius"]
    );
    assert_eq!(
        names("match%5B%5D=%7Bcode%3D%22500%22%7D"),
        ["http_requests_total"]
    );
    assert_eq!(
        names("match[]={__name__=~\"req_seconds_.*\",le!=\"0.1\"}&match[]=rpc_seconds_sum"),
        [
            "req_seconds_bucket",
            "req_seconds_sum",
            "req_seconds_count",
            "rpc_seconds_sum"
        ]
    );
    assert_eq!(
        names("match[]={__name__=~\"http_.*\",code!~\"2..\"}"),
        ["http_requests_total"]
    );
    assert_eq!(
        names("match[]={\"http.server.duration\"}"),
        ["http_server_duration"]
    );
    let before = exporter
        .exporter_value("k8s_exporter_scrape_selector_errors_total")
        .unwrap();
    for bad in [
        "match[]={job=~\".*\"}",
        "match[]=up{",
        "match[]={code=~\"(\"}",
        "match[]=",
    ] {
        let response = exporter.get(&format!("/metrics?{bad}"));
        assert_eq!(response.status, 400, "{bad}");
        assert_eq!(response.text().lines().count(), 1, "{}", response.text());
    }
    let after = exporter
        .exporter_value("k8s_exporter_scrape_selector_errors_total")
        .unwrap();
    assert_eq!(after - before, 4.0);
}
