//! A deterministic, cAdvisor-shaped load: what prometheus1 forwards after scraping kubelets.

use std::collections::BTreeMap;

use k8s_exporter::write::proto::{MetricMetadata, WriteRequest};

use super::{metadata, series};

/// One series as the test expects to read it back: name, labels sorted by name, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A generated series: name, labels in generation order, value.
type Generated = (String, Vec<(&'static str, String)>, f64);

/// Families of the load with their remote-write type number and help.
pub const FAMILIES: [(&str, i32, &str); 10] = [
    ("container_cpu_usage_seconds_total", 1, "Cumulative cpu time consumed in seconds."),
    ("container_cpu_load_average_10s", 2, "Value of container cpu load average over the last 10 seconds."),
    ("container_memory_usage_bytes", 2, "Current memory usage in bytes, including all memory regardless of when it was accessed"),
    ("container_memory_max_usage_bytes", 2, "Maximum memory usage recorded in bytes"),
    ("container_fs_usage_bytes", 2, "Number of bytes that are consumed by the container on this filesystem."),
    ("container_fs_limit_bytes", 2, "Number of bytes that can be consumed by the container on this filesystem."),
    ("container_network_receive_bytes_total", 1, "Cumulative count of bytes received"),
    ("kubelet_http_requests_duration_seconds", 3, "Duration in seconds to serve http requests"),
    ("go_gc_duration_seconds", 5, "A summary of the pause duration of garbage collection cycles."),
    ("kube_pod_annotations", 2, "Kubernetes annotations converted to Prometheus labels; values hold \\ and \"quotes\"\nand a second line."),
];

/// Builds the load: requests of at most `batch` series each, metadata in the first, and the
/// series every request holds as they should read back.
pub fn load(
    namespaces: usize,
    pods: usize,
    batch: usize,
    timestamp: i64,
) -> (Vec<WriteRequest>, Vec<Expected>) {
    let mut all: Vec<Generated> = Vec::new();
    let common = [
        ("cluster", "prod-eu-1"),
        ("instance", "node-7:10250"),
        ("job", "kubernetes-cadvisor"),
    ];
    for ns in 0..namespaces {
        let namespace = if ns == 0 {
            "kube-system".to_owned()
        } else {
            format!("team-{ns:02}")
        };
        for p in 0..pods {
            let uid = format!(
                "{:08x}-4e1b-11ee-9c2d-{:012x}",
                ns * 1000 + p,
                p * 7919 + ns
            );
            let pod = format!("web-{ns}-{p:03}-7d9f8b6c5-x{p:02}z");
            for container in ["", "POD", "app", "istio-proxy"] {
                let id = if container.is_empty() {
                    format!("/kubepods/burstable/pod{uid}")
                } else {
                    format!(
                        "/kubepods/burstable/pod{uid}/{:064x}",
                        (ns * 31 + p) * 97 + container.len()
                    )
                };
                let image = match container {
                    "" => String::new(),
                    "POD" => "registry.k8s.io/pause:3.9".into(),
                    "app" => format!(
                        "registry.example.com/team-{ns:02}/web@sha256:{:064x}",
                        ns * 13 + 5
                    ),
                    _ => "docker.io/istio/proxyv2:1.20.2".into(),
                };
                let name = if container.is_empty() {
                    String::new()
                } else {
                    format!("k8s_{container}_{pod}_{namespace}_{uid}_0")
                };
                let mut labels = vec![
                    ("container", container.to_owned()),
                    ("id", id),
                    ("image", image),
                    ("name", name),
                    ("namespace", namespace.clone()),
                    ("pod", pod.clone()),
                ];
                labels.extend(common.iter().map(|(k, v)| (*k, v.to_string())));
                let seed = (ns * 1000 + p * 10 + container.len()) as f64;
                let mut add = |metric: &str, extra: &[(&'static str, &str)], value: f64| {
                    let mut pairs = labels.clone();
                    pairs.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
                    all.push((metric.to_owned(), pairs, value));
                };
                add(
                    "container_cpu_usage_seconds_total",
                    &[("cpu", "total")],
                    1234.5678 + seed,
                );
                add("container_cpu_load_average_10s", &[], 0.0);
                add("container_memory_usage_bytes", &[], 2.5e8 + seed * 4096.0);
                add("container_memory_max_usage_bytes", &[], 3.1e9 + seed);
                add(
                    "container_fs_usage_bytes",
                    &[("device", "/dev/nvme0n1p1")],
                    24576.0 + seed,
                );
                add(
                    "container_fs_limit_bytes",
                    &[("device", "/dev/nvme0n1p1")],
                    1.0737418e11,
                );
                if container.is_empty() {
                    add(
                        "container_network_receive_bytes_total",
                        &[("interface", "eth0")],
                        9.87654321e9 + seed,
                    );
                }
            }
            let annotation = format!("path C:\\tmp\\{p} says \"hi\"\nline two, ünïcødé ✓");
            all.push((
                "kube_pod_annotations".into(),
                vec![
                    ("annotation_note", annotation),
                    ("namespace", namespace.clone()),
                    ("pod", pod.clone()),
                ],
                1.0,
            ));
        }
    }
    for (le, count) in [
        ("0.005", 10.0),
        ("0.1", 250.0),
        ("1", 300.0),
        ("+Inf", 301.0),
    ] {
        all.push((
            "kubelet_http_requests_duration_seconds_bucket".into(),
            vec![("le", le.into()), ("path", "/metrics/cadvisor".into())],
            count,
        ));
    }
    all.push((
        "kubelet_http_requests_duration_seconds_sum".into(),
        vec![("path", "/metrics/cadvisor".into())],
        17.25,
    ));
    all.push((
        "kubelet_http_requests_duration_seconds_count".into(),
        vec![("path", "/metrics/cadvisor".into())],
        301.0,
    ));
    for (quantile, value) in [("0", 1.7e-5), ("0.5", 4.2e-5), ("1", 0.00123)] {
        all.push((
            "go_gc_duration_seconds".into(),
            vec![("quantile", quantile.into())],
            value,
        ));
    }
    all.push(("go_gc_duration_seconds_sum".into(), vec![], 0.0525));
    all.push(("go_gc_duration_seconds_count".into(), vec![], 1024.0));

    let metadata: Vec<MetricMetadata> = FAMILIES
        .iter()
        .map(|(name, kind, help)| metadata(*kind, name, help))
        .collect();
    let mut requests = Vec::new();
    let mut expected = Vec::new();
    for (i, chunk) in all.chunks(batch).enumerate() {
        let timeseries = chunk
            .iter()
            .map(|(name, labels, value)| {
                let mut pairs: Vec<(&str, &str)> =
                    labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                pairs.push(("__name__", name));
                // Reversed, so that the exporter has to sort them.
                pairs.reverse();
                series(&pairs, &[(*value, timestamp)])
            })
            .collect();
        requests.push(WriteRequest {
            timeseries,
            metadata: if i == 0 { metadata.clone() } else { vec![] },
        });
        expected.extend(chunk.iter().map(|(name, labels, value)| {
            Expected {
                name: name.clone(),
                // Prometheus treats an empty label value as no label.
                labels: labels
                    .iter()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
                value: *value,
            }
        }));
    }
    (requests, expected)
}

/// One series of the kubelet fixture: metric name, labels, value.
pub struct KubeletSeries {
    pub name: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

/// A label one family of the kubelet fixture has beyond the common ones.
type ExtraLabel = (&'static str, &'static str);

/// Families of the kubelet fixture: name, text-format type, help.
pub const KUBELET_FAMILIES: [(&str, &str, &str); 7] = [
    (
        "container_cpu_load_average_10s",
        "gauge",
        "Value of container cpu load average over the last 10 seconds.",
    ),
    (
        "container_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed in seconds.",
    ),
    (
        "container_fs_limit_bytes",
        "gauge",
        "Number of bytes that can be consumed by the container on this filesystem.",
    ),
    (
        "container_fs_usage_bytes",
        "gauge",
        "Number of bytes that are consumed by the container on this filesystem.",
    ),
    (
        "container_memory_max_usage_bytes",
        "gauge",
        "Maximum memory usage recorded in bytes",
    ),
    (
        "container_memory_usage_bytes",
        "gauge",
        "Current memory usage in bytes, including all memory regardless of when it was accessed",
    ),
    (
        "container_network_receive_bytes_total",
        "counter",
        "Cumulative count of bytes received",
    ),
];

/// Pods of the kubelet fixture: namespace, pod, app containers.
pub const KUBELET_PODS: [(&str, &str, &[&str]); 6] = [
    ("kube-system", "coredns-5d78c9869d-7xk2p", &["coredns"]),
    ("kube-system", "kube-proxy-q8w4z", &["kube-proxy"]),
    ("payments", "api-7f9c8d6b5-q2w3e", &["api", "istio-proxy"]),
    ("payments", "worker-0", &["worker"]),
    ("frontend", "web-6b8d9f7c4-zx81m", &["web", "istio-proxy"]),
    ("monitoring", "node-agent-4kq9s", &["agent"]),
];

/// What a kubelet's /metrics/cadvisor shows for the pods above: for every pod its own cgroup
/// (container=""), its pause container ("POD") and its app containers, plus cgroups of the
/// node itself that belong to no pod. Values differ everywhere, and a pod's own cgroup holds
/// the sum of its containers, as cAdvisor reports it.
pub fn kubelet_fixture() -> Vec<KubeletSeries> {
    let mut out = Vec::new();
    let mut add =
        |id: String, container: &str, image: &str, namespace: &str, pod: &str, base: f64| {
            let labels = |extra: Option<ExtraLabel>| {
                let mut labels = vec![
                    ("container", container.to_owned()),
                    ("id", id.clone()),
                    ("image", image.to_owned()),
                    (
                        "name",
                        if container.is_empty() {
                            String::new()
                        } else {
                            format!("k8s_{container}_{pod}")
                        },
                    ),
                    ("namespace", namespace.to_owned()),
                    ("pod", pod.to_owned()),
                ];
                labels.extend(extra.map(|(k, v)| (k, v.to_owned())));
                labels
            };
            let families: [(&'static str, Option<ExtraLabel>, f64); 7] = [
                ("container_cpu_load_average_10s", None, base / 1e6),
                (
                    "container_cpu_usage_seconds_total",
                    Some(("cpu", "total")),
                    base / 1e3,
                ),
                (
                    "container_fs_limit_bytes",
                    Some(("device", "/dev/nvme0n1p1")),
                    1.0737418e11 + base,
                ),
                (
                    "container_fs_usage_bytes",
                    Some(("device", "/dev/nvme0n1p1")),
                    base * 3.0,
                ),
                ("container_memory_max_usage_bytes", None, base * 2.0),
                ("container_memory_usage_bytes", None, base),
                (
                    "container_network_receive_bytes_total",
                    Some(("interface", "eth0")),
                    base * 5.0,
                ),
            ];
            for (name, extra, value) in families {
                out.push(KubeletSeries {
                    name,
                    labels: labels(extra),
                    value,
                });
            }
        };
    for (slot, (namespace, pod, apps)) in KUBELET_PODS.iter().enumerate() {
        let uid = format!("pod{slot:02}8e5c-1d2f-4a6b-9c0d-3e4f5a6b7c8d");
        let pod_cgroup = format!("/kubepods/burstable/{uid}");
        let mut total = 0.0;
        let containers = std::iter::once("POD").chain(apps.iter().copied());
        for (i, container) in containers.enumerate() {
            let value = 1_000_000.0 * (slot + 1) as f64 + 10_000.0 * (i + 1) as f64;
            total += value;
            let image = if container == "POD" {
                "registry.k8s.io/pause:3.9".to_owned()
            } else {
                format!("registry.example.com/{container}:1.0")
            };
            add(
                format!("{pod_cgroup}/{:016x}", slot * 16 + i),
                container,
                &image,
                namespace,
                pod,
                value,
            );
        }
        add(pod_cgroup, "", "", namespace, pod, total);
    }
    for (i, id) in ["/", "/kubepods", "/system.slice/kubelet.service"]
        .iter()
        .enumerate()
    {
        add((*id).to_owned(), "", "", "", "", 9.0e8 + i as f64);
    }
    out
}

/// The fixture in text format, as node_exporter's textfile collector reads it.
pub fn kubelet_textfile(series: &[KubeletSeries]) -> String {
    let mut text = String::new();
    for (family, kind, help) in KUBELET_FAMILIES {
        text.push_str(&format!("# HELP {family} {help}\n# TYPE {family} {kind}\n"));
        for s in series.iter().filter(|s| s.name == family) {
            let labels: Vec<String> = s
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            text.push_str(&format!("{family}{{{}}} {}\n", labels.join(","), s.value));
        }
    }
    text
}
