//! The whole chain with real peers on loopback:
//! node_exporter (cAdvisor-shaped textfile) -> prometheus1 -> k8s_exporter -> prometheus2.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::cadvisor::{kubelet_fixture, kubelet_textfile, KUBELET_FAMILIES};
use crate::support::peers::{
    example_config, free_port, metadata, node_exporter, prometheus, prometheus_on, query, Peer,
    TempDir,
};
use crate::support::{until, Exporter};

const CLUSTER: &str = "test-cluster";

/// Remote-write settings that make prometheus1 forward within a second, for the test only.
fn fast_remote_write(mut remote_write: Value, exporter: &Exporter) -> Value {
    remote_write["url"] = json!(format!("http://{}/write", exporter.address));
    remote_write["queue_config"] =
        json!({"batch_send_deadline": "200ms", "min_backoff": "50ms", "max_backoff": "500ms"});
    remote_write["metadata_config"] = json!({"send": true, "send_interval": "1s"});
    remote_write
}

fn prometheus1(job: &str, source: &Peer, remote_write: Value, dir: &Path) -> Peer {
    let config = json!({
        "global": {"scrape_interval": "1s", "external_labels": {"cluster": CLUSTER}},
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [source.address]}]}],
        "remote_write": [remote_write],
    });
    prometheus("prometheus1", &config, dir)
}

/// examples/prometheus2.yml with its targets pointed at `exporter` and scraping every second.
fn prometheus2(exporter: &Exporter, dir: &Path) -> Peer {
    let mut config = example_config("prometheus2.yml");
    let jobs = config["scrape_configs"]
        .as_array_mut()
        .expect("scrape_configs in prometheus2.yml");
    assert!(
        jobs.iter().any(|job| job["honor_labels"] == json!(true)),
        "the example must honor labels"
    );
    for job in jobs {
        job["scrape_interval"] = json!("1s");
        job["static_configs"] = json!([{"targets": [exporter.address]}]);
    }
    prometheus("prometheus2", &config, dir)
}

fn with_cluster(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut labels = labels.clone();
    labels.insert("cluster".into(), CLUSTER.into());
    labels
}

fn write_fixture(dir: &Path) -> std::path::PathBuf {
    let textfiles = dir.join("textfile");
    std::fs::create_dir_all(&textfiles).unwrap();
    let file = textfiles.join("cadvisor.prom");
    std::fs::write(&file, kubelet_textfile(&kubelet_fixture())).unwrap();
    file
}

#[test]
fn prometheus_to_exporter_to_prometheus_keeps_series_values_metadata_and_staleness() {
    let dir = TempDir::new("chain");
    let fixture_file = write_fixture(&dir.0);
    let source = node_exporter(fixture_file.parent().unwrap(), &dir.0);
    let exporter = Exporter::start(&["--series.ttl=5m"]);
    let p1 = prometheus1(
        "cadvisor",
        &source,
        fast_remote_write(json!({}), &exporter),
        &dir.0,
    );
    let p2 = prometheus2(&exporter, &dir.0);

    // The same series, all labels, on both sides (prometheus1 adds its external labels when it
    // forwards), and the fixture's values on prometheus2.
    let everything = r#"{job="cadvisor"}"#;
    let containers = r#"{job="cadvisor",__name__=~"container_.*"}"#;
    let fixture_series = kubelet_fixture().len();
    until(
        Duration::from_secs(30),
        "prometheus2 to hold what prometheus1 scraped",
        || {
            let one: BTreeSet<_> = query(&p1, everything).keys().map(with_cluster).collect();
            let two: BTreeSet<_> = query(&p2, everything).keys().cloned().collect();
            let p1_containers = query(&p1, containers);
            let p2_containers = query(&p2, containers);
            if p1_containers.len() != fixture_series {
                return Err(format!(
                    "prometheus1 has {} of {fixture_series} container series",
                    p1_containers.len()
                ));
            }
            if one != two {
                let missing: Vec<_> = one.difference(&two).take(3).collect();
                let extra: Vec<_> = two.difference(&one).take(3).collect();
                return Err(format!(
                    "series differ; missing on prometheus2 {missing:?}, extra {extra:?}"
                ));
            }
            for (labels, value) in &p1_containers {
                let bridged = p2_containers.get(&with_cluster(labels));
                if bridged != Some(value) {
                    return Err(format!(
                        "{labels:?}: prometheus1 {value}, prometheus2 {bridged:?}"
                    ));
                }
            }
            Ok(())
        },
    );

    // The fixture's type and help, learned by prometheus2 from k8s_exporter's page. Prometheus
    // asks for OpenMetrics first, where a counter family is named without `_total`.
    until(
        Duration::from_secs(20),
        "prometheus2 to learn the fixture's metadata",
        || {
            let learned = metadata(&p2);
            for (family, kind, help) in KUBELET_FAMILIES {
                let family = match kind {
                    "counter" => family.strip_suffix("_total").unwrap_or(family),
                    _ => family,
                };
                let got = learned.get(family);
                if got != Some(&(kind.to_owned(), help.to_owned())) {
                    return Err(format!("{family}: {got:?}"));
                }
            }
            Ok(())
        },
    );

    // Without the fixture, prometheus1's stale markers remove the series from k8s_exporter
    // (its TTL is 5m, far longer than any wait here) and prometheus2 stops returning them.
    let before = query(&p1, everything).len();
    std::fs::remove_file(&fixture_file).unwrap();
    until(
        Duration::from_secs(20),
        "stale markers to empty /metrics of container series",
        || {
            let left = exporter
                .metrics()
                .lines()
                .filter(|l| l.starts_with("container_"))
                .count();
            if left == 0 {
                Ok(())
            } else {
                Err(format!("{left} container series left"))
            }
        },
    );
    until(
        Duration::from_secs(20),
        "prometheus2 to stop returning container series",
        || {
            let left = query(&p2, containers).len();
            if left == 0 {
                Ok(())
            } else {
                Err(format!("{left} left"))
            }
        },
    );
    let vanished = before - query(&p1, everything).len();
    assert!(
        vanished >= fixture_series,
        "{vanished} series vanished from prometheus1"
    );
    let removed =
        exporter.exporter_value("k8s_exporter_series_removed_total{reason=\"stale_marker\"}");
    assert_eq!(
        removed,
        Some(vanished as f64),
        "each vanished series removed by its stale marker"
    );
    assert_eq!(
        exporter.exporter_value("k8s_exporter_series_removed_total{reason=\"expired\"}"),
        Some(0.0)
    );
}

/// Every Go program exposes a gauge and a counter of one family name
/// (`go_memstats_alloc_bytes` and `go_memstats_alloc_bytes_total`), which OpenMetrics cannot
/// type both: prometheus2, asking for OpenMetrics first as Prometheus does, must still hold
/// every series of prometheus1's scrape of itself.
#[test]
fn prometheus2_holds_every_series_of_prometheus1_scraping_itself() {
    let dir = TempDir::new("self-scrape");
    let exporter = Exporter::start(&[]);
    let address = format!("127.0.0.1:{}", free_port());
    let config = json!({
        "global": {"scrape_interval": "1s", "external_labels": {"cluster": CLUSTER}},
        "scrape_configs": [{"job_name": "prometheus1", "static_configs": [{"targets": [address]}]}],
        "remote_write": [fast_remote_write(json!({}), &exporter)],
    });
    let p1 = prometheus_on(&address, "prometheus1", &config, &dir.0, &[]);
    let p2 = prometheus2(&exporter, &dir.0);
    let own = r#"{job="prometheus1"}"#;
    until(
        Duration::from_secs(40),
        "prometheus2 to hold every series prometheus1 scraped of itself",
        || {
            let one: BTreeSet<_> = query(&p1, own).keys().map(with_cluster).collect();
            let two: BTreeSet<_> = query(&p2, own).keys().cloned().collect();
            if one.len() < 100 || one != two {
                let missing: Vec<_> = one.difference(&two).take(3).collect();
                let extra: Vec<_> = two.difference(&one).take(3).collect();
                return Err(format!(
                    "{} series on prometheus1, {} on prometheus2; missing {missing:?}, extra {extra:?}",
                    one.len(),
                    two.len()
                ));
            }
            Ok(())
        },
    );
    for name in ["go_memstats_alloc_bytes_total", "go_memstats_alloc_bytes"] {
        let held = query(&p2, &format!(r#"{name}{{job="prometheus1"}}"#));
        assert_eq!(held.len(), 1, "{name} on prometheus2: {held:?}");
    }
    let left_out = exporter.exporter_value("k8s_exporter_scrape_series_left_out_total");
    assert_eq!(left_out, Some(0.0), "no series left off a page");
}

/// The pods' own cgroup values the classic view must show, outside kube-system.
fn classic_view(job: &str) -> BTreeMap<String, f64> {
    const CLASSIC: [&str; 5] = [
        "container_cpu_load_average_10s",
        "container_memory_usage_bytes",
        "container_memory_max_usage_bytes",
        "container_fs_usage_bytes",
        "container_fs_limit_bytes",
    ];
    kubelet_fixture()
        .into_iter()
        .filter(|s| CLASSIC.contains(&s.name))
        .filter_map(|s| {
            let label = |name: &str| s.labels.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone());
            let (container, namespace, pod) = (label("container")?, label("namespace")?, label("pod")?);
            if !container.is_empty() || pod.is_empty() || namespace == "kube-system" {
                return None;
            }
            let series = format!(
                "{name}{{cluster=\"{CLUSTER}\",item=\"{name}\",job=\"{job}\",namespace=\"{namespace}\",pod=\"{pod}\"}}",
                name = s.name
            );
            Some((series, s.value))
        })
        .collect()
}

#[test]
fn example_write_relabelling_gives_the_classic_per_pod_view() {
    let dir = TempDir::new("classic");
    let fixture_file = write_fixture(&dir.0);
    let source = node_exporter(fixture_file.parent().unwrap(), &dir.0);
    let exporter = Exporter::start(&[]);

    let example = example_config("prometheus1.yml");
    let job = example["scrape_configs"][0]["job_name"]
        .as_str()
        .expect("a job name")
        .to_owned();
    let remote_write = example["remote_write"][0].clone();
    let rules = remote_write["write_relabel_configs"]
        .as_array()
        .expect("write_relabel_configs");
    assert!(!rules.is_empty());
    let _p1 = prometheus1(
        &job,
        &source,
        fast_remote_write(remote_write, &exporter),
        &dir.0,
    );

    let expected = classic_view(&job);
    assert_eq!(
        expected.len(),
        5 * 4,
        "five gauges for each of the four pods outside kube-system"
    );
    until(
        Duration::from_secs(30),
        "the classic view on /metrics",
        || {
            let page = exporter.metrics();
            let shown: BTreeMap<String, f64> = page
                .lines()
                .filter(|line| !line.starts_with('#'))
                .filter_map(|line| line.rsplit_once(' '))
                .map(|(series, value)| (series.to_owned(), value.parse().unwrap()))
                .collect();
            if shown != expected {
                return Err(format!("/metrics shows:\n{page}"));
            }
            let types: Vec<&str> = page.lines().filter(|l| l.starts_with("# TYPE")).collect();
            if types.len() != 5 || !types.iter().all(|t| t.ends_with(" gauge")) {
                return Err(format!("families: {types:?}"));
            }
            Ok(())
        },
    );
}
