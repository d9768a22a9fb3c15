//! The `/` page: what this is, where everything is, and what it holds right now.

use std::fmt::Write as _;

use crate::base::units::format_size;
use crate::ops::cardinality::Cardinality;
use crate::ops::telemetry::{ARCH, OS, REVISION, VERSION};
use crate::otlp::receive::OTLP_PATHS;

/// What the page shows: where things are, what the store holds, and the flags in effect.
pub struct LandingFacts<'a> {
    pub series: usize,
    /// The series limit in force, given or derived from the memory limit.
    pub series_limit: usize,
    /// The memory limit in force, and resident memory now (when `/proc` is there).
    pub memory_limit: Option<u64>,
    pub resident_bytes: Option<u64>,
    pub families: usize,
    /// Unix milliseconds of the last write, 0 if none yet.
    pub last_write_ms: i64,
    pub telemetry_path: &'a str,
    pub exporter_telemetry_path: &'a str,
    /// The paths that take remote write, the main one first.
    pub write_paths: &'a [&'a str],
    /// Every flag in effect, as `name=value`.
    pub flags_in_effect: &'a [(String, String)],
    /// Which metrics, label names and pairs hold the most series.
    pub cardinality: &'a Cardinality,
}

pub fn landing_page(facts: &LandingFacts) -> String {
    let last_write = if facts.last_write_ms == 0 {
        "never".to_owned()
    } else {
        format!("{:.3} (Unix seconds)", facts.last_write_ms as f64 / 1000.0)
    };
    let mut page = String::with_capacity(4096);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>k8s_exporter</title></head><body>\n\
         <h1>k8s_exporter</h1>\n<p>Version {version} (revision {revision}, {os}/{arch}). Receives Prometheus remote write and \
         serves the newest sample of every series for scraping; scrape it with <code>honor_labels: true</code>.</p>\n\
         <h2>Endpoints</h2>\n<ul>\n\
         <li><a href=\"{metrics}\">{metrics}</a>: bridged series</li>\n\
         <li><a href=\"{exporter}\">{exporter}</a>: the exporter's own metrics</li>\n\
         <li><a href=\"/healthz\">/healthz</a>: liveness</li>\n\
         <li><code>POST {write}</code> (also <code>{write_alias}</code>): remote write 1.0 and 2.0</li>\n\
         <li><code>POST {otlp}</code> (also <code>{otlp_alias}</code>): OTLP/HTTP metrics, protobuf or JSON</li>\n</ul>\n\
         <h2>Now</h2>\n<ul>\n<li>series: {series} of at most {series_limit} ({series_share})</li>\n\
         <li>memory: {memory}</li>\n<li>metric families: {families}</li>\n\
         <li>last write: {last_write}</li>\n</ul>\n",
        version = html(VERSION),
        revision = html(REVISION),
        os = OS,
        arch = ARCH,
        metrics = html(facts.telemetry_path),
        exporter = html(facts.exporter_telemetry_path),
        write = facts.write_paths[0],
        write_alias = facts.write_paths[1..].join(", "),
        otlp = OTLP_PATHS[1],
        otlp_alias = OTLP_PATHS[0],
        series = facts.series,
        series_limit = facts.series_limit,
        series_share = percent(facts.series as u64, facts.series_limit as u64),
        memory = memory(facts.memory_limit, facts.resident_bytes),
        families = facts.families,
    );
    page.push_str("<h2>Where the series come from</h2>\n");
    for (title, column, rows) in [
        (
            "Series by metric name",
            "metric",
            &facts.cardinality.series_by_metric_name,
        ),
        (
            "Distinct values by label name",
            "label",
            &facts.cardinality.value_count_by_label_name,
        ),
        (
            "Series by label pair",
            "pair",
            &facts.cardinality.series_by_label_value_pair,
        ),
    ] {
        let _ = writeln!(
            page,
            "<h3>{title}</h3>\n<table>\n<tr><th>{column}</th><th>count</th></tr>"
        );
        for (name, count) in rows {
            let _ = writeln!(
                page,
                "<tr><td><code>{}</code></td><td>{count}</td></tr>",
                html(name)
            );
        }
        page.push_str("</table>\n");
    }
    let _ = writeln!(
        page,
        "<p>As JSON, in Prometheus's shape: <a href=\"/api/v1/status/tsdb\">/api/v1/status/tsdb</a>.</p>\n<h2>Flags in effect</h2>\n<table>"
    );
    for (name, value) in facts.flags_in_effect {
        let _ = writeln!(
            page,
            "<tr><td><code>--{}</code></td><td><code>{}</code></td></tr>",
            html(name),
            html(value)
        );
    }
    page.push_str("</table>\n</body></html>\n");
    page
}

fn percent(part: u64, whole: u64) -> String {
    format!("{:.1}% full", part as f64 * 100.0 / whole.max(1) as f64)
}

/// Resident memory against the limit, as the memory guard sees them.
fn memory(limit: Option<u64>, resident: Option<u64>) -> String {
    let resident_text = resident.map_or("unknown".to_owned(), format_size);
    match (limit, resident) {
        (None, _) => format!("{resident_text} resident, no memory limit"),
        (Some(limit), Some(resident)) => format!(
            "{resident_text} resident of a {} limit ({}; new series are refused from 90%)",
            format_size(limit),
            percent(resident, limit)
        ),
        (Some(limit), None) => format!("a {} limit", format_size(limit)),
    }
}

fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_links_every_endpoint_and_escapes_flag_values() {
        let page = landing_page(&LandingFacts {
            series: 12,
            series_limit: 48,
            memory_limit: Some(64 << 20),
            resident_bytes: Some(16 << 20),
            families: 3,
            last_write_ms: 0,
            telemetry_path: "/federate",
            exporter_telemetry_path: "/own",
            write_paths: &["/write", "/api/v1/write"],
            flags_in_effect: &[("web.listen-address".into(), "<script>".into())],
            cardinality: &Cardinality {
                series_by_metric_name: vec![("container_cpu<1>".into(), 7)],
                ..Cardinality::default()
            },
        });
        assert!(
            page.contains("<td><code>container_cpu&lt;1&gt;</code></td><td>7</td>"),
            "{page}"
        );
        for link in [
            "href=\"/federate\"",
            "href=\"/own\"",
            "href=\"/healthz\"",
            "/api/v1/write",
        ] {
            assert!(page.contains(link), "{link} missing");
        }
        assert!(
            page.contains("series: 12 of at most 48 (25.0% full)")
                && page.contains("metric families: 3")
                && page.contains("never")
        );
        assert!(
            page.contains("16MiB resident of a 64MiB limit (25.0% full;"),
            "{page}"
        );
        assert!(page.contains("&lt;script&gt;") && !page.contains("<script>"));
    }
}
