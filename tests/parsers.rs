//! The pages must parse with parsers we did not write: Prometheus's own (`promtool check
//! metrics`) and Python's `prometheus_client`.

use std::collections::{BTreeMap, HashMap};

use crate::support::cadvisor::{self, Expected, FAMILIES};
use crate::support::{now_ms, promtool_check, python_parse, Exporter};

/// A JSON string as Python's `json.dumps(..., ensure_ascii=False)` writes it.
fn python_json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn python_json_labels(labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{}:{}", python_json_string(k), python_json_string(v)))
        .collect();
    format!("{{{}}}", pairs.join(","))
}

fn load_realistic() -> (Exporter, Vec<Expected>) {
    let exporter = Exporter::start(&[]);
    let (requests, expected) = cadvisor::load(12, 40, 2000, now_ms());
    assert!(
        expected.len() > 5000,
        "thousands of series: {}",
        expected.len()
    );
    for request in &requests {
        assert_eq!(exporter.write(request).status, 204);
    }
    (exporter, expected)
}

#[test]
fn promtool_parses_the_bridged_page_and_finds_the_own_page_lint_clean() {
    let (exporter, expected) = load_realistic();
    let page = exporter.metrics();
    assert_eq!(
        page.lines().filter(|l| !l.starts_with('#')).count(),
        expected.len()
    );
    let (code, report) = promtool_check(&page);
    // Exit 1 with "error while linting" is a parse failure; 3 would be lint advice only.
    assert!(
        !report.contains("error while linting"),
        "promtool could not parse /metrics: {report}"
    );
    assert!(
        matches!(code, Some(0) | Some(3)),
        "promtool exit {code:?}: {report}"
    );

    let own = exporter.get("/metrics/exporter").text();
    let (code, report) = promtool_check(&own);
    assert_eq!(
        (code, report.as_str()),
        (Some(0), ""),
        "own metrics must be lint-clean:\n{own}"
    );
    assert!(
        own.contains("process_resident_memory_bytes "),
        "process metrics are there"
    );
}

#[test]
fn promtool_notices_a_broken_page() {
    // The check above is only worth something if promtool does fail on a broken page.
    let (code, report) = promtool_check("# TYPE m gauge\nm{a=\"unterminated} 1\n");
    assert_eq!(code, Some(1), "{report}");
    assert!(report.contains("error while linting"), "{report}");
}

#[test]
fn python_prometheus_client_reads_back_every_series_type_and_help() {
    let (exporter, expected) = load_realistic();
    let page = exporter.metrics();
    let parsed = python_parse(&page);

    let mut samples: HashMap<(String, String), String> = HashMap::new();
    let mut families: HashMap<String, (String, String)> = HashMap::new();
    for line in parsed.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields[..] {
            ["F", name, kind, help] => {
                families.insert(name.to_owned(), (kind.to_owned(), help.to_owned()));
            }
            ["S", name, labels, value] => {
                let previous =
                    samples.insert((name.to_owned(), labels.to_owned()), value.to_owned());
                assert!(previous.is_none(), "{name}{labels} exposed twice");
            }
            _ => panic!("unexpected parser output line {line:?}"),
        }
    }
    assert_eq!(
        samples.len(),
        expected.len(),
        "every series once, nothing more"
    );
    for series in &expected {
        let key = (series.name.clone(), python_json_labels(&series.labels));
        let value = samples
            .get(&key)
            .unwrap_or_else(|| panic!("{key:?} not read back"));
        assert_eq!(value.parse::<f64>().unwrap(), series.value, "{key:?}");
    }
    for (name, kind, help) in FAMILIES {
        let kind = [
            "untyped",
            "counter",
            "gauge",
            "histogram",
            "gaugehistogram",
            "summary",
        ][kind as usize];
        // prometheus_client names a counter family without its _total suffix.
        let family = if kind == "counter" {
            name.trim_end_matches("_total")
        } else {
            name
        };
        let (parsed_kind, parsed_help) = families
            .get(family)
            .unwrap_or_else(|| panic!("family {family} missing"));
        assert_eq!(parsed_kind, kind, "{family}");
        assert_eq!(parsed_help, &python_json_string(help), "{family}");
    }
}
