//! The Kubernetes manifests in deploy/ and the Prometheus configurations beside them say the
//! same: the ServiceMonitor scrapes both pages, and prometheus1 gets the same relabelling rules
//! from every shipped configuration. (tests/chart.rs validates every object, which the chart
//! renders, and starts the binary with its flags.)

use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn manifest(file: &str) -> Value {
    let text = std::fs::read_to_string(manifests_dir().join(file)).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

#[test]
fn the_service_monitor_scrapes_both_pages_and_honours_the_bridged_labels() {
    let monitor = manifest("kubernetes/servicemonitor.yaml");
    let endpoints = monitor["spec"]["endpoints"].as_sequence().unwrap();
    let metrics = endpoints.iter().find(|e| e["path"] == "/metrics").unwrap();
    assert_eq!(metrics["honorLabels"], true);
    assert_eq!(metrics["port"], "http");
    assert!(endpoints.iter().any(|e| e["path"] == "/metrics/exporter"));
    let service = manifest("kubernetes/service.yaml");
    assert_eq!(service["spec"]["ports"][0]["name"], "http");
    for base in ["kubernetes", "scale-out"] {
        let kustomization = manifest(&format!("{base}/kustomization.yaml"));
        for resource in kustomization["resources"].as_sequence().unwrap() {
            let path = manifests_dir().join(base).join(resource.as_str().unwrap());
            assert!(path.exists(), "{}", path.display());
        }
    }
}

/// A relabel rule with prometheus-operator's camelCase keys in the configuration file's
/// snake_case.
fn snake_case(rule: &Value) -> Value {
    let mut out = serde_yaml_ng::Mapping::new();
    for (key, value) in rule.as_mapping().unwrap() {
        let key = key.as_str().unwrap();
        let snake: String = key
            .chars()
            .flat_map(|c| match c.is_ascii_uppercase() {
                true => vec!['_', c.to_ascii_lowercase()],
                false => vec![c],
            })
            .collect();
        out.insert(Value::from(snake), value.clone());
    }
    Value::Mapping(out)
}

fn config(path: &str) -> Value {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

#[test]
fn prometheus1_gets_the_same_rules_from_every_shipped_configuration() {
    let example = config("examples/prometheus1.yml");
    let rules = example["remote_write"][0]["write_relabel_configs"]
        .as_sequence()
        .unwrap()
        .clone();
    let operator = manifest("kubernetes/prometheus1-remote-write.yaml");
    let operator_rules: Vec<Value> = operator["spec"]["remoteWrite"][0]["writeRelabelConfigs"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(snake_case)
        .collect();
    assert_eq!(operator_rules, rules, "the prometheus-operator snippet");
    // Each shard: the example's rules, with the shard's two before the final labelkeep.
    let shards = config("deploy/scale-out/prometheus1.yml");
    for (index, remote_write) in shards["remote_write"]
        .as_sequence()
        .unwrap()
        .iter()
        .enumerate()
    {
        let shard_rules = remote_write["write_relabel_configs"].as_sequence().unwrap();
        let (last, first) = rules.split_last().unwrap();
        assert_eq!(&shard_rules[..first.len()], first, "shard {index}");
        assert_eq!(shard_rules.last(), Some(last), "shard {index}");
        let keep = &shard_rules[shard_rules.len() - 2];
        assert_eq!(keep["regex"].as_str(), Some(index.to_string().as_str()));
    }
}
