//! The alerting rules for the bridge itself (`deploy/rules/`): `promtool check rules` and
//! `promtool test rules` pass, every alert has a unit test that makes it fire and one that keeps
//! it quiet, and a real Prometheus, scraping a real bridge, evaluates every rule without error
//! and drives the no-samples alert to firing once the writes stop.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use serde_yaml_ng::Value;

use crate::support::peers::{api, prometheus, TempDir};
use crate::support::{eventually, find_tool, now_ms, series, write_request, Exporter};

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/rules")
}

fn yaml(path: &Path) -> Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn promtool(args: &[&str]) -> String {
    let output = Command::new(find_tool("promtool"))
        .args(args)
        .current_dir(rules_dir())
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?}:\n{said}");
    said
}

/// The alerts of the rules file, by name, each with its rule.
fn alerts() -> Vec<(String, Value)> {
    let rules = yaml(&rules_dir().join("k8s_exporter.rules.yml"));
    rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|group| group["rules"].as_sequence().unwrap().iter())
        .map(|rule| (rule["alert"].as_str().unwrap().to_owned(), rule.clone()))
        .collect()
}

#[test]
fn promtool_checks_the_rules_and_passes_their_unit_tests() {
    let checked = promtool(&["check", "rules", "k8s_exporter.rules.yml"]);
    assert!(
        checked.contains(&format!("SUCCESS: {} rules found", alerts().len())),
        "{checked}"
    );
    let tested = promtool(&["test", "rules", "k8s_exporter.rules.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn every_alert_is_tested_firing_and_quiet_and_documented() {
    let tests = yaml(&rules_dir().join("k8s_exporter.rules.test.yml"));
    let runbook =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/runbook.md"))
            .unwrap();
    let (mut fired, mut quiet) = (BTreeSet::new(), BTreeSet::new());
    for test in tests["tests"].as_sequence().unwrap() {
        let instances: BTreeSet<String> = test["input_series"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|s| {
                let series = s["series"].as_str()?;
                let at = series.find("instance=\"")? + "instance=\"".len();
                Some(series[at..].split('"').next()?.to_owned())
            })
            .collect();
        for check in test["alert_rule_test"].as_sequence().unwrap() {
            let name = check["alertname"].as_str().unwrap().to_owned();
            let expected = check["exp_alerts"].as_sequence().unwrap();
            let firing: BTreeSet<String> = expected
                .iter()
                .filter_map(|a| Some(a["exp_labels"]["instance"].as_str()?.to_owned()))
                .collect();
            if !expected.is_empty() {
                fired.insert(name.clone());
            }
            // Quiet: nothing expected, or an instance in the input that is not expected to fire.
            if expected.is_empty() || instances.iter().any(|i| !firing.contains(i)) {
                quiet.insert(name);
            }
        }
    }
    for (name, rule) in alerts() {
        assert!(fired.contains(&name), "no test makes {name} fire");
        assert!(quiet.contains(&name), "no test keeps {name} quiet");
        let labels = &rule["labels"];
        assert!(
            matches!(labels["severity"].as_str(), Some("warning" | "critical")),
            "{name}: severity"
        );
        let annotations = &rule["annotations"];
        for key in ["summary", "description"] {
            assert!(annotations[key].as_str().is_some(), "{name}: no {key}");
        }
        let anchor = name.to_lowercase();
        assert_eq!(
            annotations["runbook_url"].as_str(),
            Some(format!("docs/runbook.md#{anchor}").as_str())
        );
        assert!(
            runbook.contains(&format!("\n## {name}\n")),
            "docs/runbook.md has no section {name} (anchor #{anchor})"
        );
    }
}

#[test]
fn a_real_prometheus_evaluates_every_rule_and_fires_the_no_samples_alert() {
    let dir = TempDir::new("rules-prometheus");
    // The rules as shipped, but for the no-samples alert: a short `for`, and a rate window a
    // few scrapes long, so that it fires within seconds of the last write.
    let shipped = std::fs::read_to_string(rules_dir().join("k8s_exporter.rules.yml")).unwrap();
    let quick = shipped.replace(
        "expr: rate(k8s_exporter_samples_received_total{job=~\"k8s-exporter.*\"}[5m]) == 0\n        for: 10m",
        "expr: rate(k8s_exporter_samples_received_total{job=~\"k8s-exporter.*\"}[4s]) == 0\n        for: 2s",
    );
    assert_ne!(quick, shipped, "the no-samples rule was found");
    let rules_path = dir.0.join("k8s_exporter.rules.yml");
    std::fs::write(&rules_path, quick).unwrap();

    let exporter = Exporter::start(&[]);
    let config = json!({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [rules_path],
        "scrape_configs": [
            {"job_name": "k8s-exporter", "honor_labels": true,
             "static_configs": [{"targets": [exporter.address]}]},
            {"job_name": "k8s-exporter-self", "metrics_path": "/metrics/exporter",
             "static_configs": [{"targets": [exporter.address]}]},
        ],
    });
    let prometheus = prometheus("rules", &config, &dir.0);

    // Writes keep coming: every rule evaluates, and the no-samples alert stays quiet.
    let write = |value: f64| {
        let request = write_request(vec![series(
            &[("__name__", "bridged"), ("job", "app")],
            &[(value, now_ms())],
        )]);
        assert_eq!(exporter.write(&request).status, 204);
    };
    let names: BTreeSet<String> = alerts().into_iter().map(|(name, _)| name).collect();
    eventually(Duration::from_secs(30), "every rule evaluated", || {
        write(1.0);
        std::thread::sleep(Duration::from_millis(300));
        let rules = api(&prometheus, "/api/v1/rules");
        let evaluated: Vec<&serde_json::Value> = rules["data"]["groups"]
            .as_array()?
            .iter()
            .flat_map(|group| group["rules"].as_array().unwrap())
            .collect();
        // Health is "unknown" until a rule's first evaluation, then "ok", or "err" with why.
        for rule in &evaluated {
            assert_ne!(rule["health"], "err", "{rule}");
        }
        let seen: BTreeSet<String> = evaluated
            .iter()
            .filter(|rule| rule["health"] == "ok")
            .map(|rule| rule["name"].as_str().unwrap().to_owned())
            .collect();
        (seen == names).then_some(())
    });
    let firing = |name: &str| {
        let alerts = api(&prometheus, "/api/v1/alerts");
        alerts["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|alert| alert["labels"]["alertname"] == name && alert["state"] == "firing")
    };
    assert!(!firing("K8sExporterNoSamplesReceived"));
    assert!(!firing("K8sExporterDown"));

    // The writes stop: the alert fires.
    eventually(
        Duration::from_secs(30),
        "the no-samples alert firing",
        || firing("K8sExporterNoSamplesReceived").then_some(()),
    );
    assert!(!firing("K8sExporterDown"), "the bridge itself is up");
}
