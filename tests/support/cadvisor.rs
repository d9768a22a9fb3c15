//! A deterministic, cAdvisor-shaped load: what prometheus1 forwards after scraping kubelets.

use std::collections::BTreeMap;

use k8s_exporter::proto::{MetricMetadata, WriteRequest};

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
