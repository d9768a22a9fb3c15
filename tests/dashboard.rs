//! The Grafana dashboard (deploy/grafana/k8s_exporter.json): every panel's PromQL, with the
//! dashboard's variables at their "All" values, parses and returns data on a real Prometheus
//! that scrapes a running exporter under a small load.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::peers::{prometheus, query, TempDir};
use crate::support::{now_ms, series, write_request, Exporter};

fn dashboard() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/k8s_exporter.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("the dashboard is JSON")
}

/// Every panel's expressions, with the variables as Grafana fills them: `$job` and
/// `$instance` at their "All" value, `$__rate_interval` at a window that holds several
/// of this test's one-second scrapes.
fn expressions(dashboard: &Value) -> Vec<(String, String)> {
    let all_value = |name: &str| {
        dashboard["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .and_then(|v| v["allValue"].as_str())
            .unwrap_or_else(|| panic!("variable {name} with an allValue"))
            .to_owned()
    };
    let (job, instance) = (all_value("job"), all_value("instance"));
    let mut found = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$job", &job)
                .replace("$instance", &instance)
                .replace("$__rate_interval", "30s");
            found.push((panel["title"].as_str().unwrap().to_owned(), expr));
        }
    }
    found
}

#[test]
fn every_panel_expression_returns_data_from_a_scraped_exporter() {
    let dashboard = dashboard();
    let wanted = [
        "k8s_exporter_write_requests_total",
        "k8s_exporter_samples_dropped_total",
        "k8s_exporter_series_limit",
        "k8s_exporter_series_removed_total",
        "k8s_exporter_write_request_duration_seconds_bucket",
        "k8s_exporter_scrape_duration_seconds_bucket",
        "k8s_exporter_http_errors_total",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "k8s_exporter_build_info",
        "k8s_exporter_web_config_last_reload_successful",
        "k8s_exporter_memory_limit_bytes",
        "k8s_exporter_samples_received_total",
    ];
    let expressions = expressions(&dashboard);
    for metric in wanted {
        assert!(
            expressions.iter().any(|(_, e)| e.contains(metric)),
            "a panel shows {metric}"
        );
    }
    let dir = TempDir::new("dashboard");
    // A memory limit, so that the memory-against-limit condition has data.
    let exporter = Exporter::start(&["--memory.limit=1GiB"]);
    let config = json!({
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [
            {"job_name": "k8s-exporter", "metrics_path": "/metrics/exporter",
             "static_configs": [{"targets": [exporter.address]}]},
            {"job_name": "bridged", "honor_labels": true,
             "static_configs": [{"targets": [exporter.address]}]},
        ],
    });
    let prometheus = prometheus("prometheus", &config, &dir.0);
    // A small load: good writes, and one with a bad series (a 400 and a dropped sample).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut pending: Vec<(String, String)> = expressions;
    let mut round = 0;
    while !pending.is_empty() {
        assert!(
            Instant::now() < deadline,
            "no data within 60 s for {pending:#?}"
        );
        round += 1;
        let pod = format!("pod-{}", round % 20);
        exporter.write(&write_request(vec![series(
            &[("__name__", "container_memory_usage_bytes"), ("pod", &pod)],
            &[(round as f64, now_ms())],
        )]));
        exporter.write(&write_request(vec![series(
            &[("job", "no-metric-name")],
            &[(1.0, now_ms())],
        )]));
        // `query` fails the test on an expression Prometheus cannot parse.
        pending.retain(|(_, expr)| query(&prometheus, expr).is_empty());
        thread::sleep(Duration::from_millis(500));
    }
}
