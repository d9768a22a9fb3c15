//! The Helm chart (charts/k8s-exporter) and every kustomization under deploy/, checked with the
//! real tools: `helm` 3 and `kubectl` (with kustomize) as `make deps` installs them, every core
//! object against the Kubernetes schemas (kubernetes-validate, strict), every ServiceMonitor and
//! `Prometheus` against prometheus-operator's published CRDs (tests/validate_crd.py), and the
//! rendered flags against the binary itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;
use serde_yaml_ng::Value;

use k8s_exporter::ops::flags::Flags;

use crate::support::peers::TempDir;
use crate::support::upstream::upstream_dir;
use crate::support::{run_with_stdin, Exporter};

const RELEASE: &str = "k8s-exporter";
const NAMESPACE: &str = "monitoring";

fn project() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn chart() -> PathBuf {
    project().join("charts/k8s-exporter")
}

/// A tool `make deps` (`make k8s-tools`) puts in target/k8s-tools.
fn tool(name: &str) -> PathBuf {
    let path = project().join(format!("target/k8s-tools/{name}/{name}"));
    assert!(
        path.is_file(),
        "{} is missing: `make deps` installs it",
        path.display()
    );
    path
}

fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(project())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()))
}

fn said(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Every object of a stream of YAML documents.
fn documents(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|document| Value::deserialize(document).expect("YAML"))
        .filter(|value| !value.is_null())
        .collect()
}

/// `helm template` of the chart with `--set` values; the output, or what helm said.
fn helm_template(chart: &Path, sets: &[&str], extra: &[&str]) -> Result<String, String> {
    let mut args = vec![
        "template",
        RELEASE,
        chart.to_str().unwrap(),
        "--namespace",
        NAMESPACE,
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    args.extend(extra);
    let output = run(&tool("helm"), &args);
    if output.status.success() {
        Ok(String::from_utf8(output.stdout).unwrap())
    } else {
        Err(said(&output))
    }
}

fn rendered(sets: &[&str]) -> Vec<Value> {
    let text = helm_template(&chart(), sets, &[]).unwrap_or_else(|e| panic!("{sets:?}: {e}"));
    documents(&text)
}

fn kind(object: &Value) -> &str {
    object["kind"].as_str().expect("every object has a kind")
}

/// Kinds of prometheus-operator, checked against its CRDs rather than Kubernetes' schemas.
const OPERATOR_KINDS: [&str; 3] = ["ServiceMonitor", "Prometheus", "PrometheusRule"];

/// Every core object passes the Kubernetes schemas strictly, every operator object its CRD.
fn assert_valid(objects: &[Value], what: &str) {
    let dir = TempDir::new("validate");
    let (operator, core): (Vec<&Value>, Vec<&Value>) = objects
        .iter()
        .partition(|o| OPERATOR_KINDS.contains(&kind(o)));
    let files: Vec<PathBuf> = core
        .iter()
        .enumerate()
        .map(|(i, object)| {
            let file = dir.0.join(format!("{i}-{}.yaml", kind(object)));
            std::fs::write(&file, serde_yaml_ng::to_string(object).unwrap()).unwrap();
            file
        })
        .collect();
    if !files.is_empty() {
        let output = Command::new("python3")
            .args(["-m", "kubernetes_validate", "--strict"])
            .args(["--kubernetes-version", "1.30.0"])
            .args(&files)
            .output()
            .expect("kubernetes-validate (`make deps` installs it)");
        let verdicts = said(&output);
        assert!(output.status.success(), "{what}: {verdicts}");
        for file in &files {
            let name = file.display().to_string();
            let verdict = verdicts
                .lines()
                .find(|line| line.contains(&format!(" {name} ")))
                .unwrap_or_else(|| panic!("{what}: no verdict on {name}: {verdicts}"));
            assert!(verdict.contains("passed"), "{what}: {verdict}");
        }
    }
    if !operator.is_empty() {
        let crds = upstream_dir().join("prometheus-operator/crd");
        let script = project().join("tests/validate_crd.py");
        let args = [
            script.to_str().unwrap().to_owned(),
            crds.join("monitoring.coreos.com_servicemonitors.yaml")
                .display()
                .to_string(),
            crds.join("monitoring.coreos.com_prometheuses.yaml")
                .display()
                .to_string(),
            crds.join("monitoring.coreos.com_prometheusrules.yaml")
                .display()
                .to_string(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let json = serde_json::to_string(&operator).unwrap();
        let output = run_with_stdin("python3", &args, &json);
        assert!(output.status.success(), "{what}: {}", said(&output));
    }
}

#[test]
fn the_chart_lints_strictly_and_is_at_the_crate_version() {
    let output = run(
        &tool("helm"),
        &["lint", "--strict", chart().to_str().unwrap()],
    );
    assert!(output.status.success(), "{}", said(&output));
    let meta: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(chart().join("Chart.yaml")).unwrap())
            .unwrap();
    assert_eq!(meta["apiVersion"], "v2");
    for field in ["version", "appVersion"] {
        assert_eq!(
            meta[field].as_str(),
            Some(env!("CARGO_PKG_VERSION")),
            "{field}"
        );
    }
}

#[test]
fn every_rendering_passes_the_kubernetes_schemas_and_the_operator_crds() {
    let defaults = rendered(&[]);
    let kinds: Vec<&str> = defaults.iter().map(kind).collect();
    assert_eq!(kinds, ["PodDisruptionBudget", "Service", "Deployment"]);
    assert_valid(&defaults, "defaults");

    let all = rendered(&[
        "shards=3",
        "serviceMonitor.enabled=true",
        "networkPolicy.enabled=true",
    ]);
    let mut kinds: Vec<&str> = all.iter().map(kind).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Service",
            "Service",
            "ServiceMonitor",
            "StatefulSet"
        ]
    );
    assert_valid(&all, "shards=3 with a ServiceMonitor and a NetworkPolicy");
    let shards = all.iter().find(|o| kind(o) == "StatefulSet").unwrap();
    assert_eq!(shards["spec"]["replicas"], 3);
    let headless = all
        .iter()
        .find(|o| kind(o) == "Service" && o["spec"]["clusterIP"] == "None")
        .expect("a headless Service for the shards");
    assert_eq!(shards["spec"]["serviceName"], headless["metadata"]["name"]);

    let monitor = rendered(&[
        "serviceMonitor.enabled=true",
        "serviceMonitor.namespace=observability",
        "serviceMonitor.interval=15s",
        "serviceMonitor.scrapeTimeout=10s",
        "serviceMonitor.additionalLabels.release=prometheus2",
        "serviceMonitor.metricRelabelings[0].action=labeldrop",
        "serviceMonitor.metricRelabelings[0].regex=id",
    ]);
    assert_valid(&monitor, "a ServiceMonitor with every setting");
    let monitor = monitor
        .iter()
        .find(|o| kind(o) == "ServiceMonitor")
        .unwrap();
    assert_eq!(monitor["metadata"]["namespace"], "observability");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus2");
    assert_eq!(
        monitor["spec"]["namespaceSelector"]["matchNames"][0],
        NAMESPACE
    );
    let endpoints = monitor["spec"]["endpoints"].as_sequence().unwrap();
    let metrics = endpoints.iter().find(|e| e["path"] == "/metrics").unwrap();
    assert_eq!(metrics["honorLabels"], true);
    assert_eq!(metrics["interval"], "15s");
    assert_eq!(metrics["metricRelabelings"][0]["regex"], "id");
    assert!(endpoints.iter().any(|e| e["path"] == "/metrics/exporter"));

    let with_web_config = rendered(&["webConfig=k8s-exporter-web", "probeScheme=HTTPS"]);
    assert_valid(&with_web_config, "webConfig");
    let pod = &with_web_config
        .iter()
        .find(|o| kind(o) == "Deployment")
        .unwrap()["spec"]["template"]["spec"];
    assert_eq!(
        pod["volumes"][0]["secret"]["secretName"],
        "k8s-exporter-web"
    );
    let container = &pod["containers"][0];
    assert_eq!(container["volumeMounts"][0]["readOnly"], true);
    assert_eq!(container["livenessProbe"]["httpGet"]["scheme"], "HTTPS");
}

#[test]
fn misspelt_keys_and_bad_values_are_refused_with_a_clear_message() {
    for (set, reason) in [
        (
            "serviceMonitr.enabled=true",
            "Additional property serviceMonitr is not allowed",
        ),
        ("shards=0", "shards: Must be greater than or equal to 1"),
        ("shards=-1", "shards: Must be greater than or equal to 1"),
        ("service.port=70000", "service.port"),
        ("serviceMonitor.interval=soon", "serviceMonitor.interval"),
        ("probeScheme=TCP", "probeScheme"),
    ] {
        let refused = helm_template(&chart(), &[set], &[]).expect_err(set);
        assert!(refused.contains(reason), "{set}: {refused}");
    }
    let refused = helm_template(&chart(), &[], &["--set-string", "shards=three"]).unwrap_err();
    assert!(refused.contains("shards"), "{refused}");
}

/// The container's arguments, with the listen address on loopback and the web config file
/// where `web_config` is, started as the real binary; its probes answer.
fn assert_starts(objects: &[Value], web_config: Option<&Path>) {
    let workload = objects
        .iter()
        .find(|o| matches!(kind(o), "Deployment" | "StatefulSet"))
        .unwrap();
    let container = &workload["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<String> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    let flags = Flags::parse("k8s_exporter", &args, |_| None)
        .unwrap_or_else(|_| panic!("the chart's flags do not parse: {args:?}"));
    let port = container["ports"][0]["containerPort"].as_u64().unwrap();
    assert_eq!(flags.listen_addresses().len(), 1);
    assert!(flags.listen_addresses()[0].ends_with(&format!(":{port}")));
    let image = format!("k8s_exporter:{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(container["image"].as_str(), Some(image.as_str()));
    let args: Vec<String> = args
        .into_iter()
        .filter(|a| !a.starts_with("--web.listen-address"))
        .map(
            |a| match (a.strip_prefix("--web.config.file="), web_config) {
                (Some(mounted), Some(file)) => {
                    assert!(mounted.starts_with('/'), "{mounted}");
                    format!("--web.config.file={}", file.display())
                }
                _ => a,
            },
        )
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let exporter = Exporter::start(&args);
    for probe in ["livenessProbe", "readinessProbe"] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["port"], "http", "{probe}");
        let path = get["path"].as_str().unwrap();
        assert_eq!(exporter.get(path).status, 200, "{probe} {path}");
    }
    // Termination waits longer than the exporter's own graceful stop (5 s); no privilege.
    let pod = &workload["spec"]["template"]["spec"];
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(grace > 5, "terminationGracePeriodSeconds {grace}");
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"][0], "ALL");
    assert_eq!(pod["securityContext"]["runAsUser"], 65534);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
}

#[test]
fn the_rendered_flags_start_the_binary() {
    assert_starts(&rendered(&[]), None);
    assert_starts(&rendered(&["shards=3"]), None);
    let dir = TempDir::new("chart-web-config");
    let file = dir.0.join("web.config.file");
    // A web config file with basic auth, as the Secret would hold; /healthz stays open.
    let hash = bcrypt::hash("secret", 4).unwrap();
    std::fs::write(&file, format!("basic_auth_users:\n  prometheus: {hash}\n")).unwrap();
    let objects = rendered(&["webConfig=k8s-exporter-web"]);
    assert_starts(&objects, Some(&file));
}

/// The relabel rules of every `remote_write` block of a prometheus1 configuration.
fn remote_writes(config: &Value) -> Vec<(String, Value)> {
    config["remote_write"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|block| {
            let url = block["url"].as_str().unwrap().to_owned();
            (url, block["write_relabel_configs"].clone())
        })
        .collect()
}

/// NOTES.txt as helm renders it after an install. `helm template` leaves NOTES.txt out and
/// `helm install --dry-run` wants a cluster, so it is rendered as a template of a copy of the
/// chart; it is YAML (comments, then `remote_write`), so it renders as any template does.
fn notes(sets: &[&str]) -> Value {
    let copy = TempDir::new("chart-notes");
    let output = Command::new("cp")
        .args(["-r", chart().to_str().unwrap()])
        .arg(copy.0.join("chart"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", said(&output));
    let templates = copy.0.join("chart/templates");
    std::fs::copy(templates.join("NOTES.txt"), templates.join("notes.yaml")).unwrap();
    let show = ["--show-only", "templates/notes.yaml"];
    let text = helm_template(&copy.0.join("chart"), sets, &show).unwrap();
    documents(&text).remove(0)
}

#[test]
fn notes_give_prometheus1_the_remote_write_blocks_of_the_shipped_configurations() {
    let read = |path: &str| -> Value {
        serde_yaml_ng::from_str(&std::fs::read_to_string(project().join(path)).unwrap()).unwrap()
    };
    // Three shards: exactly deploy/scale-out/prometheus1.yml's blocks.
    assert_eq!(
        remote_writes(&notes(&["shards=3"])),
        remote_writes(&read("deploy/scale-out/prometheus1.yml"))
    );
    // One replica: examples/prometheus1.yml's rules, to the Service.
    let one = remote_writes(&notes(&[]));
    let example = remote_writes(&read("examples/prometheus1.yml"));
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].1, example[0].1);
    assert_eq!(
        one[0].0,
        format!("http://{RELEASE}.{NAMESPACE}.svc:9201/write")
    );
    // N shards: N blocks, each keeping its index of `modulus: N`.
    let five = remote_writes(&notes(&["shards=5"]));
    assert_eq!(five.len(), 5);
    for (index, (url, rules)) in five.iter().enumerate() {
        assert!(url.contains(&format!("{RELEASE}-{index}.")), "{url}");
        let rules = rules.as_sequence().unwrap();
        assert!(rules.iter().any(|r| r["modulus"] == 5));
        let keep = &rules[rules.len() - 2];
        assert_eq!(keep["regex"].as_str(), Some(index.to_string().as_str()));
    }
}

#[test]
fn the_prometheus_rule_holds_the_shipped_alerts_with_the_runbook_prefix() {
    let shipped_path = project().join("deploy/rules/k8s_exporter.rules.yml");
    let shipped_text = std::fs::read_to_string(&shipped_path).unwrap();
    assert_eq!(
        std::fs::read_to_string(chart().join("files/k8s_exporter.rules.yml")).unwrap(),
        shipped_text,
        "the chart's copy of the rules differs: run `make manifests`"
    );
    let objects = rendered(&[
        "prometheusRule.enabled=true",
        "prometheusRule.namespace=observability",
        "prometheusRule.additionalLabels.release=prometheus2",
        "prometheusRule.runbookUrlPrefix=https://git.example/k8s_exporter/blob/main/",
    ]);
    assert_valid(&objects, "a PrometheusRule with every setting");
    let rule = objects
        .iter()
        .find(|o| kind(o) == "PrometheusRule")
        .unwrap();
    assert_eq!(rule["metadata"]["namespace"], "observability");
    assert_eq!(rule["metadata"]["labels"]["release"], "prometheus2");
    let mut expected: Value = serde_yaml_ng::from_str(&shipped_text).unwrap();
    for group in expected["groups"].as_sequence_mut().unwrap() {
        for alert in group["rules"].as_sequence_mut().unwrap() {
            let url = alert["annotations"]["runbook_url"].as_str().unwrap();
            alert["annotations"]["runbook_url"] =
                Value::from(format!("https://git.example/k8s_exporter/blob/main/{url}"));
        }
    }
    assert_eq!(rule["spec"]["groups"], expected["groups"]);
    let off = rendered(&[]);
    assert!(
        off.iter().all(|o| kind(o) != "PrometheusRule"),
        "off by default"
    );
}

#[test]
fn the_plain_manifests_are_the_chart_rendered() {
    let out = TempDir::new("manifests");
    let output = Command::new("make")
        .args(["-s", "manifests"])
        .arg(format!("MANIFESTS_OUT={}", out.0.display()))
        .current_dir(project())
        .output()
        .expect("make");
    assert!(output.status.success(), "{}", said(&output));
    let mut files = Vec::new();
    let mut dirs = vec![out.0.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert_eq!(files.len(), 8, "{files:?}");
    for file in files {
        let relative = file.strip_prefix(&out.0).unwrap();
        let shipped = project().join("deploy").join(relative);
        assert_eq!(
            std::fs::read_to_string(&shipped).unwrap_or_default(),
            std::fs::read_to_string(&file).unwrap(),
            "{} differs from the chart: run `make manifests`",
            shipped.display()
        );
    }
}

#[test]
fn every_kustomization_builds_and_what_it_builds_is_valid() {
    // The components, applied to the single replica as its comment says.
    for component in ["network-policy", "prometheus-rule"] {
        let with_component = project().join(format!("target/kustomize-{component}"));
        std::fs::create_dir_all(&with_component).unwrap();
        std::fs::write(
            with_component.join("kustomization.yaml"),
            format!(
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
                 resources:\n  - ../../deploy/kubernetes\n\
                 components:\n  - ../../deploy/kubernetes/{component}\n"
            ),
        )
        .unwrap();
    }
    for (dir, workload) in [
        ("deploy/kubernetes", "Deployment"),
        ("deploy/scale-out", "StatefulSet"),
        ("target/kustomize-network-policy", "Deployment"),
        ("target/kustomize-prometheus-rule", "Deployment"),
    ] {
        let output = run(&tool("kubectl"), &["kustomize", dir]);
        assert!(output.status.success(), "{dir}: {}", said(&output));
        let objects = documents(&String::from_utf8(output.stdout).unwrap());
        assert_valid(&objects, dir);
        let kinds: Vec<&str> = objects.iter().map(kind).collect();
        assert_eq!(
            kinds
                .iter()
                .filter(|k| ["Deployment", "StatefulSet"].contains(k))
                .collect::<Vec<_>>(),
            [&workload],
            "{dir}: {kinds:?}"
        );
        assert!(objects
            .iter()
            .all(|o| o["metadata"]["namespace"] == NAMESPACE));
        if dir.contains("network-policy") {
            assert!(kinds.contains(&"NetworkPolicy"), "{kinds:?}");
        }
        if dir.contains("prometheus-rule") {
            assert!(kinds.contains(&"PrometheusRule"), "{kinds:?}");
        }
    }
    // prometheus1's side for prometheus-operator, not part of any kustomization.
    let snippet =
        std::fs::read_to_string(project().join("deploy/kubernetes/prometheus1-remote-write.yaml"))
            .unwrap();
    assert_valid(&documents(&snippet), "prometheus1-remote-write.yaml");
}
