//! The Kubernetes manifests in deploy/ (the single replica, and the shards of the scale-out
//! recipe): valid against the Kubernetes schemas of a maintained validator (Python's
//! kubernetes-validate, offline, strict), and their flags are the binary's, so that they
//! cannot drift from the code.

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_exporter::ops::flags::Flags;
use serde_yaml_ng::Value;

use crate::support::Exporter;

fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Every Kubernetes YAML file under deploy/ (the Prometheus configurations are `.yml`).
fn manifest_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![manifests_dir()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Kinds the Kubernetes schemas do not hold: kustomize's own files and prometheus-operator's
/// custom resources.
const NOT_CORE: [&str; 4] = ["Kustomization", "Component", "ServiceMonitor", "Prometheus"];

#[test]
fn every_core_object_passes_the_kubernetes_schemas_strictly() {
    let files = manifest_files();
    let output = Command::new("python3")
        .args([
            "-m",
            "kubernetes_validate",
            "--strict",
            "--kubernetes-version",
            "1.30.0",
        ])
        .args(&files)
        .output()
        .expect("kubernetes-validate (pip install kubernetes-validate; `make deps` does)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{said}");
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let kind: Value = serde_yaml_ng::from_str(&text).unwrap();
        let kind = kind["kind"]
            .as_str()
            .expect("every manifest has a kind")
            .to_owned();
        let name = file.display().to_string();
        let verdict = said
            .lines()
            .find(|line| line.contains(&format!(" {name} ")))
            .unwrap_or_else(|| panic!("no verdict on {name}: {said}"));
        if NOT_CORE.contains(&kind.as_str()) {
            assert!(verdict.contains("Couldn't find schema"), "{verdict}");
        } else {
            assert!(
                verdict.starts_with("INFO") && verdict.contains("passed"),
                "{verdict}"
            );
        }
    }
    let kinds: Vec<String> = files
        .iter()
        .map(|f| {
            let value: Value =
                serde_yaml_ng::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
            value["kind"].as_str().unwrap().to_owned()
        })
        .collect();
    for kind in [
        "Deployment",
        "StatefulSet",
        "Service",
        "ServiceMonitor",
        "PodDisruptionBudget",
        "NetworkPolicy",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "a {kind} in {kinds:?}");
    }
}

fn manifest(file: &str) -> Value {
    let text = std::fs::read_to_string(manifests_dir().join(file)).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

#[test]
fn the_deployment_and_the_shards_run_the_binary_with_its_flags_and_probes_that_answer() {
    let deployment = manifest("kubernetes/deployment.yaml");
    let shards = manifest("scale-out/statefulset.yaml");
    assert_eq!(
        shards["spec"]["template"], deployment["spec"]["template"],
        "the shards run the same pod as the single replica"
    );
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args: Vec<String> = container["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    // The real parser takes them exactly as written, without help from the environment.
    let flags = Flags::parse("k8s_exporter", &args, |_| None)
        .unwrap_or_else(|_| panic!("the manifest's flags do not parse: {args:?}"));
    // The image `make image` builds, at this version.
    let image = format!("k8s_exporter:{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(container["image"].as_str(), Some(image.as_str()));
    let port = container["ports"][0]["containerPort"].as_u64().unwrap();
    assert_eq!(container["ports"][0]["name"], "http");
    assert_eq!(port, 9201);
    assert!(
        flags.web_listen_address.ends_with(&format!(":{port}")),
        "{} listens where the containerPort says",
        flags.web_listen_address
    );
    // The binary itself, with the same flags, on loopback instead of every interface.
    let others: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--web.listen-address"))
        .collect();
    let exporter = Exporter::start(&others);
    for probe in ["livenessProbe", "readinessProbe"] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["port"], "http", "{probe}");
        let path = get["path"].as_str().unwrap();
        assert_eq!(exporter.get(path).status, 200, "{probe} {path}");
    }
    // Termination waits longer than the exporter's own graceful stop (5 s).
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(grace > 5, "terminationGracePeriodSeconds {grace}");
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"][0], "ALL");
    assert_eq!(pod["securityContext"]["runAsUser"], 65534);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
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
