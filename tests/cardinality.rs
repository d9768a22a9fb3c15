//! `GET /api/v1/status/tsdb`: which metrics, label names and pairs hold the most series, in
//! Prometheus's JSON shape. The same series remote-written to a real Prometheus (2.42, its
//! remote-write receiver) give the same tables on its own TSDB status API.

use serde_json::Value;

use crate::support::peers::{api, prometheus_with, TempDir};
use crate::support::{now_ms, series, snappy, write_request, Exporter, REMOTE_WRITE_HEADERS};
use k8s_exporter::write::proto::WriteRequest;
use prost::Message;
use serde_json::json;

/// Six series: metrics a, b, c with 3, 2 and 1 series, jobs and instances among them.
fn request() -> WriteRequest {
    let now = now_ms();
    let one = |name: &str, job: &str, instance: &str| {
        series(
            &[("__name__", name), ("instance", instance), ("job", job)],
            &[(1.0, now)],
        )
    };
    write_request(vec![
        one("a", "api", "1"),
        one("a", "api", "2"),
        one("a", "node", "3"),
        one("b", "api", "1"),
        one("b", "node", "2"),
        one("c", "api", "1"),
    ])
}

/// A table of the answer, sorted by count and then name, so that ties compare alike.
fn table(answer: &Value, name: &str) -> Vec<(String, u64)> {
    let mut rows: Vec<(String, u64)> = answer["data"][name]
        .as_array()
        .unwrap_or_else(|| panic!("no {name} in {answer}"))
        .iter()
        .map(|row| {
            (
                row["name"].as_str().unwrap().to_owned(),
                row["value"].as_u64().unwrap(),
            )
        })
        .collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    rows
}

const TABLES: [&str; 4] = [
    "seriesCountByMetricName",
    "labelValueCountByLabelName",
    "memoryInBytesByLabelName",
    "seriesCountByLabelValuePair",
];

#[test]
fn the_tables_are_the_ones_prometheus_shows_for_the_same_series() {
    let sent = request();
    let exporter = Exporter::start(&[]);
    assert_eq!(exporter.write(&sent).status, 204);
    let ours: Value = serde_json::from_slice(&exporter.get("/api/v1/status/tsdb").body).unwrap();
    assert_eq!(ours["status"], "success");
    assert_eq!(ours["data"]["headStats"]["numSeries"], 6);

    let dir = TempDir::new("tsdb-status");
    let prometheus = prometheus_with(
        "tsdb",
        &json!({"global": {"scrape_interval": "1m"}}),
        &dir.0,
        &["--web.enable-remote-write-receiver"],
    );
    let body = snappy(&sent.encode_to_vec());
    let written = crate::support::request(
        &prometheus.address,
        "POST",
        "/api/v1/write",
        &REMOTE_WRITE_HEADERS,
        &body,
    );
    assert_eq!(written.status, 204, "{}", written.text());
    let theirs = api(&prometheus, "/api/v1/status/tsdb");
    for name in TABLES {
        assert_eq!(table(&ours, name), table(&theirs, name), "{name}");
    }
    let (ours_stats, theirs_stats) = (&ours["data"]["headStats"], &theirs["data"]["headStats"]);
    for field in ["numSeries", "numLabelPairs", "minTime", "maxTime"] {
        assert_eq!(ours_stats[field], theirs_stats[field], "headStats.{field}");
    }
}

#[test]
fn the_limit_cuts_every_table_and_a_bad_one_is_refused_as_prometheus_does() {
    let exporter = Exporter::start(&[]);
    assert_eq!(exporter.write(&request()).status, 204);
    let answer: Value =
        serde_json::from_slice(&exporter.get("/api/v1/status/tsdb?limit=2").body).unwrap();
    for name in TABLES {
        assert_eq!(answer["data"][name].as_array().unwrap().len(), 2, "{name}");
    }
    assert_eq!(
        table(&answer, "seriesCountByLabelValuePair"),
        [("job=api".to_owned(), 4), ("__name__=a".to_owned(), 3)]
    );
    let refused = exporter.get("/api/v1/status/tsdb?limit=0");
    assert_eq!(refused.status, 400);
    let error: Value = serde_json::from_slice(&refused.body).unwrap();
    assert_eq!(error["errorType"], "bad_data");
    assert_eq!(error["error"], "limit must be a positive number");
    // The landing page shows the same tables.
    let landing = exporter.get("/").text();
    assert!(
        landing.contains("<tr><td><code>job=api</code></td><td>4</td></tr>"),
        "{landing}"
    );
}
