//! OTLP metrics in: the real OpenTelemetry Python SDK pushing over both paths, cumulative and
//! delta, gzipped or not; requests built from the published opentelemetry-proto files and in
//! OTLP/JSON for what the SDK does not send (summaries, exemplars, stale markers, refusals);
//! bad input. What `/metrics` shows is what Prometheus 3's OTLP receiver would have stored.

use std::process::Command;

use serde_json::{json, Value};

use crate::support::{now_ms, sample_value, upstream, Exporter, HttpResponse};

const PROTOBUF: (&str, &str) = ("Content-Type", "application/x-protobuf");
const JSON: (&str, &str) = ("Content-Type", "application/json");
const OPENMETRICS: &str = "application/openmetrics-text;version=1.0.0";

/// Runs tests/otlp_push.py against `path` of `exporter`.
fn push_with_sdk(exporter: &Exporter, path: &str, temporality: &str, compression: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/otlp_push.py");
    let endpoint = format!("http://{}{path}", exporter.address);
    let output = Command::new("python3")
        .args([script, &endpoint, temporality, compression])
        .output()
        .expect("run python3 (make deps installs the OpenTelemetry SDK)");
    assert!(
        output.status.success(),
        "{path} {temporality} {compression}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn page_with(exporter: &Exporter, accept: &str) -> String {
    let response = exporter.request("GET", "/metrics", &[("Accept", accept)], &[]);
    assert_eq!(response.status, 200);
    response.text()
}

/// The sample lines of a text page (no comments), sorted.
fn sample_lines(page: &str) -> Vec<String> {
    let mut lines: Vec<String> = page
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

#[test]
fn the_opentelemetry_sdk_is_stored_as_prometheus_3_would_whatever_the_temporality() {
    let ids = r#"instance="i-1",job="shop/checkout""#;
    let expected = [
        format!(r#"cpu_temperature_celsius{{cpu="0",{ids}}} 42"#),
        format!(r#"http_requests_total{{http_request_method="GET",{ids}}} 8"#),
        format!(r#"http_requests_total{{http_request_method="POST",{ids}}} 2"#),
        format!(r#"http_server_duration_milliseconds_bucket{{{ids},le="5"}} 1"#),
        format!(r#"http_server_duration_milliseconds_bucket{{{ids},le="10"}} 3"#),
        format!(r#"http_server_duration_milliseconds_bucket{{{ids},le="25"}} 3"#),
        format!(r#"http_server_duration_milliseconds_bucket{{{ids},le="+Inf"}} 4"#),
        format!(r#"http_server_duration_milliseconds_sum{{{ids}}} 48"#),
        format!(r#"http_server_duration_milliseconds_count{{{ids}}} 4"#),
        format!(r#"payload_size_bytes_bucket{{{ids},le="+Inf"}} 3"#),
        format!(r#"payload_size_bytes_sum{{{ids}}} 1110"#),
        format!(r#"payload_size_bytes_count{{{ids}}} 3"#),
        format!(r#"queue_size{{{ids}}} 8"#),
        format!(r#"target_info{{deployment_environment="test",host_name="h1",{ids}}} 1"#),
    ];
    for (path, temporality, compression) in [
        ("/v1/metrics", "cumulative", "gzip"),
        ("/api/v1/otlp/v1/metrics", "cumulative", "none"),
        ("/v1/metrics", "delta", "none"),
        ("/api/v1/otlp/v1/metrics", "delta", "gzip"),
    ] {
        let exporter = Exporter::start(&[]);
        push_with_sdk(&exporter, path, temporality, compression);
        let case = format!("{path} {temporality} {compression}");
        let page = exporter.metrics();
        let lines = sample_lines(&page);
        for line in &expected {
            assert!(lines.contains(line), "{case}: no {line:?} in\n{page}");
        }
        // Nothing else but the native histogram's buckets, shown as classic ones on text.
        let others: Vec<&String> = lines
            .iter()
            .filter(|line| {
                !expected.contains(line) && !line.starts_with("payload_size_bytes_bucket")
            })
            .collect();
        assert!(others.is_empty(), "{case}: unexpected {others:?}");
        for (family, kind, help) in [
            ("http_requests_total", "counter", "Requests served."),
            ("queue_size", "gauge", "Items queued."),
            (
                "http_server_duration_milliseconds",
                "histogram",
                "Time to serve a request.",
            ),
            ("payload_size_bytes", "histogram", "Payload sizes."),
            ("target_info", "gauge", "Target metadata"),
        ] {
            assert!(
                page.contains(&format!("# TYPE {family} {kind}\n")),
                "{case}: {family}"
            );
            assert!(
                page.contains(&format!("# HELP {family} {help}\n")),
                "{case}: {family}"
            );
        }
        let openmetrics = page_with(&exporter, OPENMETRICS);
        assert!(
            openmetrics.contains("# UNIT http_server_duration_milliseconds milliseconds\n"),
            "{case}:\n{openmetrics}"
        );
        // Counters keep the SDK's start time, delta ones the first point's.
        assert!(
            openmetrics.contains(&format!(
                r#"http_requests_created{{http_request_method="GET",{ids}}} "#
            )),
            "{case}:\n{openmetrics}"
        );
        assert_native_payload_histogram(&exporter, &case);
        assert_eq!(
            exporter.exporter_value(
                r#"k8s_exporter_otlp_requests_total{code="200",encoding="protobuf"}"#
            ),
            Some(2.0),
            "{case}"
        );
        assert!(
            exporter
                .exporter_value(r#"k8s_exporter_otlp_data_points_received_total{type="sum"}"#)
                .unwrap()
                >= 4.0,
            "{case}"
        );
    }
}

/// The exponential histogram is a native histogram on the protobuf page, read with the
/// published `metrics.proto`: 3 observations of sum 1110 in base-2 buckets.
fn assert_native_payload_histogram(exporter: &Exporter, case: &str) {
    let accept = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";
    let response = exporter.request("GET", "/metrics", &[("Accept", accept)], &[]);
    let families = upstream::decode_protobuf_page(&response.body);
    let family = families
        .iter()
        .find(|f| f["name"] == "payload_size_bytes")
        .unwrap_or_else(|| panic!("{case}: no payload_size_bytes in {families:?}"));
    let histogram = &family["metric"][0]["histogram"];
    assert_eq!(histogram["sampleCount"], "3", "{case}: {histogram}");
    assert_eq!(histogram["sampleSum"], 1110.0, "{case}");
    let schema = histogram["schema"].as_i64().unwrap();
    assert!((-4..=8).contains(&schema), "{case}: schema {schema}");
    let deltas: i64 = histogram["positiveDelta"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().parse::<i64>().unwrap())
        .scan(0, |count, delta| {
            *count += delta;
            Some(*count)
        })
        .sum();
    assert_eq!(deltas, 3, "{case}: every observation in a positive bucket");
}

fn resource(service: &str) -> Value {
    json!({"attributes": [
        {"key": "service.name", "value": {"stringValue": service}},
        {"key": "service.instance.id", "value": {"stringValue": "pod-1"}},
    ]})
}

fn nanos(ms: i64) -> String {
    (ms * 1_000_000).to_string()
}

fn post(exporter: &Exporter, path: &str, content_type: (&str, &str), body: &[u8]) -> HttpResponse {
    exporter.request("POST", path, &[content_type], body)
}

#[test]
fn published_protos_requests_carry_exemplars_and_refusals_come_back_as_partial_success() {
    let exporter = Exporter::start(&[]);
    let now = now_ms();
    let request = json!({"resourceMetrics": [{
        "resource": resource("api"),
        "scopeMetrics": [{"metrics": [
            {"name": "jobs.done", "unit": "1", "sum": {
                "aggregationTemporality": "AGGREGATION_TEMPORALITY_CUMULATIVE", "isMonotonic": true,
                "dataPoints": [{"asInt": "12", "startTimeUnixNano": nanos(now - 60_000),
                    "timeUnixNano": nanos(now),
                    "attributes": [{"key": "queue", "value": {"stringValue": "mail"}}],
                    "exemplars": [{"asDouble": 1.0, "timeUnixNano": nanos(now),
                        // 0af7651916cd43dd8448eb211c80319c and b7ad6b7169203331, in base64.
                        "traceId": "CvdlGRbNQ92ESOshHIAxnA==", "spanId": "t61rcWkgMzE="}]}]}},
            {"name": "lag", "unit": "s", "sum": {
                "isMonotonic": true,
                "dataPoints": [{"asDouble": 1.0, "timeUnixNano": nanos(now)},
                               {"asDouble": 2.0, "timeUnixNano": nanos(now)}]}},
        ]}],
    }]});
    let response = post(
        &exporter,
        "/v1/metrics",
        PROTOBUF,
        &upstream::otlp_request(request),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.header("Content-Type"),
        Some("application/x-protobuf")
    );
    let answer = upstream::otlp_response(&response.body);
    assert_eq!(
        answer["partialSuccess"]["rejectedDataPoints"], "2",
        "{answer}"
    );
    let message = answer["partialSuccess"]["errorMessage"].as_str().unwrap();
    assert!(message.contains("temporality"), "{message}");
    let page = page_with(&exporter, OPENMETRICS);
    let line = page
        .lines()
        .find(|line| line.starts_with("jobs_done_total{"))
        .unwrap_or_else(|| panic!("no jobs_done_total in\n{page}"));
    assert!(
        line.starts_with(r#"jobs_done_total{instance="pod-1",job="api",queue="mail"} 12 # {span_id="b7ad6b7169203331",trace_id="0af7651916cd43dd8448eb211c80319c"} 1 "#),
        "{line}"
    );
    assert!(!page.contains("lag"), "{page}");
    // Only service.name and service.instance.id: no target_info.
    assert!(!page.contains("target_info"), "{page}");
    assert_eq!(
        exporter.exporter_value(
            r#"k8s_exporter_otlp_data_points_rejected_total{reason="invalid_temporality"}"#
        ),
        Some(2.0)
    );
}

#[test]
fn json_requests_summaries_stale_markers_and_exponential_scales_above_8() {
    let exporter = Exporter::start(&[]);
    let now = now_ms();
    let gauge = |value: Value, flags: u32, ms: i64| {
        json!({"name": "door.open", "gauge": {"dataPoints": [
            {"asDouble": value, "timeUnixNano": nanos(ms), "flags": flags}]}})
    };
    let request = json!({"resourceMetrics": [{
        "resource": resource("gate"),
        "scopeMetrics": [{"metrics": [
            gauge(json!(1.0), 0, now - 1000),
            {"name": "rpc.latency", "unit": "s", "description": "RPC latency.", "summary": {"dataPoints": [{
                "timeUnixNano": nanos(now), "count": "10", "sum": 2.5,
                "quantileValues": [{"quantile": 0.5, "value": 0.2}, {"quantile": 0.99, "value": 0.9}]}]}},
            {"name": "size", "exponentialHistogram": {"aggregationTemporality": 2, "dataPoints": [{
                "timeUnixNano": nanos(now), "count": "4", "sum": 10.0, "scale": 10, "zeroCount": "0",
                "positive": {"offset": 0, "bucketCounts": ["1", "1", "1", "1"]}}]}},
        ]}],
    }]});
    let body = request.to_string();
    let response = post(&exporter, "/api/v1/otlp/v1/metrics", JSON, body.as_bytes());
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("Content-Type"), Some("application/json"));
    assert_eq!(response.text(), "{}");
    let page = exporter.metrics();
    let ids = r#"instance="pod-1",job="gate""#;
    for (series, value) in [
        (format!(r#"door_open{{{ids}}}"#), 1.0),
        (
            format!(r#"rpc_latency_seconds{{{ids},quantile="0.5"}}"#),
            0.2,
        ),
        (
            format!(r#"rpc_latency_seconds{{{ids},quantile="0.99"}}"#),
            0.9,
        ),
        (format!(r#"rpc_latency_seconds_sum{{{ids}}}"#), 2.5),
        (format!(r#"rpc_latency_seconds_count{{{ids}}}"#), 10.0),
        (format!(r#"size_count{{{ids}}}"#), 4.0),
    ] {
        assert_eq!(
            sample_value(&page, &series),
            Some(value),
            "{series} in\n{page}"
        );
    }
    assert!(
        page.contains("# TYPE rpc_latency_seconds summary\n"),
        "{page}"
    );
    // Scale 10 is reduced to 8: the four buckets, 2^(1/1024) wide, make one.
    let accept = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";
    let response = exporter.request("GET", "/metrics", &[("Accept", accept)], &[]);
    let families = upstream::decode_protobuf_page(&response.body);
    let size = families.iter().find(|f| f["name"] == "size").expect("size");
    let histogram = &size["metric"][0]["histogram"];
    assert_eq!(histogram["schema"], 8, "{histogram}");
    assert_eq!(histogram["positiveDelta"], json!(["4"]), "{histogram}");

    // No recorded value: the series goes, as after a Prometheus stale marker.
    let stale = json!({"resourceMetrics": [{"resource": resource("gate"),
        "scopeMetrics": [{"metrics": [gauge(json!(0), 1, now)]}]}]});
    let response = post(&exporter, "/v1/metrics", JSON, stale.to_string().as_bytes());
    assert_eq!(response.status, 200);
    assert!(!exporter.metrics().contains("door_open"));
}

/// One request of every point type, encoded by the published protos, then written as JSON by
/// the protobuf JSON mapping: both encodings must be read alike, whichever path.
#[test]
fn protobuf_and_json_of_one_request_are_read_alike() {
    let now = now_ms();
    let common = |ms: i64| {
        json!({"timeUnixNano": nanos(ms), "startTimeUnixNano": nanos(ms - 60_000),
               "attributes": [{"key": "route", "value": {"stringValue": "/a"}},
                              {"key": "code", "value": {"intValue": "200"}},
                              {"key": "ok", "value": {"boolValue": true}},
                              {"key": "ratio", "value": {"doubleValue": 0.5}}]})
    };
    let with = |mut point: Value, fields: Value| {
        point
            .as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        point
    };
    let request = json!({"resourceMetrics": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "shop"}},
            {"key": "service.instance.id", "value": {"stringValue": "i-9"}},
            {"key": "region", "value": {"stringValue": "eu"}}]},
        "scopeMetrics": [{"scope": {"name": "lib", "version": "1"}, "metrics": [
            {"name": "g", "unit": "By", "gauge": {"dataPoints": [with(common(now), json!({"asDouble": 1.5}))]}},
            {"name": "c", "unit": "s", "sum": {"aggregationTemporality": "AGGREGATION_TEMPORALITY_CUMULATIVE",
                "isMonotonic": true, "dataPoints": [with(common(now), json!({"asInt": "7"}))]}},
            {"name": "h", "unit": "ms", "histogram": {"aggregationTemporality": "AGGREGATION_TEMPORALITY_CUMULATIVE",
                "dataPoints": [with(common(now), json!({"count": "3", "sum": 12.0,
                    "bucketCounts": ["1", "1", "1"], "explicitBounds": [1.0, 5.0]}))]}},
            {"name": "e", "exponentialHistogram": {"aggregationTemporality": "AGGREGATION_TEMPORALITY_CUMULATIVE",
                "dataPoints": [with(common(now), json!({"count": "5", "sum": 20.0, "scale": 2,
                    "zeroCount": "1", "positive": {"offset": 3, "bucketCounts": ["1", "0", "2"]},
                    "negative": {"offset": -1, "bucketCounts": ["1"]}}))]}},
            {"name": "s", "summary": {"dataPoints": [with(common(now), json!({"count": "4", "sum": 2.0,
                "quantileValues": [{"quantile": 0.9, "value": 0.8}]}))]}},
        ]}],
    }]});
    let encoded = upstream::otlp_request(request);
    let as_json = upstream::otlp_request_as_json(&encoded).to_string();
    let mut pages = Vec::new();
    for (path, content_type, body) in [
        ("/v1/metrics", PROTOBUF, encoded.clone()),
        ("/api/v1/otlp/v1/metrics", JSON, as_json.into_bytes()),
    ] {
        let exporter = Exporter::start(&[]);
        let response = post(&exporter, path, content_type, &body);
        assert_eq!(response.status, 200, "{}", response.text());
        pages.push(page_with(&exporter, OPENMETRICS));
    }
    assert_eq!(pages[0], pages[1]);
    let page = &pages[0];
    let labels = r#"code="200",instance="i-9",job="shop",ok="true",ratio="0.5",route="/a""#;
    for line in [
        format!("g_bytes{{{labels}}} 1.5"),
        format!("c_seconds_total{{{labels}}} 7"),
        r#"h_milliseconds_bucket{code="200",instance="i-9",job="shop",le="5",ok="true",ratio="0.5",route="/a"} 2"#.to_owned(),
        format!("e_count{{{labels}}} 5"),
        r#"s{code="200",instance="i-9",job="shop",ok="true",quantile="0.9",ratio="0.5",route="/a"} 0.8"#.to_owned(),
        r#"target_info{instance="i-9",job="shop",region="eu"} 1"#.to_owned(),
    ] {
        assert!(
            page.lines()
                .any(|l| l == line || l.starts_with(&format!("{line} "))),
            "no {line:?} in\n{page}"
        );
    }
}

#[test]
fn bad_input_is_refused_whole_and_what_is_held_stays() {
    let exporter = Exporter::start(&["--write.max-bytes=4096"]);
    let now = now_ms();
    let held = json!({"resourceMetrics": [{"resource": resource("keep"), "scopeMetrics": [{"metrics": [
        {"name": "kept", "gauge": {"dataPoints": [{"asDouble": 7.0, "timeUnixNano": nanos(now)}]}}]}]}]});
    assert_eq!(
        post(&exporter, "/v1/metrics", JSON, held.to_string().as_bytes()).status,
        200
    );
    let kept = r#"kept{instance="pod-1",job="keep"}"#;

    let response = post(&exporter, "/v1/metrics", PROTOBUF, &[0x0a, 0xff, 0x01]);
    assert_eq!(response.status, 400);
    assert_eq!(
        response.header("Content-Type"),
        Some("application/x-protobuf")
    );
    let response = post(&exporter, "/v1/metrics", JSON, br#"{"resourceMetrics": [{"#);
    assert_eq!(response.status, 400);
    let status: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(status["code"], 3);
    assert!(
        status["message"].as_str().unwrap().starts_with("JSON:"),
        "{status}"
    );
    // A request that reads, but half of it wrongly, stores nothing of it.
    let half = json!({"resourceMetrics": [
        {"scopeMetrics": [{"metrics": [{"name": "kept", "gauge": {"dataPoints": [
            {"asDouble": 1.0, "timeUnixNano": nanos(now + 1)}]}}]}]},
        {"scopeMetrics": [{"metrics": [{"name": "x", "gauge": {"dataPoints": [
            {"asDouble": 1.0, "timeUnixNano": "soon"}]}}]}]}]});
    assert_eq!(
        post(&exporter, "/v1/metrics", JSON, half.to_string().as_bytes()).status,
        400
    );
    let gzip_garbage = exporter.request(
        "POST",
        "/v1/metrics",
        &[PROTOBUF, ("Content-Encoding", "gzip")],
        b"not gzip at all",
    );
    assert_eq!(gzip_garbage.status, 400);
    let text = post(
        &exporter,
        "/v1/metrics",
        ("Content-Type", "text/plain"),
        b"x",
    );
    assert_eq!(text.status, 415);
    assert!(
        text.text().contains("application/x-protobuf"),
        "{}",
        text.text()
    );
    let snappy = exporter.request(
        "POST",
        "/v1/metrics",
        &[PROTOBUF, ("Content-Encoding", "snappy")],
        b"x",
    );
    assert_eq!(snappy.status, 415);
    assert_eq!(
        post(&exporter, "/v1/metrics", JSON, &vec![b' '; 5000]).status,
        413
    );
    assert_eq!(exporter.get("/v1/metrics").status, 405);

    let page = exporter.metrics();
    assert_eq!(sample_value(&page, kept), Some(7.0), "{page}");
    assert_eq!(
        exporter.exporter_value(r#"k8s_exporter_otlp_requests_total{code="400",encoding="json"}"#),
        Some(2.0)
    );
    assert_eq!(
        exporter
            .exporter_value(r#"k8s_exporter_otlp_requests_total{code="415",encoding="unknown"}"#),
        Some(2.0)
    );
}

#[test]
fn the_other_translation_strategies_and_promoted_resource_attributes() {
    let now = now_ms();
    let request = json!({"resourceMetrics": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "web"}},
            {"key": "k8s.pod.name", "value": {"stringValue": "web-0"}}]},
        "scopeMetrics": [{"metrics": [{"name": "http.server.duration", "unit": "ms",
            "gauge": {"dataPoints": [{"asDouble": 3.0, "timeUnixNano": nanos(now),
                "attributes": [{"key": "http.route", "value": {"stringValue": "/a"}}]}]}}]}]}]});
    let utf8 = "text/plain;version=1.0.0;escaping=allow-utf-8";
    for (strategy, series) in [
        (
            "NoUTF8EscapingWithSuffixes",
            r#"{"http.server.duration_milliseconds","http.route"="/a",job="web","k8s.pod.name"="web-0"}"#,
        ),
        (
            "NoTranslation",
            r#"{"http.server.duration","http.route"="/a",job="web","k8s.pod.name"="web-0"}"#,
        ),
        (
            "UnderscoreEscapingWithoutSuffixes",
            r#"http_server_duration{http_route="/a",job="web",k8s_pod_name="web-0"}"#,
        ),
    ] {
        let exporter = Exporter::start(&[
            &format!("--otlp.translation-strategy={strategy}"),
            "--otlp.promote-resource-attributes=k8s.pod.name",
        ]);
        let response = post(
            &exporter,
            "/v1/metrics",
            JSON,
            request.to_string().as_bytes(),
        );
        assert_eq!(response.status, 200, "{strategy}: {}", response.text());
        let page = page_with(&exporter, utf8);
        assert_eq!(
            sample_value(&page, series),
            Some(3.0),
            "{strategy}: {series} in\n{page}"
        );
    }
}
