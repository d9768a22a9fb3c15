//! OpenMetrics 2.0, served to a scraper that asks for `version=2.0.0` (Prometheus 3.15 with
//! `--enable-feature=openmetrics2`): a fixed case for every type, with start timestamps,
//! exemplars with their timestamps, native histograms beside classic buckets, UTF-8 names and
//! a family that cannot keep its type, each line as the spec's examples write it, and the page
//! checked against the spec's ABNF by the spec's own checker. Prometheus 2.42's `Accept` still
//! gets OpenMetrics 1.0.

use serde_json::{json, Value};

use crate::every_format::openmetrics2_samples;
use crate::support::{now_ms, snappy, upstream, Exporter, REMOTE_WRITE_V2_HEADERS};

/// What Prometheus 3.15 sends with `--enable-feature=openmetrics2`.
const PROMETHEUS_3_15_ACCEPT: &str = "application/openmetrics-text;version=2.0.0;q=0.7,application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.6,*/*;q=0.5";

/// What Prometheus 2.42 sends.
const PROMETHEUS_2_42_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// A remote write 2.0 request's symbols, collected as series name their labels.
#[derive(Default)]
struct Symbols(Vec<String>);

impl Symbols {
    fn refs(&mut self, pairs: &[(&str, &str)]) -> Vec<u32> {
        if self.0.is_empty() {
            self.0.push(String::new());
        }
        let mut refs = Vec::new();
        for text in pairs.iter().flat_map(|(n, v)| [*n, *v]) {
            let at = match self.0.iter().position(|s| s == text) {
                Some(at) => at,
                None => {
                    self.0.push(text.to_owned());
                    self.0.len() - 1
                }
            };
            refs.push(at as u32);
        }
        refs
    }
}

fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Why the spec's grammar refuses the page, if it does.
fn grammar_refuses(page: &str) -> Option<String> {
    openmetrics2_samples(page).err()
}

#[test]
fn every_type_is_written_as_the_spec_writes_it_and_passes_its_grammar() {
    let exporter = Exporter::start(&[]);
    let now = now_ms();
    // 2023-11-14T22:13:20.500Z
    let start = 1_700_000_000_500i64;
    let mut symbols = Symbols::default();
    let mut series = Vec::new();
    let exemplar = |symbols: &mut Symbols, id: &str, value: f64, ms: i64| json!([{"labelsRefs": symbols.refs(&[("trace_id", id)]), "value": value, "timestamp": ms.to_string()}]);
    let jobs_exemplar = exemplar(&mut symbols, "abc123", 1.5, now - 1000);
    let wait_exemplar = exemplar(&mut symbols, "def456", 1.25, now - 500);
    let mut add = |pairs: &[(&str, &str)], mut body: Value| {
        body["labelsRefs"] = json!(symbols.refs(pairs));
        series.push(body);
    };
    let sample = |value: f64| json!([{"value": value, "timestamp": now.to_string(), "startTimestamp": start.to_string()}]);
    let plain = |value: f64| json!([{"value": value, "timestamp": now.to_string()}]);
    let typed = |kind: &str| json!({"type": kind});
    add(
        &[("__name__", "jobs_total")],
        json!({"samples": sample(17.0), "metadata": typed("METRIC_TYPE_COUNTER"), "exemplars": jobs_exemplar}),
    );
    add(
        &[("__name__", "temperature_celsius")],
        json!({"samples": plain(21.5), "metadata": typed("METRIC_TYPE_GAUGE")}),
    );
    add(
        &[("__name__", "mystery"), ("a", "x\"y")],
        json!({"samples": plain(3.0)}),
    );
    add(
        &[("__name__", "wait_seconds")],
        json!({
            // Schema 0: buckets (0.5, 1] and (1, 2] holding 1 and 2.
            "histograms": [{
                "countInt": "3", "sum": 3.5, "schema": 0, "zeroThreshold": 1e-9,
                "zeroCountInt": "0", "positiveSpans": [{"offset": 0, "length": 2}],
                "positiveDeltas": ["1", "1"], "timestamp": now.to_string(),
                "startTimestamp": start.to_string()
            }],
            "exemplars": wait_exemplar
        }),
    );
    add(
        &[("__name__", "rpc_seconds_bucket"), ("le", "0.5")],
        json!({"samples": sample(1.0), "metadata": typed("METRIC_TYPE_HISTOGRAM")}),
    );
    add(
        &[("__name__", "rpc_seconds_bucket"), ("le", "+Inf")],
        json!({"samples": sample(4.0)}),
    );
    add(
        &[("__name__", "rpc_seconds_sum")],
        json!({"samples": sample(2.5)}),
    );
    add(
        &[("__name__", "rpc_seconds_count")],
        json!({"samples": sample(4.0)}),
    );
    add(
        &[("__name__", "gc_seconds"), ("quantile", "0.5")],
        json!({"samples": sample(0.02), "metadata": typed("METRIC_TYPE_SUMMARY")}),
    );
    add(
        &[("__name__", "gc_seconds"), ("quantile", "0.9")],
        json!({"samples": sample(0.05)}),
    );
    add(
        &[("__name__", "gc_seconds_sum")],
        json!({"samples": sample(0.5)}),
    );
    add(
        &[("__name__", "gc_seconds_count")],
        json!({"samples": sample(20.0)}),
    );
    add(
        &[("__name__", "build_info"), ("version", "1.2")],
        json!({"samples": plain(1.0), "metadata": typed("METRIC_TYPE_INFO")}),
    );
    add(
        &[("__name__", "feature"), ("feature", "a")],
        json!({"samples": plain(1.0), "metadata": typed("METRIC_TYPE_STATESET")}),
    );
    add(
        &[("__name__", "feature"), ("feature", "b")],
        json!({"samples": plain(0.0)}),
    );
    add(
        &[("__name__", "queue_seconds")],
        json!({
            "histograms": [{
                "countFloat": 2.0, "sum": 1.0, "schema": 1, "zeroThreshold": 0.001,
                "zeroCountFloat": 0.5, "negativeSpans": [{"offset": -1, "length": 1}],
                "negativeCounts": [0.5], "positiveSpans": [{"offset": 1, "length": 1}],
                "positiveCounts": [1.0], "resetHint": "RESET_HINT_GAUGE",
                "timestamp": now.to_string()
            }],
            "metadata": typed("METRIC_TYPE_GAUGEHISTOGRAM")
        }),
    );
    add(
        &[
            ("__name__", "http.server.duration"),
            ("service.name", "api"),
        ],
        json!({"samples": plain(0.25), "metadata": typed("METRIC_TYPE_GAUGE")}),
    );
    // A native histogram and the classic series of the same histogram, as a Prometheus that
    // scrapes both sends them: one line, native buckets first.
    add(
        &[("__name__", "both_seconds")],
        json!({
            "histograms": [{
                "countInt": "2", "sum": 1.5, "schema": 0, "zeroThreshold": 1e-128,
                "zeroCountInt": "0", "positiveSpans": [{"offset": 0, "length": 2}],
                "positiveDeltas": ["1", "0"], "timestamp": now.to_string()
            }],
            "metadata": typed("METRIC_TYPE_HISTOGRAM")
        }),
    );
    add(
        &[("__name__", "both_seconds_bucket"), ("le", "1")],
        json!({"samples": plain(1.0)}),
    );
    add(
        &[("__name__", "both_seconds_bucket"), ("le", "+Inf")],
        json!({"samples": plain(2.0)}),
    );
    add(
        &[("__name__", "both_seconds_sum")],
        json!({"samples": plain(1.5)}),
    );
    add(
        &[("__name__", "both_seconds_count")],
        json!({"samples": plain(2.0)}),
    );
    // A classic gauge histogram: its series as Prometheus stores them from OpenMetrics.
    add(
        &[("__name__", "pool_bytes_bucket"), ("le", "1024")],
        json!({"samples": plain(3.0), "metadata": typed("METRIC_TYPE_GAUGEHISTOGRAM")}),
    );
    add(
        &[("__name__", "pool_bytes_bucket"), ("le", "+Inf")],
        json!({"samples": plain(5.0), "metadata": typed("METRIC_TYPE_GAUGEHISTOGRAM")}),
    );
    add(
        &[("__name__", "pool_bytes_gcount")],
        json!({"samples": plain(5.0), "metadata": typed("METRIC_TYPE_GAUGEHISTOGRAM")}),
    );
    add(
        &[("__name__", "pool_bytes_gsum")],
        json!({"samples": plain(4096.0), "metadata": typed("METRIC_TYPE_GAUGEHISTOGRAM")}),
    );
    // One whose count series has metadata of its own (a gauge) is not gathered: each series
    // is shown, none lost.
    add(
        &[("__name__", "cache_bytes_bucket"), ("le", "+Inf")],
        json!({"samples": plain(7.0), "metadata": typed("METRIC_TYPE_GAUGEHISTOGRAM")}),
    );
    add(
        &[("__name__", "cache_bytes_gsum")],
        json!({"samples": plain(70.0), "metadata": typed("METRIC_TYPE_GAUGEHISTOGRAM")}),
    );
    add(
        &[("__name__", "cache_bytes_gcount")],
        json!({"samples": plain(7.0), "metadata": typed("METRIC_TYPE_GAUGE")}),
    );
    // A counter the spec refuses (negative) is shown, untyped, under its own name.
    add(
        &[("__name__", "drops_total")],
        json!({"samples": plain(-1.0), "metadata": typed("METRIC_TYPE_COUNTER")}),
    );
    let mut request = json!({"symbols": symbols.0, "timeseries": series});
    // Units go by reference too: `celsius` for the gauge.
    let symbols_list = request["symbols"].as_array_mut().unwrap();
    symbols_list.push(json!("celsius"));
    let celsius = symbols_list.len() - 1;
    request["timeseries"][1]["metadata"]["unitRef"] = json!(celsius);
    let body = upstream::write_request_v2(request);
    let response = exporter.request("POST", "/write", &REMOTE_WRITE_V2_HEADERS, &snappy(&body));
    assert_eq!(response.status, 204, "{}", response.text());

    let answer = exporter.request(
        "GET",
        "/metrics",
        &[("Accept", PROMETHEUS_3_15_ACCEPT)],
        &[],
    );
    assert_eq!(
        answer.header("Content-Type"),
        Some("application/openmetrics-text; version=2.0.0; charset=utf-8")
    );
    let page = answer.text();
    let st = format!("st@{}", seconds(start));
    for line in [
        "# TYPE jobs_total counter\n".to_owned(),
        format!(
            "jobs_total 17 {st} # {{trace_id=\"abc123\"}} 1.5 {}\n",
            seconds(now - 1000)
        ),
        "# TYPE temperature_celsius gauge\n# UNIT temperature_celsius celsius\n".to_owned(),
        "temperature_celsius 21.5\n".to_owned(),
        "# TYPE mystery unknown\n".to_owned(),
        "mystery{a=\"x\\\"y\"} 3\n".to_owned(),
        "# TYPE wait_seconds histogram\n".to_owned(),
        format!(
            "wait_seconds {{count:3,sum:3.5,schema:0,zero_threshold:1e-09,zero_count:0,positive_spans:[0:2],positive_buckets:[1,2]}} {st} # {{trace_id=\"def456\"}} 1.25 {}\n",
            seconds(now - 500)
        ),
        "# TYPE rpc_seconds histogram\n".to_owned(),
        format!("rpc_seconds {{count:4,sum:2.5,bucket:[0.5:1,+Inf:4]}} {st}\n"),
        "# TYPE gc_seconds summary\n".to_owned(),
        format!("gc_seconds {{count:20,sum:0.5,quantile:[0.5:0.02,0.9:0.05]}} {st}\n"),
        "# TYPE build_info info\n".to_owned(),
        "build_info{version=\"1.2\"} 1\n".to_owned(),
        "# TYPE feature stateset\n".to_owned(),
        "feature{feature=\"a\"} 1\nfeature{feature=\"b\"} 0\n".to_owned(),
        "# TYPE queue_seconds gaugehistogram\n".to_owned(),
        "queue_seconds {gcount:2,gsum:1,schema:1,zero_threshold:0.001,zero_count:0.5,negative_spans:[-1:1],negative_buckets:[0.5],positive_spans:[1:1],positive_buckets:[1]}\n".to_owned(),
        "# TYPE \"http.server.duration\" gauge\n".to_owned(),
        "{\"http.server.duration\",\"service.name\"=\"api\"} 0.25\n".to_owned(),
        "# TYPE both_seconds histogram\n".to_owned(),
        "both_seconds {count:2,sum:1.5,schema:0,zero_threshold:1e-128,zero_count:0,positive_spans:[0:2],positive_buckets:[1,1],bucket:[1:1,+Inf:2]}\n".to_owned(),
        "# TYPE pool_bytes gaugehistogram\n".to_owned(),
        "pool_bytes {gcount:5,gsum:4096,bucket:[1024:3,+Inf:5]}\n".to_owned(),
        "# TYPE cache_bytes_gcount gauge\ncache_bytes_gcount 7\n".to_owned(),
        "cache_bytes_bucket{le=\"+Inf\"} 7\n".to_owned(),
        "cache_bytes_gsum 70\n".to_owned(),
        "# TYPE drops_total unknown\n".to_owned(),
        "drops_total -1\n".to_owned(),
    ] {
        assert!(page.contains(&line), "{line} in\n{page}");
    }
    for not_there in [
        "_created",
        "rpc_seconds_bucket",
        "pool_bytes_bucket",
        "gc_seconds_count",
        "jobs_total_total",
    ] {
        assert!(!page.contains(not_there), "{not_there} in\n{page}");
    }
    assert!(page.ends_with("# EOF\n"));
    assert_eq!(grammar_refuses(&page), None, "{page}");

    // Timestamps, when exposed, come before the start timestamp.
    let exposing = Exporter::start(&["--web.expose-timestamps"]);
    let response = exposing.request("POST", "/write", &REMOTE_WRITE_V2_HEADERS, &snappy(&body));
    assert_eq!(response.status, 204);
    let page = exposing
        .request(
            "GET",
            "/metrics",
            &[("Accept", PROMETHEUS_3_15_ACCEPT)],
            &[],
        )
        .text();
    let line = format!("jobs_total 17 {} {st} # ", seconds(now));
    assert!(page.contains(&line), "{line} in\n{page}");
    assert_eq!(grammar_refuses(&page), None, "{page}");
}

#[test]
fn prometheus_2_42_still_gets_openmetrics_1_0_and_the_grammar_checker_refuses_wrong_pages() {
    let exporter = Exporter::start(&[]);
    let answer = exporter.request(
        "GET",
        "/metrics",
        &[("Accept", PROMETHEUS_2_42_ACCEPT)],
        &[],
    );
    assert_eq!(
        answer.header("Content-Type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores")
    );
    // The checker is not a rubber stamp: a histogram without its +Inf bucket and an exemplar
    // without its timestamp are refused, and what the spec's examples write is taken.
    for wrong in [
        "# TYPE x histogram\nx {count:1,sum:1,bucket:[1:1]}\n# EOF\n",
        "# TYPE x counter\nx 1 # {a=\"b\"} 1\n# EOF\n",
    ] {
        assert!(grammar_refuses(wrong).is_some(), "{wrong}");
    }
    assert_eq!(
        grammar_refuses("# TYPE x counter\nx 1 st@2 # {a=\"b\"} 1 3\n# EOF\n"),
        None
    );
}
