//! The `/` page: what this is, where everything is, and what it holds right now.

use std::fmt::Write as _;

use std::time::{Duration, UNIX_EPOCH};

use crate::base::units::format_duration;
use crate::base::utc;
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
    /// Unix milliseconds now, to say how long ago the last write was.
    pub now_ms: i64,
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
    let last_write = last_write(facts.last_write_ms, facts.now_ms);
    let mut page = String::with_capacity(4096);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>k8s_exporter</title>\n{STYLE}</head><body>\n\
         <h1>k8s_exporter</h1>\n<p>Version {version} (revision {revision}, {os}/{arch}). Receives Prometheus remote write and \
         serves the newest sample of every series for scraping; scrape it with <code>honor_labels: true</code>.</p>\n\
         <h2>Endpoints</h2>\n<ul>\n\
         <li><a href=\"{metrics}\">{metrics}</a>: bridged series</li>\n\
         <li><a href=\"{exporter}\">{exporter}</a>: the exporter's own metrics</li>\n\
         <li><a href=\"/healthz\">/healthz</a>: liveness</li>\n\
         <li><a href=\"/api/v1/status/tsdb\">/api/v1/status/tsdb</a>: where the series come from, as Prometheus's TSDB status</li>\n\
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
        series = grouped(facts.series as u64),
        series_limit = grouped(facts.series_limit as u64),
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
        if rows.is_empty() {
            page.push_str("<tr><td colspan=\"2\">no series yet</td></tr>\n");
        }
        for (name, count) in rows {
            let _ = writeln!(
                page,
                "<tr><td><code>{}</code></td><td>{}</td></tr>",
                html(name),
                grouped(*count)
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

/// Writes arrive when the last one is under this old: prometheus1 sends at least every few
/// seconds while it has samples (its `batch_send_deadline` is 5s).
const ARRIVING_WITHIN_MS: i64 = 60_000;

/// The last write as a UTC date, how long ago, and whether writes are arriving.
fn last_write(last_write_ms: i64, now_ms: i64) -> String {
    if last_write_ms == 0 {
        return "never: no write has stored anything yet".to_owned();
    }
    let ago_ms = (now_ms - last_write_ms).max(0);
    let date = utc::rfc3339(UNIX_EPOCH + Duration::from_millis(last_write_ms as u64));
    let ago = format_duration(Duration::from_secs((ago_ms / 1000) as u64));
    let state = if ago_ms < ARRIVING_WITHIN_MS {
        "writes are arriving"
    } else {
        "no write for over a minute: see the runbook's K8sExporterNoSamplesReceived"
    };
    format!("{date} ({ago} ago; {state})")
}

/// The page's whole style, inline as exporter-toolkit's landing page has it: no script, no
/// other file.
const STYLE: &str = "<style>body{font-family:sans-serif;max-width:60em;margin:1em auto;\
padding:0 1em;line-height:1.4}table{border-collapse:collapse;margin-bottom:1em}\
td,th{padding:.15em .8em .15em 0;text-align:left;border-bottom:1px solid #ddd}\
th{font-weight:600}h3{margin-bottom:.3em}</style>\n";

/// A count as a person reads it: `2,268,737`.
fn grouped(count: u64) -> String {
    let digits = count.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A size as a person reads it: MiB with one decimal.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}

fn percent(part: u64, whole: u64) -> String {
    format!("{:.1}% full", part as f64 * 100.0 / whole.max(1) as f64)
}

/// Resident memory against the limit, as the memory guard sees them.
fn memory(limit: Option<u64>, resident: Option<u64>) -> String {
    let resident_text = resident.map_or("unknown".to_owned(), mib);
    match (limit, resident) {
        (None, _) => format!("{resident_text} resident, no memory limit"),
        (Some(limit), Some(resident)) => format!(
            "{resident_text} resident of a {} limit ({}; new series are refused from 90%)",
            mib(limit),
            percent(resident, limit)
        ),
        (Some(limit), None) => format!("a {} limit", mib(limit)),
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
    fn counts_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(2_268_737), "2,268,737");
    }

    #[test]
    fn the_last_write_is_a_utc_date_how_long_ago_and_whether_writes_arrive() {
        let now = 1_796_636_000_000;
        assert_eq!(
            last_write(now - 12_000, now),
            "2026-12-07T09:33:08.000Z (12s ago; writes are arriving)"
        );
        assert!(last_write(now - 600_000, now).contains("(10m ago; no write for over a minute"));
        assert!(last_write(0, now).starts_with("never"));
    }

    #[test]
    fn page_links_every_endpoint_and_escapes_flag_values() {
        let page = landing_page(&LandingFacts {
            series: 12,
            series_limit: 48,
            memory_limit: Some(64 << 20),
            resident_bytes: Some(16 << 20),
            families: 3,
            last_write_ms: 0,
            now_ms: 1_796_636_000_000,
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
            page.contains("16.0 MiB resident of a 64.0 MiB limit (25.0% full;"),
            "{page}"
        );
        assert!(page.contains("&lt;script&gt;") && !page.contains("<script>"));
    }
}
