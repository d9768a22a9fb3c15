//! The scale-out recipe (deploy/scale-out) with real peers on loopback: node_exporter serves
//! 3,000 cAdvisor-shaped pod series, a real prometheus1 runs the shipped prometheus1.yml
//! (targets and URLs pointed at these processes), three exporters hold one shard each, and a
//! real prometheus2 runs the shipped prometheus2.yml over the three.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::peers::{free_port, node_exporter, prometheus, query, TempDir};
use crate::support::{until, Exporter};

const CLUSTER: &str = "test-cluster";
/// How long each step may take.
const WAIT: Duration = Duration::from_secs(60);
const JOB: &str = "kubernetes-cadvisor";
const PODS: usize = 600;
const METRICS: [&str; 5] = [
    "container_cpu_load_average_10s",
    "container_memory_usage_bytes",
    "container_memory_max_usage_bytes",
    "container_fs_usage_bytes",
    "container_fs_limit_bytes",
];

/// The pods' own cgroups (kept), one container of each (dropped by the classic view) and
/// kube-system pods (dropped): node_exporter's textfile.
fn fixture() -> String {
    let mut text = String::new();
    for metric in METRICS {
        text.push_str(&format!(
            "# HELP {metric} cAdvisor-shaped.\n# TYPE {metric} gauge\n"
        ));
        for pod in 0..PODS {
            let namespace = format!("team-{}", pod % 7);
            for container in ["", "app"] {
                text.push_str(&format!(
                    "{metric}{{container=\"{container}\",id=\"/kubepods/pod{pod}\",namespace=\"{namespace}\",pod=\"web-{pod}\"}} {pod}\n"
                ));
            }
        }
        text.push_str(&format!(
            "{metric}{{container=\"\",namespace=\"kube-system\",pod=\"coredns-1\"}} 1\n"
        ));
    }
    text
}

/// The series the recipe forwards, as the exporters show them: `name{labels}`.
fn expected() -> BTreeSet<String> {
    let mut series = BTreeSet::new();
    for metric in METRICS {
        for pod in 0..PODS {
            series.insert(format!(
                "{metric}{{cluster=\"{CLUSTER}\",item=\"{metric}\",job=\"{JOB}\",namespace=\"team-{}\",pod=\"web-{pod}\"}}",
                pod % 7
            ));
        }
    }
    series
}

fn shipped(file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/scale-out")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The series on an exporter's page (its container series only).
fn held(address: &str) -> BTreeSet<String> {
    let page = crate::support::request(address, "GET", "/metrics", &[], &[]).text();
    page.lines()
        .filter(|line| line.starts_with("container_"))
        .map(|line| line.rsplit_once(' ').unwrap().0.to_owned())
        .collect()
}

/// Container series prometheus2 returns, as `name{labels}` with its labels sorted.
fn on_prometheus2(p2: &crate::support::peers::Peer) -> BTreeSet<String> {
    query(p2, &format!("{{job=\"{JOB}\",__name__=~\"container_.*\"}}"))
        .keys()
        .map(|labels| {
            let name = &labels["__name__"];
            let pairs: Vec<String> = labels
                .iter()
                .filter(|(k, _)| *k != "__name__" && *k != "instance")
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            format!("{name}{{{}}}", pairs.join(","))
        })
        .collect()
}

#[test]
fn three_shards_hold_disjoint_thirds_and_lose_only_their_own_when_stopped() {
    let dir = TempDir::new("scale-out");
    let textfiles = dir.0.join("textfile");
    std::fs::create_dir_all(&textfiles).unwrap();
    std::fs::write(textfiles.join("cadvisor.prom"), fixture()).unwrap();
    let source = node_exporter(&textfiles, &dir.0);
    let addresses: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let mut shards: Vec<Option<Exporter>> = addresses
        .iter()
        .map(|address| Some(Exporter::start_on(address, &["--series.ttl=5m"])))
        .collect();

    let mut p1_config = shipped("prometheus1.yml");
    p1_config["global"]["scrape_interval"] = json!("1s");
    p1_config["global"]["external_labels"]["cluster"] = json!(CLUSTER);
    p1_config["scrape_configs"] =
        json!([{"job_name": JOB, "static_configs": [{"targets": [source.address]}]}]);
    let remote_writes = p1_config["remote_write"].as_array_mut().unwrap();
    assert_eq!(remote_writes.len(), 3, "one remote_write per shard");
    for (remote_write, address) in remote_writes.iter_mut().zip(&addresses) {
        remote_write["url"] = json!(format!("http://{address}/write"));
        remote_write["queue_config"] =
            json!({"batch_send_deadline": "200ms", "min_backoff": "50ms", "max_backoff": "500ms"});
    }
    let p1 = prometheus("prometheus1", &p1_config, &dir.0);
    let mut p2_config = shipped("prometheus2.yml");
    p2_config["global"]["scrape_interval"] = json!("1s");
    p2_config["scrape_configs"][0]["static_configs"] = json!([{"targets": addresses}]);
    let p2 = prometheus("prometheus2", &p2_config, &dir.0);

    // Every forwarded series on exactly one shard, the union what prometheus1 forwards.
    let expected = expected();
    let held_by: Vec<BTreeSet<String>> = until(WAIT, "the shards to hold every series", || {
        let held_by: Vec<BTreeSet<String>> = addresses.iter().map(|a| held(a)).collect();
        let union: BTreeSet<String> = held_by.iter().flatten().cloned().collect();
        if union != expected {
            let missing: Vec<_> = expected.difference(&union).take(3).collect();
            let extra: Vec<_> = union.difference(&expected).take(3).collect();
            return Err(format!("missing {missing:?}, extra {extra:?}"));
        }
        Ok(held_by)
    });
    let total: usize = held_by.iter().map(BTreeSet::len).sum();
    assert_eq!(total, expected.len(), "no series on two shards");
    for (index, shard) in held_by.iter().enumerate() {
        let share = shard.len() as f64 / total as f64;
        assert!(
            (0.25..=0.42).contains(&share),
            "shard {index} holds {:.1}% of the series",
            share * 100.0
        );
    }
    assert!(
        query(&p1, &format!("{{job=\"{JOB}\",container=\"\"}}")).len() > expected.len(),
        "prometheus1 scraped the fixture (and more than it forwards)"
    );
    prometheus2_holds(&p2, &expected, "the union");

    // Shard 1 stops: only its series go from prometheus2; the others keep theirs.
    drop(shards[1].take());
    let others: BTreeSet<String> = held_by[0].union(&held_by[2]).cloned().collect();
    prometheus2_holds(&p2, &others, "shards 0 and 2 only");
    assert_eq!(held(&addresses[0]), held_by[0]);
    assert_eq!(held(&addresses[2]), held_by[2]);

    // It comes back where it was, and prometheus1's next writes refill it with its shard.
    shards[1] = Some(Exporter::start_on(&addresses[1], &["--series.ttl=5m"]));
    until(WAIT, "shard 1 to hold its series again", || {
        let again = held(&addresses[1]);
        (again == held_by[1]).then_some(()).ok_or(format!(
            "{} of {} series",
            again.len(),
            held_by[1].len()
        ))
    });
    prometheus2_holds(&p2, &expected, "the union again");
}

/// Waits until prometheus2 returns exactly `want`.
fn prometheus2_holds(p2: &crate::support::peers::Peer, want: &BTreeSet<String>, what: &str) {
    until(WAIT, &format!("prometheus2 to hold {what}"), || {
        let on_p2 = on_prometheus2(p2);
        (&on_p2 == want)
            .then_some(())
            .ok_or(format!("{} series, want {}", on_p2.len(), want.len()))
    });
}
